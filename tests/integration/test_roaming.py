"""Issue item 5: the wireguard-go side's underlay address changes mid-transfer;
the transfer completes and wgpy's `wg show endpoints` shows the new address."""

from __future__ import annotations

import threading
import time

import pytest

from netns import configure_pair, ping, transfer, wait_for

pytestmark = [pytest.mark.root, pytest.mark.interop]

MB = 1 << 20
NEW_ADDR = "10.231.0.3"


def test_roaming_mid_transfer(netns_pair) -> None:  # type: ignore[no-untyped-def]
    a, b = netns_pair.start("wgpy", "wireguard-go")
    configure_pair(a, b, netns_pair.tmp)
    assert ping(b.ns, a.tun4), netns_pair.logs()
    result: dict[str, tuple[str, str]] = {}

    def run() -> None:  # wireguard-go sends to wgpy, rate-limited so the roam lands mid-stream
        result["t"] = transfer(b.ns, a.ns, a.tun4, 100 * MB, timeout=600, rate=10 * MB)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        def rx() -> int:
            return int(a.ns.wg("show", a.ifname, "transfer").split()[1])

        wait_for(lambda: rx() > 20 * MB, 120, "first 20 MB")
        assert thread.is_alive(), "transfer finished before the roam"
        # keep the subnet route when the old (primary) address goes: promote the new one
        b.ns.run("sysctl", "-q", "-w", "net.ipv4.conf.vb.promote_secondaries=1")
        b.ns.run("ip", "addr", "add", f"{NEW_ADDR}/24", "dev", "vb")
        b.ns.run("ip", "addr", "del", f"{b.under4}/24", "dev", "vb")
        roamed_at = rx()
        assert roamed_at < 100 * MB
    finally:
        thread.join(600)
    assert not thread.is_alive()
    sent, received = result["t"]
    assert sent == received and sent.startswith(f"{100 * MB} "), (sent, received, netns_pair.logs())
    assert a.ns.wg("show", a.ifname, "endpoints") == f"{b.pub}\t{NEW_ADDR}:{b.port}\n"
    time.sleep(0.5)
    assert ping(a.ns, b.tun4), "wgpy reaches the peer at its new address"
