"""A network-namespace lab for KubeSpan: an "internet" router, nodes, NAT routers, the discovery service, agents.

Contract: ``Lab`` builds, inside network namespaces it creates (names ``<prefix>-<random>-<role>``), a
topology for real ``kubespan`` processes and removes all of it in ``close()`` (also after a failure or
Ctrl-C): it stops every process it started (SIGTERM, then SIGKILL), kills whatever is left in its
namespaces and deletes them (which deletes their links).  It never touches the host's own namespace,
links, routes or firewall; every address it configures exists only inside its namespaces.

Topology (kubespan.md §5, §6, §10 give the behaviour it exercises):

- ``internet``: the router (IPv4 forwarding on, no default route).  The discovery service listens on
  ``DISCOVERY_ADDR`` (a /32 on its ``lo``).  An nftables table ``inet meshlab`` counts forwarded traffic:
  WireGuard (UDP 51820 both ports) vs everything else per ordered pair of nodes (``counters()``), and can
  drop a node's UDP (``block_udp``).  ``UNREACHABLE_PREFIX`` has an unreachable route there; packets to it
  are counted (``unreachable``), so a test can prove an endpoint in it was tried.  ``other`` counts every
  forwarded packet that is not UDP 51820 to UDP 51820 (NATed WireGuard included).
- a node attached to the internet: its own namespace, ``eth0`` = ``100.64.<k>.2/24`` (router side
  ``100.64.<k>.1``), default route via the router, a fixed random MAC (passed to the agent with ``--mac``:
  a veth has a link kind, so Talos' "first ethernet link without kind" rule finds nothing here).
- a NAT router: ``wan0`` = ``100.64.<k>.2/24`` towards the internet, ``lan0`` = ``10.<k>.0.1/24``,
  masquerade on ``wan0`` and (like a home router) unsolicited WAN traffic dropped before conntrack
  confirms it; ``random_ports=True`` makes it a symmetric NAT (``masquerade random``).  A node behind it
  gets ``10.<k>.0.2/24``.

A lab registers itself (owner PID) in ``REGISTRY``; creating a lab first sweeps the namespaces and
processes of registered labs whose owner died without cleaning up (``sweep_stale_labs``).

Every process runs as ``sys.executable -m kubespan ...`` inside its namespace with ``ip netns exec``; logs
go to files in ``workdir``.  Waits are bounded (``wait_until``).  This module is shared by
``kubespan.demo`` and ``tests/mesh``; it must not import pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .cli import gen_config_documents
from kubespan.get import json_stream
from .identity import node_address, parse_mac

DISCOVERY_ADDR = "100.64.0.1"
DISCOVERY_PORT = 3000
UNREACHABLE_PREFIX = "100.64.250.0/24"
"""The router answers every packet to this prefix with "unreachable" (after counting it)."""
WG_PORT = 51820
PYTHON = sys.executable
PKG_PARENT = str(Path(__file__).resolve().parents[1])
REQUIRED_TOOLS = ("ip", "nft")
REGISTRY = Path("/run/kubespan-netlab")
"""One file per live lab (``<prefix>-<tag>``, the owner's PID) so a later lab can sweep a dead one's."""


class LabError(Exception):
    """A lab step failed (command error, process died, wait timed out)."""


def missing_requirements() -> list[str]:
    """What keeps the lab from running here (empty when it can run)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (network namespaces, TUN devices, nftables)")
    if not os.path.exists("/dev/net/tun"):
        problems.append("/dev/net/tun is missing")
    problems += [f"{tool} not found in PATH" for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    return problems


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input, env=child_env())
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout}{res.stderr}".strip())
    return res


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``pred`` until it returns a truthy value (returned) or ``timeout`` seconds pass (LabError)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except LabError as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_labs() -> list[str]:
    """Remove what a lab whose owner process died without ``close()`` (SIGKILL, a hard timeout) left
    behind: the processes in its namespaces and the namespaces.  Only labs registered in ``REGISTRY``
    by a process that no longer exists are touched; the names removed are returned."""
    removed: list[str] = []
    if not REGISTRY.is_dir():
        return removed
    netns_dir = Path("/run/netns")
    for entry in REGISTRY.iterdir():
        try:
            owner = int(entry.read_text().strip() or "0")
        except (OSError, ValueError):
            continue
        if owner and _pid_alive(owner):
            continue
        names = sorted(p.name for p in netns_dir.glob(f"{entry.name}-*")) if netns_dir.is_dir() else []
        for name in names:
            for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run(["ip", "netns", "del", name], check=False)
            removed.append(name)
        with contextlib.suppress(OSError):
            entry.unlink()
    return removed


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclasses.dataclass
class Netns:
    name: str

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(self.argv(cmd), check=check, timeout=timeout, input=input)

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")


@dataclasses.dataclass
class Proc:
    """A process the lab started (in a namespace), with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self, tail: int = 0) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return text[-tail:] if tail else text

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit code (None if it never ended)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        return self.popen.poll()


@dataclasses.dataclass
class NatRouter:
    name: str
    ns: Netns
    index: int
    wan_addr: str
    lan_gateway: str
    lan_prefix: str
    random_ports: bool


@dataclasses.dataclass
class Node:
    """One machine: namespace, underlay address, MAC; ``agent`` once started."""

    name: str
    ns: Netns
    index: int
    addr: str
    """The address on ``eth0`` (private for a node behind NAT)."""
    public_addr: str
    """The address the internet sees (the NAT router's WAN address behind NAT)."""
    mac: str
    nat: NatRouter | None = None
    agent: Proc | None = None

    home: Path = Path(".")
    """Per-node directory: config, state dir, API socket."""

    @property
    def config_path(self) -> Path:
        return self.home / "machineconfig.yaml"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def api_socket(self) -> Path:
        return self.home / "api.sock"


@dataclasses.dataclass
class Transfer:
    """One TCP stream through the lab: bytes and sha256 on both ends, receiver-side duration."""

    sent: int
    sent_sha256: str
    received: int
    received_sha256: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.sent == self.received and self.sent_sha256 == self.received_sha256

    @property
    def mbit_per_s(self) -> float:
        return self.received * 8 / self.seconds / 1e6 if self.seconds > 0 else 0.0


class Lab:
    """The whole topology; use as a context manager or call ``close()``."""

    def __init__(self, workdir: Path, prefix: str = "ksl") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tag = secrets.token_hex(3)
        self.prefix = prefix
        self.namespaces: list[Netns] = []
        self.procs: list[Proc] = []
        self.nodes: list[Node] = []
        self.nats: list[NatRouter] = []
        self._next_index = 1
        self.discovery: Proc | None = None
        self.discovery_url = f"http://{DISCOVERY_ADDR}:{DISCOVERY_PORT}"
        self._cluster_docs: list[dict[str, Any]] | None = None
        sweep_stale_labs()
        self._owner_file = REGISTRY / f"{self.prefix}-{self.tag}"
        try:
            REGISTRY.mkdir(parents=True, exist_ok=True)
            self._owner_file.write_text(f"{os.getpid()}\n")
            self.internet = self._new_ns("inet")
            self._setup_internet()
        except BaseException:
            self.close()
            raise

    # --- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_ns(self, role: str) -> Netns:
        ns = Netns(f"{self.prefix}-{self.tag}-{role}")
        run(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def close(self) -> None:
        """Stop every process (agents first), then delete the namespaces.  Never raises."""
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        for ns in self.namespaces:
            with contextlib.suppress(Exception):
                for pid in run(["ip", "netns", "pids", ns.name], check=False).stdout.split():
                    with contextlib.suppress(OSError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
        for ns in self.namespaces:
            with contextlib.suppress(Exception):
                run(["ip", "netns", "del", ns.name], check=False)
        self.namespaces.clear()
        with contextlib.suppress(OSError):
            self._owner_file.unlink()

    def logs(self, tail: int = 6000) -> str:
        """The tail of every process log, for a failure report."""
        return "\n".join(f"----- {p.name} ({p.log}) exit={p.popen.poll()}\n{p.log_text(tail)}" for p in self.procs)

    # --- topology --------------------------------------------------------------------------------

    def _setup_internet(self) -> None:
        inet = self.internet
        inet.sysctl("net.ipv4.ip_forward", "1")
        inet.run("ip", "addr", "add", f"{DISCOVERY_ADDR}/32", "dev", "lo")
        inet.run("ip", "route", "add", "unreachable", UNREACHABLE_PREFIX)
        ruleset = (
            "table inet meshlab {\n"
            "  chain block { }\n"
            "  chain prerouting {\n"
            "    type filter hook prerouting priority 0; policy accept;\n"
            f"    ip daddr {UNREACHABLE_PREFIX} counter comment \"unreachable\"\n"
            "  }\n"
            "  chain forward {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            "    jump block\n"
            f"    udp sport {WG_PORT} udp dport {WG_PORT} counter accept comment \"wireguard\"\n"
            "  }\n"
            # a second base chain on the same hook sees every packet the first one accepted
            "  chain forward_other {\n"
            "    type filter hook forward priority 10; policy accept;\n"
            f"    udp sport {WG_PORT} udp dport {WG_PORT} return\n"
            "    counter comment \"other\"\n"
            "  }\n"
            "}\n"
        )
        inet.run("nft", "-f", "-", input=ruleset)

    def _attach(self, ns: Netns, dev: str) -> tuple[int, str, str]:
        """A veth from the internet router to ``ns`` (named ``dev`` there); (index, router addr, addr)."""
        k = self._next_index
        self._next_index += 1
        if k > 250:
            raise LabError("too many attachments")
        port = f"p{k}"
        run(["ip", "link", "add", port, "netns", self.internet.name, "type", "veth", "peer", dev, "netns", ns.name])
        gw, addr = f"100.64.{k}.1", f"100.64.{k}.2"
        self.internet.run("ip", "addr", "add", f"{gw}/24", "dev", port)
        self.internet.run("ip", "link", "set", port, "up")
        ns.run("ip", "addr", "add", f"{addr}/24", "dev", dev)
        ns.run("ip", "link", "set", dev, "up")
        ns.run("ip", "route", "add", "default", "via", gw)
        return k, gw, addr

    def add_nat(self, name: str, *, random_ports: bool = False) -> NatRouter:
        """A masquerading NAT router attached to the internet (see the module docstring)."""
        ns = self._new_ns(name)
        k, _, wan = self._attach(ns, "wan0")
        ns.sysctl("net.ipv4.ip_forward", "1")
        masq = "masquerade random" if random_ports else "masquerade"
        ruleset = (
            "table ip nat {\n"
            "  chain postrouting { type nat hook postrouting priority 100; policy accept;\n"
            f"    oifname \"wan0\" {masq}\n"
            "  }\n"
            "}\n"
            "table inet homefw {\n"
            # after conntrack (-200): a dropped packet never confirms a conntrack entry, so an unsolicited
            # packet leaves no state behind that would steal a later mapping's port
            "  chain pre { type filter hook prerouting priority -150; policy accept;\n"
            "    iifname \"wan0\" ct state new drop\n"
            "  }\n"
            "}\n"
        )
        ns.run("nft", "-f", "-", input=ruleset)
        nat = NatRouter(name, ns, k, wan, f"10.{k}.0.1", f"10.{k}.0.0/24", random_ports)
        self.nats.append(nat)
        return nat

    def add_node(self, name: str, *, nat: NatRouter | None = None) -> Node:
        """A node namespace attached to the internet router, or to ``nat``'s LAN."""
        ns = self._new_ns(name)
        mac = "02:" + ":".join(f"{b:02x}" for b in os.urandom(5))
        if nat is None:
            k, _, addr = self._attach(ns, "eth0")
            public = addr
        else:
            k = nat.index
            run(["ip", "link", "add", "lan0", "netns", nat.ns.name, "type", "veth", "peer", "eth0", "netns", ns.name])
            nat.ns.run("ip", "addr", "add", f"{nat.lan_gateway}/24", "dev", "lan0")
            nat.ns.run("ip", "link", "set", "lan0", "up")
            addr, public = f"10.{k}.0.2", nat.wan_addr
            ns.run("ip", "addr", "add", f"{addr}/24", "dev", "eth0")
            ns.run("ip", "link", "set", "eth0", "up")
            ns.run("ip", "route", "add", "default", "via", nat.lan_gateway)
        ns.run("ip", "link", "set", "eth0", "address", mac)
        home = self.workdir / name
        home.mkdir(exist_ok=True)
        node = Node(name, ns, k, addr, public, mac, nat, home=home)
        for other in self.nodes:
            self._count_pair(node, other)
            self._count_pair(other, node)
        self.nodes.append(node)
        return node

    def _count_pair(self, a: Node, b: Node) -> None:
        self.internet.run("nft", "-f", "-", input=(
            f"add rule inet meshlab forward ip saddr {a.public_addr} ip daddr {b.public_addr} "
            f"counter comment \"clear {a.name}>{b.name}\"\n"))

    def block_udp(self, node: Node) -> None:
        """The router drops every UDP datagram from or to ``node`` (its WireGuard never gets through)."""
        for field in ("saddr", "daddr"):
            self.internet.run("nft", "add", "rule", "inet", "meshlab", "block", "ip", field, node.public_addr,
                              "meta", "l4proto", "udp", "drop")

    def counters(self, unit: str = "packets") -> dict[str, int]:
        """``unit`` (packets or bytes) per named counter of the router: ``wireguard``, ``other``,
        ``unreachable``, ``clear A>B``.  With GRO/GSO on the veths a "packet" can be a super-packet."""
        data = json.loads(self.internet.run("nft", "-j", "list", "table", "inet", "meshlab").stdout)
        out: dict[str, int] = {}
        for item in data.get("nftables", []):
            rule = item.get("rule")
            if not rule or "comment" not in rule:
                continue
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    out[rule["comment"]] = int(expr["counter"][unit])
        return out

    def cleartext_from(self, a: Node, b: Node) -> int:
        """Forwarded non-WireGuard packets from ``a`` to ``b``."""
        return self.counters().get(f"clear {a.name}>{b.name}", 0)

    def cleartext(self, a: Node, b: Node) -> int:
        """Forwarded non-WireGuard packets between ``a`` and ``b`` (both directions)."""
        c = self.counters()
        return c.get(f"clear {a.name}>{b.name}", 0) + c.get(f"clear {b.name}>{a.name}", 0)

    # --- processes --------------------------------------------------------------------------------

    def spawn(self, ns: Netns, name: str, argv: Sequence[str]) -> Proc:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(ns.argv(argv), stdout=out, stderr=subprocess.STDOUT, env=child_env(),
                                     cwd=str(self.workdir), start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

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
        """``kubespan get KIND -o json`` against ``node``'s agent."""
        res = run([PYTHON, "-m", "kubespan", "get", kind, "-o", "json", "--api-socket", str(node.api_socket)],
                  check=False, timeout=30)
        if res.returncode != 0:
            if check:
                raise LabError(f"kubespan get {kind} on {node.name} failed ({res.returncode}): {res.stderr.strip()}")
            return []
        try:
            return json_stream(res.stdout)  # talosctl's -o json: one object per resource
        except ValueError as exc:
            raise LabError(f"kubespan get {kind} on {node.name}: not JSON ({exc}): {res.stdout[:500]!r}") from None

    def get_table(self, node: Node, kind: str) -> str:
        return run([PYTHON, "-m", "kubespan", "get", kind, "-o", "table", "--api-socket",
                    str(node.api_socket)]).stdout

    def peer_statuses(self, node: Node) -> dict[str, dict[str, Any]]:
        """``label -> spec`` of ``node``'s peer statuses."""
        return {str(item["spec"].get("label")): item["spec"] for item in self.get(node, "peerstatuses")}

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

    def ping(self, node: Node, addr: str, *, count: int = 3, timeout: float = 20) -> bool:
        """``count`` echo replies from ``addr`` seen from ``node`` within ``timeout`` s (bounded retries)."""
        deadline = time.monotonic() + timeout
        got = 0
        while time.monotonic() < deadline and got < count:
            res = node.ns.run("ping", "-n", "-q", "-c", "1", "-W", "1", addr, check=False, timeout=10)
            if res.returncode == 0:
                got += 1
            else:
                time.sleep(0.2)
        return got >= count

    def transfer(self, src: Node, dst: Node, addr: str, nbytes: int, *, timeout: float = 120) -> Transfer:
        """Stream ``nbytes`` over TCP from ``src`` to ``addr`` (an address of ``dst``)."""
        port = str(20000 + secrets.randbelow(20000))
        recv = subprocess.Popen(dst.ns.argv([PYTHON, "-c", _RECEIVER, addr, port, str(timeout)]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert recv.stdout is not None
            first = recv.stdout.readline().decode().strip()
            if first != "listening":
                raise LabError(f"receiver did not start: {first} {recv.stderr.read().decode() if recv.stderr else ''}")
            sent = src.ns.run(PYTHON, "-c", _SENDER, addr, port, str(nbytes), str(timeout),
                              timeout=timeout + 10).stdout.split()
            out, err = recv.communicate(timeout=30)
            received = out.decode().split()
            if len(received) != 3 or len(sent) != 2:
                raise LabError(f"transfer failed: sender {sent} receiver {received} {err.decode()[-500:]}")
            return Transfer(int(sent[0]), sent[1], int(received[0]), received[1], float(received[2]))
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait(5)


_SENDER = r"""
import hashlib, socket, sys, time
host, port, total, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
block = bytearray(hashlib.sha512(b"kubespan").digest() * 1024)
h = hashlib.sha256()
deadline = time.monotonic() + timeout
while True:
    try:
        s = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("connect failed")
        time.sleep(0.2)
s.settimeout(timeout)
sent, i = 0, 0
while sent < total:
    block[0] = i & 0xFF
    chunk = bytes(block[: min(len(block), total - sent)])
    i += 1
    s.sendall(chunk)
    h.update(chunk)
    sent += len(chunk)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(sent, h.hexdigest())
"""

_RECEIVER = r"""
import hashlib, socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(1)
ls.settimeout(timeout)
print("listening", flush=True)
c, _ = ls.accept()
c.settimeout(timeout)
t0 = time.monotonic()
h = hashlib.sha256()
n = 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
dt = time.monotonic() - t0
c.close()
print(n, h.hexdigest(), round(dt, 6), flush=True)
"""
