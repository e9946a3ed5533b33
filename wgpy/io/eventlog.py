"""Log lines for the engine's peer events, in wireguard-go's words.

Contract: ``EventLog(logger)`` is a ``wgpy.events.EventSink``: each event
becomes one record at INFO (the daemon's ``LOG_LEVEL=verbose``) with the
sentence wireguard-go's verbose log uses for the same moment ("peer(AbCd…wXyZ)
- Sending handshake initiation", "Receiving cookie response from 192.0.2.1:51820"),
so operators can grep our logs as they grep its.  A peer is named by
``short_key``: the first four and the last four characters of its public key
in base64 -- never a private or preshared key.  Keypair creation is logged as
the kernel module does ("Keypair 3 created"), numbered per device from 1.
Keepalives are logged at DEBUG only: they come every few seconds per peer.
Formatting runs only when the logger is enabled for the record's level.
"""

from __future__ import annotations

import logging

from ..config import Endpoint
from ..constants import MAX_TIMER_HANDSHAKES, NEW_HANDSHAKE_TIMEOUT, REKEY_TIMEOUT, ZERO_KEY_MATERIAL_AFTER
from ..events import Event
from ..keys import PublicKey
from ..peer import Peer

_PEER_TEXT = {
    Event.INITIATION_SENT: "Sending handshake initiation",
    Event.INITIATION_RECEIVED: "Received handshake initiation",
    Event.RESPONSE_SENT: "Sending handshake response",
    Event.RESPONSE_RECEIVED: "Received handshake response",
    Event.HANDSHAKE_GIVE_UP: f"Handshake did not complete after {MAX_TIMER_HANDSHAKES + 2} attempts, giving up",
    Event.HANDSHAKE_STALE: f"Retrying handshake because we stopped hearing back after {int(NEW_HANDSHAKE_TIMEOUT)} "
                           "seconds",
    Event.KEYS_ZEROED: f"Removing all keys, since we haven't received a new one in {int(ZERO_KEY_MATERIAL_AFTER)} "
                       "seconds",
    Event.KEEPALIVE_SENT: "Sending keepalive packet",
    Event.KEEPALIVE_RECEIVED: "Receiving keepalive packet",
    Event.PATH_RELAYED: "Reached through a relay now",
    Event.PATH_DIRECT: "Back on a direct path",
}
_DEBUG_ONLY = frozenset({Event.KEEPALIVE_SENT, Event.KEEPALIVE_RECEIVED})


def short_key(key: PublicKey) -> str:
    """``peer(AbCd…wXyZ)``: how wireguard-go names a peer in its log."""
    text = key.to_base64()
    return f"peer({text[:4]}…{text[39:43]})"


def format_endpoint(endpoint: Endpoint | None) -> str:
    if endpoint is None:
        return "(none)"
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EventLog:
    """A sink that writes one log record per event (see the module contract)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger
        self._keypairs = 0

    def __call__(self, event: Event, peer: Peer | None, endpoint: Endpoint | None) -> None:
        if event is Event.KEYPAIR_CREATED:
            self._keypairs += 1
        level = logging.DEBUG if event in _DEBUG_ONLY else logging.INFO
        if not self.log.isEnabledFor(level):
            return
        self.log.log(level, "%s", self.text(event, peer, endpoint))

    def text(self, event: Event, peer: Peer | None, endpoint: Endpoint | None) -> str:
        """The sentence for one event."""
        if event is Event.COOKIE_REPLY_SENT:
            return f"Sending cookie response for denied handshake message for {format_endpoint(endpoint)}"
        if event is Event.COOKIE_REPLY_RECEIVED:
            return f"Receiving cookie response from {format_endpoint(endpoint)}"
        name = short_key(peer.public_key) if peer is not None else "peer(?)"
        if event is Event.KEYPAIR_CREATED:
            return f"{name} - Keypair {self._keypairs} created"
        if event is Event.HANDSHAKE_RETRY:
            attempt = peer.timers.handshake_attempts + 1 if peer is not None else 0
            return f"{name} - Handshake did not complete after {int(REKEY_TIMEOUT)} seconds, retrying (try {attempt})"
        if event in (Event.PATH_RELAYED, Event.PATH_DIRECT):
            return f"{name} - {_PEER_TEXT[event]} ({format_endpoint(endpoint)})"
        return f"{name} - {_PEER_TEXT[event]}"
