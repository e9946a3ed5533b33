"""Three in-memory devices with a fake clock: A and P cannot reach each other, both reach R (wgpy.relay).

A has P at "via R" (relayed); P has A at A's direct endpoint, which is blocked, and learns the relayed path
by WireGuard's roaming when A's first relayed datagram authenticates.  R forwards ciphertext only: its TUN
never sees a packet of the pair.  Run on the pure engine and with the pure data-plane twin (``fast_tx`` off
for a relayed peer is the plane's part).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from wgsupport import Mesh

from wgpy import relayframe
from wgpy.config import DeviceUpdate, PeerUpdate
from wgpy.constants import MESSAGE_RELAY, RELAY_HEADER_SIZE, RELAY_PROBE_INTERVAL
from wgpy.dataplane import DataPlane
from wgpy.dataplane_twin import PureDataPlane
from wgpy.errors import ConfigError, DropReason
from wgpy.events import Event
from wgpy.keys import PrivateKey
from wgpy.uapi import parse_set, serialize_get

KEY = bytes(range(32))
PLANES: list[Callable[[], DataPlane[Any] | None] | None] = [None, PureDataPlane]


def trio(plane: Callable[[], DataPlane[Any] | None] | None = None, *, probe: bool = False) -> Mesh:
    m = Mesh("arp", dataplane=plane)
    for name in "arp":
        m[name].device.relay.configure(KEY, serve=name == "r")
    for x, y in (("a", "r"), ("r", "a"), ("p", "r"), ("r", "p")):
        m.connect(x, y)
    m.connect("a", "p", endpoint=m["r"].endpoint, relayed=True, probe=m["p"].endpoint if probe else None)
    m.connect("p", "a")
    m.block("a", "p")
    m.deliver()
    return m


def payloads(tun: list[bytes]) -> list[bytes]:
    return [pkt[20:] for pkt in tun]


@pytest.mark.parametrize("plane", PLANES)
def test_handshake_and_data_both_ways_through_the_relay(plane: Callable[[], DataPlane[Any] | None] | None) -> None:
    m = trio(plane)
    m.send_ip("a", "p", b"ping")
    m.deliver()
    assert payloads(m["p"].tun) == [b"ping"]
    m.send_ip("p", "a", b"pong")
    m.deliver()
    assert payloads(m["a"].tun) == [b"pong"]
    assert m["r"].tun == []  # the relay never opens the pair's packets
    assert not m.lost  # nothing went to the blocked direct path
    for me, other in (("a", "p"), ("p", "a")):
        peer = m.peer(me, other)
        assert peer.relayed and peer.endpoint == m["r"].endpoint
        assert peer.relayed_rx_bytes > 0 and peer.relayed_tx_bytes > 0
        assert peer.last_handshake_wall is not None
    stats = m["r"].device.relay.stats(m["r"].device.drops)
    assert stats.forwarded_frames == 4  # initiation, response, the ping (staged: no keepalive), the pong
    assert all(n == 0 for n in stats.drops.values())
    for name in "ap":
        assert not m[name].device.drops


@pytest.mark.parametrize("plane", PLANES)
def test_every_datagram_between_the_pair_is_a_frame_to_the_relay(
        plane: Callable[[], DataPlane[Any] | None] | None) -> None:
    m = trio(plane)
    m.send_ip("a", "p", b"x")
    m.deliver()
    m.tick(30)  # keepalives, a rekey attempt: all framed
    m.send_ip("p", "a", b"y")
    m.deliver()
    for name, other in (("a", "p"), ("p", "a")):
        to_r = [s for s in m[name].sent if s.endpoint == m["r"].endpoint and s.data[0] == MESSAGE_RELAY]
        assert to_r
        for s in to_r:
            frame = relayframe.decode(KEY, s.data)
            assert not isinstance(frame, DropReason)
            assert frame.receiver == m[other].key.public_key()
        assert all(s.endpoint != m[other].endpoint for s in m[name].sent)


@pytest.mark.parametrize("plane", PLANES)
def test_wrong_tag_is_dropped_and_counted_and_the_pair_keeps_working(
        plane: Callable[[], DataPlane[Any] | None] | None) -> None:
    m = trio(plane)
    m.send_ip("a", "p", b"one")
    assert m.wire and m.wire[0][1][0] == MESSAGE_RELAY
    dst, data, src = m.wire.pop(0)
    forged = bytearray(data)
    forged[70] ^= 1  # inside the tag
    m.wire.append((dst, bytes(forged), src))
    m.deliver()
    assert m["r"].device.drops[DropReason.RELAY_BAD_MAC] == 1
    assert m["p"].tun == []
    m.tick(6)  # A retransmits its initiation
    assert payloads(m["p"].tun) == [b"one"]


def test_frame_checks_on_delivery_and_forwarding() -> None:
    m = trio()
    a, p, r = m["a"], m["p"], m["r"]
    stranger = PrivateKey.generate(m.rng).public_key()
    payload = b"\x04\0\0\0" + bytes(40)
    for frame, dst, reason in (
        (relayframe.encode(KEY, a.key.public_key(), stranger, payload), r, DropReason.RELAY_NO_ROUTE),
        (relayframe.encode(KEY, p.key.public_key(), r.key.public_key(), payload), a, DropReason.RELAY_NOT_SERVING),
        (relayframe.encode(bytes(32), a.key.public_key(), p.key.public_key(), payload), r, DropReason.RELAY_BAD_MAC),
        (relayframe.encode(KEY, a.key.public_key(), p.key.public_key(), b"\x07\0\0\0"), r,
         DropReason.RELAY_BAD_FRAME),
        (bytes([MESSAGE_RELAY, 2, 0, 0]) + bytes(RELAY_HEADER_SIZE), r, DropReason.RELAY_BAD_FRAME),
        (relayframe.encode(KEY, r.key.public_key(), a.key.public_key(), payload), a, DropReason.UNKNOWN_INDEX),
    ):
        before = dst.device.drops[reason]
        m.collect(dst, dst.device.datagram_received(frame, ("198.51.100.9", 9), m.clock.now))
        assert dst.device.drops[reason] == before + 1, reason
    assert not m.wire
    r.device.relay.configure(None)
    m.collect(r, r.device.datagram_received(
        relayframe.encode(KEY, a.key.public_key(), p.key.public_key(), payload), a.endpoint, m.clock.now))
    assert r.device.drops[DropReason.RELAY_OFF] == 1 and not m.wire


@pytest.mark.parametrize("plane", PLANES)
def test_a_relayed_datagram_must_authenticate_as_the_frames_sender(
        plane: Callable[[], DataPlane[Any] | None] | None) -> None:
    m = trio(plane)
    m.send_ip("a", "p", b"one")
    m.deliver()
    m.send_ip("a", "p", b"two")
    dst, data, src = m.wire.pop(0)  # A's transport message, framed for P
    frame = relayframe.decode(KEY, data)
    assert not isinstance(frame, DropReason)
    # a cluster member (R) claims the payload is its own: P must not take A's packet as R's
    claimed = relayframe.encode(KEY, m["r"].key.public_key(), frame.receiver, frame.payload)
    m.collect(m["p"], m["p"].device.datagram_received(claimed, src, m.clock.now))
    assert m["p"].device.drops[DropReason.RELAY_WRONG_PEER] == 1
    assert payloads(m["p"].tun) == [b"one"]
    assert not m.peer("p", "r").relayed


def test_pairs_are_rate_limited_and_counted_at_the_relay() -> None:
    m = trio()
    m.send_ip("a", "p", b"warm")
    m.deliver()
    m["r"].device.relay.configure(KEY, serve=True, rate=4096, burst=4096)
    for _ in range(40):
        m.send_ip("a", "p", b"z" * 100)  # ~240-byte frames: the 4096-byte burst passes 17
    m.deliver()
    limited = m["r"].device.drops[DropReason.RELAY_RATE_LIMITED]
    assert limited == 40 - len(payloads(m["p"].tun)) + 1
    assert 0 < limited < 40
    m.clock.advance(1.0)
    before = len(m["p"].tun)
    m.send_ip("a", "p", b"later")
    m.deliver()
    assert len(m["p"].tun) == before + 1


@pytest.mark.parametrize("plane", PLANES)
def test_probing_moves_the_pair_back_to_the_direct_path(plane: Callable[[], DataPlane[Any] | None] | None) -> None:
    m = trio(plane, probe=True)
    m.send_ip("a", "p", b"ping")
    m.deliver()
    m.tick(3 * RELAY_PROBE_INTERVAL)
    probes = [item for item in m.lost if item[0] == m["p"].endpoint and item[1][0] == 4]
    assert len(probes) >= 2 and all(len(d) == 32 for _, d, _ in probes)  # keepalives, unframed
    assert m.peer("a", "p").relayed and m.peer("p", "a").relayed
    m.unblock("a", "p")
    m.tick(RELAY_PROBE_INTERVAL + 1)
    a_peer, p_peer = m.peer("a", "p"), m.peer("p", "a")
    assert not a_peer.relayed and a_peer.endpoint == m["p"].endpoint
    assert not p_peer.relayed and p_peer.endpoint == m["a"].endpoint
    assert a_peer.timers.relay_probe is None
    forwarded = m["r"].device.relay.forwarded_frames
    m.send_ip("a", "p", b"direct")
    m.deliver()
    m.send_ip("p", "a", b"back")
    m.deliver()
    assert payloads(m["p"].tun)[-1] == b"direct" and payloads(m["a"].tun)[-1] == b"back"
    assert m["r"].device.relay.forwarded_frames == forwarded


def test_direct_peer_roams_to_relayed_and_back_and_config_rules() -> None:
    m = trio()
    m.send_ip("a", "p", b"x")
    m.deliver()
    p_peer = m.peer("p", "a")
    assert p_peer.relayed  # P configured A direct; A's relayed initiation moved it
    # a plain endpoint (UAPI set, wg) makes the peer direct again and clears the probe endpoint
    a = m["a"]
    pub = m["p"].key.public_key()
    a.device.apply(DeviceUpdate(peers=[PeerUpdate(pub, endpoint=m["r"].endpoint, relayed=True,
                                                  probe_endpoint=("203.0.113.1", 1))]), m.clock.now)
    assert m.peer("a", "p").probe_endpoint == ("203.0.113.1", 1)
    a.device.apply(DeviceUpdate(peers=[PeerUpdate(pub, probe_endpoint=("203.0.113.2", 2))]), m.clock.now)
    assert m.peer("a", "p").probe_endpoint == ("203.0.113.2", 2) and m.peer("a", "p").relayed
    a.device.apply(DeviceUpdate(peers=[PeerUpdate(pub, endpoint=m["p"].endpoint)]), m.clock.now)
    assert not m.peer("a", "p").relayed and m.peer("a", "p").probe_endpoint is None
    with pytest.raises(ConfigError):
        PeerUpdate(pub, relayed=True)
    with pytest.raises(ConfigError):
        a.device.relay.configure(b"short")


def test_relaying_off_at_the_sender_counts_and_sends_nothing() -> None:
    m = trio()
    m["a"].device.relay.configure(None)
    m.send_ip("a", "p", b"x")
    assert not m.wire
    assert m["a"].device.drops[DropReason.RELAY_OFF] == 1


def test_probe_timer_sends_one_unframed_keepalive_per_interval() -> None:
    m = trio(probe=True)
    a, peer = m["a"].device, m.peer("a", "p")
    due = peer.timers.relay_probe
    assert due is not None  # armed by the configuration, before any session
    assert not [x for x in a.handle_timeout(due) if getattr(x, "endpoint", None) == m["p"].endpoint]
    assert peer.timers.relay_probe == due + RELAY_PROBE_INTERVAL  # no keypair yet: nothing sent, re-armed
    m.send_ip("a", "p", b"x")
    m.deliver()
    due = peer.timers.relay_probe
    assert due is not None
    assert a.next_deadline() is not None and a.next_deadline() <= due
    early = a.handle_timeout(due - 0.001)
    assert not [x for x in early if getattr(x, "endpoint", None) == m["p"].endpoint]
    probes = [x for x in a.handle_timeout(due) if getattr(x, "endpoint", None) == m["p"].endpoint]
    assert len(probes) == 1 and probes[0].data[0] == 4 and len(probes[0].data) == 32
    assert peer.timers.relay_probe == due + RELAY_PROBE_INTERVAL
    assert a.relay.probes_sent == 1


def test_uapi_shows_the_relay_address_and_a_plain_uapi_endpoint_makes_the_peer_direct() -> None:
    m = trio()
    a = m["a"]
    body = serialize_get(a.device)
    host, port = m["r"].endpoint
    pub_hex = m["p"].key.public_key().raw.hex()
    section = body.split(f"public_key={pub_hex}\n", 1)[1].split("public_key=", 1)[0]
    assert f"endpoint={host}:{port}\n" in section  # wg keeps working: the relay's address
    update = parse_set([f"public_key={pub_hex}", f"endpoint={m['p'].endpoint[0]}:{m['p'].endpoint[1]}"],
                       a.device.public_key)
    a.device.apply(update, m.clock.now)
    peer = m.peer("a", "p")
    assert not peer.relayed and peer.endpoint == m["p"].endpoint


def test_under_load_the_cookie_reply_goes_back_framed_through_the_relay() -> None:
    m = trio()
    p = m["p"].device
    p._under_load_until = m.clock.now + 60  # as after a flood: mac2 required
    m.send_ip("a", "p", b"x")
    m.deliver()
    assert p.drops[DropReason.COOKIE_SENT] == 1
    replies = []
    for s in m["p"].sent:
        frame = relayframe.decode(KEY, s.data)
        if not isinstance(frame, DropReason) and frame.payload[0] == 3:
            replies.append(s)
    assert len(replies) == 1 and replies[0].endpoint == m["r"].endpoint
    assert m["a"].device.events[Event.COOKIE_REPLY_RECEIVED] == 1
    m.tick(6)  # A retries with a valid mac2
    assert payloads(m["p"].tun) == [b"x"]


def test_path_changes_are_events() -> None:
    m = trio(probe=True)
    seen: list[tuple[str, Event]] = []
    for name in "ap":
        m[name].device.on_event = (lambda n: lambda ev, peer, ep: seen.append((n, ev)))(name)
    m.send_ip("a", "p", b"x")
    m.deliver()
    assert ("p", Event.PATH_RELAYED) in seen and ("a", Event.PATH_RELAYED) not in seen  # A was set relayed
    m.unblock("a", "p")
    m.tick(RELAY_PROBE_INTERVAL + 1)
    assert ("p", Event.PATH_DIRECT) in seen and ("a", Event.PATH_DIRECT) in seen
    assert m["p"].device.events[Event.PATH_DIRECT] == 1


@pytest.mark.parametrize("plane", PLANES)
def test_either_side_may_initiate_when_both_are_told_the_relay(
        plane: Callable[[], DataPlane[Any] | None] | None) -> None:
    m = trio(plane)
    m.connect("p", "a", endpoint=m["r"].endpoint, relayed=True)
    m.send_ip("p", "a", b"from-p")
    m.deliver()
    assert payloads(m["a"].tun) == [b"from-p"]
    assert m["a"].device.events[Event.INITIATION_RECEIVED] == 1 and m["p"].device.events[Event.INITIATION_SENT] == 1
    m.send_ip("a", "p", b"from-a")
    m.deliver()
    assert payloads(m["p"].tun) == [b"from-a"] and not m.lost and m["r"].tun == []
