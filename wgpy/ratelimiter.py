"""Per-source token bucket for handshakes under load (wireguard.md §4).

Contract: ``RateLimiter.allow(ip, now)`` says whether one more handshake
message from ``ip`` may be processed: RATELIMIT_PACKETS_PER_SECOND (20) per
second with a burst of RATELIMIT_BURST (5), per IPv4 address and per IPv6
/64 (as the kernel's ratelimiter.c; IPv4-mapped IPv6 counts as IPv4).
Time is passed in (monotonic seconds) and kept as integer nanoseconds so the
bucket arithmetic is exact.  Memory is bounded: entries idle for more than
1 s (whose buckets are full again anyway) are swept lazily at most once a
second, and at ``max_entries`` new sources are refused and counted in
``refused``.  No I/O, no clock.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Final

from .constants import RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND

__all__ = ["RateLimiter", "source_key"]

_NS: Final = 1_000_000_000
_GC_INTERVAL_NS: Final = _NS
DEFAULT_MAX_ENTRIES: Final = 1 << 16


@functools.lru_cache(maxsize=4096)  # a flood repeats few sources; parsing each costs microseconds
def source_key(ip: str) -> bytes:
    """The bucket key: the IPv4 address, or the /64 of an IPv6 address."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is None:
            return b"\x06" + addr.packed[:8]
        addr = mapped
    return b"\x04" + addr.packed


class RateLimiter:
    """Token buckets keyed by source; see the module docstring."""

    __slots__ = ("_cost", "_max_tokens", "_max_entries", "_table", "_last_gc", "refused")

    def __init__(self, packets_per_second: int = RATELIMIT_PACKETS_PER_SECOND,
                 burst: int = RATELIMIT_BURST, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if packets_per_second <= 0 or burst <= 0 or max_entries <= 0:
            raise ValueError("rate, burst and table size must be positive")
        self._cost = _NS // packets_per_second
        self._max_tokens = self._cost * burst
        self._max_entries = max_entries
        # key -> [last_time_ns, tokens_ns]
        self._table: dict[bytes, list[int]] = {}
        self._last_gc: int | None = None
        self.refused = 0
        """New sources refused because the table was full."""

    def __len__(self) -> int:
        return len(self._table)

    def allow(self, ip: str, now: float) -> bool:
        """Take one token from ``ip``'s bucket; False if it is empty."""
        now_ns = round(now * _NS)
        self._maybe_gc(now_ns)
        key = source_key(ip)
        entry = self._table.get(key)
        if entry is None:
            if len(self._table) >= self._max_entries:  # swept at most once a second above
                self.refused += 1
                return False
            self._table[key] = [now_ns, self._max_tokens - self._cost]
            return True
        last, tokens = entry
        tokens = min(self._max_tokens, tokens + max(0, now_ns - last))
        entry[0] = max(last, now_ns)
        if tokens >= self._cost:
            entry[1] = tokens - self._cost
            return True
        entry[1] = tokens
        return False

    def _maybe_gc(self, now_ns: int) -> None:
        if self._last_gc is None:
            self._last_gc = now_ns
        elif now_ns - self._last_gc >= _GC_INTERVAL_NS:
            self._gc(now_ns)

    def _gc(self, now_ns: int) -> None:
        self._last_gc = now_ns
        stale = [k for k, (last, _) in self._table.items() if now_ns - last > _GC_INTERVAL_NS]
        for k in stale:
            del self._table[k]

    def __repr__(self) -> str:
        return f"RateLimiter(entries={len(self._table)}, refused={self.refused})"
