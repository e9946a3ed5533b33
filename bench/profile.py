"""Where the daemons' time goes under one TCP stream: a sampled profile, broken down by kind of work.

Contract: ``sudo .venv/bin/python bench/profile.py [--pairs wgpy:wgpy,wggo-modern:wggo-modern]
[--duration 8] [--freq 499] [--json FILE]`` (root: it builds the bench's two
namespaces and tunnel, see ``tunnel.py``, and removes them on exit).  For each
pairing it runs one iperf3 TCP stream A→B through a fresh tunnel, and while it
runs:

- ``perf record -a -g`` samples every CPU (the ``cpu-clock`` software event:
  this VM exposes no hardware counters) for ``--duration`` seconds, after a
  1 s warm-up.  Samples of the two daemons' processes are classified by their
  leaf symbol and call chain (``classify``) into: cipher (for wgpy: all of
  libcrypto, EVP bookkeeping included; for Go: the chacha20/poly1305
  symbols), copies (user memcpy
  and kernel copy_user/iov copies), checksums, kernel TUN path (syscalls on
  the TUN fd and the inner TCP/IP stack they feed), kernel UDP/IP/veth path,
  kernel scheduling/wakeups, other kernel, Python interpreter, Go runtime,
  the daemon's own code (wgpy's C plane, wireguard-go's Go), other user
  code.  Samples of other processes are only counted (iperf3, idle, rest).
- ``/proc/<pid>/task/*/stat`` of both daemons is read around the iperf3 run:
  user and system CPU per thread, and CPU seconds per GB received.  When
  ``perf`` cannot record (``perf_event_paranoid``, a container without the
  syscall), this per-thread split is the whole report.

A category's "s/GB" is its share of a daemon's samples times that daemon's
CPU s/GB.  Prints Markdown; ``--json`` keeps the figures and the top symbols.
The machine is shared, so figures are noisy; shares are steadier than rates.
Asserts nothing; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench import common, traffic  # noqa: E402
from bench.tunnel import KINDS, LABEL, Tunnel, Underlay  # noqa: E402

PERF = os.environ.get("PERF", "/usr/bin/perf")

CATEGORIES = [
    "cipher", "copies", "checksums", "kernel TUN path", "kernel UDP/IP/veth path", "kernel scheduling/wakeups",
    "kernel other", "Python interpreter", "Go runtime", "daemon's own code", "libc/other user",
]

_CIPHER = re.compile(r"chacha|poly1305|aead|gcm_|cipher|OSSL_|EVP_", re.I)  # libcrypto as a whole, below
_COPY = re.compile(r"memcpy|memmove|copy_user|rep_movs|copy_to_iter|copy_from_iter|copy_page|copyout|copyin|"
                   r"skb_copy|_copy_to_user|_copy_from_user|fault_in|memset|memclr|duffcopy|duffzero", re.I)
_CSUM = re.compile(r"csum|checksum", re.I)
_TUN = re.compile(r"^tun_|^tun_chr|_tun_")
_NET = re.compile(r"^udp|^__udp|^ip_|^ip6_|^__ip_|^veth_|dev_queue_xmit|net_rx_action|netif_|napi_|^sock_|"
                  r"^__sys_sendm|^__sys_recvm|^___sys_sendm|^___sys_recvm|^inet_|^__skb_|^skb_|^dst_|^nf_|"
                  r"sendmmsg|recvmmsg|sendmsg|recvmsg")
_SCHED = re.compile(r"schedule|futex|wake_up|try_to_wake|finish_task_switch|pick_next|enqueue_|dequeue_|"
                    r"ep_poll|do_epoll|poll_|select|hrtimer|nanosleep|update_curr|sched_|idle")


def classify(frames: list[tuple[str, str]]) -> str:
    """One sample's category from its frames, leaf first: (symbol, dso)."""
    if not frames:
        return "libc/other user"
    sym, dso = frames[0]
    kernel = "kernel" in dso
    if _CIPHER.search(sym) or "libcrypto" in dso:
        return "cipher"
    if _COPY.search(sym):
        return "copies"
    if _CSUM.search(sym):
        return "checksums"
    if kernel:
        syms = [s for s, d in frames if "kernel" in d]
        if any(_TUN.search(s) for s in syms):
            return "kernel TUN path"
        if any(_NET.search(s) for s in syms):
            return "kernel UDP/IP/veth path"
        if any(_SCHED.search(s) for s in syms):
            return "kernel scheduling/wakeups"
        return "kernel other"
    if "libpython" in dso or dso.endswith("/python3.11") or dso.endswith("/python"):
        return "Python interpreter"
    if "wireguard-go" in dso:
        return "Go runtime" if sym.startswith(("runtime.", "runtime·", "sync.", "internal/")) else "daemon's own code"
    if "_wgpy_native" in dso:
        return "daemon's own code"
    return "libc/other user"


_HEAD = re.compile(r"^(\S.*?)\s+(\d+)/(\d+)\s")
_FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)$")


def parse_script(text: str) -> list[tuple[str, int, int, list[tuple[str, str]]]]:
    """``perf script -F comm,pid,tid,ip,sym,dso`` output → (comm, pid, tid, frames leaf first)."""
    out: list[tuple[str, int, int, list[tuple[str, str]]]] = []
    cur: tuple[str, int, int, list[tuple[str, str]]] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _HEAD.match(line)
        if m and not line[0].isspace():
            cur = (m.group(1), int(m.group(2)), int(m.group(3)), [])
            out.append(cur)
            continue
        f = _FRAME.match(line)
        if f and cur is not None:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", f.group(1))
            cur[3].append((sym, f.group(2)))
    return out


def task_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """(user, system) CPU seconds of every thread of ``pid``."""
    out: dict[int, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(task.name)] = (int(fields[11]) / common.CLK_TCK, int(fields[12]) / common.CLK_TCK)
    return out


def perf_works() -> str | None:
    """None when ``perf record -a -g`` can sample here, else why not."""
    with tempfile.TemporaryDirectory() as d:
        try:
            res = subprocess.run([PERF, "record", "-a", "-g", "-F", "99", "-o", f"{d}/t.data", "--", "sleep",
                                  "0.1"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        if res.returncode != 0:
            return (res.stderr.strip().splitlines() or [f"rc {res.returncode}"])[-1]
    return None


def _thread_role(tid: int, pid: int, frames_seen: Counter[str]) -> str:
    if tid == pid:
        return "main"
    reads, writes = frames_seen["tun_chr_read_iter"], frames_seen["tun_chr_write_iter"]
    if reads or writes:
        return "TUN→UDP (tx)" if reads >= writes else "UDP→TUN (rx)"
    return f"thread {tid}"


def profile_pair(under: Underlay, pair: str, duration: float, freq: int, use_perf: bool) -> dict[str, Any]:
    kind_a, kind_b = pair.split(":")
    tun = Tunnel(under, kind_a, kind_b)
    srv = None
    try:
        srv = traffic.IperfServer(tun)
        pids = [d.pid for d in tun.daemons]
        t0 = [task_cpu(p) for p in pids]
        client = under.a.popen(["iperf3", "-c", tun.dst, "-p", str(traffic.IPERF_PORT), "-J", "-t",
                                str(duration + 2), "--connect-timeout", "5000"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        samples: list[tuple[str, int, int, list[tuple[str, str]]]] = []
        perf_error = None if use_perf else "perf unavailable"
        time.sleep(1.0)
        if use_perf:
            with tempfile.TemporaryDirectory() as d:
                data = f"{d}/perf.data"
                rec = subprocess.run([PERF, "record", "-a", "-g", "-F", str(freq), "-o", data, "--", "sleep",
                                      str(duration)], capture_output=True, text=True, timeout=duration + 60)
                if rec.returncode == 0:
                    script = subprocess.run([PERF, "script", "-i", data, "-F", "comm,pid,tid,ip,sym,dso"],
                                            capture_output=True, text=True, timeout=600)
                    samples = parse_script(script.stdout)
                else:
                    perf_error = (rec.stderr.strip().splitlines() or [f"rc {rec.returncode}"])[-1]
        out_b, err_b = client.communicate(timeout=duration + 60)
        common.stop_proc(client)
        t1 = [task_cpu(p) for p in pids]
        try:
            nbytes = int(json.loads(out_b)["end"]["sum_received"]["bytes"])
            bps = float(json.loads(out_b)["end"]["sum_received"]["bits_per_second"])
        except (ValueError, KeyError) as exc:
            raise RuntimeError(f"iperf3 gave no result: {err_b.decode(errors='replace')[-200:]}") from exc
    finally:
        if srv is not None:
            srv.stop()
        tun.stop()
    gb = nbytes / 1e9
    ends = []
    for side, pid, before, after in zip(("A (sender)", "B (receiver)"), pids, t0, t1):
        threads = {}
        for tid, (u, s) in after.items():
            u0, s0 = before.get(tid, (0.0, 0.0))
            threads[tid] = {"user_s": u - u0, "sys_s": s - s0}
        cpu = sum(t["user_s"] + t["sys_s"] for t in threads.values())
        mine = [x for x in samples if x[1] == pid]
        cats: Counter[str] = Counter(classify(fr) for _c, _p, _t, fr in mine)
        tops: Counter[str] = Counter(f"{fr[0][0]} ({Path(fr[0][1]).name})" for *_x, fr in mine if fr)
        per_tid: dict[int, Counter[str]] = {}
        frames_by_tid: dict[int, Counter[str]] = {}
        for _c, _p, tid, fr in mine:
            per_tid.setdefault(tid, Counter())[classify(fr)] += 1
            frames_by_tid.setdefault(tid, Counter()).update(s for s, _d in fr)
        roles = {tid: _thread_role(tid, pid, frames_by_tid.get(tid, Counter())) for tid in threads}
        ends.append({
            "side": side, "kind": tun.kinds[0 if side.startswith("A") else 1], "pid": pid,
            "cpu_s": cpu, "cpu_per_gb": cpu / gb if gb else float("nan"), "samples": len(mine),
            "categories": dict(cats), "top": tops.most_common(25),
            "threads": {str(t): dict(v, role=roles[t], samples=sum(per_tid.get(t, Counter()).values()),
                                     categories=dict(per_tid.get(t, Counter())))
                        for t, v in threads.items()},
        })
    machine: Counter[str] = Counter()
    for comm, pid, _tid, _fr in samples:
        if pid in pids:
            machine["daemon A" if pid == pids[0] else "daemon B"] += 1
        elif pid == 0:
            machine["idle"] += 1
        elif comm.startswith("iperf3"):
            machine["iperf3"] += 1
        else:
            machine["other processes"] += 1
    return {"pair": pair, "bps": bps, "bytes": nbytes, "ends": ends, "machine": dict(machine),
            "perf_samples": len(samples), "perf_error": perf_error}


def render(results: list[dict[str, Any]], why_no_perf: str | None, freq: int, duration: float) -> str:
    lines = [f"## Profile, one TCP stream ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
             "(shared machine: noisy)",
             (f"- perf: `perf record -a -g -F {freq}` (cpu-clock) for {duration:g} s of the stream"
              if why_no_perf is None else f"- perf unavailable ({why_no_perf}): /proc per-thread CPU only"), ""]
    for r in results:
        if "error" in r:
            lines += [f"### {r['pair']}: FAILED: {r['error']}", ""]
            continue
        a, b = r["pair"].split(":")
        lines += [f"### {LABEL[a]}→{LABEL[b]}: {r['bps'] / 1e6:.0f} Mbit/s", ""]
        if r.get("perf_error") and why_no_perf is None:
            lines += [f"perf record failed during this stream: {r['perf_error']}", ""]
        m = r["machine"]
        tot = sum(m.values())
        if tot:
            lines += ["Machine samples: " + ", ".join(f"{k} {v * 100 / tot:.0f} %" for k, v in sorted(
                m.items(), key=lambda kv: -kv[1])) + ".", ""]
        hdr = "| category | " + " | ".join(f"{e['side']} {LABEL[e['kind']]} % | s/GB" for e in r["ends"]) + \
              " | both ends s/GB |"
        lines += [hdr, "|---|" + "---:|---:|" * len(r["ends"]) + "---:|"]
        for cat in CATEGORIES:
            cells, total = [], 0.0
            for e in r["ends"]:
                n = e["samples"]
                share = e["categories"].get(cat, 0) / n if n else 0.0
                sgb = share * e["cpu_per_gb"] if e["cpu_per_gb"] == e["cpu_per_gb"] else 0.0
                total += sgb
                cells.append(f"{share * 100:.1f} | {sgb:.2f}")
            if total > 0:
                lines.append(f"| {cat} | " + " | ".join(cells) + f" | {total:.2f} |")
        lines.append("| **all (from /proc)** | " + " | ".join(
            f"{e['samples']} samples | {e['cpu_per_gb']:.2f}" for e in r["ends"])
            + f" | {sum(e['cpu_per_gb'] for e in r['ends']):.2f} |")
        lines.append("")
        for e in r["ends"]:
            th = sorted(e["threads"].values(), key=lambda t: -(t["user_s"] + t["sys_s"]))
            busy = [t for t in th if t["user_s"] + t["sys_s"] > 0.05]
            lines.append(f"{e['side']} threads (user+sys CPU s over the run): " + ", ".join(
                f"{t['role']} {t['user_s']:.2f}+{t['sys_s']:.2f}" for t in busy[:8])
                + (f" (+{len(th) - len(busy[:8])} idle or small)" if len(th) > len(busy[:8]) else "") + ".")
            tot_s = e["samples"]
            if tot_s:
                lines.append(f"{e['side']} top leaf symbols: " + "; ".join(
                    f"{s} {n * 100 / tot_s:.1f} %" for s, n in e["top"][:10]) + ".")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="wgpy:wgpy,wggo-modern:wggo-modern", help="comma list of A:B pairings")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds sampled (the stream runs 3 s longer)")
    ap.add_argument("--freq", type=int, default=499, help="samples per second per CPU")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    pairs = [p for p in args.pairs.split(",") if p]
    for p in pairs:
        if len(p.split(":")) != 2 or any(k not in KINDS for k in p.split(":")):
            ap.error(f"bad pair {p!r}")
    if os.geteuid() != 0:
        print("bench/profile.py needs root (network namespaces, perf -a)", file=sys.stderr)
        return 2
    why = perf_works()
    common.install_cleanup()
    results: list[dict[str, Any]] = []
    try:
        under = Underlay()
        for p in pairs:
            try:
                results.append(profile_pair(under, p, args.duration, args.freq, why is None))
            except Exception as exc:  # one failed pairing is reported, the others still run
                results.append({"pair": p, "error": str(exc)[:300]})
    finally:
        common.cleanup()
    print(render(results, why, args.freq, args.duration))
    if args.json:
        Path(args.json).write_text(json.dumps({"perf": why or "ok", "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
