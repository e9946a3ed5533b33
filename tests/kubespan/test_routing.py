"""kubespan.routing against a real kernel, inside a network namespace this test creates (root)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from kubespan.controller import RoutingSpec
from kubespan.routing import VERIFY_INTERVAL, KernelRouting, render_nft

pytestmark = pytest.mark.root

ADDRESS = ipaddress.IPv6Interface("fd7f:175a:b97c:5602:2c1a:b6ff:fe53:8169/64")
ROUTED = (ipaddress.ip_network("10.0.0.2/32"), ipaddress.ip_network("10.244.2.0/24"),
          ipaddress.ip_network("2001:db8:2::/64"))


def sh(*argv: str) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, f"{argv}: {res.stderr}"
    return res.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("root routing test: needs root and iproute2")
    name = f"kstr-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "tuntap", "add", "kubespan", "mode", "tun")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def spec(routed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ROUTED, mtu: int = 1420) -> RoutingSpec:
    return RoutingSpec(address=ADDRESS, mtu=mtu, routed=routed)


def rules(ns: str) -> str:
    return sh("ip", "-n", ns, "-4", "rule") + sh("ip", "-n", ns, "-6", "rule")


def routes(ns: str) -> str:
    return sh("ip", "-n", ns, "-4", "route", "show", "table", "180") + \
        sh("ip", "-n", ns, "-6", "route", "show", "table", "180")


def ruleset(ns: str) -> str:
    return sh("ip", "netns", "exec", ns, "nft", "list", "ruleset")


def snapshot(ns: str) -> tuple[str, str, str, str]:
    return rules(ns), routes(ns), ruleset(ns), sh("ip", "-n", ns, "addr", "show", "kubespan")


def test_nftables_mode_apply_idempotent_cleanup(netns: str) -> None:
    r = KernelRouting(use_nftables=True, netns=netns)
    changes = r.apply(spec())
    assert changes
    got_rules = rules(netns)
    assert got_rules.count("32500:\tfrom all fwmark 0x40/0x60 lookup 180") == 2  # v4 and v6
    got_routes = routes(netns)
    assert "default dev kubespan proto static metric 1" in got_routes
    assert got_routes.count("mtu 1420") == 2
    nft = ruleset(netns)
    assert "table inet kubespan" in nft
    assert "elements = { 10.0.0.2, 10.244.2.0/24 }" in nft
    assert "elements = { 2001:db8:2::/64 }" in nft
    assert "meta mark & 0x00000060 == 0x00000020 accept" in nft
    assert "type route hook output" in nft and "type filter hook prerouting" in nft
    assert "tcp option maxseg size set 1368" in nft and "tcp option maxseg size set 1348" in nft
    assert 'oifname "lo" accept' in nft
    assert f"inet6 {ADDRESS.ip}/64" in sh("ip", "-n", netns, "addr", "show", "kubespan")
    before = snapshot(netns)
    assert r.apply(spec()) == []          # no-op the second time
    assert snapshot(netns) == before
    # a change of the routed set rewrites only the nft table
    changes = r.apply(spec(routed=ROUTED[:1]))
    assert len(changes) == 1 and "nft" in changes[0]
    assert "elements = { 10.0.0.2 }" in ruleset(netns)
    r.cleanup()
    assert "32500" not in rules(netns)
    assert routes(netns) == ""
    assert "kubespan" not in ruleset(netns)
    assert str(ADDRESS.ip) not in sh("ip", "-n", netns, "addr", "show", "kubespan")


def test_without_nftables_routes_only_the_routed_set(netns: str) -> None:
    r = KernelRouting(use_nftables=False, netns=netns)
    r.apply(spec())
    assert rules(netns).count("32500:\tnot from all fwmark 0x20/0x60 lookup 180") == 2
    got = routes(netns)
    assert "10.0.0.2 dev kubespan proto static" in got
    assert "10.244.2.0/24 dev kubespan proto static" in got
    assert "2001:db8:2::/64 dev kubespan proto static" in got
    assert "default" not in got
    assert "kubespan" not in ruleset(netns)
    before = snapshot(netns)
    assert r.apply(spec()) == []
    assert snapshot(netns) == before
    changes = r.apply(spec(routed=ROUTED[1:]))
    assert changes == ["route 10.0.0.2/32 removed from table 180"]
    assert "10.0.0.2 " not in routes(netns)
    r.apply(spec(routed=ROUTED[1:], mtu=1380))  # an MTU change replaces the routes
    assert routes(netns).count("mtu 1380") == 2
    r.cleanup()
    assert "32500" not in rules(netns) and routes(netns) == ""


def test_stale_state_from_a_previous_run_is_replaced(netns: str) -> None:
    sh("ip", "-n", netns, "rule", "add", "priority", "32500", "not", "fwmark", "0x20/0x60", "lookup", "180")
    sh("ip", "-n", netns, "link", "set", "kubespan", "up")
    sh("ip", "-n", netns, "route", "add", "192.0.2.0/24", "dev", "kubespan", "table", "180")
    r = KernelRouting(use_nftables=True, netns=netns)
    r.apply(spec())
    got = rules(netns)
    assert "not from all" not in got and got.count("fwmark 0x40/0x60 lookup 180") == 2
    assert "192.0.2.0/24" not in routes(netns)
    # a fresh object (a restarted agent) cleans up what the previous one left
    KernelRouting(use_nftables=True, netns=netns).cleanup()
    assert "32500" not in rules(netns) and routes(netns) == "" and "kubespan" not in ruleset(netns)


def test_render_nft_empty_sets_have_no_elements() -> None:
    text = render_nft(spec(routed=()))
    assert "elements" not in text and "kubespan_targets_ipv4" in text


def test_apply_reads_the_kernel_back_after_the_verify_interval(netns: str) -> None:
    t = [0.0]
    r = KernelRouting(use_nftables=True, netns=netns, clock=lambda: t[0])
    r.apply(spec())
    sh("ip", "-n", netns, "-4", "rule", "del", "priority", "32500")
    assert r.apply(spec()) == []  # within the interval the applied state is trusted
    assert r.apply(spec(routed=ROUTED[:1])) == ["nft table inet kubespan written (1 routed prefixes)"]
    t[0] += VERIFY_INTERVAL
    changes = r.apply(spec(routed=ROUTED[:1]))
    assert changes == ["rule ipv4 fwmark 0x40/0x60 lookup 180 prio 32500 added"]
    assert rules(netns).count("32500:\tfrom all fwmark 0x40/0x60 lookup 180") == 2
    r.cleanup()
    assert "32500" not in rules(netns)
