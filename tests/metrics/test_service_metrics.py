"""The discovery service's metrics: a real service process on loopback, real gRPC calls against it, a
real HTTP scrape (urllib) parsed with prometheus-client's parser; and its JSON log lines."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import grpc.aio
from google.protobuf.duration_pb2 import Duration
from localports import free_port, wait_listening
from metrics_support import fetch, parse, value

from kubespan.discovery.proto import cluster_pb2 as pb
from kubespan.discovery.rpc import ClusterStub

CLUSTER = "metrics-cluster"
SERVICE = "sidero.discovery.server.Cluster"


async def calls(port: int, scrape_url: str) -> str:
    """Hello, two updates (one bad), List and a Watch; the scrape taken while the Watch is open."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ClusterStub(channel)
        await stub.Hello(pb.HelloRequest(cluster_id=CLUSTER, client_version="v1.9.0"), timeout=10)
        await stub.AffiliateUpdate(pb.AffiliateUpdateRequest(
            cluster_id=CLUSTER, affiliate_id="node-a", affiliate_data=b"x" * 16,
            affiliate_endpoints=[b"e1" * 8, b"e2" * 8], ttl=Duration(seconds=2)), timeout=10)
        try:
            await stub.AffiliateUpdate(pb.AffiliateUpdateRequest(cluster_id="", affiliate_id="node-a"), timeout=10)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT
        else:
            raise AssertionError("an empty cluster ID was accepted")
        await stub.List(pb.ListRequest(cluster_id=CLUSTER), timeout=10)
        watch = stub.Watch(pb.WatchRequest(cluster_id=CLUSTER))
        await watch.read()  # the snapshot: the subscription is registered
        try:
            return (await asyncio.to_thread(fetch, scrape_url))[2]
        finally:
            watch.cancel()


def test_service_metrics_use_upstream_names_and_count_rpcs_by_code(tmp_path: Path) -> None:
    port, mport = free_port(), free_port()
    log = tmp_path / "service.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "kubespan", "discovery-service", "-addr", f"127.0.0.1:{port}",
                                 "-metrics-addr", f"127.0.0.1:{mport}", "-snapshots-enabled=false",
                                 "-gc-interval", "1s", "--log-format", "json"], stderr=err)
    url = f"http://127.0.0.1:{mport}/metrics"
    try:
        wait_listening(proc, port, log)
        wait_listening(proc, mport, log)
        during = parse(asyncio.run(calls(port, url)))
        after = {}
        for _ in range(100):  # the TTL (2 s) passes and a GC run (every 1 s) removes the affiliate
            after = parse(fetch(url)[2])
            if value(after, "discovery_state_gc_affiliates_total") >= 1:
                break
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    text = log.read_text()
    assert code == 0, text
    assert value(during, "discovery_state_clusters") == 1
    assert value(during, "discovery_state_affiliates") == 1
    assert value(during, "discovery_state_endpoints") == 2
    assert value(during, "discovery_state_subscriptions") == 1
    rpc = {"grpc_service": SERVICE, "grpc_type": "unary"}
    assert value(during, "grpc_server_started_total", grpc_method="Hello", **rpc) == 1
    assert value(during, "grpc_server_handled_total", grpc_method="Hello", grpc_code="OK", **rpc) == 1
    assert value(during, "grpc_server_handled_total", grpc_method="AffiliateUpdate", grpc_code="OK", **rpc) == 1
    assert value(during, "grpc_server_handled_total", grpc_method="AffiliateUpdate", grpc_code="InvalidArgument",
                 **rpc) == 1
    assert value(during, "grpc_server_handled_total", grpc_method="List", grpc_code="OK", **rpc) == 1
    assert value(during, "grpc_server_started_total", grpc_method="Watch", grpc_type="server_stream") == 1
    assert value(during, "grpc_server_handled_total", grpc_method="Watch", grpc_code="ResourceExhausted") == 0
    assert value(after, "discovery_state_gc_affiliates_total") == 1
    assert value(after, "discovery_state_affiliates") == 0
    assert value(after, "discovery_state_gc_runs_total") >= 1
    records = [json.loads(line) for line in text.splitlines()]  # every line one JSON object
    assert all({"time", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(r["logger"] == "wgpy.metrics" and f"127.0.0.1:{mport}" in r["msg"] for r in records)
