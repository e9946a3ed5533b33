"""Bench plumbing: commands, namespaces, process accounting and cleanup.

Contract: everything the bench creates (network namespaces, daemons, iperf3
servers, UAPI socket files) is registered here and removed by ``cleanup()``,
which runs from ``try/finally`` in ``run.py``, from ``atexit`` and from the
SIGINT/SIGTERM handlers.  Only processes started here are ever signalled, by
pid.  Every command runs with a timeout.  Nothing here sends traffic.
Commands, namespaces and process stops are ``lab.netns``'s; this module adds
the bench's registry of what to clean up.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab import netns as _netns  # noqa: E402
from lab.netns import run, stop_process  # noqa: E402

__all__ = ["Netns", "run"]  # and the helpers below
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
SOCK_DIR = Path("/var/run/wireguard")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

_namespaces: list[str] = []
_procs: list[subprocess.Popen[bytes]] = []
_socks: list[Path] = []
_tmpdirs: list[Path] = []
_cleaned = False
keep_logs = False


def rand_suffix(n: int = 3) -> str:
    return secrets.token_hex(n)


class Netns(_netns.Netns):
    """A network namespace created (and later deleted by ``cleanup()``) by the bench; its processes are
    registered for cleanup too.  ``run`` failures raise ``lab.netns.CommandError`` (a RuntimeError)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        run(["ip", "netns", "add", name])
        _namespaces.append(name)
        self.run("ip", "link", "set", "lo", "up")

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = super().popen(cmd, **kw)
        _procs.append(proc)
        return proc


def register_sock(path: Path) -> None:
    _socks.append(path)


def register_tmpdir(path: Path) -> None:
    """A directory of logs and configs (with throwaway keys), removed at cleanup unless ``keep_logs``."""
    _tmpdirs.append(path)


def stop_proc(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL, one process the bench started (by its pid)."""
    stop_process(proc, timeout)
    if proc in _procs:
        _procs.remove(proc)


def cleanup() -> None:
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    for proc in list(_procs):
        stop_proc(proc, timeout=5)
    for name in list(_namespaces):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        _namespaces.remove(name)
    for path in _socks:
        try:
            path.unlink()
        except OSError:
            pass
    for path in _tmpdirs:
        if keep_logs:
            print(f"[bench] logs kept in {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    atexit.register(cleanup)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def proc_cpu(pid: int) -> float:
    """utime + stime of a whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid: int) -> int:
    """Resident set size in bytes (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def system_busy() -> float:
    """CPU seconds the whole machine spent busy so far (all cores; /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def proc_threads(pid: int) -> int:
    """Number of threads of a process (a hint of which data plane a wgpy daemon runs)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def gen_private() -> tuple[str, str]:
    """(private, public) keys in base64, from the cryptography package."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = serialization.Encoding.Raw
    priv = X25519PrivateKey.generate()
    sk = priv.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pk = priv.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(sk).decode(), base64.b64encode(pk).decode()
