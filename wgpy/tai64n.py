"""TAI64N timestamps for handshake initiations (wireguard.md §1, §3).

Contract: encode a wall-clock time (passed in; never read here) as the 12-byte
big-endian TAI64N label -- 8 bytes of seconds = 0x400000000000000a + Unix
seconds, 4 bytes of nanoseconds rounded DOWN to a multiple of 2**24 ns, as
wireguard-go and the kernel do to avoid leaking precise timing -- and compare
two labels.  The receiver only ever compares: byte-wise, unsigned, strictly
greater.
"""

from __future__ import annotations

import math
import struct
from typing import Final

__all__ = ["TAI64_BASE", "WHITENER_MASK", "ZERO", "timestamp", "timestamp_ns", "after"]

TAI64_BASE: Final = 0x400000000000000A
WHITENER_MASK: Final = (1 << 24) - 1
ZERO: Final = bytes(12)
_U64_MAX: Final = (1 << 64) - 1
_STAMP = struct.Struct(">QI")


def timestamp_ns(ns: int) -> bytes:
    """TAI64N of a Unix time given in integer nanoseconds."""
    seconds, nanos = divmod(int(ns), 1_000_000_000)
    label = TAI64_BASE + seconds
    if not 0 <= label <= _U64_MAX:
        raise ValueError("time outside the TAI64 range")
    return _STAMP.pack(label, nanos & ~WHITENER_MASK)


def timestamp(wall_time: float) -> bytes:
    """TAI64N of a Unix time in float seconds (e.g. ``time.time()``)."""
    if not math.isfinite(wall_time):
        raise ValueError("wall time must be finite")
    seconds = math.floor(wall_time)
    # Split first: multiplying the whole value by 1e9 would lose ~256 ns of
    # precision at present-day magnitudes.  The fraction is always < 1.
    nanos = min(int((wall_time - seconds) * 1e9), 999_999_999)
    return timestamp_ns(int(seconds) * 1_000_000_000 + nanos)


def after(a: bytes, b: bytes) -> bool:
    """True if label ``a`` is strictly later than ``b`` (unsigned byte compare)."""
    return bytes(a) > bytes(b)
