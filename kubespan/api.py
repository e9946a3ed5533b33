"""The agent's local, root-only resource API on a unix socket.

Contract: ``ApiServer(path, store, node)`` listens on ``path`` (default
``/run/kubespan/agent.sock``; the directory is created 0755, the socket is
0600).  A live socket at ``path`` is refused with ``ApiInUse``; a stale one is
replaced.  UTF-8 JSON lines, one request per connection:

    {"get": "<type>"[, "id": "<id>"]}\\n
        -> {"node": "<node>", "type": "<fq type>", "items": [<resource>...]}\\n
    {"watch": "<type>"[, "id": "<id>"]}\\n
        -> {"node": "<node>", "type": "<fq type>"}\\n
           {"event": "created", "resource": <resource>}\\n   one per current resource
           {"event": "bootstrapped"}\\n
           {"event": "created"|"updated"|"destroyed", "resource": <resource>}\\n  as they happen
    {"leave": true}\\n   (``kubespan leave``; only when the agent passed ``on_leave``)
        -> what ``on_leave`` returns, e.g. {"left": "<node ID>", ...}\\n
    any error -> {"error": "<message>"}\\n and the connection ends

A resource is ``{"metadata": {...}, "spec": {...}}`` (``resources.resource``); a
``destroyed`` event carries the last state.  ``get`` with an ``id`` that does
not exist is an error, as in Talos; ``watch`` of one ``id`` sends it when it
exists and then its changes.  A watch ends when the client closes its side,
when the server closes, or, with an error line, when the client falls
``WATCH_QUEUE`` events behind.  Requests are bounded (one line of at most
4 KiB, 5 s to send it; every write must drain within 5 s; at most
``MAX_WATCHERS`` watches).  The server only reads the ``ResourceStore`` and
subscribes to it; ``leave`` is the one request that changes agent state, and
only through the agent's own ``on_leave``.  ``request`` and ``watch`` are the
blocking clients of ``kubespan get``, ``leave`` the one of ``kubespan leave``.
The server must run on the agent's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from wgpy import SocketInUse, listen_private

from .errors import KubespanError
from .resources import ResourceEvent, ResourceStore, ResourceType, resolve

log = logging.getLogger("kubespan.api")

DEFAULT_API_SOCKET = "/run/kubespan/agent.sock"
API_SOCKET_ENV = "KUBESPAN_API_SOCKET"
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 5.0
MAX_RESPONSE = 64 << 20
WATCH_QUEUE = 4096
MAX_WATCHERS = 64


class ApiInUse(KubespanError):
    """Another agent is serving this API socket."""


class AgentNotRunning(KubespanError):
    """Nothing answers on the API socket."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no kubespan agent is running (socket {path})")
        self.path = path


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"


def parse_request(line: bytes) -> tuple[str, ResourceType, str | None]:
    """``(verb, type, id)`` of a request line; ``KubespanError`` when malformed."""
    try:
        request = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KubespanError("request is not a JSON line") from None
    if not isinstance(request, dict):
        raise KubespanError('request must be {"get"|"watch": "<resource type>"[, "id": "<id>"]}')
    verbs = [v for v in ("get", "watch") if v in request]
    rid = request.get("id")
    if len(verbs) != 1 or not isinstance(request[verbs[0]], str) or not (rid is None or isinstance(rid, str)):
        raise KubespanError('request must be {"get"|"watch": "<resource type>"[, "id": "<id>"]}')
    return verbs[0], resolve(request[verbs[0]]), rid


def _missing(rtype: ResourceType, rid: str) -> str:
    return f"resource {rtype.type}({rtype.namespace}/{rid[:256]}) doesn't exist"


def _get(store: ResourceStore, node: str, rtype: ResourceType, rid: str | None) -> dict[str, Any]:
    items = store.list(rtype, rid)
    if rid is not None and not items:
        return {"error": _missing(rtype, rid)}
    return {"node": node, "type": rtype.type, "items": items}


def answer(store: ResourceStore, node: str, line: bytes) -> dict[str, Any]:
    """The response to one ``get`` line (pure apart from reading ``store``)."""
    try:
        verb, rtype, rid = parse_request(line)
    except KubespanError as exc:
        return {"error": str(exc)}
    if verb != "get":
        return {"error": "a watch is answered as a stream, not one reply"}
    return _get(store, node, rtype, rid)


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
        self._closing = asyncio.Event()
        self._watchers = 0
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        try:
            sock = listen_private(self.path)
        except SocketInUse:
            raise ApiInUse(f"API socket {self.path} is in use by another agent") from None
        os.chmod(self.path, 0o600)
        self._inode = os.stat(self.path).st_ino
        self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=MAX_REQUEST)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
                if self.on_leave is not None and _is_leave(line):
                    writer.write(_line(await self.on_leave()))
                    await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
                    return
                verb, rtype, rid = parse_request(line)
            except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
                reply = {"error": "request too long or too slow"}
            except KubespanError as exc:
                reply = {"error": str(exc)}
            else:
                if verb == "watch":
                    await self._watch(reader, writer, rtype, rid)
                    return
                reply = _get(self.store, self.node, rtype, rid)
            writer.write(_line(reply))
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            log.debug("API client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            if task is not None:
                self._handlers.discard(task)

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rtype: ResourceType,
                     rid: str | None) -> None:
        if self._watchers >= MAX_WATCHERS:
            writer.write(_line({"error": f"too many watches (at most {MAX_WATCHERS})"}))
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
            return
        queue: asyncio.Queue[ResourceEvent] = asyncio.Queue(WATCH_QUEUE)
        lost = False

        def on_event(event: ResourceEvent) -> None:
            nonlocal lost
            if event.rtype.type != rtype.type or rid not in (None, event.resource["metadata"]["id"]):
                return
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                lost = True

        self._watchers += 1
        token = self.store.subscribe(on_event)  # subscribe and list in one step: no change is missed
        current = self.store.list(rtype, rid)
        gone = asyncio.ensure_future(reader.read(1))  # EOF (or anything) from the client ends the watch
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await self._send(writer, {"node": self.node, "type": rtype.type})
            for item in current:
                await self._send(writer, {"event": "created", "resource": item})
            await self._send(writer, {"event": "bootstrapped"})
            while True:
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait({get, gone, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    return
                if lost:
                    await self._send(writer, {"error": f"watch fell more than {WATCH_QUEUE} events behind"})
                    return
                event = get.result()
                await self._send(writer, {"event": event.event, "resource": event.resource})
        finally:
            self.store.unsubscribe(token)
            self._watchers -= 1
            for task in (gone, closing):
                task.cancel()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(_line(obj))
        await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)

    async def close(self) -> None:
        """Stop listening and end every open exchange and watch (within a few seconds)."""
        self._closing.set()
        if self._server is not None:
            self._server.close()
            if self._handlers:
                await asyncio.wait(set(self._handlers), timeout=REQUEST_TIMEOUT + 2.0)
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


def _connect(path: str, request: dict[str, Any], timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(_line(request))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        sock.close()
        raise AgentNotRunning(path) from None
    except OSError as exc:
        sock.close()
        raise KubespanError(f"cannot connect to {path}: {exc.strerror or exc}") from None
    return sock


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KubespanError("malformed response from the agent") from None
    if not isinstance(reply, dict):
        raise KubespanError("malformed response from the agent")
    if "error" in reply:
        raise KubespanError(str(reply["error"]))
    return reply


def request(path: str, type_name: str, resource_id: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Ask the agent at ``path`` for one resource type, or one resource (blocking client)."""
    req: dict[str, Any] = {"get": type_name}
    if resource_id is not None:
        req["id"] = resource_id
    return _exchange(path, req, timeout)


def leave(path: str, timeout: float = 30.0) -> dict[str, Any]:
    """Ask the agent at ``path`` to leave the cluster (blocking client; ``AgentNotRunning`` if none)."""
    return _exchange(path, {"leave": True}, timeout)


def _exchange(path: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
    sock = _connect(path, req, timeout)
    chunks: list[bytes] = []
    size = 0
    try:
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
    return _decode(b"".join(chunks))


def watch(path: str, type_name: str, resource_id: str | None = None, timeout: float = 10.0,
          on_open: Callable[[socket.socket], None] | None = None) -> Iterator[dict[str, Any]]:
    """Watch one type (or one resource): the header line, then every event line, until
    the agent ends the stream.  Blocks between events; ``KubespanError`` on an error line.
    ``on_open`` gets the connected socket (another thread may shut it down to end the watch)."""
    req: dict[str, Any] = {"watch": type_name}
    if resource_id is not None:
        req["id"] = resource_id
    sock = _connect(path, req, timeout)
    if on_open is not None:
        on_open(sock)
    stream = sock.makefile("rb")
    try:
        first = True
        while True:
            try:
                raw = stream.readline(MAX_RESPONSE)
            except socket.timeout:
                raise KubespanError(f"the agent at {path} did not answer in {timeout:g} s") from None
            except OSError as exc:
                raise KubespanError(f"the agent at {path} went away: {exc.strerror or exc}") from None
            if not raw:
                return
            if not raw.endswith(b"\n"):
                raise KubespanError("malformed response from the agent")
            reply = _decode(raw)
            if first:
                first = False
                sock.settimeout(None)  # events come when they come
            yield reply
    finally:
        stream.close()
        sock.close()
