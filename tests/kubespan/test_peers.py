"""kubespan.peers: the §5 state table, endpoint rotation, re-push rule and PeerSpec building.

The state-table and rotation cases marked "Talos" are the cases of siderolabs/talos
internal/app/machined/pkg/adapters/kubespan/peer_status_test.go (TestPeerStatus_CalculateState,
TestPeerStatus_PickNewEndpoint), with the same inputs and expected states; the re-push cases follow the
"re-establish the endpoint" rule of internal/app/machined/pkg/controllers/kubespan/manager.go (both
checked against Talos at ad88231, 2026-08-21: lastUsedEndpoint decides "down" vs "unknown", the
single-endpoint no-rotate case compares WireGuard's endpoint with it, and it is re-pushed when WireGuard
has no endpoint or has that one).  The boundaries ``next_state_change`` reports are property-tested
against ``calculate_state``.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubespan.discovery.protocol import Endpoint
from kubespan.peers import (
    ENDPOINT_CONNECTION_TIMEOUT, PEER_DOWN_INTERVAL, ObservedPeer, PeerSpec, PeerState, PeerStatus,
    build_peer_specs, calculate_state, endpoint_to_push, next_state_change, pick_next_endpoint, status_changed,
    step_status, subtract, update_endpoint,
)
from kubespan.peers import SpecInput

T0 = 1_700_000_000.0
E1 = Endpoint(ipaddress.ip_address("192.0.2.1"), 51820)
E2 = Endpoint(ipaddress.ip_address("192.0.2.2"), 51820)
E3 = Endpoint(ipaddress.ip_address("2001:db8::3"), 51820)
ROAMED = Endpoint(ipaddress.ip_address("198.51.100.7"), 40001)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


# --- the state table ---------------------------------------------------------------------

# (seconds since the endpoint change, seconds since the last handshake or None, expected)
STATE_TABLE = [
    # tChange > 275 s
    (PEER_DOWN_INTERVAL + 10, 10.0, PeerState.UP),            # handshake within 275 s
    (PEER_DOWN_INTERVAL + 10, PEER_DOWN_INTERVAL + 1, PeerState.DOWN),  # none within 275 s
    (PEER_DOWN_INTERVAL + 10, None, PeerState.DOWN),
    # tChange < 15 s
    (5.0, 2.0, PeerState.UP),                                   # handshake after the change
    (5.0, 8.0, PeerState.UNKNOWN),                              # handshake before the change only
    (5.0, None, PeerState.UNKNOWN),                             # no handshake at all
    # 15 s <= tChange <= 275 s
    (100.0, 50.0, PeerState.UP),
    (100.0, 150.0, PeerState.DOWN),
    (ENDPOINT_CONNECTION_TIMEOUT, None, PeerState.DOWN),        # boundary: 15 s is already "down"
    (PEER_DOWN_INTERVAL, None, PeerState.DOWN),                  # boundary: 275 s
]


HOUR = 3600.0
# Talos peer_status_test.go TestPeerStatus_CalculateState: (name, since the last handshake, since the
# endpoint change, lastUsedEndpoint set, expected).  Talos sets only LastUsedEndpoint, not Endpoint.
TALOS_STATE_TABLE = [
    ("no endpoint set", HOUR, HOUR, False, PeerState.UNKNOWN),
    ("peer is down", 2 * PEER_DOWN_INTERVAL, 2 * PEER_DOWN_INTERVAL, True, PeerState.DOWN),
    ("fresh peer, no handshake", 2 * PEER_DOWN_INTERVAL, ENDPOINT_CONNECTION_TIMEOUT / 2, True, PeerState.UNKNOWN),
    ("fresh peer, with handshake", 0.0, ENDPOINT_CONNECTION_TIMEOUT / 2, True, PeerState.UP),
    ("peer after initial timeout, with handshake", 0.0, ENDPOINT_CONNECTION_TIMEOUT + 1, True, PeerState.UP),
    ("peer after initial timeout, no handshake", 2 * ENDPOINT_CONNECTION_TIMEOUT, ENDPOINT_CONNECTION_TIMEOUT + 1,
     True, PeerState.DOWN),
    ("established peer, up", PEER_DOWN_INTERVAL / 2, PEER_DOWN_INTERVAL + 1, True, PeerState.UP),
]


@pytest.mark.parametrize(("name", "since_handshake", "since_change", "last_used", "expected"), TALOS_STATE_TABLE,
                         ids=[row[0] for row in TALOS_STATE_TABLE])
def test_talos_state_table(name: str, since_handshake: float, since_change: float, last_used: bool,
                           expected: PeerState) -> None:
    # "since 0 s" is a handshake at this very instant; Talos compares LastHandshakeTime.After(change)
    status = PeerStatus(last_used_endpoint=Endpoint(ipaddress.ip_address("192.168.1.1"), 10000) if last_used else None,
                        last_handshake_time=T0 - since_handshake, last_endpoint_change=T0 - since_change)
    assert calculate_state(status, T0) is expected


def test_down_follows_last_used_endpoint_not_the_wireguard_endpoint() -> None:
    # WireGuard lost (or never had) the endpoint, but one was applied: the peer is down, not unknown
    down = PeerStatus(endpoint=None, last_used_endpoint=E1, last_endpoint_change=T0 - 100)
    assert calculate_state(down, T0) is PeerState.DOWN
    # WireGuard learned an endpoint by itself (the peer roamed in) but we never applied one: unknown
    roamed_in = PeerStatus(endpoint=ROAMED, last_used_endpoint=None, last_endpoint_change=T0 - 100)
    assert calculate_state(roamed_in, T0) is PeerState.UNKNOWN


@pytest.mark.parametrize(("since_change", "since_handshake", "expected"), STATE_TABLE)
def test_state_table(since_change: float, since_handshake: float | None, expected: PeerState) -> None:
    clock = FakeClock()
    status = PeerStatus(
        endpoint=E1, last_used_endpoint=E1, last_endpoint_change=clock.now - since_change,
        last_handshake_time=None if since_handshake is None else clock.now - since_handshake,
    )
    assert calculate_state(status, clock.now) is expected


def test_never_changed_endpoint_counts_as_long_ago() -> None:
    status = PeerStatus(endpoint=E1, last_used_endpoint=E1, last_handshake_time=T0 - 1)
    assert calculate_state(status, T0) is PeerState.UP
    assert calculate_state(PeerStatus(endpoint=E1, last_used_endpoint=E1), T0) is PeerState.DOWN


def test_down_without_last_used_endpoint_is_unknown() -> None:
    status = PeerStatus(endpoint=None, last_endpoint_change=T0 - 100)
    assert calculate_state(status, T0) is PeerState.UNKNOWN
    assert calculate_state(PeerStatus(), T0) is PeerState.UNKNOWN


# --- when the state can next change on its own (the agent's timer instead of a poll) ----------------

_OFFSETS = st.one_of(st.none(), st.floats(-2 * PEER_DOWN_INTERVAL, 2 * PEER_DOWN_INTERVAL),
                     st.sampled_from([0.0, -ENDPOINT_CONNECTION_TIMEOUT, -PEER_DOWN_INTERVAL]))


@settings(max_examples=300, deadline=None)
@given(change=_OFFSETS, handshake=_OFFSETS, last_used=st.booleans(),
       probes=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=8))
def test_state_holds_until_next_state_change(change: float | None, handshake: float | None, last_used: bool,
                                             probes: list[float]) -> None:
    status = PeerStatus(last_used_endpoint=E1 if last_used else None,
                        last_endpoint_change=None if change is None else T0 + change,
                        last_handshake_time=None if handshake is None else T0 + handshake)
    state = calculate_state(status, T0)
    deadline = next_state_change(status, T0)
    assert deadline is None or deadline >= T0
    horizon = (deadline if deadline is not None else T0 + 4 * PEER_DOWN_INTERVAL) - T0
    for fraction in probes:  # anywhere in [now, deadline): the same answer, so no pass is needed before it
        when = T0 + fraction * horizon
        if deadline is None or when < deadline:  # (the float sum may round up onto the deadline)
            assert calculate_state(status, when) is state


def test_next_state_change_is_each_boundary_of_the_table() -> None:
    fresh = PeerStatus(last_used_endpoint=E1, last_endpoint_change=T0 - 5)
    assert next_state_change(fresh, T0) == T0 - 5 + ENDPOINT_CONNECTION_TIMEOUT  # unknown -> down
    assert calculate_state(fresh, T0 + 10) is PeerState.DOWN
    waiting = PeerStatus(last_used_endpoint=E1, last_endpoint_change=T0 - 100, last_handshake_time=T0 - 50)
    assert next_state_change(waiting, T0) == T0 - 100 + PEER_DOWN_INTERVAL  # then the 275 s rule
    established = PeerStatus(last_used_endpoint=E1, last_endpoint_change=T0 - 1000, last_handshake_time=T0 - 100)
    assert next_state_change(established, T0) == T0 - 100 + PEER_DOWN_INTERVAL  # up -> down without handshakes
    assert calculate_state(established, T0 + PEER_DOWN_INTERVAL - 100) is PeerState.DOWN
    assert next_state_change(PeerStatus(), T0) is None  # nothing ever applied, nothing heard: stays unknown
    gone = PeerStatus(last_used_endpoint=E1, last_endpoint_change=T0 - 1000, last_handshake_time=T0 - 500)
    assert next_state_change(gone, T0) is None and calculate_state(gone, T0) is PeerState.DOWN


def test_state_codes_and_text() -> None:
    assert [(s.value, s.code) for s in PeerState] == [("unknown", 0), ("up", 1), ("down", 2)]


# --- rotation ------------------------------------------------------------------------------


def test_talos_pick_new_endpoint_sequence() -> None:
    # Talos peer_status_test.go TestPeerStatus_PickNewEndpoint, step by step
    a, b = Endpoint(ipaddress.ip_address("10.3.4.5"), 10500), Endpoint(ipaddress.ip_address("192.168.3.8"), 457)
    status = PeerStatus()
    assert pick_next_endpoint(status, []) is None          # no endpoint => no way to pick one
    steps = [([a, b], a), ([a, b], b), ([a, b], a), ([a], None), ([b], b)]
    for endpoints, want in steps:
        got = pick_next_endpoint(status, endpoints)
        assert got == want, (endpoints, status)
        if got is not None:
            status = update_endpoint(status, got, T0)
    c, d = Endpoint(ipaddress.ip_address("10.3.4.5"), 10501), Endpoint(ipaddress.ip_address("192.168.3.8"), 458)
    assert pick_next_endpoint(status, [c, d]) == c          # a new list: start at its first endpoint


def test_pick_first_endpoint_when_none_used() -> None:
    assert pick_next_endpoint(PeerStatus(), [E1, E2]) == E1
    assert pick_next_endpoint(PeerStatus(), []) is None


def test_pick_next_wraps_around() -> None:
    assert pick_next_endpoint(PeerStatus(endpoint=E1, last_used_endpoint=E1), [E1, E2, E3]) == E2
    assert pick_next_endpoint(PeerStatus(endpoint=E3, last_used_endpoint=E3), [E1, E2, E3]) == E1


def test_pick_when_last_used_disappeared_starts_over() -> None:
    assert pick_next_endpoint(PeerStatus(endpoint=E3, last_used_endpoint=E3), [E1, E2]) == E1


def test_single_endpoint_equal_to_current_is_not_reapplied() -> None:
    assert pick_next_endpoint(PeerStatus(endpoint=E1, last_used_endpoint=E1), [E1]) is None
    # but when WireGuard roamed away from it, the single endpoint is re-applied
    assert pick_next_endpoint(PeerStatus(endpoint=ROAMED, last_used_endpoint=E1), [E1]) == E1


def spec(endpoints: tuple[Endpoint, ...] = (E1, E2), label: str = "node-b") -> PeerSpec:
    return PeerSpec(public_key="key-b", address=ipaddress.ip_address("fd00::b"), allowed_ips=(net("fd00::b/128"),),
                    endpoints=endpoints, label=label, node_id="b")


def observed(endpoint: Endpoint | None, handshake: float | None = None) -> ObservedPeer:
    return ObservedPeer("key-b", endpoint, handshake, 10, 20)


def test_rotation_over_time_with_fake_clock() -> None:
    """A dead endpoint is tried until the peer is down (>= 15 s), then the next one."""
    clock = FakeClock()
    s = step_status(None, spec(), None, clock.now)
    assert (s.endpoint, s.last_used_endpoint, s.state, s.last_endpoint_change) == (E1, E1, PeerState.UNKNOWN, T0)
    assert s.label == "node-b"
    clock.advance(10)
    s = step_status(s, spec(), observed(E1), clock.now)  # < 15 s, no handshake: keep waiting
    assert (s.endpoint, s.state) == (E1, PeerState.UNKNOWN)
    clock.advance(20)
    s = step_status(s, spec(), observed(E1), clock.now)  # 30 s, still no handshake: down, rotate
    assert (s.endpoint, s.last_used_endpoint, s.state) == (E2, E2, PeerState.UNKNOWN)
    assert s.last_endpoint_change == clock.now
    clock.advance(5)
    s = step_status(s, spec(), observed(E2, handshake=clock.now - 1), clock.now)
    assert (s.endpoint, s.state) == (E2, PeerState.UP)
    assert (s.receive_bytes, s.transmit_bytes, s.last_handshake_time) == (10, 20, clock.now - 1)


def test_up_peer_keeps_endpoint_after_275_s_with_fresh_handshakes() -> None:
    clock = FakeClock()
    s = step_status(None, spec(), None, clock.now)
    clock.advance(PEER_DOWN_INTERVAL + 100)
    s = step_status(s, spec(), observed(E1, handshake=clock.now - 100), clock.now)
    assert (s.state, s.endpoint) == (PeerState.UP, E1)
    clock.advance(PEER_DOWN_INTERVAL)
    s = step_status(s, spec(), observed(E1, handshake=clock.now - PEER_DOWN_INTERVAL - 1), clock.now)
    assert s.state is PeerState.UNKNOWN and s.endpoint == E2  # went down, rotated


def test_peer_without_endpoints_stays_unknown() -> None:
    s = step_status(None, spec(endpoints=()), None, T0)
    assert (s.state, s.endpoint, s.last_used_endpoint) == (PeerState.UNKNOWN, None, None)
    s = step_status(s, spec(endpoints=()), observed(None), T0 + 1000)
    assert s.state is PeerState.UNKNOWN


# --- re-push rule and roaming ------------------------------------------------------------------


def test_repush_when_device_has_no_endpoint() -> None:
    # Talos manager.go: WireGuard has no endpoint (e.g. it was reset) -> lastUsedEndpoint goes back in,
    # and the status shows it as the endpoint
    clock = FakeClock()
    s = step_status(None, spec(), None, clock.now)
    clock.advance(5)
    s = step_status(s, spec(), observed(None), clock.now)
    assert (s.endpoint, s.last_used_endpoint, s.state) == (E1, E1, PeerState.UNKNOWN)
    assert endpoint_to_push(s) == E1


def test_repush_when_device_endpoint_is_last_used() -> None:
    s = step_status(PeerStatus(endpoint=E1, last_used_endpoint=E1, last_endpoint_change=T0 - 5), spec(),
                    observed(E1, handshake=T0 - 1), T0)
    assert s.state is PeerState.UP and endpoint_to_push(s) == E1


def test_roamed_endpoint_is_kept() -> None:
    clock = FakeClock()
    s = step_status(None, spec(), None, clock.now)
    clock.advance(5)
    seen = observed(ROAMED, handshake=clock.now - 1)
    s = step_status(s, spec(), seen, clock.now)
    assert (s.endpoint, s.last_used_endpoint, s.state) == (ROAMED, E1, PeerState.UP)
    assert endpoint_to_push(s) is None  # keep WireGuard's roamed endpoint


def test_no_endpoint_to_push_without_endpoint() -> None:
    assert endpoint_to_push(PeerStatus()) is None
    assert endpoint_to_push(step_status(None, spec(endpoints=()), observed(ROAMED), T0)) is None


def test_status_changed_ignores_counters_and_handshake_times() -> None:
    s = step_status(None, spec(), None, T0)
    assert status_changed(None, s)
    later = step_status(s, spec(), observed(E1), T0 + 1)   # counters and handshake time only
    assert not status_changed(s, later)
    up = step_status(later, spec(), observed(E1, handshake=T0 + 1.5), T0 + 2)
    assert up.state is PeerState.UP and status_changed(later, up)
    rotated = step_status(later, spec(), observed(E1), T0 + 30)  # down at 15 s: next endpoint
    assert rotated.last_used_endpoint == E2 and status_changed(later, rotated)


# --- PeerSpec --------------------------------------------------------------------------------


def aff(node_id: str, key: str, n: int, **kw: object) -> SpecInput:
    base: dict[str, object] = dict(
        node_id=node_id, nodename=f"node-{node_id}", public_key=key,
        address=ipaddress.ip_address(f"fd00::{n}"),
        addresses=(ipaddress.ip_address(f"10.0.0.{n}"),),
        additional_addresses=(), exclude_advertised_networks=(), endpoints=(E1,),
    )
    base.update(kw)
    return SpecInput(**base)  # type: ignore[arg-type]


def test_peer_spec_basic_fields_and_order() -> None:
    affs = {"c": aff("c", "key-c", 3), "b": aff("b", "key-b", 2), "a": aff("a", "key-a", 1)}
    specs, warnings = build_peer_specs("a", "key-a", affs)
    assert warnings == []
    assert [s.public_key for s in specs] == ["key-b", "key-c"]  # local node skipped, ID order
    b = specs[0]
    assert b.label == "node-b" and b.node_id == "b" and b.endpoints == (E1,)
    assert b.address == ipaddress.ip_address("fd00::2")
    assert b.allowed_ips == (net("10.0.0.2/32"), net("fd00::2/128"))


def test_peer_spec_skips_affiliates_without_key() -> None:
    specs, _ = build_peer_specs("x", "key-x", {"b": aff("b", "", 2)})
    assert specs == []


def test_peer_spec_minimal_prefixes_union() -> None:
    a = aff("b", "key-b", 2, addresses=(ipaddress.ip_address("10.244.1.7"), ipaddress.ip_address("10.0.0.2")),
            additional_addresses=(net("10.244.1.0/24"), net("10.244.0.0/24")))
    specs, _ = build_peer_specs("x", "key-x", {"b": a})
    assert specs[0].allowed_ips == (net("10.0.0.2/32"), net("10.244.0.0/23"), net("fd00::2/128"))


def test_peer_spec_exclusions_subtracted_but_kubespan_ip_always_present() -> None:
    a = aff("b", "key-b", 2, additional_addresses=(net("10.244.0.0/23"),),
            exclude_advertised_networks=(net("10.244.1.0/24"), net("10.0.0.0/24"), net("fd00::/64")))
    specs, _ = build_peer_specs("x", "key-x", {"b": a})
    assert specs[0].allowed_ips == (net("10.244.0.0/24"), net("fd00::2/128"))


def test_peer_spec_overlap_first_wins_with_warning() -> None:
    b = aff("b", "key-b", 2, additional_addresses=(net("10.244.0.0/16"),))
    c = aff("c", "key-c", 3, addresses=(ipaddress.ip_address("10.244.5.5"),),
            additional_addresses=(net("10.244.5.0/24"), net("10.245.0.0/24")))
    specs, warnings = build_peer_specs("x", "key-x", {"c": c, "b": b})
    assert [s.public_key for s in specs] == ["key-b", "key-c"]
    assert specs[0].allowed_ips == (net("10.0.0.2/32"), net("10.244.0.0/16"), net("fd00::2/128"))
    assert specs[1].allowed_ips == (net("10.245.0.0/24"), net("fd00::3/128"))
    assert len(warnings) == 1 and "peer address overlap" in warnings[0] and "10.244.5.0/24" in warnings[0]


_PREFIX = st.builds(lambda addr, length: ipaddress.ip_network((addr, length), strict=False),
                    st.integers(0x0A000000, 0x0A0000FF), st.integers(24, 32))


@settings(max_examples=200, deadline=None)
@given(nets=st.lists(st.lists(_PREFIX, max_size=4), min_size=1, max_size=8))
def test_peer_spec_overlaps_first_come_wins_disjoint(nets: list[list[ipaddress.IPv4Network]]) -> None:
    affs = {f"n{i}": aff(f"n{i}", f"key-{i}", i + 1, address=None, addresses=(), additional_addresses=tuple(ns))
            for i, ns in enumerate(nets)}
    specs, _ = build_peer_specs("x", "key-x", affs)
    got = {s.node_id: s.allowed_ips for s in specs}
    claimed: list[tuple[str, ipaddress.IPv4Network]] = [(nid, n) for nid, ns in got.items() for n in ns]
    for i, (a_id, a) in enumerate(claimed):  # nobody's prefixes overlap another's
        assert not any(a.overlaps(b) for b_id, b in claimed[i + 1:] if b_id != a_id)
    for node_id in sorted(affs):  # every input address belongs to the first node (in node-ID order) that has it
        for prefix in affs[node_id].additional_addresses:
            for ip in (prefix.network_address, prefix.broadcast_address):
                owner = next(nid for nid in sorted(affs) if any(ip in p for p in affs[nid].additional_addresses))
                assert any(ip in p for p in got[owner]), (ip, owner, got)


def test_peer_spec_duplicate_public_key_skipped() -> None:
    specs, warnings = build_peer_specs("x", "key-x", {"b": aff("b", "key-b", 2), "c": aff("c", "key-b", 3)})
    assert [s.node_id for s in specs] == ["b"]
    assert len(warnings) == 1


def test_subtract_splits_prefixes() -> None:
    assert subtract([net("10.0.0.0/30")], [net("10.0.0.1/32")]) == (net("10.0.0.0/32"), net("10.0.0.2/31"))
    assert subtract([net("10.0.0.0/24")], [net("0.0.0.0/0")]) == ()
    assert subtract([net("10.0.0.0/24")], [net("::/0")]) == (net("10.0.0.0/24"),)
