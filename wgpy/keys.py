"""Key value types: exact 32-byte keys with base64/hex codecs.

Contract: a key object always holds exactly 32 bytes.  Equality is constant
time.  ``repr`` and ``str`` of secret keys never show key material; public
keys show their base64 form, as ``wg`` does.  Private keys are stored as
given; X25519 clamps the scalar on every use (``clamped()`` shows the clamped
form).  No I/O, no RNG: callers generate keys with ``PrivateKey.generate(rng)``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Callable, TypeVar

from .errors import ConfigError

KEY_LEN = 32
_ZERO = bytes(KEY_LEN)

K = TypeVar("K", bound="_Key")


class _Key:
    __slots__ = ("_raw",)
    _secret = True

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError("key must be bytes")
        raw = bytes(raw)
        if len(raw) != KEY_LEN:
            raise ValueError(f"key must be {KEY_LEN} bytes, got {len(raw)}")
        self._raw = raw

    @classmethod
    def from_base64(cls: type[K], text: str) -> K:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{cls.__name__}: not valid base64") from exc
        if len(raw) != KEY_LEN or len(text.strip()) != 44:
            raise ConfigError(f"{cls.__name__}: must be 32 bytes of base64")
        return cls(raw)

    @classmethod
    def from_hex(cls: type[K], text: str) -> K:
        if len(text) != 2 * KEY_LEN or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ConfigError(f"{cls.__name__}: must be 64 hex characters")
        return cls(bytes.fromhex(text))

    def __bytes__(self) -> bytes:
        return self._raw

    @property
    def raw(self) -> bytes:
        return self._raw

    def to_base64(self) -> str:
        return base64.b64encode(self._raw).decode("ascii")

    def to_hex(self) -> str:
        return self._raw.hex()

    def is_zero(self) -> bool:
        return hmac.compare_digest(self._raw, _ZERO)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Key)
        return hmac.compare_digest(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._raw))

    def __repr__(self) -> str:
        if self._secret:
            return f"{type(self).__name__}(<redacted>)"
        return f"{type(self).__name__}({self.to_base64()!r})"

    __str__ = __repr__


class PublicKey(_Key):
    """A Curve25519 public key (a peer's identity)."""

    __slots__ = ()
    _secret = False


class PresharedKey(_Key):
    """A symmetric preshared key mixed into the handshake (psk2)."""

    __slots__ = ()

    @classmethod
    def generate(cls, rng: Callable[[int], bytes]) -> PresharedKey:
        return cls(rng(KEY_LEN))


class PrivateKey(_Key):
    """A Curve25519 private key; ``public_key()`` derives the public half."""

    __slots__ = ("_public",)

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw)
        self._public: PublicKey | None = None

    @classmethod
    def generate(cls, rng: Callable[[int], bytes]) -> PrivateKey:
        return cls(clamp(rng(KEY_LEN)))

    def clamped(self) -> bytes:
        return clamp(self._raw)

    def public_key(self) -> PublicKey:
        if self._public is None:
            from .crypto import public_from_private  # libsodium's fixed-base multiplication (clamps)

            self._public = PublicKey(public_from_private(self._raw))
        return self._public


def clamp(raw: bytes) -> bytes:
    """Curve25519 scalar clamping (RFC 7748 §5)."""
    b = bytearray(raw)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)
