"""Relay pieces with a fake clock: the per-pair byte buckets, settings validation, the probe timer."""

from __future__ import annotations

import pytest
from wgsupport import FakeClock

from wgpy.constants import RELAY_PROBE_INTERVAL
from wgpy.errors import ConfigError
from wgpy.relay import PairLimiter, Relay
from wgpy.timers import PeerTimers, Timer

PAIR, OTHER = b"a" * 64, b"b" * 64


def test_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    lim = PairLimiter(rate=1000, burst=3000)
    assert [lim.allow(PAIR, 1000, clock.now) for _ in range(4)] == [True, True, True, False]
    assert lim.refused == 1
    clock.advance(0.5)  # 500 bytes back
    assert not lim.allow(PAIR, 600, clock.now)
    assert lim.allow(PAIR, 500, clock.now)
    clock.advance(100)  # never more than the burst
    assert [lim.allow(PAIR, 1000, clock.now) for _ in range(4)] == [True, True, True, False]


def test_pairs_have_their_own_buckets() -> None:
    lim = PairLimiter(rate=1, burst=100)
    assert lim.allow(PAIR, 100, 0.0) and not lim.allow(PAIR, 1, 0.0)
    assert lim.allow(OTHER, 100, 0.0)


def test_a_frame_larger_than_the_burst_never_passes() -> None:
    lim = PairLimiter(rate=10, burst=100)
    assert not lim.allow(PAIR, 101, 0.0) and len(lim) == 0


def test_table_is_bounded_and_idle_pairs_make_room() -> None:
    lim = PairLimiter(rate=100, burst=100, max_pairs=2)
    assert lim.allow(b"1", 100, 0.0) and lim.allow(b"2", 100, 0.0)
    assert not lim.allow(b"3", 1, 0.5)  # both still refilling: refused
    assert lim.allow(b"3", 1, 1.0) and len(lim) <= 2  # full again: swept


def test_clock_going_back_takes_no_tokens_and_gives_none() -> None:
    lim = PairLimiter(rate=1000, burst=1000)
    assert lim.allow(PAIR, 1000, 10.0)
    assert not lim.allow(PAIR, 1, 5.0)
    assert lim.allow(PAIR, 1000, 11.0)


@pytest.mark.parametrize("args", [dict(key=b"x" * 31), dict(key=b"x" * 32, rate=0), dict(key=b"x" * 32, burst=-1),
                                  dict(key=b"x" * 32, serve=True, burst=100)])
def test_configure_rejects_bad_settings_and_changes_nothing(args: dict) -> None:  # type: ignore[type-arg]
    relay = Relay()
    relay.configure(b"k" * 32, serve=True)
    limiter = relay.limiter
    key = args.pop("key")
    with pytest.raises(ConfigError):
        relay.configure(key, **args)
    assert relay.key == b"k" * 32 and relay.serve and relay.limiter is limiter


def test_configure_off_and_on() -> None:
    relay = Relay()
    assert relay.key is None and not relay.serve
    relay.configure(b"k" * 32, serve=True, rate=5000, burst=4096)
    assert relay.serve and relay.limiter.allow(PAIR, 4096, 0.0) and not relay.limiter.allow(PAIR, 1, 0.0)
    relay.configure(None)
    assert relay.key is None and not relay.serve


def test_probe_timer_is_a_sixth_timer_that_fires_and_stops() -> None:
    timers = PeerTimers()
    timers.relay_probe = 10.0 + RELAY_PROBE_INTERVAL
    assert timers.next_deadline() == 15.0
    assert timers.expired(14.9) == []
    assert timers.expired(15.0) == [Timer.RELAY_PROBE] and timers.relay_probe is None
    timers.relay_probe = 20.0
    timers.stop()
    assert timers.next_deadline() is None
