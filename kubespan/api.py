"""The agent's local, root-only resource API on a unix socket.

Contract: ``ApiServer(path, store, node)`` listens on ``path`` (default
``/run/kubespan/agent.sock``; the directory is created 0755, the socket is
0600).  A live socket at ``path`` is refused with ``ApiInUse``; a stale one is
replaced.  Protocol, one exchange per connection, UTF-8 JSON lines:

    request:   {"get": "<type name or alias>"}\\n
    response:  {"node": "<node>", "type": "<fq type>", "items": [<resource>...]}\\n
           or  {"error": "<message>"}\\n
    request:   {"leave": true}\\n   (``kubespan leave``; only when the agent passed ``on_leave``)
    response:  what ``on_leave`` returns, e.g. {"left": "<node ID>", ...}\\n

A resource is ``{"metadata": {...}, "spec": {...}}`` (``resources.resource``).
Requests are bounded (one line of at most 4 KiB, 5 s to send it).  A ``get``
only reads the ``ResourceStore``; ``leave`` is the one request that changes
agent state, and only through the agent's own ``on_leave``.  ``request`` is
the blocking client used by ``kubespan get``, ``leave`` the one used by
``kubespan leave``.  Must run on the agent's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from wgpy import SocketInUse, listen_private

from .errors import KubespanError
from .resources import ResourceStore, resolve_type

log = logging.getLogger("kubespan.api")

DEFAULT_API_SOCKET = "/run/kubespan/agent.sock"
API_SOCKET_ENV = "KUBESPAN_API_SOCKET"
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 5.0
MAX_RESPONSE = 64 << 20


class ApiInUse(KubespanError):
    """Another agent is serving this API socket."""


class AgentNotRunning(KubespanError):
    """Nothing answers on the API socket."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no kubespan agent is running (socket {path})")
        self.path = path


def answer(store: ResourceStore, node: str, line: bytes) -> dict[str, Any]:
    """The response to one request line (pure apart from reading ``store``)."""
    try:
        request = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {"error": "request is not a JSON line"}
    if not isinstance(request, dict) or not isinstance(request.get("get"), str):
        return {"error": 'request must be {"get": "<resource type>"}'}
    rtype = resolve_type(request["get"])
    if rtype is None:
        return {"error": f"unknown resource type {request['get'][:64]!r}"}
    return {"node": node, "type": rtype.type, "items": store.list(rtype)}


class ApiServer:
    """Serves ``store`` on a unix socket."""

    def __init__(self, path: str, store: ResourceStore, node: str,
                 on_leave: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> None:
        self.path = path
        self.store = store
        self.node = node
        self.on_leave = on_leave
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None

    async def start(self) -> None:
        try:
            sock = listen_private(self.path)
        except SocketInUse:
            raise ApiInUse(f"API socket {self.path} is in use by another agent") from None
        os.chmod(self.path, 0o600)
        self._inode = os.stat(self.path).st_ino
        self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=MAX_REQUEST)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
                if self.on_leave is not None and _is_leave(line):
                    reply = await self.on_leave()
                else:
                    reply = answer(self.store, self.node, line)
            except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
                reply = {"error": "request too long or too slow"}
            writer.write(json.dumps(reply, separators=(",", ":")).encode("utf-8") + b"\n")
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            log.debug("API client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)


def _is_leave(line: bytes) -> bool:
    with contextlib.suppress(UnicodeDecodeError, ValueError):
        return bool(json.loads(line.decode("utf-8")) == {"leave": True})
    return False


def request(path: str, type_name: str, timeout: float = 10.0) -> dict[str, Any]:
    """Ask the agent at ``path`` for one resource type (blocking client)."""
    return _exchange(path, {"get": type_name}, timeout)


def leave(path: str, timeout: float = 30.0) -> dict[str, Any]:
    """Ask the agent at ``path`` to leave the cluster (blocking client; ``AgentNotRunning`` if none)."""
    return _exchange(path, {"leave": True}, timeout)


def _exchange(path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise AgentNotRunning(path) from None
        except OSError as exc:
            raise KubespanError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        sock.sendall(json.dumps(message).encode("utf-8") + b"\n")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_RESPONSE:
                raise KubespanError("response from the agent is too large")
    except socket.timeout:
        raise KubespanError(f"the agent at {path} did not answer in {timeout:g} s") from None
    finally:
        sock.close()
    try:
        reply = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KubespanError("malformed response from the agent") from None
    if not isinstance(reply, dict):
        raise KubespanError("malformed response from the agent")
    if "error" in reply:
        raise KubespanError(str(reply["error"]))
    return reply
