"""Index hygiene: whatever two devices go through, their index tables name only live state.

A hypothesis state machine drives a ``DevicePair`` (fake clock, in-memory
wire) through random events: data either way, datagrams delivered, dropped,
duplicated or reordered (through the engine or through a ``PureDataPlane``'s
batches), time past REKEY_TIMEOUT / REJECT_AFTER_TIME / the zero-key timer
(retries happen on the way), simultaneous initiations, a private key change
(the other side swaps the peer key), a PSK change on one side, peer removal
and re-adding, and ``replace_peers``.  After every step each index-table entry
must name a configured peer's handshake in progress (under the handshake's own
``local_index``), its crossed initiation (under that one's) or one of that
peer's keypairs (under the keypair's ``local_index``) -- nothing else -- every
keypair a peer holds must be in the table, the data plane's index must hold
exactly those keypairs, and the table holds at most four entries per peer (a
handshake or a crossed initiation, and three keypairs).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from wgsupport import DevicePair, Node, ipv4_packet

from wgpy import send
from wgpy.config import DeviceUpdate, PeerUpdate
from wgpy.dataplane import BatchResult
from wgpy.dataplane_twin import PureDataPlane
from wgpy.handshake import HandshakeState
from wgpy.keypair import Keypair
from wgpy.keys import PresharedKey, PrivateKey
from wgpy.peer import Peer

# REKEY_TIMEOUT (+ jitter), KEEPALIVE, NEW_HANDSHAKE, REKEY_AFTER_TIME, REJECT_AFTER_TIME, ZERO_KEY_MATERIAL
STEPS = [0.2, 5.4, 10.1, 15.4, 121.0, 181.0, 541.0]


def peer_update(pair: DevicePair, other: Node, psk: PresharedKey | None) -> PeerUpdate:
    return PeerUpdate(public_key=other.key.public_key(), preshared_key=psk, endpoint=other.endpoint,
                      allowed_ips=[ipaddress.ip_network(other.addr4 + "/32"),
                                   ipaddress.ip_network(other.addr6 + "/128")])


def audit(node: Node) -> None:
    """Every index entry names live state; every live keypair is indexed; the counts are bounded."""
    dev = node.device
    live = {id(p): p for p in dev.peers()}
    indexed_keypairs: set[int] = set()
    for index, value in dev.indices.items():
        if isinstance(value, Peer):
            assert live.get(id(value)) is value, f"{node.name}: index {index:#x} names a removed peer"
            hs = value.handshake
            if hs.crossed is not None and hs.crossed.local_index == index:
                assert hs.state is not HandshakeState.INITIATION_CREATED, (node.name, index, hs.state)
                continue  # our initiation that theirs crossed, kept for its response
            assert hs.local_index == index, f"{node.name}: index {index:#x} is not the peer's handshake index"
            assert hs.state is HandshakeState.INITIATION_CREATED, (node.name, index, hs.state)
        else:
            assert isinstance(value, Keypair)
            peer = value.peer
            assert isinstance(peer, Peer) and live.get(id(peer)) is peer, f"{node.name}: keypair of a removed peer"
            assert value.local_index == index
            assert any(kp is value for kp in peer.keypairs.all()), f"{node.name}: keypair {index:#x} is orphaned"
            indexed_keypairs.add(id(value))
    for peer in live.values():
        for kp in peer.keypairs.all():
            assert id(kp) in indexed_keypairs, f"{node.name}: keypair {kp.local_index:#x} is not indexed"
    assert len(dev.indices) <= 4 * len(live)
    plane = dev.dataplane
    if isinstance(plane, PureDataPlane):
        assert {id(kp) for kp in plane.index.values()} == indexed_keypairs
        assert all(plane.index[kp.local_index] is kp for kp in plane.index.values())


class IndexHygiene(RuleBasedStateMachine):
    pair: DevicePair
    planes: bool

    @initialize(seed=st.integers(0, 2**16), planes=st.booleans())
    def start(self, seed: int, planes: bool) -> None:
        self.planes = planes
        self.pair = DevicePair(seed=seed, dataplane=PureDataPlane if planes else None)
        self.psk: dict[str, PresharedKey | None] = {"a": self.pair.psk, "b": self.pair.psk}

    def node(self, a: bool) -> Node:
        return self.pair.a if a else self.pair.b

    # ------------------------------------------------------------------ traffic
    @rule(a=st.booleans(), n=st.integers(1, 3))
    def send_data(self, a: bool, n: int) -> None:
        p = self.pair
        node = self.node(a)
        dst = p.other(node)
        pkts = [ipv4_packet(node.addr4, dst.addr4, b"d%d" % i) for i in range(n)]
        plane = node.device.dataplane
        if isinstance(plane, PureDataPlane):
            res = BatchResult()
            for sealed in plane.encrypt_batch(pkts, p.clock.now, res):
                if sealed is not None:
                    p.wire.append((dst, sealed[0], node.endpoint))
            p.collect(node, node.device.batch_sent(res, p.clock.now))
        else:
            p.collect(node, node.device.tun_packets(pkts, p.clock.now))

    @rule(pick=st.integers(0, 1 << 16), keep=st.booleans())
    def deliver_one(self, pick: int, keep: bool) -> None:
        """Deliver any queued datagram (reordering); ``keep`` leaves it queued (a duplicate later)."""
        p = self.pair
        if not p.wire:
            return
        i = pick % len(p.wire)
        dst, data, src = p.wire[i] if keep else p.wire.pop(i)
        plane = dst.device.dataplane
        if isinstance(plane, PureDataPlane):
            res = BatchResult()
            dst.tun.extend(pkt for pkt in plane.decrypt_batch([(data, src)], p.clock.now, res) if pkt)
            p.collect(dst, dst.device.batch_received(res, p.clock.now))
        else:
            p.collect(dst, dst.device.datagram_received(data, src, p.clock.now))

    @rule(pick=st.integers(0, 1 << 16))
    def drop_one(self, pick: int) -> None:
        if self.pair.wire:
            self.pair.wire.pop(pick % len(self.pair.wire))

    @rule()
    def deliver_all(self) -> None:
        p = self.pair
        for _ in range(200):
            if not p.wire:
                break
            self.deliver_one(0, False)
        del p.wire[64:]  # an endless exchange cannot grow the wire without bound

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: float) -> None:
        p = self.pair
        p.clock.advance(step)
        for node in (p.a, p.b):
            p.collect(node, node.device.handle_timeout(p.clock.now))

    @rule()
    def initiate_both(self) -> None:
        """Both sides start a handshake before hearing the other's: the initiations cross."""
        p = self.pair
        for node in (p.a, p.b):
            peer = node.device.peer(p.other(node).key.public_key())
            if peer is not None:
                out: list[Any] = []
                send.send_initiation(node.device, peer, p.clock.now, out, retry=False)
                p.collect(node, out)

    # ------------------------------------------------------------------ configuration
    @rule(a=st.booleans())
    def change_private_key(self, a: bool) -> None:
        p = self.pair
        node, other = self.node(a), p.other(self.node(a))
        old = node.key.public_key()
        node.key = PrivateKey.generate(p.rng)
        p.collect(node, node.device.apply(DeviceUpdate(private_key=node.key), p.clock.now))
        upd = DeviceUpdate(peers=[PeerUpdate(public_key=old, remove=True),
                                  peer_update(p, node, self.psk[other.name])])
        p.collect(other, other.device.apply(upd, p.clock.now))

    @rule(a=st.booleans(), fresh=st.booleans())
    def change_psk(self, a: bool, fresh: bool) -> None:
        """One side's PSK: a fresh one (the sides disagree until both change) or the pair's."""
        p = self.pair
        node, other = self.node(a), p.other(self.node(a))
        psk = PresharedKey.generate(p.rng) if fresh else p.psk
        self.psk[node.name] = psk
        upd = DeviceUpdate(peers=[PeerUpdate(public_key=other.key.public_key(), update_only=True,
                                             preshared_key=psk)])
        p.collect(node, node.device.apply(upd, p.clock.now))

    @rule(a=st.booleans(), readd=st.booleans())
    def remove_peer(self, a: bool, readd: bool) -> None:
        p = self.pair
        node, other = self.node(a), p.other(self.node(a))
        p.collect(node, node.device.apply(DeviceUpdate(peers=[PeerUpdate(other.key.public_key(), remove=True)]),
                                          p.clock.now))
        if readd:
            self.readd_peer(a)

    @rule(a=st.booleans())
    def readd_peer(self, a: bool) -> None:
        p = self.pair
        node, other = self.node(a), p.other(self.node(a))
        upd = DeviceUpdate(peers=[peer_update(p, other, self.psk[node.name])])
        p.collect(node, node.device.apply(upd, p.clock.now))

    @rule(a=st.booleans())
    def replace_peers(self, a: bool) -> None:
        p = self.pair
        node, other = self.node(a), p.other(self.node(a))
        upd = DeviceUpdate(replace_peers=True, peers=[peer_update(p, other, self.psk[node.name])])
        p.collect(node, node.device.apply(upd, p.clock.now))

    # ------------------------------------------------------------------ the property
    @invariant()
    def indices_name_live_state(self) -> None:
        audit(self.pair.a)
        audit(self.pair.b)


IndexHygiene.TestCase.settings = settings(IndexHygiene.TestCase.settings, stateful_step_count=60)
TestIndexHygiene = IndexHygiene.TestCase


def test_crossing_initiations_leave_one_entry_per_session() -> None:
    """Ten rounds of crossing initiations: each side ends with its session's keypairs, nothing more."""
    p = DevicePair(seed=3)
    for _ in range(10):
        for node in (p.a, p.b):
            out: list[Any] = []
            send.send_initiation(node.device, p.peer_of(node), p.clock.now, out, retry=False)
            p.collect(node, out)
        p.deliver()
        audit(p.a)
        audit(p.b)
        p.clock.advance(6.0)
    assert len(p.a.device.indices) <= 3 and len(p.b.device.indices) <= 3
