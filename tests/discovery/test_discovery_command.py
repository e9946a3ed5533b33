"""``kubespan discovery-service`` takes upstream's command line (siderolabs/discovery-service
cmd/discovery-service/main.go): a real service process started with upstream-style flags on
loopback, real clients against it; flag parsing as data; bad arguments only ever a usage exit."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from discovery_support import FAST, SECRET, affiliate, parse_or_usage, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubespan.discovery.client import DiscoveryClient, ServiceEndpoint
from kubespan.discovery.command import config_from_args, parse_args, parse_duration
from kubespan.discovery.rpc import ClusterStub
from kubespan.discovery.proto import cluster_pb2 as pb

import grpc.aio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """The service as a child process; stderr kept for the checks."""

    def __init__(self, tmp: Path, *argv: str) -> None:
        self.log = tmp / f"service-{time.monotonic_ns()}.log"
        self.f = open(self.log, "wb")
        if not any("metrics-addr" in a for a in argv):  # upstream's default :2122 is the host's: stay off it
            argv = (*argv, "-metrics-addr=")
        self.proc = subprocess.Popen([sys.executable, "-m", "kubespan", "discovery-service", *argv],
                                     stdout=subprocess.PIPE, stderr=self.f)

    def wait_listening(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f"service did not listen on {port}: {self.text()}")

    def text(self) -> str:
        if not self.f.closed:
            self.f.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            stdout = self.proc.stdout.read().decode() if self.proc.stdout else ""
            if self.proc.stdout:
                self.proc.stdout.close()
            self.f.close()
        return code, stdout


async def mesh_two(port: int) -> set[str]:
    ep = ServiceEndpoint("127.0.0.1", port, insecure=True)
    a = DiscoveryClient(ep, "cluster-1", SECRET, "a", timers=FAST)
    b = DiscoveryClient(ep, "cluster-1", SECRET, "b", timers=FAST)
    try:
        for i, c in enumerate((a, b), 1):
            c.set_local(affiliate(c.node_id, i), [])
            await c.start()
        assert await a.wait_for(lambda c: "b" in c.affiliates() and c.counters.refreshes >= 1, 15)
        assert await b.wait_for(lambda c: "a" in c.affiliates() and c.counters.refreshes >= 1, 15)
        return set(a.affiliates()) | set(b.affiliates())
    finally:
        await a.close(delete=False)
        await b.close(delete=False)


async def listed(port: int) -> set[str]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        reply = await ClusterStub(channel).List(pb.ListRequest(cluster_id="cluster-1"), timeout=10)
        return {a.id for a in reply.affiliates}
    finally:
        await channel.close(None)


def test_upstream_command_line_serves_clients_and_snapshots(tmp_path: Path) -> None:
    port = free_port()
    snap = tmp_path / "state" / "state.binpb"
    # a Deployment written for upstream: single dashes, '=' and space forms, Go durations, empty addrs
    argv = ["-addr", f"127.0.0.1:{port}", "-landing-addr=", "-metrics-addr", "127.0.0.1:0", "--debug",
            "-gc-interval=1m", "-snapshots-enabled=true", f"-snapshot-path={snap}", "-snapshot-interval", "10m0s",
            "-redirect-endpoint="]
    service = Service(tmp_path, *argv)
    try:
        service.wait_listening(port)
        assert run(mesh_two(port)) == {"a", "b"}
    finally:
        code, stdout = service.stop()
    log = service.text()
    assert code == 0, log
    assert stdout == ""  # everything goes to stderr, with its level
    assert " INFO kubespan.discovery" in log and " INFO wgpy.metrics: serving metrics on 127.0.0.1:" in log
    assert "Traceback" not in log
    assert snap.exists()  # the final snapshot on SIGTERM

    again = Service(tmp_path, f"--addr=127.0.0.1:{port}", f"--snapshot-path={snap}")
    try:
        again.wait_listening(port)
        assert run(listed(port)) == {"a", "b"}  # restored from the snapshot
    finally:
        code, _ = again.stop()
    assert code == 0, again.text()


def test_start_failure_is_one_error_line_on_stderr(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = Service(tmp_path, "-addr", f"127.0.0.1:{port}", "-snapshots-enabled=false")
        try:
            code = service.proc.wait(30)
        finally:
            _, stdout = service.stop()
    log = service.text()
    assert code == 1 and stdout == ""
    errors = [line for line in log.splitlines() if " ERROR kubespan.discovery: " in line]
    assert len(errors) == 1 and "cannot listen" in errors[0], log
    assert "Traceback" not in log


def test_defaults_are_upstreams_except_the_proxy_headers() -> None:
    config = config_from_args(parse_args([]))
    assert config.listen == "[::]:3000"  # -addr ":3000"
    assert config.gc_interval == 60.0 and config.snapshot_interval == 600.0
    assert config.snapshot_path == "/var/discovery-service/state.binpb"
    assert config.redirect is None
    # the one deliberate difference: upstream defaults both to true
    assert not (config.trust_x_real_ip or config.trust_first_x_forwarded_for or config.trust_proxy_headers)


@pytest.mark.parametrize("argv, field, value", [
    (["-addr=:4000"], "listen", "[::]:4000"),
    (["--addr", "10.0.0.1:4000"], "listen", "10.0.0.1:4000"),
    (["--listen", "127.0.0.1:1"], "listen", "127.0.0.1:1"),
    (["-snapshots-enabled=false"], "snapshot_path", None),
    (["-snapshots-enabled=0"], "snapshot_path", None),
    (["--snapshots-enabled=F", "-snapshot-path", "/x"], "snapshot_path", None),
    (["--no-snapshots"], "snapshot_path", None),
    (["-snapshot-path", "/x", "-snapshots-enabled"], "snapshot_path", "/x"),
    (["-gc-interval", "1h30m"], "gc_interval", 5400.0),
    (["-snapshot-interval=300ms"], "snapshot_interval", 0.3),
    (["--snapshot-interval", "600"], "snapshot_interval", 600.0),
    (["-redirect-endpoint", "example.com:443"], "redirect", "example.com:443"),
    (["--redirect", "h:1"], "redirect", "h:1"),
    (["-certificate-path", "c.pem", "-key-path=k.pem"], "tls_cert", "c.pem"),
    (["-trust-x-real-ip"], "trust_x_real_ip", True),
    (["-trust-x-real-ip=true", "-trust-x-real-ip=false"], "trust_x_real_ip", False),
    (["-trust-first-x-forwarded-for=TRUE"], "trust_first_x_forwarded_for", True),
    (["--trust-proxy-headers"], "trust_proxy_headers", True),
])
def test_flags(argv: list[str], field: str, value: object) -> None:
    assert getattr(config_from_args(parse_args(argv)), field) == value


def test_accepted_flags_without_a_feature() -> None:
    args = parse_args(["-landing-addr", ":3001", "-metrics-addr=:2122", "-debug-addr", ":2123", "-debug=true"])
    assert args.landing_addr == ":3001" and args.metrics_addr == ":2122" and args.debug


@pytest.mark.parametrize("text, seconds", [("1m", 60.0), ("10m0s", 600.0), ("1h2m3s", 3723.0), ("1.5h", 5400.0),
                                           ("250ms", 0.25), ("30", 30.0), ("2.5", 2.5), ("1us", 1e-6)])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "1", "0", "-1m", "1x", "1m ", " ", "1m-2s", "nan", "inf", "1e400"])
def test_bad_durations(text: str) -> None:
    if text == "1":
        assert parse_duration(text) == 1.0  # a plain number is seconds
        return
    if text == "1m ":
        assert parse_duration(text) == 60.0  # surrounding blanks are trimmed
        return
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


TOKENS = st.sampled_from([
    "-addr", "--addr", "-addr=:1", ":3000", "127.0.0.1:0", "nonsense", "-debug", "-debug=maybe", "-debug=1",
    "-gc-interval", "1m", "-1s", "5x", "-snapshots-enabled=false", "-snapshots-enabled", "false",
    "-certificate-path", "-key-path", "c", "--rate-limit", "-3", "--rate-burst", "0", "--watch-buffer",
    "-landing-addr=", "-trust-x-real-ip=yes", "--", "-h", "-unknown", "=",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(TOKENS, st.text(max_size=6)), max_size=7))
def test_any_arguments_parse_or_exit_with_usage(argv: list[str]) -> None:
    args = parse_or_usage(argv)
    if args is None:
        return
    config = config_from_args(args)
    assert config.gc_interval > 0 and config.snapshot_interval > 0 and config.rate_burst >= 1
    assert (config.tls_cert is None) == (config.tls_key is None)
