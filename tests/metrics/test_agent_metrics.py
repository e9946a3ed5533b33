"""Two real kubespan agents meshed through the real discovery service (lab.mesh): their metrics
endpoints, scraped with urllib inside each node's namespace, and their JSON log lines (root).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics_support import parse, value

from lab.mesh import PYTHON, Lab, missing_requirements

pytestmark = [pytest.mark.root]

ADDR = "127.0.0.1:9101"
FETCH = ("import sys, urllib.request\n"
         "with urllib.request.urlopen(sys.argv[1], timeout=10) as r: sys.stdout.write(r.read().decode())\n")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    missing = missing_requirements()
    if missing:
        pytest.fail(f"agent metrics test needs: {', '.join(missing)}")
    with Lab(tmp_path, prefix="ksm") as lab:
        yield lab


def test_agent_metrics_follow_the_peer_statuses_and_logs_are_json(lab: Lab) -> None:
    lab.start_discovery()
    nodes = [lab.add_node(f"node-{i}") for i in (1, 2)]
    for node in nodes:
        lab.start_agent(node, extra_args=["--metrics-addr", ADDR, "--log-format", "json"])
    lab.wait_mesh(nodes, timeout=90)
    (identity,) = lab.get(nodes[1], "kubespanidentities")
    key2 = identity["spec"]["publicKey"]

    samples = parse(nodes[0].ns.run(PYTHON, "-c", FETCH, f"http://{ADDR}/metrics").stdout)
    statuses = lab.peer_statuses(nodes[0])
    status = statuses["node-2"]
    assert status["state"] == "up"
    assert value(samples, "kubespan_peer_state", public_key=key2, label="node-2", state="up") == 1
    assert value(samples, "kubespan_peer_state", public_key=key2, label="node-2", state="down") == 0
    assert value(samples, "kubespan_peer_endpoint_rotations_total", public_key=key2) >= 0
    assert value(samples, "kubespan_discovery_connected") == 1
    ok = value(samples, "kubespan_reconcile_total", result="ok")
    assert ok >= 1 and value(samples, "kubespan_reconcile_total", result="error") == 0
    assert value(samples, "kubespan_reconcile_duration_seconds_count") == ok
    # the interface's wgpy metrics, with the peer's hostname as the exporter's name label
    peer = {"device": "kubespan", "public_key": key2}
    assert value(samples, "wireguard_peer_info", name="node-2", endpoint=status["endpoint"], **peer) == 1
    assert value(samples, "wireguard_peer_receive_bytes_total", **peer) >= int(status["receiveBytes"]) > 0
    assert value(samples, "wireguard_peer_transmit_bytes_total", **peer) >= int(status["transmitBytes"]) > 0
    assert value(samples, "wireguard_peer_last_handshake_seconds", **peer) > 0
    assert value(samples, "wgpy_keypairs_created_total", device="kubespan") >= 1

    assert nodes[0].agent is not None
    lines = [ln for ln in nodes[0].agent.log_text().splitlines() if not ln.startswith("==== start")]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for rec in records:
        assert set(rec) >= {"time", "level", "logger", "msg"} and rec["level"] in ("info", "warning", "error")
    assert any(r["logger"] == "wgpy.metrics" and "serving metrics on 127.0.0.1:9101" in r["msg"] for r in records)
    assert any(r["logger"] == "kubespan.agent" and "node-2" in r["msg"] for r in records)
