"""The relay frame: one WireGuard datagram wrapped for a relay node (wgpy's extension, not WireGuard).

Contract: ``encode(key, sender, receiver, payload)`` builds a frame and ``decode(key, data)`` checks one and
returns ``RelayFrame`` or the ``DropReason`` it fails with (never raises on remote input).  Layout, one UDP
datagram on the WireGuard port (WireGuard's own types are 1..4 as a little-endian u32, so type 5 cannot be
mistaken for one)::

    off len
    0   1   type = 5 (MESSAGE_RELAY)
    1   1   version = 1
    2   2   reserved, zero
    4   32  sender's static public key
    36  32  receiver's static public key
    68  16  tag = keyed BLAKE2s-128 (key = the 32-byte relay key) over bytes [0:68] || payload
    84  ..  payload: exactly one WireGuard datagram (type 1..4, reserved bytes zero)

The tag proves the frame was made by a holder of the relay key (for kubespan: a cluster member), so a relay is
no open reflector for strangers; it does not hide or protect the payload, which is WireGuard ciphertext that
only the pair can open.  A frame is forwarded unchanged, so the tag stays valid from sender to receiver.
Checks, in order: length/type/version/reserved (``relay-bad-frame``), the tag in constant time
(``relay-bad-mac``), then the payload's own type and minimum size (``relay-bad-frame``).  No I/O.
"""

from __future__ import annotations

import hmac
from typing import NamedTuple

from .constants import (
    MESSAGE_RELAY, MESSAGE_TRANSPORT, RELAY_FRAME_VERSION, RELAY_HEADER_SIZE, RELAY_KEY_SIZE, TRANSPORT_MIN_SIZE,
)
from .crypto import mac
from .errors import DropReason
from .keys import PublicKey

__all__ = ["RelayFrame", "decode", "encode", "tag"]

_PREFIX = bytes((MESSAGE_RELAY, RELAY_FRAME_VERSION, 0, 0))
_TAG_AT = 68


class RelayFrame(NamedTuple):
    """A checked frame: who made it, for whom, and the WireGuard datagram it carries."""

    sender: PublicKey
    receiver: PublicKey
    payload: bytes


def tag(key: bytes, header: bytes, payload: bytes) -> bytes:
    """The frame's tag over its first 68 bytes and the payload."""
    return mac(key, header + payload)


def encode(key: bytes, sender: PublicKey, receiver: PublicKey, payload: bytes) -> bytes:
    """Wrap ``payload`` (one WireGuard datagram) from ``sender`` to ``receiver`` under the relay ``key``."""
    if len(key) != RELAY_KEY_SIZE:
        raise ValueError(f"relay key must be {RELAY_KEY_SIZE} bytes")
    header = _PREFIX + sender.raw + receiver.raw
    return header + tag(key, header, payload) + payload


def decode(key: bytes, data: bytes) -> RelayFrame | DropReason:
    """Check a received frame under the relay ``key``: the frame, or why it is dropped."""
    if len(data) < RELAY_HEADER_SIZE + 4 or data[:4] != _PREFIX:
        return DropReason.RELAY_BAD_FRAME
    payload = data[RELAY_HEADER_SIZE:]
    if not hmac.compare_digest(tag(key, data[:_TAG_AT], payload), data[_TAG_AT:RELAY_HEADER_SIZE]):
        return DropReason.RELAY_BAD_MAC
    if not 1 <= payload[0] <= MESSAGE_TRANSPORT or payload[1:4] != b"\0\0\0":
        return DropReason.RELAY_BAD_FRAME
    if payload[0] == MESSAGE_TRANSPORT and len(payload) < TRANSPORT_MIN_SIZE:
        return DropReason.RELAY_BAD_FRAME
    sender, receiver = data[4:36], data[36:_TAG_AT]
    if sender == receiver:
        return DropReason.RELAY_BAD_FRAME
    return RelayFrame(PublicKey(sender), PublicKey(receiver), payload)
