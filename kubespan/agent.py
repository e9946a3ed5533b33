"""The kubespan agent: the asyncio shell that wires everything to the kernel.

Contract (kubespan.md §2-§6; architecture.md points 7-9): ``run_agent`` loads the config and identity, creates
the wgpy interface ``kubespan`` in-process (port 51820, fwmark 0x20, MTU from config, optional UAPI socket),
starts one ``DiscoveryClient`` per discovery endpoint, serves the resource API, then reconciles every
``reconcile_interval`` seconds (30 s by default) and at once when something changes (a discovery update, an
address or link change on the host). Between reconciles a status pass (WireGuard's peer stats and the clock
against the last peer specs, ``controller.peer_pass``; no netlink read, no discovery) runs when it can change
something, so peer states follow handshakes and endpoint timeouts as they happen: when the engine reports a
completed handshake (``wgpy.events.Event.HANDSHAKE_COMPLETE``, through ``Interface.add_event_sink``) and at
the next boundary of the state table or the end of a first-contact hold (``kubespan.status_passes`` decides
when). After a handshake, only when a status really changed (``peers.status_changed``: state, endpoint
rotation, roaming) does a pass apply the WireGuard and routing changes and publish the statuses; an idle mesh
runs no pass at all, and the full reconcile stays the backstop. Each reconcile: read addresses
(``kubespan.addresses``, netlink; again only after the address watcher saw a change, or in the periodic
reconcile) and WireGuard peers, publish the local affiliate, merge remote affiliates,
call the pure ``controller.reconcile``, apply the peer diff to wgpy and the routing spec to the kernel, send
harvested endpoints (``harvestExtraEndpoints``), publish the resources. Logs say what changed and why; they
never contain keys other than public keys. SIGTERM/SIGINT: routes/rules/nft removed, TUN closed, sockets
removed, exit 0; the affiliate stays in discovery until its TTL, as a rebooting Talos node's does (stopping is
not leaving; ``kubespan.leave``). A ``leave`` request on the API socket: AffiliateDelete on every service, the
identity files removed (only if every delete succeeded), then the same stop. A config that does not parse
exits 1 before anything is touched; so does a second agent for the same state dir or for the ``kubespan``
interface of the same network namespace (``kubespan.lock``), and the "KubeSpan disabled" cleanup of leftover
state runs only under those locks. Relaying (our extension, ``kubespan.relay``): the interface gets the relay
key derived from the cluster secret (and serves as a relay with ``relay: true``), the local affiliate
announces ``relay``, and the status pass may move a peer onto a relay; ``AgentOptions.relay=False``
(``--no-relay``) behaves as a Talos node: no relay key, no relay use, and ``relay: true`` is an error. With
``metrics_addr`` the agent serves Prometheus metrics (``kubespan.metrics`` plus its interface's
``wgpy.io.metrics``) from the start, before it reports ready. Single event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from wgpy import DeviceUpdate, Interface, UapiInUse, notify_ready, open_uapi_socket

from . import logfmt, netlink, relay, specs
from .affiliates import AffiliateSpec, NodeAddress, from_remote, local_affiliate, local_endpoints, merge, raw_affiliates
from .api import DEFAULT_API_SOCKET, ApiServer
from .config import NodeConfig, load_config, parse_config
from .controller import (
    FWMARK_WIREGUARD, LINK_NAME, LISTEN_PORT, Desired, DesiredPeer, PeerPass, RoutingSpec, diff_peers,
    next_statuses, observed_endpoints_by_node, peer_pass, reconcile,
)
from .discovery.client import DiscoveryClient, ServiceEndpoint
from .errors import KubespanError
from .addresses import AddressReader
from .identity import Identity, load_identity, parse_mac
from .leave import remove_state
from .lock import LOCK_DIR, AgentLock
from .metrics import AgentMetrics
from .peers import ObservedPeer, PeerSpec, PeerStatus, status_changed
from .resources import (
    AFFILIATES, KUBESPAN_ENDPOINTS, KUBESPAN_IDENTITIES, KUBESPAN_PEER_SPECS, KUBESPAN_PEER_STATUSES, MEMBERS,
    NODE_IDENTITIES, RESOURCE_ID_LOCAL, ResourceStore,
)
from .routing import KernelRouting, RoutingEffects
from .status_passes import StatusPasses
from .wgpeers import observe, peer_update

if TYPE_CHECKING:  # the metrics server (prometheus_client) is imported only when metrics are served
    from wgpy import MetricsServer

log = logging.getLogger("kubespan.agent")
T = TypeVar("T")

DEFAULT_STATE_DIR = "/var/lib/kubespan"
DEFAULT_UAPI_SOCKET = "/var/run/wireguard/kubespan.sock"
DEFAULT_RECONCILE_INTERVAL = 30.0
DEBOUNCE = 0.2
RTMGRP_LINK = 0x1  # link up/down changes which addresses are announced
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


@dataclasses.dataclass(frozen=True, slots=True)
class AgentOptions:
    config_path: str
    state_dir: str = DEFAULT_STATE_DIR
    api_socket: str = DEFAULT_API_SOCKET
    uapi_socket: str | None = DEFAULT_UAPI_SOCKET
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL
    mac: str | None = None
    use_nftables: bool | None = None
    config_text: str | None = None  # the config itself (from $KUBESPAN_CONFIG), instead of config_path
    metrics_addr: str | None = None  # HOST:PORT for /metrics, or None
    lock_dir: str = LOCK_DIR
    relay: bool = True  # use relays and accept relay frames (kubespan.relay); False: as a Talos node


class Agent:
    """One node's KubeSpan agent (see the module contract)."""

    def __init__(self, options: AgentOptions, config: NodeConfig, identity: Identity,
                 routing: RoutingEffects | None = None) -> None:
        assert config.identity is not None
        self.options = options
        self.config = config
        self.identity = identity
        self.routing = routing or KernelRouting(use_nftables=options.use_nftables)
        # also the published hostname: namespaces share the UTS name; the configured one is more useful
        self.nodename = config.node_name or socket.gethostname()
        self.store = ResourceStore(clock=time.time)
        # the identities never change while we run: published once, not on every pass
        self.store.publish(KUBESPAN_IDENTITIES, {RESOURCE_ID_LOCAL: specs.identity_spec(identity)})
        self.store.publish(NODE_IDENTITIES, {RESOURCE_ID_LOCAL: specs.node_identity_spec(identity.node_id)})
        self.statuses: dict[str, PeerStatus] = {}
        self._statuses_at: float | None = None
        """The clock value ``statuses`` were computed at (what ``StatusPasses.arm`` counts due times from)."""
        self._specs: tuple[PeerSpec, ...] | None = None
        """The peer specs of the last reconcile (what the status pass works on)."""
        self._routed: RoutingSpec | None = None
        self._pass_lock = asyncio.Lock()
        """One pass at a time: a reconcile and a status pass never interleave across their awaits."""
        self.status_passes = StatusPasses(self.refresh_statuses, lambda: self.statuses,
                                          identity.public_key.to_base64())
        self.iface: Interface | None = None
        self.clients: list[DiscoveryClient] = []
        self.api: ApiServer | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._warned: set[str] = set()
        self._netlink: socket.socket | None = None
        self._left: asyncio.Future[dict[str, Any]] | None = None
        """Set by a ``leave`` request; resolved by ``_shutdown`` once the affiliate is deleted."""
        self.exit_code = 0
        self.metrics = AgentMetrics(lambda: self.statuses, lambda: self.clients)
        self._nl_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kubespan-netlink")
        """Netlink and nft work in one thread (pyroute2's sockets stay there; ``netlink.prepare`` at start)."""
        self._reader = AddressReader()
        self._addresses: list[NodeAddress] | None = None
        self._addresses_stale = True
        """Re-read the addresses: the watcher saw a change, a periodic reconcile, or no watcher."""
        self._metrics_server: MetricsServer | None = None

    # --- life cycle ------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig.name)
        ticker: asyncio.Task[None] | None = None
        self._nl_thread.submit(netlink.prepare)
        try:
            await self._start()
            notify_ready(f"serving {self.options.api_socket}")  # systemd Type=notify
            ticker = asyncio.create_task(self.status_passes.run(), name="kubespan status passes")
            await self._loop()
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return self.exit_code

    def stop(self, why: str = "stop") -> None:
        log.info("received %s, shutting down", why)
        self._stop.set()
        self._wake.set()
        self.status_passes.stop()

    def trigger(self) -> None:
        self._wake.set()

    async def _start(self) -> None:
        ks = self.config.kubespan
        uapi: bool | socket.socket = False
        if self.options.uapi_socket:
            uapi = _open_uapi(self.options.uapi_socket)
        self.iface = await Interface.create(LINK_NAME, mtu=ks.mtu, private_key=self.identity.private_key,
                                            listen_port=LISTEN_PORT, uapi=uapi)
        self.iface.configure(DeviceUpdate(fwmark=FWMARK_WIREGUARD))
        self.iface.add_event_sink(self.status_passes.engine_event)
        if ks.use_relays:  # every member of ours takes relay frames; a relay (relay: true) also forwards them
            assert self.config.identity is not None
            self.iface.set_relay(relay.relay_key(self.config.identity.cluster_secret), serve=ks.relay)
            log.info("relaying: %s", "this node relays for others" if ks.relay else "may use relays, does not relay")
        log.info("created interface %s (port %d, fwmark 0x%x, mtu %d, public key %s, address %s)", LINK_NAME,
                 LISTEN_PORT, FWMARK_WIREGUARD, ks.mtu, self.identity.public_key.to_base64(), self.identity.address)
        self.api = ApiServer(self.options.api_socket, self.store, self.nodename, on_leave=self._on_leave)
        await self.api.start()
        log.info("serving the resource API on %s", self.options.api_socket)
        self._watch_addresses()
        assert self.config.identity is not None
        for ep in self.config.discovery_endpoints:
            client = DiscoveryClient(
                ServiceEndpoint(ep.host, ep.port, ep.insecure), self.config.identity.cluster_id,
                self.config.identity.cluster_secret, self.identity.node_id, on_change=self.trigger,
            )
            self.clients.append(client)
            await client.start()
            log.info("discovery service %s (%s)", ep.name, ep.address)
        if self.options.metrics_addr is not None:
            await self._serve_metrics(self.options.metrics_addr)
        closed = self.iface.runner.closed
        if closed is not None:
            closed.add_done_callback(self._iface_closed)

    async def _serve_metrics(self, addr: str) -> None:
        from prometheus_client.registry import CollectorRegistry

        from wgpy import MetricsServer

        assert self.iface is not None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.metrics.collector())
        registry.register(self.iface.metrics_collector(lambda: {k: s.label for k, s in self.statuses.items()}))
        self._metrics_server = MetricsServer(registry, addr)
        await self._metrics_server.start()

    def _iface_closed(self, fut: asyncio.Future[str]) -> None:
        if not self._stop.is_set():
            log.error("interface %s stopped (%s)", LINK_NAME, fut.result() if not fut.cancelled() else "cancelled")
            self.exit_code = 1
            self.stop("interface closed")

    def _watch_addresses(self) -> None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.NETLINK_ROUTE)
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        except OSError as exc:
            log.warning("cannot watch address changes (%s); relying on the periodic reconcile", exc)
            return
        self._netlink = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_netlink)

    def _on_netlink(self) -> None:
        assert self._netlink is not None
        with contextlib.suppress(OSError):  # BlockingIOError once drained; ENOBUFS on overrun
            for _ in range(64):
                self._netlink.recv(65536)
        self._addresses_stale = True
        self.trigger()

    async def _loop(self) -> None:
        interval = self.options.reconcile_interval
        while not self._stop.is_set():
            started, ok = time.monotonic(), False
            try:
                await self.reconcile_once()
                ok = True
            except Exception:  # keep the mesh running; the next pass retries
                log.exception("reconcile failed")
            self.metrics.reconciled(time.monotonic() - started, ok)
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except asyncio.TimeoutError:
                self._addresses_stale = True  # the periodic reconcile reads everything again
            if self._stop.is_set():
                break
            self._wake.clear()
            await asyncio.sleep(DEBOUNCE)

    async def _on_leave(self) -> dict[str, Any]:
        """The API's ``leave`` request: stop, and let ``_shutdown`` delete the affiliate first."""
        if self._left is None:
            log.info("leave requested: deleting affiliate %s and the identity, then stopping", self.identity.node_id)
            self._left = asyncio.get_running_loop().create_future()
            self.stop("leave request")
        return await asyncio.shield(self._left)

    async def _leave_discovery(self) -> dict[str, Any]:
        failed = []
        for client in self.clients:
            try:
                ok = await asyncio.wait_for(client.delete_affiliate(), 10.0)
            except (asyncio.TimeoutError, OSError):
                ok = False
            if not ok:
                failed.append(client.current_endpoint.target)
        if failed:
            log.error("affiliate %s not deleted from %s; identity kept", self.identity.node_id, ", ".join(failed))
            return {"left": self.identity.node_id, "failed": failed, "removed": []}
        removed = remove_state(self.options.state_dir)
        log.info("left the cluster: affiliate %s deleted, removed %s", self.identity.node_id, ", ".join(removed))
        return {"left": self.identity.node_id, "failed": [], "removed": removed}

    async def _shutdown(self) -> None:
        self.status_passes.stop()
        if self._metrics_server is not None:
            await self._metrics_server.close()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(delete=False), 10.0)
        if self._left is not None:
            try:
                result = await self._leave_discovery()
            except Exception as exc:  # the waiting ``kubespan leave`` must get an answer
                result = {"error": f"leave failed: {exc}"}
            self._left.set_result(result)
        elif self.clients:
            log.info("affiliate %s stays in discovery until its TTL ('kubespan leave' leaves the cluster)",
                     self.identity.node_id)
        if self._netlink is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._netlink.fileno())
            self._netlink.close()
        if self.iface is not None:  # routing state is ours only once we own the link
            for change in await self._in_nl_thread(self.routing.cleanup):
                log.info("cleanup: %s", change)
            await self._in_nl_thread(self._reader.close)
            await self.iface.close()
            log.info("interface %s removed", LINK_NAME)
        if self.api is not None:
            await self.api.close()
        self._nl_thread.shutdown(wait=False)

    async def _in_nl_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._nl_thread, fn, *args)

    # --- one pass ----------------------------------------------------------------------------

    async def reconcile_once(self) -> Desired:
        """One pass; netlink calls run in a worker thread (pyroute2's sync API owns its own loop)."""
        async with self._pass_lock:
            return await self._reconcile()

    async def _reconcile(self) -> Desired:
        assert self.iface is not None
        if self._addresses is None or self._addresses_stale or self._netlink is None:
            self._addresses_stale = False  # a change during the read marks them stale again
            self._addresses = await self._in_nl_thread(self._reader.read)
        addresses = self._addresses
        public_ip = next((c.client_ip for c in self.clients if c.client_ip is not None), None)
        affiliate = local_affiliate(self.identity, self.config, addresses, self.nodename, self.nodename,
                                    self.config.machine_type)
        endpoints = local_endpoints(addresses, self.config, self.identity.address, public_ip)
        for client in self.clients:
            if client.set_local(affiliate, endpoints):
                log.info("publishing local affiliate: addresses %s, endpoints %s",
                         ",".join(map(str, affiliate.addresses)) or "none", ",".join(map(str, endpoints)) or "none")
        raw = raw_affiliates([{nid: (r.affiliate, r.endpoints) for nid, r in c.affiliates().items()}
                              for c in self.clients])
        merged = merge(raw)
        merged.pop(self.identity.node_id, None)
        local = from_remote(affiliate, endpoints)
        observed = observe(self.iface)
        now = time.time()
        desired = reconcile(self.config, self.identity, local, merged, observed, self.statuses, now, self._contacted())
        self._log_warnings(desired.warnings)
        self._specs = desired.peer_specs
        await self._apply(PeerPass(desired.statuses, desired.peers, desired.routing, desired.harvested), observed,
                          now, always_route=True, why="reconcile")
        self._publish(desired, local, merged)
        self.status_passes.arm(self._statuses_at)
        return desired

    async def refresh_statuses(self, why: str = "timeout") -> bool:
        """The status pass (see the module contract; ``why``: what asked for it); whether it applied."""
        async with self._pass_lock:
            if self._specs is None or self.iface is None:
                return False
            self.metrics.status_pass(why)
            observed = observe(self.iface)
            now = time.time()
            new = next_statuses(self._specs, observed, self.statuses, now)
            if why != "timeout" and not any(status_changed(self.statuses.get(k), s) for k, s in new.items()):
                self.status_passes.arm(self._statuses_at)
                return False
            result = peer_pass(self.config, self.identity, self._specs, observed, self.statuses, now, self._contacted())
            await self._apply(result, observed, now, always_route=False, why=why)
            self.store.publish(KUBESPAN_PEER_STATUSES,
                               {k: specs.peer_status_spec(s) for k, s in result.statuses.items()})
            self.store.publish(KUBESPAN_ENDPOINTS, {h.public_key: specs.endpoint_spec(h) for h in result.harvested})
            self.status_passes.arm(self._statuses_at)
            return True

    async def _apply(self, result: PeerPass, observed: dict[str, ObservedPeer], computed_at: float,
                     always_route: bool, why: str) -> None:
        """WireGuard peers, then routing (a status pass: only when the routed set changed), then statuses."""
        self._apply_peers(result.peers, observed)
        if always_route or result.routing != self._routed:
            try:
                for change in await self._in_nl_thread(self.routing.apply, result.routing):
                    log.info("routing: %s", change)
                self._routed = result.routing
            except Exception as exc:
                log.error("routing apply failed: %s", exc)
        self._log_status_changes(result.statuses, why)
        self.metrics.observe_statuses(self.statuses, result.statuses)
        self.statuses = dict(result.statuses)
        self._statuses_at = computed_at
        if self.config.kubespan.harvest_extra_endpoints:
            observed_eps = observed_endpoints_by_node(result.harvested)
            for client in self.clients:
                client.set_observed_endpoints(observed_eps)

    def _log_warnings(self, warnings: Sequence[str]) -> None:
        for warning in warnings:
            if warning not in self._warned:
                log.warning("%s", warning)
        self._warned = set(warnings)

    def _contacted(self) -> dict[str, float]:
        """Who tried to handshake with us before we knew them (``controller`` first contact)."""
        assert self.iface is not None
        return {key.to_base64(): when for key, when in self.iface.unknown_initiators().items()}

    def _apply_peers(self, peers: Sequence[DesiredPeer], observed: dict[str, ObservedPeer]) -> None:
        assert self.iface is not None
        changes = diff_peers(peers, observed)
        if not changes:
            return
        labels = {key: status.label for key, status in self.statuses.items()}
        labels.update({p.public_key: p.label for p in peers})
        self.iface.configure(DeviceUpdate(peers=[peer_update(c) for c in changes]))
        for change in changes:
            log.info("peer %s (%s) %s: %s", labels.get(change.public_key, "?"), change.public_key, change.action,
                     "; ".join(change.reasons))

    def _log_status_changes(self, statuses: Mapping[str, PeerStatus], why: str) -> None:
        for key, status in statuses.items():
            old = self.statuses.get(key)
            if old is None or old.state is not status.state:
                log.info("peer %s (%s) state %s -> %s (%s)", status.label, key, old.state.value if old else "new",
                         status.state.value, why)
            if (old is not None and status.endpoint is not None and status.endpoint != old.endpoint
                    and status.endpoint != status.last_used_endpoint and relay.relayed_via(status) is None):
                log.info("peer %s (%s) roamed to %s (WireGuard saw it there; kept)", status.label, key,
                         status.endpoint)
            moved = relay.describe_change(old, status)
            if moved is not None:
                log.info("peer %s (%s) %s", status.label, key, moved)
            if old is not None and old.last_used_endpoint != status.last_used_endpoint:
                log.info("peer %s (%s) trying endpoint %s (previous %s was %s)", status.label, key,
                         status.last_used_endpoint, old.last_used_endpoint, old.state.value)
        for key in set(self.statuses) - set(statuses):
            log.info("peer %s (%s) removed", self.statuses[key].label, key)

    def _publish(self, desired: Desired, local: AffiliateSpec, merged: Mapping[str, AffiliateSpec]) -> None:
        store = self.store
        store.publish(KUBESPAN_PEER_SPECS, {s.public_key: specs.peer_spec(s) for s in desired.peer_specs})
        store.publish(KUBESPAN_PEER_STATUSES, {k: specs.peer_status_spec(s) for k, s in desired.statuses.items()})
        store.publish(KUBESPAN_ENDPOINTS, {h.public_key: specs.endpoint_spec(h) for h in desired.harvested})
        affs = {nid: specs.affiliate_spec(a) for nid, a in merged.items()}
        affs[local.node_id] = specs.affiliate_spec(local)
        store.publish(AFFILIATES, affs)
        store.publish(MEMBERS, {mid: specs.member_spec(m) for mid, m in desired.members.items()})


def _open_uapi(path: str) -> socket.socket:
    directory, base = os.path.split(os.path.abspath(path))
    if not base.endswith(".sock") or len(base) <= len(".sock"):
        raise KubespanError(f"--uapi-socket {path}: the file name must be <name>.sock")
    return open_uapi_socket(base[: -len(".sock")], directory)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Our loggers at ``level`` on stdout, as text or JSON lines (``kubespan.logfmt``); libraries stay at
    warnings.  One record per flush: containers and journald read it live."""
    logfmt.setup(level, fmt, sys.stdout)


async def _run(options: AgentOptions) -> int:
    # a bad config stops here, before anything is touched
    config = load_config(options.config_path) if options.config_text is None else parse_config(options.config_text)
    if not options.relay:
        if config.kubespan.relay:
            raise KubespanError("'relay: true' in the config conflicts with --no-relay")
        config = dataclasses.replace(config, kubespan=dataclasses.replace(config.kubespan, use_relays=False))
    enabled = config.kubespan.enabled
    with AgentLock.acquire(options.state_dir, LINK_NAME, create_state_dir=enabled, lock_dir=options.lock_dir):
        if not enabled:  # leftover state of a dead agent: no live agent holds the lock, so it is not one's
            log.warning("KubeSpan is disabled in %s; removing any KubeSpan routing state and exiting",
                        options.config_path)
            await asyncio.to_thread(KernelRouting(use_nftables=options.use_nftables).cleanup)
            return 0
        if config.identity is None:
            raise KubespanError("the config has no cluster identity")
        mac = parse_mac(options.mac) if options.mac else None
        identity = load_identity(options.state_dir, config.identity.cluster_id, mac=mac)
        log.info("node ID %s, KubeSpan address %s", identity.node_id, identity.address)
        agent = Agent(options, config, identity)
        return await agent.run()


def run_agent(options: AgentOptions) -> int:
    """Run until SIGTERM/SIGINT; the exit status."""
    try:
        return asyncio.run(_run(options))
    except (KubespanError, UapiInUse, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
