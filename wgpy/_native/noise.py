"""The binding to the C handshake arithmetic (``wgdp_noise.c``).

Contract: typed wrappers over the lib ``wgpy._native`` loaded (this module
only calls it; importing it without the native module is fine, calling it
raises ``NativeError``).  X25519 runs in C through libsodium's functions as
PyNaCl exports them: ``ready()`` hands their addresses to the lib once and
says whether it has them.  Each step returns its outputs, or the
``DropReason`` of remote input that fails it (``DECRYPTION_FAILED`` for a bad
tag, ``ZERO_DH`` for a low-order point); remote input never raises here;
wrong-size arguments from our own code raise ``ValueError`` (C reads fixed
sizes), an allocation failure in C ``MemoryError``.  The pure twin is
``wgpy.handshake_steps.PURE``.
"""

from __future__ import annotations

from typing import Any

from ..errors import DropReason
from . import _require, ffi, lib

__all__ = ["ready", "read_static", "read_payload", "write_response"]

_OK = 0
_FAILED = {2: DropReason.DECRYPTION_FAILED, 4: DropReason.ZERO_DH}
_ffi: Any = ffi
_lib: Any = lib


def ready() -> bool:
    """Give the lib libsodium's X25519 (PyNaCl's ``crypto_scalarmult`` and ``crypto_scalarmult_base``) once;
    False when the native module or those functions are unavailable (the pure twin serves then)."""
    if _lib is None:
        return False
    if not _lib.wgdp_noise_ready():
        try:
            import nacl.bindings  # noqa: F401  (initialises libsodium)
            from nacl import _sodium
            mult, base = (_ffi.cast("void *", int(_sodium.ffi.cast("uintptr_t", _sodium.ffi.addressof(_sodium.lib, name))))
                          for name in ("crypto_scalarmult", "crypto_scalarmult_base"))
        except (ImportError, AttributeError, TypeError):  # a PyNaCl without that cffi lib: the pure twin
            return False
        _lib.wgdp_noise_set_x25519(mult, base)
    return bool(_lib.wgdp_noise_ready())


def _failed(rc: int) -> DropReason:
    reason = _FAILED.get(rc)
    if reason is None:
        raise MemoryError(f"native handshake step failed ({rc})")
    return reason


def _sized(ok: bool) -> None:
    if _lib is None:
        _require()
    if not ok:
        raise ValueError("keys, hashes and DH results are 32 bytes")


def read_static(local: bytes, h0: bytes, ephemeral: bytes,
                encrypted_static: bytes) -> tuple[bytes, bytes, bytes] | DropReason:
    """(S_i, C, H) after ``e`` and ``enc(s)`` of an initiation to our private key ``local``."""
    _sized(len(local) == len(h0) == len(ephemeral) == 32)
    if len(encrypted_static) != 48:
        raise ValueError("encrypted static must be 48 bytes")
    out = _ffi.new("uint8_t[96]")
    rc = _lib.wgdp_noise_read_static(local, h0, ephemeral + encrypted_static, out, out + 32, out + 64)
    if rc != _OK:
        return _failed(rc)
    raw = _ffi.buffer(out)[:]
    return raw[:32], raw[32:64], raw[64:]


def read_payload(ck: bytes, h: bytes, ss: bytes, encrypted: bytes) -> tuple[bytes, bytes, bytes] | DropReason:
    """(payload, C, H) after ``enc(payload)`` with the static-static DH ``ss``."""
    _sized(len(ck) == len(h) == len(ss) == 32)
    n = len(encrypted) - 16
    if n < 0:
        return DropReason.DECRYPTION_FAILED
    out = _ffi.new("uint8_t[]", 64 + n)
    _ffi.memmove(out, ck + h, 64)
    rc = _lib.wgdp_noise_read_payload(out, out + 32, ss, encrypted, len(encrypted), out + 64)
    if rc != _OK:
        return _failed(rc)
    raw = _ffi.buffer(out)[:]
    return raw[64:], raw[:32], raw[32:64]


def write_response(ck: bytes, h: bytes, ephemeral_private: bytes, remote_ephemeral: bytes, remote_static: bytes,
                   psk: bytes, payload: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes] | DropReason:
    """(E_r, enc(payload), C, H, T1 || T2) of a response from our ephemeral private key."""
    _sized(len(ck) == len(h) == len(ephemeral_private) == len(remote_ephemeral) == len(remote_static)
           == len(psk) == 32)
    out = _ffi.new("uint8_t[]", 160 + 16 + len(payload))
    _ffi.memmove(out, ck + h, 64)
    rc = _lib.wgdp_noise_write_response(out, out + 32, ephemeral_private, remote_ephemeral, remote_static, psk,
                                        payload, len(payload), out + 128, out + 160, out + 64)
    if rc != _OK:
        return _failed(rc)
    raw = _ffi.buffer(out)[:]
    return raw[128:160], raw[160:], raw[:32], raw[32:64], raw[64:128]
