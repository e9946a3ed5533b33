"""Discovery-service client (spec/kubespan.md §3.4), grpc.aio.

Owns one connection to one discovery service for one node:

    loop:  wait backoff (0.5 s ×1.5, jitter ±50 %, cap 60 s; reset after a
           successful refresh)
           Hello (10 s)          -> record client_ip (also from a redirecting
                                    answer); on redirect adopt the new endpoint for
                                    good (later reconnects go there) and reconnect
                                    after the backoff, which bounds a redirect loop
           Watch                 -> first message replaces the cache, deltas patch it
           refresh               -> own AffiliateUpdate (data + endpoints, TTL 30 min),
                                    then one endpoint-only update per observed peer;
                                    again every TTL/2 and at once on set_local() change
           Watch error/end       -> reconnect (re-Hello, re-Watch, re-send)
    close(): AffiliateDelete (best effort), then stop.

Encryption is ``protocol``'s.  Watch updates are applied as
siderolabs/discovery-client ``pkg/client/client.go`` (``parseReply``) does:
its own ID is skipped; an update with empty data, or data that does not
decrypt or decode, changes nothing (a cached entry is kept, the drop is
logged and counted); endpoints that do not decrypt are skipped one by one;
only a ``deleted`` update or a new first Watch message removes an entry.
Everything is bounded: ≤1024 cached affiliates, ≤64 endpoints each, ≤1024
observed peers.  Timers and randomness are injectable so tests run fast.

Concurrency: all methods must be called from the event loop that runs the
client.  Nothing here logs key material or plaintext payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio
from google.protobuf.duration_pb2 import Duration

from kubespan.discovery import limits, protocol
from kubespan.discovery.errors import DiscoveryPayloadError
from kubespan.discovery.proto import cluster_pb2 as pb
from kubespan.discovery.protocol import Affiliate, Endpoint, IPAddress
from kubespan.discovery.rpc import ClusterStub
from kubespan.discovery.url import parse_host_port, parse_url

log = logging.getLogger("kubespan.discovery.client")

DEFAULT_TTL = 30 * 60.0


@dataclass(frozen=True, slots=True)
class ServiceEndpoint:
    """Where the discovery service is and how to talk to it."""

    host: str
    port: int
    insecure: bool = False
    ca_file: str | None = None  # PEM roots instead of the system bundle (tests)

    @classmethod
    def parse(cls, url: str, *, insecure: bool = False, ca_file: str | None = None) -> ServiceEndpoint:
        """``http://h[:80]`` (plaintext), ``https://``/``grpc://h[:443]`` (TLS), or ``h:p`` (``discovery.url``)."""
        try:
            if "://" in url:
                parsed = parse_url(url)
                return cls(parsed.host, parsed.port, parsed.insecure, ca_file)
            host, port = parse_host_port(url)
        except ValueError as exc:
            raise ValueError(f"discovery endpoint {url!r}: {exc}") from None
        return cls(host, port, insecure, ca_file)

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RemoteAffiliate:
    """A peer as decrypted from the service."""

    affiliate: Affiliate
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class ClientTimers:
    """Timing knobs (defaults are Talos'); ``refresh_interval`` None means TTL/2."""

    refresh_interval: float | None = None
    backoff_base: float = 0.5
    backoff_factor: float = 1.5
    backoff_max: float = 60.0
    jitter: float = 0.5
    hello_timeout: float = 10.0
    rpc_timeout: float = 30.0


class _Redirect(Exception):
    def __init__(self, endpoint: ServiceEndpoint) -> None:
        super().__init__(endpoint.target)
        self.endpoint = endpoint


@dataclass(slots=True)
class _Local:
    affiliate: Affiliate
    endpoints: tuple[Endpoint, ...]
    data: bytes
    endpoint_blobs: tuple[bytes, ...]


@dataclass
class ClientCounters:
    dropped_data: int = 0
    dropped_endpoints: int = 0
    watch_errors: int = 0
    session_errors: int = 0
    redirects: int = 0
    refreshes: int = 0


class DiscoveryClient:
    """One node's connection to one discovery service."""

    def __init__(
        self,
        endpoint: ServiceEndpoint,
        cluster_id: str,
        secret: bytes,
        node_id: str,
        *,
        ttl: float = DEFAULT_TTL,
        timers: ClientTimers = ClientTimers(),
        on_change: Callable[[], None] | None = None,
        client_version: str = "kubespan-py",
        rng: Callable[[int], bytes] = os.urandom,
        uniform: Callable[[], float] = random.random,
        channel_options: Sequence[tuple[str, int | str]] = (),
    ) -> None:
        limits.validate_cluster_id(cluster_id)
        limits.validate_affiliate_id(node_id)
        limits.validate_ttl(ttl)
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if len(secret) != protocol.KEY_SIZE:
            raise ValueError("secret must be 32 bytes")
        self.endpoint = endpoint
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.ttl = ttl
        self.timers = timers
        self.on_change = on_change
        self.client_version = client_version
        self.counters = ClientCounters()
        self._key = secret
        self._rng = rng
        self._uniform = uniform
        self._channel_options = list(channel_options)
        self._target = endpoint
        self._backoff = timers.backoff_base
        self._client_ip: IPAddress | None = None
        self._cache: dict[str, RemoteAffiliate] = {}
        self._local: _Local | None = None
        self._observed: dict[str, tuple[bytes, ...]] = {}
        self._observed_plain: dict[str, tuple[Endpoint, ...]] = {}
        self._dirty = asyncio.Event()
        self._changed = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.watching = False

    def __repr__(self) -> str:
        return f"DiscoveryClient({self._target.target}, cluster={self.cluster_id!r}, node={self.node_id!r})"

    # --- public API ---------------------------------------------------------

    @property
    def client_ip(self) -> IPAddress | None:
        """Our address as the service saw it (``Hello.client_ip``)."""
        return self._client_ip

    @property
    def current_endpoint(self) -> ServiceEndpoint:
        """The service in use (differs from ``endpoint`` after a redirect)."""
        return self._target

    def affiliates(self) -> dict[str, RemoteAffiliate]:
        """Decrypted peers keyed by the node ID inside their payload."""
        out: dict[str, RemoteAffiliate] = {}
        for remote in self._cache.values():
            if remote.affiliate.node_id != self.node_id:
                out[remote.affiliate.node_id] = remote
        return out

    def set_local(self, affiliate: Affiliate, endpoints: Iterable[Endpoint]) -> bool:
        """Publish our affiliate; re-sent at once when it differs. Returns whether it did."""
        eps = tuple(dict.fromkeys(endpoints))[: limits.AFFILIATE_ENDPOINTS_MAX]
        if self._local is not None and (self._local.affiliate, self._local.endpoints) == (affiliate, eps):
            return False
        data = protocol.seal_affiliate(self._key, affiliate, self._rng(protocol.NONCE_SIZE))
        blobs = tuple(protocol.seal_endpoint(self._key, e) for e in eps)
        self._local = _Local(affiliate, eps, data, blobs)
        self._dirty.set()
        return True

    def set_observed_endpoints(self, observed: Mapping[str, Iterable[Endpoint]]) -> bool:
        """Endpoints this node saw for peers (harvesting); sent per peer on each refresh."""
        plain: dict[str, tuple[Endpoint, ...]] = {}
        for peer, eps in list(observed.items())[: limits.CLUSTER_AFFILIATES_MAX]:
            if peer == self.node_id or not 1 <= len(peer) <= limits.AFFILIATE_ID_MAX:
                continue
            unique = tuple(dict.fromkeys(eps))[: limits.AFFILIATE_ENDPOINTS_MAX]
            if unique:
                plain[peer] = unique
        if plain == self._observed_plain:
            return False
        self._observed_plain = plain
        self._observed = {
            peer: tuple(protocol.seal_endpoint(self._key, e) for e in eps)
            for peer, eps in plain.items()
        }
        self._dirty.set()
        return True

    async def start(self) -> None:
        """Start the connection loop in a task of the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=repr(self))

    async def close(self, *, delete: bool = True) -> None:
        """Stop; with ``delete`` send AffiliateDelete for our ID (best effort, 5 s)."""
        self._closing = True
        self._dirty.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if delete and self._local is not None:
            await self.delete_affiliate()

    async def delete_affiliate(self, timeout: float = 5.0) -> bool:
        """Send AffiliateDelete for our ID once (needs no session: ``kubespan leave`` with the agent
        stopped uses it); whether the service acknowledged it."""
        channel = self._make_channel(self._target)
        try:
            await ClusterStub(channel).AffiliateDelete(
                pb.AffiliateDeleteRequest(cluster_id=self.cluster_id, affiliate_id=self.node_id),
                timeout=timeout,
            )
            return True
        except grpc.aio.AioRpcError as exc:
            log.info("affiliate delete failed: %s", exc.code())
            return False
        finally:
            await channel.close(None)

    async def wait_for(self, predicate: Callable[[DiscoveryClient], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds after a change, at most ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
        return True

    # --- connection loop ----------------------------------------------------

    async def _run(self) -> None:
        # discovery-client (pkg/client/client.go, Run): a redirect replaces the
        # endpoint for the rest of the client's life; every Hello, also the one
        # after a redirect, waits the backoff first, and errors keep the endpoint.
        while not self._closing:
            try:
                await self._session()
            except _Redirect as redirect:
                self.counters.redirects += 1
                log.info("redirected to %s", redirect.endpoint.target)
                self._target = redirect.endpoint
            except (grpc.aio.AioRpcError, asyncio.TimeoutError, ConnectionError, OSError) as exc:
                self.counters.session_errors += 1
                detail = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
                log.info("discovery session with %s ended: %s", self._target.target, detail)
            self.watching = False
            await self._sleep(self._next_backoff())

    def _next_backoff(self) -> float:
        t = self.timers
        delay = self._backoff * (1.0 + t.jitter * (2.0 * self._uniform() - 1.0))
        self._backoff = min(self._backoff * t.backoff_factor, t.backoff_max)
        return max(0.0, delay)

    async def _sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)  # close() cancels the task

    def _make_channel(self, target: ServiceEndpoint) -> grpc.aio.Channel:
        keepalive_ms = int(max(10.0, self.ttl / 10.0) * 1000)
        options: list[tuple[str, int | str]] = [("grpc.keepalive_time_ms", keepalive_ms)]
        options += self._channel_options
        if target.insecure:
            return grpc.aio.insecure_channel(target.target, options=options)
        roots = _read_roots(target.ca_file)
        creds = grpc.ssl_channel_credentials(root_certificates=roots)
        return grpc.aio.secure_channel(target.target, creds, options=options)

    async def _session(self) -> None:
        channel = self._make_channel(self._target)
        stub = ClusterStub(channel)
        watch: grpc.aio.UnaryStreamCall[pb.WatchRequest, pb.WatchResponse] | None = None
        watch_task: asyncio.Task[None] | None = None
        try:
            hello = await stub.Hello(
                pb.HelloRequest(cluster_id=self.cluster_id, client_version=self.client_version),
                timeout=self.timers.hello_timeout,
            )
            self._client_ip = _ip_or_none(hello.client_ip)  # before the redirect check, as upstream
            if hello.HasField("redirect"):
                raise _Redirect(self._redirect_target(hello.redirect.endpoint))
            watch = stub.Watch(pb.WatchRequest(cluster_id=self.cluster_id))
            watch_task = asyncio.create_task(self._consume_watch(watch))
            await self._refresh_loop(stub, watch_task)
        finally:
            if watch is not None:
                watch.cancel()
            if watch_task is not None:
                watch_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watch_task
            await channel.close(None)

    def _redirect_target(self, text: str) -> ServiceEndpoint:
        try:
            parsed = ServiceEndpoint.parse(text, insecure=self._target.insecure)
        except ValueError as exc:
            raise ConnectionError(f"bad redirect {text!r}") from exc
        return ServiceEndpoint(parsed.host, parsed.port, self._target.insecure, self._target.ca_file)

    async def _refresh_loop(self, stub: ClusterStub, watch_task: asyncio.Task[None]) -> None:
        interval = self.timers.refresh_interval or self.ttl / 2
        while True:
            self._dirty.clear()
            await self._refresh(stub)
            self._backoff = self.timers.backoff_base
            dirty = asyncio.ensure_future(self._dirty.wait())
            try:
                await asyncio.wait({dirty, watch_task}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                dirty.cancel()
            if watch_task.done():
                self.counters.watch_errors += 1
                watch_task.result()  # raises the stream's error
                raise ConnectionError("watch stream ended")
            if self._closing:
                return

    async def _refresh(self, stub: ClusterStub) -> None:
        ttl = Duration()
        ttl.FromNanoseconds(int(self.ttl * 1e9))
        timeout = self.timers.rpc_timeout
        local = self._local
        if local is not None:
            await stub.AffiliateUpdate(
                pb.AffiliateUpdateRequest(
                    cluster_id=self.cluster_id,
                    affiliate_id=self.node_id,
                    affiliate_data=local.data,
                    affiliate_endpoints=list(local.endpoint_blobs),
                    ttl=ttl,
                ),
                timeout=timeout,
            )
        for peer, blobs in list(self._observed.items()):
            await stub.AffiliateUpdate(
                pb.AffiliateUpdateRequest(
                    cluster_id=self.cluster_id, affiliate_id=peer, affiliate_endpoints=list(blobs), ttl=ttl
                ),
                timeout=timeout,
            )
        self.counters.refreshes += 1

    # --- watch --------------------------------------------------------------

    async def _consume_watch(self, call: grpc.aio.UnaryStreamCall[pb.WatchRequest, pb.WatchResponse]) -> None:
        first = True
        async for msg in call:
            if first:
                first = False
                self._cache = {}
                self.watching = True
            if msg.deleted:
                for aff in msg.affiliates:
                    self._cache.pop(aff.id, None)
            else:
                for aff in msg.affiliates:
                    self._apply(aff)
            self._notify()

    def _apply(self, msg: pb.Affiliate) -> None:
        if msg.id == self.node_id:
            return
        if not msg.data:  # no data (yet?): keep what we have
            return
        if msg.id not in self._cache and len(self._cache) >= limits.CLUSTER_AFFILIATES_MAX:
            return
        try:
            affiliate = protocol.open_affiliate(self._key, msg.data)
        except DiscoveryPayloadError as exc:  # keep the previous entry, as upstream
            self.counters.dropped_data += 1
            log.warning("ignoring update of affiliate %r: %s", msg.id[:64], exc.reason)
            return
        endpoints: list[Endpoint] = []
        for blob in msg.endpoints[: limits.AFFILIATE_ENDPOINTS_MAX]:
            try:
                endpoints.append(protocol.open_endpoint(self._key, blob))
            except DiscoveryPayloadError:
                self.counters.dropped_endpoints += 1
        self._cache[msg.id] = RemoteAffiliate(affiliate, tuple(dict.fromkeys(endpoints)))

    def _notify(self) -> None:
        self._changed.set()
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a callback bug must not kill the watch
                log.exception("on_change callback failed")


def _read_roots(ca_file: str | None) -> bytes | None:
    """PEM roots: the given file, else the system bundle, else grpc's built-in roots."""
    if ca_file is None:
        paths = ssl.get_default_verify_paths()
        ca_file = next((p for p in (paths.cafile, paths.openssl_cafile) if p and os.path.isfile(p)), None)
        if ca_file is None:
            return None
    with open(ca_file, "rb") as f:
        return f.read()


def _ip_or_none(raw: bytes) -> IPAddress | None:
    if len(raw) in (4, 16):
        return ipaddress.ip_address(raw)
    return None
