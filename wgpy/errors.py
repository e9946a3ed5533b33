"""The wgpy error tree and the reasons an inbound packet is dropped.

Contract: every error wgpy raises on purpose is a ``WgpyError``.  Remote
input never raises out of the data path: the engine returns a drop and
counts it under a ``DropReason``.  ``ValueError``/``TypeError`` are kept for
misuse of an API by a caller (a wrong length or type handed in by code).
"""

from __future__ import annotations

import enum


class WgpyError(Exception):
    """Base class of every error wgpy raises on purpose."""


class ConfigError(WgpyError):
    """A configuration value is invalid (config file, typed call, CLI)."""


class UapiError(WgpyError):
    """A UAPI request failed; ``errno`` is the positive errno value."""

    def __init__(self, errno: int, message: str = "") -> None:
        super().__init__(message or f"uapi error errno={errno}")
        self.errno = errno


class MessageError(WgpyError):
    """Bytes that are not a well-formed WireGuard message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandshakeError(WgpyError):
    """A handshake or cookie message failed authentication or a rule."""

    def __init__(self, reason: "DropReason", message: str = "") -> None:
        super().__init__(message or reason.value)
        self.reason = reason


class StateError(WgpyError):
    """Local misuse: an operation is not valid in the current state."""


class NativeError(WgpyError):
    """The native data plane failed or is inconsistent with the package."""


class DropReason(enum.Enum):
    """Why an inbound datagram or TUN packet was dropped (counted per reason)."""

    __hash__ = object.__hash__
    """Members are singletons that compare by identity: the identity hash (C) instead of Enum's
    ``hash(name)`` in Python, since counters hash a member per message."""

    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown-type"
    INVALID_MAC1 = "invalid-mac1"
    INVALID_MAC2 = "invalid-mac2"
    COOKIE_SENT = "under-load-cookie-sent"
    RATE_LIMITED = "rate-limited"
    COOKIE_RATE_LIMITED = "cookie-rate-limited"
    UNKNOWN_PEER = "unknown-peer"
    DECRYPTION_FAILED = "decryption-failed"
    REPLAYED_TIMESTAMP = "replayed-timestamp"
    INITIATION_FLOOD = "initiation-flood"
    UNEXPECTED_RESPONSE = "unexpected-response"
    UNKNOWN_INDEX = "unknown-index"
    INVALID_COOKIE = "invalid-cookie"
    KEYPAIR_EXPIRED = "keypair-expired"
    REPLAYED_COUNTER = "replayed-counter"
    INVALID_INNER_PACKET = "invalid-inner-packet"
    DISALLOWED_SOURCE = "disallowed-source"
    NO_PRIVATE_KEY = "no-private-key"
    NO_ROUTE = "no-route"
    NO_ENDPOINT = "no-endpoint"
    HANDSHAKE_QUEUE_FULL = "handshake-queue-full"
    STAGED_OVERFLOW = "staged-overflow"
    ZERO_DH = "zero-dh"
    TUN_DOWN = "tun-down"
    """A TUN write failed with EIO: the link is down (the packet is lost, the daemon carries on)."""
    TUN_QUEUE_FULL = "tun-queue-full"
    """A TUN write failed with ENOBUFS/EAGAIN: the kernel queue is full."""
    RELAY_OFF = "relay-off"
    """A relay frame arrived, or one was to be sent, while relaying is off (no relay key)."""
    RELAY_BAD_FRAME = "relay-bad-frame"
    """A relay frame with a bad length, version, reserved bytes or payload type."""
    RELAY_BAD_MAC = "relay-bad-mac"
    """A relay frame whose tag does not verify under the relay key."""
    RELAY_NOT_SERVING = "relay-not-serving"
    """A relay frame for another node while this one does not serve as a relay."""
    RELAY_NO_ROUTE = "relay-no-route"
    """A relay frame for a node this relay has no direct endpoint for."""
    RELAY_RATE_LIMITED = "relay-rate-limited"
    """A relay frame over its (sender, receiver) pair's rate."""
    RELAY_WRONG_PEER = "relay-wrong-peer"
    """A relayed datagram that does not authenticate as the peer whose key the frame names as sender."""
