"""addresses.read_addresses on real links (root): addresses of a link that is down are marked so, and
local_addresses leaves them out (Talos network/node_address.go announces only links that are up).

A fresh network namespace with two veth pairs (a link kind, so not "physical": an up or unknown operational
state is enough): one end set down, and one end up whose peer is down (operational state LOWERLAYERDOWN).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.netns import Netns

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
PROBE = ("import json; from kubespan.addresses import read_addresses; from kubespan.affiliates import local_addresses; "
         "a = read_addresses(); print(json.dumps([[str(x.ip), x.link, x.link_up] for x in a] + "
         "[[str(ip) for ip in local_addresses(a)]]))")


@pytest.fixture
def ns() -> Iterator[Netns]:
    the_ns = Netns.create(f"ksl-{secrets.token_hex(3)}-links")
    try:
        yield the_ns
    finally:
        the_ns.delete()


def probe(ns: Netns) -> tuple[dict[str, bool], list[str]]:
    out = json.loads(ns.run(sys.executable, "-c", PROBE, env={"PYTHONPATH": str(REPO)}).stdout)
    return {ip: up for ip, _link, up in out[:-1]}, out[-1]


def test_addresses_of_down_links_are_not_announced(ns: Netns) -> None:
    for pair in ("a", "b"):
        ns.run("ip", "link", "add", f"v{pair}0", "type", "veth", "peer", "name", f"v{pair}1")
    ns.run("ip", "addr", "add", "192.0.2.10/24", "dev", "va0")        # va0 stays down
    ns.run("ip", "addr", "add", "198.51.100.10/24", "dev", "vb0")
    ns.run("ip", "link", "set", "vb0", "up")                           # up, but its peer vb1 is down
    up, announced = probe(ns)
    assert up["192.0.2.10"] is False and up["198.51.100.10"] is False
    assert announced == []

    for link in ("va0", "va1", "vb1"):
        ns.run("ip", "link", "set", link, "up")
    up, announced = probe(ns)
    assert up["192.0.2.10"] is True and up["198.51.100.10"] is True
    assert sorted(announced, key=ipaddress.ip_address) == ["192.0.2.10", "198.51.100.10"]
