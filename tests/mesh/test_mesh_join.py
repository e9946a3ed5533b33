"""Joining an existing cluster (issue 15, item 7): ``gen config --from-config`` on a second machine meshes.

Node A runs the lab's config.  Node B's config is what an operator would write on a new machine:
``kubespan gen config --with-kubespan --from-config A's-machine-config``, plus its hostname.  Both see
each other ``up`` and ping over KubeSpan, and B's KubeSpan address lies in the cluster's /64 (derived
from the cluster ID, kubespan.md §1); a config generated without ``--from-config`` puts B in another /64.
"""

from __future__ import annotations

import ipaddress

import pytest

from lab.mesh import PYTHON, Lab, Node, run

pytestmark = [pytest.mark.root]


def generated(lab: Lab, *extra: str) -> str:
    return run([PYTHON, "-m", "kubespan", "gen", "config", "--with-kubespan", "--discovery-endpoint",
                lab.discovery_url, *extra]).stdout


def test_a_config_generated_from_an_existing_one_joins_its_cluster(lab: Lab) -> None:
    lab.start_discovery()
    a, b = lab.add_node("node-a"), lab.add_node("node-b")
    lab.start_agent(a)
    hostname = "---\nversion: v1alpha1\nmachine:\n  network:\n    hostname: node-b\n"
    joined = generated(lab, "--from-config", str(a.config_path)) + hostname
    assert lab.cluster_secret in joined
    lab.start_agent(b, joined)
    lab.wait_mesh([a, b], timeout=90)
    assert lab.ping(b, lab.kubespan_address(a), count=2)
    assert address(lab, b) == lab.kubespan_address(b)

    lab.stop_agent(b)
    lab.start_agent(b, generated(lab) + hostname)  # a fresh cluster ID: another ULA /64
    fresh = ipaddress.IPv6Network(f"{address(lab, b)}/64", strict=False)
    assert ipaddress.IPv6Address(lab.kubespan_address(a)) not in fresh


def address(lab: Lab, node: Node) -> str:
    (identity,) = lab.get(node, "identities")
    return str(identity["spec"]["address"]).split("/")[0]
