"""Commands, network namespaces and child processes: the one helper the lab, the tests and the bench share.

Contract: ``run`` executes one command with a timeout and raises ``CommandError`` (a ``LabError``, which is
a ``RuntimeError``) when ``check`` is set and it fails; the message has the command line, the exit code
and its output.  ``Netns`` names a network namespace: ``create`` adds it (with ``lo`` up), ``run`` /
``popen`` / ``argv`` run commands inside it with ``ip netns exec``, ``delete`` kills what is left in it and
removes it (never raises).  ``stop_process`` ends one process this program started, by its pid: SIGTERM,
then SIGKILL.  Nothing here touches the host's own namespace or sends traffic; callers own the names
(random suffixes) and call ``delete``.  Not part of the installed packages; must not import pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any


class LabError(RuntimeError):
    """A lab step failed (command error, process died, wait timed out)."""


class CommandError(LabError):
    """A command exited non-zero (``returncode``, ``output``: stdout then stderr)."""

    def __init__(self, cmd: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(f"{' '.join(cmd)} failed ({returncode}): {output}".strip())
        self.returncode = returncode
        self.output = output


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (captured, text) within ``timeout`` seconds; ``CommandError`` on failure if ``check``."""
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input, env=env)
    if check and res.returncode != 0:
        raise CommandError(cmd, res.returncode, f"{res.stdout}{res.stderr}")
    return res


@dataclasses.dataclass
class Netns:
    """A network namespace by name; ``env`` is the environment of commands run in it (None: inherit)."""

    name: str
    env: dict[str, str] | None = None

    @classmethod
    def create(cls, name: str, env: dict[str, str] | None = None) -> Netns:
        """``ip netns add NAME`` and bring its ``lo`` up."""
        ns = cls(name, env)
        run(["ip", "netns", "add", name])
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 30, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run(self.argv(cmd), check=check, timeout=timeout, input=input, env=env if env is not None else self.env)

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        kw.setdefault("env", self.env)
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.argv(cmd), **kw)
        return proc

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def wg(self, *args: str, check: bool = True) -> str:
        return self.run("wg", *args, check=check).stdout

    def pids(self) -> list[int]:
        """The processes still running in the namespace."""
        out = run(["ip", "netns", "pids", self.name], check=False).stdout.split()
        return [int(pid) for pid in out if pid.isdigit()]

    def delete(self) -> None:
        """SIGKILL whatever still runs in the namespace, then delete it (and its links).  Never raises."""
        with contextlib.suppress(Exception):
            for pid in self.pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            run(["ip", "netns", "del", self.name], check=False)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> int | None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit code (None if it never ended)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    return proc.poll()
