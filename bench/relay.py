"""A relayed pair next to direct pairs, in the same run: ``python bench/relay.py`` (root).

Contract: for each plane (native, pure) one ``lab.relay.RelayLab`` (three wgpy nodes A, R, P on a bridge, R
serving as relay) is built, and measured in this order, all from A:

    relayed  A -> P via R   (nft drops A<->P; A has P "via R", P roams to it)
    direct   A -> R         (a direct wgpy pair in the same lab, R busy with nothing else)
    direct   A -> P         (the block lifted; A's probes move the pair back to the direct path first)

Each row: iperf3 TCP throughput (one stream, ``--duration`` s) with the three nodes' CPU seconds per GB, and
ping RTT (``--pings`` echoes, 20 ms apart).  Prints one table per plane and the ratios relayed / direct A->P
and relayed / direct A->R; ``--json FILE`` also writes the figures.  Everything runs inside the lab's
namespaces and is removed at the end (also on error or SIGINT/SIGTERM, through ``bench.common``'s cleanup).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench import traffic  # noqa: E402
from bench.common import install_cleanup, rand_suffix, register_tmpdir  # noqa: E402
from lab.netns import Netns  # noqa: E402
from lab.relay import TUNNEL, Node, RelayLab  # noqa: E402


class _Proc:
    """A lab node as ``bench.traffic`` sees a tunnel daemon (pid for CPU accounting, liveness)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.pid = node.proc.pid  # ip netns exec execs: the pid is the node's

    def alive(self) -> bool:
        return self.node.alive()


class _Ends:
    def __init__(self, a: Netns, b: Netns) -> None:
        self.a, self.b = a, b


class LabPath:
    """One measured path A -> ``dst`` in a relay lab, shaped like ``bench.tunnel.Tunnel`` for ``bench.traffic``."""

    def __init__(self, lab: RelayLab, dst: str) -> None:
        self.lab = lab
        self.under = _Ends(lab.ns("a"), lab.ns(dst))
        self.dst = TUNNEL[dst]
        self.daemons = [_Proc(lab[n]) for n in ("a", "r", "p")]

    def alive(self) -> bool:
        return all(d.alive() for d in self.daemons)

    def dead(self) -> str:
        return "; ".join(f"node {d.node.name} exited: {d.node.log_tail(300)}" for d in self.daemons if not d.alive())


def measure(path: LabPath, duration: float, pings: int) -> dict[str, Any]:
    server = traffic.IperfServer(path)  # type: ignore[arg-type]
    try:
        tcp = traffic.tcp(path, 1, duration)  # type: ignore[arg-type]
    finally:
        server.stop()
    rtt = traffic.ping_addr(path.under.a, path.dst, pings, 0.02)
    return {"bps": tcp["bps"], "cpu_per_gb": tcp["cpu_per_gb"], "retransmits": tcp["retransmits"],
            "rtt_avg": rtt["avg"], "rtt_p50": rtt["p50"], "rtt_p99": rtt["p99"], "replies": rtt["replies"],
            "sent": rtt["sent"]}


def wait_direct(lab: RelayLab, timeout: float) -> float:
    """Seconds until both ends of A<->P are direct again (probing), or NaN if not within ``timeout``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not lab.peer("a", "p")["relayed"] and not lab.peer("p", "a")["relayed"]:
            return time.monotonic() - t0
        traffic.ping_addr(lab.ns("a"), TUNNEL["p"], 1, 0.2)
        time.sleep(0.2)
    return math.nan


def run_plane(native: bool, duration: float, pings: int, logdir: Path) -> dict[str, Any]:
    tag = f"wgbr{rand_suffix()}"
    lab = RelayLab(tag, logdir, native=native, probe=True)
    try:
        lab.block()
        for dst in ("p", "r"):
            traffic.ping_addr(lab.ns("a"), TUNNEL[dst], 3, 0.2)  # handshakes done before measuring
        if not lab.peer("a", "p")["relayed"]:
            raise RuntimeError("A<->P is not relayed")
        rows = {"relayed A->P via R": measure(LabPath(lab, "p"), duration, pings)}
        if not lab.peer("a", "p")["relayed"]:
            raise RuntimeError("A<->P left the relay while blocked")
        forwarded = lab["r"].cmd("stats")["relay"]
        rows["direct A->R"] = measure(LabPath(lab, "r"), duration, pings)
        lab.unblock()
        took = wait_direct(lab, 40)
        if math.isnan(took):
            raise RuntimeError("A<->P did not move back to the direct path within 40 s")
        before = lab["r"].cmd("stats")["relay"]["forwarded_frames"]
        rows["direct A->P"] = measure(LabPath(lab, "p"), duration, pings)
        if lab["r"].cmd("stats")["relay"]["forwarded_frames"] != before:
            raise RuntimeError("the direct A->P row went through the relay")
        return {"rows": rows, "back_to_direct_s": took, "relay": forwarded}
    finally:
        lab.close()


def report(plane: str, res: dict[str, Any]) -> str:
    rows = res["rows"]
    lines = [f"plane {plane}: (back to direct {res['back_to_direct_s']:.1f} s after the block was lifted)",
             f"  {'path':<20} {'TCP Mbit/s':>11} {'CPU s/GB':>9} {'retr':>6} {'RTT avg ms':>11} {'p99 ms':>7}"]
    for name, r in rows.items():
        lines.append(f"  {name:<20} {r['bps'] / 1e6:>11.1f} {r['cpu_per_gb']:>9.1f} {r['retransmits'] or 0:>6} "
                     f"{r['rtt_avg'] * 1e3:>11.3f} {r['rtt_p99'] * 1e3:>7.3f}")
    rel = rows["relayed A->P via R"]
    for base in ("direct A->P", "direct A->R"):
        d = rows[base]
        lines.append(f"  relayed / {base}: throughput x{rel['bps'] / d['bps']:.2f}, "
                     f"RTT x{rel['rtt_avg'] / d['rtt_avg']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=5.0, help="iperf3 seconds per row")
    ap.add_argument("--pings", type=int, default=50)
    ap.add_argument("--planes", default="native,pure", help="comma-separated: native, pure")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    planes = [p for p in args.planes.split(",") if p]
    if not planes or any(p not in ("native", "pure") for p in planes):
        ap.error("--planes takes native and/or pure")
    install_cleanup()
    logdir = Path(tempfile.mkdtemp(prefix="wgbench-relay-"))
    register_tmpdir(logdir)
    results = {}
    for plane in planes:
        results[plane] = run_plane(plane == "native", args.duration, args.pings, logdir)
        print(report(plane, results[plane]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
