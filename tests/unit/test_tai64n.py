"""wgpy.tai64n: label layout, 2**24 ns rounding and ordering (wireguard.md §1)."""

from __future__ import annotations

import struct

import pytest

from wgpy.tai64n import TAI64_BASE, ZERO, after, timestamp, timestamp_ns


def _split(label: bytes) -> tuple[int, int]:
    secs, nanos = struct.unpack(">QI", label)
    return secs, nanos


def test_epoch() -> None:
    label = timestamp_ns(0)
    assert len(label) == 12
    assert label == bytes.fromhex("400000000000000a") + bytes(4)
    assert timestamp(0.0) == label


def test_seconds_offset() -> None:
    secs, nanos = _split(timestamp_ns(1_700_000_000 * 10**9))
    assert secs == TAI64_BASE + 1_700_000_000
    assert nanos == 0


def test_nanoseconds_rounded_down_to_2_pow_24() -> None:
    step = 1 << 24
    for ns in (0, 1, step - 1, step, step + 1, 5 * step + 12345, 999_999_999):
        _, nanos = _split(timestamp_ns(10**9 * 42 + ns))
        assert nanos == ns - ns % step
        assert nanos % step == 0
        assert nanos <= ns
    # the largest representable value below one second is 59 * 2**24
    assert _split(timestamp_ns(999_999_999))[1] == 59 * step


def test_float_wall_time_matches_integer_path() -> None:
    assert timestamp(1_700_000_000.5) == timestamp_ns(1_700_000_000 * 10**9 + 500_000_000)
    assert timestamp(1_700_000_000.999999) == timestamp_ns(1_700_000_000 * 10**9 + 999_999_000)
    assert _split(timestamp(1_700_000_123.25))[0] == TAI64_BASE + 1_700_000_123


def test_within_one_quantum_compares_equal() -> None:
    base = 1_700_000_000 * 10**9
    assert timestamp_ns(base + 1) == timestamp_ns(base + (1 << 24) - 1)
    assert not after(timestamp_ns(base + (1 << 24) - 1), timestamp_ns(base))
    assert after(timestamp_ns(base + (1 << 24)), timestamp_ns(base))


def test_ordering() -> None:
    labels = [timestamp_ns(n * 10**7) for n in range(0, 1000, 7)]
    for a, b in zip(labels, labels[1:]):
        assert not after(a, b)
        assert after(b, a) or a == b
    assert after(timestamp(1.0), ZERO)
    assert not after(ZERO, ZERO)
    assert after(bytes([0x80] + [0] * 11), bytes([0x7F] + [0xFF] * 11))  # unsigned


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError):
        timestamp(float("nan"))
    with pytest.raises(ValueError):
        timestamp(float("inf"))
