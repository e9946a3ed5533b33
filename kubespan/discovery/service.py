"""The discovery service: a thin grpc.aio shell over a ``store.Store`` (spec §3.5).

The store is the in-memory ``State`` with snapshots (the embedded default),
or ``etcdstate.EtcdState`` when ``ServiceConfig.etcd`` is set: then any
number of replicas share one etcd, snapshots are off (etcd persists), and
an etcd that cannot be reached makes every RPC fail fast with UNAVAILABLE
until it is back.  The per-source rate limit is per replica: N replicas
behind a load balancer admit up to N times the configured rate per source.

Owns: the five RPCs of ``sidero.discovery.server.Cluster``, client-IP
detection (TCP peer, or ``X-Real-IP`` / the first ``X-Forwarded-For`` entry
only when trusted: ``trust_x_real_ip``, ``trust_first_x_forwarded_for``, or
``trust_proxy_headers`` for both), the per-IP rate limit on unary calls and
stream opens, the redirect answer to Hello, the GC and snapshot timers.
The command line lives in ``command`` (``main`` here forwards to it).

It validates through ``limits`` (via ``State``) and never interprets the
blobs: it stores only client-encrypted bytes, never decrypts.  Errors map:
``InvalidArgumentError`` → INVALID_ARGUMENT, ``ResourceExhaustedError`` and
rate-limit refusals → RESOURCE_EXHAUSTED, a Watch subscriber that overflowed
its buffer → ABORTED "lost update" (the client re-watches), ``EtcdError``
and a Watch stream whose replica lost etcd → UNAVAILABLE.

Every RPC and GC run is counted in ``DiscoveryServer.metrics``
(``kubespan.discovery.metrics``, upstream's names).

Concurrency: every handler runs on the server's event loop; the store is
touched only there.  Snapshot file writes run in a worker thread on bytes
encoded in the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import grpc.aio

from kubespan.discovery import limits, rpc, snapshot
from kubespan.discovery.etcd import EtcdClient, EtcdConfig, EtcdError
from kubespan.discovery.etcdstate import DEFAULT_PREFIX, EtcdState
from kubespan.discovery.errors import (
    InvalidArgumentError,
    LimitError,
    ResourceExhaustedError,
    SnapshotError,
)
from kubespan.discovery.proto import cluster_pb2 as pb
from kubespan.discovery.ratelimit import RateLimiter
from kubespan.discovery.state import AffiliateView, Notification, State
from kubespan.discovery.metrics import ServiceMetrics
from kubespan.discovery.store import MemoryStore, Store

log = logging.getLogger("kubespan.discovery.service")

DEFAULT_LISTEN = "[::]:3000"  # upstream -addr ":3000"
DEFAULT_SNAPSHOT_PATH = "/var/discovery-service/state.binpb"  # upstream -snapshot-path
MAX_PENDING_REQUESTS = 20_000

Context = grpc.aio.ServicerContext[Any, Any]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class ServiceConfig:
    """Settings of one service instance (CLI flags map 1:1)."""

    listen: str = DEFAULT_LISTEN
    tls_cert: str | None = None
    tls_key: str | None = None
    snapshot_path: str | None = DEFAULT_SNAPSHOT_PATH
    snapshot_interval: float = 600.0
    gc_interval: float = 60.0
    redirect: str | None = None
    trust_x_real_ip: bool = False
    trust_first_x_forwarded_for: bool = False
    trust_proxy_headers: bool = False  # both of the above
    rate_limit: float = limits.RATE_LIMIT_PER_SECOND  # 0 disables
    rate_burst: int = limits.RATE_LIMIT_BURST
    watch_buffer: int = limits.WATCH_BUFFER
    etcd: EtcdConfig | None = None  # set: state in etcd, shared by replicas
    etcd_prefix: str = DEFAULT_PREFIX
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time


def parse_peer(peer: str) -> IPAddress | None:
    """IP of a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``)."""
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    if kind == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
    else:
        return None
    return _parse_ip(host)


def _parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_ip(context: Context, trust_x_real_ip: bool, trust_first_x_forwarded_for: bool = False) -> IPAddress | None:
    """The client's IP: trusted proxy headers first (X-Real-IP, then the first
    X-Forwarded-For entry, as discovery-service pkg/server/addr.go), then the peer."""
    if trust_x_real_ip or trust_first_x_forwarded_for:
        headers = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        real = headers.get("x-real-ip")
        if trust_x_real_ip and isinstance(real, str) and (ip := _parse_ip(real)) is not None:
            return ip
        forwarded = headers.get("x-forwarded-for")
        if (trust_first_x_forwarded_for and isinstance(forwarded, str)
                and (ip := _parse_ip(forwarded.split(",")[0])) is not None):
            return ip
    return parse_peer(context.peer())


def _affiliate_pb(view: AffiliateView) -> pb.Affiliate:
    return pb.Affiliate(id=view.id, data=view.data, endpoints=list(view.endpoints))


def _encoded(note: Notification) -> bytes:
    """The WatchResponse bytes of a notification, serialized once for all watchers."""
    if note.encoded is None:
        if note.affiliate is None:
            msg = pb.WatchResponse(affiliates=[pb.Affiliate(id=note.affiliate_id)], deleted=True)
        else:
            msg = pb.WatchResponse(affiliates=[_affiliate_pb(note.affiliate)])
        note.encoded = msg.SerializeToString()
    return note.encoded


async def _abort(context: Context, exc: LimitError | EtcdError) -> NoReturn:
    if isinstance(exc, EtcdError):
        code = grpc.StatusCode.UNAVAILABLE
    elif isinstance(exc, ResourceExhaustedError):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
    else:
        code = grpc.StatusCode.INVALID_ARGUMENT
    await context.abort(code, str(exc))
    raise AssertionError("unreachable")  # context.abort always raises


class ClusterService:
    """The servicer: admission (rate limit), validation via the store, conversion."""

    def __init__(self, store: Store, config: ServiceConfig) -> None:
        self.store = store
        self.config = config
        self.limiter = (
            RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit > 0 else None
        )
        self.counters: dict[str, int] = {"rate_limited": 0, "lost_watchers": 0}

    def _client_ip(self, context: Context) -> IPAddress | None:
        c = self.config
        return client_ip(context, c.trust_x_real_ip or c.trust_proxy_headers,
                         c.trust_first_x_forwarded_for or c.trust_proxy_headers)

    async def _admit(self, context: Context) -> None:
        """Wait for a rate-limit token of the client's IP; RESOURCE_EXHAUSTED past the deadline."""
        if self.limiter is None:
            return
        ip = self._client_ip(context)
        if ip is None:  # like upstream: no address, no limit
            return
        delay = self.limiter.reserve(str(ip), self.config.clock(), context.time_remaining())
        if delay is None:
            self.counters["rate_limited"] += 1
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit exceeded")
        elif delay > 0:
            await asyncio.sleep(delay)

    async def Hello(self, request: pb.HelloRequest, context: Context) -> pb.HelloResponse:
        await self._admit(context)
        ip = self._client_ip(context)
        try:
            limits.validate_cluster_id(request.cluster_id)
        except InvalidArgumentError as exc:
            await _abort(context, exc)
        response = pb.HelloResponse(client_ip=ip.packed if ip is not None else b"")
        if self.config.redirect:
            response.redirect.endpoint = self.config.redirect
        return response

    async def AffiliateUpdate(
        self, request: pb.AffiliateUpdateRequest, context: Context
    ) -> pb.AffiliateUpdateResponse:
        await self._admit(context)
        data = request.affiliate_data if request.HasField("affiliate_data") else None
        ttl = request.ttl.ToNanoseconds() / 1e9 if request.HasField("ttl") else 0.0
        try:
            await self.store.update_affiliate(
                request.cluster_id, request.affiliate_id, data, list(request.affiliate_endpoints), ttl
            )
        except (LimitError, EtcdError) as exc:
            await _abort(context, exc)
        return pb.AffiliateUpdateResponse()

    async def AffiliateDelete(
        self, request: pb.AffiliateDeleteRequest, context: Context
    ) -> pb.AffiliateDeleteResponse:
        await self._admit(context)
        try:
            await self.store.delete_affiliate(request.cluster_id, request.affiliate_id)
        except (LimitError, EtcdError) as exc:
            await _abort(context, exc)
        return pb.AffiliateDeleteResponse()

    async def List(self, request: pb.ListRequest, context: Context) -> pb.ListResponse:
        await self._admit(context)
        try:
            views = await self.store.list_affiliates(request.cluster_id)
        except (LimitError, EtcdError) as exc:
            await _abort(context, exc)
        return pb.ListResponse(affiliates=[_affiliate_pb(v) for v in views])

    async def Watch(
        self, request: pb.WatchRequest, context: Context
    ) -> AsyncIterator[pb.WatchResponse | bytes]:
        await self._admit(context)
        try:
            current, sub = self.store.subscribe(request.cluster_id)
        except (LimitError, EtcdError) as exc:
            await _abort(context, exc)
        wake = asyncio.Event()
        sub.wake = wake.set
        try:
            yield pb.WatchResponse(affiliates=[_affiliate_pb(v) for v in current])
            while True:
                await wake.wait()
                wake.clear()
                for note in sub.pop_all():
                    yield _encoded(note)
                if sub.unavailable:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "replica lost etcd; watch again")
                if sub.lost:
                    self.counters["lost_watchers"] += 1
                    await context.abort(grpc.StatusCode.ABORTED, "lost update")
        finally:
            sub.wake = None
            self.store.unsubscribe(sub)


class DiscoveryServer:
    """A running service: ``port``, ``store``, ``state`` (the in-memory state or
    the etcd mirror), ``await stop()``."""

    def __init__(self, config: ServiceConfig, store: Store, state: State, server: grpc.aio.Server, port: int,
                 metrics: ServiceMetrics | None = None):
        self.config = config
        self.store = store
        self.state = state
        self.etcd: EtcdState | None = store if isinstance(store, EtcdState) else None
        self.metrics = metrics if metrics is not None else ServiceMetrics(state)
        """Upstream's state and gRPC metrics (kubespan.discovery.metrics), for a registry to serve."""
        self.port = port
        self._server = server
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    def _start_timers(self, service: ClusterService) -> None:
        self._tasks.append(asyncio.create_task(self._gc_loop(service)))
        if self.etcd is not None:
            self._tasks.append(asyncio.create_task(self.etcd.run()))
        elif self.config.snapshot_path and self.config.snapshot_interval > 0:
            self._tasks.append(asyncio.create_task(self._snapshot_loop()))

    async def _gc_loop(self, service: ClusterService) -> None:
        while True:
            await asyncio.sleep(self.config.gc_interval)
            try:
                result = await self.store.garbage_collect()
            except EtcdError as exc:
                log.warning("gc: %s", exc)
                continue
            else:
                self.metrics.gc(result)
            finally:
                if service.limiter is not None:
                    service.limiter.prune(self.config.clock())
            if result.expired_affiliates or result.expired_endpoints:
                log.info("gc: %s", result)

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.snapshot_interval)
            try:
                await self.write_snapshot()
            except OSError as exc:
                log.warning("snapshot write failed: %s", exc)

    async def write_snapshot(self) -> None:
        """Encode the state now and write it atomically (no-op without a path)."""
        path = self.config.snapshot_path
        if not path or self.etcd is not None:
            return
        data = snapshot.encode_snapshot(self.state, self.config.clock())
        await asyncio.to_thread(snapshot.write_snapshot_file, path, data)

    async def stop(self, grace: float = 1.0) -> None:
        """Stop serving, end streams, write a final snapshot."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.stop(grace)
        if self.etcd is not None:
            await self.etcd.client.close()
        try:
            await self.write_snapshot()
        except OSError as exc:
            log.warning("final snapshot write failed: %s", exc)

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


def _load_state(config: ServiceConfig) -> State:
    state = State(watch_buffer=config.watch_buffer)
    if not config.snapshot_path:
        return state
    data = snapshot.read_snapshot_file(config.snapshot_path)
    if data is None:
        return state
    try:
        n = snapshot.load_snapshot(state, data, config.clock(), config.wall_clock())
        log.info("loaded %d affiliates from %s", n, config.snapshot_path)
    except SnapshotError as exc:
        log.warning("ignoring snapshot %s: %s", config.snapshot_path, exc)
    return state


async def serve(config: ServiceConfig, state: State | None = None) -> DiscoveryServer:
    """Start a service on ``config.listen`` (port 0 picks one); returns it running."""
    store: Store
    if config.etcd is not None:
        etcd_state = EtcdState(EtcdClient(config.etcd), config.etcd_prefix, watch_buffer=config.watch_buffer,
                               clock=config.wall_clock)
        store, state = etcd_state, etcd_state.mirror
    else:
        state = state if state is not None else _load_state(config)
        store = MemoryStore(state, config.clock)
    service = ClusterService(store, config)
    metrics = ServiceMetrics(state)
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            # clients ping every max(10 s, TTL/10) while watching; allow it
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # grpc-core cancels calls that wait for the application beyond
            # 1000 pending (3000 hard); a reconnect storm of Watch opens
            # exceeds that, so allow more (each is a few hundred bytes).
            ("grpc.server.max_pending_requests", MAX_PENDING_REQUESTS),
            ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_REQUESTS),
        ]
    )
    server.add_generic_rpc_handlers((rpc.generic_handler(metrics.wrap(service)),))
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        with open(config.tls_key, "rb") as kf, open(config.tls_cert, "rb") as cf:
            creds = grpc.ssl_server_credentials([(kf.read(), cf.read())])
    else:
        creds = None
    try:
        if creds is not None:
            port = server.add_secure_port(config.listen, creds)
        else:
            port = server.add_insecure_port(config.listen)
    except RuntimeError as exc:  # grpc reports a failed bind this way
        raise OSError(f"cannot listen on {config.listen}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}")
    await server.start()
    running = DiscoveryServer(config, store, state, server, port, metrics)
    running._start_timers(service)
    log.info("discovery service listening on %s (port %d)", config.listen, port)
    return running


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubespan discovery-service ARGS`` (``command.main``)."""
    from kubespan.discovery.command import main as command_main

    return command_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
