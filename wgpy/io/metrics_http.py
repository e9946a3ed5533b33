"""A tiny asyncio HTTP server for ``GET /metrics`` (the Prometheus text format).

Contract: ``MetricsServer(registry, addr)`` serves ``registry`` on the
calling event loop, so collectors read engine state on the loop's thread,
never concurrently with it.  ``addr`` is Go's listen-address form, as
upstream exporters take it: ``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (every
address); ``parse_addr`` checks it and raises ``ValueError`` with one line.
``GET``/``HEAD /metrics`` (any query string) answers 200 with
``generate_latest(registry)``; other paths 404, other methods 405, a request
that does not parse or whose head exceeds ``MAX_HEAD`` bytes 400; a
collector that raises gives 500 (logged) and the server keeps serving.  Each
connection answers one request and closes; at most ``MAX_CLIENTS`` are
served at once (the rest are closed at once) and each has ``TIMEOUT``
seconds to send its head.  No TLS, no authentication: bind it to a trusted
address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("wgpy.metrics")

MAX_HEAD = 8192
MAX_CLIENTS = 16
TIMEOUT = 10.0
PATH = "/metrics"


def parse_addr(text: str) -> tuple[str | None, int]:
    """``HOST:PORT`` / ``[V6]:PORT`` / ``:PORT`` -> (host or None for every address, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"metrics address {text!r}: want HOST:PORT, [IPv6]:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"metrics address {text!r}: put an IPv6 host in brackets, [{host}]:{port_text}")
    return (host or None), int(port_text)


class MetricsServer:
    """Serves one registry over HTTP on the running loop (see the module contract)."""

    def __init__(self, registry: CollectorRegistry, addr: str) -> None:
        self.registry = registry
        self.host, self._port = parse_addr(addr)
        self._server: asyncio.Server | None = None
        self._clients = 0

    @property
    def port(self) -> int:
        """The bound port (the requested one, or the kernel's pick for port 0)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        """Bind and listen (raises ``OSError``, e.g. EADDRINUSE)."""
        self._server = await asyncio.start_server(self._serve, self.host, self._port, reuse_address=True,
                                                  limit=MAX_HEAD)
        log.info("serving metrics on %s", ", ".join(_name(s.getsockname()) for s in self._server.sockets))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= MAX_CLIENTS:
            writer.close()
            return
        self._clients += 1
        try:
            status, body, head_only = await self._answer(reader)
            ctype = CONTENT_TYPE_LATEST if status.startswith("200") else "text/plain; charset=utf-8"
            writer.write((f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                          "Connection: close\r\n\r\n").encode("ascii"))
            if not head_only:
                writer.write(body)
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self._clients -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes, bool]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return "400 Bad Request", b"bad request\n", False
        if len(head) > MAX_HEAD:
            return "400 Bad Request", b"request head too large\n", False
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return "400 Bad Request", b"bad request\n", False
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", b"method not allowed\n", False
        if target != PATH.encode():
            return "404 Not Found", b"not found: metrics are at /metrics\n", method == b"HEAD"
        try:
            body = generate_latest(self.registry)
        except Exception:
            log.exception("metrics collection failed")
            return "500 Internal Server Error", b"collection failed\n", method == b"HEAD"
        return "200 OK", body, method == b"HEAD"


def _name(sockname: tuple[object, ...]) -> str:
    host, port = str(sockname[0]), sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
