"""The wgpy daemon's start-up contract (wireguard.md §9, the README's promises): a second
``wgpy IFNAME`` for a live interface is refused "in use", and a daemonizing parent whose
child never says it serves exits non-zero (bounded by ``WGPY_READY_TIMEOUT``).

The child that cannot become ready is the real ``python -m wgpy`` child with a
``sitecustomize`` on its path that hangs (or exits) before the daemon code runs,
only in the re-executed child (it alone has ``WGPY_READY_FD``).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from deploy_support import PYTHON, alive, env, netns, notify_socket, popen, sh, stop
from wgpy.io.unixsock import is_live

pytestmark = pytest.mark.root

SOCK_DIR = Path("/var/run/wireguard")


def _wgpy(ns: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, PYTHON, "-m", "wgpy", *args], capture_output=True, text=True,
                          timeout=120, env=env(**extra), cwd="/")


def _link_gone(ns: str, name: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sh("ip", "-n", ns, "link", "show", name, check=False).returncode != 0:
            return True
        time.sleep(0.1)
    return False


def test_a_second_daemon_for_a_live_interface_says_in_use(tmp_path: Path) -> None:
    name = f"wgu{os.urandom(3).hex()}"
    with netns("h6u") as ns, notify_socket(tmp_path / "notify") as sock:
        first = popen(["ip", "netns", "exec", ns, PYTHON, "-m", "wgpy", "-f", name], tmp_path / "first.log",
                      env(NOTIFY_SOCKET=sock.name))
        try:
            sock.receive(first)
            for args in ([name], ["-f", name]):
                res = _wgpy(ns, *args)
                assert res.returncode == 1, res
                assert len(res.stderr.splitlines()) == 1 and f"{name} is in use" in res.stderr, res.stderr
                assert res.stdout == ""
            assert first.poll() is None and is_live(str(SOCK_DIR / f"{name}.sock"))  # the first one is untouched
        finally:
            assert stop(first) == 0, (tmp_path / "first.log").read_text()


@pytest.mark.parametrize("failure", ["hang", "exit"])
def test_a_child_that_never_serves_makes_the_parent_fail(failure: str, tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    action = "time.sleep(3600)" if failure == "hang" else "os._exit(3)"
    (hook / "sitecustomize.py").write_text(
        f"import os, time\nif 'WGPY_READY_FD' in os.environ:\n    {action}\n")
    name = f"wgr{os.urandom(3).hex()}"
    with netns("h6r") as ns:
        try:
            res = _wgpy(ns, name, PYTHONPATH=f"{hook}:{env()['PYTHONPATH']}", WGPY_READY_TIMEOUT="3")
            assert res.returncode == 1, res
            lines = res.stderr.splitlines()
            assert len(lines) == 1, res.stderr
            expected = "did not report ready within 3s" if failure == "hang" else "daemon failed to start"
            assert expected in lines[0], lines
            # nothing is left serving: the hung child was stopped, its TUN went with it
            assert _link_gone(ns, name)
            pids = [int(p) for p in sh("ip", "netns", "pids", ns).stdout.split()]
            assert not [p for p in pids if alive(p)], pids
        finally:
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                sh("kill", "-9", pid, check=False)
            (SOCK_DIR / f"{name}.sock").unlink(missing_ok=True)  # the killed child could not remove it
