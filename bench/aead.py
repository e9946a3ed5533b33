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
``wgpy/_native/wgdp_crypto.c`` calls.  ``cryptography`` bundles its own
OpenSSL, so a second measurement (``evp_*``, when a C compiler and the
system's OpenSSL headers are there) compiles a small C loop with cffi
against the system ``libcrypto`` the native plane links, and makes the same
EVP calls per packet as its seal/open (a re-init with the nonce, update,
final, tag): ``evp_pkt_floor_s_per_gb`` at 1,420 bytes is the cipher's cost
as the native plane calls it, ``evp_big_floor_s_per_gb`` at 64 KiB the same
library's own speed.  No I/O; asserts nothing.
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


_EVP_LOOP = r"""
#include <openssl/evp.h>
#include <string.h>
/* n seals (enc=1) or opens (enc=0) of one size-byte buffer, EVP calls as wgdp_crypto.c makes them */
int wgb_loop(int enc, int size, long n, unsigned char *buf, unsigned char *tag)
{
    unsigned char key[32] = {1}, nonce[12] = {0};
    int outl = 0, fin = 0, ok = 1;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c || EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, NULL, enc) != 1)
        ok = 0;
    for (long i = 0; ok && i < n; i++) {
        memcpy(nonce + 4, &i, sizeof(i));
        if (!enc)
            memset(nonce + 4, 0, 8);
        if (EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, enc) != 1 ||
            EVP_CipherUpdate(c, buf, &outl, buf, size) != 1)
            ok = 0;
        else if (enc)
            ok = EVP_CipherFinal_ex(c, buf + outl, &fin) == 1 &&
                 EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
        else  /* opens the same ciphertext again: a wrong tag is fine, the work is the same */
            (void)(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1 &&
                   EVP_CipherFinal_ex(c, buf + outl, &fin) == 1);
    }
    EVP_CIPHER_CTX_free(c);
    return ok;
}
"""


def evp_floor(seconds: float) -> dict[str, float | str]:
    """Seal+open CPU s/GB through the system libcrypto's EVP in a C loop, at 1,420 bytes and 64 KiB."""
    import tempfile

    import cffi

    ffi = cffi.FFI()
    ffi.cdef("int wgb_loop(int enc, int size, long n, unsigned char *buf, unsigned char *tag);")
    ffi.set_source("_wgb_evp", _EVP_LOOP, libraries=["crypto"])
    with tempfile.TemporaryDirectory() as d:
        path = ffi.compile(tmpdir=d, verbose=False)
        import importlib.util
        spec = importlib.util.spec_from_file_location("_wgb_evp", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    out: dict[str, float | str] = {}
    for label, size in (("pkt", PACKET), ("big", BIG)):
        buf = mod.ffi.new("unsigned char[]", size + 16)
        tag = mod.ffi.new("unsigned char[]", 16)
        total = 0.0
        for enc in (1, 0):
            n = 1000
            while True:  # grow the loop until it runs for a quarter of the time asked
                c0 = time.process_time()
                if not mod.lib.wgb_loop(enc, size, n, buf, tag):
                    raise RuntimeError("EVP ChaCha20-Poly1305 loop failed")
                cpu = time.process_time() - c0
                if cpu >= seconds / 4 or n > 1 << 30:
                    break
                n *= 4
            total += cpu / (n * size / 1e9)
        out[f"evp_{label}_floor_s_per_gb"] = total
    return out


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    seal, open_ = measure(BIG, seconds)
    pseal, popen = measure(PACKET, seconds / 2)
    from cryptography.hazmat.backends.openssl.backend import backend
    try:
        evp: dict[str, float | str] = evp_floor(seconds)
    except Exception as exc:  # no compiler or headers: the cryptography figures stand alone
        evp = {"evp_error": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
    print(json.dumps({**evp,
        "seal_s_per_gb": seal, "open_s_per_gb": open_, "floor_s_per_gb": seal + open_,
        "seal_gb_per_s": 1 / seal, "open_gb_per_s": 1 / open_,
        "pkt_seal_s_per_gb": pseal, "pkt_open_s_per_gb": popen, "pkt_floor_s_per_gb": pseal + popen,
        "buffer": BIG, "packet": PACKET, "openssl": backend.openssl_version_text(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
