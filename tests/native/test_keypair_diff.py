"""Differential tests: native keypair seal/open, padding and replay window vs the pure twins."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from hypothesis import given, strategies as st

from wgpy import _native
from wgpy.constants import REJECT_AFTER_MESSAGES, REPLAY_WINDOW
from wgpy.errors import DropReason
from wgpy.keypair import Keypair, padded_length
from wgpy.replay import ReplayWindow

keys = st.binary(min_size=32, max_size=32)
packets = st.binary(min_size=0, max_size=2100)
mtus = st.one_of(st.sampled_from([0, 1280, 1420, 1500, 65535]), st.integers(1, 2000))


def pair(send: bytes, recv: bytes, counter: int = 0) -> tuple[_native.NativeKeypair, Keypair]:
    n = _native.NativeKeypair(None, send, recv, 7, 9, True, 0.0)
    p = Keypair(send, recv, 7, 9, True, 0.0)
    n.send_counter = p.send_counter = counter
    return n, p


@given(st.integers(0, 70000), st.integers(0, 70000))
def test_padded_length(length: int, mtu: int) -> None:
    assert _native.padded_length(length, mtu) == padded_length(length, mtu)


@given(keys, keys, st.lists(packets, min_size=1, max_size=6), mtus, st.integers(0, 2**64 - 1))
def test_seal_identical(send: bytes, recv: bytes, pkts: list[bytes], mtu: int, counter: int) -> None:
    counter = min(counter, REJECT_AFTER_MESSAGES - len(pkts))
    n, p = pair(send, recv, counter)
    for pkt in pkts:
        assert n.seal(pkt, mtu) == p.seal(pkt, mtu)
        assert n.send_counter == p.send_counter


@st.composite
def message_streams(draw: st.DrawFn) -> tuple[bytes, bytes, list[bytes]]:
    """Messages sealed by the sender, then replayed, reordered, truncated and tampered with."""
    k1, k2 = draw(keys), draw(keys)
    sender = Keypair(k2, k1, 9, 7, False, 0.0)
    sender.send_counter = draw(st.sampled_from([0, 5000, REJECT_AFTER_MESSAGES - 20]))
    msgs = [sender.seal(draw(packets.filter(lambda b: len(b) < 300)), 0) for _ in range(draw(st.integers(1, 8)))]
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 16))):
        m = draw(st.sampled_from(msgs))
        how = draw(st.sampled_from(["as-is", "as-is", "flip", "truncate", "junk", "counter"]))
        if how == "flip":
            i = draw(st.integers(8, len(m) - 1))
            m = m[:i] + bytes([m[i] ^ (1 << draw(st.integers(0, 7)))]) + m[i + 1:]
        elif how == "truncate":
            m = m[: draw(st.integers(32, len(m)))]
        elif how == "junk":
            m = m[:16] + draw(st.binary(min_size=16, max_size=64))
        elif how == "counter":
            m = m[:8] + draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little") + m[16:]
        out.append(m)
    return k1, k2, out


@given(message_streams())
def test_open_identical(stream: tuple[bytes, bytes, list[bytes]]) -> None:
    k1, k2, msgs = stream
    n = _native.NativeKeypair(None, k1, k2, 7, 9, True, 0.0)
    p = Keypair(k1, k2, 7, 9, True, 0.0)
    for m in msgs:
        assert n.open(m) == p.open(m)


def test_open_reasons() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    sender = Keypair(k2, k1, 9, 7, False, 0.0)
    n = _native.NativeKeypair(None, k1, k2, 7, 9, True, 0.0)
    m = sender.seal(b"", 1420)
    assert n.open(m) == b""
    assert n.open(m) is DropReason.REPLAYED_COUNTER
    assert n.open(m[:-1] + bytes([m[-1] ^ 1])) is DropReason.DECRYPTION_FAILED
    n.zero()
    assert n.open(sender.seal(b"x", 0)) is DropReason.DECRYPTION_FAILED
    assert not n.can_send(0.0)


@given(st.lists(st.one_of(
    st.integers(0, 20000),
    st.integers(0, 2**64 - 1),
    st.integers(REJECT_AFTER_MESSAGES - 9000, REJECT_AFTER_MESSAGES + 5),
    st.just(REPLAY_WINDOW), st.just(REPLAY_WINDOW + 1),
), min_size=1, max_size=200))
def test_replay_window_identical(counters: list[int]) -> None:
    c, p = _native.ReplayWindow(), ReplayWindow()
    for counter in counters:
        assert c.check(counter) == p.check(counter), counter


@given(st.integers(0, 2**63), st.lists(st.integers(-9000, 9000), min_size=1, max_size=300))
def test_replay_window_near_last(base: int, deltas: list[int]) -> None:
    c, p = _native.ReplayWindow(), ReplayWindow()
    for d in deltas:
        counter = max(base + d, 0)
        assert c.check(counter) == p.check(counter)
        base = max(base, counter)


def test_direct_provider_is_used() -> None:
    """This build reaches OpenSSL's ChaCha20-Poly1305 provider directly (the default)."""
    assert _native.lib.wgdp_aead_direct() == 1


def test_evp_fallback_identical() -> None:
    """With WGPY_AEAD_DIRECT=0 the same seal/open tests pass through EVP (a fresh process: the
    choice is made once per process)."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, WGPY_AEAD_DIRECT="0")
    code = ("import sys; from wgpy import _native; assert _native.lib.wgdp_aead_direct() == 0; import pytest; "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[1], '-k', "
            "'seal_identical or open_identical or open_reasons or threads']))")
    proc = subprocess.run([sys.executable, "-c", code, os.path.join(here, "test_keypair_diff.py")], env=env,
                          cwd=os.path.dirname(os.path.dirname(here)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_threads_sealing_one_keypair() -> None:
    """Threads sealing with one keypair at once (each with its own cipher context, the counter under
    the send lock) never reuse a counter, and every message opens in the twin, once."""
    k1, k2 = os.urandom(32), os.urandom(32)
    n = _native.NativeKeypair(None, k1, k2, 7, 9, True, 0.0)
    receiver = Keypair(k2, k1, 9, 7, False, 0.0)
    out: list[list[bytes]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        for j in range(300):
            out[i].append(n.seal(bytes([i, j & 255]) * (j % 700), 1420))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    msgs = [m for ms in out for m in ms]
    assert len({m[8:16] for m in msgs}) == len(msgs) == 1200
    assert n.send_counter == 1200
    for i, ms in enumerate(out):
        for j, m in enumerate(ms):
            want = bytes([i, j & 255]) * (j % 700)
            assert receiver.open(m) == want + bytes(padded_length(len(want), 1420) - len(want))
