"""Issue item 1: wgpy <-> wireguard-go in two namespaces joined by a veth."""

from __future__ import annotations

import pytest

from netns import ping, transfer

pytestmark = [pytest.mark.root, pytest.mark.interop]

MB = 1 << 20


def _handshake_and_ping(pair, initiator: str, psk: bool, v6_underlay: bool) -> None:  # type: ignore[no-untyped-def]
    a, b = pair.start("wgpy", "wireguard-go")
    # only the initiator knows the other side's endpoint, so the handshake starts there
    init_if = a.ifname if initiator == "wgpy" else b.ifname
    from netns import configure_pair
    configure_pair(a, b, pair.tmp, psk=psk, endpoint_v6=v6_underlay, endpoint_on=init_if)
    src, dst = (a, b) if initiator == "wgpy" else (b, a)
    assert ping(src.ns, dst.tun4), pair.logs()
    assert ping(src.ns, dst.tun6), pair.logs()
    assert ping(dst.ns, src.tun4), pair.logs()
    for side in (a, b):
        dump = side.ns.wg("show", side.ifname, "latest-handshakes").split()
        assert len(dump) == 2 and int(dump[1]) > 0, (side.daemon.kind, dump)
    under = src.under6 if v6_underlay else src.under4
    endpoints = dst.ns.wg("show", dst.ifname, "endpoints")
    assert under in endpoints, endpoints
    assert a.daemon.alive() and b.daemon.alive()


@pytest.mark.parametrize("initiator", ["wgpy", "wireguard-go"])
def test_handshake_each_side_ping_v4_v6(netns_pair, initiator: str) -> None:  # type: ignore[no-untyped-def]
    _handshake_and_ping(netns_pair, initiator, psk=False, v6_underlay=False)


@pytest.mark.parametrize("initiator", ["wgpy", "wireguard-go"])
def test_preshared_key(netns_pair, initiator: str) -> None:  # type: ignore[no-untyped-def]
    _handshake_and_ping(netns_pair, initiator, psk=True, v6_underlay=False)


def test_ipv6_underlay(netns_pair) -> None:  # type: ignore[no-untyped-def]
    _handshake_and_ping(netns_pair, "wgpy", psk=False, v6_underlay=True)


@pytest.mark.parametrize("path", ["native", "pure"])
@pytest.mark.parametrize("direction", ["wgpy-to-go", "go-to-wgpy"])
def test_tcp_transfer_100mb(netns_pair, direction: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """``pure`` forces the asyncio path (WGPY_FASTPATH=0); ``native`` uses the C data plane if built."""
    from netns import configure_pair
    a, b = netns_pair.start("wgpy", "wireguard-go", env={"WGPY_FASTPATH": "0"} if path == "pure" else None)
    configure_pair(a, b, netns_pair.tmp)
    src, dst = (a, b) if direction == "wgpy-to-go" else (b, a)
    assert ping(src.ns, dst.tun4), netns_pair.logs()
    sent, received = transfer(src.ns, dst.ns, dst.tun4, 100 * MB, timeout=900)
    assert sent == received and sent.startswith(f"{100 * MB} "), (sent, received, netns_pair.logs())
    rx = int(dst.ns.wg("show", dst.ifname, "transfer").split()[1])
    assert rx > 100 * MB, rx  # the bytes really crossed the tunnel
    if path == "pure":
        assert "native data plane running" not in a.daemon.log_text()
