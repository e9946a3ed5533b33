"""What a device sends: initiations, responses, transport data, keepalives.

Contract: functions of (device, peer, now, out) that append ``SendDatagram``
actions to ``out`` and update the peer's counters and timers exactly as
wireguard-go's ``send.go`` does (wireguard.md §3, §6): the 5 s handshake
rate limit, key freshness on sending, staged packets sent on ``current``
only, padding to the device MTU; ``after_send`` is the one after-send hook
(Python's sends and the data plane's batches).  To a relayed peer every
datagram goes framed to its relay (``Device.relay.wrap``, wgpy.relay).  No I/O; randomness and wall
time come from the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import tai64n
from .actions import Action, SendDatagram
from .constants import REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT
from .errors import DropReason, HandshakeError
from .events import Event
from .peer import Peer

if TYPE_CHECKING:
    from .device import Device


def send_staged(dev: Device, peer: Peer, now: float, out: list[Action]) -> None:
    """Send staged packets on the current keypair, or start a handshake."""
    kp = peer.keypairs.current
    if kp is None or not kp.can_send(now):
        send_initiation(dev, peer, now, out, retry=False)
        return
    endpoint = peer.endpoint
    if endpoint is None:
        dev.drops[DropReason.NO_ENDPOINT] += len(peer.staged)
        peer.staged.clear()
        return
    staged = peer.staged
    relayed = peer.relayed
    data_sent = False
    mtu = dev.mtu
    sent = 0
    while staged:
        if kp.send_counter >= REJECT_AFTER_MESSAGES:
            send_initiation(dev, peer, now, out, retry=False)
            break
        packet = staged.popleft()
        msg = kp.seal(packet, mtu)
        sent += len(msg)
        if relayed:
            framed = dev.relay.wrap(dev, peer, msg)
            if framed is not None:
                out.append(SendDatagram(framed, endpoint))
        else:
            out.append(SendDatagram(msg, endpoint))
        if packet:
            data_sent = True
        else:
            dev.note(Event.KEEPALIVE_SENT, peer, endpoint)
    if sent:
        after_send(dev, peer, sent, data_sent, now, out)


def after_send(dev: Device, peer: Peer, nbytes: int, data_sent: bool, now: float, out: list[Action]) -> None:
    """The send-side hooks, once per batch of transport messages to ``peer`` (``nbytes`` on the wire,
    ``data_sent``: not only keepalives), whether Python or the data plane sealed them."""
    peer.tx_bytes += nbytes
    timers = peer.timers
    if data_sent:
        timers.timers_data_sent(now, dev.rng)
    timers.timers_any_authenticated_packet_traversal(now)
    timers.timers_any_authenticated_packet_sent()
    keep_key_fresh_sending(dev, peer, now, out)


def send_keepalive(dev: Device, peer: Peer, now: float, out: list[Action]) -> None:
    """Queue a keepalive unless data is already staged, then send staged."""
    if not peer.staged:
        peer.staged.append(b"")
    send_staged(dev, peer, now, out)


def keep_key_fresh_sending(dev: Device, peer: Peer, now: float, out: list[Action]) -> None:
    kp = peer.keypairs.current
    if kp is not None and (
        kp.send_counter > REKEY_AFTER_MESSAGES
        or (kp.is_initiator and now - kp.created > REKEY_AFTER_TIME)
    ):
        send_initiation(dev, peer, now, out, retry=False)


def send_initiation(dev: Device, peer: Peer, now: float, out: list[Action], *, retry: bool) -> None:
    """Create and send a handshake initiation (at most one per REKEY_TIMEOUT)."""
    if not retry:
        peer.timers.handshake_attempts = 0
    if now - peer.last_sent_handshake < REKEY_TIMEOUT:
        return
    if dev.identity is None:
        dev.drops[DropReason.NO_PRIVATE_KEY] += 1
        return
    index = _new_handshake_index(dev, peer)
    try:
        msg = peer.handshake.create_initiation(index, dev.rng(32), tai64n.timestamp(dev.wall_clock()))
    except HandshakeError as exc:
        dev.indices.remove(index)
        dev.drops[exc.reason] += 1
        return
    peer.last_sent_handshake = now
    _send_handshake(dev, peer, peer.cookie_generator.add_macs(msg.encode(), now), now, out, Event.INITIATION_SENT)
    if peer.endpoint is None:
        dev.drops[DropReason.NO_ENDPOINT] += 1
    peer.timers.timers_handshake_initiated(now, dev.rng)


def send_response(dev: Device, peer: Peer, now: float, out: list[Action]) -> None:
    """Answer a consumed initiation and derive the responder's keypair (in ``next``)."""
    index = dev.indices.new_index(peer, dev.rng)  # an accepted initiation holds no index of ours
    try:
        msg = peer.handshake.create_response(index, dev.rng(32))
    except HandshakeError as exc:
        dev.indices.remove(index)
        dev.drops[exc.reason] += 1
        return
    data = peer.cookie_generator.add_macs(msg.encode(), now)
    peer.last_sent_handshake = now
    dev.begin_session(peer, now)
    _send_handshake(dev, peer, data, now, out, Event.RESPONSE_SENT)


def _new_handshake_index(dev: Device, peer: Peer) -> int:
    """A fresh local index for the peer's next initiation (the handshake's old ones are released)."""
    dev.release_handshake_index(peer)
    return dev.indices.new_index(peer, dev.rng)


def _send_handshake(dev: Device, peer: Peer, data: bytes, now: float, out: list[Action], event: Event) -> None:
    """Send a finished handshake message to the peer's endpoint (if it has one; ``event`` is noted then)."""
    peer.timers.timers_any_authenticated_packet_traversal(now)
    peer.timers.timers_any_authenticated_packet_sent()
    if peer.endpoint is not None:
        dev.note(event, peer, peer.endpoint)
        framed = dev.relay.wrap(dev, peer, data) if peer.relayed else data
        if framed is not None:
            out.append(SendDatagram(framed, peer.endpoint))
        peer.tx_bytes += len(data)
