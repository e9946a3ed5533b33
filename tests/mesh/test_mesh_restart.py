"""Agent restart (kubespan.md §1: the keypair persists in ``kubespan-identity.yaml``; §2: the node ID in
``node-identity.yaml``).  SIGTERM ends the agent with exit 0 after removing its link, rules, routes and
nft table; its affiliate stays in discovery (stopping is not leaving: Talos deletes it only on a reset,
controllers/cluster/discovery_service.go), so the other node keeps the peer.  A restart with the same
state dir keeps the public key, node ID and KubeSpan address, and the mesh comes back."""

from __future__ import annotations

from typing import Any

import pytest

from lab.mesh import Lab, wait_until

pytestmark = [pytest.mark.root]


def _identity(lab: Lab, node) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    (ks,) = lab.get(node, "kubespanidentities")
    (cluster,) = lab.get(node, "identities")
    return ks["spec"]["publicKey"], ks["spec"]["address"], cluster["spec"]["nodeId"]


def status_of(lab: Lab, observer, key: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """``observer``'s peer status spec for the peer with public key ``key``."""
    (status,) = [p["spec"] for p in lab.get(observer, "peerstatuses") if p["metadata"]["id"] == key]
    return dict(status)


def assert_still_a_peer(lab: Lab, observer, key: str, address: str) -> None:  # type: ignore[no-untyped-def]
    """``key`` stays a peer of ``observer`` after its agent stopped: still listed once ``observer`` has
    reconciled again (its transmit counter for the peer grew: traffic to the stopped node's KubeSpan
    address still goes to that peer)."""
    sent = int(status_of(lab, observer, key)["transmitBytes"])
    lab.ping(observer, address, count=2, timeout=5)  # nobody answers; the bytes still count
    wait_until(lambda: int(status_of(lab, observer, key)["transmitBytes"]) > sent, 30,
               f"{observer.name} to count traffic to the stopped peer")
    assert [p["metadata"]["id"] for p in lab.get(observer, "peerspecs")] == [key]
    assert [p["metadata"]["id"] for p in lab.get(observer, "peerstatuses")] == [key]


def test_restart_keeps_identity_and_remeshes(lab: Lab) -> None:
    lab.start_discovery()
    a, b = lab.add_node("node-a"), lab.add_node("node-b")
    lab.start_agent(a)
    lab.start_agent(b)
    lab.wait_mesh([a, b], timeout=90)
    before = _identity(lab, a)
    (peer,) = lab.get(b, "peerstatuses")
    assert peer["metadata"]["id"] == before[0]
    node_ids_on_b = {x["metadata"]["id"] for x in lab.get(b, "affiliates")}
    assert before[2] in node_ids_on_b

    assert lab.stop_agent(a) == 0
    assert_still_a_peer(lab, b, before[0], lab.kubespan_address(a))
    # clean exit: no link, no rule at 32500, nothing in table 180, no nft table left in node-a
    assert "kubespan" not in a.ns.run("ip", "-o", "link", "show").stdout
    for family in ("-4", "-6"):
        assert "32500" not in a.ns.run("ip", family, "rule", "show").stdout
        assert a.ns.run("ip", family, "route", "show", "table", "180", check=False).stdout.strip() == ""
    assert a.ns.run("nft", "list", "tables").stdout.strip() == ""
    assert sorted(p.name for p in (a.state_dir).iterdir()) >= ["kubespan-identity.yaml", "node-identity.yaml"]

    lab.start_agent(a)  # same config, same state dir
    assert _identity(lab, a) == before
    lab.wait_mesh([a, b], timeout=90)
    wait_until(lambda: [p["metadata"]["id"] for p in lab.get(b, "peerstatuses")] == [before[0]], 30,
               "node-b to list exactly the restarted node-a's key")
    # while node-a was down, its kernel answered node-b's WireGuard packets with ICMP port unreachable
    # (cleartext); from here on nothing between the two may leave the tunnel
    clear = lab.cleartext(a, b)
    assert lab.ping(b, lab.kubespan_address(a), count=2)
    assert lab.ping(a, b.addr, count=2)
    assert lab.cleartext(a, b) == clear
