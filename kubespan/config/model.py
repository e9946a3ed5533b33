"""The typed result of reading a machine config: ``NodeConfig`` and its parts, and the Talos defaults.

Contract: frozen, slotted data with Talos's defaults (kubespan.md §7); no parsing, no I/O.  The cluster
secret never appears in a ``repr``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ..filters import IPNetwork

DEFAULT_MTU = 1420
MIN_MTU = 1280
MAX_MTU = 65535
DEFAULT_DISCOVERY_ENDPOINT = "https://discovery.talos.dev/"
LEGACY_ENDPOINT_NAME = "legacy"
CLUSTER_SECRET_BYTES = 32
API_VERSION = "v1alpha1"
# Talos constants.DefaultIPv4PodCIDR, DefaultIPv4ServiceCIDR and DefaultControlPlanePort
DEFAULT_POD_SUBNET = ipaddress.ip_network("10.244.0.0/16")
DEFAULT_SERVICE_SUBNET = ipaddress.ip_network("10.96.0.0/12")
DEFAULT_API_SERVER_PORT = 6443


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
    relay: bool = False
    """Our extension (``relay: true``): serve as a relay for members that cannot reach each other."""
    use_relays: bool = True
    """Reach peers through other members' relays when no direct endpoint answers (``kubespan.relay``).
    Not a config field: ``kubespan agent --no-relay`` turns it off (a Talos node's behaviour)."""

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
        """What Talos' ``NodeAddressFilterNoK8s`` removes from the node addresses
        (``k8s/address_filter.go``): the pod and service subnets and this node's pod CIDRs."""
        return self.pod_subnets + self.service_subnets + self.pod_cidrs
