"""What a device does with a received datagram (wireguard.md §3, §4, §7, §8).

Contract: ``receive_transport`` authenticates a transport message, applies the
replay window (only after authentication), key confirmation, roaming, key
freshness, the inner-packet checks and the cryptokey source filter, and
appends ``WriteTun``; ``receive_handshake`` applies the under-load
cookie/mac2/rate-limit rules to a queued message whose mac1 the device has
checked on arrival, and consumes initiations, responses and cookie replies;
under load a cookie reply goes out at most at the per-source rate of
``device.cookie_ratelimiter``.  Both return the peer they touched (for timer scheduling) or None,
and count every drop in ``device.drops``; nothing raises on remote input.
Cookie replies never change the endpoint or a timer.  The receive-side hooks
live here as in wireguard-go's ``receive.go``: ``after_receive`` (the one
after-receive hook, for Python's receives and the data plane's batches),
``keep_key_fresh_receiving`` and ``handshake_complete``; what the receive
path answers (responses, keepalives, staged packets, rekeys) it sends with
``wgpy.send``.  A datagram delivered by a relay (wgpy.relay) comes ``via``
its sender's key: it must authenticate as that peer (else ``relay-wrong-peer``)
and ``roam`` makes the peer's endpoint relayed; a direct one makes it direct.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .actions import Action, SendDatagram, WriteTun
from .config import Endpoint
from .constants import MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, RECEIVE_REKEY_AFTER
from .errors import DropReason, HandshakeError, MessageError
from .events import Event
from .handshake import consume_initiation
from .keypair import Keypair
from .keys import PublicKey
from .messages import CookieReply, Initiation, Response, transport_header
from .peer import Peer
from . import send

if TYPE_CHECKING:
    from .device import Device

_U16 = struct.Struct(">H")


def receive_transport(dev: Device, data: bytes, src: Endpoint, now: float, out: list[Action],
                      via: PublicKey | None = None) -> Peer | None:
    receiver = transport_header(data)[0]
    kp = dev.indices.get(receiver)
    if not isinstance(kp, Keypair):
        dev.drops[DropReason.UNKNOWN_INDEX] += 1
        return None
    if via is not None and not _is(kp.peer, via):
        dev.drops[DropReason.RELAY_WRONG_PEER] += 1
        return None
    if not kp.can_receive(now):
        dev.drops[DropReason.KEYPAIR_EXPIRED] += 1
        return None
    plaintext = kp.open(data)
    if not isinstance(plaintext, bytes):
        dev.drops[plaintext] += 1
        return None
    peer = kp.peer
    assert isinstance(peer, Peer)
    roam(dev, peer, src, via, len(data), now, out)
    confirmed, dropped = peer.keypairs.received_with(kp)
    if confirmed:
        dev.release_keypairs(dropped)
        handshake_complete(dev, peer)
        send.send_staged(dev, peer, now, out)  # nothing staged: sends nothing
    after_receive(dev, peer, len(data), 1 if plaintext else 0, now, out)
    if not plaintext:
        dev.note(Event.KEEPALIVE_RECEIVED, peer, src)
        return peer
    packet = inner_packet(plaintext)
    if packet is None:
        dev.drops[DropReason.INVALID_INNER_PACKET] += 1
        return peer
    source = packet[12:16] if packet[0] >> 4 == 4 else packet[8:24]
    if dev.allowed.lookup(source) is not peer:
        dev.drops[DropReason.DISALLOWED_SOURCE] += 1
        return peer
    out.append(WriteTun(packet))
    return peer


def _is(peer: object, key: PublicKey) -> bool:
    return isinstance(peer, Peer) and peer.public_key == key


def roam(dev: Device, peer: Peer, src: Endpoint, via: PublicKey | None, nbytes: int, now: float,
         out: list[Action]) -> None:
    """Roaming (wireguard.md §8) after an authenticated datagram from ``src``: relayed when it came ``via`` a
    relay (the probe timer starts), direct otherwise.  A peer that leaves its relay gets one keepalive at
    once on the new direct path, so the other side sees the path work and leaves the relay too."""
    was_relayed = peer.relayed
    peer.endpoint = src
    if via is not None:
        peer.relayed_rx_bytes += nbytes
        peer.relayed = True
        peer.arm_relay_probe(now)
        if not was_relayed:
            dev.note(Event.PATH_RELAYED, peer, src)
    elif was_relayed:
        peer.relayed = False
        dev.note(Event.PATH_DIRECT, peer, src)
        peer.timers.relay_probe = None
        kp = peer.keypairs.current
        if kp is not None and kp.can_send(now):
            send.send_keepalive(dev, peer, now, out)


def after_receive(dev: Device, peer: Peer, nbytes: int, data: int, now: float, out: list[Action]) -> None:
    """The receive-side hooks, once per batch of authenticated transport messages from ``peer``
    (``nbytes`` on the wire, ``data`` of them not keepalives), whether Python or the data plane
    opened them.  A second data message only sets ``need_another_keepalive``, so two stand for more."""
    peer.rx_bytes += nbytes
    keep_key_fresh_receiving(dev, peer, now, out)
    timers = peer.timers
    timers.timers_any_authenticated_packet_traversal(now)
    timers.timers_any_authenticated_packet_received()
    for _ in range(min(data, 2)):
        timers.timers_data_received(now)


def keep_key_fresh_receiving(dev: Device, peer: Peer, now: float, out: list[Action]) -> None:
    """The initiator's last-minute rekey: its current session is about to expire and it hears from the peer."""
    if peer.timers.sent_last_minute_handshake:
        return
    kp = peer.keypairs.current
    if kp is not None and kp.is_initiator and now - kp.created > RECEIVE_REKEY_AFTER:
        peer.timers.sent_last_minute_handshake = True
        send.send_initiation(dev, peer, now, out, retry=False)


def handshake_complete(dev: Device, peer: Peer) -> None:
    """A session is confirmed (response consumed, or first transport message on ``next``)."""
    peer.timers.timers_handshake_complete()
    peer.last_handshake_wall = dev.wall_clock()
    dev.note(Event.HANDSHAKE_COMPLETE, peer)


def inner_packet(plaintext: bytes) -> bytes | None:
    """Strip padding by the IP length field; None if not a sane IP packet."""
    version = plaintext[0] >> 4
    if version == 4:
        if len(plaintext) < 20:
            return None
        length = _U16.unpack_from(plaintext, 2)[0]
        if length < 20 or length > len(plaintext):
            return None
    elif version == 6:
        if len(plaintext) < 40:
            return None
        length = _U16.unpack_from(plaintext, 4)[0] + 40
        if length > len(plaintext):
            return None
    else:
        return None
    return plaintext if length == len(plaintext) else plaintext[:length]


def receive_handshake(
    dev: Device, data: bytes, src: Endpoint, now: float, under_load: bool, out: list[Action],
    via: PublicKey | None = None,
) -> Peer | None:
    """Process one queued handshake-type message (size and mac1 already checked; ``via``: relayed)."""
    mtype = data[0]
    if mtype == MESSAGE_COOKIE_REPLY:
        return _receive_cookie_reply(dev, data, src, now, via)
    if under_load:
        if not dev.checker.check_mac2(data, src, now, dev.rng):
            if not dev.cookie_ratelimiter.allow(src[0], now):
                dev.drops[DropReason.COOKIE_RATE_LIMITED] += 1
                return None
            sender = int.from_bytes(data[4:8], "little")
            reply = dev.checker.create_reply(data, sender, src, now, dev.rng)
            answer = dev.relay.to_source(dev, reply.encode(), src, via)
            if answer is not None:
                out.append(answer)
            dev.drops[DropReason.COOKIE_SENT] += 1
            dev.note(Event.COOKIE_REPLY_SENT, None, src)
            return None
        if not dev.ratelimiter.allow(src[0], now):
            dev.drops[DropReason.RATE_LIMITED] += 1
            return None
    try:
        if mtype == MESSAGE_INITIATION:
            return _receive_initiation(dev, Initiation.decode(data), len(data), src, now, out, via)
        return _receive_response(dev, Response.decode(data), len(data), src, now, out, via)
    except MessageError:
        dev.drops[DropReason.MALFORMED] += 1
        return None
    except HandshakeError as exc:
        dev.drops[exc.reason] += 1
        return None


def _receive_initiation(
    dev: Device, msg: Initiation, size: int, src: Endpoint, now: float, out: list[Action], via: PublicKey | None
) -> Peer | None:
    if dev.identity is None:
        dev.drops[DropReason.NO_PRIVATE_KEY] += 1
        return None
    consumed = consume_initiation(msg, dev.identity, static_static=lambda key: _static_static(dev, key))
    peer = dev.peer(consumed.remote_static)
    if peer is None:
        dev.drops[DropReason.UNKNOWN_PEER] += 1
        return None
    if via is not None and peer.public_key != via:
        dev.drops[DropReason.RELAY_WRONG_PEER] += 1
        return None
    peer.handshake.accept_initiation(consumed, now)  # our own initiation, when they cross: kept as ``crossed``
    dev.note(Event.INITIATION_RECEIVED, peer, src)
    roam(dev, peer, src, via, size, now, out)
    peer.rx_bytes += size
    peer.timers.timers_any_authenticated_packet_traversal(now)
    peer.timers.timers_any_authenticated_packet_received()
    send.send_response(dev, peer, now, out)
    return peer


def _static_static(dev: Device, key: PublicKey) -> bytes | None:
    """The configured peer's precomputed static-static DH (None: unknown peer, remembered in
    ``Device.unknown_initiators``)."""
    peer = dev.peer(key)
    if peer is None:
        dev.unknown_initiators.note(key, dev.wall_clock())
        return None
    if peer.handshake.precomputed_static_static is None:
        raise HandshakeError(DropReason.ZERO_DH)
    return peer.handshake.precomputed_static_static


def _receive_response(
    dev: Device, msg: Response, size: int, src: Endpoint, now: float, out: list[Action], via: PublicKey | None
) -> Peer | None:
    peer = dev.indices.get(msg.receiver)
    if not isinstance(peer, Peer):
        dev.drops[DropReason.UNKNOWN_INDEX] += 1
        return None
    if via is not None and peer.public_key != via:
        dev.drops[DropReason.RELAY_WRONG_PEER] += 1
        return None
    peer.handshake.consume_response(msg)
    dev.note(Event.RESPONSE_RECEIVED, peer, src)
    roam(dev, peer, src, via, size, now, out)
    peer.rx_bytes += size
    peer.timers.timers_any_authenticated_packet_traversal(now)
    peer.timers.timers_any_authenticated_packet_received()
    dev.begin_session(peer, now)
    handshake_complete(dev, peer)
    send.send_keepalive(dev, peer, now, out)
    return peer


def _receive_cookie_reply(dev: Device, data: bytes, src: Endpoint, now: float, via: PublicKey | None
                          ) -> Peer | None:
    try:
        reply = CookieReply.decode(data)
    except MessageError:
        dev.drops[DropReason.MALFORMED] += 1
        return None
    entry = dev.indices.get(reply.receiver)
    peer = entry.peer if isinstance(entry, Keypair) else entry
    if not isinstance(peer, Peer):
        dev.drops[DropReason.UNKNOWN_INDEX] += 1
        return None
    if via is not None and peer.public_key != via:
        dev.drops[DropReason.RELAY_WRONG_PEER] += 1
        return None
    try:
        peer.cookie_generator.consume_reply(reply, now)
    except HandshakeError:
        dev.drops[DropReason.INVALID_COOKIE] += 1
        return None
    dev.note(Event.COOKIE_REPLY_RECEIVED, peer, src)
    return None
