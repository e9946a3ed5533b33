"""mac1, mac2 and cookie replies: WireGuard's DoS defence (wireguard.md §4).

Contract: ``CookieChecker`` is our side for handshake messages addressed to
us -- it checks mac1 and mac2 and builds cookie replies; ``CookieGenerator``
is per peer for handshake messages we send -- it fills in mac1/mac2 and
consumes the cookie replies that peer sends us.  Both work on whole encoded
initiation (148 B) or response (92 B) messages: mac1 covers ``msg[:-32]``
and sits at ``msg[-32:-16]``, mac2 covers ``msg[:-16]`` and sits at
``msg[-16:]``.

Pure: ``now`` (monotonic seconds) and ``rng`` are passed in.  Decisions
about load, resending and endpoints are the engine's, not this module's.

Timeline of a cookie (times relative to the responder's secret Rm)::

    t=0      Rm drawn (lazily, on first need)
    t<=120   cookies tau = MAC(Rm, ip || port) validate mac2
    t>120    next need draws a fresh Rm; older cookies no longer validate
    initiator side: a cookie is used for mac2 for 115 s after it arrived
"""

from __future__ import annotations

import hmac as _hmac
import ipaddress
from typing import Callable, Final

from .config import Endpoint
from .constants import (
    COOKIE_NONCE_SIZE,
    COOKIE_SECRET_MAX_AGE,
    COOKIE_VALID_FOR,
    KEY_SIZE,
    LABEL_COOKIE,
    LABEL_MAC1,
    MAC_SIZE,
)
from .crypto import InvalidTag, hash_, mac, xaead_open, xaead_seal
from .errors import DropReason, HandshakeError, StateError
from .keys import PublicKey
from .messages import CookieReply

__all__ = ["CookieChecker", "CookieGenerator", "mac1_key", "cookie_key", "source_bytes"]

_ZERO_MAC: Final = bytes(MAC_SIZE)
_MIN_LEN: Final = 2 * MAC_SIZE + 4


def mac1_key(public: PublicKey) -> bytes:
    """HASH(LABEL_MAC1 || public): keys mac1 of messages sent to ``public``."""
    return hash_(LABEL_MAC1, public.raw)


def cookie_key(public: PublicKey) -> bytes:
    """HASH(LABEL_COOKIE || public): keys cookie replies sent by ``public``."""
    return hash_(LABEL_COOKIE, public.raw)


def source_bytes(src: Endpoint) -> bytes:
    """The source encoding a cookie is bound to: raw IP bytes || port (big-endian)."""
    host, port = src
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.packed + int(port).to_bytes(2, "big")
    return ip.packed + int(port).to_bytes(2, "big")


def _check_len(msg: bytes) -> None:
    if len(msg) < _MIN_LEN:
        raise ValueError(f"message too short for macs: {len(msg)} bytes")


class CookieChecker:
    """Checks mac1/mac2 of messages addressed to us and issues cookie replies."""

    __slots__ = ("_mac1_key", "_cookie_key", "_secret", "_secret_set")

    def __init__(self, local_public: PublicKey | None) -> None:
        self._mac1_key: bytes | None = None
        self._cookie_key: bytes | None = None
        self._secret: bytes | None = None
        self._secret_set = 0.0
        self.set_public(local_public)

    def set_public(self, pub: PublicKey | None) -> None:
        """Our public key changed (or went away)."""
        if pub is None:
            self._mac1_key = self._cookie_key = None
        else:
            self._mac1_key, self._cookie_key = mac1_key(pub), cookie_key(pub)

    def check_mac1(self, msg: bytes) -> bool:
        """mac1 of a whole handshake message; False without a key."""
        if self._mac1_key is None or len(msg) < _MIN_LEN:
            return False
        expected = mac(self._mac1_key, msg[:-32])
        return _hmac.compare_digest(expected, msg[-32:-16])

    def _cookie(self, src: Endpoint, now: float, rng: Callable[[int], bytes]) -> bytes:
        if self._secret is None or now - self._secret_set > COOKIE_SECRET_MAX_AGE:
            secret = rng(KEY_SIZE)
            if len(secret) != KEY_SIZE:
                raise ValueError("rng returned the wrong number of bytes")
            self._secret, self._secret_set = bytes(secret), now
        return mac(self._secret, source_bytes(src))

    def check_mac2(self, msg: bytes, src: Endpoint, now: float, rng: Callable[[int], bytes]) -> bool:
        """mac2 against the cookie for ``src`` under the current secret."""
        if len(msg) < _MIN_LEN:
            return False
        expected = mac(self._cookie(src, now, rng), msg[:-16])
        return _hmac.compare_digest(expected, msg[-16:])

    def create_reply(self, msg: bytes, receiver: int, src: Endpoint, now: float,
                     rng: Callable[[int], bytes]) -> CookieReply:
        """A cookie reply to ``msg`` (an initiation or response) from ``src``."""
        if self._cookie_key is None:
            raise StateError("no local public key: cannot issue cookies")
        _check_len(msg)
        cookie = self._cookie(src, now, rng)
        nonce = bytes(rng(COOKIE_NONCE_SIZE))
        encrypted = xaead_seal(self._cookie_key, nonce, cookie, msg[-32:-16])
        return CookieReply(receiver, nonce, encrypted)

    def __repr__(self) -> str:
        return f"CookieChecker(has_key={self._mac1_key is not None}, <redacted>)"


class CookieGenerator:
    """Per peer: fills in mac1/mac2 of our messages and consumes that peer's cookies."""

    __slots__ = ("_mac1_key", "_cookie_key", "_cookie", "_cookie_set", "_last_mac1", "_have_sent_mac1")

    def __init__(self, remote_public: PublicKey) -> None:
        self._mac1_key = mac1_key(remote_public)
        self._cookie_key = cookie_key(remote_public)
        self._cookie: bytes | None = None
        self._cookie_set = 0.0
        self._last_mac1 = _ZERO_MAC
        self._have_sent_mac1 = False

    def has_valid_cookie(self, now: float) -> bool:
        """A cookie younger than COOKIE_VALID_FOR (115 s) is held."""
        return self._cookie is not None and now - self._cookie_set < COOKIE_VALID_FOR

    def add_macs(self, msg: bytes, now: float) -> bytes:
        """``msg`` with mac1 and (if a fresh cookie is held) mac2 filled in."""
        _check_len(msg)
        body = bytes(msg[:-32])
        mac1 = mac(self._mac1_key, body)
        self._last_mac1, self._have_sent_mac1 = mac1, True
        if self._cookie is not None and self.has_valid_cookie(now):
            return body + mac1 + mac(self._cookie, body + mac1)
        return body + mac1 + _ZERO_MAC

    def consume_reply(self, reply: CookieReply, now: float) -> None:
        """Decrypt and store a cookie; ``HandshakeError(INVALID_COOKIE)`` otherwise."""
        if not self._have_sent_mac1:
            raise HandshakeError(DropReason.INVALID_COOKIE, "no mac1 awaiting a cookie")
        try:
            cookie = xaead_open(self._cookie_key, reply.nonce, reply.encrypted_cookie, self._last_mac1)
        except InvalidTag:
            raise HandshakeError(DropReason.INVALID_COOKIE) from None
        self._cookie, self._cookie_set = cookie, now
        self._have_sent_mac1 = False

    def __repr__(self) -> str:
        return f"CookieGenerator(has_cookie={self._cookie is not None}, <redacted>)"
