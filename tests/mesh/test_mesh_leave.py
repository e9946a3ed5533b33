"""Stopping is not leaving; ``kubespan leave`` is (issue 15 item 2; Talos deletes its affiliate only on a
machine reset, internal/app/machined/pkg/controllers/cluster/discovery_service.go).

Three real agents and the real discovery service in namespaces.  A stopped node stays a peer of the
others; ``kubespan leave`` against a running agent deletes its affiliate (the others drop the peer),
removes its identity files and ends the agent with exit 0; ``kubespan leave --config`` with the agent
stopped does the same directly from the state dir.
"""

from __future__ import annotations

import pytest
from test_mesh_restart import assert_still_a_peer

from lab.mesh import PYTHON, Lab, wait_until

pytestmark = [pytest.mark.root]

STATE_FILES = ["kubespan-identity.yaml", "node-identity.yaml"]


def _key(lab: Lab, node) -> str:  # type: ignore[no-untyped-def]
    (ks,) = lab.get(node, "identities")
    return str(ks["spec"]["publicKey"])


def _peer_keys(lab: Lab, node) -> set[str]:  # type: ignore[no-untyped-def]
    return {p["metadata"]["id"] for p in lab.get(node, "peerstatuses")}


def _identity_files(node) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.name for p in node.state_dir.iterdir() if p.name in STATE_FILES)


def test_leave_removes_the_node_stop_does_not(lab: Lab) -> None:
    lab.start_discovery()
    a, b, c = lab.add_node("node-a"), lab.add_node("node-b"), lab.add_node("node-c")
    for node in (a, b, c):
        lab.start_agent(node)
    lab.wait_mesh([a, b, c], timeout=120)
    key_a, key_b, key_c = _key(lab, a), _key(lab, b), _key(lab, c)

    # kubespan leave through the running agent on node-a
    res = a.ns.run(PYTHON, "-m", "kubespan", "leave", "--api-socket", str(a.api_socket), timeout=60)
    assert "left the cluster" in res.stdout
    assert a.agent is not None
    assert a.agent.popen.wait(timeout=30) == 0
    wait_until(lambda: _peer_keys(lab, b) == {key_c} and _peer_keys(lab, c) == {key_b}, 30,
               "node-b and node-c to drop node-a after it left")
    assert {p["metadata"]["id"] for p in lab.get(b, "peerspecs")} == {key_c}
    assert _identity_files(a) == []
    assert "kubespan" not in a.ns.run("ip", "-o", "link", "show").stdout

    # node-c stops: it stays a peer of node-b; then it leaves with its agent stopped
    assert lab.stop_agent(c) == 0
    assert_still_a_peer(lab, b, key_c, lab.kubespan_address(c))
    assert _identity_files(c) == STATE_FILES
    res = c.ns.run(PYTHON, "-m", "kubespan", "leave", "--api-socket", str(c.api_socket), "--config",
                   str(c.config_path), "--state-dir", str(c.state_dir), timeout=60)
    assert "left the cluster" in res.stdout
    wait_until(lambda: _peer_keys(lab, b) == set(), 30, "node-b to drop node-c after it left")
    assert _identity_files(c) == []

    # a node that left and starts again is a new node: new key, new node ID
    lab.start_agent(a)
    assert _key(lab, a) != key_a
    lab.wait_mesh([a, b], timeout=90)
