"""The KubeSpan lab: the discovery service and real ``kubespan agent`` processes on a ``Topology``.

Contract: ``Lab`` is a ``lab.topology.Topology`` (namespaces, routers, nodes, counters; everything removed
in ``close()``) that also runs the self-hosted discovery service in the internet namespace (in memory
only), writes each node's machine config from one shared ``gen config --with-kubespan`` cluster, starts
and stops agents (each with its own config, state dir and API socket under its node's directory, no UAPI
socket), reads their resources with ``kubespan get -o json`` and their Prometheus metrics (``metrics``, for
an agent started with ``metrics_addr``) and waits (bounded) for a full mesh.  Every
process runs as ``sys.executable -m kubespan ...`` inside its namespace.  Shared by ``lab.demo`` and
``tests/mesh``; not installed with the packages; must not import pytest.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from kubespan.config import gen_config_documents
from kubespan.identity import node_address, parse_mac

from .netns import LabError
from .topology import (DISCOVERY_ADDR, PYTHON, WG_PORT, Node, Proc, Topology, missing_requirements, run,
                       wait_until)
from .traffic import Transfer, transfer

__all__ = ["DISCOVERY_PORT", "METRICS_ADDR", "PYTHON", "WG_PORT", "Lab", "LabError", "Node", "Transfer", "missing_requirements",
           "run", "wait_until"]

DISCOVERY_PORT = 3000
METRICS_ADDR = "127.0.0.1:9641"
"""Where ``start_agent(..., extra_args=["--metrics-addr", METRICS_ADDR])`` serves (each node has its own lo)."""


class Lab(Topology):
    """A topology with the discovery service and agents; use as a context manager or call ``close()``."""

    def __init__(self, workdir: Path, prefix: str = "ksl") -> None:
        self.discovery: Proc | None = None
        self.discovery_url = f"http://{DISCOVERY_ADDR}:{DISCOVERY_PORT}"
        self._cluster_docs: list[dict[str, Any]] | None = None
        super().__init__(workdir, prefix)

    def __enter__(self) -> Lab:
        return self

    def start_discovery(self, timeout: float = 30) -> str:
        """The discovery service in the internet namespace (in memory only); its URL."""
        self.discovery = self.spawn(self.internet, "discovery", [
            PYTHON, "-m", "kubespan", "discovery-service", "--listen", f"{DISCOVERY_ADDR}:{DISCOVERY_PORT}",
            "--no-snapshots"])
        probe = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()\n"
                 "except OSError:\n sys.exit(1)\n")

        def ready() -> bool:
            assert self.discovery is not None
            if not self.discovery.alive():
                raise LabError(f"discovery service exited: {self.discovery.log_text(2000)}")
            return self.internet.run(PYTHON, "-c", probe, DISCOVERY_ADDR, str(DISCOVERY_PORT),
                                     check=False).returncode == 0

        wait_until(ready, timeout, "the discovery service to listen", interval=0.3)
        return self.discovery_url

    # --- configuration ----------------------------------------------------------------------------

    def cluster_documents(self) -> list[dict[str, Any]]:
        """The shared ``gen config --with-kubespan`` documents (one cluster ID and secret for the lab)."""
        if self._cluster_docs is None:
            self._cluster_docs = gen_config_documents(self.discovery_url, legacy=False)
        return [dict(d) for d in self._cluster_docs]

    @property
    def cluster_id(self) -> str:
        return str(self.cluster_documents()[2]["clusterID"])

    @property
    def cluster_secret(self) -> str:
        return str(self.cluster_documents()[2]["clusterSecret"])

    def node_config(self, node: Node, *, kubespan: dict[str, Any] | None = None,
                    extra_endpoints: Iterable[str] = ()) -> str:
        """A multi-document machine config for ``node``: hostname = node name, the cluster documents,
        ``kubespan`` merged into ``KubeSpanConfig``, an optional ``KubeSpanEndpointsConfig``."""
        docs: list[dict[str, Any]] = [{
            "version": "v1alpha1",
            "machine": {"type": "worker", "network": {"hostname": node.name}},
        }]
        for doc in self.cluster_documents():
            if doc["kind"] == "KubeSpanConfig":
                doc.update(kubespan or {})
            docs.append(doc)
        extra = list(extra_endpoints)
        if extra:
            docs.append({"apiVersion": "v1alpha1", "kind": "KubeSpanEndpointsConfig",
                         "extraAnnouncedEndpoints": extra})
        return yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=False)

    def write_config(self, node: Node, text: str) -> Path:
        path = node.config_path
        path.write_text(text)
        path.chmod(0o600)
        return path

    # --- agents -------------------------------------------------------------------------------------

    def start_agent(self, node: Node, config: str | None = None, *, reconcile_interval: float = 1.0,
                    extra_args: Sequence[str] = (), wait: float = 30, log_level: str = "info") -> Proc:
        """Start ``kubespan agent`` for ``node`` (config text: ``node_config(node)`` by default; the
        previous config and state dir are reused when ``config`` is None and one was written)."""
        if node.agent is not None and node.agent.alive():
            raise LabError(f"{node.name}: agent already running")
        if config is not None or not node.config_path.exists():
            self.write_config(node, config if config is not None else self.node_config(node))
        node.state_dir.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            node.api_socket.unlink()
        argv = [PYTHON, "-m", "kubespan", "agent", "--config", str(node.config_path), "--state-dir",
                str(node.state_dir), "--api-socket", str(node.api_socket), "--uapi-socket", "none",
                "--reconcile-interval", str(reconcile_interval), "--mac", node.mac, "--log-level", log_level,
                *extra_args]
        with open(self.workdir / f"agent-{node.name}.log", "ab") as out:
            out.write(f"==== start {time.strftime('%H:%M:%S')}: {' '.join(argv)}\n".encode())
        agent = node.agent = self.spawn(node.ns, f"agent-{node.name}", argv)

        def ready() -> bool:
            if not agent.alive():
                raise LabError(f"agent {node.name} exited ({agent.popen.poll()}): {agent.log_text(3000)}")
            return bool(self.get(node, "identities", check=False))

        if wait:
            wait_until(ready, wait, f"agent {node.name} to answer on its API socket", interval=0.3)
        return agent

    def stop_agent(self, node: Node, timeout: float = 15) -> int | None:
        if node.agent is None:
            return None
        return node.agent.stop(timeout)

    def get(self, node: Node, kind: str, *, check: bool = True) -> list[dict[str, Any]]:
        """``kubespan get KIND -o json`` against ``node``'s agent: the resources, whether the output is one
        JSON list or (as ``talosctl get -o json``) a stream of one object per resource."""
        res = run([PYTHON, "-m", "kubespan", "get", kind, "-o", "json", "--api-socket", str(node.api_socket)],
                  check=False, timeout=30)
        if res.returncode != 0:
            if check:
                raise LabError(f"kubespan get {kind} on {node.name} failed ({res.returncode}): {res.stderr.strip()}")
            return []
        try:
            values = _json_stream(res.stdout)
        except ValueError as exc:
            raise LabError(f"kubespan get {kind} on {node.name}: not JSON ({exc}): {res.stdout[:500]!r}") from None
        data: Any = values[0] if len(values) == 1 and isinstance(values[0], list) else values
        if len(data) == 1 and isinstance(data[0], dict) and "items" in data[0]:
            data = data[0]["items"]
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise LabError(f"kubespan get {kind} on {node.name}: expected resources, got {res.stdout[:200]!r}")
        return data

    def get_table(self, node: Node, kind: str) -> str:
        return run([PYTHON, "-m", "kubespan", "get", kind, "-o", "table", "--api-socket",
                    str(node.api_socket)]).stdout

    def peer_statuses(self, node: Node) -> dict[str, dict[str, Any]]:
        """``label -> spec`` of ``node``'s peer statuses."""
        return {str(item["spec"].get("label")): item["spec"] for item in self.get(node, "peerstatuses")}

    def public_key(self, node: Node) -> str:
        """The node's KubeSpan public key (from its agent)."""
        return str(self.get(node, "kubespanidentities")[0]["spec"]["publicKey"])

    def metrics(self, node: Node, addr: str = METRICS_ADDR) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """``(sample name, sorted labels) -> value`` scraped from the agent's ``/metrics`` in its namespace
        (the agent must have been started with ``--metrics-addr addr``)."""
        from prometheus_client.parser import text_string_to_metric_families

        fetch = "import sys,urllib.request\nprint(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
        res = node.ns.run(PYTHON, "-c", fetch, f"http://{addr}/metrics", check=False, timeout=30)
        if res.returncode != 0:
            raise LabError(f"metrics of {node.name}: {res.stderr.strip()[-500:]}")
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(res.stdout) for sample in family.samples}

    def metric(self, node: Node, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.metrics(node).items() if n == name and want <= set(ls))

    def kubespan_address(self, node: Node) -> str:
        """The node's KubeSpan ULA (computed from the cluster ID and MAC, kubespan.md §1)."""
        return str(node_address(self.cluster_id, parse_mac(node.mac)))

    def meshed(self, nodes: Sequence[Node]) -> bool:
        """Every node sees every other one ``up`` with rx and tx > 0 (and no other peer)."""
        for node in nodes:
            statuses = self.peer_statuses(node)
            for other in nodes:
                if other is node:
                    continue
                spec = statuses.get(other.name)
                if not spec or spec.get("state") != "up":
                    return False
                if not (int(spec.get("receiveBytes", 0)) > 0 and int(spec.get("transmitBytes", 0)) > 0):
                    return False
        return True

    def wait_mesh(self, nodes: Sequence[Node], timeout: float = 90) -> None:
        def check() -> bool:
            for node in nodes:
                if node.agent is None or not node.agent.alive():
                    raise LabError(f"agent {node.name} is not running: {node.agent.log_text(3000) if node.agent else ''}")
            return self.meshed(nodes)

        try:
            wait_until(check, timeout, f"a full mesh of {', '.join(n.name for n in nodes)}")
        except LabError as exc:
            raise LabError(f"{exc}\n{self.describe(nodes)}") from None

    def describe(self, nodes: Sequence[Node]) -> str:
        """Every node's peer statuses (for a failure message)."""
        lines = []
        for node in nodes:
            try:
                for label, spec in sorted(self.peer_statuses(node).items()):
                    lines.append(f"{node.name} -> {label}: {spec.get('state')} ep={spec.get('endpoint')} "
                                 f"rx={spec.get('receiveBytes')} tx={spec.get('transmitBytes')}")
            except LabError as exc:
                lines.append(f"{node.name}: {exc}")
        return "\n".join(lines)

    # --- traffic -----------------------------------------------------------------------------------

    def transfer(self, src: Node, dst: Node, addr: str, nbytes: int, *, timeout: float = 120) -> Transfer:
        """Stream ``nbytes`` over TCP from ``src`` to ``addr`` (an address of ``dst``)."""
        return transfer(src.ns, dst.ns, addr, nbytes, timeout=timeout)


def _json_stream(text: str) -> list[Any]:
    """Every JSON value in ``text``, one after another (whitespace between them)."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)
