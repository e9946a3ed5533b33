"""The data plane facade: the state a ``Device`` mirrors into it and what a batch hands back.

Contract (architecture.md "Two planes", wireguard.md §2, §7, §8): a data plane
mirrors the fast-path state of a ``Device`` -- peers (id, endpoint, current
sending keypair, the ``fast_tx`` flag), the allowed-IPs routes, the MTU and
the keypair index (with each keypair's ``fast_rx`` flag, false while it is
the responder's unconfirmed ``next``) -- and seals/opens whole batches.  A
relayed peer (wgpy.relay) never has ``fast_tx`` (Python frames what goes to it)
and relay frames are slow items.  The
device, which is given its plane at construction, pushes data, never itself:
``new_keypair`` (its keypair factory), ``sync_peer(peer)`` (after every
engine step that touched a configured peer), ``sync_config(peers, routes)``
(after every ``apply``) and ``set_mtu``.  A batch fills a ``BatchResult``:
the items only Python may handle ("slow": handshake messages, ``next``
keypairs, peers without a usable keypair or with staged packets), one
``PeerEvent`` per peer and the drop counts; ``Device.batch_sent`` /
``Device.batch_received`` turn it into the timer hooks, byte counters and
roaming of wireguard.md §6/§8 -- once per peer per batch, not per packet --
and feed the slow items to the engine.

Peer ids are reused after a removal (``replace_peers``), so each assignment
of an id has its own generation, pushed with the peer and carried by every
event and TX slow item; ``peer_for(id, generation)`` answers only for the
current one, so results the I/O threads publish late for a removed peer never
credit the peer that took its id (counters, timer hooks, roaming).

``fast_tx`` ordering rule: a packet handed back as slow clears the peer's
``fast_tx`` and bumps its slow sequence number; Python re-enables it only
when it has processed every slow packet up to that number (``slow_taken``)
and has nothing staged, so the fast path never overtakes staged packets.

``NativeDataPlane`` runs over the C context (``wgpy._native``); its batches
run in the context's I/O loops (wgpy/io/fastpath.py).
``wgpy.dataplane_twin.PureDataPlane`` is its reference twin (same inputs give
the same bytes, slow lists, events and drops; tests/native prove it).
Sans-IO: no sockets, no clock; ``now`` is passed in.  Not thread-safe; the
native context's own locking covers the I/O threads.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
from typing import Any, Collection, Generic, Iterable, TypeVar

from .config import Endpoint, IPNetwork
from .errors import DropReason
from .keypair import Keypair
from .peer import Peer
from . import _native
from ._native import Addr

__all__ = ["Addr", "BatchResult", "DataPlane", "NativeDataPlane", "PeerEvent", "SlowItem", "addr_to_endpoint",
           "convert_result", "create", "endpoint_to_addr"]


_V4_PAD = bytes(12)


def _v4_packed(host: str) -> bytes | None:
    """The 4 bytes of a dotted-quad IPv4 address in the form ``ipaddress`` prints it, else None
    (per handshake this is several times faster than ``ipaddress``, which handles the rest)."""
    parts = host.split(".")
    if len(parts) != 4:
        return None
    try:
        raw = bytes(map(int, parts))
    except ValueError:
        return None
    return raw if "%d.%d.%d.%d" % (raw[0], raw[1], raw[2], raw[3]) == host else None


def endpoint_to_addr(endpoint: Endpoint | None) -> Addr | None:
    """(host, port) -> (family, 16 bytes, port); None stays None."""
    if endpoint is None:
        return None
    v4 = _v4_packed(endpoint[0])
    if v4 is not None:
        return (4, v4 + _V4_PAD, endpoint[1])
    ip = ipaddress.ip_address(endpoint[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.version, ip.packed.ljust(16, b"\0"), endpoint[1])


def addr_to_endpoint(addr: Addr) -> Endpoint | None:
    family, raw, port = addr
    if family == 4:
        return ("%d.%d.%d.%d" % (raw[0], raw[1], raw[2], raw[3]), port)
    if family == 6:
        return (str(ipaddress.IPv6Address(raw[:16])), port)
    return None


@dataclasses.dataclass(slots=True)
class PeerEvent:
    """What one batch did for one peer (the timer hooks run once from it)."""

    peer_id: int
    generation: int = 0
    """The peer slot's generation the work was done for (``DataPlane.peer_for``)."""
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
    generation: int = 0
    """TX: the routed peer slot's generation; RX: 0."""


@dataclasses.dataclass(slots=True)
class BatchResult:
    """Slow items, per-peer events and drop counts of one batch."""

    events: list[PeerEvent] = dataclasses.field(default_factory=list)
    slow: list[SlowItem] = dataclasses.field(default_factory=list)
    drops: collections.Counter[DropReason] = dataclasses.field(default_factory=collections.Counter)
    io_drops: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def event(self, peer_id: int, generation: int) -> PeerEvent:
        for ev in reversed(self.events):
            if ev.peer_id == peer_id and ev.generation == generation:
                return ev
        ev = PeerEvent(peer_id, generation)
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
        self._gens: dict[int, int] = {}
        self._free: list[int] = []
        self._next_id = 0
        self._next_gen = 0
        self._pushed_ep: dict[int, Endpoint | None] = {}
        self._pushed_kp: dict[int, Keypair | None] = {}
        self._fast: dict[int, bool] = {}
        self.tx_seq_done: dict[int, int] = {}
        self._mtu: int | None = None

    # ---------------------------------------------------------------- primitives
    def _peer_add(self, pid: int, generation: int) -> None:
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

    def _set_mac1_key(self, key: bytes | None) -> None:
        raise NotImplementedError

    def _set_under_load(self, until: float) -> None:
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
            self._next_gen = self._next_gen % 0xFFFFFFFF + 1
            self._ids[peer] = pid
            self._by_id[pid] = peer
            self._gens[pid] = self._next_gen
            self._peer_add(pid, self._next_gen)
        return pid

    def peer_by_id(self, pid: int) -> Peer | None:
        return self._by_id.get(pid)

    def peer_for(self, pid: int, generation: int) -> Peer | None:
        """The peer a batch's event or slow item was for, or None when the id has been
        released (and perhaps reassigned) since: that peer is gone, nothing is credited."""
        return self._by_id.get(pid) if self._gens.get(pid) == generation else None

    def new_keypair(self, send_key: bytes, receive_key: bytes, local_index: int, remote_index: int,
                    is_initiator: bool, created: float, peer: Peer) -> Keypair:
        """The device's keypair factory: a keypair registered in this plane's index."""
        return self._make_keypair(send_key, receive_key, local_index, remote_index, is_initiator, created,
                                  peer, self.peer_id(peer))

    def set_mtu(self, mtu: int) -> None:
        """Pad sealed messages for ``mtu`` (pushed when it changes)."""
        if mtu != self._mtu:
            self._mtu = mtu
            self._set_mtu(mtu)

    def set_mac1_key(self, key: bytes | None) -> None:
        """Check mac1 of handshake messages with ``key`` (HASH(LABEL_MAC1 || our public key))
        before they become slow items; None (no private key): every initiation and response is
        an ``invalid-mac1`` drop, as in the engine."""
        self._set_mac1_key(key)

    def set_under_load(self, until: float) -> None:
        """The engine is under load until ``until``: from now the plane also limits handshake messages
        per source (20/s, burst 5) before handing them on, as it does when its own handshake ring fills;
        what it refuses is a ``rate-limited`` drop."""
        self._set_under_load(until)

    def sync_peer(self, peer: Peer) -> None:
        """Mirror one configured peer's fast-path state after the engine touched it."""
        pid = self.peer_id(peer)
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
        want = current is not None and not peer.has_staged and peer.endpoint is not None and not peer.relayed
        if want or self._fast.get(pid, False):
            self._fast[pid] = self._peer_fast_tx(pid, want, self.tx_seq_done.get(pid, 0))

    def sync_config(self, peers: Collection[Peer], routes: Iterable[tuple[IPNetwork, Peer]]) -> None:
        """Mirror the whole configuration after ``apply``: the configured ``peers`` (others are
        removed) and the allowed-IPs ``routes`` as (network, owning peer)."""
        live = set(peers)
        for peer, pid in list(self._ids.items()):
            if peer not in live:
                del self._ids[peer]
                del self._by_id[pid]
                del self._gens[pid]
                for table in (self._pushed_ep, self._pushed_kp, self._fast, self.tx_seq_done):
                    table.pop(pid, None)
                self._peer_remove(pid)
                self._free.append(pid)
        for peer in peers:
            self.sync_peer(peer)
        entries: list[tuple[int, int, bytes, int]] = []
        for net, owner in routes:
            owner_id = self._ids.get(owner)
            if owner_id is not None:
                entries.append((net.version, net.prefixlen, net.network_address.packed, owner_id))
        self._set_routes(entries)

    def roamed(self, pid: int, endpoint: Endpoint) -> None:
        """The plane moved peer ``pid`` to ``endpoint`` itself (an RX batch): nothing to push back."""
        self._pushed_ep[pid] = endpoint

    def slow_taken(self, items: Iterable[SlowItem]) -> None:
        """The engine takes these TX slow items: their sequence numbers count as processed
        (the ``fast_tx`` ordering rule), effective at the next ``sync_peer``."""
        for item in items:
            if self._gens.get(item.peer_id) == item.generation:
                self.tx_seq_done[item.peer_id] = item.seq


# ------------------------------------------------------------------ the native plane


class NativeDataPlane(DataPlane[_native.NativeKeypair]):
    """The same plane over the C context (``wgpy._native``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = _native.Context()

    def _peer_add(self, pid: int, generation: int) -> None:
        self.ctx.peer_add(pid, generation)

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

    def _set_mac1_key(self, key: bytes | None) -> None:
        self.ctx.set_mac1_key(key)

    def _set_under_load(self, until: float) -> None:
        self.ctx.set_under_load(until)

    def _make_keypair(self, send_key: bytes, receive_key: bytes, local_index: int, remote_index: int,
                      is_initiator: bool, created: float, peer: Peer, pid: int) -> _native.NativeKeypair:
        return _native.NativeKeypair(self.ctx, send_key, receive_key, local_index, remote_index, is_initiator,
                                     created, peer, pid)

    def _owns(self, kp: Keypair | None) -> _native.NativeKeypair | None:
        return kp if isinstance(kp, _native.NativeKeypair) and kp._ctx is self.ctx else None

    def _set_fast_rx(self, kp: _native.NativeKeypair) -> None:
        kp.set_fast_rx(True)


def convert_result(raw: _native.Result, res: BatchResult) -> None:
    """Append a native result's events, slow items and drops to ``res``."""
    for pid, gen, messages, data, nbytes, ep in raw.events():
        res.events.append(PeerEvent(pid, gen, messages, data, nbytes, addr_to_endpoint(ep)))
    for data_, pid, gen, seq, src in raw.slow():
        res.slow.append(SlowItem(data_, pid, seq, addr_to_endpoint(src), gen))
    for code, n in raw.drops().items():
        reason = _native.DROP_REASONS.get(code)
        if reason is not None:
            res.drops[reason] += n
        else:
            res.io_drops[_native.IO_DROPS.get(code, f"native-{code}")] += n


def create() -> DataPlane[Any] | None:
    """The native plane when available, else None (the engine's pure path)."""
    return NativeDataPlane() if _native.available() else None
