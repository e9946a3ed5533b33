"""Talos machine configuration → typed, validated KubeSpan node configuration.

Contract (kubespan.md §7 "Configuration surface", §3.4 endpoint
normalisation, §5 "Endpoint filters"): ``parse_config(text)`` /
``load_config(path)`` accept a Talos machine config as users already have it
and return a frozen ``NodeConfig``, or raise ``ConfigError`` (never
``TypeError``/``KeyError``/``AttributeError``/a YAML exception).  Every error
names the YAML path and the offending value; a secret value is shown as
``<redacted>``.

Accepted documents (``yaml.safe_load_all``):

- the v1alpha1 document (no ``kind``; ``version: v1alpha1``), legacy fields
  ``machine.network.kubespan.*``, ``machine.network.hostname``,
  ``cluster.id``, ``cluster.secret``, ``cluster.discovery.*``,
  ``cluster.network.podSubnets``/``serviceSubnets`` (defaults 10.244.0.0/16 and
  10.96.0.0/12; never advertised as node addresses) and
  ``cluster.controlPlane.localAPIServerPort`` (default 6443; advertised by
  control-plane machines);
- ``KubeSpanConfig``, ``KubeSpanEndpointsConfig`` (also spelled
  ``KubespanEndpointsConfig``), ``DiscoveryServiceConfig`` (several, unique
  names), ``DiscoveryIdentityConfig`` and ``HostnameConfig``, all
  ``apiVersion: v1alpha1``.

Unknown sections, keys and document kinds are ignored.  As in Talos, a
multi-document kind next to its legacy counterpart is an error:
``KubeSpanConfig`` vs a ``machine.network.kubespan`` block,
``DiscoveryServiceConfig`` vs any ``cluster.discovery`` block,
``DiscoveryIdentityConfig`` vs a non-empty ``cluster.id``/``cluster.secret``.

Defaults and validation as Talos: booleans false, MTU 1420 (≥ 1280; we also
cap it at 65535, the largest link MTU); filters parse after stripping ``!``;
``excludeAdvertisedNetworks`` entries are CIDRs; the cluster secret is std
base64 of exactly 32 bytes; the cluster ID is opaque and non-empty;
KubeSpan needs at least one discovery service endpoint (legacy: discovery
enabled and the service registry not disabled; default endpoint
``https://discovery.talos.dev/`` named ``legacy``, whose path must be empty
or ``/``).  Discovery or KubeSpan needs the cluster identity.  Extra
announced endpoints are ``ip:port`` (IPv6 in brackets, no zone; we reject
port 0).

wgpy extension: ``podCIDRs`` (a list of CIDRs) under
``machine.network.kubespan`` or in the ``KubeSpanConfig`` document gives the
node's pod CIDRs for ``advertiseKubernetesNetworks`` — a non-Talos host has
no Kubernetes ``Node`` object to read ``spec.podCIDRs`` from.  Talos itself
would reject the unknown key.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from .discovery.url import parse_url
from .errors import ConfigError, KubespanError
from .filters import IPNetwork, parse_addr, parse_prefix, validate_rules

__all__ = ["ClusterIdentity", "ConfigError", "DiscoveryEndpoint", "KubeSpanConfig", "KubespanError", "NodeConfig",
           "load_config", "parse_config", "parse_discovery_endpoint"]

DEFAULT_MTU = 1420
MIN_MTU = 1280
MAX_MTU = 65535
DEFAULT_DISCOVERY_ENDPOINT = "https://discovery.talos.dev/"
LEGACY_ENDPOINT_NAME = "legacy"
CLUSTER_SECRET_BYTES = 32
API_VERSION = "v1alpha1"
# Talos constants.DefaultIPv4PodCIDR, DefaultIPv4ServiceCIDR and DefaultControlPlanePort
DEFAULT_POD_SUBNET = parse_prefix("10.244.0.0/16")
DEFAULT_SERVICE_SUBNET = parse_prefix("10.96.0.0/12")
DEFAULT_API_SERVER_PORT = 6443

KIND_KUBESPAN = "KubeSpanConfig"
KIND_KUBESPAN_ENDPOINTS = "KubeSpanEndpointsConfig"
KIND_DISCOVERY_SERVICE = "DiscoveryServiceConfig"
KIND_DISCOVERY_IDENTITY = "DiscoveryIdentityConfig"
KIND_HOSTNAME = "HostnameConfig"
_KINDS = {
    KIND_KUBESPAN: KIND_KUBESPAN,
    KIND_KUBESPAN_ENDPOINTS: KIND_KUBESPAN_ENDPOINTS,
    "KubespanEndpointsConfig": KIND_KUBESPAN_ENDPOINTS,
    KIND_DISCOVERY_SERVICE: KIND_DISCOVERY_SERVICE,
    KIND_DISCOVERY_IDENTITY: KIND_DISCOVERY_IDENTITY,
    KIND_HOSTNAME: KIND_HOSTNAME,
}
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")


# --- result types ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KubeSpanConfig:
    """The KubeSpan settings (Talos ``KubeSpanConfigs`` minus the identity)."""

    enabled: bool = False
    advertise_kubernetes_networks: bool = False
    allow_down_peer_bypass: bool = False
    harvest_extra_endpoints: bool = False
    mtu: int = DEFAULT_MTU
    endpoint_filters: tuple[str, ...] | None = None
    """``None``: no filtering; ``()``: advertise no endpoint at all."""
    exclude_advertised_networks: tuple[IPNetwork, ...] = ()
    extra_announced_endpoints: tuple[tuple[str, int], ...] = ()

    @property
    def force_routing(self) -> bool:
        """Talos ``forceRouting`` = not ``allowDownPeerBypass``."""
        return not self.allow_down_peer_bypass


@dataclass(frozen=True, slots=True)
class DiscoveryEndpoint:
    """One discovery service: ``url`` as configured, normalised host/port."""

    name: str
    url: str
    host: str
    port: int
    insecure: bool
    """True only for ``http://`` (plaintext h2c)."""

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 in brackets), the gRPC target."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    """Cluster ID (opaque string) and the 32-byte shared secret."""

    cluster_id: str
    cluster_secret: bytes = field(repr=False)
    cluster_secret_b64: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ClusterIdentity(cluster_id={self.cluster_id!r}, cluster_secret=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything kubespan reads from the machine config."""

    kubespan: KubeSpanConfig
    discovery_endpoints: tuple[DiscoveryEndpoint, ...]
    identity: ClusterIdentity | None
    """``None`` only when neither KubeSpan nor discovery is enabled and no
    complete identity is configured."""
    node_name: str | None
    pod_cidrs: tuple[IPNetwork, ...]
    machine_type: str = "worker"
    """``machine.type`` (``controlplane``, ``worker`` or ``init``; ``join`` and
    an absent value mean ``worker``, as Talos reads them)."""
    pod_subnets: tuple[IPNetwork, ...] = (DEFAULT_POD_SUBNET,)
    """``cluster.network.podSubnets`` (the cluster's pod networks)."""
    service_subnets: tuple[IPNetwork, ...] = (DEFAULT_SERVICE_SUBNET,)
    """``cluster.network.serviceSubnets``."""
    api_server_port: int = DEFAULT_API_SERVER_PORT
    """``cluster.controlPlane.localAPIServerPort``: the port a control-plane node
    advertises as ``ControlPlane{port}`` in its affiliate."""

    @property
    def kubernetes_networks(self) -> tuple[IPNetwork, ...]:
        """What Talos' ``NodeAddressFilterNoK8s`` removes from the node addresses:
        the pod and service subnets and this node's pod CIDRs."""
        return self.pod_subnets + self.service_subnets + self.pod_cidrs


# --- typed access to untyped YAML --------------------------------------------------


_T = TypeVar("_T")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _typed(node: dict[str, Any], key: str, path: str, kind: type[_T], what: str, secret: bool = False) -> _T | None:
    """``node[key]`` if it is a ``kind``; ``None`` when absent; a ConfigError naming ``what`` otherwise."""
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        shown = "<redacted>" if secret else _show(value)
        raise ConfigError(_join(path, key), f"{shown} is not {what}")
    return value


def _mapping(node: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    return _typed(node, key, path, dict, "a mapping")


def _bool(node: dict[str, Any], key: str, path: str, default: bool = False) -> bool:
    value = _typed(node, key, path, bool, "a boolean")
    return default if value is None else value


def _str(node: dict[str, Any], key: str, path: str, secret: bool = False) -> str | None:
    return _typed(node, key, path, str, "a string", secret)


def _list(node: dict[str, Any], key: str, path: str) -> list[Any] | None:
    return _typed(node, key, path, list, "a list")


def _cidrs(node: dict[str, Any], key: str, path: str) -> tuple[IPNetwork, ...]:
    items = _list(node, key, path) or []
    out: list[IPNetwork] = []
    for i, item in enumerate(items):
        where = f"{_join(path, key)}[{i}]"
        if not isinstance(item, str):
            raise ConfigError(where, f"{_show(item)} is not a CIDR string")
        try:
            out.append(parse_prefix(item))
        except ValueError:
            raise ConfigError(where, f"{_show(item)} is not a valid CIDR") from None
    return tuple(out)


# --- sections ----------------------------------------------------------------------


def _mtu(node: dict[str, Any], path: str) -> int:
    value = node.get("mtu")
    if value is None:
        return DEFAULT_MTU
    where = _join(path, "mtu")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"{_show(value)} is not an integer")
    if value < MIN_MTU:
        raise ConfigError(where, f"{value} is below the minimum {MIN_MTU}")
    if value > MAX_MTU:
        raise ConfigError(where, f"{value} is above the maximum {MAX_MTU}")
    return value


def _kubespan_section(node: dict[str, Any], path: str) -> tuple[KubeSpanConfig, tuple[IPNetwork, ...]]:
    """A legacy ``machine.network.kubespan`` block or a ``KubeSpanConfig`` document."""
    filters = _mapping(node, "filters", path) or {}
    filters_path = _join(path, "filters")
    endpoints = filters.get("endpoints")
    endpoint_filters = None if endpoints is None else validate_rules(endpoints, _join(filters_path, "endpoints"))
    config = KubeSpanConfig(
        enabled=_bool(node, "enabled", path),
        advertise_kubernetes_networks=_bool(node, "advertiseKubernetesNetworks", path),
        allow_down_peer_bypass=_bool(node, "allowDownPeerBypass", path),
        harvest_extra_endpoints=_bool(node, "harvestExtraEndpoints", path),
        mtu=_mtu(node, path),
        endpoint_filters=endpoint_filters,
        exclude_advertised_networks=_cidrs(filters, "excludeAdvertisedNetworks", filters_path),
    )
    return config, _cidrs(node, "podCIDRs", path)


def _addr_port(text: object, where: str) -> tuple[str, int]:
    """Go ``netip.ParseAddrPort``: ``1.2.3.4:5`` or ``[v6]:5``."""
    if not isinstance(text, str):
        raise ConfigError(where, f"{_show(text)} is not an ip:port string")
    bad = ConfigError(where, f"{_show(text)} is not a valid ip:port (IPv6 in brackets, port 1-65535)")
    host, sep, port_text = text.rpartition(":")
    if not sep or not _PORT_RE.match(port_text) or "%" in host:
        raise bad
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    try:
        addr = parse_addr(host)
    except ValueError:
        raise bad from None
    port = int(port_text)
    if bracketed != (addr.version == 6) or not 0 < port <= 65535:
        raise bad
    return str(addr), port


def _extra_endpoints(doc: dict[str, Any], path: str) -> tuple[tuple[str, int], ...]:
    items = _list(doc, "extraAnnouncedEndpoints", path) or []
    where = _join(path, "extraAnnouncedEndpoints")
    return tuple(_addr_port(item, f"{where}[{i}]") for i, item in enumerate(items))


def parse_discovery_endpoint(name: str, url: object, path: str, legacy: bool = False) -> DiscoveryEndpoint:
    """Validate and normalise a discovery service URL (kubespan.md §3.4; ``discovery.url``)."""
    if not isinstance(url, str) or not url:
        raise ConfigError(path, f"{_show(url)} is not a URL string")
    try:
        parsed = parse_url(url)
    except ValueError as exc:
        raise ConfigError(path, f"{_show(url)}: {exc}") from None
    if legacy and parsed.path not in ("", "/"):
        raise ConfigError(path, f"{_show(url)}: the path must be empty or '/'")
    return DiscoveryEndpoint(name=name, url=url, host=parsed.host, port=parsed.port, insecure=parsed.insecure)


def _secret(text: str, where: str) -> tuple[bytes, str]:
    """Decode a cluster secret: std base64 (newlines ignored, as Go) of 32 bytes."""
    cleaned = text.replace("\r", "").replace("\n", "")
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(where, "<redacted> is not valid standard base64") from None
    if len(raw) != CLUSTER_SECRET_BYTES or len(cleaned) != 44:
        raise ConfigError(where, f"<redacted> must decode to exactly {CLUSTER_SECRET_BYTES} bytes, got {len(raw)}")
    return raw, base64.b64encode(raw).decode("ascii")


# --- documents ---------------------------------------------------------------------


@dataclass(slots=True)
class _Docs:
    legacy: dict[str, Any] | None = None
    kubespan: dict[str, Any] | None = None
    endpoints: dict[str, Any] | None = None
    endpoints_kind: str = KIND_KUBESPAN_ENDPOINTS
    services: list[dict[str, Any]] = field(default_factory=list)
    identity: dict[str, Any] | None = None
    hostname: dict[str, Any] | None = None


def _load_documents(text: str) -> list[Any]:
    if not isinstance(text, str):
        raise TypeError("parse_config needs a str")
    try:
        return list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError("", f"invalid YAML: {exc.problem or exc.context or 'syntax error'}{where}") from None
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        raise ConfigError("", f"invalid YAML: {type(exc).__name__}") from None


def _split_documents(docs: list[Any]) -> _Docs:
    out = _Docs()
    for index, doc in enumerate(docs, 1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError(f"document {index}", f"{_show(doc)} is not a mapping")
        kind = doc.get("kind")
        if kind is None:
            version = doc.get("version")
            if version is not None and version != API_VERSION:
                raise ConfigError("version", f"{_show(version)} is not supported (want {API_VERSION})")
            if out.legacy is not None:
                raise ConfigError(f"document {index}", "more than one v1alpha1 document")
            out.legacy = doc
            continue
        if not isinstance(kind, str):
            raise ConfigError(f"document {index}.kind", f"{_show(kind)} is not a string")
        canonical = _KINDS.get(kind)
        if canonical is None:
            continue
        api = doc.get("apiVersion")
        if api != API_VERSION:
            raise ConfigError(f"{kind}.apiVersion", f"{_show(api)} is not supported (want {API_VERSION})")
        if canonical == KIND_DISCOVERY_SERVICE:
            out.services.append(doc)
            continue
        slot = {KIND_KUBESPAN: "kubespan", KIND_KUBESPAN_ENDPOINTS: "endpoints",
                KIND_DISCOVERY_IDENTITY: "identity", KIND_HOSTNAME: "hostname"}[canonical]
        if getattr(out, slot) is not None:
            raise ConfigError(kind, f"duplicate {canonical} document (document {index})")
        setattr(out, slot, doc)
        if canonical == KIND_KUBESPAN_ENDPOINTS:
            out.endpoints_kind = kind
    return out


def _discovery(docs: _Docs, cluster: dict[str, Any]) -> tuple[DiscoveryEndpoint, ...]:
    legacy = _mapping(cluster, "discovery", "cluster")
    if docs.services:
        if legacy is not None:
            raise ConfigError(KIND_DISCOVERY_SERVICE, "conflicts with cluster.discovery in the v1alpha1 document (remove one of them)")
        return _service_documents(docs.services)
    if legacy is None or not _bool(legacy, "enabled", "cluster.discovery"):
        return ()
    registries = _mapping(legacy, "registries", "cluster.discovery") or {}
    path = "cluster.discovery.registries"
    _mapping(registries, "kubernetes", path)
    service = _mapping(registries, "service", path) or {}
    service_path = _join(path, "service")
    if _bool(service, "disabled", service_path):
        return ()
    url = service.get("endpoint")
    if url is None or url == "":
        url = DEFAULT_DISCOVERY_ENDPOINT
    return (parse_discovery_endpoint(LEGACY_ENDPOINT_NAME, url, _join(service_path, "endpoint"), legacy=True),)


def _service_documents(services: list[dict[str, Any]]) -> tuple[DiscoveryEndpoint, ...]:
    seen: set[str] = set()
    out: list[DiscoveryEndpoint] = []
    for number, doc in enumerate(services, 1):
        name = _str(doc, "name", f"{KIND_DISCOVERY_SERVICE}#{number}")
        if not name:
            raise ConfigError(f"{KIND_DISCOVERY_SERVICE}#{number}.name", f"{_show(name)}: name is required")
        path = f"{KIND_DISCOVERY_SERVICE}[{name}]"
        if name in seen:
            raise ConfigError(f"{path}.name", f"duplicate name {_show(name)}")
        seen.add(name)
        if doc.get("endpoint") in (None, ""):
            raise ConfigError(f"{path}.endpoint", "endpoint is required")
        out.append(parse_discovery_endpoint(name, doc.get("endpoint"), f"{path}.endpoint"))
    return tuple(out)


def _identity(docs: _Docs, cluster: dict[str, Any], needed: bool) -> ClusterIdentity | None:
    legacy_id = _str(cluster, "id", "cluster") or ""
    legacy_secret = _str(cluster, "secret", "cluster", secret=True) or ""
    if docs.identity is not None:
        if legacy_id or legacy_secret:
            raise ConfigError(KIND_DISCOVERY_IDENTITY, "conflicts with cluster.id/cluster.secret in the v1alpha1 document (remove one of them)")
        doc = docs.identity
        cluster_id = _str(doc, "clusterID", KIND_DISCOVERY_IDENTITY) or ""
        secret = _str(doc, "clusterSecret", KIND_DISCOVERY_IDENTITY, secret=True) or ""
        id_path, secret_path = f"{KIND_DISCOVERY_IDENTITY}.clusterID", f"{KIND_DISCOVERY_IDENTITY}.clusterSecret"
        needed = True
    else:
        cluster_id, secret, id_path, secret_path = legacy_id, legacy_secret, "cluster.id", "cluster.secret"
    decoded = _secret(secret, secret_path) if secret else None
    if not cluster_id or decoded is None:
        if not needed:
            return None
        missing = id_path if not cluster_id else secret_path
        if docs.identity is not None:
            raise ConfigError(missing, "is required")
        raise ConfigError(missing, "is required when KubeSpan or cluster discovery is enabled (set cluster.id and cluster.secret, or a DiscoveryIdentityConfig document)")
    return ClusterIdentity(cluster_id=cluster_id, cluster_secret=decoded[0], cluster_secret_b64=decoded[1])


def _build(docs: _Docs) -> NodeConfig:
    legacy = docs.legacy or {}
    machine = _mapping(legacy, "machine", "") or {}
    network = _mapping(machine, "network", "machine") or {}
    cluster = _mapping(legacy, "cluster", "") or {}
    legacy_ks = _mapping(network, "kubespan", "machine.network")
    kubespan = KubeSpanConfig()
    pod_cidrs: tuple[IPNetwork, ...] = ()
    if docs.kubespan is not None:
        if legacy_ks is not None:
            raise ConfigError(KIND_KUBESPAN, "conflicts with machine.network.kubespan in the v1alpha1 document (remove one of them)")
        kubespan, pod_cidrs = _kubespan_section(docs.kubespan, KIND_KUBESPAN)
    elif legacy_ks is not None:
        kubespan, pod_cidrs = _kubespan_section(legacy_ks, "machine.network.kubespan")
    if docs.endpoints is not None:
        extra = _extra_endpoints(docs.endpoints, docs.endpoints_kind)
        kubespan = dataclasses.replace(kubespan, extra_announced_endpoints=extra)
    endpoints = _discovery(docs, cluster)
    if kubespan.enabled and not endpoints:
        raise ConfigError("cluster.discovery", "KubeSpan is enabled but no discovery service is configured (add a DiscoveryServiceConfig document, or set cluster.discovery.enabled: true without disabling the service registry)")
    identity = _identity(docs, cluster, needed=kubespan.enabled or bool(endpoints))
    node_name = _str(network, "hostname", "machine.network")
    if docs.hostname is not None:
        node_name = _str(docs.hostname, "hostname", KIND_HOSTNAME) or node_name
    return NodeConfig(
        kubespan=kubespan,
        discovery_endpoints=endpoints,
        identity=identity,
        node_name=node_name or None,
        pod_cidrs=pod_cidrs,
        machine_type=_machine_type(machine),
        **_kubernetes(cluster),
    )


def _kubernetes(cluster: dict[str, Any]) -> dict[str, Any]:
    """``cluster.network.{podSubnets,serviceSubnets}`` and ``cluster.controlPlane.localAPIServerPort``.

    Talos (``v1alpha1_clusterconfig.go`` ``PodCIDRs``/``ServiceCIDRs``/``LocalAPIServerPort``): an empty or
    absent list means the default subnet, an absent or zero port means 6443.  ``controlPlane.endpoint`` is
    the load-balanced URL clients use, not the port this node's API server listens on, so it is not read.
    """
    network = _mapping(cluster, "network", "cluster") or {}
    control_plane = _mapping(cluster, "controlPlane", "cluster") or {}
    port = control_plane.get("localAPIServerPort")
    where = "cluster.controlPlane.localAPIServerPort"
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 0xFFFF):
        raise ConfigError(where, f"{_show(port)} is not a port number")
    return {
        "pod_subnets": _cidrs(network, "podSubnets", "cluster.network") or (DEFAULT_POD_SUBNET,),
        "service_subnets": _cidrs(network, "serviceSubnets", "cluster.network") or (DEFAULT_SERVICE_SUBNET,),
        "api_server_port": port or DEFAULT_API_SERVER_PORT,
    }


MACHINE_TYPES = {"controlplane": "controlplane", "init": "init", "worker": "worker", "join": "worker", "": "worker"}


def _machine_type(machine: dict[str, Any]) -> str:
    value = _str(machine, "type", "machine") or ""
    if value not in MACHINE_TYPES:
        raise ConfigError("machine.type", f"{_show(value)} is not one of controlplane, worker, init")
    return MACHINE_TYPES[value]


# --- entry points --------------------------------------------------------------------


def parse_config(text: str) -> NodeConfig:
    """Parse a Talos machine config (one or more YAML documents)."""
    return _build(_split_documents(_load_documents(text)))


def load_config(path: str) -> NodeConfig:
    """Read and parse the machine config file at ``path``."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "not UTF-8 text") from None
    return parse_config(text)
