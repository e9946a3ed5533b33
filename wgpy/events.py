"""Peer events: what the engine tells its shell about handshakes and sessions.

Contract: ``Event`` names the control-plane moments an operator wants to see
(wireguard-go logs them at its verbose level): handshake messages sent and
received, cookie replies, keypairs created, the timer decisions to retry,
give up or forget keys, keepalives, a peer's path moving to a relay or
back to direct (wgpy.relay), and the moment a handshake completes
(what ``wg``'s latest-handshake reports; a shell that tracks peer state reacts
to it instead of polling).  ``Device.note`` counts each one in
``Device.events`` (a counter the metrics read at scrape time) and hands it to
the device's optional ``on_event`` sink with the peer (None for a cookie
reply sent before any peer is known) and the remote endpoint when one is
involved.  None of these is per transport packet except keepalives, which
come at most once per keepalive interval.  The sink runs synchronously inside
the engine call; it must not call back into the device.  No I/O here: the
shell decides what a sink does (``wgpy.io.eventlog`` writes log lines).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Callable, Optional

from .config import Endpoint

if TYPE_CHECKING:
    from .peer import Peer


class Event(enum.Enum):
    __hash__ = object.__hash__
    """Members are singletons that compare by identity: the identity hash (C) instead of Enum's
    ``hash(name)`` in Python, since counters hash a member per message."""
    INITIATION_SENT = "initiation-sent"
    INITIATION_RECEIVED = "initiation-received"
    RESPONSE_SENT = "response-sent"
    RESPONSE_RECEIVED = "response-received"
    COOKIE_REPLY_SENT = "cookie-reply-sent"
    COOKIE_REPLY_RECEIVED = "cookie-reply-received"
    KEYPAIR_CREATED = "keypair-created"
    HANDSHAKE_COMPLETE = "handshake-complete"
    """A session is confirmed and the peer's last-handshake time was just set: the initiator consumed the
    response, or the responder received the first transport message of the new keypair."""
    HANDSHAKE_RETRY = "handshake-retry"
    """REKEY_TIMEOUT passed without a response: the initiation is sent again."""
    HANDSHAKE_GIVE_UP = "handshake-give-up"
    """MAX_TIMER_HANDSHAKES retries without a response: staged packets are dropped."""
    HANDSHAKE_STALE = "handshake-stale"
    """Data sent but nothing heard for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: a new handshake."""
    KEYS_ZEROED = "keys-zeroed"
    """No new session for REJECT_AFTER_TIME * 3: every key of the peer is forgotten."""
    KEEPALIVE_SENT = "keepalive-sent"
    KEEPALIVE_RECEIVED = "keepalive-received"
    PATH_RELAYED = "path-relayed"
    """An authenticated datagram came through a relay: the peer's endpoint is now that relay (wgpy.relay)."""
    PATH_DIRECT = "path-direct"
    """An authenticated datagram of a relayed peer came directly: the peer left the relay."""


EventSink = Callable[[Event, Optional["Peer"], Optional[Endpoint]], None]
"""``sink(event, peer, endpoint)``: called once per event, inside the engine call."""

__all__ = ["Event", "EventSink"]
