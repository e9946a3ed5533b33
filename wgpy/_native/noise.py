"""The binding to the C handshake arithmetic (``wgdp_noise.c``).

Contract: typed wrappers over the lib ``wgpy._native`` loaded (this module
only calls it; importing it without the native module is fine, calling it
raises ``NativeError``).  The X25519 results come in as arguments.  Each
step returns ``None`` for a bad tag (``WGDP_NOISE_DECRYPT``), otherwise its
outputs; remote input never raises here; wrong-size arguments from our own
code raise ``ValueError`` (C reads fixed sizes), an allocation failure in C
``MemoryError``.  The pure twin is ``wgpy.handshake_steps.PURE``.
"""

from __future__ import annotations

from typing import Any

from . import _require, ffi, lib

__all__ = ["read_static", "read_payload", "write_response"]

_OK = 0
_DECRYPT = 2
_ffi: Any = ffi
_lib: Any = lib


def _check(rc: int) -> bool:
    if rc == _OK:
        return True
    if rc == _DECRYPT:
        return False
    raise MemoryError(f"native handshake step failed ({rc})")


def _sized(ok: bool) -> None:
    if _lib is None:
        _require()
    if not ok:
        raise ValueError("keys, hashes and DH results are 32 bytes")


def read_static(h0: bytes, ephemeral: bytes, encrypted_static: bytes, es: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(S_i, C, H) after ``e`` and ``enc(s)`` of an initiation, ``es`` = DH(S_r, E_i)."""
    _sized(len(h0) == len(ephemeral) == len(es) == 32)
    if len(encrypted_static) != 48:
        raise ValueError("encrypted static must be 48 bytes")
    out = _ffi.new("uint8_t[96]")
    if not _check(_lib.wgdp_noise_read_static(h0, ephemeral + encrypted_static, es, out, out + 32, out + 64)):
        return None
    raw = _ffi.buffer(out)[:]
    return raw[:32], raw[32:64], raw[64:]


def read_payload(ck: bytes, h: bytes, ss: bytes, encrypted: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(payload, C, H) after ``enc(payload)`` with the static-static DH ``ss``."""
    _sized(len(ck) == len(h) == len(ss) == 32)
    n = len(encrypted) - 16
    if n < 0:
        return None
    out = _ffi.new("uint8_t[]", 64 + n)
    _ffi.memmove(out, ck + h, 64)
    if not _check(_lib.wgdp_noise_read_payload(out, out + 32, ss, encrypted, len(encrypted), out + 64)):
        return None
    raw = _ffi.buffer(out)[:]
    return raw[64:], raw[:32], raw[32:64]


def write_response(ck: bytes, h: bytes, ephemeral: bytes, ee: bytes, se: bytes, psk: bytes,
                   payload: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(enc(payload), C, H, T1 || T2) of a response with our ephemeral public key ``ephemeral``."""
    _sized(len(ck) == len(h) == len(ephemeral) == len(ee) == len(se) == len(psk) == 32)
    out = _ffi.new("uint8_t[]", 128 + 16 + len(payload))
    _ffi.memmove(out, ck + h, 64)
    _check(_lib.wgdp_noise_write_response(out, out + 32, ephemeral, ee, se, psk, payload, len(payload), out + 128,
                                          out + 64))
    raw = _ffi.buffer(out)[:]
    return raw[128:], raw[:32], raw[32:64], raw[64:128]
