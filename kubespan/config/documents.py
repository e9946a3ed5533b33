"""The multi-document reader: sorting a config's YAML documents by kind, and the kinds' own fields.

Contract: ``split_documents`` takes the ``yaml.safe_load_all`` output and returns ``Documents``: the one
v1alpha1 document (no ``kind``) and at most one each of ``KubeSpanConfig``, ``KubeSpanEndpointsConfig``
(also spelled ``KubespanEndpointsConfig``), ``DiscoveryIdentityConfig`` and ``HostnameConfig``, plus any
number of ``DiscoveryServiceConfig`` documents, all ``apiVersion: v1alpha1``.  The other kinds Talos
defines (``TALOS_KINDS``) are skipped; any other kind is an error, with the nearest known kind as a hint.
The KubeSpan and discovery kinds have known fields only, as Talos decodes them (``fields.check_fields``).
``service_endpoints`` and ``identity_fields`` read the discovery documents (names unique, endpoint
required).  Every problem is a ``ConfigError`` naming the document and field.  Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .fields import META_FIELDS, check_fields, did_you_mean, parse_discovery_endpoint, show, string
from .model import API_VERSION, DiscoveryEndpoint

KIND_KUBESPAN = "KubeSpanConfig"
KIND_KUBESPAN_ENDPOINTS = "KubeSpanEndpointsConfig"
KIND_DISCOVERY_SERVICE = "DiscoveryServiceConfig"
KIND_DISCOVERY_IDENTITY = "DiscoveryIdentityConfig"
KIND_HOSTNAME = "HostnameConfig"
KINDS = {
    KIND_KUBESPAN: KIND_KUBESPAN,
    KIND_KUBESPAN_ENDPOINTS: KIND_KUBESPAN_ENDPOINTS,
    "KubespanEndpointsConfig": KIND_KUBESPAN_ENDPOINTS,
    KIND_DISCOVERY_SERVICE: KIND_DISCOVERY_SERVICE,
    KIND_DISCOVERY_IDENTITY: KIND_DISCOVERY_IDENTITY,
    KIND_HOSTNAME: KIND_HOSTNAME,
}
"""Spelling in a document → canonical kind."""

DOCUMENT_FIELDS = {
    # pkg/machinery/config/types/network/kubespan_endpoints.go KubespanEndpointsConfigV1Alpha1
    KIND_KUBESPAN_ENDPOINTS: (*META_FIELDS, "extraAnnouncedEndpoints"),
    # pkg/machinery/config/types/cluster/discovery_service.go DiscoveryServiceConfigV1Alpha1
    KIND_DISCOVERY_SERVICE: (*META_FIELDS, "name", "endpoint"),
    # pkg/machinery/config/types/cluster/discovery_identity.go DiscoveryIdentityConfigV1Alpha1
    KIND_DISCOVERY_IDENTITY: (*META_FIELDS, "clusterID", "clusterSecret"),
}
"""Known fields per kind (``KubeSpanConfig`` is checked by ``fields.kubespan_section``; ``HostnameConfig``
is not a section we model beyond ``hostname``)."""

TALOS_KINDS = frozenset("""
    BGPConfig BGPInstanceConfig BGPPeerConfig BlackholeRouteConfig BondConfig BridgeConfig
    CRIBaseRuntimeSpecConfig CRICustomizationConfig ContainerConfig DHCPv4Config DHCPv6Config DummyLinkConfig
    EnvironmentConfig EtcFileConfig EthernetConfig EventSinkConfig ExistingVolumeConfig ExtensionServiceConfig
    ExternalVolumeConfig FilesystemScrubConfig FilesystemTrimConfig HCloudVIPConfig HTTPProbeConfig
    ImageCacheConfig ImageVerificationConfig KernelModuleConfig KmsgLogConfig KubeAPIServerCAConfig
    KubeAPIServerConfig KubeAdmissionControlConfig KubeAggregatorCAConfig KubeAuditPolicyConfig
    KubeAuthenticationConfig KubeAuthorizerConfig KubeClusterConfig KubeControllerManagerConfig KubeCoreDNSConfig
    KubeCredentialProviderConfig KubeEtcdEncryptionConfig KubeExternalManifestConfig KubeFlannelCNIConfig
    KubeInlineManifestConfig KubeNetworkConfig KubeNodeConfig KubePrismConfig KubeProxyConfig KubeSchedulerConfig
    KubeServiceAccountConfig KubeStaticPodConfig KubeTalosAPIAccessConfig KubeletConfig LVMLogicalVolumeConfig
    LVMVolumeGroupConfig Layer2VIPConfig LinkAliasConfig LinkConfig MacVLANConfig NetworkDefaultActionConfig
    NetworkLinkIngressConfig NetworkNATRuleConfig NetworkRuleConfig NetworkWifiConfig OOMConfig
    PCIDriverRebindConfig ProbeConfig RAIDArrayConfig RawVolumeConfig RegistryAuthConfig RegistryMirrorConfig
    RegistryTLSConfig ResolverConfig RoutingRuleConfig SecurityProfileConfig SideroLinkConfig StaticHostConfig
    SwapVolumeConfig SysctlConfig SysfsConfig TCPProbeConfig TimeSyncConfig TrustedRootsConfig UdevRulesConfig
    UnattendedInstallConfig UserVolumeConfig VLANConfig VRFConfig VXLANConfig VethConfig VolumeConfig
    WatchdogTimerConfig WireguardConfig ZswapConfig
""".split())
"""The other document kinds Talos registers (``registry.Register`` in pkg/machinery/config/types/*/*.go,
siderolabs/talos at ad88231, plus kinds of other releases' testdata): ignored here, never an error."""


@dataclass(slots=True)
class Documents:
    """A config's documents by kind (``legacy``: the v1alpha1 document)."""

    legacy: dict[str, Any] | None = None
    kubespan: dict[str, Any] | None = None
    endpoints: dict[str, Any] | None = None
    endpoints_kind: str = KIND_KUBESPAN_ENDPOINTS
    services: list[dict[str, Any]] = field(default_factory=list)
    identity: dict[str, Any] | None = None
    hostname: dict[str, Any] | None = None


_SLOTS = {KIND_KUBESPAN: "kubespan", KIND_KUBESPAN_ENDPOINTS: "endpoints", KIND_DISCOVERY_IDENTITY: "identity",
          KIND_HOSTNAME: "hostname"}


def split_documents(docs: list[Any]) -> Documents:
    out = Documents()
    for index, doc in enumerate(docs, 1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError(f"document {index}", f"{show(doc)} is not a mapping")
        kind = doc.get("kind")
        if kind is None:
            version = doc.get("version")
            if version is not None and version != API_VERSION:
                raise ConfigError("version", f"{show(version)} is not supported (want {API_VERSION})")
            if out.legacy is not None:
                raise ConfigError(f"document {index}", "more than one v1alpha1 document")
            out.legacy = doc
            continue
        if not isinstance(kind, str):
            raise ConfigError(f"document {index}.kind", f"{show(kind)} is not a string")
        canonical = KINDS.get(kind)
        if canonical is None:
            if kind in TALOS_KINDS:
                continue
            hint = did_you_mean(kind, [*KINDS, *TALOS_KINDS])
            raise ConfigError(f"document {index}.kind", f"{show(kind)} is not a Talos document kind{hint}")
        api = doc.get("apiVersion")
        if api != API_VERSION:
            raise ConfigError(f"{kind}.apiVersion", f"{show(api)} is not supported (want {API_VERSION})")
        if canonical in DOCUMENT_FIELDS:
            where = kind
            if canonical == KIND_DISCOVERY_SERVICE:
                name = doc.get("name")
                where = f"{kind}[{name}]" if isinstance(name, str) and name else f"{kind}#{len(out.services) + 1}"
            check_fields(doc, DOCUMENT_FIELDS[canonical], where)
        if canonical == KIND_DISCOVERY_SERVICE:
            out.services.append(doc)
            continue
        slot = _SLOTS[canonical]
        if getattr(out, slot) is not None:
            raise ConfigError(kind, f"duplicate {canonical} document (document {index})")
        setattr(out, slot, doc)
        if canonical == KIND_KUBESPAN_ENDPOINTS:
            out.endpoints_kind = kind
    return out


def service_endpoints(services: list[dict[str, Any]]) -> tuple[DiscoveryEndpoint, ...]:
    """The ``DiscoveryServiceConfig`` documents, in order."""
    seen: set[str] = set()
    out: list[DiscoveryEndpoint] = []
    for number, doc in enumerate(services, 1):
        name = string(doc, "name", f"{KIND_DISCOVERY_SERVICE}#{number}")
        if not name:
            raise ConfigError(f"{KIND_DISCOVERY_SERVICE}#{number}.name", f"{show(name)}: name is required")
        path = f"{KIND_DISCOVERY_SERVICE}[{name}]"
        if name in seen:
            raise ConfigError(f"{path}.name", f"duplicate name {show(name)}")
        seen.add(name)
        if doc.get("endpoint") in (None, ""):
            raise ConfigError(f"{path}.endpoint", "endpoint is required")
        out.append(parse_discovery_endpoint(name, doc.get("endpoint"), f"{path}.endpoint"))
    return tuple(out)


def identity_fields(doc: dict[str, Any]) -> tuple[str, str]:
    """``clusterID`` and ``clusterSecret`` of a ``DiscoveryIdentityConfig`` (``""`` when absent)."""
    cluster_id = string(doc, "clusterID", KIND_DISCOVERY_IDENTITY) or ""
    secret = string(doc, "clusterSecret", KIND_DISCOVERY_IDENTITY, secret=True) or ""
    return cluster_id, secret
