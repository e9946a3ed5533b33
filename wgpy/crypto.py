"""WireGuard's cryptographic primitives (wireguard.md §1).

Contract: pure functions over bytes; no RNG is read here (callers pass
random bytes in).  HASH is BLAKE2s-256, MAC is keyed BLAKE2s-128 (not HMAC),
HMAC is RFC 2104 over BLAKE2s, KDF1..3 are HKDF over that HMAC, DH is X25519
with the all-zero result rejected (on raw private bytes through libsodium,
whose X25519 is the faster here: ~32 us a DH, ~18 us a public key from a
fixed-base multiplication; on a loaded ``X25519PrivateKey`` through
OpenSSL), AEAD is ChaCha20-Poly1305 with the nonce
``0^4 || le64(counter)``, XAEAD is XChaCha20-Poly1305.  Authentication
failures raise ``cryptography.exceptions.InvalidTag``; callers turn that into
a counted drop.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)
from nacl.exceptions import CryptoError
from nacl.exceptions import RuntimeError as SodiumError

from .constants import CONSTRUCTION, IDENTIFIER

__all__ = [
    "InvalidTag", "ZeroDHError", "hash_", "mac", "hmac", "kdf1", "kdf2", "kdf3", "dh",
    "Aead", "aead_seal", "aead_open", "xaead_seal", "xaead_open", "counter_nonce",
    "C0", "H0", "public_from_private", "x25519_key",
]

_NONCE = struct.Struct("<4xQ")


class ZeroDHError(ValueError):
    """X25519 produced the all-zero shared secret (low-order point)."""


def hash_(*parts: bytes) -> bytes:
    """HASH(parts...) = BLAKE2s-256 of the concatenation."""
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def mac(key: bytes, data: bytes) -> bytes:
    """MAC(key, data): keyed BLAKE2s with a 16-byte output."""
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


_IPAD = int.from_bytes(b"\x36" * 64, "big")
_OPAD = int.from_bytes(b"\x5c" * 64, "big")
_BLAKE2S = hashlib.blake2s


def _pads(key: bytes) -> tuple["hashlib.blake2s", "hashlib.blake2s"]:
    """BLAKE2s states after the HMAC inner and outer key blocks (RFC 2104, B = 64)."""
    if len(key) > 64:
        key = _BLAKE2S(key).digest()
    k = int.from_bytes(key.ljust(64, b"\x00"), "big")
    return _BLAKE2S((k ^ _IPAD).to_bytes(64, "big")), _BLAKE2S((k ^ _OPAD).to_bytes(64, "big"))


def _finish(pads: tuple["hashlib.blake2s", "hashlib.blake2s"], data: bytes) -> bytes:
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(data)
    outer.update(inner.digest())
    return outer.digest()


def hmac(key: bytes, data: bytes) -> bytes:
    """HMAC-BLAKE2s-256 (RFC 2104, block size 64)."""
    return _finish(_pads(key), data)


def kdf1(key: bytes, data: bytes) -> bytes:
    return _finish(_pads(hmac(key, data)), b"\x01")


def kdf2(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    pads = _pads(hmac(key, data))
    t1 = _finish(pads, b"\x01")
    return t1, _finish(pads, t1 + b"\x02")


def kdf3(key: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
    pads = _pads(hmac(key, data))
    t1 = _finish(pads, b"\x01")
    t2 = _finish(pads, t1 + b"\x02")
    return t1, t2, _finish(pads, t2 + b"\x03")


def x25519_key(private: bytes) -> X25519PrivateKey:
    """Load a private scalar once (this derives its public key: one scalar
    multiplication), for callers that use the same key in several DHs."""
    return X25519PrivateKey.from_private_bytes(private)


def dh(private: bytes | X25519PrivateKey, public: bytes) -> bytes:
    """X25519(private, public); raises ``ZeroDHError`` on an all-zero result."""
    if not isinstance(private, X25519PrivateKey):
        if len(private) != 32 or len(public) != 32:
            raise ValueError("X25519 keys are 32 bytes")
        try:
            shared = crypto_scalarmult(bytes(private), bytes(public))
        except SodiumError as exc:  # libsodium refuses the all-zero output itself
            raise ZeroDHError("all-zero DH result") from exc
    else:
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError as exc:  # OpenSSL refuses the all-zero output itself
            raise ZeroDHError("all-zero DH result") from exc
    if not any(shared):
        raise ZeroDHError("all-zero DH result")
    return shared


def public_from_private(private: bytes) -> bytes:
    """X25519(private, 9): the public key (a fixed-base multiplication, clamping applied)."""
    if len(private) != 32:
        raise ValueError("X25519 keys are 32 bytes")
    return crypto_scalarmult_base(bytes(private))


def counter_nonce(counter: int) -> bytes:
    """The 12-byte transport nonce: four zero bytes then le64(counter)."""
    return _NONCE.pack(counter)


class Aead:
    """A ChaCha20-Poly1305 context keyed once (one per keypair direction)."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)

    def seal(self, counter: int, plaintext: bytes, ad: bytes = b"") -> bytes:
        return self._aead.encrypt(_NONCE.pack(counter), plaintext, ad or None)

    def open(self, counter: int, ciphertext: bytes, ad: bytes = b"") -> bytes:
        return self._aead.decrypt(_NONCE.pack(counter), ciphertext, ad or None)

    def __repr__(self) -> str:
        return "Aead(<redacted>)"


def aead_seal(key: bytes, counter: int, plaintext: bytes, ad: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_NONCE.pack(counter), plaintext, ad or None)


def aead_open(key: bytes, counter: int, ciphertext: bytes, ad: bytes) -> bytes:
    return ChaCha20Poly1305(key).decrypt(_NONCE.pack(counter), ciphertext, ad or None)


def xaead_seal(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    return bytes(crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key))


def xaead_open(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    try:
        return bytes(crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key))
    except CryptoError as exc:
        raise InvalidTag() from exc


C0: bytes = hash_(CONSTRUCTION)
H0: bytes = hash_(C0, IDENTIFIER)
