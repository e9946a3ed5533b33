"""KubeSpan peers: ``PeerSpec`` from merged affiliates, ``PeerStatus`` and its state machine.

Contract (kubespan.md §5 "PeerSpec" and "Manager" steps 1-3; Talos
``kubespan/peer_spec.go`` and ``adapters/kubespan/peer_status.go``):

- ``build_peer_specs`` turns the merged affiliates into one ``PeerSpec`` per
  remote node with a public key, visited in node-ID order: the IP set is
  ``additionalAddresses`` ∪ ``addresses`` (host prefixes) minus
  ``excludeAdvertisedNetworks``, plus the KubeSpan IP (never excluded); any
  part overlapping an earlier peer's set is removed with a "peer address
  overlap" warning (first come wins).  ``allowedIPs`` are the minimal
  prefixes, ``label`` the nodename.
- ``calculate_state(status, now)`` is the state table below (Talos
  ``adapters/kubespan/peer_status.go`` ``CalculateStateWithDurations``;
  "down" with no ``lastUsedEndpoint`` is unknown); ``pick_next_endpoint``
  rotates endpoints (``PickNewEndpoint``); ``step_status`` is one manager pass
  for one peer (read WireGuard, compute the state, rotate, re-establish the
  last used endpoint: Talos ``controllers/kubespan/manager.go``), and
  ``endpoint_to_push`` is what that pass writes into WireGuard: the
  ``lastUsedEndpoint`` when WireGuard has no endpoint or has that one, nothing
  when WireGuard roamed elsewhere (the roamed endpoint survives).
- ``status_changed`` tells whether a pass changed anything but counters and
  handshake times (a change of relay state, ``kubespan.relay``, counts; the
  agent applies only such changes), and
  ``next_state_change(status, now)`` when ``calculate_state`` can next give
  another answer on its own (a table boundary: T0 + 15 s, T0 + 275 s, the last
  handshake + 275 s); the agent re-evaluates a peer then, or when WireGuard
  completes a handshake, instead of polling.

Timeline of one endpoint (T0 = ``last_endpoint_change``)::

    T0                 T0 + 15 s                           T0 + 275 s
    |-- unknown --------|-- down (if no handshake since T0) --|-- down if no
    |   (up as soon as a handshake happens after T0)           |   handshake in
    |                                                          |   the last 275 s

A peer that is down, or that never had an endpoint applied, gets the next
endpoint of its list; a dead endpoint is therefore tried for about 15 s (the
agent re-evaluates at T0 + 15 s; Talos at its 30 s reconcile, so 15-30 s).

Pure: no I/O, no clock.  ``now`` and all times are wall-clock seconds (Unix
time), because WireGuard reports the last handshake as wall time.  Warnings
are returned as data, never logged here.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .discovery.protocol import Endpoint, IPAddress
from .filters import IPNetwork

if TYPE_CHECKING:
    from .relay import RelayState

__all__ = [
    "ENDPOINT_CONNECTION_TIMEOUT", "PEER_DOWN_INTERVAL", "ObservedPeer", "PeerSpec", "PeerState", "PeerStatus",
    "build_peer_specs", "calculate_state", "endpoint_to_push", "host_prefix", "minimal_prefixes",
    "next_state_change", "pick_next_endpoint", "status_changed", "step_status", "subtract",
]

PEER_DOWN_INTERVAL = 180.0 + 5.0 + 90.0
"""REJECT_AFTER_TIME + REKEY_TIMEOUT + REKEY_ATTEMPT_TIME = 275 s."""
ENDPOINT_CONNECTION_TIMEOUT = 15.0


class PeerState(enum.Enum):
    """Talos ``kubespan.PeerState``; the value is the text form, ``code`` the protobuf number."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"

    @property
    def code(self) -> int:
        return {"unknown": 0, "up": 1, "down": 2}[self.value]


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """``KubeSpanPeerSpecs.kubespan.talos.dev`` (ID = ``public_key``)."""

    public_key: str
    address: IPAddress | None
    allowed_ips: tuple[IPNetwork, ...]
    endpoints: tuple[Endpoint, ...]
    label: str
    node_id: str = ""
    """The affiliate this spec came from (not a Talos field; used for harvesting)."""
    relay: bool = False
    """The peer announces that it relays (our extension, ``kubespan.relay``)."""


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """``KubeSpanPeerStatuses.kubespan.talos.dev`` (ID = public key); times are Unix seconds."""

    label: str = ""
    endpoint: Endpoint | None = None
    state: PeerState = PeerState.UNKNOWN
    receive_bytes: int = 0
    transmit_bytes: int = 0
    last_handshake_time: float | None = None
    last_used_endpoint: Endpoint | None = None
    last_endpoint_change: float | None = None
    relay: RelayState | None = None
    """Our extension (``kubespan.relay``): the relay this peer is reached through, and what the relay
    decision remembers; ``None`` for a peer the decision has not seen."""


@dataclass(frozen=True, slots=True)
class ObservedPeer:
    """What WireGuard reports for one peer (manager step 1)."""

    public_key: str
    endpoint: Endpoint | None
    last_handshake: float | None
    rx_bytes: int
    tx_bytes: int
    allowed_ips: tuple[IPNetwork, ...] = ()
    persistent_keepalive: int | None = None
    """Seconds (0: off); None when not known (then never compared)."""
    relayed: bool = False
    """WireGuard sends to this peer through a relay (``endpoint`` is the relay's)."""
    probe_endpoint: Endpoint | None = None
    """The direct endpoint WireGuard probes while relayed."""


# --- the state machine ----------------------------------------------------------------------


def calculate_state(status: PeerStatus, now: float) -> PeerState:
    """The §5 state table; "down" without a last used endpoint is reported as unknown."""
    since_handshake = _since(status.last_handshake_time, now)
    since_change = _since(status.last_endpoint_change, now)
    if since_change > PEER_DOWN_INTERVAL:
        state = PeerState.UP if since_handshake < PEER_DOWN_INTERVAL else PeerState.DOWN
    elif since_change < ENDPOINT_CONNECTION_TIMEOUT:
        state = PeerState.UP if since_handshake < since_change else PeerState.UNKNOWN
    else:
        state = PeerState.UP if since_handshake < since_change else PeerState.DOWN
    if state is PeerState.DOWN and status.last_used_endpoint is None:
        state = PeerState.UNKNOWN  # no endpoint was ever applied: nothing is known to be down
    return state


def _since(when: float | None, now: float) -> float:
    return float("inf") if when is None or when <= 0 else now - when


def next_state_change(status: PeerStatus, now: float) -> float | None:
    """The next boundary of the state table, or None: until then (without a new handshake or endpoint
    change) ``calculate_state`` gives the answer it gives at ``now``; None means it always will."""
    ahead: list[float] = []
    change, handshake = status.last_endpoint_change, status.last_handshake_time
    if change is not None and change > 0:
        if change + ENDPOINT_CONNECTION_TIMEOUT > now:
            ahead.append(change + ENDPOINT_CONNECTION_TIMEOUT)
        if change + PEER_DOWN_INTERVAL >= now:  # the table moves on just after this instant
            ahead.append(change + PEER_DOWN_INTERVAL)
    if handshake is not None and handshake > 0 and handshake + PEER_DOWN_INTERVAL > now:
        ahead.append(handshake + PEER_DOWN_INTERVAL)
    return min(ahead, default=None)


def should_change_endpoint(status: PeerStatus) -> bool:
    """Rotate when the peer is down or no endpoint has been used yet."""
    return status.state is PeerState.DOWN or status.last_used_endpoint is None


def pick_next_endpoint(status: PeerStatus, endpoints: Sequence[Endpoint]) -> Endpoint | None:
    """The endpoint to try next, or ``None`` to keep the current one (Talos ``PickNewEndpoint``)."""
    if not endpoints:
        return None
    if status.last_used_endpoint is None:
        return endpoints[0]
    try:
        index = list(endpoints).index(status.last_used_endpoint)
    except ValueError:
        index = -1
    if len(endpoints) == 1 and index == 0 and status.endpoint == status.last_used_endpoint:
        return None
    return endpoints[(index + 1) % len(endpoints)]


def update_from_wireguard(status: PeerStatus, observed: ObservedPeer | None) -> PeerStatus:
    """Step 1: take the actual (possibly roamed) endpoint, handshake time and counters."""
    if observed is None:
        return status
    return dataclasses.replace(
        status,
        endpoint=observed.endpoint,
        last_handshake_time=observed.last_handshake,
        receive_bytes=observed.rx_bytes,
        transmit_bytes=observed.tx_bytes,
    )


def update_endpoint(status: PeerStatus, endpoint: Endpoint, now: float) -> PeerStatus:
    """A new endpoint: endpoint = lastUsed = new, lastEndpointChange = now, state unknown."""
    return dataclasses.replace(
        status, endpoint=endpoint, last_used_endpoint=endpoint, last_endpoint_change=now, state=PeerState.UNKNOWN
    )


def step_status(status: PeerStatus | None, spec: PeerSpec, observed: ObservedPeer | None, now: float) -> PeerStatus:
    """Manager steps 1-3 for one peer: read WireGuard, compute the state, rotate endpoints, and
    re-establish ``lastUsedEndpoint`` where WireGuard has no endpoint (or has that one)."""
    current = status or PeerStatus()
    if current.label != spec.label:
        current = dataclasses.replace(current, label=spec.label)
    current = update_from_wireguard(current, observed)
    state = calculate_state(current, now)
    if state is not current.state:
        current = dataclasses.replace(current, state=state)
    if should_change_endpoint(current):
        new = pick_next_endpoint(current, spec.endpoints)
        if new is not None:
            current = update_endpoint(current, new, now)
    if current.last_used_endpoint is not None and current.endpoint is None:
        current = dataclasses.replace(current, endpoint=current.last_used_endpoint)
    return current


def endpoint_to_push(status: PeerStatus) -> Endpoint | None:
    """The endpoint to write into WireGuard after ``step_status``, or ``None`` to keep WireGuard's.

    Talos re-pushes ``lastUsedEndpoint`` when WireGuard has no endpoint or has exactly that one
    (``step_status`` already put it into ``endpoint`` in the first case); when WireGuard roamed to
    another endpoint, that one is kept.
    """
    if status.last_used_endpoint is not None and status.endpoint == status.last_used_endpoint:
        return status.last_used_endpoint
    return None


def status_changed(old: PeerStatus | None, new: PeerStatus) -> bool:
    """Whether ``new`` differs from ``old`` in more than counters and the handshake time."""
    if old is None:
        return True
    return (old.state, old.endpoint, old.last_used_endpoint, old.last_endpoint_change, old.label, old.relay) != (
        new.state, new.endpoint, new.last_used_endpoint, new.last_endpoint_change, new.label, new.relay)


# --- prefix sets --------------------------------------------------------------------------


def host_prefix(ip: IPAddress) -> IPNetwork:
    """``ip`` as a /32 or /128."""
    return ipaddress.ip_network(ip)


def minimal_prefixes(nets: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """The minimal list of prefixes covering ``nets``: IPv4 first, each family sorted."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for n in nets:  # one pass: ``nets`` may be an iterator
        if isinstance(n, ipaddress.IPv4Network):
            v4.append(n)
        else:
            v6.append(n)
    out: list[IPNetwork] = []
    out.extend(ipaddress.collapse_addresses(v4))
    out.extend(ipaddress.collapse_addresses(v6))
    return tuple(out)


def subtract(nets: Iterable[IPNetwork], remove: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """``nets`` minus every prefix in ``remove``, as minimal prefixes."""
    current = list(minimal_prefixes(nets))
    for cut in remove:
        nxt: list[IPNetwork] = []
        for net in current:
            if net.version != cut.version or not net.overlaps(cut):
                nxt.append(net)
            elif net.subnet_of(cut):  # type: ignore[arg-type]
                continue
            else:
                nxt.extend(net.address_exclude(cut))  # type: ignore[arg-type]
        current = nxt
    return minimal_prefixes(current)


class _Taken:
    """The prefixes earlier peers got: disjoint (overlaps are cut before adding), so kept per family as
    integer ranges sorted by start, where the ranges a prefix overlaps are found by bisection."""

    def __init__(self) -> None:
        self._ranges: dict[int, list[tuple[int, int, IPNetwork]]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}

    def overlap(self, nets: Sequence[IPNetwork]) -> tuple[IPNetwork, ...]:
        """The parts of ``nets`` inside taken prefixes (for each overlapping pair, the smaller prefix)."""
        parts: list[IPNetwork] = []
        for net in nets:
            lo, hi = int(net.network_address), int(net.broadcast_address)
            ranges, ends = self._ranges[net.version], self._ends[net.version]
            i = bisect.bisect_left(ends, lo)  # the first taken range that does not end before ``net``
            while i < len(ranges) and ranges[i][0] <= hi:
                start, end, other = ranges[i]
                parts.append(net if start <= lo and hi <= end else other)
                i += 1
        return minimal_prefixes(parts)

    def add(self, nets: Iterable[IPNetwork]) -> None:
        for net in nets:
            lo, hi = int(net.network_address), int(net.broadcast_address)
            ranges, ends = self._ranges[net.version], self._ends[net.version]
            i = bisect.bisect_left(ends, hi)
            ranges.insert(i, (lo, hi, net))
            ends.insert(i, hi)


# --- PeerSpec ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpecInput:
    """The affiliate fields ``build_peer_specs`` reads (see ``affiliates.AffiliateSpec``)."""

    node_id: str
    nodename: str
    public_key: str
    address: IPAddress | None
    addresses: tuple[IPAddress, ...]
    additional_addresses: tuple[IPNetwork, ...]
    exclude_advertised_networks: tuple[IPNetwork, ...]
    endpoints: tuple[Endpoint, ...]
    relay: bool = False


@functools.lru_cache(maxsize=4096)
def _announced(additional: tuple[IPNetwork, ...], addresses: tuple[IPAddress, ...],
               exclude: tuple[IPNetwork, ...], address: IPAddress | None) -> tuple[IPNetwork, ...]:
    """An affiliate's allowed IPs before the overlap cut: its networks and addresses minus its excluded
    networks, plus its KubeSpan address.  Memoized: every reconcile asks again for every affiliate, and the
    prefix arithmetic of ``ipaddress`` is the larger part of a reconcile at 50 nodes."""
    allowed = subtract([*additional, *(host_prefix(ip) for ip in addresses)], exclude)
    if address is not None:
        allowed = minimal_prefixes([*allowed, host_prefix(address)])
    return allowed


def build_peer_specs(
    local_node_id: str, local_public_key: str, affiliates: Mapping[str, SpecInput]
) -> tuple[list[PeerSpec], list[str]]:
    """PeerSpecs in node-ID order, and the warnings (address overlaps, duplicate keys)."""
    specs: list[PeerSpec] = []
    warnings: list[str] = []
    taken = _Taken()
    keys: set[str] = {local_public_key}
    for node_id in sorted(affiliates):
        aff = affiliates[node_id]
        if node_id == local_node_id or not aff.public_key:
            continue
        if aff.public_key in keys:
            warnings.append(f"peer {aff.nodename or node_id}: public key already used by another node, skipped")
            continue
        keys.add(aff.public_key)
        allowed = _announced(aff.additional_addresses, aff.addresses, aff.exclude_advertised_networks, aff.address)
        overlap = taken.overlap(allowed)
        if overlap:
            warnings.append(
                f"peer address overlap: {aff.nodename or node_id} ({aff.public_key}) "
                f"overlaps earlier peers on {', '.join(map(str, overlap))}; removed from its allowed IPs"
            )
            allowed = subtract(allowed, overlap)
        taken.add(allowed)
        specs.append(PeerSpec(
            public_key=aff.public_key, address=aff.address, allowed_ips=allowed,
            endpoints=aff.endpoints, label=aff.nodename, node_id=node_id, relay=aff.relay,
        ))
    return specs, warnings
