"""The pure-Python twin of the native data-plane context (wgpy/_native/wgdp_ctx.c).

Contract: ``PureDataPlane`` keeps the same tables as the C ``wgdp`` (peers
with endpoint, current keypair, ``fast_tx`` and slow sequence number; routes;
the keypair index with ``fast_rx``) and its ``encrypt_batch`` /
``decrypt_batch`` make exactly the decisions of ``wgdp_encrypt_one`` /
``wgdp_decrypt_one`` in the same order (wireguard.md §2, §7, §8), so the
differential tests in tests/native can compare every byte, slow item, event
and drop -- including the peer slot's generation each event and TX slow item
carries (a slot given a new generation starts afresh, as ``wgdp_peer_add``
does).  It can also drive a ``Device`` (the engine suite runs with it).
Sans-IO; not thread-safe.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
from typing import Any, Iterable

from .allowedips import AllowedIPs, destination, source
from .config import Endpoint
from .crypto import mac
from .constants import (MESSAGE_COOKIE_REPLY, MESSAGE_RELAY, MESSAGE_TRANSPORT, REJECT_AFTER_TIME, TRANSPORT_MIN_SIZE,
                        UNDER_LOAD_AFTER_TIME)
from .dataplane import Addr, BatchResult, DataPlane, SlowItem, endpoint_to_addr
from .errors import DropReason
from .keypair import Keypair
from .messages import HANDSHAKE_SIZES, transport_header
from .peer import Peer
from .ratelimiter import RateLimiter
from .receive import inner_packet


class _PureKeypair(Keypair):
    """A pure ``Keypair`` that leaves its plane's index when zeroed."""

    __slots__ = ("plane", "peer_id", "fast_rx")

    def __init__(self, plane: PureDataPlane, peer_id: int, *args: Any) -> None:
        super().__init__(*args)
        self.plane = plane
        self.peer_id = peer_id
        self.fast_rx = self.is_initiator

    def zero(self) -> None:
        super().zero()
        self.plane._forget(self)


@dataclasses.dataclass(slots=True, eq=False)
class _PurePeer:
    pid: int
    gen: int
    endpoint: Addr | None = None
    fast_tx: bool = False
    slow_seq: int = 0
    current: _PureKeypair | None = None


class PureDataPlane(DataPlane[_PureKeypair]):
    """The reference twin of the native context, in Python."""

    def __init__(self) -> None:
        super().__init__()
        self.mtu = 1420
        self.peers: dict[int, _PurePeer] = {}
        self.routes: AllowedIPs[_PurePeer] = AllowedIPs()
        self.index: dict[int, _PureKeypair] = {}
        self.mac1_key: bytes | None = None
        self.under_load_until = -1.0
        self.gate = RateLimiter()

    def _peer_add(self, pid: int, generation: int) -> None:
        p = self.peers.get(pid)
        if p is None or p.gen != generation:
            self.peers[pid] = _PurePeer(pid, generation)

    def _peer_remove(self, pid: int) -> None:
        self.peers.pop(pid, None)

    def _peer_set_keypair(self, pid: int, kp: _PureKeypair | None) -> None:
        if pid in self.peers:
            self.peers[pid].current = kp

    def _peer_set_endpoint(self, pid: int, addr: Addr | None) -> None:
        if pid in self.peers:
            self.peers[pid].endpoint = addr if addr is not None and addr[0] else None

    def _peer_fast_tx(self, pid: int, on: bool, seq: int) -> bool:
        p = self.peers.get(pid)
        if p is None:
            return False
        if not on:
            p.fast_tx = False
        elif p.slow_seq == seq & 0xFFFFFFFF:
            p.fast_tx = True
        return p.fast_tx

    def _set_routes(self, routes: list[tuple[int, int, bytes, int]]) -> None:
        table: AllowedIPs[_PurePeer] = AllowedIPs()
        for family, length, addr, pid in routes:
            peer = self.peers.get(pid)
            if peer is None:
                continue
            raw = addr[:4] if family == 4 else addr[:16]
            net = ipaddress.ip_network((raw, length), strict=False)
            table.insert(net, peer)
        self.routes = table

    def _set_mtu(self, mtu: int) -> None:
        self.mtu = mtu

    def _set_mac1_key(self, key: bytes | None) -> None:
        self.mac1_key = key

    def _set_under_load(self, until: float) -> None:
        self.under_load_until = max(self.under_load_until, until)

    def _make_keypair(self, send_key: bytes, receive_key: bytes, local_index: int, remote_index: int,
                      is_initiator: bool, created: float, peer: Peer, pid: int) -> _PureKeypair:
        kp = _PureKeypair(self, pid, send_key, receive_key, local_index, remote_index, is_initiator, created, peer)
        self.index[local_index] = kp
        return kp

    def _owns(self, kp: Keypair | None) -> _PureKeypair | None:
        return kp if isinstance(kp, _PureKeypair) and kp.plane is self else None

    def _set_fast_rx(self, kp: _PureKeypair) -> None:
        kp.fast_rx = True

    def _forget(self, kp: _PureKeypair) -> None:
        if self.index.get(kp.local_index) is kp:
            del self.index[kp.local_index]
        p = self.peers.get(kp.peer_id)
        if p is not None and p.current is kp:
            p.current = None

    # ---------------------------------------------------------------- batches
    def encrypt_batch(self, packets: Iterable[bytes], now: float,
                      res: BatchResult) -> list[tuple[bytes, int] | None]:
        """Twin of ``wgdp_encrypt_batch``: per packet (message, peer_id) or None."""
        return [self._encrypt_one(bytes(p), now, res) for p in packets]

    def _encrypt_one(self, pkt: bytes, now: float, res: BatchResult) -> tuple[bytes, int] | None:
        dst = destination(pkt)
        if dst is None:
            res.drops[DropReason.INVALID_INNER_PACKET] += 1
            return None
        peer = self.routes.lookup(dst)
        if peer is None:
            res.drops[DropReason.NO_ROUTE] += 1
            return None
        kp = peer.current
        if peer.fast_tx and peer.endpoint is not None and kp is not None and kp.can_send(now):
            msg = kp.seal(pkt, self.mtu)
            ev = res.event(peer.pid, peer.gen)
            ev.messages += 1
            ev.bytes += len(msg)
            ev.data += 1 if pkt else 0
            return msg, peer.pid
        peer.fast_tx = False
        peer.slow_seq = (peer.slow_seq + 1) & 0xFFFFFFFF
        res.slow.append(SlowItem(pkt, peer.pid, peer.slow_seq, None, peer.gen))
        return None

    def decrypt_batch(self, datagrams: Iterable[tuple[bytes, Endpoint]], now: float,
                      res: BatchResult) -> list[bytes | None]:
        """Twin of ``wgdp_decrypt_batch``: per datagram the inner packet, or None."""
        return [self._decrypt_one(bytes(d), src, now, res) for d, src in datagrams]

    def _mac1_ok(self, msg: bytes) -> bool:
        """Twin of ``wgdp_mac1_ok``."""
        return self.mac1_key is not None and hmac.compare_digest(mac(self.mac1_key, msg[:-32]), msg[-32:-16])

    def _decrypt_one(self, msg: bytes, src: Endpoint, now: float, res: BatchResult) -> bytes | None:
        n = len(msg)
        if n < 4:
            res.drops[DropReason.MALFORMED] += 1
            return None
        if msg[0] == MESSAGE_RELAY:  # a relay frame: Python's (wgpy.relay)
            res.slow.append(SlowItem(msg, 0, 0, src))
            return None
        if msg[1:4] != b"\0\0\0" or not 1 <= msg[0] <= 4:
            res.drops[DropReason.UNKNOWN_TYPE] += 1
            return None
        if msg[0] != MESSAGE_TRANSPORT:
            if n != HANDSHAKE_SIZES[msg[0]]:
                res.drops[DropReason.MALFORMED] += 1
            elif msg[0] != MESSAGE_COOKIE_REPLY and not self._mac1_ok(msg):
                res.drops[DropReason.INVALID_MAC1] += 1
            elif msg[0] != MESSAGE_COOKIE_REPLY and self.under_load_until > now and not self.gate.allow(src[0], now):
                res.drops[DropReason.RATE_LIMITED] += 1
                self.under_load_until = now + UNDER_LOAD_AFTER_TIME  # refusing is load
            else:
                res.slow.append(SlowItem(msg, 0, 0, src))
            return None
        if n < TRANSPORT_MIN_SIZE:
            res.drops[DropReason.MALFORMED] += 1
            return None
        kp = self.index.get(transport_header(msg)[0])
        if kp is None:
            res.drops[DropReason.UNKNOWN_INDEX] += 1
            return None
        if not kp.fast_rx or kp.peer_id not in self.peers:
            res.slow.append(SlowItem(msg, 0, 0, src))
            return None
        if not now - kp.created < REJECT_AFTER_TIME:
            res.drops[DropReason.KEYPAIR_EXPIRED] += 1
            return None
        plaintext = kp.open(msg)
        if not isinstance(plaintext, bytes):
            res.drops[plaintext] += 1
            return None
        peer = self.peers[kp.peer_id]
        ev = res.event(kp.peer_id, peer.gen)
        ev.messages += 1
        ev.bytes += n
        ev.endpoint = src
        peer.endpoint = endpoint_to_addr(src)
        if not plaintext:
            return None
        ev.data += 1
        packet = inner_packet(plaintext)
        if packet is None:
            res.drops[DropReason.INVALID_INNER_PACKET] += 1
            return None
        src_ip = source(packet)
        if src_ip is None or self.routes.lookup(src_ip) is not peer:
            res.drops[DropReason.DISALLOWED_SOURCE] += 1
            return None
        return packet
