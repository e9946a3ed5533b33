"""The data plane facade and the pure-Python twin of the native batch functions.

Contract (architecture.md "Two planes", wireguard.md §2, §7, §8): a data plane
mirrors the fast-path state of a ``Device`` -- peers (id, endpoint, current
sending keypair, the ``fast_tx`` flag), the allowed-IPs routes and the
keypair index (with each keypair's ``fast_rx`` flag, false while it is the
responder's unconfirmed ``next``) -- and seals/opens whole batches.  The
device installs state through ``new_keypair`` (its keypair factory),
``sync_peer`` (after every engine step that touched a peer) and
``sync_config`` (after every ``apply``).  A batch hands back, besides its
output, the items only Python may handle ("slow": handshake messages,
``next`` keypairs, peers without a usable keypair or with
staged packets) and one ``PeerEvent`` per peer, which ``apply_tx_result`` /
``apply_rx_result`` turn into the timer hooks, byte counters and roaming of
wireguard.md §6/§8 -- once per peer per batch, not per packet.

``fast_tx`` ordering rule: a packet handed back as slow clears the peer's
``fast_tx`` and bumps its slow sequence number; Python re-enables it only
when it has processed every slow packet up to that number and has nothing
staged, so the fast path never overtakes staged packets.

``wgpy.dataplane_twin.PureDataPlane`` is the reference twin of
``NativeDataPlane`` (same inputs give the same bytes, slow lists, events and
drops; tests/native prove it).
Sans-IO: no sockets, no clock; ``now`` is passed in.  Not thread-safe; the
native context's own locking covers the I/O threads (wgpy/io/fastpath.py).
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import struct
from typing import TYPE_CHECKING, Any, Generic, Iterable, Iterator, TypeVar

from .config import Endpoint
from .constants import COOKIE_REPLY_SIZE, INITIATION_SIZE, RESPONSE_SIZE
from .errors import DropReason
from .keypair import Keypair
from .peer import Peer
from . import _native, send

if TYPE_CHECKING:
    from .device import Action, Device

Addr = tuple[int, bytes, int]
"""(family 0/4/6, 16 address bytes, port), the wire form of an endpoint."""

_INDEX = struct.Struct("<I")
_HANDSHAKE_SIZES = {1: INITIATION_SIZE, 2: RESPONSE_SIZE, 3: COOKIE_REPLY_SIZE}

IO_DROP_NAMES = {
    _native.IO_SEND: "udp-send", _native.IO_TUN_WRITE: "tun-write", _native.SLOW_OVERFLOW: "slow-overflow",
    _native.TUN_DOWN: DropReason.TUN_DOWN.value, _native.TUN_QUEUE_FULL: DropReason.TUN_QUEUE_FULL.value,
}


def endpoint_to_addr(endpoint: Endpoint | None) -> Addr | None:
    """(host, port) -> (family, 16 bytes, port); None stays None."""
    if endpoint is None:
        return None
    ip = ipaddress.ip_address(endpoint[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.version, ip.packed.ljust(16, b"\0"), endpoint[1])


def addr_to_endpoint(addr: Addr) -> Endpoint | None:
    family, raw, port = addr
    if family == 4:
        return (str(ipaddress.IPv4Address(raw[:4])), port)
    if family == 6:
        return (str(ipaddress.IPv6Address(raw[:16])), port)
    return None


@dataclasses.dataclass(slots=True)
class PeerEvent:
    """What one batch did for one peer (the timer hooks run once from it)."""

    peer_id: int
    messages: int = 0
    data: int = 0
    bytes: int = 0
    endpoint: Endpoint | None = None


@dataclasses.dataclass(slots=True)
class SlowItem:
    """A packet or datagram the fast path handed back to Python untouched."""

    data: bytes
    peer_id: int = 0
    seq: int = 0
    src: Endpoint | None = None


@dataclasses.dataclass(slots=True)
class BatchResult:
    """Slow items, per-peer events and drop counts of one batch."""

    events: list[PeerEvent] = dataclasses.field(default_factory=list)
    slow: list[SlowItem] = dataclasses.field(default_factory=list)
    drops: collections.Counter[DropReason] = dataclasses.field(default_factory=collections.Counter)
    io_drops: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def event(self, peer_id: int) -> PeerEvent:
        for ev in reversed(self.events):
            if ev.peer_id == peer_id:
                return ev
        ev = PeerEvent(peer_id)
        self.events.append(ev)
        return ev


K = TypeVar("K", bound=Keypair)


class DataPlane(Generic[K]):
    """Peer-id bookkeeping and synchronisation shared by both planes.

    Subclasses implement the primitive table operations (``_peer_add`` ...),
    which are exactly the C API's.
    """

    def __init__(self) -> None:
        self._ids: dict[Peer, int] = {}
        self._by_id: dict[int, Peer] = {}
        self._free: list[int] = []
        self._next_id = 0
        self._pushed_ep: dict[int, Endpoint | None] = {}
        self._pushed_kp: dict[int, Keypair | None] = {}
        self._fast: dict[int, bool] = {}
        self.tx_seq_done: dict[int, int] = {}
        self._mtu: int | None = None

    # ---------------------------------------------------------------- primitives
    def _peer_add(self, pid: int) -> None:
        raise NotImplementedError

    def _peer_remove(self, pid: int) -> None:
        raise NotImplementedError

    def _peer_set_keypair(self, pid: int, kp: K | None) -> None:
        raise NotImplementedError

    def _peer_set_endpoint(self, pid: int, addr: Addr | None) -> None:
        raise NotImplementedError

    def _peer_fast_tx(self, pid: int, on: bool, seq: int) -> bool:
        raise NotImplementedError

    def _set_routes(self, routes: list[tuple[int, int, bytes, int]]) -> None:
        raise NotImplementedError

    def _set_mtu(self, mtu: int) -> None:
        raise NotImplementedError

    def _make_keypair(self, send_key: bytes, receive_key: bytes, local_index: int, remote_index: int,
                      is_initiator: bool, created: float, peer: Peer, pid: int) -> K:
        raise NotImplementedError

    def _owns(self, kp: Keypair | None) -> K | None:
        raise NotImplementedError

    def _set_fast_rx(self, kp: K) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- engine hooks
    def peer_id(self, peer: Peer) -> int:
        pid = self._ids.get(peer)
        if pid is None:
            if self._free:
                pid = self._free.pop()
            else:
                pid = self._next_id
                self._next_id += 1
            self._ids[peer] = pid
            self._by_id[pid] = peer
            self._peer_add(pid)
        return pid

    def peer_by_id(self, pid: int) -> Peer | None:
        return self._by_id.get(pid)

    def new_keypair(self, send_key: bytes, receive_key: bytes, local_index: int, remote_index: int,
                    is_initiator: bool, created: float, peer: Peer) -> Keypair:
        """The device's keypair factory: a keypair registered in this plane's index."""
        return self._make_keypair(send_key, receive_key, local_index, remote_index, is_initiator, created,
                                  peer, self.peer_id(peer))

    def sync_peer(self, dev: Device, peer: Peer) -> None:
        """Mirror one peer's fast-path state after the engine touched it."""
        if peer not in self._ids and dev.peer(peer.public_key) is not peer:
            return
        pid = self.peer_id(peer)
        if dev.mtu != self._mtu:
            self._mtu = dev.mtu
            self._set_mtu(dev.mtu)
        if peer.endpoint != self._pushed_ep.get(pid):
            self._pushed_ep[pid] = peer.endpoint
            self._peer_set_endpoint(pid, endpoint_to_addr(peer.endpoint))
        keypairs = peer.keypairs
        current = self._owns(keypairs.current)
        if current is not self._pushed_kp.get(pid):
            self._pushed_kp[pid] = current
            self._peer_set_keypair(pid, current)
        for kp in (current, self._owns(keypairs.previous)):
            if kp is not None:
                self._set_fast_rx(kp)
        want = current is not None and not peer._staged and peer.endpoint is not None  # no queue made
        if want or self._fast.get(pid, False):
            self._fast[pid] = self._peer_fast_tx(pid, want, self.tx_seq_done.get(pid, 0))

    def sync_config(self, dev: Device) -> None:
        """Mirror the whole configuration (peers, routes, endpoints) after ``apply``."""
        live = set(dev.peers())
        for peer, pid in list(self._ids.items()):
            if peer not in live:
                del self._ids[peer]
                del self._by_id[pid]
                for table in (self._pushed_ep, self._pushed_kp, self._fast, self.tx_seq_done):
                    table.pop(pid, None)
                self._peer_remove(pid)
                self._free.append(pid)
        for peer in live:
            self.sync_peer(dev, peer)
        routes: list[tuple[int, int, bytes, int]] = []
        for net, owner in dev.allowed.items():
            owner_id = self._ids.get(owner)
            if owner_id is not None:
                routes.append((net.version, net.prefixlen, net.network_address.packed, owner_id))
        self._set_routes(routes)


# ------------------------------------------------------------------ applying events


def _event_peers(dev: Device, plane: DataPlane[Any], res: BatchResult) -> Iterator[tuple[PeerEvent, Peer]]:
    """Count the batch's drops on the device, then yield each event that carried messages with its live peer."""
    dev.drops.update(res.drops)
    for ev in res.events:
        peer = plane.peer_by_id(ev.peer_id)
        if peer is not None and ev.messages:
            yield ev, peer


def apply_tx_result(dev: Device, plane: DataPlane[Any], res: BatchResult, now: float) -> list[Action]:
    """Run the send-side hooks once per peer for a fast TX batch (send.send_staged's tail)."""
    out: list[Action] = []
    for ev, peer in _event_peers(dev, plane, res):
        peer.tx_bytes += ev.bytes
        timers = peer.timers
        if ev.data:
            timers.timers_data_sent(now, dev.rng)
        timers.timers_any_authenticated_packet_traversal(now)
        timers.timers_any_authenticated_packet_sent()
        send.keep_key_fresh_sending(dev, peer, now, out)
        dev._schedule(peer)
    return out


def apply_rx_result(dev: Device, plane: DataPlane[Any], res: BatchResult, now: float) -> list[Action]:
    """Run the receive-side hooks once per peer for a fast RX batch (receive_transport's tail)."""
    out: list[Action] = []
    for ev, peer in _event_peers(dev, plane, res):
        if ev.endpoint is not None and ev.endpoint != peer.endpoint:
            peer.endpoint = ev.endpoint
            plane._pushed_ep[ev.peer_id] = ev.endpoint  # the native side already has it
        peer.rx_bytes += ev.bytes
        send.keep_key_fresh_receiving(dev, peer, now, out)
        timers = peer.timers
        timers.timers_any_authenticated_packet_traversal(now)
        timers.timers_any_authenticated_packet_received()
        for _ in range(min(ev.data, 2)):  # the second call only sets need_another_keepalive
            timers.timers_data_received(now)
        dev._schedule(peer)
    return out


# ------------------------------------------------------------------ the native plane


class NativeDataPlane(DataPlane[_native.NativeKeypair]):
    """The same plane over the C context (``wgpy._native``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = _native.Context()

    def _peer_add(self, pid: int) -> None:
        self.ctx.peer_add(pid)

    def _peer_remove(self, pid: int) -> None:
        self.ctx.peer_remove(pid)

    def _peer_set_keypair(self, pid: int, kp: _native.NativeKeypair | None) -> None:
        self.ctx.peer_set_keypair(pid, kp)

    def _peer_set_endpoint(self, pid: int, addr: Addr | None) -> None:
        self.ctx.peer_set_endpoint(pid, addr)

    def _peer_fast_tx(self, pid: int, on: bool, seq: int) -> bool:
        if not on:
            self.ctx.peer_disable_fast_tx(pid)
            return False
        return self.ctx.peer_enable_fast_tx(pid, seq)

    def _set_routes(self, routes: list[tuple[int, int, bytes, int]]) -> None:
        self.ctx.set_routes(routes)

    def _set_mtu(self, mtu: int) -> None:
        self.ctx.set_mtu(mtu)

    def _make_keypair(self, send_key: bytes, receive_key: bytes, local_index: int, remote_index: int,
                      is_initiator: bool, created: float, peer: Peer, pid: int) -> _native.NativeKeypair:
        return _native.NativeKeypair(self.ctx, send_key, receive_key, local_index, remote_index, is_initiator,
                                     created, peer, pid)

    def _owns(self, kp: Keypair | None) -> _native.NativeKeypair | None:
        return kp if isinstance(kp, _native.NativeKeypair) and kp._ctx is self.ctx else None

    def _set_fast_rx(self, kp: _native.NativeKeypair) -> None:
        kp.set_fast_rx(True)

    # ---------------------------------------------------------------- batches
    def encrypt_batch(self, packets: Iterable[bytes], now: float,
                      res: BatchResult) -> list[tuple[bytes, int] | None]:
        items = [bytes(p) for p in packets]
        raw = _native.Result(len(items) + 1, len(items) + 1, sum(map(len, items)) + 1)
        out = self.ctx.encrypt_batch(items, now, raw)
        convert_result(raw, res)
        return out

    def decrypt_batch(self, datagrams: Iterable[tuple[bytes, Endpoint]], now: float,
                      res: BatchResult) -> list[bytes | None]:
        items = [(bytes(d), endpoint_to_addr(src) or (0, bytes(16), 0)) for d, src in datagrams]
        raw = _native.Result(len(items) + 1, len(items) + 1, sum(len(d) for d, _ in items) + 1)
        out = self.ctx.decrypt_batch(items, now, raw)
        convert_result(raw, res)
        return out


def convert_result(raw: _native.Result, res: BatchResult) -> None:
    """Append a native result's events, slow items and drops to ``res``."""
    for pid, messages, data, nbytes, ep in raw.events():
        res.events.append(PeerEvent(pid, messages, data, nbytes, addr_to_endpoint(ep)))
    for data_, pid, seq, src in raw.slow():
        res.slow.append(SlowItem(data_, pid, seq, addr_to_endpoint(src)))
    for code, n in raw.drops().items():
        reason = _native.DROP_REASONS.get(code)
        if reason is not None:
            res.drops[reason] += n
        else:
            res.io_drops[IO_DROP_NAMES.get(code, f"native-{code}")] += n


def native_available() -> bool:
    """True when the compiled data plane can be used (WGPY_NATIVE=0 says no)."""
    return _native.available()


def create() -> DataPlane[Any] | None:
    """The native plane when available, else None (the engine's pure path)."""
    return NativeDataPlane() if _native.available() else None
