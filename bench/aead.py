"""The AEAD floor: CPU seconds per GB of ChaCha20-Poly1305 alone, on one core.

Contract: ``python bench/aead.py [SECONDS]`` prints one JSON object.  It seals
and then opens (tag checked) buffers with OpenSSL's ChaCha20-Poly1305 through
``cryptography``'s ``ChaCha20Poly1305``, in one thread, for about SECONDS
each, and divides ``time.process_time()`` by the bytes processed:

- ``seal_s_per_gb`` / ``open_s_per_gb``: 64 KiB buffers, so the per-call
  overhead (Python, cffi, EVP init) is spread thin and the figure is the
  cipher's own cost;
- ``floor_s_per_gb``: seal + open, i.e. what a tunnel must spend per GB at
  both ends together (one end seals every byte, the other opens it).  This is
  the figure the bench compares "daemon CPU s/GB, both ends" against;
- ``pkt_*``: the same at 1,420-byte buffers (one tunnel packet per call),
  which adds the per-call overhead of a Python loop: an upper bound for
  per-packet cipher work, not the floor.

The native data plane has no seal-only batch entry point (its encrypt batch
needs a full context with peers, routes and keypairs), so the floor is
measured through the same algorithm in OpenSSL's EVP, which is what
``wgpy/_native/wgdp_crypto.c`` calls.  No I/O; asserts nothing.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

BIG = 65536
PACKET = 1420


def _rate(fn: Callable[[int], None], size: int, seconds: float) -> float:
    """CPU seconds per 10^9 bytes of ``fn`` applied to ``size``-byte buffers for about ``seconds``."""
    n, batch = 0, max(1, (4 << 20) // size)
    wall_end = time.monotonic() + seconds
    c0 = time.process_time()
    while True:
        for i in range(batch):
            fn(n + i)
        n += batch
        if time.monotonic() >= wall_end:
            break
    cpu = time.process_time() - c0
    return cpu / (n * size / 1e9)


def measure(size: int, seconds: float) -> tuple[float, float]:
    aead = ChaCha20Poly1305(os.urandom(32))
    data = os.urandom(size)
    sealed = aead.encrypt(bytes(12), data, None)

    def seal(i: int) -> None:
        aead.encrypt(i.to_bytes(12, "little"), data, None)

    def open_(_i: int) -> None:
        aead.decrypt(bytes(12), sealed, None)

    return _rate(seal, size, seconds), _rate(open_, size, seconds)


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    seal, open_ = measure(BIG, seconds)
    pseal, popen = measure(PACKET, seconds / 2)
    from cryptography.hazmat.backends.openssl.backend import backend
    print(json.dumps({
        "seal_s_per_gb": seal, "open_s_per_gb": open_, "floor_s_per_gb": seal + open_,
        "seal_gb_per_s": 1 / seal, "open_gb_per_s": 1 / open_,
        "pkt_seal_s_per_gb": pseal, "pkt_open_s_per_gb": popen, "pkt_floor_s_per_gb": pseal + popen,
        "buffer": BIG, "packet": PACKET, "openssl": backend.openssl_version_text(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
