"""The engine under handshake floods (wireguard.md §4), with in-memory peers and fake clocks.

Junk never reaches the queue (mac1 first, a counted drop); the queue is
drained by the injected clock, not by a count; a queue at
UNDER_LOAD_QUEUE_LEN puts the device under load; cookie replies are limited
per source; a real peer gets through a valid-mac1 flood via its cookie.
"""

from __future__ import annotations

import os

from wgsupport import DevicePair

from wgpy.constants import RATELIMIT_BURST, UNDER_LOAD_QUEUE_LEN
from wgpy.device import HANDSHAKE_TIME_BUDGET, SendDatagram
from wgpy.errors import DropReason


class StepClock:
    """A monotonic clock that moves ``step`` seconds on every read."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.t += self.step
        return self.t


def _first_initiation(p: DevicePair) -> tuple[bytes, tuple[str, int]]:
    p.send_ip(p.a, b"x")
    _, init, src = p.wire.pop(0)
    return init, src


def test_junk_initiations_are_invalid_mac1_drops_never_queued() -> None:
    p = DevicePair()
    b = p.b.device
    junk = [(b"\x01\0\0\0" + os.urandom(144), ("198.51.100.9", 1000 + i)) for i in range(3000)]
    assert b.datagrams_received(junk, p.clock.now) == []
    assert b.handshake_queue_length == 0 and not b.under_load(p.clock.now)
    assert b.drops == {DropReason.INVALID_MAC1: 3000}
    # a real initiation right after the flood is answered at once
    init, src = _first_initiation(p)
    out = b.datagrams_received([(init, src)], p.clock.now)
    assert [o.data[0] for o in out if isinstance(o, SendDatagram)] == [2]


def test_queue_is_drained_by_time_not_by_count() -> None:
    p = DevicePair()
    init, _ = _first_initiation(p)
    b = p.b.device
    per_message = HANDSHAKE_TIME_BUDGET / 10 * 1.0001
    b.clock = StepClock(per_message)  # every read costs a tenth of the budget
    b.datagrams_received([(init, ("198.51.100.%d" % (i % 250 + 1), 2000 + i)) for i in range(100)], p.clock.now)
    assert b.handshake_queue_length == 90  # ten messages fit in one call's budget
    b.clock = StepClock(HANDSHAKE_TIME_BUDGET / 45 * 1.0001)
    b.handle_timeout(p.clock.now)
    assert b.handshake_queue_length == 45
    b.clock = StepClock(0.0)  # a fast machine: one call empties the queue
    b.handle_timeout(p.clock.now)
    assert b.handshake_queue_length == 0


def test_under_load_follows_the_queue_and_lasts_one_second() -> None:
    p = DevicePair()
    init, _ = _first_initiation(p)
    b = p.b.device
    b.clock = StepClock(HANDSHAKE_TIME_BUDGET)  # one message per call
    flood = [(init, ("198.51.100.1", 3000 + i)) for i in range(UNDER_LOAD_QUEUE_LEN - 2)]
    b.datagrams_received(flood, p.clock.now)
    assert not b.under_load(p.clock.now)
    b.datagrams_received(flood[:3], p.clock.now)
    assert b.under_load(p.clock.now)
    b.clock = None
    b.handle_timeout(p.clock.now)
    assert b.handshake_queue_length == 0
    assert b.under_load(p.clock.now + 0.9) and not b.under_load(p.clock.now + 1.1)


def test_cookie_replies_are_rate_limited_per_source() -> None:
    p = DevicePair()
    init, _ = _first_initiation(p)
    b = p.b.device
    one_source = [(init, ("198.51.100.1", 4000 + i)) for i in range(300)]
    many = [(init, ("198.51.100.%d" % (i + 2), 4000)) for i in range(100)]
    out = b.datagrams_received(one_source + many, p.clock.now)
    cookies = [o for o in out if isinstance(o, SendDatagram) and o.data[0] == 3]
    from_one = [c for c in cookies if c.endpoint[0] == "198.51.100.1"]
    assert len(from_one) == RATELIMIT_BURST
    assert len(cookies) == RATELIMIT_BURST + 100
    assert b.drops[DropReason.COOKIE_RATE_LIMITED] == 300 - RATELIMIT_BURST


def test_peer_completes_through_cookie_during_valid_mac1_flood() -> None:
    p = DevicePair()
    init, a_src = _first_initiation(p)
    b = p.b.device

    def flood(i: int) -> list[tuple[bytes, tuple[str, int]]]:
        return [(init, ("198.51.100.%d" % (k % 250 + 1), 5000 + i)) for k in range(400)]

    sent = 1
    for attempt in range(3):
        if attempt:
            p.clock.advance(5.4)  # the retransmission timer
            p.collect(p.a, p.a.device.handle_timeout(p.clock.now))
            _, init_n, a_src = p.wire.pop(0)
            sent += 1
        else:
            init_n = init
        out = b.datagrams_received(flood(attempt) + [(init_n, a_src)], p.clock.now)
        out += b.handle_timeout(p.clock.now)
        to_a = [o for o in out if isinstance(o, SendDatagram) and o.endpoint == a_src]
        for reply in to_a:
            p.collect(p.a, p.a.device.datagram_received(reply.data, p.b.endpoint, p.clock.now))
        if p.peer_of(p.a).keypairs.current is not None:
            break
    assert p.peer_of(p.a).keypairs.current is not None and sent <= 3
    assert b.drops[DropReason.COOKIE_SENT] > 0
