"""The WireGuard device engine: sans-IO, driven by bytes and ``now``.

Contract: ``Device`` owns the whole protocol state of one interface (static
identity, peers, allowed IPs, index table, cookie checker, handshake queue,
timers) and never touches a socket, a file descriptor, a clock or an RNG.
Inputs are the UAPI-shaped ``apply(DeviceUpdate)``, ``datagrams_received``,
``tun_packets`` and ``handle_timeout(now)``; each returns a list of actions
(``SendDatagram`` to a UDP endpoint, ``WriteTun`` to the TUN device,
``Unreachable`` for a TUN packet no peer owns).  A data plane, if any, is
given at construction (``Device(..., dataplane=...)``) and kept in sync by
the device; ``batch_sent`` / ``batch_received`` take its batch results.
The device installs sessions (``begin_session``) and carries out expired
timers next to ``handle_timeout``; what is sent and received per message
lives in ``wgpy.send`` / ``wgpy.receive``.
``next_deadline()`` tells the caller when to call ``handle_timeout`` next.
Remote input never raises: it is dropped and counted in ``drops``.  Relay frames
(type 5) and relayed peers are ``wgpy.relay``'s, configured with ``relay.configure``.

Handshake messages (types 1–3) have mac1 checked on arrival (else an
``invalid-mac1`` drop, never queued; a data plane checks it before its ring)
and wait in a bounded queue apart from transport data, which is handled at
once.  Each call drains the queue for ``HANDSHAKE_TIME_BUDGET`` of the
injected ``clock`` (without one: what was queued when it began).  A queue of
``UNDER_LOAD_QUEUE_LEN`` or more, or an overflow here or in the plane, means
under load for ``UNDER_LOAD_AFTER_TIME`` (wireguard.md §4): mac2 required,
cookie replies and valid mac2 limited per source (the kernel's bucket), and
messages admitted to the queue at that rate per source (``gate``; the plane
does it before its ring), so a flood from a few addresses cannot crowd out a peer.
Follows wireguard.md §3–§8 and wireguard-go's send/receive/timers semantics.
"""

from __future__ import annotations

import collections
import heapq
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .actions import Action, SendDatagram, Unreachable, WriteTun
from .allowedips import AllowedIPs, destination
from .config import DeviceUpdate, Endpoint, PeerUpdate
from .constants import (
    DEFAULT_MTU, HANDSHAKE_QUEUE_LEN, MAX_PEERS, MESSAGE_COOKIE_REPLY, MESSAGE_RELAY, MESSAGE_TRANSPORT,
    TRANSPORT_MIN_SIZE, UNDER_LOAD_AFTER_TIME, UNDER_LOAD_QUEUE_LEN,
)
from .cookie import CookieChecker, mac1_key
from .errors import ConfigError, DropReason
from .events import Event, EventSink
from .handshake import StaticIdentity
from .indextable import IndexTable
from .keypair import Keypair
from .keys import PrivateKey, PublicKey
from .messages import HANDSHAKE_SIZES
from .peer import Peer
from .ratelimiter import RateLimiter
from .unknown_initiators import UnknownInitiators
from . import icmp, receive, relay, send, timer_expiry

if TYPE_CHECKING:
    from .dataplane import BatchResult, DataPlane, PeerEvent

log = logging.getLogger("wgpy.device")

HANDSHAKE_TIME_BUDGET = 0.004
"""Seconds of handshake work per call (per loop turn); the rest wait in the queue."""

__all__ = ["Device", "Action", "SendDatagram", "WriteTun", "Unreachable", "HANDSHAKE_TIME_BUDGET"]


class Device:
    """One WireGuard interface's protocol engine."""

    def __init__(
        self,
        *,
        rng: Callable[[int], bytes],
        wall_clock: Callable[[], float],
        mtu: int = DEFAULT_MTU,
        dataplane: DataPlane[Any] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.rng = rng
        self._dataplane = dataplane
        self.wall_clock = wall_clock
        self.clock = clock  # monotonic seconds, read only to bound one call's handshake work
        self._mtu = 0
        self.mtu = mtu
        self.listen_port = 0
        self.fwmark = 0
        self.is_up = True
        self.drops: collections.Counter[DropReason] = collections.Counter()
        self.events: collections.Counter[Event] = collections.Counter()
        """Handshake and session events so far (wgpy.events), counted by ``note``."""
        self.on_event: EventSink | None = None
        """The shell's sink for those events (e.g. a logger), or None."""
        self.identity: StaticIdentity | None = None
        self.checker = CookieChecker(None)
        self.ratelimiter = RateLimiter()
        self.cookie_ratelimiter = RateLimiter()  # cookie replies per source, under load
        self.gate = RateLimiter()  # without a plane: messages per source admitted to the queue, under load
        self.allowed: AllowedIPs[Peer] = AllowedIPs()
        self.indices: IndexTable[Peer | Keypair] = IndexTable()
        self._peers: dict[PublicKey, Peer] = {}
        self._heap: list[tuple[float, int, Peer]] = []
        self._seq = 0
        self._hs_queue: collections.deque[tuple[bytes, Endpoint, PublicKey | None]] = collections.deque()
        self.relay = relay.Relay()  # relay key, serving, counters
        self._under_load_until = float("-inf")
        self._last_now = 0.0
        self.unknown_initiators = UnknownInitiators()  # claimed keys of dropped initiations (a hint)

    # ------------------------------------------------------------------ config
    @property
    def dataplane(self) -> DataPlane[Any] | None:
        """The data plane mirroring the fast-path state (wgpy.dataplane), or None: pure path.
        Fixed at construction: the device has pushed its state into it since."""
        return self._dataplane

    @property
    def mtu(self) -> int:
        """The TUN MTU transport messages are padded for (the data plane follows it)."""
        return self._mtu

    @mtu.setter
    def mtu(self, mtu: int) -> None:
        self._mtu = mtu
        if self.dataplane is not None:
            self.dataplane.set_mtu(mtu)

    @property
    def private_key(self) -> PrivateKey | None:
        return self.identity.private if self.identity else None

    @property
    def public_key(self) -> PublicKey | None:
        return self.identity.public if self.identity else None

    def peers(self) -> list[Peer]:
        return list(self._peers.values())

    def note(self, event: Event, peer: Peer | None = None, endpoint: Endpoint | None = None) -> None:
        """Count one handshake or session event and hand it to ``on_event`` (wgpy.events)."""
        self.events[event] += 1
        if self.on_event is not None:
            self.on_event(event, peer, endpoint)

    def peer(self, public_key: PublicKey) -> Peer | None:
        return self._peers.get(public_key)

    def apply(self, update: DeviceUpdate, now: float) -> list[Action]:
        """Carry out one set transaction atomically (validated before any change)."""
        self._validate(update)
        out: list[Action] = []
        if update.private_key is not None:
            self._set_private_key(update.private_key, now)
        if update.listen_port is not None:
            self.listen_port = update.listen_port
        if update.fwmark is not None:
            self.fwmark = update.fwmark
        if update.replace_peers:
            for peer in list(self._peers.values()):
                self._remove_peer(peer)
        for pu in update.peers:
            self._apply_peer(pu, now, out)
        if self.dataplane is not None:
            self.dataplane.sync_config(self._peers.values(), self.allowed.items())
        return out

    def _validate(self, update: DeviceUpdate) -> None:
        known = set() if update.replace_peers else set(self._peers)
        for pu in update.peers:
            if pu.remove:
                known.discard(pu.public_key)
            elif not pu.update_only:
                known.add(pu.public_key)
        if len(known) > MAX_PEERS:
            raise ConfigError(f"too many peers (max {MAX_PEERS})")

    def _set_private_key(self, key: PrivateKey, now: float) -> None:
        identity = None if key.is_zero() else StaticIdentity(key)
        if identity is not None and self.identity is not None and identity.private == self.identity.private:
            return
        if identity is not None and identity.public in self._peers:
            self._remove_peer(self._peers[identity.public])
        self.identity = identity
        self.checker.set_public(identity.public if identity else None)
        if self.dataplane is not None:
            self.dataplane.set_mac1_key(mac1_key(identity.public) if identity else None)
        for peer in self._peers.values():
            self.release_handshake_index(peer)
            peer.handshake.set_local(identity)
            for kp in (peer.keypairs.current, peer.keypairs.next):
                if kp is not None:
                    kp.expire_sending()
            peer.last_sent_handshake = float("-inf")

    def _apply_peer(self, pu: PeerUpdate, now: float, out: list[Action]) -> None:
        if self.identity is not None and pu.public_key == self.identity.public:
            return  # our own key: a dummy peer, silently ignored (as wireguard-go)
        peer = self._peers.get(pu.public_key)
        if pu.remove:
            if peer is not None:
                self._remove_peer(peer)
            return
        if peer is None:
            if pu.update_only:
                return
            peer = Peer(pu.public_key, self.identity, self.allowed)
            self._peers[pu.public_key] = peer
        if pu.preshared_key is not None:
            peer.handshake.set_preshared_key(None if pu.preshared_key.is_zero() else pu.preshared_key)
        if pu.endpoint is not None or pu.probe_endpoint is not None:
            relay.apply_endpoint(peer, pu, now)
        if pu.replace_allowed_ips:
            self.allowed.remove_by_value(peer)
        for net in pu.remove_allowed_ips:
            self.allowed.remove(net, peer)
        for net in pu.allowed_ips:
            self.allowed.insert(net, peer)
        if pu.persistent_keepalive is not None:
            old = peer.timers.persistent_keepalive_interval
            peer.timers.persistent_keepalive_interval = pu.persistent_keepalive
            if pu.persistent_keepalive == 0:
                peer.timers.persistent_keepalive = None
            elif old == 0 and self.is_up:
                send.send_keepalive(self, peer, now, out)
        self._schedule(peer)

    def _remove_peer(self, peer: Peer) -> None:
        self._reset_peer(peer)
        self.allowed.remove_by_value(peer)
        self._peers.pop(peer.public_key, None)

    def release_handshake_index(self, peer: Peer) -> None:
        """Release the indices of the peer's handshake in progress and of its crossed initiation, which
        is forgotten; a keypair's index is left alone."""
        hs = peer.handshake
        held = [hs.local_index] if hs.crossed is None else [hs.local_index, hs.crossed.local_index]
        hs.crossed = None
        for idx in held:
            if idx and self.indices.get(idx) is peer:
                self.indices.remove(idx)

    def begin_session(self, peer: Peer, now: float) -> Keypair:
        """Derive the transport keypair from the peer's finished handshake and install it
        (the data plane's keypair when there is a plane)."""
        keys = peer.handshake.begin_session()
        args = (keys.send_key, keys.receive_key, keys.local_index, keys.remote_index, keys.is_initiator, now, peer)
        kp = self.dataplane.new_keypair(*args) if self.dataplane is not None else Keypair(*args)
        self.indices.swap(keys.local_index, kp)
        self.release_keypairs(peer.keypairs.install(kp))
        peer.timers.timers_session_derived(now)
        self.note(Event.KEYPAIR_CREATED, peer)
        return kp

    def release_keypairs(self, keypairs: Iterable[Keypair]) -> None:
        for kp in keypairs:
            if self.indices.get(kp.local_index) is kp:
                self.indices.remove(kp.local_index)
            kp.zero()

    # ------------------------------------------------------------------ up/down
    def up(self, now: float) -> list[Action]:
        """Interface up: peers with persistent keepalive send one at once."""
        self.is_up = True
        out: list[Action] = []
        for peer in self._peers.values():
            if peer.timers.persistent_keepalive_interval > 0:
                send.send_keepalive(self, peer, now, out)
                self._schedule(peer)
        return out

    def down(self, now: float) -> None:
        """Interface down: stop timers, forget sessions and staged packets."""
        self.is_up = False
        for peer in self._peers.values():
            self._reset_peer(peer)
        self._heap.clear()

    def _reset_peer(self, peer: Peer) -> None:
        """Stop the peer's timers and forget its sessions."""
        peer.timers.stop()
        peer._scheduled = None
        self.forget_sessions(peer)

    def forget_sessions(self, peer: Peer) -> None:
        """Zero the peer's keypairs and handshake and drop its staged packets
        (wireguard-go's ``ZeroAndFlushAll``); timers are left as they are."""
        self.release_handshake_index(peer)
        self.release_keypairs(peer.keypairs.clear())
        peer.handshake.clear()
        peer.flush_staged()

    # ------------------------------------------------------------------ inputs
    def datagram_received(self, data: bytes, src: Endpoint, now: float) -> list[Action]:
        return self.datagrams_received(((data, src),), now)

    def datagrams_received(self, batch: Iterable[tuple[bytes, Endpoint]], now: float,
                           mac1_checked: bool = False) -> list[Action]:
        """Handle UDP datagrams: transport data at once, handshakes via the queue (``mac1_checked``: the
        data plane has checked the size and mac1 of their initiations and responses)."""
        self._last_now = now
        out: list[Action] = []
        if not self.is_up:
            return out
        touched: dict[Peer, None] = {}
        for data, src in batch:
            n = len(data)
            if n >= 4 and data[0] == MESSAGE_RELAY:  # a relay frame (wgpy.relay; the plane hands them on)
                relay.frame_received(self, data, src, now, out, touched)
                continue
            if n < 4 or data[1:4] != b"\x00\x00\x00":
                self.drops[DropReason.MALFORMED if n < 4 else DropReason.UNKNOWN_TYPE] += 1
                continue
            mtype = data[0]
            if mtype == MESSAGE_TRANSPORT:
                if n < TRANSPORT_MIN_SIZE:
                    self.drops[DropReason.MALFORMED] += 1
                    continue
                peer = receive.receive_transport(self, data, src, now, out)
                if peer is not None:
                    touched[peer] = None
            elif mtype in HANDSHAKE_SIZES:
                self.queue_handshake(data, src, now, mac1_checked=mac1_checked)
            else:
                self.drops[DropReason.UNKNOWN_TYPE] += 1
        for peer in touched:
            self._schedule(peer)
        self._process_handshakes(now, out)
        return out

    def tun_packet(self, packet: bytes, now: float) -> list[Action]:
        return self.tun_packets((packet,), now)

    def tun_packets(self, packets: Iterable[bytes], now: float) -> list[Action]:
        """Route IP packets read from the TUN device to their peers and send them."""
        self._last_now = now
        out: list[Action] = []
        if not self.is_up:
            return out
        touched: dict[Peer, None] = {}
        lookup = self.allowed.lookup
        for packet in packets:
            dst = destination(packet)
            if dst is None:
                self.drops[DropReason.INVALID_INNER_PACKET] += 1
                continue
            peer = lookup(dst)
            if peer is None:
                self.drops[DropReason.NO_ROUTE] += 1
                reply = icmp.unreachable(packet, dst)  # from the unreachable address: a local one is martian
                if reply is not None:
                    out.append(Unreachable(reply))
                continue
            if len(peer.staged) == peer.staged.maxlen:
                self.drops[DropReason.STAGED_OVERFLOW] += 1
            peer.staged.append(bytes(packet))
            touched[peer] = None
        for peer in touched:
            send.send_staged(self, peer, now, out)
            self._schedule(peer)
        return out

    # ------------------------------------------------------------------ data-plane batches
    def batch_sent(self, result: BatchResult, now: float) -> list[Action]:
        """A data-plane TX batch: the send-side hooks once per peer it sealed for
        (``send.after_send``), then the packets it handed back go the slow way."""
        self._last_now = now
        out: list[Action] = []
        for ev, peer in self._batch_peers(result):
            send.after_send(self, peer, ev.bytes, ev.data > 0, now, out)
            self._schedule(peer)
        if result.slow:
            assert self.dataplane is not None
            self.dataplane.slow_taken(result.slow)
            out += self.tun_packets([item.data for item in result.slow], now)
        return out

    def batch_received(self, result: BatchResult, now: float) -> list[Action]:
        """A data-plane RX batch: roaming and the receive-side hooks once per peer it opened
        for (``receive.after_receive``), then the datagrams it handed back go the slow way."""
        self._last_now = now
        out: list[Action] = []
        if result.drops.get(DropReason.HANDSHAKE_QUEUE_FULL) or result.drops.get(DropReason.RATE_LIMITED):
            self._under_load_until = now + UNDER_LOAD_AFTER_TIME  # the plane's handshake ring filled up
        for ev, peer in self._batch_peers(result):
            if ev.endpoint is not None and (ev.endpoint != peer.endpoint or peer.relayed):
                receive.roam(self, peer, ev.endpoint, None, 0, now, out)
                assert self.dataplane is not None
                self.dataplane.roamed(ev.peer_id, ev.endpoint)
            receive.after_receive(self, peer, ev.bytes, ev.data, now, out)
            if ev.messages > ev.data:
                self.note(Event.KEEPALIVE_RECEIVED, peer, peer.endpoint)
            self._schedule(peer)
        if result.slow:
            out += self.datagrams_received([(item.data, item.src) for item in result.slow if item.src is not None],
                                           now, mac1_checked=True)
        return out

    def _batch_peers(self, result: BatchResult) -> Iterator[tuple[PeerEvent, Peer]]:
        """Count the batch's drops, then yield each event that carried messages with its live peer."""
        self.drops.update(result.drops)
        plane = self.dataplane
        if plane is None:
            return
        for ev in result.events:
            peer = plane.peer_for(ev.peer_id, ev.generation)  # None: published for a removed peer
            if peer is not None and ev.messages:
                yield ev, peer

    # ------------------------------------------------------------------ handshakes
    def queue_handshake(self, data: bytes, src: Endpoint, now: float, via: PublicKey | None = None,
                        mac1_checked: bool = False) -> None:
        """Size, mac1 (unless the plane checked it) and (without a plane, under load) the per-source gate
        before the queue (``via``: relayed)."""
        mtype, drop = data[0], None
        if len(data) != HANDSHAKE_SIZES[mtype]:
            drop = DropReason.MALFORMED
        elif mtype != MESSAGE_COOKIE_REPLY and not mac1_checked and not self.checker.check_mac1(data):
            drop = DropReason.INVALID_MAC1
        elif (mtype != MESSAGE_COOKIE_REPLY and self.dataplane is None and self._under_load_until > now
              and not self.gate.allow(src[0], now)):
            drop = DropReason.RATE_LIMITED  # a plane has this gate before its ring; refusing is load
        elif len(self._hs_queue) >= HANDSHAKE_QUEUE_LEN:
            drop = DropReason.HANDSHAKE_QUEUE_FULL
        if drop is None:
            return self._hs_queue.append((bytes(data), src, via))
        self.drops[drop] += 1
        if drop in (DropReason.RATE_LIMITED, DropReason.HANDSHAKE_QUEUE_FULL):
            self._under_load_until = now + UNDER_LOAD_AFTER_TIME

    def under_load(self, now: float) -> bool:
        """The queue holds UNDER_LOAD_QUEUE_LEN or did within UNDER_LOAD_AFTER_TIME (the plane is told)."""
        if len(self._hs_queue) >= UNDER_LOAD_QUEUE_LEN:
            until = now + UNDER_LOAD_AFTER_TIME
            if self.dataplane is not None and until - self._under_load_until > 0.05:
                self.dataplane.set_under_load(until)
            self._under_load_until = until
            return True
        return self._under_load_until > now

    @property
    def handshake_queue_length(self) -> int:
        return len(self._hs_queue)

    def _process_handshakes(self, now: float, out: list[Action]) -> None:
        """Drain the queue for HANDSHAKE_TIME_BUDGET of ``clock`` (without one: what was queued at the start)."""
        queue, clock, left = self._hs_queue, self.clock, len(self._hs_queue)
        end = clock() + HANDSHAKE_TIME_BUDGET if clock is not None else 0.0
        while queue:
            under_load = self.under_load(now)  # the queue still counts this message
            data, src, via = queue.popleft()
            peer = receive.receive_handshake(self, data, src, now, under_load, out, via)
            if peer is not None:
                self._schedule(peer)
            left -= 1
            if (clock() >= end) if clock is not None else left <= 0:
                break

    # ------------------------------------------------------------------ timers
    def _schedule(self, peer: Peer) -> None:
        if self.dataplane is not None and self._peers.get(peer.public_key) is peer:
            self.dataplane.sync_peer(peer)
        deadline = peer.timers.next_deadline()
        if deadline is None:
            return
        if peer._scheduled is None or deadline < peer._scheduled:
            peer._scheduled = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, peer))

    def next_deadline(self) -> float | None:
        """When ``handle_timeout`` should run next (monotonic seconds), or None."""
        if self._hs_queue:
            return self._last_now
        return self._heap[0][0] if self._heap else None

    def handle_timeout(self, now: float) -> list[Action]:
        """Fire every timer whose deadline is ≤ now; drain queued handshakes."""
        self._last_now = now
        out: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, peer = heapq.heappop(heap)
            if peer._scheduled != deadline or self._peers.get(peer.public_key) is not peer:
                continue
            peer._scheduled = None
            for timer in peer.timers.expired(now):
                timer_expiry.expired(self, peer, timer, now, out)
            self._schedule(peer)
        self._process_handshakes(now, out)
        return out
