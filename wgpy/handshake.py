"""The Noise_IKpsk2 handshake of one peer (wireguard.md §3).

Contract: this module owns the handshake state machine and its key
derivation -- creating and consuming initiations and responses and deriving
the transport keys (``begin_session``).  It is pure: ephemeral private keys,
indices, the wall-clock timestamp and ``now`` are passed in; it never reads a
clock or an RNG, does no I/O, and does not compute or check mac1/mac2
(``cookie.py``) nor look peers up (the engine does, from
``consume_initiation``'s decrypted static key).

States (``HandshakeState``)::

    ZEROED --create_initiation--> INITIATION_CREATED --consume_response--> RESPONSE_CONSUMED
    ZEROED --accept_initiation--> INITIATION_CONSUMED --create_response--> RESPONSE_CREATED
    RESPONSE_CONSUMED / RESPONSE_CREATED --begin_session--> ZEROED  (returns SessionKeys)

``create_initiation`` and ``accept_initiation`` are valid in any state and
replace whatever was in progress, with one exception: crossing initiations.
An initiation accepted while ours waits for its response keeps ours aside
(``crossed``) until our next initiation or ``clear``; a response to it then
resumes it (``consume_response``), so the two initiations that crossed still
give a session.  wireguard-go and the kernel discard their own initiation
here: each side answers the other's, both answers are dropped, and the pair
waits for a retransmit (REKEY_TIMEOUT).  The wire is the same either way: a
peer that answers our initiation completes a session with us whatever it did
with its own.  A failed consume leaves the state as it
was.  Remote-input failures raise ``HandshakeError(DropReason)``; calls in
the wrong state raise ``StateError``.

The WireGuard messages have fixed sizes (a 12-byte timestamp, an empty
response payload).  The same steps are exposed at the plain-Noise level
(``write_initiation``/``read_initiation``/``write_response``/
``read_response``, messages ``e || s || payload`` and ``e || payload``) so
generic Noise_IKpsk2 vectors with arbitrary payloads and prologue run
through exactly this code.

The responder's arithmetic (consuming an initiation, writing a response)
runs through ``handshake_steps.steps()``: one C call per step when the native
module is loaded, the pure twin otherwise, byte for byte the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from . import handshake_steps
from .constants import IDENTIFIER, INITIATION_MIN_INTERVAL, KEY_SIZE, LABEL_COOKIE, LABEL_MAC1, MAC_SIZE, TAG_SIZE
from .crypto import C0, H0, ZeroDHError, aead_seal, dh, hash_, kdf1, kdf2, kdf3, x25519_key
from .errors import DropReason, HandshakeError, StateError
from .keys import PresharedKey, PrivateKey, PublicKey
from .messages import Initiation, Response, trusted
from .tai64n import ZERO as ZERO_TIMESTAMP
from .tai64n import after

__all__ = [
    "StaticIdentity", "SessionKeys", "HandshakeState", "ConsumedInitiation", "CrossedInitiation", "Handshake",
    "consume_initiation", "read_initiation", "initial_hash",
]

_ZERO_KEY: Final = bytes(KEY_SIZE)
_ZERO_MAC: Final = bytes(MAC_SIZE)
_ENCRYPTED_STATIC_LEN: Final = KEY_SIZE + TAG_SIZE


def initial_hash(remote_static: bytes, prologue: bytes = IDENTIFIER) -> bytes:
    """H after the prologue and the responder's static key (pre-message)."""
    h0 = H0 if prologue == IDENTIFIER else hash_(C0, prologue)
    return hash_(h0, remote_static)


StaticStaticLookup = Callable[[PublicKey], "bytes | None"]
"""The responder's precomputed DH(S_r, S_i) for a decrypted initiator key, or
None when no such peer is configured (the initiation is then dropped without
computing that DH)."""


_dh = handshake_steps.checked_dh
_open = handshake_steps.checked_open


class StaticIdentity:
    """Our static key pair plus the mac1/cookie keys for messages addressed to us."""

    __slots__ = ("private", "public", "key", "mac1_key", "cookie_key", "_initial_hash")

    def __init__(self, private: PrivateKey) -> None:
        self.private = private
        self.public = private.public_key()
        self.key = x25519_key(private.raw)  # loaded once: every DH with it skips the reload
        self.mac1_key = hash_(LABEL_MAC1, self.public.raw)
        self.cookie_key = hash_(LABEL_COOKIE, self.public.raw)
        self._initial_hash = initial_hash(self.public.raw)

    def initial_hash(self, prologue: bytes = IDENTIFIER) -> bytes:
        """H0 mixed with our public key (what an initiator to us starts from)."""
        if prologue == IDENTIFIER:
            return self._initial_hash
        return initial_hash(self.public.raw, prologue)

    def __repr__(self) -> str:
        return f"StaticIdentity(public={self.public.to_base64()!r})"


@dataclass(slots=True)
class SessionKeys:
    """Transport keys from ``begin_session``; the initiator sends with T1."""

    send_key: bytes
    receive_key: bytes
    local_index: int
    remote_index: int
    is_initiator: bool

    def __repr__(self) -> str:
        return (f"SessionKeys(<redacted>, local_index={self.local_index}, "
                f"remote_index={self.remote_index}, is_initiator={self.is_initiator})")


@dataclass(frozen=True, slots=True)
class CrossedInitiation:
    """Our initiation set aside by a crossing one (``Handshake.crossed``)."""

    local_index: int
    local_ephemeral: X25519PrivateKey
    chaining_key: bytes
    hash: bytes

    def __repr__(self) -> str:
        return f"CrossedInitiation(local_index={self.local_index}, <redacted>)"


class HandshakeState(enum.Enum):
    ZEROED = "zeroed"
    INITIATION_CREATED = "initiation-created"
    INITIATION_CONSUMED = "initiation-consumed"
    RESPONSE_CREATED = "response-created"
    RESPONSE_CONSUMED = "response-consumed"


@dataclass(slots=True)
class ConsumedInitiation:
    """A decrypted initiation, before the peer it names has been looked up.

    ``timestamp`` is the decrypted payload: the 12-byte TAI64N label for
    WireGuard, an arbitrary payload on the plain-Noise path.
    """

    remote_static: PublicKey
    sender: int
    ephemeral: bytes
    timestamp: bytes
    chaining_key: bytes
    hash: bytes

    def __repr__(self) -> str:
        return f"ConsumedInitiation(remote_static={self.remote_static!r}, sender={self.sender}, <redacted>)"


def read_initiation(message: bytes, local: StaticIdentity, *, sender: int = 0,
                    prologue: bytes = IDENTIFIER,
                    static_static: StaticStaticLookup | None = None) -> ConsumedInitiation:
    """Responder side of Noise message 1 (``e || enc(s) || enc(payload)``)."""
    if len(message) < KEY_SIZE + _ENCRYPTED_STATIC_LEN + TAG_SIZE:
        raise HandshakeError(DropReason.MALFORMED)
    return _read_initiation(bytes(message[:KEY_SIZE]), bytes(message[KEY_SIZE:KEY_SIZE + _ENCRYPTED_STATIC_LEN]),
                            bytes(message[KEY_SIZE + _ENCRYPTED_STATIC_LEN:]), local, sender, prologue,
                            static_static)


def _read_initiation(ephemeral: bytes, encrypted_static: bytes, encrypted_payload: bytes, local: StaticIdentity,
                     sender: int, prologue: bytes, static_static: StaticStaticLookup | None) -> ConsumedInitiation:
    steps = handshake_steps.steps()
    raw, c, h = steps.read_static(local.private.raw, local.initial_hash(prologue), ephemeral, encrypted_static)
    remote_static = PublicKey(raw)
    if static_static is None:
        ss = _dh(local.key, raw)
    else:
        known = static_static(remote_static)
        if known is None:
            raise HandshakeError(DropReason.UNKNOWN_PEER)
        ss = known
    payload, c, h = steps.read_payload(c, h, ss, encrypted_payload)
    return ConsumedInitiation(remote_static, sender, ephemeral, payload, c, h)


def consume_initiation(msg: Initiation, local: StaticIdentity, *, prologue: bytes = IDENTIFIER,
                       static_static: StaticStaticLookup | None = None) -> ConsumedInitiation:
    """Decrypt an initiation addressed to ``local`` (macs are not checked here).

    With ``static_static`` the responder uses its peers' precomputed
    static-static DH and drops unknown initiators early (``UNKNOWN_PEER``)."""
    return _read_initiation(msg.ephemeral, msg.encrypted_static, msg.encrypted_timestamp, local, msg.sender,
                            prologue, static_static)


@dataclass(slots=True, repr=False, eq=False)
class Handshake:
    """The Noise state of the handshake with one peer."""

    local: StaticIdentity | None
    remote_static: PublicKey
    preshared_key: PresharedKey | None = None
    prologue: bytes = field(default=IDENTIFIER, kw_only=True)
    state: HandshakeState = field(default=HandshakeState.ZEROED, init=False)
    local_index: int = field(default=0, init=False)
    remote_index: int = field(default=0, init=False)
    last_timestamp: bytes = field(default=ZERO_TIMESTAMP, init=False)
    """The greatest timestamp ever accepted from this peer (survives rekeys)."""
    last_initiation_consumed: float | None = field(default=None, init=False)
    precomputed_static_static: bytes | None = field(default=None, init=False)
    """DH(our static, peer static); None without a key or with a low-order peer key."""
    local_ephemeral: X25519PrivateKey | None = field(default=None, init=False)
    remote_ephemeral: bytes | None = field(default=None, init=False)
    _chaining_key: bytes = field(default=_ZERO_KEY, init=False)
    _hash: bytes = field(default=_ZERO_KEY, init=False)
    _initial_hash: bytes = field(default=_ZERO_KEY, init=False)
    _split: bytes = field(default=b"", init=False)
    """T1 || T2 from write_response (the responder's session keys), until begin_session."""
    crossed: CrossedInitiation | None = field(default=None, init=False)
    """Our initiation that a crossing one replaced, until its response, our next initiation or ``clear``
    (its index stays ours: the engine releases it with the handshake's)."""

    def __post_init__(self) -> None:
        self._initial_hash = initial_hash(self.remote_static.raw, self.prologue)
        self.set_local(self.local)

    def __repr__(self) -> str:
        return (f"Handshake(remote_static={self.remote_static!r}, state={self.state.name}, "
                f"local_index={self.local_index}, remote_index={self.remote_index})")

    # -- configuration -----------------------------------------------------

    @property
    def chaining_key(self) -> bytes:
        return self._chaining_key

    @property
    def hash(self) -> bytes:
        return self._hash

    def set_local(self, local: StaticIdentity | None) -> None:
        """Our private key changed: recompute the static-static DH and clear state."""
        self.local = local
        self.precomputed_static_static = None
        if local is not None:
            try:
                self.precomputed_static_static = dh(local.private.raw, self.remote_static.raw)
            except ZeroDHError:
                pass
        self.clear()

    def set_preshared_key(self, psk: PresharedKey | None) -> None:
        self.preshared_key = psk

    def clear(self) -> None:
        """Forget any handshake in progress (keeps the replay/flood memory)."""
        self.state = HandshakeState.ZEROED
        self.local_index = 0
        self.remote_index = 0
        self.local_ephemeral = None
        self.remote_ephemeral = None
        self._chaining_key = _ZERO_KEY
        self._hash = _ZERO_KEY
        self._split = b""
        self.crossed = None

    def _psk(self) -> bytes:
        return _ZERO_KEY if self.preshared_key is None else self.preshared_key.raw

    # -- initiator: message 1 ----------------------------------------------

    def write_initiation(self, ephemeral_private: bytes, payload: bytes) -> bytes:
        """Noise message 1 (``e || enc(s) || enc(payload)``); state INITIATION_CREATED."""
        if len(ephemeral_private) != KEY_SIZE:
            raise ValueError("ephemeral private key must be 32 bytes")
        if self.local is None or self.precomputed_static_static is None:
            raise HandshakeError(DropReason.ZERO_DH, "no private key or low-order peer key")
        key = x25519_key(ephemeral_private)
        ephemeral = key.public_key().public_bytes_raw()
        c = kdf1(C0, ephemeral)
        h = hash_(self._initial_hash, ephemeral)
        c, k = kdf2(c, _dh(key, self.remote_static.raw))
        encrypted_static = aead_seal(k, 0, self.local.public.raw, h)
        h = hash_(h, encrypted_static)
        c, k = kdf2(c, self.precomputed_static_static)
        encrypted_payload = aead_seal(k, 0, payload, h)
        h = hash_(h, encrypted_payload)
        self.clear()
        self.state = HandshakeState.INITIATION_CREATED
        self.local_ephemeral = key
        self._chaining_key, self._hash = c, h
        return ephemeral + encrypted_static + encrypted_payload

    def create_initiation(self, sender_index: int, ephemeral_private: bytes, timestamp: bytes, *,
                          payload: bytes | None = None) -> Initiation:
        """A WireGuard initiation with mac1/mac2 left zero (``cookie.py`` adds them)."""
        body = timestamp if payload is None else payload
        if len(body) != len(ZERO_TIMESTAMP):
            raise ValueError("an Initiation carries exactly 12 payload bytes; use write_initiation")
        if not 0 <= sender_index <= 0xFFFFFFFF:
            raise ValueError("sender index must be a u32")
        raw = self.write_initiation(ephemeral_private, body)
        self.local_index = sender_index
        return Initiation(sender_index, raw[:32], raw[32:80], raw[80:])

    # -- responder: message 1 in, message 2 out -----------------------------

    def accept_initiation(self, consumed: ConsumedInitiation, now: float) -> None:
        """Apply the replay and flood rules, then take over the consumed state."""
        if consumed.remote_static != self.remote_static:
            raise ValueError("consumed initiation belongs to another peer")
        if not after(consumed.timestamp, self.last_timestamp):
            raise HandshakeError(DropReason.REPLAYED_TIMESTAMP)
        last = self.last_initiation_consumed
        if last is not None and now - last < INITIATION_MIN_INTERVAL:
            raise HandshakeError(DropReason.INITIATION_FLOOD)
        crossed = self.crossed
        if self.state is HandshakeState.INITIATION_CREATED and self.local_ephemeral is not None:
            crossed = CrossedInitiation(self.local_index, self.local_ephemeral, self._chaining_key, self._hash)
        self.clear()
        self.crossed = crossed
        self.state = HandshakeState.INITIATION_CONSUMED
        self.remote_index = consumed.sender
        self.remote_ephemeral = consumed.ephemeral
        self._chaining_key, self._hash = consumed.chaining_key, consumed.hash
        self.last_timestamp = consumed.timestamp
        self.last_initiation_consumed = now

    def write_response(self, ephemeral_private: bytes, payload: bytes) -> bytes:
        """Noise message 2 (``e || enc(payload)``); state RESPONSE_CREATED."""
        if self.state is not HandshakeState.INITIATION_CONSUMED or self.remote_ephemeral is None:
            raise StateError(f"cannot create a response in state {self.state.name}")
        if len(ephemeral_private) != KEY_SIZE:
            raise ValueError("ephemeral private key must be 32 bytes")
        ephemeral, encrypted_payload, c, h, self._split = handshake_steps.steps().write_response(
            self._chaining_key, self._hash, ephemeral_private, self.remote_ephemeral, self.remote_static.raw,
            self._psk(), payload)
        self.state = HandshakeState.RESPONSE_CREATED
        self.local_ephemeral = None  # only an initiator needs its ephemeral key again
        self._chaining_key, self._hash = c, h
        return ephemeral + encrypted_payload

    def create_response(self, sender_index: int, ephemeral_private: bytes) -> Response:
        """A WireGuard response with mac1/mac2 left zero."""
        if not 0 <= sender_index <= 0xFFFFFFFF:
            raise ValueError("sender index must be a u32")
        raw = self.write_response(ephemeral_private, b"")
        self.local_index = sender_index
        return trusted(Response, sender_index, self.remote_index, raw[:32], raw[32:], _ZERO_MAC, _ZERO_MAC)

    # -- initiator: message 2 in ---------------------------------------------

    def read_response(self, message: bytes) -> bytes:
        """Consume Noise message 2; returns its payload; state RESPONSE_CONSUMED."""
        if self.state is not HandshakeState.INITIATION_CREATED or self.local_ephemeral is None:
            raise HandshakeError(DropReason.UNEXPECTED_RESPONSE)
        return self._finish_initiation(self.local_index, self.local_ephemeral, self._chaining_key, self._hash,
                                       message)

    def _finish_initiation(self, local_index: int, local_ephemeral: X25519PrivateKey, ck: bytes, h: bytes,
                           message: bytes) -> bytes:
        """Read message 2 against our initiation (``local_index``, its ephemeral key and C, H); only on
        success the state becomes RESPONSE_CONSUMED with that initiation's values."""
        if self.local is None:
            raise HandshakeError(DropReason.UNEXPECTED_RESPONSE)
        if len(message) < KEY_SIZE + TAG_SIZE:
            raise HandshakeError(DropReason.MALFORMED)
        ephemeral = bytes(message[:KEY_SIZE])
        encrypted_payload = bytes(message[KEY_SIZE:])
        c = kdf1(ck, ephemeral)
        h = hash_(h, ephemeral)
        c = kdf1(c, _dh(local_ephemeral, ephemeral))
        c = kdf1(c, _dh(self.local.key, ephemeral))
        c, tau, k = kdf3(c, self._psk())
        h = hash_(h, tau)
        payload = _open(k, encrypted_payload, h)
        h = hash_(h, encrypted_payload)
        self.state = HandshakeState.RESPONSE_CONSUMED
        self.local_index, self.local_ephemeral, self.remote_ephemeral = local_index, local_ephemeral, ephemeral
        self._chaining_key, self._hash = c, h
        return payload

    def consume_response(self, msg: Response) -> None:
        """Consume a response addressed to ``local_index``, or to the ``crossed`` initiation, which it
        resumes (macs already checked)."""
        body = msg.ephemeral + msg.encrypted_nothing
        crossed = self.crossed
        if crossed is not None and msg.receiver == crossed.local_index:
            self._finish_initiation(crossed.local_index, crossed.local_ephemeral, crossed.chaining_key,
                                    crossed.hash, body)
            self.crossed = None
        elif self.state is not HandshakeState.INITIATION_CREATED or msg.receiver != self.local_index:
            raise HandshakeError(DropReason.UNEXPECTED_RESPONSE)
        else:
            self.read_response(body)
        self.remote_index = msg.sender

    # -- both: transport keys -------------------------------------------------

    def begin_session(self) -> SessionKeys:
        """Split: (T1, T2) = KDF2(C, ""); zero the handshake; state ZEROED."""
        if self.state is HandshakeState.RESPONSE_CONSUMED:
            initiator = True
        elif self.state is HandshakeState.RESPONSE_CREATED:
            initiator = False
        else:
            raise StateError(f"cannot begin a session in state {self.state.name}")
        if not initiator and self._split:  # write_response derived them with the last C
            t1, t2 = self._split[:KEY_SIZE], self._split[KEY_SIZE:]
        else:
            t1, t2 = kdf2(self._chaining_key, b"")
        send, receive = (t1, t2) if initiator else (t2, t1)
        keys = SessionKeys(send, receive, self.local_index, self.remote_index, initiator)
        self.state = HandshakeState.ZEROED
        self.local_ephemeral = None
        self.remote_ephemeral = None
        self._chaining_key = _ZERO_KEY
        self._hash = _ZERO_KEY
        self._split = b""
        return keys
