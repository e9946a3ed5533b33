"""Issue 10 item 1: inbound traffic while the interface is down is a counted drop, not an exit.

A TUN write fails with EIO while the link is down (before ``ip link set up``,
the gap wg-quick leaves after ``wg setconf``, or after ``ip link set down``).
On both planes (the native I/O threads and the pure asyncio path) wgpy counts
it as ``tun-down`` and carries on; once the link is up again the tunnel works.
Deleting the link still ends the daemon (``tun-gone``), flood or not.
The peer is Debian's wireguard-go, flooding pings at wgpy.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from netns import ping, wait_for, write_conf

pytestmark = [pytest.mark.root, pytest.mark.interop]


def _counted(daemon, pred) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The drop counters once ``pred`` holds for them (the native plane hands them over in batches)."""
    drops: dict[str, int] = {}

    def ok() -> bool:
        drops.clear()
        drops.update(daemon.drops())
        return bool(pred(drops))

    wait_for(ok, 10, "drops in the stats", interval=0.5)
    return drops


def _setconf(me, other, tmp) -> None:  # type: ignore[no-untyped-def]
    """``wg setconf`` and the addresses, as wg-quick does them before ``ip link set up``."""
    conf = (f"[Interface]\nPrivateKey = {me.key.to_base64()}\nListenPort = {me.port}\n\n"
            f"[Peer]\nPublicKey = {other.pub}\nAllowedIPs = {other.tun4}/32, {other.tun6}/128\n"
            f"Endpoint = {other.under4}:{other.port}\n")
    me.ns.run("wg", "setconf", me.ifname, str(write_conf(tmp, f"{me.ifname}.conf", conf)))
    me.ns.run("ip", "addr", "add", f"{me.tun4}/24", "dev", me.ifname)
    me.ns.run("ip", "-6", "addr", "add", f"{me.tun6}/64", "dev", me.ifname, "nodad")


def _flood(pair, side, addr: str, seconds: int) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    proc = side.ns.popen(["ping", "-f", "-q", "-s", "1000", "-w", str(seconds), addr],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pair.procs.append(proc)
    return proc


@pytest.mark.parametrize("path", ["native", "pure"])
def test_link_down_under_ping_flood(netns_pair, path: str) -> None:  # type: ignore[no-untyped-def]
    """wgpy is ``a``; ``pure`` forces the asyncio path (WGPY_FASTPATH=0)."""
    pair = netns_pair
    a, b = pair.start("wgpy", "wireguard-go", env={"WGPY_FASTPATH": "0"} if path == "pure" else None)
    for me, other in ((b, a), (a, b)):
        _setconf(me, other, pair.tmp)
    b.ns.run("ip", "link", "set", b.ifname, "up")
    # the wg-quick gap: a is configured, its link not up yet, and traffic arrives
    flood = _flood(pair, b, a.tun4, 3)
    flood.wait(30)
    assert a.daemon.alive(), pair.logs()
    a.ns.run("ip", "link", "set", a.ifname, "up")
    assert ping(a.ns, b.tun4) and ping(b.ns, a.tun4), pair.logs()
    gap = _counted(a.daemon, lambda d: d.get("tun-down", 0) > 0)  # the writes that failed with EIO

    # a flood in, the link down for 2 s, up again (down forgets the sessions: unknown-index from then on)
    flood = _flood(pair, b, a.tun4, 8)
    time.sleep(1)
    a.ns.run("ip", "link", "set", a.ifname, "down")
    time.sleep(2)
    assert a.daemon.alive(), pair.logs()
    a.ns.run("ip", "link", "set", a.ifname, "up")
    flood.wait(30)
    assert a.daemon.alive(), pair.logs()
    assert ping(a.ns, b.tun4) and ping(b.ns, a.tun4), "tunnel works again: " + pair.logs()

    _counted(a.daemon, lambda d: sum(d.values()) > sum(gap.values()))
    assert a.daemon.alive() and "tun-gone" not in a.daemon.log_text(), pair.logs()
    assert ("native data plane running" in a.daemon.log_text()) == (path == "native")

    # deleting the link is still the end, also under a flood
    flood = _flood(pair, b, a.tun4, 5)
    time.sleep(0.5)
    a.ns.run("ip", "link", "del", a.ifname)
    a.daemon.proc.wait(15)
    assert "Shutting down (tun-gone)" in a.daemon.log_text(), a.daemon.log_text()[-3000:]
    assert not a.daemon.sock.exists()
    flood.wait(30)
