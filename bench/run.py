"""wgpy bench: one command, one table per run, wgpy measured beside wireguard-go.

Contract: ``sudo /work/main/.venv/bin/python bench/run.py [--quick] [options]``
(root: it creates two network namespaces joined by a veth pair, runs the
tunnel daemons inside them, and removes everything on exit, error or signal).
Measures, in one run: iperf3 TCP (1 and 4 streams) and UDP throughput, tunnel
CPU seconds per GB (both daemons, /proc/<pid>/stat) and ping RTT (avg, p99)
for each tunnel pairing (against Debian's and upstream's modern wireguard-go),
the same over the bare veth (the ceiling), and the AEAD floor (CPU s/GB of
ChaCha20-Poly1305 alone, one core, once per round); handshake responses per CPU-second of an in-process
wgpy responder; RSS per idle configured peer (wgpy and wireguard-go daemons,
and an in-process wgpy Device), each in a fresh process.  Prints a Markdown
table with absolute figures and ratios to both wireguard-go builds; ``--json`` keeps the
raw figures.  Not part of the test suite; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench import common, report, traffic  # noqa: E402
from bench.handshake_daemon import daemon_handshake_rate  # noqa: E402
from bench.peer_memory import daemon_rss_per_peer  # noqa: E402
from bench.tunnel import KINDS, RAW, RawPath, Tunnel, Underlay, start_daemon  # noqa: E402

DEFAULT_PAIRS = ["wggo:wggo", "wggo-modern:wggo-modern", "wgpy:wggo-modern", "wggo-modern:wgpy", "wgpy:wgpy",
                 "wgpy:wggo", "wggo:wgpy", "wgpy-nooff:wgpy-nooff", "wgpy-pure:wggo", "wgpy-pure:wgpy-pure", RAW]
TESTS = ["tcp1", "tcp4", "udp", "ping", "handshakes", "memory"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unavailable"


def native_status() -> str:
    """Whether the default wgpy run can use a native data plane (a compiled lib under wgpy/_native)."""
    built = sorted(p.name for p in (common.REPO / "wgpy" / "_native").glob("*.so"))
    if not built:
        return "no native build under wgpy/_native (default wgpy = pure Python path)"
    probe = "import wgpy._native as n; print(n.available(), n.load_error())"
    env = {k: v for k, v in os.environ.items() if k != "WGPY_NATIVE"}
    res = subprocess.run([common.PYTHON, "-c", probe], capture_output=True, text=True, timeout=30,
                         cwd=str(common.REPO), env=dict(env, PYTHONPATH=str(common.REPO)))
    ok = res.stdout.strip() if res.returncode == 0 else f"import failed: {res.stderr.strip().splitlines()[-1:]}"
    return f"native build present ({', '.join(built)}; available(), load_error() = {ok}); wgpy[pure] = WGPY_NATIVE=0"


def meta(args: argparse.Namespace) -> dict[str, str]:
    model = "unknown"
    for line in _lscpu().splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    rev = _first_line(["git", "-C", str(common.REPO), "log", "-1", "--format=%h %s"])
    py = _first_line([common.PYTHON, "--version"])
    return {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"nproc={os.cpu_count()} (shared with other work: figures are noisy)",
        "cpu": model,
        "kernel": platform.release(),
        "versions": (f"{_first_line(['wireguard-go', '--version'])}; "
                     f"{_first_line(['wg', '--version']).split(' - ')[0]}; "
                     f"{_first_line(['iperf3', '--version'])}; {py}; wgpy at {rev}"),
        "native": native_status(),
        "load": "loadavg at start " + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "settings": (f"median of {args.rounds} round(s) over the pairs, {args.duration:g} s per iperf3 run, "
                     f"ping {args.ping_count}×{args.ping_interval:g} s, "
                     f"UDP -b 0 -l {traffic.UDP_LEN}, tunnel MTU 1420, {args.handshakes} initiators, "
                     f"peers {','.join(map(str, args.peers))}"),
    }


def _lscpu() -> str:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _guard(fn: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    try:
        r = fn()
    except Exception as exc:  # a failed measurement is reported in the table, not fatal
        log(f"{what}: FAILED: {exc}")
        return {"error": str(exc).replace("\n", " ")[:300]}
    log(f"{what}: {_short(r)}")
    return r


def _short(r: dict[str, Any]) -> str:
    keys = ("bps", "cpu_per_gb", "lost_percent", "avg", "p99", "per_cpu_s", "per_wall_s", "responses", "per_peer",
            "floor_s_per_gb", "evp_pkt_floor_s_per_gb")
    return ", ".join(f"{k}={r[k]:.4g}" for k in keys if isinstance(r.get(k), (int, float)))


def run_pair(under: Underlay, pair: str, tests: list[str], args: argparse.Namespace) -> dict[str, Any]:
    log(f"tunnel {pair}: starting")
    tun: Tunnel | RawPath
    try:
        if pair == RAW:
            tun = RawPath(under)
        else:
            kind_a, kind_b = pair.split(":")
            tun = Tunnel(under, kind_a, kind_b)
    except Exception as exc:
        log(f"tunnel {pair}: FAILED to come up: {exc}")
        return {"error": f"tunnel setup failed: {str(exc)[:300]}"}
    out: dict[str, Any] = {"threads": [common.proc_threads(d.pid) for d in tun.daemons]}
    srv = None
    try:
        if any(t in tests for t in ("tcp1", "tcp4", "udp")):
            srv = traffic.IperfServer(tun)
        if "ping" in tests:
            out["ping"] = _guard(lambda: traffic.ping(tun, args.ping_count, args.ping_interval), f"{pair} ping")
        if "tcp1" in tests:
            out["tcp1"] = _guard(lambda: traffic.tcp(tun, 1, args.duration), f"{pair} tcp1")
        if "tcp4" in tests:
            out["tcp4"] = _guard(lambda: traffic.tcp(tun, 4, args.duration), f"{pair} tcp4")
        if "udp" in tests:
            out["udp"] = _guard(lambda: traffic.udp(tun, args.duration), f"{pair} udp")
    except Exception as exc:
        out["error"] = str(exc)[:300]
    finally:
        if srv is not None:
            srv.stop()
        if not tun.alive() and "died" not in json.dumps(out):
            out["died_after"] = tun.dead()
            log(f"{pair}: daemon died after the measurements: {out['died_after']}")
        tun.stop()
    return out


def aggregate(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric field over the rounds that succeeded (pairs interleaved round by round)."""
    out: dict[str, Any] = {}
    errors = [r["error"] for r in rounds if "error" in r]
    tests = {t for r in rounds for t in r if t not in ("error", "threads", "died_after")}
    out["died_after"] = [r["died_after"] for r in rounds if "died_after" in r]
    out["threads"] = [r.get("threads") for r in rounds]
    for t in sorted(tests):
        ok = [r[t] for r in rounds if t in r and "error" not in r[t]]
        bad = [r[t]["error"] for r in rounds if t in r and "error" in r[t]]
        if not ok:
            out[t] = {"error": bad[0] if bad else (errors[0] if errors else "no result")}
            continue
        agg: dict[str, Any] = {}
        for k, v in ok[0].items():
            vals = [r[k] for r in ok if isinstance(r.get(k), (int, float))]
            agg[k] = statistics.median(vals) if isinstance(v, (int, float)) and vals else v
        agg["rounds"] = len(ok)
        agg["samples"] = ok
        if bad:
            agg["failed_rounds"] = bad
        out[t] = agg
    if not tests and errors:
        out["error"] = errors[0]
    return out


def _bench_json(script: str, arg: object, timeout: float) -> dict[str, Any]:
    """Run ``bench/SCRIPT ARG`` in its own process and return the JSON it prints (its last stderr line on failure)."""
    res = subprocess.run([common.PYTHON, str(common.REPO / "bench" / script), str(arg)],
                         capture_output=True, text=True, timeout=timeout, cwd=str(common.REPO),
                         env=dict(os.environ, PYTHONPATH=str(common.REPO)))
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"rc {res.returncode}")
    r: dict[str, Any] = json.loads(res.stdout)
    return r


def run_aead(seconds: float) -> dict[str, Any]:
    """The AEAD floor, in its own process (one thread, so one core)."""
    return _bench_json("aead.py", seconds, 120)


def run_handshakes(n: int) -> dict[str, Any]:
    r = _bench_json("handshakes.py", n, 600)
    if r["responses"] != r["initiations"] or r["checked_completed"] != r["checked"]:
        r["note"] = f"{r['responses']}/{r['initiations']} responses, {r['checked_completed']}/{r['checked']} completed"
    return r


def run_memory_inproc(n: int) -> dict[str, Any]:
    return _bench_json("peer_memory.py", n, 300)


def run_memory(under: Underlay, sizes: list[int]) -> dict[str, Any]:
    import base64
    pubs = [base64.b64decode(common.gen_private()[1]).hex() for _ in range(max(sizes))]
    priv = base64.b64decode(common.gen_private()[0]).hex()
    mem: dict[str, Any] = {"daemon": {}, "inproc": {}}
    for n in sizes:
        row: dict[str, Any] = {}
        for kind in ("wgpy", "wgpy-pure", "wggo"):
            def one(kind: str = kind, n: int = n) -> dict[str, Any]:
                d = start_daemon(kind, under.a, under.ifname("m"), under.logdir)
                try:
                    return daemon_rss_per_peer(d, n, pubs, priv)
                finally:
                    d.stop()
            row[kind] = _guard(one, f"memory daemon {kind} {n} peers")
        mem["daemon"][str(n)] = row
        mem["inproc"][str(n)] = {"wgpy": _guard(functools.partial(run_memory_inproc, n),
                                                f"memory in-process wgpy {n}")}
    return mem


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s iperf3 runs, shorter ping, 1000 initiators, "
                    "1,000 and 10,000 peers")
    ap.add_argument("--duration", type=float, help="seconds per iperf3 run (default 6, --quick 3)")
    ap.add_argument("--pairs", default=",".join(DEFAULT_PAIRS),
                    help="comma list of A:B tunnel pairings, A and B in " + "|".join(KINDS)
                    + f",\nor {RAW} (no tunnel: the bare veth underlay)\n(default {','.join(DEFAULT_PAIRS)})")
    ap.add_argument("--only", default=",".join(TESTS), help=f"comma list of tests (default all: {','.join(TESTS)})")
    ap.add_argument("--skip", default="", help="comma list of tests to leave out")
    ap.add_argument("--rounds", type=int, help="rounds over all pairs, median reported (default 3, --quick 1)")
    ap.add_argument("--peers", default="1000,10000", help="peer counts for the memory test")
    ap.add_argument("--handshakes", type=int, help="initiators for the handshake test (default 3000, --quick 1000)")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--keep-logs", action="store_true", help="keep the daemons' logs and configs (a temp dir)")
    args = ap.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 6.0)
    args.rounds = max(1, args.rounds or (1 if args.quick else 3))
    args.ping_count = 100 if args.quick else 200
    args.ping_interval = 0.02
    args.handshakes = args.handshakes or (1000 if args.quick else 3000)
    args.peers = [int(x) for x in args.peers.split(",") if x]
    skip = {t for t in args.skip.split(",") if t}
    args.tests = [t for t in args.only.split(",") if t and t not in skip]
    for t in args.tests:
        if t not in TESTS:
            ap.error(f"unknown test {t!r}")
    args.pair_list = [p for p in args.pairs.split(",") if p]
    for p in args.pair_list:
        if p == RAW:
            continue
        parts = p.split(":")
        if len(parts) != 2 or any(k not in KINDS for k in parts):
            ap.error(f"bad pair {p!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("bench/run.py needs root (network namespaces)", file=sys.stderr)
        return 2
    common.install_cleanup()
    common.keep_logs = args.keep_logs
    res: dict[str, Any] = {"meta": meta(args), "pairs": {}}
    t0 = time.monotonic()
    try:
        tunnel_tests = [t for t in args.tests if t in ("tcp1", "tcp4", "udp", "ping")]
        under = None
        if (tunnel_tests and args.pair_list) or "memory" in args.tests or "handshakes" in args.tests:
            under = Underlay()
        if tunnel_tests and under is not None:
            raw: dict[str, list[dict[str, Any]]] = {p: [] for p in args.pair_list}
            aead: list[dict[str, Any]] = []
            for rnd in range(args.rounds):
                log(f"round {rnd + 1}/{args.rounds}")
                for pair in args.pair_list:
                    raw[pair].append(run_pair(under, pair, tunnel_tests, args))
                if any(t in tunnel_tests for t in ("tcp1", "tcp4")):
                    aead.append({"aead": _guard(lambda: run_aead(1.0), "AEAD floor")})
            res["pairs"] = {p: aggregate(raw[p]) for p in args.pair_list}
            if aead:
                res["aead"] = aggregate(aead).get("aead")
        if "handshakes" in args.tests:
            res["handshakes"] = _guard(lambda: run_handshakes(args.handshakes), "handshakes in-process")
            if under is not None:
                res["handshakes_daemon"] = {
                    kind: _guard(functools.partial(daemon_handshake_rate, under, kind, args.handshakes),
                                 f"handshakes daemon {kind}")
                    for kind in ("wgpy", "wggo")}
        if "memory" in args.tests and under is not None:
            res["memory"] = run_memory(under, args.peers)
    finally:
        common.cleanup()
    res["meta"]["load"] += ", at end " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    res["meta"]["settings"] += f"; run took {time.monotonic() - t0:.0f} s"
    text = report.render(res)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
