"""WireGuard wire messages: the four message types and their exact codec.

Contract (wireguard.md §2): this module owns the byte layout of the
initiation (148 B), response (92 B), cookie reply (64 B) and transport
(>= 32 B) messages.  All integers are little-endian; the type word is a u32
whose bytes 1-3 must be zero.  ``decode`` is strict: exact sizes for types
1-3, at least 32 bytes for type 4, the right type word.  Any input either
decodes or raises ``MessageError`` -- never ``struct.error``, ``IndexError``
or anything else.  Constructors validate field sizes and raise
``ValueError`` (that is misuse by local code, not remote input).

This module does no cryptography: macs and ciphertexts are opaque bytes
here (``handshake.py`` and ``cookie.py`` fill them in).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, Self, TypeVar

from .constants import (
    COOKIE_NONCE_SIZE,
    COOKIE_REPLY_SIZE,
    INITIATION_SIZE,
    KEY_SIZE,
    MAC_SIZE,
    RESPONSE_SIZE,
    TAG_SIZE,
    TIMESTAMP_SIZE,
    TRANSPORT_HEADER_SIZE,
    TRANSPORT_MIN_SIZE,
)
from .errors import MessageError

__all__ = [
    "MessageType", "Message", "Initiation", "Response", "CookieReply", "Transport",
    "message_type", "decode_message", "transport_header", "encode_transport_header",
    "ENCRYPTED_STATIC_SIZE", "ENCRYPTED_TIMESTAMP_SIZE", "ENCRYPTED_NOTHING_SIZE",
    "ENCRYPTED_COOKIE_SIZE", "HANDSHAKE_SIZES", "trusted",
]

ENCRYPTED_STATIC_SIZE: Final = KEY_SIZE + TAG_SIZE  # 48
ENCRYPTED_TIMESTAMP_SIZE: Final = TIMESTAMP_SIZE + TAG_SIZE  # 28
ENCRYPTED_NOTHING_SIZE: Final = TAG_SIZE  # 16
ENCRYPTED_COOKIE_SIZE: Final = MAC_SIZE + TAG_SIZE  # 32

HANDSHAKE_SIZES: Final[dict[int, int]] = {
    1: INITIATION_SIZE, 2: RESPONSE_SIZE, 3: COOKIE_REPLY_SIZE,
}
"""Exact sizes of the handshake-type messages, by type byte."""

_U32_MAX: Final = 0xFFFFFFFF
_U64_MAX: Final = 0xFFFFFFFFFFFFFFFF

_TYPE = struct.Struct("<I")
_INITIATION_HEAD = struct.Struct("<II")  # type, sender
_RESPONSE_HEAD = struct.Struct("<III")  # type, sender, receiver
_COOKIE_HEAD = struct.Struct("<II")  # type, receiver
_TRANSPORT_HEAD = struct.Struct("<IIQ")  # type, receiver, counter
_TRANSPORT_FIELDS = struct.Struct("<4xIQ")  # receiver, counter


class MessageType(enum.IntEnum):
    """The u32 type word of each WireGuard message."""

    INITIATION = 1
    RESPONSE = 2
    COOKIE_REPLY = 3
    TRANSPORT = 4


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise MessageError(f"expected bytes, got {type(data).__name__}")


def message_type(data: bytes) -> MessageType:
    """The type of ``data``; ``MessageError`` if short, reserved bytes set or unknown."""
    data = _as_bytes(data)
    if len(data) < 4:
        raise MessageError("shorter than the 4-byte type word")
    (word,) = _TYPE.unpack_from(data)
    if not 1 <= word <= 4:  # also catches non-zero reserved bytes 1..3
        raise MessageError(f"unknown message type word 0x{word:08x}")
    return MessageType(word)


def _expect(data: object, mtype: MessageType, size: int | None, min_size: int = 0) -> bytes:
    raw = _as_bytes(data)
    if size is not None and len(raw) != size:
        raise MessageError(f"{mtype.name.lower()} must be {size} bytes, got {len(raw)}")
    if len(raw) < min_size:
        raise MessageError(f"{mtype.name.lower()} must be >= {min_size} bytes, got {len(raw)}")
    if message_type(raw) is not mtype:
        raise MessageError(f"not a {mtype.name.lower()} message")
    return raw


_M = TypeVar("_M")


def trusted(cls: type[_M], *values: object) -> _M:
    """A message built from field values that have their types and sizes by construction (a decode's own
    slices, the handshake's own outputs): the constructor's checks are skipped, the fields are the same."""
    obj = object.__new__(cls)
    for name, value in zip(cls.__slots__, values):  # type: ignore[attr-defined]
        object.__setattr__(obj, name, value)
    return obj


def _check_u32(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= _U32_MAX:
        raise ValueError(f"{name} must be a u32, got {value!r}")


def _check_u64(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= _U64_MAX:
        raise ValueError(f"{name} must be a u64, got {value!r}")


def _check_len(obj: object, name: str, size: int, *, at_least: bool = False) -> None:
    value = getattr(obj, name)
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
        object.__setattr__(obj, name, value)  # normalise inside a frozen dataclass
    if not isinstance(value, bytes):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    if (len(value) < size) if at_least else (len(value) != size):
        rel = ">= " if at_least else ""
        raise ValueError(f"{name} must be {rel}{size} bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class Initiation:
    """Type 1, handshake initiation (148 bytes)."""

    sender: int
    ephemeral: bytes
    encrypted_static: bytes
    encrypted_timestamp: bytes
    mac1: bytes = bytes(MAC_SIZE)
    mac2: bytes = bytes(MAC_SIZE)

    def __post_init__(self) -> None:
        _check_u32("sender", self.sender)
        _check_len(self, "ephemeral", KEY_SIZE)
        _check_len(self, "encrypted_static", ENCRYPTED_STATIC_SIZE)
        _check_len(self, "encrypted_timestamp", ENCRYPTED_TIMESTAMP_SIZE)
        _check_len(self, "mac1", MAC_SIZE)
        _check_len(self, "mac2", MAC_SIZE)

    def encode(self) -> bytes:
        return b"".join((
            _INITIATION_HEAD.pack(MessageType.INITIATION, self.sender), self.ephemeral,
            self.encrypted_static, self.encrypted_timestamp, self.mac1, self.mac2,
        ))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        raw = _expect(data, MessageType.INITIATION, INITIATION_SIZE)
        _, sender = _INITIATION_HEAD.unpack_from(raw)
        return trusted(cls, sender, raw[8:40], raw[40:88], raw[88:116], raw[116:132], raw[132:148])


@dataclass(frozen=True, slots=True)
class Response:
    """Type 2, handshake response (92 bytes)."""

    sender: int
    receiver: int
    ephemeral: bytes
    encrypted_nothing: bytes
    mac1: bytes = bytes(MAC_SIZE)
    mac2: bytes = bytes(MAC_SIZE)

    def __post_init__(self) -> None:
        _check_u32("sender", self.sender)
        _check_u32("receiver", self.receiver)
        _check_len(self, "ephemeral", KEY_SIZE)
        _check_len(self, "encrypted_nothing", ENCRYPTED_NOTHING_SIZE)
        _check_len(self, "mac1", MAC_SIZE)
        _check_len(self, "mac2", MAC_SIZE)

    def encode(self) -> bytes:
        return b"".join((
            _RESPONSE_HEAD.pack(MessageType.RESPONSE, self.sender, self.receiver),
            self.ephemeral, self.encrypted_nothing, self.mac1, self.mac2,
        ))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        raw = _expect(data, MessageType.RESPONSE, RESPONSE_SIZE)
        _, sender, receiver = _RESPONSE_HEAD.unpack_from(raw)
        return trusted(cls, sender, receiver, raw[12:44], raw[44:60], raw[60:76], raw[76:92])


@dataclass(frozen=True, slots=True)
class CookieReply:
    """Type 3, cookie reply (64 bytes)."""

    receiver: int
    nonce: bytes
    encrypted_cookie: bytes

    def __post_init__(self) -> None:
        _check_u32("receiver", self.receiver)
        _check_len(self, "nonce", COOKIE_NONCE_SIZE)
        _check_len(self, "encrypted_cookie", ENCRYPTED_COOKIE_SIZE)

    def encode(self) -> bytes:
        return b"".join((
            _COOKIE_HEAD.pack(MessageType.COOKIE_REPLY, self.receiver),
            self.nonce, self.encrypted_cookie,
        ))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        raw = _expect(data, MessageType.COOKIE_REPLY, COOKIE_REPLY_SIZE)
        _, receiver = _COOKIE_HEAD.unpack_from(raw)
        return cls(receiver, raw[8:32], raw[32:64])


@dataclass(frozen=True, slots=True)
class Transport:
    """Type 4, transport data: header then ciphertext incl. the 16-byte tag."""

    receiver: int
    counter: int
    encrypted: bytes

    def __post_init__(self) -> None:
        _check_u32("receiver", self.receiver)
        _check_u64("counter", self.counter)
        _check_len(self, "encrypted", TAG_SIZE, at_least=True)

    def encode(self) -> bytes:
        return _TRANSPORT_HEAD.pack(MessageType.TRANSPORT, self.receiver, self.counter) + self.encrypted

    @classmethod
    def decode(cls, data: bytes) -> Self:
        raw = _expect(data, MessageType.TRANSPORT, None, TRANSPORT_MIN_SIZE)
        receiver, counter = _TRANSPORT_FIELDS.unpack_from(raw)
        return cls(receiver, counter, raw[TRANSPORT_HEADER_SIZE:])


Message = Initiation | Response | CookieReply | Transport

_DECODERS: Final[dict[MessageType, type[Initiation] | type[Response] | type[CookieReply] | type[Transport]]] = {
    MessageType.INITIATION: Initiation,
    MessageType.RESPONSE: Response,
    MessageType.COOKIE_REPLY: CookieReply,
    MessageType.TRANSPORT: Transport,
}


def decode_message(data: bytes) -> Initiation | Response | CookieReply | Transport:
    """Decode any WireGuard message; ``MessageError`` on anything malformed."""
    return _DECODERS[message_type(data)].decode(data)


def transport_header(data: bytes) -> tuple[int, int]:
    """(receiver, counter) of a transport message already checked for type and length."""
    receiver, counter = _TRANSPORT_FIELDS.unpack_from(data)
    return receiver, counter


def encode_transport_header(receiver: int, counter: int) -> bytes:
    """The 16-byte transport header for ``receiver`` and ``counter``."""
    try:
        return _TRANSPORT_HEAD.pack(MessageType.TRANSPORT, receiver, counter)
    except struct.error as exc:
        raise ValueError(f"receiver/counter out of range: {exc}") from None
