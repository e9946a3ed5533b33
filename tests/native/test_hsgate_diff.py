"""The handshake gate in C before the mailbox vs the Python twin (wireguard.md §4).

``wgdp_mac16`` (the C BLAKE2s-128 MAC) against ``wgpy.crypto.mac`` for any
key and message length; ``wgdp_decrypt_batch`` against
``PureDataPlane.decrypt_batch`` for handshake messages with good, bad and
missing mac1 keys (the same slow items and ``invalid-mac1`` drops), and
under load for random sequences of sources and times (the same per-source
``rate-limited`` decisions).
"""

from __future__ import annotations

import os

from hypothesis import given, settings, strategies as st

from wgpy import _native
from wgpy.config import Endpoint
from wgpy.cookie import CookieGenerator, mac1_key
from wgpy.crypto import mac
from wgpy.dataplane import BatchResult, NativeDataPlane, convert_result, endpoint_to_addr
from wgpy.dataplane_twin import PureDataPlane
from wgpy.errors import DropReason
from wgpy.keys import PrivateKey

SRC: Endpoint = ("192.0.2.7", 4000)


@settings(max_examples=300)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_mac16_matches_python(key: bytes, data: bytes) -> None:
    assert _native.mac16(key, data) == mac(key, data)


def _decrypt(plane: NativeDataPlane, batch: list[tuple[bytes, Endpoint]], now: float = 0.0) -> BatchResult:
    items = [(d, endpoint_to_addr(src) or (0, bytes(16), 0)) for d, src in batch]
    raw = _native.Result(len(items) + 1, len(items) + 1, sum(len(d) for d, _ in items) + 1)
    plane.ctx.decrypt_batch(items, now, raw)
    res = BatchResult()
    convert_result(raw, res)
    return res


def _messages(signed_for: PrivateKey, seed: bytes) -> list[bytes]:
    """An initiation and a response with mac1 for ``signed_for``, the same with one bit flipped, a cookie reply."""
    gen = CookieGenerator(signed_for.public_key())
    init = gen.add_macs(b"\x01\0\0\0" + (seed * 148)[:144], 0.0)
    resp = gen.add_macs(b"\x02\0\0\0" + (seed * 92)[:88], 0.0)
    flipped = bytearray(init)
    flipped[20] ^= 1
    return [init, resp, bytes(flipped), b"\x03\0\0\0" + bytes(60)]


@settings(max_examples=40)
@given(st.binary(min_size=1, max_size=16), st.sampled_from(["own", "other", "none"]))
def test_handshake_slow_items_identical(seed: bytes, keying: str) -> None:
    ours, other = PrivateKey.generate(os.urandom), PrivateKey.generate(os.urandom)
    pure, native = PureDataPlane(), NativeDataPlane()
    key = {"own": mac1_key(ours.public_key()), "other": mac1_key(other.public_key()), "none": None}[keying]
    pure.set_mac1_key(key)
    native.set_mac1_key(key)
    batch = [(m, SRC) for m in _messages(ours, seed)]
    rp, rn = BatchResult(), _decrypt(native, batch)
    pure.decrypt_batch(batch, 0.0, rp)
    assert rp.slow == rn.slow and +rp.drops == +rn.drops
    good = 2 if keying == "own" else 0
    assert len(rn.slow) == good + 1  # the cookie reply carries no mac1: always handed on
    assert rn.drops[DropReason.INVALID_MAC1] == 4 - 1 - good


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2:1",
                                           "2001:db8:0:1::1"]),
                          st.integers(0, 400), st.sampled_from([1, 2, 3])), max_size=60))
def test_under_load_gate_identical(steps: list[tuple[str, int, int]]) -> None:
    """Sources (IPv6 by /64), times in ms since 100 s; the plane is under load from 100 s to 100.3 s."""
    ours = PrivateKey.generate(os.urandom)
    pure, native = PureDataPlane(), NativeDataPlane()
    for plane in (pure, native):
        plane.set_mac1_key(mac1_key(ours.public_key()))
        plane.set_under_load(100.3)
    init, resp, _, cookie = _messages(ours, b"s")
    now = 100.0
    for host, dt_ms, mtype in sorted(steps, key=lambda s: s[1]):
        now = 100.0 + dt_ms / 1000
        batch = [({1: init, 2: resp, 3: cookie}[mtype], (host, 1000))]
        rp, rn = BatchResult(), _decrypt(native, batch, now)
        pure.decrypt_batch(batch, now, rp)
        assert (rp.slow, +rp.drops) == (rn.slow, +rn.drops), (host, now, mtype)


def test_gate_limits_a_flooding_source_and_lets_another_in() -> None:
    ours = PrivateKey.generate(os.urandom)
    native = NativeDataPlane()
    native.set_mac1_key(mac1_key(ours.public_key()))
    init = _messages(ours, b"f")[0]
    flood = [(init, ("198.51.100.1", 1000 + i)) for i in range(100)]
    assert len(_decrypt(native, flood, 50.0).slow) == 100  # not under load: all handed on
    native.set_under_load(51.0)
    res = _decrypt(native, flood + [(init, ("192.0.2.9", 51820))], 50.0)
    assert res.drops[DropReason.RATE_LIMITED] == 100 - 5  # burst 5 per source
    assert [s.src for s in res.slow][-1] == ("192.0.2.9", 51820)
    assert len(_decrypt(native, flood, 52.0).slow) == 100  # load over
