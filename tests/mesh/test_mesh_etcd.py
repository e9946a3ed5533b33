"""Agents mesh through two discovery-service replicas that share one etcd (issue 12).

A real etcd (Debian's etcd-server) and two ``kubespan discovery-service
--etcd-endpoints`` replicas run in the lab's internet namespace; the
discovery client takes one endpoint, so the agents are split across the
replicas (node-1 and node-2 on the first, node-3 on the second) and can only
find each other through etcd.  Then the first replica is killed while its
agents watch it: a node that joins meanwhile through the second replica is
meshed with them once the first replica is back (they re-watch and get the
full snapshot), and the mesh that was up stays up throughout.
"""

from __future__ import annotations

import shutil
import signal
import urllib.parse

import pytest

from lab.mesh import PYTHON, Lab, LabError, Proc, wait_until

pytestmark = [pytest.mark.root]

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
PROBE = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()\n"
         "except OSError:\n sys.exit(1)\n")


def service_host(lab: Lab) -> tuple[str, int]:
    url = urllib.parse.urlsplit(lab.discovery_url)
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


def wait_listening(lab: Lab, proc: Proc, host: str, port: int) -> None:
    def ready() -> bool:
        if not proc.alive():
            raise LabError(f"{proc.name} exited: {proc.log_text(2000)}")
        return lab.internet.run(PYTHON, "-c", PROBE, host, str(port), check=False).returncode == 0

    wait_until(ready, 30, f"{proc.name} to listen on {host}:{port}", interval=0.3)


def start_etcd(lab: Lab, host: str) -> str:
    client, peer = f"http://{host}:2379", f"http://{host}:2380"  # the internet namespace's own ports
    proc = lab.spawn(lab.internet, "etcd", [
        ETCD, "--name", "lab", "--data-dir", str(lab.workdir / "etcd-data"),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"lab={peer}",
        "--logger", "zap"])
    wait_listening(lab, proc, host, 2379)
    return client


def start_replica(lab: Lab, name: str, host: str, port: int, etcd: str) -> Proc:
    proc = lab.spawn(lab.internet, name, [
        PYTHON, "-m", "kubespan", "discovery-service", "-addr", f"{host}:{port}", "--etcd-endpoints", etcd,
        "-gc-interval", "5s", "-metrics-addr="])  # two replicas in one namespace: no shared :2122
    wait_listening(lab, proc, host, port)
    return proc


def test_agents_split_across_two_replicas_mesh_and_survive_a_replica_kill(lab: Lab) -> None:
    host, port = service_host(lab)
    etcd = start_etcd(lab, host)
    first = start_replica(lab, "discovery-1", host, port, etcd)
    second_port = port + 1
    start_replica(lab, "discovery-2", host, second_port, etcd)

    def on_second(node_config: str) -> str:
        old, new = f"{host}:{port}", f"{host}:{second_port}"
        assert old in node_config
        return node_config.replace(old, new)

    nodes = [lab.add_node(f"node-{i}") for i in (1, 2, 3)]
    lab.start_agent(nodes[0])
    lab.start_agent(nodes[1])
    lab.start_agent(nodes[2], on_second(lab.node_config(nodes[2])))
    lab.wait_mesh(nodes, timeout=120)
    for a in nodes:
        for b in nodes:
            if a is not b:
                assert lab.ping(a, lab.kubespan_address(b), count=2), f"{a.name} -> {b.name} KubeSpan address"

    # the replica node-1 and node-2 watch dies mid-stream
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(10)
    late = lab.add_node("node-4")
    lab.start_agent(late, on_second(lab.node_config(late)))
    # node-3 (on the live replica) meshes with the newcomer; the old mesh stays up meanwhile
    lab.wait_mesh([nodes[2], late], timeout=120)
    assert lab.ping(nodes[0], lab.kubespan_address(nodes[1]), count=2)
    # the first replica comes back with nothing of its own: its agents re-watch and get the full snapshot
    start_replica(lab, "discovery-1b", host, port, etcd)
    everyone = [*nodes, late]
    lab.wait_mesh(everyone, timeout=150)
    assert lab.ping(late, lab.kubespan_address(nodes[0]), count=2)
