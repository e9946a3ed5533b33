"""Real etcd clusters for the discovery tests (Debian's etcd-server, 3.4+).

``EtcdCluster`` runs N members on 127.0.0.1 with random free ports and data
dirs under a test's tmp dir; ``stop``/``start``/``kill`` one member;
``close`` kills every process it started (the fixtures call it on failure
too).  Readiness waits are bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localports import free_port

from kubespan.discovery.etcd import EtcdClient, EtcdConfig, EtcdError
from kubespan.discovery.proto import etcd_pb2 as epb

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class EtcdCluster:
    def __init__(self, tmp: Path, members: int = 1, *, extra: tuple[str, ...] = (), scheme: str = "http") -> None:
        self.tmp = tmp
        self.names = [f"m{i}" for i in range(members)]
        self.client_ports = {n: free_port() for n in self.names}
        self.peer_ports = {n: free_port() for n in self.names}
        self.extra = extra
        self.scheme = scheme
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._started: set[str] = set()

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_ports[name]}"

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self.url(n) for n in self.names)

    def start(self, name: str) -> None:
        peers = ",".join(f"{n}=http://127.0.0.1:{self.peer_ports[n]}" for n in self.names)
        log = open(self.tmp / f"etcd-{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [ETCD, "--name", name, "--data-dir", str(self.tmp / f"etcd-{name}"),
             "--listen-client-urls", self.url(name), "--advertise-client-urls", self.url(name),
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[name]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[name]}",
             "--initial-cluster", peers, "--initial-cluster-token", f"t{os.getpid()}",
             "--initial-cluster-state", "new", "--heartbeat-interval", "50", "--election-timeout", "500",
             "--logger", "zap", *self.extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self._started.add(name)

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self, name: str) -> None:
        self.stop(name, signal.SIGKILL)

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def log_tail(self) -> str:
        out = []
        for name in self.names:
            path = self.tmp / f"etcd-{name}.log"
            if path.exists():
                out.append(f"--- {name}\n" + path.read_text(errors="replace")[-1500:])
        return "\n".join(out)

    async def wait_ready(self, config: EtcdConfig | None = None, timeout: float = 30.0) -> None:
        """Until a linearizable Range succeeds on every running member (bounded)."""
        deadline = time.monotonic() + timeout
        for name in list(self.procs):
            cfg = config or EtcdConfig((self.url(name),))
            client = EtcdClient(EtcdConfig((self.url(name),), cfg.ca_file, cfg.cert_file, cfg.key_file,
                                           cfg.username, cfg.password))
            try:
                while True:
                    try:
                        await client.range(epb.RangeRequest(key=b"ready"))
                        break
                    except EtcdError:
                        if time.monotonic() > deadline or self.procs[name].poll() is not None:
                            raise RuntimeError(f"etcd {name} not ready:\n{self.log_tail()}") from None
                        await asyncio.sleep(0.1)
            finally:
                await client.close()


@pytest.fixture
def etcd1(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path, 1)
    cluster.start_all()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path, 3)
    cluster.start_all()
    try:
        yield cluster
    finally:
        cluster.close()
