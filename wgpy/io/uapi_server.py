"""The UAPI unix socket: ``/var/run/wireguard/<ifname>.sock``.

Contract (wireguard.md §9; wireguard-go ``ipc/uapi_linux.go`` and
``device/uapi.go`` ``IpcHandle``): ``open_uapi_socket`` creates the listening
socket (directory 0755, socket 0600 via umask 077; a live socket is refused
with ``UapiInUse``, a stale one is unlinked and rebound).  ``UapiServer``
serves any number of ``get=1``/``set=1`` operations per connection and
answers each with ``errno=N`` (negative on failure, as wireguard-go writes
it).  A failed ``set`` has read its whole transaction, changed nothing (the
codec validates everything first and the runner applies atomically) and the
connection stays usable.  An unknown operation line closes that connection
only.  ``watch_path`` notices when the socket file is removed or replaced.
The server holds no device state: it calls the codec and ``configure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Callable

from ..errors import UapiError
from ..uapi import EINVAL, DeviceView, parse_set, serialize_get
from ..config import DeviceUpdate
from ..keys import PublicKey
from .unixsock import SocketInUse, listen_private

log = logging.getLogger("wgpy.uapi")

SOCKET_DIR = "/var/run/wireguard"
LINE_LIMIT = 1 << 16
MAX_SET_LINES = 1 << 20
MAX_SET_BYTES = 32 << 20


class UapiInUse(Exception):
    """Another process is serving this interface's UAPI socket."""


def socket_path(ifname: str, directory: str = SOCKET_DIR) -> str:
    return os.path.join(directory, f"{ifname}.sock")


def open_uapi_socket(ifname: str, directory: str = SOCKET_DIR) -> socket.socket:
    """Bind and listen on the interface's socket; raise UapiInUse if it is live."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = socket_path(ifname, directory)
    try:
        return listen_private(path)
    except SocketInUse:
        raise UapiInUse(f"UAPI socket {path} is in use") from None


class UapiServer:
    """Serves get/set on a listening unix socket for one device."""

    def __init__(self, sock: socket.socket, device: DeviceView,
                 configure: Callable[[DeviceUpdate], None],
                 own_public_key: Callable[[], PublicKey | None],
                 before_get: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self._before_get = before_get
        """Called before a get is serialized (the native plane hands over its counters)."""
        self.path: str = sock.getsockname()
        self._device = device
        self._configure = configure
        self._own_public_key = own_public_key
        self._server: asyncio.AbstractServer | None = None
        self._inode = _inode(self.path)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.sock.setblocking(False)
        self._server = await asyncio.start_unix_server(self._serve, sock=self.sock, limit=LINE_LIMIT)

    async def close(self) -> None:
        """Stop serving and remove the socket file if it is still ours."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._inode is not None and _inode(self.path) == self._inode:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self._inode = None
        self.sock.close()

    async def watch_path(self, interval: float = 1.0) -> None:
        """Return once the socket file is deleted or replaced by another file."""
        while True:
            await asyncio.sleep(interval)
            if self._inode is None or _inode(self.path) != self._inode:
                return

    # ---------------------------------------------------------------- protocol

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while await self._one_operation(reader, writer):
                pass
        except (ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            log.debug("UAPI connection closed: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _one_operation(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        op = await reader.readline()
        if not op:
            return False
        if op == b"set=1\n":
            lines = await _read_transaction(reader)
            code = self.handle_set(lines)
            writer.write(f"errno={-code if code else 0}\n\n".encode())
        elif op == b"get=1\n":
            nxt = await reader.read(1)
            if not nxt:
                return False
            if nxt != b"\n":
                log.error("UAPI: trailing character in get")
                writer.write(f"errno={-EINVAL}\n\n".encode())
            else:
                if self._before_get is not None:
                    self._before_get()
                writer.write((serialize_get(self._device) + "errno=0\n\n").encode())
        else:
            log.error("invalid UAPI operation: %r", op[:40])
            return False
        await writer.drain()
        return True

    def handle_set(self, lines: list[str] | None) -> int:
        """Parse and apply one transaction; the positive errno, or 0."""
        if lines is None:
            log.error("UAPI: set transaction too large")
            return EINVAL
        try:
            update = parse_set(lines, self._own_public_key())
            self._configure(update)
        except UapiError as exc:
            log.error("UAPI set failed (errno %d): %s", exc.errno, exc)
            return exc.errno
        return 0


async def _read_transaction(reader: asyncio.StreamReader) -> list[str] | None:
    """The lines up to a blank line or EOF (a trailing CR dropped, like Go's Scanner).

    Returns None (after reading to the end) when the transaction exceeds the limit.
    """
    lines: list[str] = []
    too_many = False
    total = 0
    while True:
        raw = await reader.readline()
        if not raw:
            break
        total += len(raw)
        line = raw.rstrip(b"\n")
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            break
        if len(lines) >= MAX_SET_LINES or total > MAX_SET_BYTES:
            too_many = True
            continue
        lines.append(line.decode("utf-8", errors="replace"))
    return None if too_many else lines


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
