"""The responder's handshake arithmetic, as three steps with a pure and a native twin.

Contract: ``read_static`` (after ``e`` and ``enc(s)`` of an initiation),
``read_payload`` (after ``enc(payload)``, given the static-static DH) and
``write_response`` (``e``, ``ee``, ``se``, the PSK and ``enc(payload)`` of a
response) are the Noise_IKpsk2 operations of wireguard.md §3 on plain bytes;
``wgpy.handshake`` keeps the state machine and calls them through
``steps()``.  ``PURE`` computes with ``wgpy.crypto``; ``native()`` (None
when the native module is unavailable or ``WGPY_NATIVE=0``) does each step in one C call
(``wgpy/_native/wgdp_noise.c``): the X25519 operations through the same libsodium ``wgpy.crypto.dh``
uses on raw keys (faster at them than the system libcrypto 3.0 the C module links), HASH, the
HMAC-BLAKE2s KDF chain and the zero-nonce AEAD.  Both give identical bytes for the
same inputs (tests/native/test_noise_diff.py) and raise the same
``HandshakeError`` (``ZERO_DH`` for a low-order point,
``DECRYPTION_FAILED`` for a bad tag).  Pure: no RNG, clock or I/O; the
ephemeral private key is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .crypto import C0, InvalidTag, ZeroDHError, aead_open, aead_seal, dh, hash_, kdf1, kdf2, kdf3, public_from_private
from .errors import DropReason, HandshakeError

__all__ = ["Steps", "PURE", "native", "steps", "STEPS"]

_noise: Any = None
"""wgpy._native.noise once ``native()`` found the module loaded."""


ReadStatic = Callable[[bytes, bytes, bytes, bytes], "tuple[bytes, bytes, bytes]"]
"""(our private key, H0, e, enc(s)) -> (S_i, C, H)"""
ReadPayload = Callable[[bytes, bytes, bytes, bytes], "tuple[bytes, bytes, bytes]"]
"""(C, H, DH(S_r, S_i), enc(payload)) -> (payload, C, H)"""
WriteResponse = Callable[[bytes, bytes, bytes, bytes, bytes, bytes, bytes], "tuple[bytes, bytes, bytes, bytes, bytes]"]
"""(C, H, e_r private, E_i, S_i, Q, payload) -> (E_r, enc(payload), C, H, T1 || T2 = KDF2(C, ""))"""


@dataclass(frozen=True, slots=True)
class Steps:
    name: str
    read_static: ReadStatic
    read_payload: ReadPayload
    write_response: WriteResponse


def checked_dh(private: bytes | X25519PrivateKey, public: bytes) -> bytes:
    """DH that answers an all-zero result (a low-order point) with a ``HandshakeError`` drop."""
    try:
        return dh(private, public)
    except ZeroDHError:
        raise HandshakeError(DropReason.ZERO_DH) from None


def checked_open(key: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """The handshake's zero-nonce AEAD open; a bad tag is a ``HandshakeError`` drop."""
    try:
        return aead_open(key, 0, ciphertext, ad)
    except InvalidTag:
        raise HandshakeError(DropReason.DECRYPTION_FAILED) from None


_dh = checked_dh
_open = checked_open


def _pure_read_static(local: bytes, h0: bytes, ephemeral: bytes,
                      encrypted_static: bytes) -> tuple[bytes, bytes, bytes]:
    c = kdf1(C0, ephemeral)
    h = hash_(h0, ephemeral)
    c, k = kdf2(c, _dh(local, ephemeral))
    remote_static = _open(k, encrypted_static, h)
    return remote_static, c, hash_(h, encrypted_static)


def _pure_read_payload(c: bytes, h: bytes, ss: bytes, encrypted: bytes) -> tuple[bytes, bytes, bytes]:
    c, k = kdf2(c, ss)
    payload = _open(k, encrypted, h)
    return payload, c, hash_(h, encrypted)


def _pure_write_response(c: bytes, h: bytes, ephemeral_private: bytes, remote_ephemeral: bytes,
                         remote_static: bytes, psk: bytes, payload: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    ephemeral = public_from_private(ephemeral_private)
    c = kdf1(c, ephemeral)
    h = hash_(h, ephemeral)
    c = kdf1(c, _dh(ephemeral_private, remote_ephemeral))
    c = kdf1(c, _dh(ephemeral_private, remote_static))
    c, tau, k = kdf3(c, psk)
    h = hash_(h, tau)
    encrypted = aead_seal(k, 0, payload, h)
    t1, t2 = kdf2(c, b"")
    return ephemeral, encrypted, c, hash_(h, encrypted), t1 + t2


def _native_ok(out: Any) -> Any:
    """A native step's outputs, or ``HandshakeError`` for the ``DropReason`` it answered instead."""
    if isinstance(out, DropReason):
        raise HandshakeError(out)
    return out


def _native_read_static(local: bytes, h0: bytes, ephemeral: bytes,
                        encrypted_static: bytes) -> tuple[bytes, bytes, bytes]:
    return _native_ok(_noise.read_static(local, h0, ephemeral, encrypted_static))  # type: ignore[no-any-return]


def _native_read_payload(c: bytes, h: bytes, ss: bytes, encrypted: bytes) -> tuple[bytes, bytes, bytes]:
    return _native_ok(_noise.read_payload(c, h, ss, encrypted))  # type: ignore[no-any-return]


def _native_write_response(c: bytes, h: bytes, ephemeral_private: bytes, remote_ephemeral: bytes, remote_static: bytes,
                           psk: bytes, payload: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    return _native_ok(_noise.write_response(c, h, ephemeral_private, remote_ephemeral,  # type: ignore[no-any-return]
                                            remote_static, psk, payload))


PURE: Final = Steps("pure", _pure_read_static, _pure_read_payload, _pure_write_response)
_NATIVE: Final = Steps("native", _native_read_static, _native_read_payload, _native_write_response)
STEPS: Steps | None = None
"""The steps wgpy.handshake uses, chosen on first use (tests set it to run both twins)."""


def native() -> Steps | None:
    """The native steps, or None when the native module is unavailable.  The module is loaded here, not
    at import: importing wgpy must not load it before a caller could set WGPY_NATIVE."""
    global _noise
    from . import _native
    if not _native.available():
        return None
    from ._native import noise
    if not noise.ready():
        return None
    _noise = noise
    return _NATIVE


def steps() -> Steps:
    global STEPS
    if STEPS is None:
        STEPS = native() or PURE
    return STEPS
