"""Crossing initiations give a session at once (``Handshake.crossed``).

When both sides initiate at the same moment, each accepts the other's initiation and answers it.
wireguard-go and the kernel discard their own initiation there, so both answers are dropped and the
pair waits for a retransmit (REKEY_TIMEOUT).  wgpy keeps its initiation aside until the answer to
it arrives: each answer then completes a session, and data flows both ways without a retransmit.
"""

from __future__ import annotations

from wgsupport import DevicePair

from wgpy.errors import DropReason
from wgpy.events import Event

MESSAGE_INITIATION, MESSAGE_RESPONSE = 1, 2
KEEPALIVE = 25


def _cross(p: DevicePair) -> list[tuple[object, bytes, tuple[str, int]]]:
    """Deliver the two initiations in flight to each other at once; return the two answers."""
    assert sorted(d[0] for _, d, _ in p.wire) == [MESSAGE_INITIATION, MESSAGE_INITIATION]
    crossing = list(p.wire)
    p.wire.clear()
    for dst, data, src in crossing:
        p.collect(dst, dst.device.datagram_received(data, src, p.clock.now))
    answers = list(p.wire)
    assert sorted(d[0] for _, d, _ in answers) == [MESSAGE_RESPONSE, MESSAGE_RESPONSE]
    return answers  # type: ignore[return-value]


def test_crossing_initiations_give_a_session_without_a_retransmit() -> None:
    for seed in range(1, 6):
        p = DevicePair(seed=seed, keepalive_a=KEEPALIVE, keepalive_b=KEEPALIVE)
        _cross(p)
        p.deliver()
        for node in (p.a, p.b):
            assert p.peer_of(node).last_handshake_wall is not None, (seed, node.name)
            assert node.device.events[Event.INITIATION_SENT] == 1, (seed, node.name)  # no retransmit
            assert node.device.drops[DropReason.UNKNOWN_INDEX] == 0, (seed, node.name)
            assert len(node.device.indices) <= 4
        p.send_ip(p.a, b"a to b")
        p.send_ip(p.b, b"b to a")
        p.deliver()
        assert p.b.tun and p.b.tun[-1].endswith(b"a to b"), seed
        assert p.a.tun and p.a.tun[-1].endswith(b"b to a"), seed


def test_a_forged_answer_to_the_crossed_initiation_leaves_it_waiting_for_the_real_one() -> None:
    p = DevicePair(seed=7, keepalive_a=KEEPALIVE, keepalive_b=KEEPALIVE)
    answers = _cross(p)
    p.wire.clear()
    (to_a,) = [m for m in answers if m[0] is p.a]
    (to_b,) = [m for m in answers if m[0] is p.b]
    crossed = p.peer_of(p.a).handshake.crossed
    assert crossed is not None
    forged = bytearray(to_a[1])
    forged[12 + 5] ^= 0x40  # the responder's ephemeral: the AEAD cannot open
    forged[60:92] = bytes(32)  # macs recomputed below, so only the Noise part is wrong
    forged_msg = p.peer_of(p.b).cookie_generator.add_macs(bytes(forged), p.clock.now)
    before = sum(p.a.device.drops.values())
    p.collect(p.a, p.a.device.datagram_received(forged_msg, p.b.endpoint, p.clock.now))
    assert sum(p.a.device.drops.values()) == before + 1  # a counted drop
    assert p.peer_of(p.a).handshake.crossed is crossed  # still there for the real answer
    assert p.a.device.indices.get(crossed.local_index) is p.peer_of(p.a)
    p.collect(p.a, p.a.device.datagram_received(to_a[1], to_a[2], p.clock.now))
    p.collect(p.b, p.b.device.datagram_received(to_b[1], to_b[2], p.clock.now))
    p.deliver()
    assert p.peer_of(p.a).handshake.crossed is None
    assert p.peer_of(p.a).last_handshake_wall is not None
    assert p.peer_of(p.b).last_handshake_wall is not None


def test_our_next_initiation_forgets_the_crossed_one_and_its_index() -> None:
    p = DevicePair(seed=9, keepalive_a=KEEPALIVE, keepalive_b=KEEPALIVE)
    _cross(p)
    p.wire.clear()  # both answers lost
    crossed = p.peer_of(p.a).handshake.crossed
    assert crossed is not None
    p.tick(2 * 5.0 + 1.5, step=0.25)  # a's retransmit (deferred past the response's rate limit)
    hs = p.peer_of(p.a).handshake
    assert hs.crossed is None or hs.crossed.local_index != crossed.local_index
    assert p.a.device.indices.get(crossed.local_index) is None
    assert p.peer_of(p.a).last_handshake_wall is not None  # the retransmit completed a session
