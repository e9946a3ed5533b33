"""Peer status when it happens (issue 15 item 3): states follow handshakes and endpoint timeouts between
reconciles, and the routing of up/down peers follows.

The agents run with ``--reconcile-interval 300``, so after start-up no full reconcile runs during a
test.  In the first test each node announces an unreachable endpoint first (the set-up of
test_mesh_endpoints): the peer can only come ``up`` after the 15 s endpoint timeout rotates it to the real
endpoint, and only the agent's status passes can see that timeout (the pass at the state table's
boundary) and the handshake that follows (the pass the engine's completed-handshake event asks for;
WireGuard's last-handshake time against the clock, controllers/kubespan/manager.go's state machine).
With ``allowDownPeerBypass`` the peer's addresses enter the routed set only once it is up.  The second
test reads the agents' ``kubespan_status_passes_total`` to see that the handshake event did the work.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.mesh import PYTHON, WG_PORT, Lab, Node, wait_until

pytestmark = [pytest.mark.root]

METRICS = "127.0.0.1:9102"
FETCH = ("import sys, urllib.request\n"
         "with urllib.request.urlopen(sys.argv[1], timeout=10) as r: sys.stdout.write(r.read().decode())\n")


def _status_passes(node: Node) -> dict[str, float]:
    text = node.ns.run(PYTHON, "-c", FETCH, f"http://{METRICS}/metrics").stdout
    return {sample.labels["trigger"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "kubespan_status_passes_total"}


def _routed(lab: Lab, node) -> str:  # type: ignore[no-untyped-def]
    return node.ns.run("nft", "list", "table", "inet", "kubespan").stdout


def test_peer_goes_up_between_reconciles_and_routing_follows(lab: Lab) -> None:
    lab.start_discovery()
    a, b = lab.add_node("node-a"), lab.add_node("node-b")
    bad = {n.name: f"100.64.250.{n.index}:{WG_PORT}" for n in (a, b)}
    good = {n.name: f"{n.addr}:{WG_PORT}" for n in (a, b)}
    for node in (a, b):
        config = lab.node_config(node, kubespan={"filters": {"endpoints": []}, "allowDownPeerBypass": True},
                                 extra_endpoints=[bad[node.name], good[node.name]])
        lab.start_agent(node, config, reconcile_interval=300)

    # first the unreachable endpoint, not up, not routed
    wait_until(lambda: lab.peer_statuses(a).get(b.name, {}).get("lastUsedEndpoint") == bad[b.name]
               or lab.peer_statuses(a).get(b.name, {}).get("state") == "up", 30, "node-a to try node-b")
    seen_unknown = lab.peer_statuses(a)[b.name]
    if seen_unknown["state"] != "up":
        assert b.addr not in _routed(lab, a)

    wait_until(lambda: all(lab.peer_statuses(x).get(y.name, {}).get("state") == "up" for x, y in ((a, b), (b, a))),
               90, "both peers up without a reconcile")
    for viewer, other in ((a, b), (b, a)):
        spec = lab.peer_statuses(viewer)[other.name]
        assert spec["endpoint"] == good[other.name], spec
        assert spec["lastHandshakeTime"] != "0001-01-01T00:00:00Z"
        wait_until(lambda v=viewer, o=other: o.addr in _routed(lab, v), 10,
                   f"{viewer.name} to route {other.name} once it is up")
    assert lab.ping(a, lab.kubespan_address(b), count=2)
    assert lab.ping(b, a.addr, count=2)
    assert lab.counters()["unreachable"] > 0  # the first endpoint really was tried
    for node in (a, b):
        assert node.agent is not None
        assert "reconcile failed" not in node.agent.log_text() and "status pass failed" not in node.agent.log_text()


def test_peer_goes_up_on_the_engines_handshake_event(lab: Lab) -> None:
    lab.start_discovery()
    a, b = lab.add_node("node-a"), lab.add_node("node-b")
    for node in (a, b):
        lab.start_agent(node, reconcile_interval=300, extra_args=["--metrics-addr", METRICS])
    wait_until(lambda: all(lab.peer_statuses(x).get(y.name, {}).get("state") == "up" for x, y in ((a, b), (b, a))),
               60, "both peers up")
    for node in (a, b):
        passes = _status_passes(node)
        # the peer was not up when its first handshake completed: the engine's event asked for a pass
        assert passes["handshake"] >= 1, passes
        assert node.agent is not None and "status pass failed" not in node.agent.log_text()
    assert lab.ping(a, lab.kubespan_address(b), count=2)
