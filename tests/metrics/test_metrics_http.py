"""The metrics collector and HTTP server on loopback: two real PacketInterfaces, a real HTTP client.

No privileges needed: PacketInterface has no TUN; its UDP sockets and the metrics server bind 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.error
import urllib.request

import pytest
from metrics_support import fetch, parse, value
from prometheus_client.registry import CollectorRegistry
from wgsupport import ipv4_packet

from wgpy.errors import DropReason
from wgpy.interface import PacketInterface
from wgpy.io.metrics import InterfaceCollector
from wgpy.io.metrics_http import MetricsServer, parse_addr
from wgpy.keys import PrivateKey


async def _pair() -> tuple[PacketInterface, PacketInterface, list[bytes]]:
    got: list[bytes] = []
    ka, kb = PrivateKey.generate(os.urandom), PrivateKey.generate(os.urandom)
    a = await PacketInterface.create(lambda pkt: None, private_key=ka)
    b = await PacketInterface.create(got.append, private_key=kb)
    a.set_peer(kb.public_key(), endpoint=("127.0.0.1", b.listen_port), allowed_ips=["10.9.0.2/32"])
    b.set_peer(ka.public_key(), endpoint=("127.0.0.1", a.listen_port), allowed_ips=["10.9.0.1/32", "fd09::1/128"])
    return a, b, got


async def _scrape(url: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(fetch, url)


def test_scrape_matches_the_peer_stats() -> None:
    async def main() -> None:
        a, b, got = await _pair()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(InterfaceCollector(b, "wgb", peer_names=lambda: {a.public_key.to_base64(): "node-a"}))
        server = MetricsServer(registry, "127.0.0.1:0")
        await server.start()
        try:
            a.send_packets([ipv4_packet("10.9.0.1", "10.9.0.2")])
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.05)
            assert got, "no packet through the tunnel"
            status, ctype, body = await _scrape(f"http://127.0.0.1:{server.port}/metrics")
            stats = {p.public_key.to_base64(): p for p in b.peers()}
        finally:
            await server.close()
            await a.close()
            await b.close()
        assert status == 200 and ctype.startswith("text/plain")
        samples = parse(body)
        pub_a = a.public_key.to_base64()
        st = stats[pub_a]
        peer = {"device": "wgb", "public_key": pub_a}
        assert value(samples, "wireguard_device_info", device="wgb") == 1
        assert ("wireguard_device_info", frozenset({"device": "wgb", "public_key": b.public_key.to_base64()}
                                                   .items())) in samples
        assert value(samples, "wireguard_peer_info", endpoint=f"127.0.0.1:{a.listen_port}", name="node-a",
                     **peer) == 1
        assert value(samples, "wireguard_peer_allowed_ips_info", allowed_ips="10.9.0.1/32", family="IPv4",
                     **peer) == 1
        assert value(samples, "wireguard_peer_allowed_ips_info", allowed_ips="fd09::1/128", family="IPv6",
                     **peer) == 1
        assert value(samples, "wireguard_peer_receive_bytes_total", **peer) == st.rx_bytes > 0
        assert value(samples, "wireguard_peer_transmit_bytes_total", **peer) == st.tx_bytes > 0
        assert st.last_handshake is not None
        assert value(samples, "wireguard_peer_last_handshake_seconds", **peer) == int(st.last_handshake)
        assert value(samples, "wgpy_handshake_messages_received_total", type="initiation") == 1
        assert value(samples, "wgpy_handshake_messages_sent_total", type="response") == 1
        assert value(samples, "wgpy_handshake_messages_sent_total", type="cookie_reply") == 0
        assert value(samples, "wgpy_keypairs_created_total", device="wgb") == 1
        assert value(samples, "wgpy_under_load", device="wgb") == 0
        assert value(samples, "wgpy_dataplane_info", mode="python", tun_offload="off") == 1
        reasons = {dict(ls)["reason"] for (n, ls) in samples if n == "wgpy_drops_total"}
        assert reasons >= {r.value for r in DropReason}

    asyncio.run(main())


def test_drops_counted_by_the_engine_appear_by_reason() -> None:
    async def main() -> None:
        a, b, _ = await _pair()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(InterfaceCollector(b, "wgb"))
        server = MetricsServer(registry, "127.0.0.1:0")
        await server.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for _ in range(3):  # a transport message to an index nobody has
                    s.sendto(b"\x04\x00\x00\x00" + os.urandom(28), ("127.0.0.1", b.listen_port))
            for _ in range(100):
                if b.drops().get(DropReason.UNKNOWN_INDEX.value, 0) >= 3:
                    break
                await asyncio.sleep(0.05)
            _, _, body = await _scrape(f"http://127.0.0.1:{server.port}/metrics")
            expected = b.drops()[DropReason.UNKNOWN_INDEX.value]
        finally:
            await server.close()
            await a.close()
            await b.close()
        assert expected == 3
        assert value(parse(body), "wgpy_drops_total", reason=DropReason.UNKNOWN_INDEX.value) == 3

    asyncio.run(main())


def test_other_paths_methods_and_garbage_get_errors_and_the_server_keeps_serving() -> None:
    async def main() -> None:
        server = MetricsServer(CollectorRegistry(auto_describe=False), "127.0.0.1:0")
        await server.start()
        url = f"http://127.0.0.1:{server.port}"

        def status(path: str, method: str = "GET") -> int:
            try:
                with urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=10) as r:
                    return int(r.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        def garbage() -> bytes:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
                s.sendall(b"\x16\x03\x01 not http\r\n\r\n")
                return s.recv(100)

        try:
            assert await asyncio.to_thread(status, "/") == 404
            assert await asyncio.to_thread(status, "/metrics", "POST") == 405
            assert (await asyncio.to_thread(garbage)).startswith(b"HTTP/1.1 400")
            assert await asyncio.to_thread(status, "/metrics?x=1") == 200
        finally:
            await server.close()

    asyncio.run(main())


@pytest.mark.parametrize("text,expected", [
    (":2122", (None, 2122)), ("127.0.0.1:9586", ("127.0.0.1", 9586)), ("[::1]:0", ("::1", 0)),
    ("localhost:80", ("localhost", 80)),
])
def test_parse_addr_accepts_go_listen_addresses(text: str, expected: tuple[str | None, int]) -> None:
    assert parse_addr(text) == expected


@pytest.mark.parametrize("text", ["", "9586", "host:", "host:port", ":70000", "::1:80", "a:-1"])
def test_parse_addr_refuses_others_with_one_line(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_addr(text)
    assert "\n" not in str(info.value)
