"""The typed result of reading a machine config: ``NodeConfig`` and its parts, and the Talos defaults.

Contract: frozen, slotted data with Talos's defaults (kubespan.md §7); no parsing, no I/O.  The cluster
secret never appears in a ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..filters import IPNetwork

DEFAULT_MTU = 1420
MIN_MTU = 1280
MAX_MTU = 65535
DEFAULT_DISCOVERY_ENDPOINT = "https://discovery.talos.dev/"
LEGACY_ENDPOINT_NAME = "legacy"
CLUSTER_SECRET_BYTES = 32
API_VERSION = "v1alpha1"


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
