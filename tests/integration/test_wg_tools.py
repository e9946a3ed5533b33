"""Issue item 3: wg show/showconf/setconf/set ... remove give the same answers
against wgpy as against wireguard-go for the same configuration."""

from __future__ import annotations

import time

import pytest

from netns import configure_pair, gen_key, ping, write_conf

pytestmark = [pytest.mark.root, pytest.mark.interop]

SHOW_FIELDS = ["public-key", "private-key", "listen-port", "fwmark", "peers", "preshared-keys", "endpoints",
               "allowed-ips", "latest-handshakes", "persistent-keepalive", "transfer", "dump"]


def _conf(priv: str, peers: list[tuple[str, str, str]]) -> str:
    text = f"[Interface]\nPrivateKey = {priv}\nListenPort = 51999\nFwMark = 0x1234\n"
    for i, (pub, psk, allowed) in enumerate(peers):
        text += f"\n[Peer]\nPublicKey = {pub}\nAllowedIPs = {allowed}\n"
        if psk:
            text += f"PresharedKey = {psk}\n"
        if i % 2 == 0:
            text += f"Endpoint = {'[fd00:9::%d]' % (i + 1) if i % 4 else '10.9.0.%d' % (i + 1)}:{40000 + i}\n"
            text += f"PersistentKeepalive = {0 if i % 3 else 0}\n"
    return text


def _blocks(text: str, sep: str) -> tuple[str, list[str]]:
    """(interface part, sorted peer parts): wireguard-go lists peers in map order."""
    parts = [part.strip() for part in text.split(sep)]
    return parts[0], sorted(parts[1:])


def _normal(text: str, ifname: str) -> str:
    """Interface name masked (each side has its own); nothing else is."""
    return text.replace(ifname, "IFNAME")


def _compare(a, b) -> None:  # type: ignore[no-untyped-def]
    for args, sep in ((["show", "IF"], "\npeer: "), (["showconf", "IF"], "[Peer]")):
        outs = [_normal(s.ns.wg(*[s.ifname if x == "IF" else x for x in args]), s.ifname) for s in (a, b)]
        assert _blocks(outs[0], sep) == _blocks(outs[1], sep), (args, outs)
    for field in SHOW_FIELDS:
        outs = [sorted(_normal(s.ns.wg("show", s.ifname, field), s.ifname).splitlines()) for s in (a, b)]
        assert outs[0] == outs[1], (field, outs)


def test_same_configuration_same_output(netns_pair) -> None:  # type: ignore[no-untyped-def]
    a, b = netns_pair.start("wgpy", "wireguard-go")
    priv = gen_key().to_base64()
    peers = [(gen_key().public_key().to_base64(), gen_key().to_base64() if i % 2 else "",
              f"10.{i}.0.0/16, fd00:{i}::/64, 192.168.{i}.1/32") for i in range(5)]
    path = write_conf(netns_pair.tmp, "same.conf", _conf(priv, peers))
    for side in (a, b):
        side.ns.run("wg", "setconf", side.ifname, str(path))
        side.ns.run("ip", "link", "set", side.ifname, "up")
    _compare(a, b)

    # wg set ... peer ... remove, and allowed-ips / endpoint changes
    for side in (a, b):
        side.ns.run("wg", "set", side.ifname, "peer", peers[1][0], "remove")
        side.ns.run("wg", "set", side.ifname, "peer", peers[2][0], "allowed-ips", "10.77.0.0/24,fd77::/48",
                    "endpoint", "10.8.8.8:1234", "persistent-keepalive", "off")
        side.ns.run("wg", "set", side.ifname, "fwmark", "0", "listen-port", "52000")
    _compare(a, b)

    # wg setconf replaces everything
    new_peers = [(gen_key().public_key().to_base64(), "", "10.200.0.0/24")]
    path2 = write_conf(netns_pair.tmp, "new.conf", _conf(priv, new_peers))
    for side in (a, b):
        side.ns.run("wg", "setconf", side.ifname, str(path2))
    _compare(a, b)
    assert "10.200.0.0/24" in a.ns.wg("show", a.ifname, "allowed-ips")


def test_counters_and_handshakes_after_traffic(netns_pair) -> None:  # type: ignore[no-untyped-def]
    a, b = netns_pair.start("wgpy", "wireguard-go")
    configure_pair(a, b, netns_pair.tmp)
    assert ping(a.ns, b.tun4, count=10), netns_pair.logs()
    time.sleep(1.5)  # let the last replies and any keepalive settle
    (_, a_rx, a_tx), (_, b_rx, b_tx) = (s.ns.wg("show", s.ifname, "transfer").split() for s in (a, b))
    assert int(a_tx) == int(b_rx) and int(a_rx) == int(b_tx), (a_rx, a_tx, b_rx, b_tx)
    assert int(a_tx) >= 10 * (84 + 32)
    hs = [int(s.ns.wg("show", s.ifname, "latest-handshakes").split()[1]) for s in (a, b)]
    assert all(h > 0 for h in hs) and abs(hs[0] - hs[1]) <= 2, hs
    assert a.ns.wg("show", a.ifname, "endpoints") == f"{b.pub}\t{b.under4}:{b.port}\n"
    assert b.ns.wg("show", b.ifname, "endpoints") == f"{a.pub}\t{a.under4}:{a.port}\n"
    dump = a.ns.wg("show", a.ifname, "dump").splitlines()
    fields = dump[1].split("\t")
    assert fields[0] == b.pub and fields[2] == f"{b.under4}:{b.port}" and fields[5:7] == [a_rx, a_tx]
