"""Issue item 2: wgpy <-> wgpy, the 100 MB TCP transfer with a matching checksum."""

from __future__ import annotations

import pytest

from netns import configure_pair, ping, transfer

pytestmark = [pytest.mark.root]

MB = 1 << 20


def test_wgpy_to_wgpy_transfer_100mb(netns_pair) -> None:  # type: ignore[no-untyped-def]
    a, b = netns_pair.start("wgpy", "wgpy")
    configure_pair(a, b, netns_pair.tmp, psk=True)
    assert ping(a.ns, b.tun4) and ping(b.ns, a.tun6), netns_pair.logs()
    sent, received = transfer(a.ns, b.ns, b.tun6, 100 * MB, timeout=900)
    assert sent == received and sent.startswith(f"{100 * MB} "), (sent, received, netns_pair.logs())
    rx = int(b.ns.wg("show", b.ifname, "transfer").split()[1])
    assert rx > 100 * MB
    assert a.daemon.alive() and b.daemon.alive()
