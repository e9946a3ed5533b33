"""wgpy.ratelimiter: 20/s token bucket, burst 5, v6 /64 buckets, bounded table."""

from __future__ import annotations

from wgpy.constants import RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND
from wgpy.ratelimiter import RateLimiter, source_key


def _count_allowed(rl: RateLimiter, ip: str, now: float, tries: int = 50) -> int:
    return sum(rl.allow(ip, now) for _ in range(tries))


def test_burst_then_refused() -> None:
    rl = RateLimiter()
    assert RATELIMIT_BURST == 5 and RATELIMIT_PACKETS_PER_SECOND == 20
    assert [rl.allow("192.0.2.1", 10.0) for _ in range(7)] == [True] * 5 + [False] * 2


def test_refill_at_20_per_second() -> None:
    rl = RateLimiter()
    assert _count_allowed(rl, "192.0.2.1", 0.0) == 5
    # one token per 50 ms
    assert _count_allowed(rl, "192.0.2.1", 0.049) == 0
    assert _count_allowed(rl, "192.0.2.1", 0.05) == 1
    assert _count_allowed(rl, "192.0.2.1", 0.10) == 1
    assert _count_allowed(rl, "192.0.2.1", 0.25) == 3
    # steady state: over one simulated second at 100 tries/s, 20 get through
    allowed = sum(rl.allow("192.0.2.1", 0.25 + i / 100) for i in range(1, 101))
    assert allowed == 20


def test_bucket_caps_at_burst() -> None:
    rl = RateLimiter()
    assert _count_allowed(rl, "192.0.2.1", 0.0) == 5
    assert _count_allowed(rl, "192.0.2.1", 0.9) == 5  # a long pause gives back only the burst


def test_sources_are_independent() -> None:
    rl = RateLimiter()
    assert _count_allowed(rl, "192.0.2.1", 0.0) == 5
    assert _count_allowed(rl, "192.0.2.2", 0.0) == 5
    assert _count_allowed(rl, "2001:db8::1", 0.0) == 5


def test_ipv6_bucketed_by_64() -> None:
    rl = RateLimiter()
    assert _count_allowed(rl, "2001:db8:1:2::1", 0.0, tries=3) == 3
    assert _count_allowed(rl, "2001:db8:1:2:ffff:ffff:ffff:ffff", 0.0) == 2  # same /64
    assert _count_allowed(rl, "2001:db8:1:3::1", 0.0) == 5  # next /64
    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:aaaa::9")
    assert source_key("2001:db8:1:2::1") != source_key("2001:db8:1:3::1")


def test_ipv4_mapped_counts_as_ipv4() -> None:
    rl = RateLimiter()
    assert _count_allowed(rl, "::ffff:192.0.2.9", 0.0, tries=3) == 3
    assert _count_allowed(rl, "192.0.2.9", 0.0) == 2
    assert source_key("::ffff:192.0.2.9") == source_key("192.0.2.9")
    assert source_key("192.0.2.9") != source_key("192.0.2.10")
    assert source_key("fe80::1%eth0") == source_key("fe80::2")


def test_idle_entries_collected() -> None:
    rl = RateLimiter()
    for i in range(100):
        rl.allow(f"10.0.{i // 250}.{i % 250}", 0.0)
    assert len(rl) == 100
    rl.allow("10.9.9.9", 0.5)
    assert len(rl) == 101  # swept at most once a second
    rl.allow("10.9.9.9", 1.6)
    assert len(rl) == 1  # only the source seen within the last second is kept


def test_bounded_table_refuses_new_sources() -> None:
    rl = RateLimiter(max_entries=8)
    for i in range(8):
        assert rl.allow(f"10.0.0.{i}", 0.0)
    assert not rl.allow("10.0.0.100", 0.1)
    assert not rl.allow("10.0.0.101", 0.2)
    assert rl.refused == 2 and len(rl) == 8
    assert rl.allow("10.0.0.3", 0.2)  # known sources keep working
    # once the old entries have been idle > 1 s they are swept and room frees up
    assert rl.allow("10.0.0.100", 1.5)
    assert len(rl) <= 2


def test_default_table_cap() -> None:
    rl = RateLimiter()
    n = 1 << 16
    for i in range(n):
        rl.allow(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 0.0)
    assert len(rl) == n and rl.refused == 0
    assert not rl.allow("11.0.0.1", 0.0)
    assert rl.refused == 1


def test_time_going_backwards_does_not_mint_tokens() -> None:
    rl = RateLimiter()
    assert _count_allowed(rl, "192.0.2.1", 5.0) == 5
    assert _count_allowed(rl, "192.0.2.1", 4.0) == 0
    assert _count_allowed(rl, "192.0.2.1", 5.05) == 1
