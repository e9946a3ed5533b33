"""Fixtures for the root integration tests: two namespaces joined by a veth.

Every namespace, link, process and UAPI socket a test creates is removed in
the fixture finalizer, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from netns import (
    SOCK_DIR, TUN4, TUN6, UNDER4, UNDER6, Daemon, Netns, Side, gen_key, run, start_daemon, suffix,
)


def _root_ok() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    if shutil.which("ip") is None or shutil.which("wg") is None:
        return "needs iproute2 and wireguard-tools"
    return None


@pytest.fixture
def netns_pair(tmp_path: Path) -> Iterator["Pair"]:
    reason = _root_ok()
    if reason:
        pytest.fail(f"root integration test: {reason}")
    pair = Pair(tmp_path)
    try:
        pair.setup()
        yield pair
    finally:
        pair.teardown()


class Pair:
    """Namespaces ``a`` and ``b`` joined by veth ``va``/``vb`` with v4+v6 underlay addresses."""

    def __init__(self, tmp: Path) -> None:
        self.tag = suffix()
        self.tmp = tmp
        self.a = Netns(f"wgpyt-{self.tag}-a")
        self.b = Netns(f"wgpyt-{self.tag}-b")
        self.daemons: list[Daemon] = []
        self.ifnames: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def setup(self) -> None:
        self.a, self.b = Netns.create(self.a.name), Netns.create(self.b.name)
        run(["ip", "link", "add", "va", "netns", self.a.name, "type", "veth", "peer", "vb", "netns", self.b.name])
        for ns, dev, i in ((self.a, "va", 0), (self.b, "vb", 1)):
            ns.run("ip", "addr", "add", f"{UNDER4[i]}/24", "dev", dev)
            ns.run("ip", "-6", "addr", "add", f"{UNDER6[i]}/64", "dev", dev, "nodad")
            ns.run("ip", "link", "set", dev, "up")

    def ifname(self, role: str) -> str:
        name = f"wgt{self.tag}{role}"[:15]
        self.ifnames.append(name)
        return name

    def start(self, kind_a: str, kind_b: str, port_a: int = 51820, port_b: int = 51821,
              env: dict[str, str] | None = None) -> tuple[Side, Side]:
        sides = []
        for ns, kind, role, i, port in ((self.a, kind_a, "a", 0, port_a), (self.b, kind_b, "b", 1, port_b)):
            daemon = self.add_daemon(ns, kind, role, env)
            sides.append(Side(ns, daemon, gen_key(), port, TUN4[i], TUN6[i], UNDER4[i], UNDER6[i]))
        return sides[0], sides[1]

    def add_daemon(self, ns: Netns, kind: str, role: str, env: dict[str, str] | None = None) -> Daemon:
        daemon = start_daemon(ns, self.ifname(role), kind, self.tmp, env)
        self.daemons.append(daemon)
        return daemon

    def logs(self) -> str:
        return "\n".join(f"--- {d.kind} {d.ifname}\n{d.log_text()[-3000:]}" for d in self.daemons)

    def teardown(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(5)
        for daemon in self.daemons:
            with contextlib.suppress(Exception):
                daemon.stop()
        for ns in (self.a, self.b):
            ns.delete()
        for name in self.ifnames:
            for suffix_ in (".sock", ".name"):
                with contextlib.suppress(OSError):
                    (SOCK_DIR / f"{name}{suffix_}").unlink()

