"""The KubeSpan reconcile step: a pure function from inputs to the desired state.

Contract (kubespan.md §5 "Manager", "Harvesting", §6 "Routing";
architecture.md point 7): ``reconcile(config, identity, local, affiliates,
observed, statuses, now)`` returns a ``Desired`` — peer specs, the next peer
statuses, the WireGuard peers (PSK = cluster secret, keepalive 25 s, allowed
IPs replaced, endpoint only when the re-push rule says so, or a relay's while
the peer is relayed: ``relay.step``; see "first contact" below for the
keepalive of a new pair), the routing spec
(link address /64, MTU, routed set), the harvested endpoints and warnings.
``reconcile`` is two steps: the peer specs from the affiliates
(``build_peer_specs``), then ``peer_pass(config, identity, specs, observed,
statuses, now)``, which needs only WireGuard's state and the clock; the agent
runs ``peer_pass`` alone between reconciles (on a completed handshake, and
when ``next_pass_due`` says) so that statuses (and the routing of up/down
peers) follow handshakes and endpoint timeouts as they happen
(``next_statuses`` is its cheap first half: after a handshake the agent goes
on only when ``peers.status_changed`` says a status really changed).
First contact: of two nodes that never completed a handshake, the one with
the greater public key (base64 text) holds its persistent keepalive back
(0) for ``FIRST_CONTACT_HOLD`` after an endpoint is applied
(``first_contact_hold_until``), so the other's handshake comes first and the
two do not cross: crossing initiations leave both sides answering each
other and waiting for a retransmit (REKEY_TIMEOUT, 5 s; more under load).
There is no hold when the other node already tried: ``contacted`` (public
key -> wall-clock time of an initiation from that key that this node dropped
because it did not know the key yet, ``wgpy.Interface.unknown_initiators``) has
one from at most ``CONTACT_WINDOW`` before the endpoint was applied; the other
node then waits for its 5 s retransmit, and our handshake comes first.
Once a handshake completed, or the hold ran out, the keepalive is 25 s
again; ``next_pass_due`` gives the agent the next instant a pass has work
(a state-table boundary or the end of a hold).
``diff_peers(desired, observed)`` turns the desired peers into the minimal
WireGuard changes, each with the reasons it is needed.  The agent applies
them; nothing here does I/O or reads a clock: the same inputs always give the
same output.

Routed set: the allowed IPs of every peer (``forceRouting``, the default) or
only of peers that are up (``allowDownPeerBypass``), minus the cluster ULA
/64, which the on-link route of ``kubespan`` already covers (Talos ≥ 1.13).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import relay
from .affiliates import AffiliateSpec, Member, members
from .config import NodeConfig
from .discovery.protocol import Endpoint
from .filters import IPNetwork
from .identity import Identity
from .peers import (
    ObservedPeer, PeerSpec, PeerState, PeerStatus, build_peer_specs, minimal_prefixes, next_state_change, subtract,
)

__all__ = [
    "CONTACT_WINDOW", "FIRST_CONTACT_HOLD", "FWMARK_FORCE", "FWMARK_MASK", "FWMARK_WIREGUARD", "KEEPALIVE", "LINK_NAME", "LISTEN_PORT",
    "ROUTE_TABLE", "RULE_PRIORITY", "Desired", "DesiredPeer", "HarvestedEndpoint", "PeerChange", "PeerPass",
    "RoutingSpec", "diff_peers", "first_contact_hold_until", "next_pass_due", "next_statuses", "peer_pass",
    "reconcile", "routed_set",
]

LINK_NAME = "kubespan"
LISTEN_PORT = 51820
KEEPALIVE = 25
FIRST_CONTACT_HOLD = 3.0
"""Seconds the greater key of a new pair waits before its keepalive may start a handshake (see above),
unless the other node already tried.  The two initiations cross when the smaller key adds the pair just as
the hold ends; in the 50-node bench the two ends of a pair added each other up to ~2.5 s apart."""
CONTACT_WINDOW = 5.0
"""Seconds before the endpoint was applied within which a dropped initiation from the peer counts (REKEY_TIMEOUT:
the sender retransmits after that)."""
FWMARK_WIREGUARD = 0x20
FWMARK_FORCE = 0x40
FWMARK_MASK = 0x60
ROUTE_TABLE = 180
RULE_PRIORITY = 32500


@dataclass(frozen=True, slots=True)
class DesiredPeer:
    """One WireGuard peer as it should be configured."""

    public_key: str
    preshared_key: bytes = field(repr=False)
    endpoint: Endpoint | None
    """``None``: keep whatever endpoint WireGuard has (it may have roamed)."""
    allowed_ips: tuple[IPNetwork, ...]
    persistent_keepalive: int = KEEPALIVE
    label: str = ""
    relayed: bool = False
    """``endpoint`` is a relay's (``kubespan.relay``): WireGuard wraps everything for this peer in relay frames."""
    probe_endpoint: Endpoint | None = None
    """While relayed: the direct endpoint WireGuard probes."""


@dataclass(frozen=True, slots=True)
class HarvestedEndpoint:
    """``KubeSpanEndpoints.kubespan.talos.dev`` (ID = the peer's public key)."""

    public_key: str
    affiliate_id: str
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class RoutingSpec:
    """Link, address, rules and routes that make traffic to peers go through ``kubespan``."""

    address: ipaddress.IPv6Interface
    mtu: int
    routed: tuple[IPNetwork, ...]
    link: str = LINK_NAME
    table: int = ROUTE_TABLE
    priority: int = RULE_PRIORITY


@dataclass(frozen=True, slots=True)
class PeerPass:
    """What one pass over known peer specs decided (``peer_pass``)."""

    statuses: Mapping[str, PeerStatus]
    peers: tuple[DesiredPeer, ...]
    routing: RoutingSpec
    harvested: tuple[HarvestedEndpoint, ...]


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything one reconcile pass decided."""

    peer_specs: tuple[PeerSpec, ...]
    statuses: Mapping[str, PeerStatus]
    peers: tuple[DesiredPeer, ...]
    routing: RoutingSpec
    harvested: tuple[HarvestedEndpoint, ...]
    members: Mapping[str, Member]
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeerChange:
    """One WireGuard peer operation with the reasons (for logs)."""

    public_key: str
    action: str
    """``add``, ``update`` or ``remove``."""
    reasons: tuple[str, ...]
    peer: DesiredPeer | None


def routed_set(
    specs: Sequence[PeerSpec], statuses: Mapping[str, PeerStatus], force_routing: bool,
    cluster_subnet: ipaddress.IPv6Network,
) -> tuple[IPNetwork, ...]:
    """The prefixes routed into ``kubespan`` (see the module contract)."""
    nets: list[IPNetwork] = []
    for spec in specs:
        status = statuses.get(spec.public_key)
        if force_routing or (status is not None and status.state is PeerState.UP):
            nets.extend(spec.allowed_ips)
    return _routed(tuple(nets), cluster_subnet)


@functools.lru_cache(maxsize=8)
def _routed(nets: tuple[IPNetwork, ...], cluster_subnet: ipaddress.IPv6Network) -> tuple[IPNetwork, ...]:
    """``nets`` minus the cluster subnet, as minimal prefixes: the same for every pass until a peer's
    allowed IPs (or, without forceRouting, the set of up peers) change, hence remembered."""
    return subtract(minimal_prefixes(nets), [cluster_subnet])


def reconcile(
    config: NodeConfig,
    identity: Identity,
    local: AffiliateSpec | None,
    affiliates: Mapping[str, AffiliateSpec],
    observed: Mapping[str, ObservedPeer],
    statuses: Mapping[str, PeerStatus],
    now: float,
    contacted: Mapping[str, float] | None = None,
) -> Desired:
    """One manager pass (pure)."""
    if config.identity is None:
        raise ValueError("reconcile needs the cluster identity (cluster secret)")
    local_id = local.node_id if local is not None else identity.node_id
    inputs = {nid: aff.spec_input() for nid, aff in affiliates.items()}
    if not config.kubespan.use_relays:  # --no-relay: a Talos node's view, no member relays
        inputs = {nid: dataclasses.replace(spec, relay=False) for nid, spec in inputs.items()}
    specs, warnings = build_peer_specs(local_id, identity.public_key.to_base64(), inputs)
    result = peer_pass(config, identity, specs, observed, statuses, now, contacted)
    all_affiliates = dict(affiliates)
    if local is not None:
        all_affiliates[local.node_id] = local
    return Desired(
        peer_specs=tuple(specs), statuses=result.statuses, peers=result.peers, routing=result.routing,
        harvested=result.harvested, members=members(all_affiliates), warnings=tuple(warnings),
    )


def next_statuses(
    specs: Sequence[PeerSpec], observed: Mapping[str, ObservedPeer], statuses: Mapping[str, PeerStatus], now: float,
) -> dict[str, PeerStatus]:
    """Manager steps 1-3 for every peer spec, with the relay decision (``relay.step``; statuses of peers
    without a spec are dropped)."""
    relays = relay.candidates(specs, statuses, observed)
    return {spec.public_key: relay.step(statuses.get(spec.public_key), spec, observed.get(spec.public_key), now,
                                        relays)
            for spec in specs}


def first_contact_hold_until(local_key: str, peer_key: str, status: PeerStatus,
                             contacted: Mapping[str, float] | None = None) -> float | None:
    """Until when this node holds its keepalive to the peer back (see the module contract), or None."""
    if local_key <= peer_key or status.last_handshake_time or status.last_endpoint_change is None:
        return None
    tried = (contacted or {}).get(peer_key)
    if tried is not None and tried >= status.last_endpoint_change - CONTACT_WINDOW:
        return None
    return status.last_endpoint_change + FIRST_CONTACT_HOLD


def _keepalive(local_key: str, peer_key: str, status: PeerStatus, now: float, contacted: Mapping[str, float]) -> int:
    hold = first_contact_hold_until(local_key, peer_key, status, contacted)
    return 0 if hold is not None and now < hold else KEEPALIVE


def next_pass_due(local_key: str, statuses: Mapping[str, PeerStatus], now: float,
                  contacted: Mapping[str, float] | None = None) -> float | None:
    """The next instant a pass over these statuses has work without new input: a state-table boundary
    (``peers.next_state_change``), the end of a relayed peer's probe turn (``relay.next_change``) or the
    end of a first-contact hold; None if there is none."""
    due: list[float] = []
    for key, status in statuses.items():
        for boundary in (next_state_change(status, now), relay.next_change(status, now)):
            if boundary is not None:
                due.append(boundary)
        hold = first_contact_hold_until(local_key, key, status, contacted)
        if hold is not None and hold > now:
            due.append(hold)
    return min(due, default=None)


def peer_pass(
    config: NodeConfig,
    identity: Identity,
    specs: Sequence[PeerSpec],
    observed: Mapping[str, ObservedPeer],
    statuses: Mapping[str, PeerStatus],
    now: float,
    contacted: Mapping[str, float] | None = None,
) -> PeerPass:
    """Statuses, WireGuard peers, routing and harvest for known specs (pure; no discovery input)."""
    if config.identity is None:
        raise ValueError("peer_pass needs the cluster identity (cluster secret)")
    new = next_statuses(specs, observed, statuses, now)
    psk = config.identity.cluster_secret
    local_key = identity.public_key.to_base64()
    peers = tuple(_desired_peer(spec, new[spec.public_key], psk,
                                _keepalive(local_key, spec.public_key, new[spec.public_key], now, contacted or {}))
                  for spec in specs)
    routing = RoutingSpec(
        address=ipaddress.IPv6Interface((identity.address, identity.subnet.prefixlen)),
        mtu=config.kubespan.mtu,
        routed=routed_set(specs, new, config.kubespan.force_routing, identity.subnet),
    )
    harvested = _harvest(specs, new) if config.kubespan.harvest_extra_endpoints else ()
    return PeerPass(statuses=new, peers=peers, routing=routing, harvested=harvested)


def _desired_peer(spec: PeerSpec, status: PeerStatus, psk: bytes, keepalive: int) -> DesiredPeer:
    endpoint, relayed, probe = relay.wireguard_endpoint(status)
    return DesiredPeer(public_key=spec.public_key, preshared_key=psk, endpoint=endpoint, allowed_ips=spec.allowed_ips,
                       persistent_keepalive=keepalive, label=spec.label, relayed=relayed, probe_endpoint=probe)


def _harvest(specs: Sequence[PeerSpec], statuses: Mapping[str, PeerStatus]) -> tuple[HarvestedEndpoint, ...]:
    out: list[HarvestedEndpoint] = []
    for spec in specs:
        status = statuses[spec.public_key]
        if (status.state is PeerState.UP and status.endpoint is not None and spec.node_id
                and relay.relayed_via(status) is None):  # a relay's address is not the peer's endpoint
            out.append(HarvestedEndpoint(spec.public_key, spec.node_id, status.endpoint))
    return tuple(out)


def observed_endpoints_by_node(harvested: Sequence[HarvestedEndpoint]) -> dict[str, list[Endpoint]]:
    """Harvested endpoints grouped by the peer's node ID (for ``set_observed_endpoints``)."""
    out: dict[str, list[Endpoint]] = {}
    for item in harvested:
        out.setdefault(item.affiliate_id, []).append(item.endpoint)
    return out


def diff_peers(desired: Sequence[DesiredPeer], observed: Mapping[str, ObservedPeer]) -> list[PeerChange]:
    """The WireGuard operations that turn ``observed`` into ``desired`` (adds/updates, then removals)."""
    changes: list[PeerChange] = []
    wanted = {p.public_key for p in desired}
    for peer in desired:
        seen = observed.get(peer.public_key)
        if seen is None:
            changes.append(PeerChange(peer.public_key, "add", ("new peer",), peer))
            continue
        reasons: list[str] = []
        if (set(seen.allowed_ips) != set(peer.allowed_ips)  # the same prefixes: no need to normalise them
                and minimal_prefixes(seen.allowed_ips) != minimal_prefixes(peer.allowed_ips)):
            reasons.append("allowed IPs changed")
        if peer.endpoint is not None and (seen.endpoint != peer.endpoint or seen.relayed != peer.relayed):
            via = "relayed via " if peer.relayed else ""
            reasons.append(f"endpoint {seen.endpoint or 'none'} -> {via}{peer.endpoint}")
        if peer.relayed and seen.probe_endpoint != peer.probe_endpoint:
            reasons.append(f"probing {peer.probe_endpoint or 'nothing'} directly")
        if seen.persistent_keepalive is not None and seen.persistent_keepalive != peer.persistent_keepalive:
            reasons.append(f"persistent keepalive {seen.persistent_keepalive} -> {peer.persistent_keepalive} s")
        if reasons:
            changes.append(PeerChange(peer.public_key, "update", tuple(reasons), peer))
    for key in sorted(observed):
        if key not in wanted:
            changes.append(PeerChange(key, "remove", ("no longer an affiliate with this key",), None))
    return changes
