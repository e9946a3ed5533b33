"""Load benchmark of the discovery service (not part of the test suite).

    .venv/bin/python bench/discovery_load.py [--clusters 1000 --affiliates 10 ...]
    .venv/bin/python bench/discovery_load.py --modes memory,etcd --replicas 2   # the default

Modes, measured one after the other in the same run: ``memory`` (one service
process, in-memory state) and ``etcd`` (a local single-member etcd, Debian's
etcd-server, in a temporary data dir, and ``--replicas`` service processes on
it).  In etcd mode every update goes through replica 0 and the watcher
processes are spread over all replicas, so the "cross" columns are the
update→watch latency from one replica to another through etcd.

Starts `kubespan discovery-service` as a subprocess on 127.0.0.1 (no
snapshots, no rate limit), registers clusters × affiliates, opens one Watch
stream per affiliate (10,000 streams by default) from a few watcher
processes, each multiplexing its streams over a handful of HTTP/2
connections, then runs open-loop update phases at fixed target rates plus a
closed-loop saturation phase.  Each update carries time.monotonic() (the
system-wide CLOCK_MONOTONIC, comparable across processes) in its first 8
bytes; watchers record update→watch latency for every delivery.  Prints a
table; every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import random
import signal
import socket
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from multiprocessing.connection import Connection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import grpc  # noqa: E402
import grpc.aio  # noqa: E402
from google.protobuf.duration_pb2 import Duration  # noqa: E402

from bench.common import proc_cpu  # noqa: E402
from kubespan.discovery.proto import cluster_pb2 as pb  # noqa: E402
from kubespan.discovery.rpc import ClusterStub  # noqa: E402

PAD = os.urandom(200)  # ~ size of a real encrypted affiliate
TTL = Duration(seconds=1800)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def channel(port: int) -> grpc.aio.Channel:
    # own subchannel pool: each channel gets its own TCP connection
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])


def cluster_id(i: int) -> str:
    return f"bench-cluster-{i:05d}"


# --- watcher processes -----------------------------------------------------------


def watcher_main(port: int, clusters: list[int], per_cluster: int, conns: int, ctl: Connection) -> None:
    # The watchers are the measuring harness, not the system under test: keep
    # their cyclic-GC pauses out of the latency figures (runs are bounded).
    gc.disable()
    asyncio.run(_watcher(port, clusters, per_cluster, conns, ctl))


async def _watcher(port: int, clusters: list[int], per_cluster: int, conns: int, ctl: Connection) -> None:
    channels = [channel(port) for _ in range(conns)]
    stubs = [ClusterStub(c) for c in channels]
    latencies: list[float] = []
    stats = {"ready": 0, "errors": 0, "deliveries": 0}
    ready = asyncio.Event()
    total = len(clusters) * per_cluster

    opening = asyncio.Semaphore(200)  # pace stream opens

    async def watch(stub: ClusterStub, cid: str) -> None:
        for _attempt in range(20):  # a stream that fails before its snapshot is re-opened
            first = True
            try:
                await opening.acquire()
                call = stub.Watch(pb.WatchRequest(cluster_id=cid))
                async for msg in call:
                    if first:
                        first = False
                        opening.release()
                        stats["ready"] += 1
                        if stats["ready"] == total:
                            ready.set()
                        continue
                    now = time.monotonic()
                    for aff in msg.affiliates:
                        if len(aff.data) >= 8:
                            latencies.append(now - struct.unpack_from("d", aff.data)[0])
                            stats["deliveries"] += 1
                return
            except grpc.aio.AioRpcError:
                stats["errors"] += 1
                if first:
                    opening.release()
                else:
                    return

    tasks = []
    n = 0
    for ci in clusters:
        for _ in range(per_cluster):
            tasks.append(asyncio.create_task(watch(stubs[n % conns], cluster_id(ci))))
            n += 1
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(ready.wait(), 300)
    ctl.send(("ready", stats["ready"]))
    while True:
        cmd = await loop.run_in_executor(None, ctl.recv)
        if cmd == "report":
            ctl.send(("report", latencies, dict(stats)))
            latencies = []
            stats["deliveries"] = 0
        elif cmd == "stop":
            break
    for t in tasks:
        t.cancel()
    for c in channels:
        await c.close(None)


# --- updater ----------------------------------------------------------------------------


def payload() -> bytes:
    return struct.pack("d", time.monotonic()) + PAD


async def register(stubs: list[ClusterStub], clusters: int, per_cluster: int) -> None:
    sem = asyncio.Semaphore(128)

    async def one(i: int, j: int) -> None:
        async with sem:
            await stubs[(i * per_cluster + j) % len(stubs)].AffiliateUpdate(
                pb.AffiliateUpdateRequest(
                    cluster_id=cluster_id(i), affiliate_id=f"node-{j}",
                    affiliate_data=b"\x00" * 4 + PAD, affiliate_endpoints=[os.urandom(16)], ttl=TTL,
                ),
                timeout=60,
            )

    await asyncio.gather(*(one(i, j) for i in range(clusters) for j in range(per_cluster)))


async def update(stub: ClusterStub, rnd: random.Random, clusters: int, per_cluster: int) -> None:
    """One timestamped data update of a random affiliate."""
    i, j = rnd.randrange(clusters), rnd.randrange(per_cluster)
    await stub.AffiliateUpdate(
        pb.AffiliateUpdateRequest(cluster_id=cluster_id(i), affiliate_id=f"node-{j}", affiliate_data=payload(), ttl=TTL),
        timeout=30,
    )


async def open_loop(stubs: list[ClusterStub], clusters: int, per_cluster: int, rate: float, duration: float) -> tuple[int, float, int]:
    """Send updates at ``rate``/s for ``duration`` s; returns (sent, elapsed, errors)."""
    rnd = random.Random(1)
    sem = asyncio.Semaphore(512)
    errors = 0
    pending: set[asyncio.Task[None]] = set()

    async def one(k: int) -> None:
        nonlocal errors
        try:
            await update(stubs[k % len(stubs)], rnd, clusters, per_cluster)
        except grpc.aio.AioRpcError:
            errors += 1
        finally:
            sem.release()

    count = int(rate * duration)
    start = time.monotonic()
    for k in range(count):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        t = asyncio.create_task(one(k))
        pending.add(t)
        t.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return count, time.monotonic() - start, errors


async def closed_loop(stubs: list[ClusterStub], clusters: int, per_cluster: int, concurrency: int, duration: float) -> tuple[int, float, int]:
    rnd = random.Random(2)
    end = time.monotonic() + duration
    sent = errors = 0

    async def worker(w: int) -> None:
        nonlocal sent, errors
        while time.monotonic() < end:
            try:
                await update(stubs[w % len(stubs)], rnd, clusters, per_cluster)
                sent += 1
            except grpc.aio.AioRpcError:
                errors += 1

    start = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return sent, time.monotonic() - start, errors


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def collect(ctls: list[Connection], cross: list[bool]) -> tuple[list[float], list[float], int, int]:
    """(all latencies, those of watchers on another replica than the updater, deliveries, errors)."""
    lat: list[float] = []
    lat_cross: list[float] = []
    deliveries = errors = 0
    for c in ctls:
        c.send("report")
    for c, other in zip(ctls, cross):
        _, values, stats = c.recv()
        lat += values
        if other:
            lat_cross += values
        deliveries += stats["deliveries"]
        errors += stats["errors"]
    return lat, lat_cross, deliveries, errors


def start_service(port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", os.environ.get("BENCH_SERVER_PRELUDE", "") + "import sys; from kubespan.discovery.service import main; sys.exit(main(sys.argv[1:]))",
         "--listen", f"127.0.0.1:{port}", "--no-snapshots", "--rate-limit", "0", "-metrics-addr=", *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def start_etcd(stack: ExitStack) -> str:
    """A single-member etcd on loopback in a temporary data dir; returns its client URL."""
    etcd = shutil.which("etcd")
    if etcd is None:
        raise SystemExit("etcd mode needs etcd (apt-get install --no-install-recommends etcd-server)")
    data = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-etcd-"))
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [etcd, "--name", "bench", "--data-dir", data, "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"bench={peer}",
         "--logger", "zap", "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    stack.callback(_stop, proc)
    return client


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def wait_serving(port: int) -> None:
    """Until List answers (bounded: 60 s)."""
    deadline = time.monotonic() + 60
    chan = channel(port)
    try:
        while True:
            try:
                await ClusterStub(chan).List(pb.ListRequest(cluster_id="probe"), timeout=2)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await chan.close(None)


async def run(args: argparse.Namespace) -> None:
    rows: list[tuple[str, ...]] = []
    for mode in args.modes:
        with ExitStack() as stack:
            await measure(mode, args, stack, rows)
    header = ("mode", "phase", "updates/s", "deliveries/s", "p50 ms", "p99 ms", "max ms", "cross p50 ms",
              "cross p99 ms", "delivered/expected", "errors", "server CPU ms/update", "load1")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print(f"clusters={args.clusters} affiliates/cluster={args.affiliates} watch streams={args.clusters * args.affiliates} "
          f"watch procs={args.watch_procs}x{args.watch_conns} conns, phase={args.duration:.0f}s, "
          f"etcd replicas={args.replicas} (CPU: all replicas, etcd not counted)")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(v.ljust(w) for v, w in zip(r, widths)))


async def measure(mode: str, args: argparse.Namespace, stack: ExitStack, rows: list[tuple[str, ...]]) -> None:
    ports = [free_port() for _ in range(args.replicas if mode == "etcd" else 1)]
    servers: list[subprocess.Popen[bytes]] = []
    extra: tuple[str, ...] = ()
    if mode == "etcd":
        extra = ("--etcd-endpoints", start_etcd(stack), "--etcd-prefix", "/bench/")
    for port in ports:
        servers.append(start_service(port, *extra))
        stack.callback(_stop, servers[-1])
    port = ports[0]
    procs: list[mp.process.BaseProcess] = []
    ctls: list[Connection] = []
    cross: list[bool] = []
    try:
        for p in ports:
            await wait_serving(p)
        chans = [channel(port) for _ in range(args.updater_conns)]
        stubs = [ClusterStub(c) for c in chans]
        t0 = time.monotonic()
        await register(stubs, args.clusters, args.affiliates)
        print(f"[{mode}] registered {args.clusters * args.affiliates} affiliates in {time.monotonic() - t0:.1f}s", flush=True)
        ctx = mp.get_context("spawn")
        all_clusters = list(range(args.clusters))
        t0 = time.monotonic()
        for w in range(args.watch_procs):
            parent, child = ctx.Pipe()
            replica = w % len(ports)
            p = ctx.Process(target=watcher_main, daemon=True,
                            args=(ports[replica], all_clusters[w :: args.watch_procs], args.affiliates,
                                  args.watch_conns, child))
            p.start()
            procs.append(p)
            ctls.append(parent)
            cross.append(replica != 0)
        streams = sum(c.recv()[1] for c in ctls)
        print(f"[{mode}] {streams} watch streams open on {len(ports)} replica(s) in {time.monotonic() - t0:.1f}s",
              flush=True)
        collect(ctls, cross)  # drop setup noise

        def cpu_all() -> float:
            return sum(proc_cpu(s.pid) for s in servers)

        def row(name: str, sent: int, elapsed: float, err: int, cpu: float) -> None:
            lat, lat_cross, deliveries, werr = collect(ctls, cross)
            na = "-"
            rows.append((mode, name, f"{sent / elapsed:.0f}", f"{deliveries / elapsed:.0f}",
                         f"{pct(lat, 50) * 1e3:.1f}", f"{pct(lat, 99) * 1e3:.1f}", f"{max(lat, default=0) * 1e3:.1f}",
                         f"{pct(lat_cross, 50) * 1e3:.1f}" if lat_cross else na,
                         f"{pct(lat_cross, 99) * 1e3:.1f}" if lat_cross else na,
                         f"{deliveries}/{sent * args.affiliates}", str(err + werr),
                         f"{cpu / max(sent, 1) * 1e3:.2f}", f"{os.getloadavg()[0]:.1f}"))
            print(" | ".join(rows[-1]), flush=True)

        for rate in args.rates:
            cpu0 = cpu_all()
            sent, elapsed, err = await open_loop(stubs, args.clusters, args.affiliates, rate, args.duration)
            await asyncio.sleep(1.0)  # let deliveries drain
            row(f"open {rate:.0f}/s", sent, elapsed, err, cpu_all() - cpu0)
        cpu0 = cpu_all()
        sent, elapsed, err = await closed_loop(stubs, args.clusters, args.affiliates, args.concurrency, args.duration)
        await asyncio.sleep(1.0)
        row(f"closed x{args.concurrency}", sent, elapsed, err, cpu_all() - cpu0)
        for c in chans:
            await c.close(None)
    finally:
        for ctl in ctls:
            try:
                ctl.send("stop")
            except OSError:
                pass
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--affiliates", type=int, default=10)
    p.add_argument("--watch-procs", type=int, default=2)
    p.add_argument("--watch-conns", type=int, default=8, help="HTTP/2 connections per watcher process")
    p.add_argument("--updater-conns", type=int, default=4)
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[100.0, 300.0, 600.0])
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop saturation phase")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--modes", type=lambda s: [m for m in s.split(",") if m], default=["memory", "etcd"],
                   help="memory,etcd (default both, in this order)")
    p.add_argument("--replicas", type=int, default=2, help="service replicas in etcd mode")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
