"""Test support: a fake clock, a seeded RNG, and two devices joined by an in-memory link."""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from wgpy.config import DeviceUpdate, Endpoint, PeerUpdate
from wgpy.actions import Action, SendDatagram, Unreachable, WriteTun
from wgpy.dataplane import DataPlane
from wgpy.device import Device
from wgpy.keys import PresharedKey, PrivateKey

WALL_EPOCH = 1_700_000_000.0


class FakeClock:
    """Monotonic ``now`` plus a wall clock that moves with it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.wall_offset = WALL_EPOCH - start

    def wall(self) -> float:
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SeededRng:
    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._r.randbytes(n)


def ipv4_packet(src: str, dst: str, payload: bytes = b"x" * 20, proto: int = 17) -> bytes:
    total = 20 + len(payload)
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, proto, 0,
        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed,
    )
    return hdr + payload


def ipv6_packet(src: str, dst: str, payload: bytes = b"y" * 20, nh: int = 17) -> bytes:
    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64,
                      ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    return hdr + payload


@dataclass
class Node:
    name: str
    device: Device
    key: PrivateKey
    endpoint: Endpoint
    addr4: str
    addr6: str
    tun: list[bytes] = field(default_factory=list)
    sent: list[SendDatagram] = field(default_factory=list)
    unreachable: list[bytes] = field(default_factory=list)


def run_clock(clock: FakeClock, nodes: Sequence[Node], collect: Callable[[Node, list[Action]], None],
              deliver: Callable[[], int], seconds: float, step: float) -> None:
    """Advance ``clock`` by ``seconds`` in ``step``s (bounded), firing every node's timers and delivering."""
    end = clock.now + seconds
    guard = int(seconds / step) + 10
    while clock.now < end and guard > 0:
        guard -= 1
        clock.advance(min(step, end - clock.now))
        for node in nodes:
            collect(node, node.device.handle_timeout(clock.now))
        deliver()


class DevicePair:
    """Two devices ``a`` and ``b`` that deliver datagrams to each other on ``pump``.

    Datagrams go through ``self.wire`` (a list of (dst_node, data, src_endpoint));
    tests may drop, replay or tamper with them before ``deliver``.
    """

    def __init__(self, seed: int = 1, psk: bool = True, keepalive_a: int = 0, keepalive_b: int = 0,
                 clock: FakeClock | None = None,
                 dataplane: Callable[[], DataPlane[Any] | None] | None = None) -> None:
        self.clock = clock or FakeClock()
        self.rng = SeededRng(seed)
        ka, kb = PrivateKey.generate(self.rng), PrivateKey.generate(self.rng)
        self.psk = PresharedKey.generate(self.rng) if psk else None

        def device() -> Device:
            if dataplane is None:
                return Device(rng=self.rng, wall_clock=self.clock.wall)
            return Device(rng=self.rng, wall_clock=self.clock.wall, dataplane=dataplane())

        self.a = Node("a", device(), ka, ("192.0.2.1", 51820), "10.0.0.1", "fd00::1")
        self.b = Node("b", device(), kb, ("192.0.2.2", 51821), "10.0.0.2", "fd00::2")
        self.wire: list[tuple[Node, bytes, Endpoint]] = []
        self._configure(self.a, self.b, keepalive_a)
        self._configure(self.b, self.a, keepalive_b)

    def _configure(self, me: Node, other: Node, keepalive: int) -> None:
        upd = DeviceUpdate(private_key=me.key, listen_port=me.endpoint[1], peers=[PeerUpdate(
            public_key=other.key.public_key(), preshared_key=self.psk, endpoint=other.endpoint,
            persistent_keepalive=keepalive,
            allowed_ips=[ipaddress.ip_network(other.addr4 + "/32"), ipaddress.ip_network(other.addr6 + "/128")],
        )])
        self.collect(me, me.device.apply(upd, self.clock.now))

    def other(self, node: Node) -> Node:
        return self.b if node is self.a else self.a

    def collect(self, node: Node, actions: list[Action]) -> None:
        for act in actions:
            if isinstance(act, WriteTun):
                node.tun.append(act.packet)
            elif isinstance(act, Unreachable):
                node.unreachable.append(act.packet)
            else:
                node.sent.append(act)
                dst = self.other(node)
                assert act.endpoint == dst.endpoint, (act.endpoint, dst.endpoint)
                self.wire.append((dst, act.data, node.endpoint))

    def send_ip(self, node: Node, payload: bytes = b"hello", v6: bool = False) -> None:
        dst = self.other(node)
        pkt = ipv6_packet(node.addr6, dst.addr6, payload) if v6 else ipv4_packet(node.addr4, dst.addr4, payload)
        self.collect(node, node.device.tun_packet(pkt, self.clock.now))

    def deliver(self, max_steps: int = 100) -> int:
        """Deliver queued datagrams (and their answers) until the wire is empty."""
        steps = 0
        while self.wire and steps < max_steps:
            dst, data, src = self.wire.pop(0)
            self.collect(dst, dst.device.datagram_received(data, src, self.clock.now))
            steps += 1
        assert not self.wire, "link did not settle"
        return steps

    def tick(self, seconds: float, step: float = 0.5) -> None:
        """Advance the clock in steps, firing timers and delivering traffic."""
        run_clock(self.clock, (self.a, self.b), self.collect, self.deliver, seconds, step)

    def peer_of(self, node: Node):  # type: ignore[no-untyped-def]
        peer = node.device.peer(self.other(node).key.public_key())
        assert peer is not None
        return peer


class Mesh:
    """Devices on one in-memory network, addressed by endpoint; ``blocked`` pairs of endpoints lose every
    datagram between them (both ways), as an nft drop would.  ``lost`` keeps what was lost (dst, data, src)."""

    def __init__(self, names: str = "arp", seed: int = 1, clock: FakeClock | None = None,
                 dataplane: Callable[[], DataPlane[Any] | None] | None = None) -> None:
        self.clock = clock or FakeClock()
        self.rng = SeededRng(seed)
        self.nodes: dict[str, Node] = {}
        for i, name in enumerate(names):
            plane = dataplane() if dataplane is not None else None
            dev = Device(rng=self.rng, wall_clock=self.clock.wall, dataplane=plane)
            node = Node(name, dev, PrivateKey.generate(self.rng), (f"192.0.2.{i + 1}", 51820 + i),
                        f"10.0.0.{i + 1}", f"fd00::{i + 1}")
            self.nodes[name] = node
            self.collect(node, dev.apply(DeviceUpdate(private_key=node.key, listen_port=node.endpoint[1]),
                                         self.clock.now))
        self.blocked: set[frozenset[Endpoint]] = set()
        self.wire: list[tuple[Endpoint, bytes, Endpoint]] = []
        self.lost: list[tuple[Endpoint, bytes, Endpoint]] = []

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def block(self, x: str, y: str) -> None:
        self.blocked.add(frozenset((self[x].endpoint, self[y].endpoint)))

    def unblock(self, x: str, y: str) -> None:
        self.blocked.discard(frozenset((self[x].endpoint, self[y].endpoint)))

    def connect(self, me: str, other: str, *, endpoint: Endpoint | None = None, relayed: bool = False,
                probe: Endpoint | None = None, keepalive: int = 0) -> None:
        """Make ``other`` a peer of ``me`` (at its own endpoint unless told otherwise)."""
        o = self[other]
        upd = DeviceUpdate(peers=[PeerUpdate(
            public_key=o.key.public_key(), endpoint=endpoint or o.endpoint, relayed=relayed, probe_endpoint=probe,
            persistent_keepalive=keepalive,
            allowed_ips=[ipaddress.ip_network(o.addr4 + "/32"), ipaddress.ip_network(o.addr6 + "/128")])])
        self.collect(self[me], self[me].device.apply(upd, self.clock.now))

    def collect(self, node: Node, actions: list[Action]) -> None:
        for act in actions:
            if isinstance(act, WriteTun):
                node.tun.append(act.packet)
            elif isinstance(act, Unreachable):
                node.unreachable.append(act.packet)
            else:
                node.sent.append(act)
                self.wire.append((act.endpoint, act.data, node.endpoint))

    def send_ip(self, src: str, dst: str, payload: bytes = b"hello") -> None:
        node = self[src]
        pkt = ipv4_packet(node.addr4, self[dst].addr4, payload)
        self.collect(node, node.device.tun_packet(pkt, self.clock.now))

    def node_at(self, endpoint: Endpoint) -> Node | None:
        return next((n for n in self.nodes.values() if n.endpoint == endpoint), None)

    def deliver(self, max_steps: int = 1000) -> int:
        steps = 0
        while self.wire and steps < max_steps:
            item = dst, data, src = self.wire.pop(0)
            node = self.node_at(dst)
            if node is None or frozenset((src, dst)) in self.blocked:
                self.lost.append(item)
            else:
                self.collect(node, node.device.datagram_received(data, src, self.clock.now))
            steps += 1
        assert not self.wire, "network did not settle"
        return steps

    def tick(self, seconds: float, step: float = 0.5) -> None:
        run_clock(self.clock, list(self.nodes.values()), self.collect, self.deliver, seconds, step)

    def peer(self, me: str, other: str):  # type: ignore[no-untyped-def]
        peer = self[me].device.peer(self[other].key.public_key())
        assert peer is not None
        return peer
