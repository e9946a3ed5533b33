"""Helpers for the deployment tests: a fake systemd notify socket, namespaces, processes.

``NotifySocket`` is what systemd is to a ``Type=notify`` service: a real unix
datagram socket (a path, or ``@name`` in the abstract namespace) whose name
goes into ``NOTIFY_SOCKET``; with ``SO_PASSCRED`` every datagram arrives with
the sender's pid, so a test knows which process said ``READY=1``.
Everything here is removed by its context manager, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, f"{argv}: {res.stdout}{res.stderr}"
    return res


def env(**extra: str) -> dict[str, str]:
    """The environment for a child that runs this checkout's code."""
    out = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WG_PROCESS_FOREGROUND")}
    out["PYTHONPATH"] = str(REPO)
    out.update(extra)
    return out


class NotifySocket:
    """A listening notify socket; ``name`` is the value for ``NOTIFY_SOCKET``."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if path is None:
            abstract = f"wgpy-test-notify-{secrets.token_hex(6)}"
            self.sock.bind(b"\0" + abstract.encode())
            self.name = "@" + abstract
        else:
            self.sock.bind(str(path))
            self.name = str(path)

    def receive(self, proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> tuple[dict[str, str], int]:
        """The next notification (its fields, its sender's pid); fails if ``proc`` exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.sock], [], [], 0.2)
            if readable:
                data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
                pid = next(UCRED.unpack(d[:UCRED.size])[0] for level, kind, d in ancdata
                           if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
                fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
                return fields, pid
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"process exited ({proc.returncode}) without notifying")
        raise AssertionError("no notification in time")

    def close(self) -> None:
        name = self.sock.getsockname()
        self.sock.close()
        if isinstance(name, str) and name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)


@contextlib.contextmanager
def notify_socket(path: Path | None = None) -> Iterator[NotifySocket]:
    sock = NotifySocket(path)
    try:
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def netns(prefix: str) -> Iterator[str]:
    """A fresh named network namespace with loopback up."""
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        raise AssertionError("needs root and /dev/net/tun")
    name = f"{prefix}-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def kill_pid(pid: int, timeout: float = 10) -> None:
    """SIGTERM a process that is not our child, SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def popen(argv: Sequence[str], log: Path, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=environ, cwd="/")
