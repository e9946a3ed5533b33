"""The ``wgpy`` daemon command line, the same contract as wireguard-go.

Contract (wireguard.md §9): ``wgpy [-f|--foreground] IFNAME`` and
``wgpy --version``.  The TUN device and the UAPI listening socket are opened
first (or adopted from ``WG_TUN_FD``/``WG_UAPI_FD``); unless ``-f`` or
``WG_PROCESS_FOREGROUND=1``, the process then re-executes itself with those
two fds as 3 and 4 and ``WG_PROCESS_FOREGROUND=1`` (stdio to /dev/null unless
``LOG_LEVEL`` is set), and the parent exits 0 once the child reports that it
serves (exit 1 if it fails, or does not within ``WGPY_READY_TIMEOUT``
seconds, default 30: the child is then sent SIGTERM).  A name whose TUN is
held by another process, or whose UAPI socket is live, is refused "in use"
(exit 1).  ``LOG_LEVEL`` is verbose|debug|error|silent (default error).  The
foreground process runs until SIGINT/SIGTERM, until its TUN is deleted, or
until its UAPI socket file is removed, then removes the socket and exits 0.
SIGUSR1 logs the drop counters (at the verbose level).  At ``verbose`` each
peer's handshake and session events are logged as wireguard-go words them
(``wgpy.io.eventlog``).  ``WGPY_METRICS_ADDR=HOST:PORT`` (or ``:PORT``) serves
Prometheus metrics at ``/metrics`` (``wgpy.io.metrics``); a malformed value
is refused before anything is created (exit 1), an address that cannot be
bound fails the start.
No protocol logic here: it wires ``wgpy.interface.Interface`` to the fds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import platform
import select
import signal
import socket
import sys
from typing import Sequence

from ._version import __version__
from .constants import DEFAULT_MTU
from .io import sdnotify
from .io.tun_linux import TunDevice
from .io.uapi_server import UapiInUse, open_uapi_socket

log = logging.getLogger("wgpy")

ENV_TUN_FD = "WG_TUN_FD"
ENV_UAPI_FD = "WG_UAPI_FD"
ENV_FOREGROUND = "WG_PROCESS_FOREGROUND"
ENV_READY_FD = "WGPY_READY_FD"
ENV_READY_TIMEOUT = "WGPY_READY_TIMEOUT"
ENV_METRICS_ADDR = "WGPY_METRICS_ADDR"
READY_TIMEOUT = 30.0
LEVELS = {"verbose": logging.INFO, "debug": logging.DEBUG, "error": logging.ERROR, "silent": logging.CRITICAL + 10}

USAGE = "Usage: wgpy [-f/--foreground] INTERFACE-NAME\n"


def version_text() -> str:
    return (f"wgpy v{__version__}\n\nUserspace WireGuard daemon for {sys.platform}-{platform.machine()} "
            f"(Python {platform.python_version()}).\nCompatible with the wireguard-go command line.\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 1 and args[0] in ("--version", "-v"):
        sys.stdout.write(version_text())
        return 0
    foreground = False
    if len(args) == 2 and args[0] in ("-f", "--foreground"):
        foreground, args = True, args[1:]
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write(USAGE)
        return 1
    name = args[0]
    foreground = foreground or os.environ.get(ENV_FOREGROUND) == "1"
    level_name = os.environ.get("LOG_LEVEL", "")
    logging.basicConfig(level=LEVELS.get(level_name, logging.ERROR), stream=sys.stderr,
                        format=f"%(levelname)s: ({name}) %(asctime)s %(message)s")
    metrics_addr = os.environ.get(ENV_METRICS_ADDR) or None
    if metrics_addr is not None:
        from .io.metrics_http import parse_addr  # imported late: the CLI's --version stays light

        try:
            parse_addr(metrics_addr)
        except ValueError as exc:
            log.error("%s: %s", ENV_METRICS_ADDR, exc)
            return 1
    try:
        tun = _open_tun(name)
    except (OSError, ValueError) as exc:
        busy = isinstance(exc, OSError) and exc.errno == errno.EBUSY  # another process has the TUN attached
        log.error("Failed to create TUN device: %s", f"{name} is in use" if busy else exc)
        return 1
    try:
        uapi = _open_uapi(tun.name)
    except (OSError, UapiInUse) as exc:
        log.error("UAPI listen error: %s", exc)
        tun.close()
        return 1
    if not foreground:
        return _daemonize(tun, uapi, level_name, [name])
    return _run_foreground(tun, uapi)


def _open_tun(name: str) -> TunDevice:
    fd = os.environ.get(ENV_TUN_FD)
    if fd:
        return TunDevice.from_fd(int(fd))
    from .interface import open_tun  # imported late: the CLI's --version stays light

    return open_tun(name, DEFAULT_MTU)


def _open_uapi(name: str) -> socket.socket:
    fd = os.environ.get(ENV_UAPI_FD)
    if fd:
        sock = socket.socket(fileno=int(fd))
        sock.set_inheritable(False)
        return sock
    return open_uapi_socket(name)


# ------------------------------------------------------------------ daemonize


def _daemonize(tun: TunDevice, uapi: socket.socket, level_name: str, args: list[str]) -> int:
    """Re-exec in the background with the fds as 3 (TUN), 4 (UAPI), 5 (ready pipe)."""
    ready_r, ready_w = os.pipe()
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (tun.fd, uapi.fileno(), ready_w)]
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    verbose = bool(level_name) and level_name != "silent"
    stdio = [devnull, 1 if verbose else devnull, 2 if verbose else devnull]
    actions = [(os.POSIX_SPAWN_DUP2, src, dst) for dst, src in enumerate(stdio)]
    actions += [(os.POSIX_SPAWN_DUP2, src, dst) for dst, src in zip((3, 4, 5), high)]
    env = dict(os.environ, **{ENV_TUN_FD: "3", ENV_UAPI_FD: "4", ENV_FOREGROUND: "1", ENV_READY_FD: "5"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(), env.get("PYTHONPATH", "")]))
    try:
        pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "wgpy", *args], env,
                             file_actions=actions, setsid=True)
    except OSError as exc:
        log.error("Failed to daemonize: %s", exc)
        return 1
    finally:
        for fd in (*high, devnull, ready_w):
            os.close(fd)
        tun.close()
        uapi.close()  # closing does not unlink: the child owns the socket file now
    return _wait_ready(ready_r, pid)


def _wait_ready(ready_r: int, pid: int) -> int:
    try:
        readable, _, _ = select.select([ready_r], [], [], _ready_timeout())
        data = os.read(ready_r, 1) if readable else b"?"
    finally:
        os.close(ready_r)
    if data == b"1":
        return 0
    if data == b"?":
        log.error("daemon (pid %d) did not report ready within %gs; stopping it", pid, _ready_timeout())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        return 1
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    log.error("daemon failed to start")
    return 1


def _ready_timeout() -> float:
    try:
        return max(0.1, float(os.environ.get(ENV_READY_TIMEOUT, READY_TIMEOUT)))
    except ValueError:
        return READY_TIMEOUT


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ foreground


_early_signals: list[int] = []


def _run_foreground(tun: TunDevice, uapi: socket.socket) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):  # until the loop takes over: remember, exit cleanly later
        signal.signal(sig, lambda signum, _frame: _early_signals.append(signum))
    ready_fd = os.environ.pop(ENV_READY_FD, None)
    coro = _serve(tun, uapi, int(ready_fd) if ready_fd else None)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    if os.environ.get("WGPY_LOOP") == "asyncio":
        return asyncio.run(coro)
    return int(uvloop.run(coro))


async def _serve(tun: TunDevice, uapi: socket.socket, ready_fd: int | None) -> int:
    from .interface import Interface  # imported late: the CLI's --version stays light

    try:
        iface = await Interface.create(tun.name, tun=tun, uapi=uapi,
                                       metrics_addr=os.environ.get(ENV_METRICS_ADDR) or None)
    except OSError as exc:
        log.error("Failed to start device: %s", exc)
        tun.close()
        uapi.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if _early_signals:
        stop.set()
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.info("stats: drops=%s", json.dumps(iface.drops())))
    log.info("Device started (UAPI listener on %s)", uapi.getsockname())
    _signal_ready(ready_fd)
    stopper = asyncio.ensure_future(stop.wait())
    closed = asyncio.ensure_future(iface.wait_closed())
    await asyncio.wait({stopper, closed}, return_when=asyncio.FIRST_COMPLETED)
    reason = closed.result() if closed.done() else "signal"
    stopper.cancel()
    closed.cancel()
    log.info("Shutting down (%s); drops=%s", reason, json.dumps(iface.drops()))
    await iface.close()
    return 0


def _signal_ready(fd: int | None) -> None:
    sdnotify.ready(main_pid=fd is not None)  # systemd Type=notify; a daemonized child names itself MAINPID
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, b"1")
    with contextlib.suppress(OSError):
        os.close(fd)
