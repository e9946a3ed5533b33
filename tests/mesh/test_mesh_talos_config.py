"""Real Talos machine configs drive the agent unchanged (kubespan.md §7).

``data/controlplane-legacy.yaml`` is a v1alpha1 controlplane config in the shape ``talosctl gen config``
writes (PKI, kubelet, API server admission/audit, etcd, KubeSpan in ``machine.network.kubespan``, the
cluster ID/secret in ``cluster``, the discovery service in ``cluster.discovery``).
``data/worker-multidoc.yaml`` is a Talos 1.14 worker: the v1alpha1 document without KubeSpan or
discovery, then ``HostnameConfig``, ``KubeSpanConfig``, ``DiscoveryServiceConfig``,
``DiscoveryIdentityConfig`` and unrelated documents (``ResolverConfig``, ``TimeSyncConfig``,
``NetworkRuleConfig``, ``UserVolumeConfig``).  Only the values a user fills in are substituted (cluster
ID and secret, the discovery URL, the hostname); the two nodes mesh and name each other by hostname.
A third node runs the legacy config that ``kubespan gen config --with-kubespan --legacy`` writes.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml

from lab.mesh import PYTHON, Lab, run

pytestmark = [pytest.mark.root]

DATA = Path(__file__).resolve().parent / "data"


def _render(name: str, lab: Lab, hostname: str) -> str:
    template = string.Template((DATA / name).read_text())
    return template.substitute(CLUSTER_ID=lab.cluster_id, CLUSTER_SECRET=lab.cluster_secret,
                               DISCOVERY_URL=lab.discovery_url, HOSTNAME=hostname)


def test_talos_legacy_and_multidoc_configs_mesh(lab: Lab, tmp_path: Path) -> None:
    lab.start_discovery()
    cp, worker, generated = lab.add_node("cp-1"), lab.add_node("worker-1"), lab.add_node("gen-1")
    lab.start_agent(cp, _render("controlplane-legacy.yaml", lab, "cp-1"))
    lab.start_agent(worker, _render("worker-multidoc.yaml", lab, "worker-1"))

    # `kubespan gen config --legacy` output, with this lab's cluster identity and a hostname filled in
    out = tmp_path / "gen.yaml"
    run([PYTHON, "-m", "kubespan", "gen", "config", "--with-kubespan", "--legacy", "--discovery-endpoint",
         lab.discovery_url, "-o", str(out)])
    text = out.read_text()
    (doc,) = list(yaml.safe_load_all(text))
    doc["cluster"]["id"], doc["cluster"]["secret"] = lab.cluster_id, lab.cluster_secret
    doc["machine"]["network"]["hostname"] = "gen-1"
    lab.start_agent(generated, yaml.safe_dump(doc, sort_keys=False))

    nodes = [cp, worker, generated]
    lab.wait_mesh(nodes, timeout=90)
    for node in nodes:
        members = {m["metadata"]["id"] for m in lab.get(node, "members")}
        assert members >= {n.name for n in nodes if n is not node}, members
    assert lab.ping(worker, lab.kubespan_address(cp), count=2)
    assert lab.ping(cp, generated.addr, count=2)
    assert all(v == 0 for k, v in lab.counters().items() if k.startswith("clear ")), lab.counters()


def test_machine_type_comes_from_the_config(lab: Lab) -> None:
    lab.start_discovery()
    cp, worker = lab.add_node("cp-1"), lab.add_node("worker-1")
    lab.start_agent(cp, _render("controlplane-legacy.yaml", lab, "cp-1"))
    lab.start_agent(worker, _render("worker-multidoc.yaml", lab, "worker-1"))
    lab.wait_mesh([cp, worker], timeout=90)
    types = {m["metadata"]["id"]: m["spec"].get("machineType") for m in lab.get(worker, "members")}
    assert types.get("cp-1") == "controlplane" and types.get("worker-1") == "worker", types
