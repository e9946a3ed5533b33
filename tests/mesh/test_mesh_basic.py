"""Three real agents mesh through the self-hosted discovery service; only WireGuard crosses the underlay.

kubespan.md §5 (peer statuses up with rx/tx > 0, as Talos' ``TestKubeSpanPeers``), §6 (traffic to
cluster members is encrypted transparently: node addresses and KubeSpan ULAs alike), §1 (the ULA is the
cluster /64 + the EUI-64 of the MAC).  The router namespace counts every forwarded packet; between the
nodes only UDP 51820 ↔ 51820 may appear while pings and TCP transfers go through.
"""

from __future__ import annotations

import pytest

from lab.mesh import WG_PORT, Lab

pytestmark = [pytest.mark.root]


def test_three_nodes_mesh_and_underlay_carries_only_wireguard(lab: Lab) -> None:
    lab.start_discovery()
    nodes = [lab.add_node(f"node-{i}") for i in (1, 2, 3)]
    for node in nodes:
        lab.start_agent(node)
    lab.wait_mesh(nodes, timeout=90)

    keys = {}
    for node in nodes:
        (identity,) = lab.get(node, "kubespanidentities")
        assert identity["spec"]["address"].split("/")[0] == lab.kubespan_address(node)
        keys[node.name] = identity["spec"]["publicKey"]
    for node in nodes:
        others = [o for o in nodes if o is not node]
        statuses = lab.get(node, "peerstatuses")
        assert len(statuses) == len(others)
        by_label = {s["spec"]["label"]: s for s in statuses}
        assert sorted(by_label) == sorted(o.name for o in others)
        for other in others:
            status = by_label[other.name]
            assert status["metadata"]["id"] == keys[other.name]
            assert status["metadata"]["type"].lower().startswith("kubespanpeerstatus")
            spec = status["spec"]
            assert spec["state"] == "up"
            assert spec["receiveBytes"] > 0 and spec["transmitBytes"] > 0
            assert spec["endpoint"] == f"{other.addr}:{WG_PORT}"
        specs = {s["spec"]["label"]: s["spec"] for s in lab.get(node, "peerspecs")}
        assert sorted(specs) == sorted(o.name for o in others)
        for other in others:
            assert f"{other.addr}:{WG_PORT}" in specs[other.name]["endpoints"]

    before = lab.counters()
    for a in nodes:
        for b in nodes:
            if a is not b:
                assert lab.ping(a, b.addr, count=2), f"{a.name} -> {b.name} underlay {b.addr}"
                assert lab.ping(a, lab.kubespan_address(b), count=2), f"{a.name} -> {b.name} KubeSpan address"
    t4 = lab.transfer(nodes[0], nodes[1], nodes[1].addr, 2_000_000)
    t6 = lab.transfer(nodes[2], nodes[0], lab.kubespan_address(nodes[0]), 2_000_000)
    assert t4.ok, t4
    assert t6.ok, t6
    after = lab.counters()

    # the traffic crossed the router as WireGuard ...
    assert after["wireguard"] - before["wireguard"] > 2 * 2 * 6
    # ... and nothing else went between the nodes, ever (the counters started with the lab)
    clear = {name: value for name, value in after.items() if name.startswith("clear ")}
    assert len(clear) == 6
    assert all(value == 0 for value in clear.values()), clear
    assert after["other"] == 0, after
