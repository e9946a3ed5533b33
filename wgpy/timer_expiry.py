"""What each expired per-peer timer does (wireguard.md §6; wireguard-go's ``expired*`` handlers in timers.go).

Contract: ``expired(dev, peer, timer, now, out)`` carries out one timer that ``PeerTimers.expired`` reported:
retransmit the initiation (or give up after ``MAX_TIMER_HANDSHAKES`` and drop what is staged; deferred one more
REKEY_TIMEOUT when a response we sent since holds it back under the rate limit: crossing initiations), send a keepalive,
start a new handshake, zero the session keys, send a persistent keepalive, or probe a relayed peer's direct
endpoint (``wgpy.relay.send_probe``); the datagrams go to ``out``.
``Device.handle_timeout`` calls it; ``timers.py`` keeps only the deadlines.  Sans-IO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import relay, send
from .actions import Action
from .constants import KEEPALIVE_TIMEOUT, MAX_TIMER_HANDSHAKES, REKEY_TIMEOUT
from .events import Event
from .peer import Peer
from .timers import Timer

if TYPE_CHECKING:
    from .device import Device


def expired(dev: Device, peer: Peer, timer: Timer, now: float, out: list[Action]) -> None:
    """Carry out one expired timer (wireguard.md §6; wireguard-go's ``expired*`` handlers)."""
    timers = peer.timers
    if timer is Timer.RETRANSMIT_HANDSHAKE:
        if now - peer.last_sent_handshake < REKEY_TIMEOUT:
            # A response went out since our initiation (the peer's initiation crossed ours), so the rate
            # limit holds this retry back: wireguard-go loses it and waits for the next keepalive or data;
            # we defer it one more period (from now, not from the response, so a peer whose retry went
            # out meets us not initiating).  Not counted as an attempt.
            timers.timers_handshake_initiated(now, dev.rng)
        elif timers.handshake_attempts > MAX_TIMER_HANDSHAKES:
            dev.note(Event.HANDSHAKE_GIVE_UP, peer)
            timers.give_up(now)
            peer.flush_staged()
        else:
            timers.handshake_attempts += 1
            dev.note(Event.HANDSHAKE_RETRY, peer)
            send.send_initiation(dev, peer, now, out, retry=True)
    elif timer is Timer.SEND_KEEPALIVE:
        send.send_keepalive(dev, peer, now, out)
        if timers.need_another_keepalive:
            timers.need_another_keepalive = False
            timers.send_keepalive = now + KEEPALIVE_TIMEOUT
    elif timer is Timer.NEW_HANDSHAKE:
        dev.note(Event.HANDSHAKE_STALE, peer)
        send.send_initiation(dev, peer, now, out, retry=False)
    elif timer is Timer.ZERO_KEY_MATERIAL:
        dev.note(Event.KEYS_ZEROED, peer)
        dev.forget_sessions(peer)
    elif timer is Timer.PERSISTENT_KEEPALIVE:
        if timers.persistent_keepalive_interval > 0:
            send.send_keepalive(dev, peer, now, out)
    elif timer is Timer.RELAY_PROBE:
        relay.send_probe(dev, peer, now, out)
