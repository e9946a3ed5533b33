"""Scale benchmark of the KubeSpan agent (issue 15 item 9; not part of the test suite, asserts nothing).

    sudo .venv/bin/python bench/scale.py                       # 10, 30 and 50 nodes
    sudo .venv/bin/python bench/scale.py --nodes 10 --json /tmp/scale.json

For each mesh size N, one after the other, a fresh ``lab.mesh.Lab``: N node namespaces on the lab's
internet router (no per-pair nft counters), the discovery service (in memory) in the router namespace,
then all N ``kubespan agent`` processes spawned at once (Talos' 30 s reconcile interval unless
``--reconcile-interval`` says otherwise).  Measured, every wait bounded by its own timeout:

- **agents answer**: seconds from the first spawn until every agent answers on its API socket (its
  watch stream below opened).
- **all up**: seconds from the first spawn (and from "agents answer") until every node lists every
  other node in its KubeSpan peer statuses with state ``up``, at one moment.  The bench keeps one
  ``watch kubespanpeerstatuses`` stream open per agent (the request ``kubespan get -w
  kubespanpeerstatuses`` sends, read in this process by one thread per agent; ``MeshWatch``): each agent
  sends its current statuses and then an event per change, so the time is that of the event that made
  the last pair ``up``, and the agents answer no requests while the mesh forms.  Once all are up the
  streams are closed and ``lab.peer_statuses`` (the CLI) confirms it on every node.
- **all pings**: after "all up", every ordered pair (or ``--ping-sample`` random pairs) pings the
  other's KubeSpan ULA once (``ping -c 1 -W 2``): one ``ip netns exec`` per source node running
  ``xargs -P --ping-per-node``, at most ``--ping-sources`` source nodes at a time; failed pairs are
  retried in further rounds until ``--ping-timeout``.  Reported: pairs that answered the first time,
  seconds until every pair answered (from the start of the sweep and from the first spawn).
- **idle**: with the mesh up and nothing polling, ``--idle`` seconds of CPU (utime+stime+cutime+
  cstime from ``/proc/<pid>/stat``, as a percentage of one core) per agent and of the discovery
  service, and their RSS (``VmRSS`` from ``/proc/<pid>/status``) at the end of the window; also each
  agent's main thread alone (its event loop: kubespan and the WireGuard engine; the other threads are
  the native data plane's and gRPC's).  Also the discovery service's CPU seconds while the mesh formed.
- **per-node work** (figures that do not depend on how loaded the machine is): each agent's CPU
  seconds from its spawn until every agent answered and until all were up, and with ``--counters``,
  scraped from each agent's metrics endpoint (``--metrics-addr 127.0.0.1:METRICS_PORT`` in its
  namespace, read with ``curl`` after the idle window): reconcile passes, status passes by trigger and
  WireGuard keypairs created (a mesh where every pair shakes hands once creates N-1 per node).  Off by
  default: serving metrics costs each agent the prometheus_client import.

Before the first mesh the packages are byte-compiled (``compileall``), as an installed agent's are: with
``PYTHONDONTWRITEBYTECODE`` set, every agent would otherwise compile each changed module again.

The goals of issue 15 (50 nodes all up in <= 15 s from the spawn; idle agent <= 0.5 % of a core, the
busiest agent counts) are printed as met / MISSED.  Everything (agents, discovery service,
namespaces) is removed by ``Lab.close()`` on exit, on error and on SIGINT/SIGTERM/SIGHUP; logs go to a
temporary directory removed at the end unless ``--keep-logs`` (always kept after a failure).
"""

from __future__ import annotations

import argparse
import compileall
import concurrent.futures
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kubespan import api  # noqa: E402
from kubespan.api import AgentNotRunning  # noqa: E402
from kubespan.errors import KubespanError  # noqa: E402
from lab.mesh import Lab, LabError, Node, missing_requirements  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECT_RETRY = 0.1
HEADER_TIMEOUT = 60.0
METRICS_PORT = 9100
API_TIMEOUT = 5.0
UP_GOAL_NODES, UP_GOAL_S, IDLE_GOAL_PCT = 50, 15.0, 0.5


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Result:
    nodes: int
    setup_s: float = 0.0
    answer_s: float | None = None
    up_from_spawn_s: float | None = None
    up_from_answer_s: float | None = None
    pairs: int = 0
    pairs_pinged: int = 0
    pings_first_try: int = 0
    pings_ok: int = 0
    ping_sweep_s: float | None = None
    pings_from_spawn_s: float | None = None
    agent_cpu_pct: list[float] = field(default_factory=list)
    agent_loop_cpu_pct: list[float] = field(default_factory=list)
    """The same for each agent's main thread only (the rest: the native data plane's and gRPC's threads)."""
    agent_rss_kib: list[int] = field(default_factory=list)
    discovery_cpu_pct: float | None = None
    discovery_rss_kib: int | None = None
    discovery_cpu_forming_s: float | None = None
    agent_cpu_start_s: list[float] = field(default_factory=list)
    """CPU seconds per agent from its spawn until every agent answered."""
    agent_cpu_forming_s: list[float] = field(default_factory=list)
    """CPU seconds per agent from its spawn until all were up."""
    agent_reconciles: list[int] = field(default_factory=list)
    agent_status_passes: dict[str, list[int]] = field(default_factory=dict)
    agent_keypairs: list[int] = field(default_factory=list)
    up_timeline: list[tuple[float, int]] = field(default_factory=list)
    """(seconds after every agent answered, ordered pairs up) per poll round."""
    idle_window_s: float = 0.0
    loadavg_before: str = ""
    loadavg_after: str = ""
    error: str | None = None


# --- /proc ------------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of ``pid`` (all its threads and its reaped children), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def main_thread_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid``'s main thread (the agent's event loop: kubespan and the WireGuard engine)."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / CLK_TCK


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --- the agents' API ---------------------------------------------------------------------------------

class MeshWatch:
    """One ``watch kubespanpeerstatuses`` stream per agent (the request ``kubespan get -w
    kubespanpeerstatuses`` sends), read by one thread each: the agent sends its current statuses, then an
    event whenever one changes, so the bench sees every change without asking again.  Records when
    each agent's stream opened (it answers on its API socket) and the first moment every node showed
    every other node ``up`` at the same time, and the ordered pairs up after each change."""

    def __init__(self, nodes: list[Node], deadline: float) -> None:
        self.nodes = nodes
        self.names = {node.name for node in nodes}
        self.deadline = deadline
        self.lock = threading.Lock()
        self.states: dict[str, dict[str, str]] = {node.name: {} for node in nodes}
        self.up: dict[str, int] = {node.name: 0 for node in nodes}
        self.answered: dict[str, float] = {}
        self.all_up_at: float | None = None
        self.timeline: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self.changed = threading.Condition(self.lock)
        self.socks: dict[str, socket.socket] = {}
        self.stopping = False
        self.threads = [threading.Thread(target=self._follow, args=(node,), daemon=True) for node in nodes]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _opened(self, name: str) -> Any:
        def keep(sock: socket.socket) -> None:
            with self.lock:
                self.socks[name] = sock
        return keep

    def _follow(self, node: Node) -> None:
        while not self.stopping and time.monotonic() < self.deadline:
            events = api.watch(str(node.api_socket), "kubespanpeerstatuses", timeout=HEADER_TIMEOUT,
                               on_open=self._opened(node.name))
            try:
                header = next(events, {})
            except AgentNotRunning:  # not listening yet
                time.sleep(CONNECT_RETRY)
                continue
            except KubespanError as exc:
                self._failed(node, exc)
                return
            break
        else:
            return
        try:
            if "type" not in header:
                raise KubespanError(f"no watch header: {header}")
            with self.changed:
                self.answered[node.name] = time.monotonic()
                self.changed.notify_all()
            for event in events:
                resource = event.get("resource")
                if resource is None:
                    continue
                spec = resource["spec"]
                with self.changed:
                    states = self.states[node.name]
                    if event["event"] == "destroyed":
                        states.pop(str(spec.get("label")), None)
                    else:
                        states[str(spec.get("label"))] = str(spec.get("state"))
                    self._count(node.name)
        except KubespanError as exc:
            self._failed(node, exc)
        finally:
            events.close()

    def _failed(self, node: Node, exc: Exception) -> None:
        if not self.stopping:
            with self.changed:
                self.errors.append(f"{node.name}: {exc}")
                self.changed.notify_all()

    def _count(self, name: str) -> None:
        states = self.states[name]
        up = sum(1 for other in self.names - {name} if states.get(other) == "up")
        if up == self.up[name]:
            return
        self.up[name] = up
        now = time.monotonic()
        total = sum(self.up.values())
        self.timeline.append((now, total))
        if self.all_up_at is None and total == len(self.nodes) * (len(self.nodes) - 1):
            self.all_up_at = now
        self.changed.notify_all()

    def wait(self, done: Any, what: str) -> float:
        """Until ``done()`` (called with the lock held) or the deadline; the time it became true."""
        last_report = time.monotonic()
        with self.changed:
            while not done():
                now = time.monotonic()
                if self.errors:
                    raise LabError(f"watch failed: {'; '.join(self.errors[:5])}")
                if now > self.deadline:
                    raise LabError(f"timed out waiting for {what}: {self.progress()}")
                if now - last_report > 5:
                    say(f"   {self.progress()}")
                    last_report = now
                self.changed.wait(0.5)
                self.changed.release()
                try:
                    check_agents(self.nodes)
                finally:
                    self.changed.acquire()
            return time.monotonic()

    def progress(self) -> str:
        n = len(self.nodes)
        return (f"{len(self.answered)}/{n} agents answer, {sum(self.up.values())}/{n * (n - 1)} ordered pairs up, "
                f"{sum(1 for v in self.up.values() if v == n - 1)}/{n} nodes see all up")

    def close(self) -> None:
        self.stopping = True
        with self.lock:
            socks = list(self.socks.values())
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self.threads:
            thread.join(API_TIMEOUT)


def check_agents(nodes: list[Node]) -> None:
    for node in nodes:
        if node.agent is None or not node.agent.alive():
            tail = node.agent.log_text(2000) if node.agent else ""
            raise LabError(f"agent {node.name} is not running: {tail}")


def agent_counters(node: Node) -> dict[str, float]:
    """A few samples of ``node``'s agent metrics ({} if they cannot be read)."""
    res = node.ns.run("curl", "-s", "-m", "10", f"http://127.0.0.1:{METRICS_PORT}/metrics", check=False, timeout=20)
    out: dict[str, float] = {}
    for line in res.stdout.splitlines():
        if line.startswith(("kubespan_reconcile_total{", "kubespan_status_passes_total{", "wgpy_keypairs_created_total")):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


# --- pings ---------------------------------------------------------------------------------------

def ping_from(node: Node, addrs: list[str], per_node: int, timeout: float) -> set[str]:
    """The addresses of ``addrs`` that answered one echo request from ``node`` (``per_node`` at a time)."""
    script = 'ping -n -q -c 1 -W 2 "$0" >/dev/null 2>&1 && echo "$0"; exit 0'
    res = node.ns.run("xargs", "-P", str(per_node), "-n", "1", "sh", "-c", script, input="\n".join(addrs) + "\n",
                      check=False, timeout=timeout)
    return {line.strip() for line in res.stdout.splitlines() if line.strip()}


def ping_sweep(lab: Lab, pairs: list[tuple[Node, Node]], args: argparse.Namespace, res: Result) -> None:
    addr = {n.name: lab.kubespan_address(n) for n in lab.nodes}
    pending = list(pairs)
    start = time.monotonic()
    first = True
    rounds = 0
    while pending and rounds < 50:
        rounds += 1
        by_src: dict[str, list[str]] = {}
        src_node: dict[str, Node] = {}
        for a, b in pending:
            by_src.setdefault(a.name, []).append(addr[b.name])
            src_node[a.name] = a
        left = max(5.0, args.ping_timeout - (time.monotonic() - start))
        ok: set[tuple[str, str]] = set()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.ping_sources) as pool:
            futures = {pool.submit(ping_from, src_node[s], dsts, args.ping_per_node, left): s
                       for s, dsts in by_src.items()}
            for fut in concurrent.futures.as_completed(futures, timeout=left + 10):
                try:
                    got = fut.result()
                except Exception as exc:  # noqa: BLE001 - a timed-out source counts as failed pings
                    say(f"   ping from {futures[fut]}: {exc}")
                    continue
                ok.update((futures[fut], a) for a in got)
        pending = [(a, b) for a, b in pending if (a.name, addr[b.name]) not in ok]
        if first:
            res.pings_first_try = len(pairs) - len(pending)
            first = False
        if pending and time.monotonic() - start > args.ping_timeout:
            break
        if pending:
            say(f"   ping round {rounds}: {len(pending)} pairs still silent")
            time.sleep(0.5)
    res.pings_ok = len(pairs) - len(pending)
    if not pending:
        res.ping_sweep_s = time.monotonic() - start


# --- one mesh -------------------------------------------------------------------------------------

def measure(n: int, args: argparse.Namespace, workdir: Path) -> Result:
    res = Result(nodes=n)
    res.loadavg_before = loadavg()
    t_setup = time.monotonic()
    with Lab(workdir / f"n{n}", prefix="kssc") as lab:
        try:
            nodes = [lab.add_node(f"n{i:02d}", count_pairs=False) for i in range(1, n + 1)]
            lab.start_discovery()
            res.setup_s = time.monotonic() - t_setup
            assert lab.discovery is not None
            dpid = lab.discovery.popen.pid
            say(f"{n} nodes: namespaces and discovery service ready in {res.setup_s:.1f} s; spawning {n} agents")
            d_cpu0 = cpu_seconds(dpid)
            t_spawn = time.monotonic()
            for node in nodes:
                lab.start_agent(node, wait=0, reconcile_interval=args.reconcile_interval,
                                log_level=args.log_level,
                                extra_args=["--metrics-addr", f"127.0.0.1:{METRICS_PORT}"] if args.counters else [])
            agent_pids = [node.agent.popen.pid for node in nodes if node.agent is not None]
            watch = MeshWatch(nodes, t_spawn + args.start_timeout + args.up_timeout)
            watch.start()
            try:
                t_answer = watch.wait(lambda: len(watch.answered) == n, "agents answer")
                t_answer = max(watch.answered.values())
                res.agent_cpu_start_s = [cpu_seconds(pid) for pid in agent_pids]
                res.answer_s = t_answer - t_spawn
                say(f"   every agent answers {res.answer_s:.1f} s after the first spawn")
                watch.wait(lambda: watch.all_up_at is not None, "every node to see every peer up")
                res.agent_cpu_forming_s = [cpu_seconds(pid) for pid in agent_pids]
                res.discovery_cpu_forming_s = cpu_seconds(dpid) - d_cpu0
                assert watch.all_up_at is not None
                t_up = watch.all_up_at
                res.up_timeline = [(round(t - t_answer, 3), count) for t, count in watch.timeline]
            finally:
                watch.close()
            res.up_from_spawn_s, res.up_from_answer_s = t_up - t_spawn, t_up - t_answer
            names = {node.name for node in nodes}
            say(f"   all up {res.up_from_spawn_s:.1f} s after the first spawn ({res.up_from_answer_s:.1f} s "
                "after every agent answered); confirming with kubespan get")
            for node in nodes:
                statuses = lab.peer_statuses(node)
                bad = [o for o in names - {node.name} if statuses.get(o, {}).get("state") != "up"]
                if bad:
                    raise LabError(f"kubespan get on {node.name}: not up: {bad[:5]}")

            pairs = [(a, b) for a in nodes for b in nodes if a is not b]
            res.pairs = len(pairs)
            if args.ping_sample and args.ping_sample < len(pairs):
                pairs = random.sample(pairs, args.ping_sample)
            res.pairs_pinged = len(pairs)
            say(f"   pinging {len(pairs)} of {res.pairs} ordered pairs over their KubeSpan addresses")
            ping_sweep(lab, pairs, args, res)
            if res.ping_sweep_s is not None:
                res.pings_from_spawn_s = time.monotonic() - t_spawn
            say(f"   {res.pings_ok}/{len(pairs)} pairs answered ({res.pings_first_try} the first time); "
                f"idle window {args.idle:g} s")

            check_agents(nodes)
            pids = [node.agent.popen.pid for node in nodes if node.agent is not None]
            time.sleep(2)  # the last echo replies and the sweep's processes are gone
            c0 = {pid: cpu_seconds(pid) for pid in pids + [dpid]}
            m0 = {pid: main_thread_cpu_seconds(pid) for pid in pids}
            w0 = time.monotonic()
            time.sleep(args.idle)
            c1 = {pid: cpu_seconds(pid) for pid in pids + [dpid]}
            m1 = {pid: main_thread_cpu_seconds(pid) for pid in pids}
            wall = time.monotonic() - w0
            res.idle_window_s = wall
            res.agent_cpu_pct = [100 * (c1[p] - c0[p]) / wall for p in pids]
            res.agent_loop_cpu_pct = [100 * (m1[p] - m0[p]) / wall for p in pids]
            res.agent_rss_kib = [rss_kib(p) for p in pids]
            res.discovery_cpu_pct = 100 * (c1[dpid] - c0[dpid]) / wall
            res.discovery_rss_kib = rss_kib(dpid)
            check_agents(nodes)
            for node in nodes if args.counters else []:
                got = agent_counters(node)
                res.agent_reconciles.append(int(got.get('kubespan_reconcile_total{result="ok"}', -1)))
                for trigger in ("handshake", "timeout"):
                    res.agent_status_passes.setdefault(trigger, []).append(
                        int(got.get(f'kubespan_status_passes_total{{trigger="{trigger}"}}', -1)))
                res.agent_keypairs.append(int(next((v for k, v in got.items()
                                                    if k.startswith("wgpy_keypairs_created_total")), -1)))
        except (LabError, OSError, concurrent.futures.TimeoutError) as exc:
            res.error = str(exc)[:2000]
            say(f"   FAILED: {res.error}")
            say(lab.logs(tail=1500)[-6000:])
        finally:
            say(f"   cleaning up {n} agents and {len(lab.namespaces)} namespaces")
    res.loadavg_after = loadavg()
    return res


# --- report ---------------------------------------------------------------------------------------

def fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def med_max(values: list[float] | list[int], spec: str = ".2f") -> str:
    got = [v for v in values if v >= 0]
    if not got:
        return "n/a"
    return f"{format(statistics.median(got), spec)} / {format(max(got), spec)}"


def work_table(results: list[Result]) -> list[str]:
    """Per-node work, median / max over the agents (independent of the machine's load)."""
    head = ["nodes", "agent CPU s to answer", "agent CPU s to all up", "idle CPU % main thread",
            "reconciles", "status passes (handshake)", "status passes (timeout)", "keypairs created (ideal N-1)"]
    lines = ["Per agent, median / max:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        passes = r.agent_status_passes
        lines.append("| " + " | ".join([
            str(r.nodes), med_max(r.agent_cpu_start_s), med_max(r.agent_cpu_forming_s),
            med_max(r.agent_loop_cpu_pct), med_max(r.agent_reconciles, ".0f"), med_max(passes.get("handshake", []), ".0f"),
            med_max(passes.get("timeout", []), ".0f"), med_max(r.agent_keypairs, ".0f")]) + " |")
    return lines


def table(results: list[Result], args: argparse.Namespace) -> str:
    head = ["nodes", "setup s", "agents answer s", "all up s (from spawn)", "all up s (from answer)",
            "pairs pinged", "1st try ok", "all ping s (sweep / from spawn)", "agent idle CPU % med / max",
            "agent RSS MiB med / max", "discovery idle CPU %", "discovery RSS MiB", "discovery CPU s forming"]
    rows = []
    for r in results:
        cpu, rss = r.agent_cpu_pct, [k / 1024 for k in r.agent_rss_kib]
        rows.append([
            str(r.nodes), fmt(r.setup_s), fmt(r.answer_s), fmt(r.up_from_spawn_s), fmt(r.up_from_answer_s),
            f"{r.pairs_pinged}/{r.pairs}", str(r.pings_first_try),
            f"{fmt(r.ping_sweep_s)} / {fmt(r.pings_from_spawn_s)}" if r.ping_sweep_s is not None
            else f"{r.pings_ok} ok, not all",
            f"{statistics.median(cpu):.2f} / {max(cpu):.2f}" if cpu else "n/a",
            f"{statistics.median(rss):.1f} / {max(rss):.1f}" if rss else "n/a",
            fmt(r.discovery_cpu_pct, ".2f"),
            fmt(None if r.discovery_rss_kib is None else r.discovery_rss_kib / 1024),
            fmt(r.discovery_cpu_forming_s, ".2f")])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    lines += work_table(results)
    lines.append("")
    lines.append("Targets (issue 15 item 9):")
    big = [r for r in results if r.nodes == UP_GOAL_NODES]
    for r in big:
        if r.up_from_spawn_s is None:
            lines.append(f"- {UP_GOAL_NODES} nodes all up in <= {UP_GOAL_S:g} s: MISSED (never all up: {r.error})")
        else:
            verdict = "met" if r.up_from_spawn_s <= UP_GOAL_S else "MISSED"
            lines.append(f"- {UP_GOAL_NODES} nodes all up in <= {UP_GOAL_S:g} s from the spawn: {verdict} "
                         f"({r.up_from_spawn_s:.1f} s; {r.up_from_answer_s:.1f} s from every agent answering)")
    if not big:
        lines.append(f"- {UP_GOAL_NODES} nodes all up in <= {UP_GOAL_S:g} s: not measured in this run")
    for r in results:
        if r.agent_cpu_pct:
            worst = max(r.agent_cpu_pct)
            verdict = "met" if worst <= IDLE_GOAL_PCT else "MISSED"
            lines.append(f"- {r.nodes} nodes, idle agent <= {IDLE_GOAL_PCT:g} % of a core (the busiest): "
                         f"{verdict} (max {worst:.2f} %, median {statistics.median(r.agent_cpu_pct):.2f} %)")
    lines.append("")
    lines.append("Notes:")
    lines.append(f"- {os.cpu_count()} CPUs, shared with other sessions' test runs: load average before / after "
                 "each size: " + "; ".join(f"{r.nodes}: {r.loadavg_before} / {r.loadavg_after}" for r in results))
    lines.append(f"- reconcile interval {args.reconcile_interval:g} s; idle window {args.idle:g} s; "
                 f"one echo request per pair (ping -W 2), failed pairs retried until {args.ping_timeout:g} s")
    lines += [f"- {r.nodes} nodes FAILED: {r.error.splitlines()[0][:300]}" for r in results if r.error]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------

def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def sizes(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of node counts: {text!r}") from None
    if not values or any(not 2 <= v <= 200 for v in values):
        raise argparse.ArgumentTypeError("node counts must be 2-200")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=sizes, default=[10, 30, 50], help="mesh sizes, comma-separated (10,30,50)")
    p.add_argument("--reconcile-interval", type=float, default=30.0, help="agent reconcile interval s (Talos: 30)")
    p.add_argument("--idle", type=float, default=20.0, help="idle measurement window s (20)")
    p.add_argument("--start-timeout", type=float, default=180.0, help="s for every agent to answer (180)")
    p.add_argument("--up-timeout", type=float, default=180.0, help="s for every peer to be up (180)")
    p.add_argument("--ping-timeout", type=float, default=90.0, help="s for every pair to ping (90)")
    p.add_argument("--ping-sample", type=int, default=0, help="ping this many random pairs (0: all)")
    p.add_argument("--ping-sources", type=int, default=4, help="source nodes pinging at a time (4)")
    p.add_argument("--ping-per-node", type=int, default=8, help="pings in flight per source node (8)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--counters", action="store_true",
                   help="serve each agent's metrics and report its reconcile/status-pass/keypair counts")
    p.add_argument("--json", type=Path, help="write the raw figures here")
    p.add_argument("--keep-logs", action="store_true")
    args = p.parse_args(argv)
    if args.idle <= 0 or args.ping_sources < 1 or args.ping_per_node < 1 or args.ping_sample < 0:
        p.error("--idle must be > 0, --ping-sources and --ping-per-node >= 1, --ping-sample >= 0")
    problems = missing_requirements()
    if problems:
        for problem in problems:
            print(f"bench/scale.py: {problem}", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for package in ("kubespan", "wgpy"):
        compileall.compile_dir(str(REPO / package), quiet=1)
    workdir = Path(tempfile.mkdtemp(prefix="kubespan-scale-"))
    results: list[Result] = []
    interrupted = False
    try:
        for n in args.nodes:
            results.append(measure(n, args, workdir))
    except KeyboardInterrupt as exc:
        interrupted = True
        say(f"interrupted ({exc or 'SIGINT'}); cleaned up")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        failed = interrupted or any(r.error for r in results)
        if failed or args.keep_logs:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if results:
        print(table(results, args))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                                  for k, v in vars(args).items()},
                                         "results": [asdict(r) for r in results]}, indent=2) + "\n")
    return 130 if interrupted else (1 if any(r.error for r in results) else 0)


if __name__ == "__main__":
    sys.exit(main())
