"""Traffic through a tunnel: iperf3 TCP/UDP throughput with tunnel CPU, and ping RTT.

Contract: every measurement runs between the two bench namespaces only
(client in A, server in B, to B's tunnel address), is bounded in time, and
returns a plain dict (figures in bits/s, seconds, bytes) or raises
``RuntimeError`` with the reason.  CPU is read from /proc/<pid>/stat
(utime+stime, all threads) of both tunnel daemons around the iperf3 run, and
reported as CPU seconds per GB (10^9 bytes) received by the iperf3 server.
A ``RawPath`` (no tunnel, no daemons) is measured the same way, to B's
underlay address; its daemon CPU figures are NaN.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from typing import Any

from .common import proc_cpu, stop_proc, system_busy, wait_for
from .tunnel import RawPath, Tunnel

Path_ = Tunnel | RawPath

IPERF_PORT = 5201
UDP_LEN = 1360  # fits the 1420 tunnel MTU with IPv4 + UDP headers


class IperfServer:
    def __init__(self, tun: Path_) -> None:
        ns = tun.under.b
        self.proc = ns.popen(["iperf3", "-s", "-B", tun.dst, "-p", str(IPERF_PORT)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        ready = wait_for(lambda: self._listening(tun) or self.proc.poll() is not None, 10, 0.1)
        if not ready or self.proc.poll() is not None:
            stop_proc(self.proc)
            raise RuntimeError("iperf3 server did not start")

    @staticmethod
    def _listening(tun: Path_) -> bool:
        res = tun.under.b.run("ss", "-ltnH", f"sport = :{IPERF_PORT}", check=False, timeout=5)
        return bool(res.stdout.strip())

    def stop(self) -> None:
        stop_proc(self.proc)


def _iperf(tun: Path_, args: list[str], duration: float, attempts: int = 6) -> dict[str, Any]:
    """Run one iperf3 client, again after a pause while the server still finishes the previous test."""
    for attempt in range(attempts):
        try:
            return _iperf_once(tun, args, duration)
        except RuntimeError as exc:
            if "busy" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def _iperf_once(tun: Path_, args: list[str], duration: float) -> dict[str, Any]:
    """Run one iperf3 client; returns its JSON and the daemons' CPU seconds spent meanwhile."""
    if not tun.alive():
        raise RuntimeError(f"a tunnel daemon died before the measurement: {tun.dead()}")
    cmd = ["iperf3", "-c", tun.dst, "-p", str(IPERF_PORT), "-J", "-t", str(duration),
           "--connect-timeout", "5000", *args]
    cpu0 = [proc_cpu(d.pid) for d in tun.daemons]
    busy0 = system_busy()
    t0 = time.monotonic()
    res = tun.under.a.run(*cmd, check=False, timeout=duration + 30)
    wall = time.monotonic() - t0
    busy = system_busy() - busy0
    cpu1 = [proc_cpu(d.pid) if d.alive() else math.nan for d in tun.daemons]
    try:
        data = json.loads(res.stdout)
    except ValueError:
        raise RuntimeError(f"iperf3 gave no JSON (rc {res.returncode}): {res.stderr[-300:]}") from None
    if "error" in data:
        raise RuntimeError(f"iperf3: {data['error']}")
    if not tun.alive():
        raise RuntimeError(f"a tunnel daemon died during the measurement: {tun.dead()}")
    cpu = [b - a for a, b in zip(cpu0, cpu1)]
    util = data.get("end", {}).get("cpu_utilization_percent", {})
    iperf_cpu = (float(util.get("host_total", 0)) + float(util.get("remote_total", 0))) / 100 * duration
    # cores busy with anything but the two daemons and the two iperf3 processes during the run
    # (kernel softirq work for this traffic that is not charged to a process, and unrelated work)
    other = max(0.0, busy - sum(cpu) - iperf_cpu) / wall if wall > 0 else math.nan
    return {"json": data, "cpu": cpu, "wall": wall, "iperf_cpu": iperf_cpu, "other_cores": other}


def _per_gb(cpu_s: float, nbytes: int) -> float:
    return cpu_s / (nbytes / 1e9) if nbytes else math.inf


def tcp(tun: Path_, streams: int, duration: float) -> dict[str, Any]:
    r = _iperf(tun, ["-P", str(streams)], duration)
    end = r["json"]["end"]
    received = end["sum_received"]
    nbytes = int(received["bytes"])
    bps = float(received["bits_per_second"])
    return {
        "bps": bps,
        "bytes": nbytes,
        "cpu_s": r["cpu"],
        "cpu_per_gb": _per_gb(sum(r["cpu"]) if r["cpu"] else math.nan, nbytes),
        "cpu_a_per_gb": _per_gb(r["cpu"][0] if r["cpu"] else math.nan, nbytes),
        "cpu_b_per_gb": _per_gb(r["cpu"][1] if r["cpu"] else math.nan, nbytes),
        "retransmits": end.get("sum_sent", {}).get("retransmits"),
        "iperf_cpu_s": r["iperf_cpu"],
        "other_cores": r["other_cores"],
    }


def udp(tun: Path_, duration: float) -> dict[str, Any]:
    r = _iperf(tun, ["-u", "-b", "0", "-l", str(UDP_LEN)], duration)
    end = r["json"]["end"]
    s = end["sum"]
    recv = end.get("sum_received")
    sent = end.get("sum_sent")
    # iperf3 >= 3.11 reports both sides; the receiver's figure is the tunnel's throughput.
    if recv is not None and "bytes" in recv:
        nbytes, bps = int(recv["bytes"]), float(recv["bits_per_second"])
    else:
        nbytes = int(s["bytes"] * (1 - s.get("lost_percent", 0.0) / 100))
        bps = nbytes * 8 / float(s["seconds"])
    return {
        "bps": bps,
        "bytes": nbytes,
        "sent_bps": float(sent["bits_per_second"]) if sent else float(s["bits_per_second"]),
        "lost_percent": float(s.get("lost_percent", math.nan)),
        "cpu_s": r["cpu"],
        "cpu_per_gb": _per_gb(sum(r["cpu"]) if r["cpu"] else math.nan, nbytes),
        "iperf_cpu_s": r["iperf_cpu"],
        "other_cores": r["other_cores"],
    }


_TIME = re.compile(r"time=([0-9.]+) ms")


def ping(tun: Path_, count: int, interval: float) -> dict[str, Any]:
    """ICMP echo A→B through the tunnel, one in flight at a time; avg, p50 and p99 RTT in seconds."""
    return ping_addr(tun.under.a, tun.dst, count, interval)


def ping_addr(ns: Any, addr: str, count: int, interval: float) -> dict[str, Any]:
    deadline = int(count * interval + 10)
    res = ns.run("ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1", "-w", str(deadline),
                 "-s", "56", addr, check=False, timeout=deadline + 10)
    rtts = sorted(float(m) / 1000 for m in _TIME.findall(res.stdout))
    if not rtts:
        raise RuntimeError(f"no ping replies: {res.stdout[-200:]}{res.stderr[-200:]}")
    p99 = rtts[min(len(rtts) - 1, math.ceil(0.99 * len(rtts)) - 1)]
    return {"avg": sum(rtts) / len(rtts), "p50": rtts[(len(rtts) - 1) // 2], "p99": p99,
            "replies": len(rtts), "sent": count,
            "min": rtts[0], "max": rtts[-1]}
