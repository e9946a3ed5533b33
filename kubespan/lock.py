"""One agent per state directory and per interface: exclusive locks held for the agent's whole life.

Contract: ``AgentLock.acquire(state_dir, ifname)`` takes two ``fcntl.flock`` locks without waiting: one on
``<lock_dir>/<ifname>.netns-<inode>.lock`` (an interface name is unique within a network namespace only,
and agents in different namespaces share ``/run``, so the key is the name plus the inode of
``/proc/self/ns/net``) and, when the state directory exists or ``create_state_dir`` is set, one on
``<state_dir>/agent.lock``.  When another process holds either, it raises ``AgentLocked`` (a one-line
``KubespanError`` naming what is in use and the owner's PID) and has changed nothing: only lock files
are created.  A lock file holds its owner's PID, for that message only.  ``release()`` (or leaving the
``with`` block) removes the files while still holding the locks, then closes them; a process that dies
loses its locks with its file descriptors, so a crash leaves at most a stale file, which the next agent
locks.  ``acquire`` re-checks that the file it locked is still the one at the path (an owner may have
removed it in between) a bounded number of times.  No thread safety needed: one agent, one call.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from types import TracebackType

from .errors import KubespanError

LOCK_DIR = "/run/kubespan"
STATE_LOCK_FILE = "agent.lock"
_ATTEMPTS = 5


class AgentLocked(KubespanError):
    """Another kubespan agent owns the state directory or the interface (``what``, ``owner`` PID or None)."""

    def __init__(self, what: str, owner: int | None) -> None:
        by = f" (pid {owner})" if owner else ""
        super().__init__(f"{what} is in use by another kubespan agent{by}; stop that one first")
        self.what = what
        self.owner = owner


def netns_id() -> str:
    """The inode of this process's network namespace (``host`` when /proc does not say)."""
    try:
        return str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        return "host"


def _owner(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    return None


def _lock(path: str, what: str) -> int:
    """An open descriptor of ``path`` holding its exclusive lock, with our PID written in it."""
    for _ in range(_ATTEMPTS):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise AgentLocked(what, owner) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            here = os.stat(path, follow_symlinks=False)
            mine = os.fstat(fd)
            current = (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return fd
        os.close(fd)  # the owner removed the file after we opened it: lock the new one
    raise KubespanError(f"{path}: cannot take the lock (the file keeps being replaced)")


class AgentLock:
    """The locks one agent holds (see the module contract)."""

    def __init__(self) -> None:
        self._held: list[tuple[str, int]] = []

    @classmethod
    def acquire(cls, state_dir: str, ifname: str, *, create_state_dir: bool = True,
                lock_dir: str = LOCK_DIR) -> AgentLock:
        lock = cls()
        try:
            os.makedirs(lock_dir, mode=0o755, exist_ok=True)
            path = os.path.join(lock_dir, f"{ifname}.netns-{netns_id()}.lock")
            lock._held.append((path, _lock(path, f"interface {ifname} (in this network namespace)")))
            if create_state_dir:
                os.makedirs(state_dir, mode=0o700, exist_ok=True)
            if os.path.isdir(state_dir):
                path = os.path.join(state_dir, STATE_LOCK_FILE)
                lock._held.append((path, _lock(path, f"state dir {state_dir}")))
        except BaseException:
            lock.release()
            raise
        return lock

    def release(self) -> None:
        """Remove the lock files and drop the locks (idempotent)."""
        while self._held:
            path, fd = self._held.pop()
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)

    def __enter__(self) -> AgentLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
