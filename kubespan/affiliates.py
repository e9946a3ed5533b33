"""Affiliates: this node's local affiliate, the merge of raw affiliates, members.

Contract (kubespan.md §2 "Local affiliate", "Raw affiliates", "Merge",
"Members"; Talos ``cluster/local_affiliate.go``, ``affiliate_merge.go``,
``member.go``):

- ``local_addresses`` keeps the *routed* node IPs: only addresses of links
  that are up (Talos ``network/node_address.go``: operational state up or
  unknown, and a carrier on physical links), no link/host scope, loopback,
  multicast or link-local address, no SideroLink ULA, nothing inside the
  Kubernetes networks (``NodeConfig.kubernetes_networks``: pod and service
  subnets, this node's pod CIDRs; Talos ``k8s/address_filter.go``
  ``NodeAddressFilterNoK8s``); the node's own KubeSpan ULA stays in.
- ``local_endpoints``: the current node IPs (same exclusions, sorted IPv4
  first), minus the own KubeSpan IP; the discovery-reported public IP appended
  if new; then the endpoint filters; port 51820; then
  ``extraAnnouncedEndpoints``, skipping duplicates.
- ``local_affiliate`` builds the ``Affiliate`` we publish (Talos
  ``cluster/local_affiliate.go``); ``kubespan`` is set when the identity
  exists (``additionalAddresses`` = pod CIDRs with
  ``advertiseKubernetesNetworks``; ``excludeAdvertisedNetworks`` from config);
  ``controlPlane`` = ``ControlPlane{port: localAPIServerPort}`` for
  ``controlplane`` and ``init`` machines (Talos ``machine.Type.IsControlPlane``),
  absent otherwise; ``kubespan.relay`` (our field) is the ``relay`` setting.
- ``raw_affiliates`` keys discovery results as ``service/<nodeId>``; with
  several services the later one in config order wins (Talos: last writer).
- ``merge`` groups raw affiliates by node ID in raw-ID order: union-append the
  lists, overwrite controlPlane when set, hostname/nodename/publicKey/address
  when non-empty, machineType when known; keep the first operatingSystem;
  ``relay`` (ours) is set when any raw affiliate sets it.
- ``members``: merged affiliates with a nodename, keyed by nodename.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .config import NodeConfig
from .discovery.protocol import Affiliate, ControlPlane, Endpoint, IPAddress, KubeSpan, normalize_machine_type
from .filters import IPNetwork, filter_ips
from .identity import ULA_PURPOSE_SIDEROLINK, Identity, is_ula
from .peers import SpecInput

__all__ = [
    "KUBESPAN_PORT", "AffiliateSpec", "Member", "NodeAddress", "from_remote", "link_is_up", "local_addresses",
    "local_affiliate", "local_endpoints", "members", "merge", "raw_affiliates",
]

KUBESPAN_PORT = 51820
T = TypeVar("T")
OS_NAME = "kubespan-py"
CONTROL_PLANE_TYPES = ("controlplane", "init")


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """One address configured on this host (from netlink)."""

    ip: IPAddress
    prefixlen: int
    link: str = ""
    scope: str = "global"
    """``global``, ``site``, ``link`` or ``host`` (rtnetlink scope)."""
    link_up: bool = True
    """The link is up (see ``link_is_up``); addresses of links that are down are not announced."""


def link_is_up(operstate: str, carrier: bool, physical: bool) -> bool:
    """Talos' "link up" test: operational state up or unknown; a physical link also needs a carrier.

    ``physical``: an ethernet link without a link kind (not a veth, bridge, tun...).
    """
    return operstate in ("UP", "UNKNOWN") and (carrier or not physical)


@dataclass(frozen=True, slots=True)
class AffiliateSpec:
    """``Affiliates.cluster.talos.dev`` spec (raw or merged)."""

    node_id: str
    addresses: tuple[IPAddress, ...] = ()
    hostname: str = ""
    nodename: str = ""
    machine_type: str = "unknown"
    operating_system: str = ""
    public_key: str = ""
    kubespan_address: IPAddress | None = None
    additional_addresses: tuple[IPNetwork, ...] = ()
    exclude_advertised_networks: tuple[IPNetwork, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    control_plane: ControlPlane | None = None
    relay: bool = False
    """Our extension: the member announces that it relays (``KubeSpan.relay``)."""

    def spec_input(self) -> SpecInput:
        return SpecInput(
            node_id=self.node_id, nodename=self.nodename, public_key=self.public_key,
            address=self.kubespan_address, addresses=self.addresses,
            additional_addresses=self.additional_addresses,
            exclude_advertised_networks=self.exclude_advertised_networks, endpoints=self.endpoints,
            relay=self.relay,
        )


@dataclass(frozen=True, slots=True)
class Member:
    """``Members.cluster.talos.dev`` (ID = nodename)."""

    id: str
    node_id: str
    addresses: tuple[IPAddress, ...]
    hostname: str
    machine_type: str
    operating_system: str
    control_plane: ControlPlane | None


# --- local affiliate ---------------------------------------------------------------------


def _usable(addr: NodeAddress, excluded: Sequence[IPNetwork]) -> bool:
    ip = addr.ip
    if not addr.link_up or addr.scope in ("link", "host") or ip.is_loopback or ip.is_multicast or ip.is_link_local:
        return False
    if ip.is_unspecified or is_ula(ip, ULA_PURPOSE_SIDEROLINK):
        return False
    return not any(ip in net for net in excluded)


def _sort_key(ip: IPAddress) -> tuple[int, bytes]:
    return ip.version, ip.packed


def local_addresses(addresses: Iterable[NodeAddress], excluded: Sequence[IPNetwork] = ()) -> tuple[IPAddress, ...]:
    """The routed node IPs this node announces (sorted, unique); ``excluded``: the Kubernetes networks."""
    ips = {a.ip for a in addresses if _usable(a, excluded)}
    return tuple(sorted(ips, key=_sort_key))


def local_endpoints(
    addresses: Iterable[NodeAddress],
    config: NodeConfig,
    kubespan_ip: IPAddress | None,
    public_ip: IPAddress | None,
) -> tuple[Endpoint, ...]:
    """The KubeSpan endpoints this node announces, in Talos order."""
    ips = [ip for ip in local_addresses(addresses, config.kubernetes_networks) if ip != kubespan_ip]
    if public_ip is not None and public_ip not in ips:
        ips.append(public_ip)
    ips = list(filter_ips(ips, config.kubespan.endpoint_filters))
    out = [Endpoint(ip, KUBESPAN_PORT) for ip in ips]
    for host, port in config.kubespan.extra_announced_endpoints:
        extra = Endpoint(ipaddress.ip_address(host), port)
        if extra not in out:
            out.append(extra)
    return tuple(out)


def local_affiliate(
    identity: Identity,
    config: NodeConfig,
    addresses: Iterable[NodeAddress],
    hostname: str,
    nodename: str,
    machine_type: str = "worker",
) -> Affiliate:
    """The affiliate this node publishes (its endpoints travel separately)."""
    ks = config.kubespan
    additional: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()
    if ks.advertise_kubernetes_networks:
        additional = tuple(ipaddress.ip_interface(str(net)) for net in config.pod_cidrs)
    control_plane = ControlPlane(config.api_server_port) if machine_type in CONTROL_PLANE_TYPES else None
    return Affiliate(
        node_id=identity.node_id,
        addresses=local_addresses(addresses, config.kubernetes_networks),
        hostname=hostname,
        nodename=nodename,
        machine_type=machine_type,
        operating_system=OS_NAME,
        kubespan=KubeSpan(
            public_key=identity.public_key.to_base64(),
            address=identity.address,
            additional_addresses=additional,
            exclude_advertised_networks=tuple(ipaddress.ip_interface(str(n)) for n in ks.exclude_advertised_networks),
            relay=ks.relay and ks.use_relays,
        ),
        control_plane=control_plane,
    )


# --- raw affiliates and merge ------------------------------------------------------------


def from_remote(affiliate: Affiliate, endpoints: Sequence[Endpoint]) -> AffiliateSpec:
    """An affiliate decrypted from a discovery service, as an ``AffiliateSpec``."""
    ks = affiliate.kubespan
    return AffiliateSpec(
        node_id=affiliate.node_id,
        addresses=affiliate.addresses,
        hostname=affiliate.hostname,
        nodename=affiliate.nodename,
        machine_type=normalize_machine_type(affiliate.machine_type),
        operating_system=affiliate.operating_system,
        public_key=ks.public_key if ks is not None else "",
        kubespan_address=ks.address if ks is not None else None,
        additional_addresses=tuple(p.network for p in ks.additional_addresses) if ks is not None else (),
        exclude_advertised_networks=tuple(p.network for p in ks.exclude_advertised_networks) if ks else (),
        endpoints=tuple(endpoints) if ks is not None else (),
        control_plane=affiliate.control_plane,
        relay=ks.relay if ks is not None else False,
    )


def raw_affiliates(
    per_service: Sequence[Mapping[str, tuple[Affiliate, Sequence[Endpoint]]]]
) -> dict[str, AffiliateSpec]:
    """``service/<nodeId>`` → spec; a later service overwrites an earlier one."""
    raw: dict[str, AffiliateSpec] = {}
    for service in per_service:
        for node_id, (affiliate, endpoints) in service.items():
            raw[f"service/{node_id}"] = from_remote(affiliate, endpoints)
    return raw


def _union(a: tuple[T, ...], b: Iterable[T]) -> tuple[T, ...]:
    out = list(a)
    for item in b:
        if item not in out:
            out.append(item)
    return tuple(out)


def _merge_two(base: AffiliateSpec, other: AffiliateSpec) -> AffiliateSpec:
    return dataclasses.replace(
        base,
        addresses=_union(base.addresses, other.addresses),
        additional_addresses=_union(base.additional_addresses, other.additional_addresses),
        exclude_advertised_networks=_union(base.exclude_advertised_networks, other.exclude_advertised_networks),
        endpoints=_union(base.endpoints, other.endpoints),
        control_plane=other.control_plane if other.control_plane is not None else base.control_plane,
        hostname=other.hostname or base.hostname,
        nodename=other.nodename or base.nodename,
        public_key=other.public_key or base.public_key,
        kubespan_address=other.kubespan_address if other.kubespan_address is not None else base.kubespan_address,
        machine_type=other.machine_type if other.machine_type != "unknown" else base.machine_type,
        relay=other.relay or base.relay,
    )


def merge(raw: Mapping[str, AffiliateSpec]) -> dict[str, AffiliateSpec]:
    """Merged affiliates keyed by node ID (``cluster/<nodeId>``)."""
    merged: dict[str, AffiliateSpec] = {}
    for raw_id in sorted(raw):
        spec = raw[raw_id]
        base = merged.get(spec.node_id)
        merged[spec.node_id] = spec if base is None else _merge_two(base, spec)
    return merged


def members(merged: Mapping[str, AffiliateSpec]) -> dict[str, Member]:
    """Members keyed by nodename (affiliates without a nodename are not members)."""
    out: dict[str, Member] = {}
    for node_id in sorted(merged):
        aff = merged[node_id]
        if not aff.nodename or aff.nodename in out:
            continue
        out[aff.nodename] = Member(
            id=aff.nodename, node_id=aff.node_id, addresses=aff.addresses, hostname=aff.hostname,
            machine_type=aff.machine_type, operating_system=aff.operating_system, control_plane=aff.control_plane,
        )
    return out
