"""The binding to the C handshake arithmetic (``wgdp_noise.c``).

Contract: typed wrappers over the loaded lib (``wgpy._native`` loads it;
this module only calls it).  The X25519 results come in as arguments.  Each
step returns ``None`` for a bad tag (``WGDP_NOISE_DECRYPT``), otherwise its
outputs; remote input never raises here; wrong-size arguments from our own
code raise ``ValueError``, an allocation failure in C ``MemoryError``.  The
pure twin is ``wgpy.handshake_steps.PURE``.
"""

from __future__ import annotations

from typing import Any

from . import _require

__all__ = ["read_static", "read_payload", "write_response"]

_OK = 0
_DECRYPT = 2


def _lib() -> tuple[Any, Any]:
    from . import ffi, lib
    _require()
    return ffi, lib


def _check(rc: int) -> bool:
    if rc == _OK:
        return True
    if rc == _DECRYPT:
        return False
    raise MemoryError(f"native handshake step failed ({rc})")


def _key32(name: str, value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes")
    return value


def read_static(h0: bytes, ephemeral: bytes, encrypted_static: bytes, es: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(S_i, C, H) after ``e`` and ``enc(s)`` of an initiation, ``es`` = DH(S_r, E_i)."""
    ffi, lib = _lib()
    if len(encrypted_static) != 48:
        raise ValueError("encrypted static must be 48 bytes")
    out = ffi.new("uint8_t[96]")
    if not _check(lib.wgdp_noise_read_static(_key32("h0", h0), _key32("ephemeral", ephemeral) + encrypted_static,
                                             _key32("es", es), out, out + 32, out + 64)):
        return None
    raw = bytes(out)
    return raw[:32], raw[32:64], raw[64:]


def read_payload(ck: bytes, h: bytes, ss: bytes, encrypted: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(payload, C, H) after ``enc(payload)`` with the static-static DH ``ss``."""
    ffi, lib = _lib()
    if len(encrypted) < 16:
        return None
    state = ffi.new("uint8_t[64]", _key32("chaining key", ck) + _key32("hash", h))
    payload = ffi.new("uint8_t[]", max(1, len(encrypted) - 16))
    if not _check(lib.wgdp_noise_read_payload(state, state + 32, _key32("ss", ss), encrypted, len(encrypted),
                                              payload)):
        return None
    raw = bytes(state)
    return bytes(ffi.buffer(payload, len(encrypted) - 16)), raw[:32], raw[32:]


def write_response(ck: bytes, h: bytes, ephemeral: bytes, ee: bytes, se: bytes, psk: bytes,
                   payload: bytes) -> tuple[bytes, bytes, bytes]:
    """(enc(payload), C, H) of a response with our ephemeral public key ``ephemeral``."""
    ffi, lib = _lib()
    state = ffi.new("uint8_t[64]", _key32("chaining key", ck) + _key32("hash", h))
    enc = ffi.new("uint8_t[]", len(payload) + 16)
    _check(lib.wgdp_noise_write_response(state, state + 32, _key32("ephemeral", ephemeral), _key32("ee", ee),
                                         _key32("se", se), _key32("psk", psk), payload, len(payload), enc))
    raw = bytes(state)
    return bytes(enc), raw[:32], raw[32:]
