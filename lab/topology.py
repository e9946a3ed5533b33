"""The lab's network: an "internet" router, NAT routers and nodes in namespaces, with nftables counters.

Contract: ``Topology`` builds, inside network namespaces it creates (names ``<prefix>-<random>-<role>``),
the underlay for real ``kubespan`` processes and removes all of it in ``close()`` (also after a failure or
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
- ``block_pair(a, b)`` drops UDP between two nodes' public addresses only (each still reaches everyone
  else); ``unblock_pairs()`` lifts every such block: a direct path that appears later.
- ``capture(node, dev)`` runs ``tcpdump`` on a device inside a node's namespace until the context ends
  and yields the decoded packet lines (``Capture.lines``): what that interface saw.

A topology registers itself (owner PID) in ``REGISTRY``; creating one first sweeps the namespaces and
processes of registered labs whose owner died without cleaning up (``sweep_stale_labs``).

Processes run inside their namespace with ``ip netns exec`` (``spawn``), this checkout on ``PYTHONPATH``;
logs go to files in ``workdir``.  Waits are bounded (``wait_until``).  Commands and namespaces come from
``lab.netns``.  Not installed with the packages; must not import pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kubespan.lock import LOCK_DIR

from .netns import LabError, Netns, stop_process
from .netns import run as _run

DISCOVERY_ADDR = "100.64.0.1"
UNREACHABLE_PREFIX = "100.64.250.0/24"
"""The router answers every packet to this prefix with "unreachable" (after counting it)."""
WG_PORT = 51820
PYTHON = sys.executable
PKG_PARENT = str(Path(__file__).resolve().parents[1])
REQUIRED_TOOLS = ("ip", "nft")
REGISTRY = Path("/run/kubespan-netlab")
"""One file per live lab (``<prefix>-<tag>``, the owner's PID) so a later lab can sweep a dead one's."""


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
    """``lab.netns.run`` with the lab's child environment (this checkout on ``PYTHONPATH``)."""
    return _run(cmd, check=check, timeout=timeout, input=input, env=child_env())


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
            Netns(name).delete()
            removed.append(name)
        with contextlib.suppress(OSError):
            entry.unlink()
    return removed


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _remove_unheld_lock(path: str) -> None:
    """Remove a lock file nobody holds (we take its lock first: a new namespace may reuse the inode)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        finally:
            os.close(fd)


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
        return stop_process(self.popen, timeout)


@dataclasses.dataclass
class Capture:
    """What ``Topology.capture`` saw: tcpdump's one-line decode of each packet (filled when it ends)."""

    pcap: Path
    lines: list[str] = dataclasses.field(default_factory=list)


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


class Topology:
    """The namespaces, links and processes of one lab; use as a context manager or call ``close()``."""

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

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_ns(self, role: str) -> Netns:
        ns = Netns.create(f"{self.prefix}-{self.tag}-{role}", env=child_env())
        self.namespaces.append(ns)
        return ns

    def close(self) -> None:
        """Stop every process (agents first), then delete the namespaces and the interface lock files an
        agent killed with SIGKILL left for them (``kubespan.lock``).  Never raises."""
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        for ns in self.namespaces:
            inode = None
            with contextlib.suppress(OSError):
                inode = os.stat(f"/run/netns/{ns.name}").st_ino
            ns.delete()
            if inode is not None:
                _remove_unheld_lock(os.path.join(LOCK_DIR, f"kubespan.netns-{inode}.lock"))
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
            "  chain pairs { }\n"
            "  chain prerouting {\n"
            "    type filter hook prerouting priority 0; policy accept;\n"
            f"    ip daddr {UNREACHABLE_PREFIX} counter comment \"unreachable\"\n"
            "  }\n"
            "  chain forward {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            "    jump block\n"
            "    jump pairs\n"
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

    def add_node(self, name: str, *, nat: NatRouter | None = None, count_pairs: bool = True) -> Node:
        """A node namespace attached to the internet router, or to ``nat``'s LAN.  ``count_pairs=False``
        adds no ``clear A>B`` counters for it (one nft rule per ordered pair: a 50-node lab would add 2,450
        of them one by one; ``bench/scale.py`` does without)."""
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
        for other in self.nodes if count_pairs else ():
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

    def block_pair(self, a: Node, b: Node) -> None:
        """The router drops UDP between ``a`` and ``b`` (both directions); other traffic still flows."""
        for src, dst in ((a, b), (b, a)):
            self.internet.run("nft", "add", "rule", "inet", "meshlab", "pairs", "ip", "saddr", src.public_addr,
                              "ip", "daddr", dst.public_addr, "meta", "l4proto", "udp", "drop")

    def unblock_pairs(self) -> None:
        """Lift every ``block_pair``."""
        self.internet.run("nft", "flush", "chain", "inet", "meshlab", "pairs")

    @contextlib.contextmanager
    def capture(self, node: Node, dev: str, expression: Sequence[str] = ()) -> Iterator[Capture]:
        """``tcpdump -i dev`` in ``node``'s namespace for the duration of the block; the lines it decoded
        are in the yielded ``Capture`` afterwards (also when the block fails)."""
        if shutil.which("tcpdump") is None:
            raise LabError("tcpdump not found in PATH (Debian package tcpdump)")
        name = f"tcpdump-{node.name}-{dev}-{secrets.token_hex(2)}"
        pcap = self.workdir / f"{name}.pcap"
        proc = self.spawn(node.ns, name,
                          ["tcpdump", "-i", dev, "-n", "-U", "--immediate-mode", "-w", str(pcap), *expression])
        result = Capture(pcap)
        try:
            wait_until(lambda: "listening on" in proc.log_text() or not proc.alive(), 15,
                       f"tcpdump on {node.name} {dev} to start", interval=0.2)
            if not proc.alive():
                raise LabError(f"tcpdump on {node.name} {dev} exited: {proc.log_text(2000)}")
            yield result
        finally:
            proc.stop(5)
            if pcap.exists():
                res = run(["tcpdump", "-r", str(pcap), "-n"], check=False, timeout=30)
                result.lines = [line for line in res.stdout.splitlines() if line.strip()]

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

    # --- processes and traffic --------------------------------------------------------------------------------

    def spawn(self, ns: Netns, name: str, argv: Sequence[str]) -> Proc:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(ns.argv(argv), stdout=out, stderr=subprocess.STDOUT, env=child_env(),
                                     cwd=str(self.workdir), start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc


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
