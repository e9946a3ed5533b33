"""Relaying through the library API on loopback (no privileges): three PacketInterfaces, A reaches P via R
(``set_peer(relayed=True)``); the relay's and the peers' counters appear in ``relay_stats``, ``peers`` and the
Prometheus collector."""

from __future__ import annotations

import asyncio
import os
from typing import Callable

from metrics_support import parse, value
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from wgsupport import ipv4_packet

from wgpy.interface import PacketInterface
from wgpy.io.metrics import InterfaceCollector
from wgpy.keys import PrivateKey

KEY = os.urandom(32)


async def _wait(pred: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


def _scrape(iface: PacketInterface, name: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InterfaceCollector(iface, name))
    return parse(generate_latest(registry).decode())  # type: ignore[no-any-return]


def test_relayed_pair_counts_at_the_relay_and_at_both_ends() -> None:
    async def main() -> None:
        got_a: list[bytes] = []
        got_p: list[bytes] = []
        ka, kr, kp = (PrivateKey.generate(os.urandom) for _ in range(3))
        a = await PacketInterface.create(got_a.append, private_key=ka)
        r = await PacketInterface.create(lambda pkt: None, private_key=kr)
        p = await PacketInterface.create(got_p.append, private_key=kp)
        try:
            for iface in (a, r, p):
                iface.set_relay(KEY, serve=iface is r)
            ep = {id(i): ("127.0.0.1", i.listen_port) for i in (a, r, p)}
            a.set_peer(kr.public_key(), endpoint=ep[id(r)], allowed_ips=["10.9.0.2/32"])
            p.set_peer(kr.public_key(), endpoint=ep[id(r)], allowed_ips=["10.9.0.2/32"])
            r.set_peer(ka.public_key(), endpoint=ep[id(a)], allowed_ips=["10.9.0.1/32"])
            r.set_peer(kp.public_key(), endpoint=ep[id(p)], allowed_ips=["10.9.0.3/32"])
            a.set_peer(kp.public_key(), endpoint=ep[id(r)], relayed=True, allowed_ips=["10.9.0.3/32"])
            p.set_peer(ka.public_key(), endpoint=ep[id(a)], allowed_ips=["10.9.0.1/32"])
            a.send_packets([ipv4_packet("10.9.0.1", "10.9.0.3", b"to-p")])
            await _wait(lambda: bool(got_p), "A's packet at P")
            p.send_packets([ipv4_packet("10.9.0.3", "10.9.0.1", b"to-a")])
            await _wait(lambda: bool(got_a), "P's packet at A")
            stats_r = r.relay_stats()
            (a_p,) = [s for s in a.peers() if s.public_key == kp.public_key()]
            (p_a,) = [s for s in p.peers() if s.public_key == ka.public_key()]
            samples_r, samples_a, samples_p = _scrape(r, "r"), _scrape(a, "a"), _scrape(p, "p")
        finally:
            for iface in (a, r, p):
                await iface.close()
        assert got_p[0][20:] == b"to-p" and got_a[0][20:] == b"to-a"
        assert stats_r.forwarded_frames >= 4 and stats_r.drops["relay-bad-mac"] == 0
        assert a_p.relayed and a_p.endpoint == ep[id(r)] and a_p.relayed_tx_bytes > 0
        assert p_a.relayed and p_a.endpoint == ep[id(r)]  # P roamed to the relayed path by itself
        assert value(samples_r, "wgpy_relay_frames_total", kind="forwarded") == stats_r.forwarded_frames
        assert value(samples_r, "wgpy_relay_forwarded_bytes_total", device="r") == stats_r.forwarded_bytes
        pub_p = kp.public_key().to_base64()
        assert value(samples_a, "wgpy_peer_relayed", public_key=pub_p) == 1
        assert value(samples_a, "wgpy_peer_relayed_transmit_bytes_total", public_key=pub_p) == a_p.relayed_tx_bytes
        assert value(samples_a, "wgpy_peer_relayed", public_key=kr.public_key().to_base64()) == 0
        assert value(samples_a, "wgpy_drops_total", reason="relay-rate-limited") == 0
        assert value(samples_a, "wgpy_path_changes_total", to="relayed") == 0  # A was told; P found out
        assert value(samples_p, "wgpy_path_changes_total", to="relayed") == 1

    asyncio.run(main())
