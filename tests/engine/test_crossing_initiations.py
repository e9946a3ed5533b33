"""Crossing initiations: a response sent after our own initiation must not cancel its retransmit.

Both peers of a new KubeSpan pair add each other at about the same time and each sends an initiation
at once (persistent keepalive).  When the two cross on a slow link, each side answers the other's
initiation, the answers find the other side past its own initiation and are dropped, and neither
session is confirmed.  Sending the response also starts the 5 s handshake rate limit, so the
retransmit of our initiation that falls inside it must be deferred by another REKEY_TIMEOUT, not lost
until the next persistent keepalive (25 s later).  Deferred from its own deadline, not from the
response: the peer's retransmit, if it was not held back, then finds us not initiating.
"""

from __future__ import annotations

from wgsupport import DevicePair, Node

from wgpy.constants import REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX
from wgpy.events import Event

MESSAGE_INITIATION, MESSAGE_RESPONSE = 1, 2
KEEPALIVE = 25
STEP = 0.01


def test_retransmit_inside_the_rate_limit_of_a_response_is_deferred_not_lost() -> None:
    p = DevicePair(keepalive_a=KEEPALIVE)
    start = p.clock.now
    assert [d[0] for _, d, _ in p.wire] == [MESSAGE_INITIATION]
    p.wire.clear()  # a's first initiation is lost (b had not added a yet)
    p.clock.advance(REKEY_TIMEOUT_JITTER_MAX + 0.1)
    p.send_ip(p.b, b"from b")  # b initiates; a answers it, but the answer is lost
    (dst, data, src), = p.wire
    p.wire.clear()
    p.collect(p.a, p.a.device.datagram_received(data, src, p.clock.now))
    assert [d[0] for _, d, _ in p.wire] == [MESSAGE_RESPONSE]
    p.wire.clear()
    responded = p.clock.now
    sent = p.a.device.events[Event.INITIATION_SENT]
    retried_at = None
    for _ in range(int((2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX) + 1) / STEP)):
        p.clock.advance(STEP)
        p.collect(p.a, p.a.device.handle_timeout(p.clock.now))  # b stays silent meanwhile
        if p.a.device.events[Event.INITIATION_SENT] > sent:
            retried_at = p.clock.now
            break
    assert retried_at is not None, "a's retransmit was lost"
    assert retried_at - responded >= REKEY_TIMEOUT  # the rate limit holds
    assert retried_at - start <= 2 * (REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX) + STEP  # one period late
    p.deliver()
    assert p.peer_of(p.a).last_handshake_wall is not None
    assert p.peer_of(p.b).last_handshake_wall is not None


def _run_delayed_link(p: DevicePair, delay: float, seconds: float) -> dict[str, float]:
    """Drive both devices with every datagram arriving ``delay`` s after it was sent; returns when
    each side first had a confirmed session (seconds from the start)."""
    start = p.clock.now
    in_flight: list[tuple[float, Node, bytes, tuple[str, int]]] = []
    up: dict[str, float] = {}
    for _ in range(int(seconds / STEP)):
        in_flight += [(p.clock.now + delay, dst, data, src) for dst, data, src in p.wire]
        p.wire.clear()
        p.clock.advance(STEP)
        due = [m for m in in_flight if m[0] <= p.clock.now]
        in_flight = [m for m in in_flight if m[0] > p.clock.now]
        for _, dst, data, src in due:
            p.collect(dst, dst.device.datagram_received(data, src, p.clock.now))
        for node in (p.a, p.b):
            p.collect(node, node.device.handle_timeout(p.clock.now))
            if node.name not in up and p.peer_of(node).last_handshake_wall is not None:
                up[node.name] = p.clock.now - start
        if len(up) == 2:
            break
    return up


def test_crossing_initiations_on_a_slow_link_meet_before_the_persistent_keepalive() -> None:
    delay = 0.15  # half the jitter range: a loaded machine's handshake latency
    for seed in range(1, 12):
        p = DevicePair(seed=seed, keepalive_a=KEEPALIVE, keepalive_b=KEEPALIVE)
        assert [d[0] for _, d, _ in p.wire] == [MESSAGE_INITIATION, MESSAGE_INITIATION]  # both in flight
        up = _run_delayed_link(p, delay, KEEPALIVE + 10)
        assert set(up) == {"a", "b"}, (seed, up)
        assert max(up.values()) < KEEPALIVE, (seed, up)
