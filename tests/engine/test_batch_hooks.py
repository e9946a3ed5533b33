"""``Device.batch_sent`` / ``batch_received`` leave a device as the engine's own send/receive path does.

Two ``DevicePair``s with the same seed and clock steps carry the same traffic.
In the first the engine seals and opens every packet itself (``tun_packets``
/ ``datagrams_received``).  In the second each device has a ``PureDataPlane``
(the reference twin of the native plane): every TUN packet goes through the
plane's ``encrypt_batch`` and every datagram through its ``decrypt_batch``,
and the device sees only the ``BatchResult`` -- per-peer events, and the slow
items (packets before the handshake, handshake messages) it takes the Python
way.  Byte counters, timers, endpoints (roaming included), drops and the
delivered packets must come out the same.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import wgsupport
from wgsupport import DevicePair, Node

from wgpy.config import Endpoint
from wgpy.dataplane import BatchResult
from wgpy.dataplane_twin import PureDataPlane
from wgpy.device import Device

SEED = 11


def planed_pair(monkeypatch: pytest.MonkeyPatch) -> DevicePair:
    with monkeypatch.context() as m:
        m.setattr(wgsupport, "Device", lambda **kw: Device(dataplane=PureDataPlane(), **kw))
        return DevicePair(seed=SEED)


def plane(node: Node) -> PureDataPlane:
    assert isinstance(node.device.dataplane, PureDataPlane)
    return node.device.dataplane


def send_batch(p: DevicePair, node: Node, packets: list[bytes]) -> None:
    """The TX side as the native loop runs it: seal what is fast, hand the result to the device."""
    res = BatchResult()
    for sealed in plane(node).encrypt_batch(packets, p.clock.now, res):
        if sealed is not None:
            p.wire.append((p.other(node), sealed[0], node.endpoint))
    p.collect(node, node.device.batch_sent(res, p.clock.now))


def deliver_batches(p: DevicePair, max_rounds: int = 50) -> None:
    """The RX side: each node opens everything queued for it in one batch, then the device takes the result."""
    for _ in range(max_rounds):
        if not p.wire:
            return
        queued: dict[str, list[tuple[bytes, Endpoint]]] = defaultdict(list)
        nodes = {p.a.name: p.a, p.b.name: p.b}
        for dst, data, src in p.wire:
            queued[dst.name].append((data, src))
        p.wire.clear()
        for name, datagrams in queued.items():
            node = nodes[name]
            res = BatchResult()
            node.tun.extend(pkt for pkt in plane(node).decrypt_batch(datagrams, p.clock.now, res) if pkt)
            p.collect(node, node.device.batch_received(res, p.clock.now))
    assert not p.wire, "link did not settle"


def packets(p: DevicePair, node: Node, step: int, n: int) -> list[bytes]:
    dst = p.other(node)
    return [wgsupport.ipv4_packet(node.addr4, dst.addr4, f"{node.name}{step}.{i}".encode() * 3) for i in range(n)]


def state(p: DevicePair) -> list[Any]:
    out: list[Any] = []
    for node in (p.a, p.b):
        peer = p.peer_of(node)
        t = peer.timers
        out.append((node.name, peer.tx_bytes, peer.rx_bytes, peer.endpoint, peer.last_handshake_wall,
                     t.retransmit_handshake, t.send_keepalive, t.new_handshake, t.zero_key_material,
                     t.need_another_keepalive, t.sent_last_minute_handshake, dict(node.device.drops),
                     list(node.tun)))
    return out


def test_batch_hooks_match_the_engine_path(monkeypatch: pytest.MonkeyPatch) -> None:
    engine, batched = DevicePair(seed=SEED), planed_pair(monkeypatch)
    for step in range(12):
        for sender, n in (("a", 1 + step % 4), ("b", step % 3)):
            if step == 7 and sender == "a":  # a roams: b must follow it from the batch's event
                engine.a.endpoint = batched.a.endpoint = ("198.51.100.9", 40000)
            for p in (engine, batched):
                node = p.a if sender == "a" else p.b
                if not n:
                    continue
                if p is engine:
                    p.collect(node, node.device.tun_packets(packets(p, node, step, n), p.clock.now))
                    p.deliver()
                else:
                    send_batch(p, node, packets(p, node, step, n))
                    deliver_batches(p)
        for p in (engine, batched):
            p.clock.advance(4.0)
            for node in (p.a, p.b):
                p.collect(node, node.device.handle_timeout(p.clock.now))
            if p is engine:
                p.deliver()
            else:
                deliver_batches(p)
        assert state(engine) == state(batched), step
    assert len(engine.b.tun) == sum(1 + s % 4 for s in range(12))
    assert plane(batched.a).peers and all(pp.fast_tx for pp in plane(batched.a).peers.values())


def test_the_plane_given_at_construction_follows_the_mtu() -> None:
    pure = PureDataPlane()
    dev = Device(rng=wgsupport.SeededRng(1), wall_clock=lambda: 0.0, mtu=1280, dataplane=pure)
    assert dev.dataplane is pure and pure.mtu == 1280
    dev.mtu = 1400  # what the shell does on a link MTU change
    assert pure.mtu == 1400
