"""Operator mistakes next to a live agent fail loudly and change nothing (issue 15, item 1).

Two agents mesh.  Then, in node A's namespace (and, for the shared state dir, in a spare namespace), we
start ``kubespan agent`` the wrong way: a misspelled key, an empty file, a misspelled kind, a config with
KubeSpan disabled (whose cleanup used to remove the live agent's routing), a second agent for the same
interface, and one for the same state dir.  Each must exit non-zero with exactly one line on stderr, and
A's rule 32500, table 180 routes, nft table and ``kubespan`` link must all still be there, A must still
answer on its API socket and still carry traffic to B.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubespan.routing import NFT_TABLE
from lab.mesh import PYTHON, Lab, Node

pytestmark = [pytest.mark.root]


def kubespan_state(node: Node) -> dict[str, bool]:
    """Which parts of the live agent's state are present in ``node``'s namespace."""
    rules = node.ns.run("ip", "rule", "show").stdout + node.ns.run("ip", "-6", "rule", "show").stdout
    routes = (node.ns.run("ip", "route", "show", "table", "180", check=False).stdout
              + node.ns.run("ip", "-6", "route", "show", "table", "180", check=False).stdout)
    return {
        "rule 32500": "32500:" in rules,
        "table 180": "dev kubespan" in routes,
        "nft table": node.ns.run("nft", "list", "table", "inet", NFT_TABLE, check=False).returncode == 0,
        "interface": node.ns.run("ip", "link", "show", "kubespan", check=False).returncode == 0,
    }


def run_agent(node: Node, home: Path, config: str, state_dir: Path, tag: str) -> tuple[int, str, str]:
    path = home / f"mistake-{tag}.yaml"
    path.write_text(config)
    res = node.ns.run(PYTHON, "-m", "kubespan", "agent", "--config", str(path), "--state-dir", str(state_dir),
                      "--api-socket", str(home / f"mistake-{tag}.sock"), "--uapi-socket", "none",
                      "--mac", "02:00:00:00:99:01", check=False, timeout=60)
    return res.returncode, res.stdout, res.stderr


def test_mistakes_next_to_a_live_agent_fail_loudly_and_change_nothing(lab: Lab, tmp_path: Path) -> None:
    lab.start_discovery()
    a, b = lab.add_node("node-a"), lab.add_node("node-b")
    spare = lab.add_node("spare")
    for node in (a, b):
        lab.start_agent(node)
    lab.wait_mesh([a, b], timeout=90)
    assert all(kubespan_state(a).values()), kubespan_state(a)
    good = lab.node_config(a)

    mistakes = [
        # (tag, namespace, config, state dir, what the one line must say)
        ("key", a, good.replace("enabled: true", "enabled: true\nadvertiseKubernetesNetwork: true", 1),
         tmp_path / "fresh-key", "KubeSpanConfig.advertiseKubernetesNetwork: unknown field"),
        ("empty", a, "", tmp_path / "fresh-empty", "the config is empty"),
        ("kind", a, good.replace("kind: KubeSpanConfig", "kind: KubeSpanConfg"), tmp_path / "fresh-kind",
         "did you mean 'KubeSpanConfig'?"),
        ("disabled", a, "version: v1alpha1\nmachine: {}\n", tmp_path / "fresh-disabled",
         "interface kubespan (in this network namespace) is in use by another kubespan agent"),
        ("same-interface", a, good, tmp_path / "fresh-iface",
         "interface kubespan (in this network namespace) is in use by another kubespan agent"),
        ("same-state-dir", spare, good, a.state_dir, f"state dir {a.state_dir} is in use by another kubespan agent"),
    ]
    for tag, node, config, state_dir, expected in mistakes:
        rc, out, err = run_agent(node, tmp_path, config, state_dir, tag)
        lines = err.strip().splitlines()
        assert rc == 1 and out == "", (tag, rc, out, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (tag, err)
        if state_dir != a.state_dir:
            assert not state_dir.exists(), f"{tag}: created {state_dir}"
        assert not (tmp_path / f"mistake-{tag}.sock").exists(), tag
        state = kubespan_state(a)
        assert all(state.values()), (tag, state)
        assert a.agent is not None and a.agent.alive(), (tag, a.agent.log_text(3000) if a.agent else "")
        assert lab.get(a, "identities"), tag
        assert not any(kubespan_state(spare).values()), (tag, kubespan_state(spare))

    assert lab.meshed([a, b]), lab.describe([a, b])
    assert lab.ping(a, lab.kubespan_address(b), count=2)
    assert lab.ping(b, lab.kubespan_address(a), count=2)
