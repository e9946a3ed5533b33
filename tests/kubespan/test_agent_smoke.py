"""Smoke test: one ``kubespan agent`` process in a fresh network namespace (root).

A discovery service runs in the same namespace on its loopback.  The agent
must create ``kubespan``, install its rule/routes/nft table, serve the
resource API (``get`` and ``get -w``) and UAPI, and on SIGTERM exit 0 having
removed all of it, ending the watch.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubespan.config import render_gen_config
from kubespan.get import json_stream

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check:
        assert res.returncode == 0, f"{argv}: {res.stderr}"
    return res


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def random_port() -> int:
    """Any port works: the namespace is fresh, so nothing else listens on its loopback."""
    return 20000 + secrets.randbelow(20000)


class Proc:
    def __init__(self, ns: str, argv: list[str], log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(log, "wb") as out:
            self.p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                                      env=env, cwd=str(REPO))
        self.log = log

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or shutil.which("ip") is None:
        pytest.fail("agent smoke test: needs root, /dev/net/tun and iproute2")
    name = f"ksag-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def uapi_get(path: str) -> str:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(b"get=1\n\n")
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data.decode()


def kubespan_get(api: str, resource: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "kubespan", "get", resource, "-o", "json", "--api-socket", api],
                          capture_output=True, text=True, timeout=30, env=env, cwd=str(REPO))


def test_agent_starts_serves_and_cleans_up(netns: str, tmp_path: Path) -> None:
    port = random_port()
    config = tmp_path / "machine.yaml"
    text = render_gen_config(f"http://127.0.0.1:{port}", legacy=False)
    text += "---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: smoke-node\n"
    config.write_text(text)
    api, uapi = str(tmp_path / "api" / "agent.sock"), str(tmp_path / "wg" / "kubespan.sock")
    service = Proc(netns, [sys.executable, "-m", "kubespan", "discovery-service", "--listen",
                           f"127.0.0.1:{port}", "--no-snapshots"], tmp_path / "service.log")
    agent: Proc | None = None
    watch: subprocess.Popen[str] | None = None
    try:
        agent = Proc(netns, [sys.executable, "-m", "kubespan", "agent", "--config", str(config), "--state-dir",
                             str(tmp_path / "state"), "--api-socket", api, "--uapi-socket", uapi,
                             "--reconcile-interval", "1", "--mac", "02:00:00:00:00:01", "--log-level", "debug"],
                     tmp_path / "agent.log")
        wait_for(lambda: os.path.exists(api) or agent.p.poll() is not None, 30, "the API socket")
        assert agent.p.poll() is None, agent.text()
        watch = subprocess.Popen([sys.executable, "-m", "kubespan", "get", "affiliates", "-w", "-o", "json",
                                  "--api-socket", api], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=str(REPO))
        wait_for(lambda: "nft table inet kubespan written" in agent.text() or "routing:" in agent.text()
                 or agent.p.poll() is not None, 30, "the first reconcile")

        res = kubespan_get(api, "kubespanidentities")
        assert res.returncode == 0, res.stderr
        ident = json_stream(res.stdout)
        assert [i["metadata"]["id"] for i in ident] == ["local"]
        assert ident[0]["metadata"]["owner"] == "kubespan.IdentityController"
        (cluster,) = json_stream(kubespan_get(api, "identities").stdout)
        assert cluster["metadata"]["type"] == "Identities.cluster.talos.dev" and cluster["spec"]["nodeId"]
        address = ident[0]["spec"]["address"].removesuffix("/128")
        assert address.endswith(":0:ff:fe00:1")  # EUI-64 of 02:00:00:00:00:01
        wait_for(lambda: f"{address}/64" in sh("ip", "-n", netns, "addr", "show", "kubespan").stdout, 30,
                 "the KubeSpan address")
        assert "32500:" in sh("ip", "-n", netns, "rule").stdout
        assert "dev kubespan" in sh("ip", "-n", netns, "route", "show", "table", "180").stdout + \
            sh("ip", "-n", netns, "-6", "route", "show", "table", "180").stdout
        members = json_stream(kubespan_get(api, "members").stdout)
        assert [m["metadata"]["id"] for m in members] == ["smoke-node"]
        dump = uapi_get(uapi)
        assert "listen_port=51820" in dump and "fwmark=32" in dump and "errno=0" in dump

        assert agent.stop() == 0, agent.text()
        # the watch saw the local affiliate appear (at bootstrap or as an event) and ended with the agent
        watched, watch_err = watch.communicate(timeout=30)
        assert watch.returncode == 0, watch_err
        events = json_stream(watched)
        assert any(e["event"] == "created" and e["spec"]["hostname"] == "smoke-node" for e in events), events
        log = agent.text()
        # no kubespan error or traceback (wgpy's own data-plane logs are wgpy's tests' business)
        assert "ERROR kubespan" not in log, log
        assert f'File "{REPO / "kubespan"}' not in log, log
        assert "kubespan" not in sh("ip", "-n", netns, "link").stdout
        assert "32500:" not in sh("ip", "-n", netns, "rule").stdout + sh("ip", "-n", netns, "-6", "rule").stdout
        assert sh("ip", "-n", netns, "route", "show", "table", "180", check=False).stdout == ""
        assert "kubespan" not in sh("ip", "netns", "exec", netns, "nft", "list", "ruleset").stdout
        assert not os.path.exists(api) and not os.path.exists(uapi)
        res = kubespan_get(api, "kubespanidentities")
        assert res.returncode == 1 and "no kubespan agent is running" in res.stderr
    finally:
        if agent is not None:
            agent.stop()
        if watch is not None and watch.poll() is None:
            watch.kill()
            watch.communicate(timeout=10)
        service.stop()
