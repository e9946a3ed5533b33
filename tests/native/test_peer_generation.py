"""No credit to a reused id: a batch result for a removed peer never lands on the peer that took its id.

Peer ids are reused: ``replace_peers`` releases them and the next peer configured takes one.  Here ``b`` (with the native
plane or its pure twin) seals and opens a batch for its peer ``a`` -- the
RX one from a roamed source -- and keeps the ``BatchResult`` as an I/O thread
would before Python drains it; then ``replace_peers`` swaps ``a`` for a new
peer, which gets the same id.  Handed the old results, the device must not
credit the new peer with ``a``'s bytes, run its timer hooks or move its
endpoint; without the replace the same results are credited (the control).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

import pytest
from wgsupport import DevicePair, Node, ipv4_packet

from wgpy.actions import SendDatagram
from wgpy.config import DeviceUpdate, Endpoint, PeerUpdate
from wgpy.dataplane import BatchResult, DataPlane, NativeDataPlane, endpoint_to_addr
from wgpy.dataplane_twin import PureDataPlane
from wgpy.keys import PrivateKey

from test_batch_diff import native_decrypt, native_encrypt

ROAMED: Endpoint = ("198.51.100.77", 40999)
NEW_ENDPOINT: Endpoint = ("192.0.2.50", 5000)
PLANES: dict[str, Callable[[], DataPlane[Any]]] = {"twin": PureDataPlane, "native": NativeDataPlane}


def seal(plane: DataPlane[Any], packets: list[bytes], now: float, res: BatchResult) -> list[Any]:
    if isinstance(plane, NativeDataPlane):
        return native_encrypt(plane, packets, now, res)
    assert isinstance(plane, PureDataPlane)
    return plane.encrypt_batch(packets, now, res)


def open_(plane: DataPlane[Any], datagrams: list[tuple[bytes, Endpoint]], now: float, res: BatchResult) -> list[Any]:
    if isinstance(plane, NativeDataPlane):
        return native_decrypt(plane, datagrams, now, res)
    assert isinstance(plane, PureDataPlane)
    return plane.decrypt_batch(datagrams, now, res)


def held_results(p: DevicePair) -> tuple[BatchResult, BatchResult, int, int]:
    """A session a <-> b, then one TX and one RX batch at b that Python has not taken yet."""
    p.send_ip(p.a, b"hello")
    p.deliver()
    p.send_ip(p.b, b"back")
    p.deliver()
    dev, plane = p.b.device, p.b.device.dataplane
    assert plane is not None
    old = p.peer_of(p.b)
    pid, gen = plane.peer_id(old), plane._gens[plane.peer_id(old)]
    actions = p.a.device.tun_packets([ipv4_packet(p.a.addr4, p.b.addr4, b"late rx %d" % i) for i in range(3)],
                                     p.clock.now)
    datagrams = [(act.data, ROAMED) for act in actions if isinstance(act, SendDatagram)]
    assert len(datagrams) == 3
    rx = BatchResult()
    assert all(open_(plane, datagrams, p.clock.now, rx))
    tx = BatchResult()
    assert all(seal(plane, [ipv4_packet(p.b.addr4, p.a.addr4, b"late tx")], p.clock.now, tx))
    assert not rx.slow and not tx.slow
    assert [(ev.peer_id, ev.generation, ev.messages) for ev in rx.events] == [(pid, gen, 3)]
    assert [(ev.peer_id, ev.generation, ev.messages) for ev in tx.events] == [(pid, gen, 1)]
    assert dev is p.b.device
    return tx, rx, pid, gen


def replace_with_new_peer(p: DevicePair) -> Node:
    """b's ``replace_peers`` (a goes, its id is released), then a new peer that routes a's address
    (the next peer configured takes the released id)."""
    key = PrivateKey.generate(p.rng)
    p.collect(p.b, p.b.device.apply(DeviceUpdate(replace_peers=True), p.clock.now))
    upd = DeviceUpdate(peers=[PeerUpdate(public_key=key.public_key(), endpoint=NEW_ENDPOINT,
                                         allowed_ips=[ipaddress.ip_network(p.a.addr4 + "/32")])])
    p.collect(p.b, p.b.device.apply(upd, p.clock.now))
    return Node("c", p.b.device, key, NEW_ENDPOINT, p.a.addr4, p.a.addr6)


@pytest.mark.parametrize("plane_name", sorted(PLANES))
def test_late_results_do_not_credit_the_peer_that_took_the_id(plane_name: str) -> None:
    p = DevicePair(seed=5, dataplane=PLANES[plane_name])
    tx, rx, pid, gen = held_results(p)
    c = replace_with_new_peer(p)
    dev, plane = p.b.device, p.b.device.dataplane
    assert plane is not None
    new = dev.peer(c.key.public_key())
    assert new is not None and plane.peer_id(new) == pid, "the new peer reuses the id"
    assert plane._gens[pid] != gen
    timers_before = (new.timers.retransmit_handshake, new.timers.send_keepalive, new.timers.new_handshake,
                     new.timers.zero_key_material, new.timers.persistent_keepalive)
    out = dev.batch_received(rx, p.clock.now) + dev.batch_sent(tx, p.clock.now)
    assert out == []
    assert (new.rx_bytes, new.tx_bytes) == (0, 0)
    assert new.endpoint == NEW_ENDPOINT
    assert (new.timers.retransmit_handshake, new.timers.send_keepalive, new.timers.new_handshake,
            new.timers.zero_key_material, new.timers.persistent_keepalive) == timers_before
    assert plane._pushed_ep[pid] == NEW_ENDPOINT
    if isinstance(plane, PureDataPlane):
        assert plane.peers[pid].endpoint == endpoint_to_addr(NEW_ENDPOINT)


@pytest.mark.parametrize("plane_name", sorted(PLANES))
def test_the_same_results_credit_the_peer_still_there(plane_name: str) -> None:
    """The control: without the replace, the held results count for a and roam it."""
    p = DevicePair(seed=5, dataplane=PLANES[plane_name])
    tx, rx, _pid, _gen = held_results(p)
    peer = p.peer_of(p.b)
    rx_before, tx_before = peer.rx_bytes, peer.tx_bytes
    p.b.device.batch_received(rx, p.clock.now)
    p.b.device.batch_sent(tx, p.clock.now)
    assert peer.rx_bytes == rx_before + sum(ev.bytes for ev in rx.events)
    assert peer.tx_bytes == tx_before + sum(ev.bytes for ev in tx.events)
    assert peer.endpoint == ROAMED


def test_stale_tx_slow_items_do_not_move_the_new_peers_sequence() -> None:
    """A TX slow item of the removed peer does not count as processed for the id's new peer."""
    p = DevicePair(seed=6, dataplane=PureDataPlane)
    plane = p.b.device.dataplane
    assert isinstance(plane, PureDataPlane)
    res = BatchResult()
    plane.encrypt_batch([ipv4_packet(p.b.addr4, p.a.addr4, b"before any session")], p.clock.now, res)
    assert len(res.slow) == 1
    pid = res.slow[0].peer_id
    replace_with_new_peer(p)
    plane.slow_taken(res.slow)
    assert pid not in plane.tx_seq_done
