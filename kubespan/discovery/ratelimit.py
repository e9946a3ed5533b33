"""Per-source-IP token buckets for the discovery service (spec §3.5).

Owns the rate limit applied to unary calls and stream opens: ``rate`` tokens
per second, ``burst`` tokens at most.  Like Go's ``rate.Limiter.Wait``, a call
reserves a token and waits for it; if the wait would outlast the caller's
deadline nothing is reserved and the call is refused (ResourceExhausted).
Pure: ``now`` is passed in.  Memory is bounded: at most ``max_keys`` buckets;
full buckets are pruned first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by source address."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = 65536) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def reserve(self, key: str, now: float, max_wait: float | None) -> float | None:
        """Take one token; returns the delay to wait, or None if it exceeds ``max_wait``."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self.prune(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        delay = max(0.0, (1.0 - bucket.tokens) / self.rate)
        if max_wait is not None and delay > max_wait:
            return None
        bucket.tokens -= 1.0
        return delay

    def prune(self, now: float) -> None:
        """Drop buckets that are full again (idle sources); then the oldest if still over."""
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.stamp) * self.rate >= self.burst:
                del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)
