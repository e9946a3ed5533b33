"""The native data plane's per-byte steps on one core, without I/O: CPU s/GB of each.

Contract: ``python bench/datapath.py [SECONDS]`` prints one JSON object; run it
with ``PYTHONPATH`` at another checkout to compare builds (``run_pair`` below
does both in turn).  Each step runs over buffers prepared beforehand, so the
Python loop around a call costs nothing measurable next to the call's C work,
and is divided by the bytes it processed (``time.process_time()``):

- ``seal``: ``wgdp_encrypt_batch`` over 256 TUN packets of 1,420 bytes routed to
  one peer: route lookup, counter, padding, copy into the message, the AEAD;
- ``open``: ``wgdp_decrypt_batch`` over 256 such messages: index lookup, the
  AEAD, the replay check (the same messages every call, so after the first
  call they end as replayed drops, after the tag was checked: the AEAD work is
  the same);
- ``tso_split``: ``wgdp_tso_split`` of a 64,000-byte TSO read into MSS-1,380
  segments with their checksums;
- ``gro``: ``wgdp_gro_coalesce`` of those segments (checksum checks, one GSO
  write; the binding copies the write out).

Asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable

PKT = 1420
N = 256


def _rate(step: Callable[[], None], nbytes: int, seconds: float) -> float:
    step()
    done, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        step()
        done += nbytes
    return (time.process_time() - start) / done * 1e9


def measure(seconds: float) -> dict[str, float | str]:
    from wgpy import _native
    from wgpy.keypair import Keypair
    from wgpy.offload import tso_split

    ffi, lib = _native.ffi, _native.lib
    out: dict[str, float | str] = {"wgpy": os.path.dirname(os.path.dirname(os.path.abspath(_native.__file__)))}
    if hasattr(lib, "wgdp_aead_direct"):
        out["aead"] = "provider" if lib.wgdp_aead_direct() else "EVP"
    ctx = _native.Context()
    ctx.set_mtu(1420)
    ctx.peer_add(0, 1)
    ctx.set_routes([(4, 24, bytes([10, 0, 0, 0]), 0)])
    ctx.peer_set_endpoint(0, (4, bytes([10, 9, 0, 1]).ljust(16, b"\0"), 51820))
    k1, k2 = os.urandom(32), os.urandom(32)
    kp = _native.NativeKeypair(ctx, k1, k2, 5, 6, True, time.monotonic(), peer_id=0)
    kp.set_fast_rx(True)
    ctx.peer_set_keypair(0, kp)
    ctx.peer_enable_fast_tx(0, 0)
    inner = bytes([0x45, 0, PKT >> 8, PKT & 255]) + bytes(8) + bytes([10, 0, 1, 1, 10, 0, 0, 9]) + os.urandom(PKT - 20)
    data = ffi.new("uint8_t[]", inner * N)
    offs = ffi.new("uint32_t[]", [i * PKT for i in range(N)])
    lens = ffi.new("uint32_t[]", [PKT] * N)
    stride = PKT + 64
    sealed = ffi.new("uint8_t[]", stride * N)
    out_len = ffi.new("uint32_t[]", N)
    out_peer = ffi.new("uint32_t[]", N)
    res = _native.Result(N + 1, N + 1, PKT * N + 1)

    def seal() -> None:
        lib.wgdp_result_reset(res.c)
        lib.wgdp_encrypt_batch(ctx._ctx, time.monotonic(), N, data, offs, lens, sealed, stride, out_len, out_peer,
                               res.c)

    out["seal_s_per_gb"] = _rate(seal, PKT * N, seconds)
    sender = Keypair(k2, k1, 6, 5, False, 0.0)
    msgs = [sender.seal(inner, 1420) for _ in range(N)]
    mdata = ffi.new("uint8_t[]", b"".join(msgs))
    moffs = ffi.new("uint32_t[]", [i * len(msgs[0]) for i in range(N)])
    mlens = ffi.new("uint32_t[]", [len(m) for m in msgs])
    srcs = ffi.new("wgdp_addr[]", N)
    opened = ffi.new("uint8_t[]", (len(msgs[0]) + 16) * N)

    def open_() -> None:
        lib.wgdp_result_reset(res.c)
        lib.wgdp_decrypt_batch(ctx._ctx, time.monotonic(), N, mdata, moffs, mlens, srcs, opened, len(msgs[0]) + 16,
                               out_len, res.c)

    out["open_s_per_gb"] = _rate(open_, sum(len(m) for m in msgs), seconds)
    payload = os.urandom(64000 - 40)
    tcp = bytes([0x9C, 0x40, 0x14, 0x51]) + bytes(8) + bytes([0x50, 0x10, 2, 0]) + bytes(4)
    ip = bytes([0x45, 0, 0xFA, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    read = bytes([1, 1, 40, 0, 0x64, 0x05, 20, 0, 16, 0]) + ip + tcp + payload  # NEEDS_CSUM, TCPV4, MSS 1380
    raw = ffi.new("uint8_t[]", read)
    segs = ffi.new("uint8_t[]", 64 * 65536)
    seg_len = ffi.new("uint32_t[]", 64)

    def split() -> None:
        lib.wgdp_tso_split(raw, len(read), segs, 65536, 64, seg_len)

    out["tso_split_s_per_gb"] = _rate(split, len(read) - 10, seconds)
    pieces = tso_split(read) or []
    room = [ffi.new("uint8_t[]", 10 + len(p)) for p in pieces]
    for buf, p in zip(room, pieces):
        ffi.memmove(buf + 10, p, len(p))
    ptrs = ffi.new("uint8_t *[]", [buf + 10 for buf in room])
    plens = ffi.new("uint32_t[]", [len(p) for p in pieces])
    cbuf = ffi.new("uint8_t[]", 65545)
    cap = sum(map(len, pieces)) + 10 * len(pieces)
    gout = ffi.new("uint8_t[]", cap)
    goff = ffi.new("uint32_t[]", len(pieces))
    glen = ffi.new("uint32_t[]", len(pieces))

    def gro() -> None:
        lib.wgdp_gro_coalesce(ptrs, plens, len(pieces), cbuf, gout, cap, goff, glen, len(pieces))

    out["gro_s_per_gb"] = _rate(gro, sum(map(len, pieces)), seconds)
    return out


def run_pair(trees: list[str], seconds: float, rounds: int) -> list[dict[str, float | str]]:
    """Alternate the trees ``rounds`` times (each a fresh process); every measurement."""
    results = []
    for _ in range(rounds):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=tree)
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(seconds)], env=env, cwd=tree,
                                  capture_output=True, text=True, timeout=600, check=True)
            results.append(json.loads(proc.stdout))
    return results


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] == "--trees":
        trees = args[1].split(",")
        for r in run_pair(trees, float(args[2]) if len(args) > 2 else 1.0, int(args[3]) if len(args) > 3 else 3):
            print(json.dumps(r))
        return 0
    print(json.dumps(measure(float(args[0]) if args else 1.0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
