"""``python -m lab.demo``: a KubeSpan mesh of real agents in network namespaces, end to end.

Contract: as root, builds a ``lab.mesh.Lab`` (an "internet" router namespace running the
self-hosted discovery service, N node namespaces behind it), generates one cluster config with
``gen config --with-kubespan`` semantics, starts one ``kubespan agent`` per node, waits (bounded) until
every node sees every other peer ``up``, prints ``kubespan get peerstatuses`` (table) for each node,
streams a TCP transfer between two nodes' KubeSpan addresses (rate and matching SHA-256), and shows the
router's counters (only WireGuard UDP crossed the underlay between nodes).  Everything it created is
removed at the end, also on failure, Ctrl-C or SIGTERM.  Exit 0 on success, 1 on failure (with the tail
of the logs), 2 when the machine cannot run it (not root, no ``ip``/``nft``, no ``/dev/net/tun``).
It needs neither wireguard-go nor the kernel WireGuard module: the data plane is wgpy.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from .mesh import Lab, LabError, missing_requirements


def _say(text: str = "") -> None:
    print(text, flush=True)


def _step(text: str) -> None:
    _say(f"\n== {text}")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_mesh(lab: Lab, timeout: float) -> float:
    """Wait for the full mesh, printing progress; the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    last_print = 0.0
    while True:
        for node in lab.nodes:
            if node.agent is None or not node.agent.alive():
                raise LabError(f"the agent of {node.name} exited")
        try:
            if lab.meshed(lab.nodes):
                return time.monotonic() - start
        except LabError:
            pass
        now = time.monotonic()
        if now >= deadline:
            raise LabError(f"the mesh did not come up within {timeout:.0f}s\n{lab.describe(lab.nodes)}")
        if now - last_print >= 5:
            last_print = now
            up = 0
            for node in lab.nodes:
                try:
                    up += sum(1 for s in lab.peer_statuses(node).values() if s.get("state") == "up")
                except LabError:
                    pass
            total = len(lab.nodes) * (len(lab.nodes) - 1)
            _say(f"   {now - start:5.1f}s: {up}/{total} peer statuses up")
        time.sleep(0.5)


def run_demo(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kubespan-demo-"))
    lab: Lab | None = None
    ok = False
    try:
        _step(f"topology: an internet router namespace + {args.nodes} node namespaces (work dir {workdir})")
        lab = Lab(workdir, prefix="ksdemo")
        nodes = [lab.add_node(f"node-{i}") for i in range(1, args.nodes + 1)]
        url = lab.start_discovery()
        _say(f"   discovery service  {url}  (namespace {lab.internet.name})")
        for node in nodes:
            _say(f"   {node.name:<8} underlay {node.addr:<12} KubeSpan {lab.kubespan_address(node):<40} "
                 f"(namespace {node.ns.name})")

        _step("starting one kubespan agent per node (one cluster config, per-node hostname)")
        for node in nodes:
            lab.start_agent(node, reconcile_interval=args.reconcile_interval)
            _say(f"   {node.name}: agent pid {node.agent.popen.pid if node.agent else '?'}")
        took = _wait_mesh(lab, args.timeout)
        _say(f"   full mesh: every node sees {len(nodes) - 1} peers up after {took:.1f}s")

        for node in nodes:
            _step(f"kubespan get peerstatuses   (on {node.name})")
            _say(lab.get_table(node, "peerstatuses").rstrip())

        src, dst = nodes[0], nodes[1]
        dst_addr = lab.kubespan_address(dst)
        nbytes = args.megabytes * 1_000_000
        _step(f"TCP transfer: {args.megabytes} MB from {src.name} to {dst.name} at [{dst_addr}] through KubeSpan")
        before, before_bytes = lab.counters(), lab.counters("bytes")
        transfer = lab.transfer(src, dst, dst_addr, nbytes, timeout=args.transfer_timeout)
        after, after_bytes = lab.counters(), lab.counters("bytes")
        _say(f"   sent     {transfer.sent:>12,} bytes  sha256 {transfer.sent_sha256}")
        _say(f"   received {transfer.received:>12,} bytes  sha256 {transfer.received_sha256}")
        _say(f"   {transfer.seconds:.2f}s, {transfer.mbit_per_s:.1f} Mbit/s  "
             f"checksum {'MATCHES' if transfer.ok else 'DIFFERS'}")
        if not transfer.ok:
            raise LabError("the transfer was corrupted or incomplete")

        _step("what the underlay router forwarded between the nodes during the transfer")
        wg = after.get("wireguard", 0) - before.get("wireguard", 0)
        wg_bytes = after_bytes.get("wireguard", 0) - before_bytes.get("wireguard", 0)
        clear = sum(v for k, v in after.items() if k.startswith("clear "))
        _say(f"   WireGuard UDP 51820 -> 51820: {wg_bytes:,} bytes in {wg:,} (GRO-merged) packets")
        _say(f"   anything else between the nodes since the start: {clear + after.get('other', 0)} packets")
        ok = True
        return 0
    except KeyboardInterrupt:
        _say("\ninterrupted")
        return 130
    except LabError as exc:
        _say(f"\nFAILED: {exc}")
        if lab is not None:
            _say("\n--- logs (tail) ---")
            _say(lab.logs(tail=3000))
        return 1
    finally:
        _step("cleaning up (agents, discovery service, namespaces)")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if lab is not None:
            lab.close()
        if ok and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            _say(f"   logs kept in {workdir}")
        _say("   done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes (2-20, default 3)")
    parser.add_argument("--megabytes", type=int, default=50, help="size of the TCP transfer (default 50)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the mesh (default 120)")
    parser.add_argument("--transfer-timeout", type=float, default=300, help="seconds (default 300)")
    parser.add_argument("--reconcile-interval", type=float, default=1.0,
                        help="agent reconcile interval in seconds (Talos uses 30; default 1)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory with the logs")
    args = parser.parse_args(argv)
    if not 2 <= args.nodes <= 20 or args.megabytes < 1:
        parser.error("--nodes must be 2-20 and --megabytes at least 1")
    problems = missing_requirements()
    if problems:
        for problem in problems:
            print(f"kubespan demo: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
