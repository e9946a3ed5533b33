"""Agent restart (kubespan.md §1: the keypair persists in ``kubespan-identity.yaml``; §2: the node ID in
``node-identity.yaml``).  SIGTERM ends the agent with exit 0 after removing its link, rules, routes and
nft table and deleting its affiliate (the peer disappears from the other node); a restart with the same state dir keeps the public key, node ID and KubeSpan address, and the
mesh comes back."""

from __future__ import annotations

import pytest

from kubespan.netlab import Lab, wait_until

pytestmark = [pytest.mark.root]


def _identity(lab: Lab, node) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    (ks,) = lab.get(node, "kubespanidentities")
    (cluster,) = lab.get(node, "identities")
    return ks["spec"]["publicKey"], ks["spec"]["address"], cluster["spec"]["nodeId"]


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
    # a clean shutdown deletes the affiliate from the discovery service (as Talos' discovery client
    # does), so node-b drops the peer at once instead of waiting for it to go down
    wait_until(lambda: lab.get(b, "peerstatuses") == [] and lab.get(b, "peerspecs") == [], 20,
               "node-b to drop node-a after its clean shutdown")
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
    assert lab.ping(b, lab.kubespan_address(a), count=2)
    assert lab.ping(a, b.addr, count=2)
    assert lab.cleartext(a, b) == 0
