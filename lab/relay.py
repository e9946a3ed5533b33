"""The relay lab: three wgpy nodes A, R, P on one bridge, A and P blocked from each other (wgpy.relay).

Contract: ``RelayLab(tag, logdir, native=...)`` creates namespaces ``<tag>-{a,r,p,sw}`` (a bridge in ``sw``,
one veth per node, underlay ``10.237.0.{1,2,3}/24``), starts ``lab.relaynode`` in each (TUN ``wr<tag><n>``,
tunnel ``10.238.0.{1,2,3}/24``, relay key ``KEY``, R serving) and configures them: A and P each have R as a
direct peer and R has both; A has P "via R" (relayed, probing P's direct endpoint when ``probe``), P has A
at A's direct endpoint.  ``block()`` drops every datagram between A's and P's underlay addresses in A's
namespace (nft table ``relaylab``, input and output), ``unblock()`` removes it.  Each node serves its UAPI
socket (``/var/run/wireguard/<ifname>.sock``, so ``wg show`` works in its namespace).  ``node.cmd(...)`` sends one
``lab.relaynode`` command and returns its answer.  ``close()`` stops the nodes and deletes the namespaces
(also after a failed start); nothing leaves the namespaces.  Not installed; needs root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lab.netns import LabError, Netns, run, stop_process
from wgpy.keys import PrivateKey

REPO = Path(__file__).resolve().parents[1]
KEY = bytes(range(0x40, 0x60))
"""The lab's relay key (a kubespan agent derives its own from the cluster secret)."""
NAMES = ("a", "r", "p")
UNDER = {"a": "10.237.0.1", "r": "10.237.0.2", "p": "10.237.0.3"}
TUNNEL = {"a": "10.238.0.1", "r": "10.238.0.2", "p": "10.238.0.3"}
PORTS = {"a": 51901, "r": 51902, "p": 51903}
MTU = 1420
SOCK_DIR = Path("/var/run/wireguard")


@dataclasses.dataclass
class Node:
    name: str
    ns: Netns
    ifname: str
    key: PrivateKey
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pub(self) -> str:
        return self.key.public_key().to_base64()

    @property
    def endpoint(self) -> list[Any]:
        return [UNDER[self.name], PORTS[self.name]]

    def cmd(self, op: str, **args: Any) -> dict[str, Any]:
        """One command, one answer (``LabError`` if the node died or answered an error)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError as exc:
            raise LabError(f"node {self.name}: {exc}: {self.log_tail()}") from exc
        if not line:
            raise LabError(f"node {self.name} exited: {self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise LabError(f"node {self.name}: {answer['error']}")
        return answer

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-n:]
        return ""


class RelayLab:
    """See the module contract."""

    def __init__(self, tag: str, logdir: Path, *, native: bool = True, probe: bool = True) -> None:
        self.tag = tag
        self.logdir = logdir
        self.native = native
        self.namespaces: list[Netns] = []
        self.nodes: dict[str, Node] = {}
        try:
            self._underlay()
            for i, name in enumerate(NAMES):
                self._start(name, i + 1)
            self._configure(probe)
        except BaseException:
            self.close()
            raise

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def ns(self, name: str) -> Netns:
        return next(ns for ns in self.namespaces if ns.name.endswith(f"-{name}"))

    def _underlay(self) -> None:
        sw = Netns.create(f"{self.tag}-sw")
        self.namespaces.append(sw)
        sw.run("ip", "link", "add", "br0", "type", "bridge")
        sw.run("ip", "link", "set", "br0", "up")
        for name in NAMES:
            ns = Netns.create(f"{self.tag}-{name}")
            self.namespaces.append(ns)
            run(["ip", "link", "add", "eth0", "netns", ns.name, "type", "veth", "peer", "name", f"p{name}",
                 "netns", sw.name])
            sw.run("ip", "link", "set", f"p{name}", "master", "br0")
            sw.run("ip", "link", "set", f"p{name}", "up")
            ns.run("ip", "addr", "add", f"{UNDER[name]}/24", "dev", "eth0")
            ns.run("ip", "link", "set", "eth0", "up")

    def _start(self, name: str, n: int) -> None:
        ns = self.ns(name)
        ifname = f"wr{self.tag[-6:]}{n}"[:15]
        key = PrivateKey.generate(os.urandom)
        log = self.logdir / f"relaynode-{name}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO), WGPY_FASTPATH="1" if self.native else "0")
        with open(log, "wb") as err:
            proc = ns.popen([sys.executable, "-m", "lab.relaynode", ifname, key.to_base64(), str(PORTS[name])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, cwd=str(REPO))
        node = Node(name, ns, ifname, key, proc, log)
        self.nodes[name] = node
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if not ready:
            raise LabError(f"node {name} did not start: {node.log_tail()}")
        if json.loads(ready)["native"] != self.native:
            raise LabError(f"node {name}: wanted native={self.native}, got {ready!r}")
        ns.run("ip", "link", "set", ifname, "mtu", str(MTU))
        ns.run("ip", "addr", "add", f"{TUNNEL[name]}/24", "dev", ifname)
        ns.run("ip", "link", "set", ifname, "up")

    def _configure(self, probe: bool) -> None:
        a, r, p = self["a"], self["r"], self["p"]
        for node in (a, r, p):
            node.cmd("relay", key=KEY.hex(), serve=node is r)
        for x, y in ((a, r), (r, a), (p, r), (r, p)):
            x.cmd("peer", pub=y.pub, endpoint=y.endpoint, allowed=[f"{TUNNEL[y.name]}/32"])
        a.cmd("peer", pub=p.pub, endpoint=r.endpoint, relayed=True, probe=p.endpoint if probe else None,
              allowed=[f"{TUNNEL['p']}/32"])
        p.cmd("peer", pub=a.pub, endpoint=a.endpoint, allowed=[f"{TUNNEL['a']}/32"])

    def block(self) -> None:
        ns, other = self.ns("a"), UNDER["p"]
        ns.run("nft", "-f", "-", input=(
            "table inet relaylab {\n"
            f"  chain in {{ type filter hook input priority 0; ip saddr {other} drop; }}\n"
            f"  chain out {{ type filter hook output priority 0; ip daddr {other} drop; }}\n"
            "}\n"))

    def unblock(self) -> None:
        self.ns("a").run("nft", "delete", "table", "inet", "relaylab")

    def peer(self, me: str, other: str) -> dict[str, Any]:
        peers: dict[str, dict[str, Any]] = self[me].cmd("stats")["peers"]
        return peers[self[other].pub]

    def close(self) -> None:
        """Stop the nodes (stdin closed: each closes its interface and UAPI socket; SIGTERM/SIGKILL after 10 s),
        remove a socket a killed node left, delete the namespaces."""
        for node in self.nodes.values():
            with contextlib.suppress(OSError):
                if node.proc.stdin is not None:
                    node.proc.stdin.close()
        for node in self.nodes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(10)
            stop_process(node.proc, 10)
            with contextlib.suppress(OSError):
                (SOCK_DIR / f"{node.ifname}.sock").unlink()
        for ns in self.namespaces:
            ns.delete()
        self.namespaces.clear()
