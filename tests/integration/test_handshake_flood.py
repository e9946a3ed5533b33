"""Issue 10 item 2: handshakes survive floods, on both planes.

wgpy is ``a``; ``b`` is Debian's wireguard-go with a working tunnel to it,
and in ``b``'s namespace a second wireguard-go (``c``) that has never talked
to ``a``.  A flooder (bench/flooder.c, compiled here) sends type-1 datagrams
from ``b``'s namespace at ``a``'s port, paced at 150,000/s:

- junk (random bodies, no key): ``c`` completes a handshake within its first
  three initiations and the existing tunnel keeps passing pings; the junk is
  counted as ``invalid-mac1``;
- initiations with a valid mac1 from 16 other addresses: ``a`` is under load,
  and ``c`` completes through the cookie path (its first initiation answered
  by a cookie reply, a later one carrying mac2) within its first three.

``c``'s initiations are counted by an nftables rule in ``b``'s namespace; the
flood's achieved rate is reported (no threshold beyond "the flood ran").
``pure`` forces the asyncio path (WGPY_FASTPATH=0).
"""

from __future__ import annotations

import re
import time

import pytest

from bench.flooder import Flood, build, valid_mac1_messages
from netns import configure_pair, gen_key, ping, wait_for, write_conf

pytestmark = [pytest.mark.root, pytest.mark.interop]

FLOOD_SECONDS = 40
NEW = ("10.233.0.1", "10.233.0.3")  # a's second tunnel address, c's address
C_PORT = 51822
FLOOD_SOURCES = [f"10.231.0.{100 + i}" for i in range(16)]


def _initiations(ns) -> int:  # type: ignore[no-untyped-def]
    out = ns.run("nft", "list", "chain", "inet", "wgflood", "out").stdout
    match = re.search(r"counter packets (\d+)", out)
    assert match, out
    return int(match.group(1))


def _handshaken(ns, ifname: str) -> bool:  # type: ignore[no-untyped-def]
    out = ns.wg("show", ifname, "latest-handshakes").split()
    return len(out) == 2 and out[1] != "0"


@pytest.mark.parametrize("path", ["native", "pure"])
@pytest.mark.parametrize("flood_kind", ["junk", "valid-mac1"])
def test_new_peer_handshakes_during_flood(netns_pair, path: str, flood_kind: str) -> None:  # type: ignore[no-untyped-def]
    pair = netns_pair
    a, b = pair.start("wgpy", "wireguard-go", env={"WGPY_FASTPATH": "0"} if path == "pure" else None)
    configure_pair(a, b, pair.tmp)
    assert ping(b.ns, a.tun4), pair.logs()

    # c: configured on both sides, never connected
    c = pair.add_daemon(b.ns, "wireguard-go", "c")
    c_key = gen_key()
    conf = (f"[Interface]\nPrivateKey = {c_key.to_base64()}\nListenPort = {C_PORT}\n\n"
            f"[Peer]\nPublicKey = {a.pub}\nAllowedIPs = {NEW[0]}/32\nEndpoint = {a.under4}:{a.port}\n")
    b.ns.run("wg", "setconf", c.ifname, str(write_conf(pair.tmp, f"{c.ifname}.conf", conf)))
    b.ns.run("ip", "addr", "add", f"{NEW[1]}/24", "dev", c.ifname)
    b.ns.run("ip", "link", "set", c.ifname, "up")
    a.ns.run("wg", "set", a.ifname, "peer", c_key.public_key().to_base64(), "allowed-ips", f"{NEW[1]}/32")
    a.ns.run("ip", "addr", "add", f"{NEW[0]}/24", "dev", a.ifname)
    b.ns.run("nft", "-f", "-", input=(
        "table inet wgflood {\n chain out {\n  type filter hook output priority 0;\n"
        f"  ip saddr {b.under4} udp sport {C_PORT} udp dport {a.port} @th,64,8 1 counter\n }}\n}}\n"))

    binary = build(pair.tmp)
    if flood_kind == "junk":
        messages, sources = None, []
    else:
        messages = valid_mac1_messages(pair.tmp / "valid-mac1.bin", a.key.public_key())
        sources = FLOOD_SOURCES
        for src in sources:
            b.ns.run("ip", "addr", "add", f"{src}/24", "dev", "vb")
    flood = Flood(binary, b.ns.argv([]), a.under4, a.port, FLOOD_SECONDS, messages, sources)
    pair.procs.append(flood.proc)
    try:
        time.sleep(1.5)  # the flood is on (and a under load, for the valid-mac1 flood)
        assert flood.proc.poll() is None, flood.stop()
        pinger = b.ns.popen(["ping", "-n", "-q", "-c", "30", "-i", "0.5", NEW[0]])
        pair.procs.append(pinger)
        wait_for(lambda: _handshaken(b.ns, c.ifname), 25, "c's handshake during the flood", interval=0.1)
        sent = _initiations(b.ns)
        assert ping(b.ns, a.tun4, timeout=20), pair.logs()  # the existing tunnel, flood still on
        still_flooding = flood.proc.poll() is None
    finally:
        report = flood.stop()
    print(f"flood ({flood_kind}, {path}): {report['sent']:.0f} datagrams in {report['seconds']:.1f} s = "
          f"{report['rate']:.0f}/s; c handshaken after {sent} initiation(s)")
    assert report["sent"] > 0 and still_flooding, report
    assert 1 <= sent <= 3, f"c needed {sent} initiations; flood {report}"
    drops = a.daemon.drops()
    assert a.daemon.alive(), pair.logs()
    if flood_kind == "junk":
        assert drops.get("invalid-mac1", 0) > 0, drops
    else:
        assert drops.get("under-load-cookie-sent", 0) > 0, drops
        assert sent >= 2, f"c's first initiation should have been answered by a cookie (under load): {drops}"
