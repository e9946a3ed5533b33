"""A small etcd v3 client over our grpc.aio (etcd's gRPC API, proto/etcd.proto).

Owns: the connection to an etcd cluster given as a list of endpoint URLs
(``http://host:port``, ``https://host:port`` or ``host:port``), TLS (CA,
client certificate and key), username/password authentication (the token
travels as the ``token`` metadata, renewed when etcd rejects it), and the
calls the discovery state needs: Range, Txn, LeaseGrant and a revision Watch.

Failure contract: every unary call has a deadline (``timeout``, default 2 s)
and never waits for a connection (gRPC's default fail-fast), so an
unreachable etcd costs one refused connect per endpoint.  A call that gets
UNAVAILABLE or DEADLINE_EXCEEDED from one endpoint is tried on the next ones
(each once, within the deadline); when all fail it raises
``EtcdUnavailableError``.  Reconnect backoff is capped at 2 s so the client
recovers promptly when etcd returns.  Other etcd errors raise ``EtcdError``.

Why not a library: ``aetcd`` 1.0.0 opens one insecure channel to one
host:port (no TLS, no endpoint list); ``etcd3`` has had no release since 2020.

Concurrency: one event loop.  Secrets (password, token) never appear in
logs or reprs.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from kubespan.discovery.errors import DiscoveryError
from kubespan.discovery.proto import etcd_pb2 as epb

DEFAULT_TIMEOUT = 2.0
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 64 << 20),
]

_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]  # not in grpc-stubs

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


class EtcdError(DiscoveryError):
    """etcd refused a request (not an availability problem)."""


class EtcdUnavailableError(EtcdError):
    """No endpoint of the etcd cluster answered in time."""


class EtcdLeaseNotFoundError(EtcdError):
    """A Put named a lease etcd no longer has (expired or revoked)."""


@dataclass(frozen=True)
class EtcdConfig:
    """How to reach etcd (``--etcd-*`` flags map 1:1)."""

    endpoints: tuple[str, ...]
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT


def parse_endpoint(url: str) -> tuple[str, bool]:
    """``(grpc target, tls)`` of one endpoint URL; ValueError when malformed."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"etcd endpoint must be [http[s]://]HOST:PORT, got {url[:80]!r}")
    try:
        port = parts.port or 2379
    except ValueError:
        raise ValueError(f"bad port in etcd endpoint {url[:80]!r}") from None
    host = parts.hostname
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return target, parts.scheme == "https"


def range_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a Range or Watch cover every key under ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class EtcdClient:
    """Unary calls with endpoint failover, and revision watches."""

    def __init__(self, config: EtcdConfig) -> None:
        if not config.endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        if (config.username is None) != (config.password is None):
            raise ValueError("etcd username and password go together")
        if (config.cert_file is None) != (config.key_file is None):
            raise ValueError("etcd client certificate and key go together")
        self.config = config
        targets = [parse_endpoint(e) for e in config.endpoints]
        tls = any(t for _, t in targets) or config.ca_file is not None or config.cert_file is not None
        creds = None
        if tls:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(config.ca_file),
                private_key=_read(config.key_file),
                certificate_chain=_read(config.cert_file),
            )
        self._channels = [
            grpc.aio.secure_channel(t, creds, options=_CHANNEL_OPTIONS) if creds is not None
            else grpc.aio.insecure_channel(t, options=_CHANNEL_OPTIONS)
            for t, _ in targets
        ]
        self._current = 0
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"EtcdClient(endpoints={list(self.config.endpoints)!r})"

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(None)

    # --- plumbing -------------------------------------------------------------

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("token", self._token),) if self._token else ()

    async def _authenticate(self, channel: grpc.aio.Channel, timeout: float) -> None:
        call = channel.unary_unary(
            "/etcdserverpb.Auth/Authenticate",
            request_serializer=epb.AuthenticateRequest.SerializeToString,
            response_deserializer=epb.AuthenticateResponse.FromString,
        )
        req = epb.AuthenticateRequest(name=self.config.username or "", password=self.config.password or "")
        resp: epb.AuthenticateResponse = await call(req, timeout=timeout)
        self._token = resp.token

    async def call(self, method: str, request: _Req, response: type[_Resp], *, timeout: float | None = None) -> _Resp:
        """One unary call on the current endpoint, failing over to the others.

        Rounds over the endpoints repeat (50 ms apart, within the deadline)
        only while some member answered itself ("etcdserver: ..." such as no
        leader during an election); when no member can be reached at all the
        call fails after one round.
        """
        budget = timeout if timeout is not None else self.config.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        last: grpc.aio.AioRpcError | None = None
        while True:
            member_answered = False
            for attempt in range(len(self._channels)):
                index = (self._current + attempt) % len(self._channels)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    result = await self._call_one(index, method, request, response, remaining)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.NOT_FOUND and "lease" in (exc.details() or ""):
                        raise EtcdLeaseNotFoundError(exc.details() or "lease not found") from None
                    if exc.code() not in _RETRYABLE:
                        raise EtcdError(f"etcd {method.rsplit('/', 1)[-1]}: {exc.code().name}: "
                                        f"{exc.details()}") from None
                    member_answered = member_answered or (exc.details() or "").startswith("etcdserver:")
                    last = exc
                    continue
                self._current = index
                return result
            if not member_answered or deadline - loop.time() <= 0.05:
                break
            await asyncio.sleep(0.05)
        detail = last.details() if last is not None else "deadline passed"
        raise EtcdUnavailableError(f"etcd unavailable: {detail}")

    async def _call_one(self, index: int, method: str, request: _Req, response: type[_Resp], timeout: float) -> _Resp:
        channel = self._channels[index]
        multi = channel.unary_unary(
            method, request_serializer=type(request).SerializeToString, response_deserializer=response.FromString
        )
        for auth_try in range(2):
            if self.config.username is not None and self._token is None:
                await self._authenticate(channel, timeout)
            try:
                result: _Resp = await multi(request, timeout=timeout, metadata=self._metadata())
                return result
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAUTHENTICATED or auth_try or self.config.username is None:
                    raise
                self._token = None  # expired or revoked token: log in again once
        raise AssertionError("unreachable")

    # --- the calls ----------------------------------------------------------------

    async def range(self, request: epb.RangeRequest) -> epb.RangeResponse:
        return await self.call("/etcdserverpb.KV/Range", request, epb.RangeResponse)

    async def txn(self, request: epb.TxnRequest) -> epb.TxnResponse:
        return await self.call("/etcdserverpb.KV/Txn", request, epb.TxnResponse)

    async def delete_range(self, request: epb.DeleteRangeRequest) -> epb.DeleteRangeResponse:
        return await self.call("/etcdserverpb.KV/DeleteRange", request, epb.DeleteRangeResponse)

    async def lease_grant(self, ttl: int) -> int:
        resp = await self.call("/etcdserverpb.Lease/LeaseGrant", epb.LeaseGrantRequest(TTL=ttl), epb.LeaseGrantResponse)
        if resp.error:
            raise EtcdError(f"etcd LeaseGrant: {resp.error}")
        return resp.ID

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[epb.WatchResponse]:
        """Every change under ``prefix`` from ``start_revision`` on, in revision order.

        The first message is etcd's ``created`` answer (no events): the watch is open.
        One etcd Watch stream with one watcher, opened on the first endpoint
        that accepts it.  Raises ``EtcdUnavailableError`` when no endpoint
        accepts it or the stream breaks; the caller resumes from the next
        revision.  A watch etcd cancels (compaction) ends with ``EtcdError``.
        """
        create = epb.WatchRequest(
            create_request=epb.WatchCreateRequest(key=prefix, range_end=range_end(prefix),
                                                  start_revision=start_revision, progress_notify=True)
        )
        for attempt in range(len(self._channels)):
            index = (self._current + attempt) % len(self._channels)
            if self.config.username is not None and self._token is None:
                try:
                    await self._authenticate(self._channels[index], self.config.timeout)
                except grpc.aio.AioRpcError:
                    continue
            stream = self._channels[index].stream_stream(
                "/etcdserverpb.Watch/Watch",
                request_serializer=epb.WatchRequest.SerializeToString,
                response_deserializer=epb.WatchResponse.FromString,
            )
            # hasleader: a member cut off from the quorum ends the watch instead of going quiet
            call = stream(None, metadata=self._metadata() + (("hasleader", "true"),))
            try:
                # the request side stays open (etcd keeps the watch); a silent member costs one timeout
                await asyncio.wait_for(call.write(create), self.config.timeout)
                first: object = await asyncio.wait_for(call.read(), self.config.timeout)
            except (grpc.aio.AioRpcError, asyncio.TimeoutError) as exc:
                call.cancel()
                if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    self._token = None
                continue
            if not isinstance(first, epb.WatchResponse) or not first.created:  # EOF or a refusal
                call.cancel()
                continue
            self._current = index
            try:
                yield first
                async for message in _responses(call):
                    if message.canceled:
                        raise EtcdError(f"etcd cancelled the watch (compacted to {message.compact_revision}): "
                                        f"{message.cancel_reason}")
                    yield message
            except grpc.aio.AioRpcError as exc:
                raise EtcdUnavailableError(f"etcd watch broke: {exc.code().name}") from None
            finally:
                call.cancel()
            raise EtcdUnavailableError("etcd watch ended")
        raise EtcdUnavailableError("etcd unavailable: no endpoint accepted the watch")


async def _responses(call: Any) -> AsyncIterator[epb.WatchResponse]:
    while True:
        message = await call.read()
        if message is _EOF:
            return
        yield message


def endpoints_arg(text: str) -> tuple[str, ...]:
    """``URL[,URL...]`` of ``--etcd-endpoints``; ValueError when empty or malformed."""
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    if not urls:
        raise ValueError("no etcd endpoint given")
    for url in urls:
        parse_endpoint(url)
    return urls


def make_put(key: bytes, value: bytes, lease: int) -> epb.RequestOp:
    return epb.RequestOp(request_put=epb.PutRequest(key=key, value=value, lease=lease))


def make_delete(key: bytes) -> epb.RequestOp:
    return epb.RequestOp(request_delete_range=epb.DeleteRangeRequest(key=key))


def mod_revision_is(key: bytes, revision: int) -> epb.Compare:
    """Compare: the key's last modification is ``revision`` (0: the key does not exist)."""
    return epb.Compare(result=epb.Compare.EQUAL, target=epb.Compare.MOD, key=key, mod_revision=revision)


def conditional(compare: epb.Compare, ops: Sequence[epb.RequestOp]) -> epb.TxnRequest:
    return epb.TxnRequest(compare=[compare], success=list(ops))
