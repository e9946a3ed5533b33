"""The asyncio library API: ``Interface`` (owns a TUN) and ``PacketInterface``.

Contract (architecture.md §5): an interface is one ``wgpy.device.Device``
driven by a ``wgpy.io.runner.Runner`` with real UDP sockets, configured with
typed calls that are exactly the UAPI operations (``configure`` takes a
``DeviceUpdate``; the helpers build one).  Every configuration call is
atomic: it applies completely or raises ``UapiError`` (``errno`` says why)
and changes nothing; ``_Base._apply`` is the one place a ``ConfigError``
(EINVAL) or a refused bind (``OSError``: EADDRINUSE) becomes a ``UapiError``,
for the typed calls and the UAPI socket alike.  ``Interface`` creates or
adopts a Linux TUN device (root or CAP_NET_ADMIN), decides once whether the
native data plane serves it (``wgpy.io.fastpath.enabled``: then the device
is built with a ``NativeDataPlane`` and the runner gets plane and TUN
together), follows the link's up/down state and MTU over rtnetlink, and can
serve the UAPI socket so ``wg`` sees it, and Prometheus metrics
(``serve_metrics`` / ``create(metrics_addr=...)``; ``wgpy.io.metrics``).
Both kinds log the engine's peer events on the ``wgpy.peer`` logger
(``wgpy.io.eventlog``); ``add_event_sink`` hands them to the caller too (on
the loop thread, inside the engine call: a sink schedules work, it does not
reconfigure the interface).  ``PacketInterface`` has no
TUN: the caller hands plaintext IP packets to ``send_packets`` and receives
decrypted ones through its ``on_packet`` callback, which needs no privileges.
Both must be used from one event loop; they are not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import ipaddress
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from .config import DeviceUpdate, Endpoint, IPNetwork, PeerUpdate
from .constants import DEFAULT_MTU, RELAY_PAIR_BURST, RELAY_PAIR_RATE
from .dataplane import NativeDataPlane
from .device import Device
from .errors import ConfigError, DropReason, UapiError
from .events import Event, EventSink
from .io import fastpath
from .io.eventlog import EventLog
from .io.runner import Runner
from .io.tun_linux import LinkEvent, LinkWatcher, TunDevice
from .io.uapi_server import UapiServer, open_uapi_socket
from .io.udp import UdpBind
from .keys import PresharedKey, PrivateKey, PublicKey
from .peer import Peer
from .relay import RelayStats
from .uapi import serialize_get

if TYPE_CHECKING:
    from .io.metrics import InterfaceCollector
    from .io.metrics_http import MetricsServer

log = logging.getLogger("wgpy.interface")
peer_log = logging.getLogger("wgpy.peer")
"""Per-peer handshake and session events (wgpy.io.eventlog) at INFO, keepalives at DEBUG."""


@dataclasses.dataclass(frozen=True, slots=True)
class PeerStats:
    """A snapshot of one peer, as ``wg show`` reports it."""

    public_key: PublicKey
    endpoint: Endpoint | None
    allowed_ips: tuple[IPNetwork, ...]
    rx_bytes: int
    tx_bytes: int
    last_handshake: float | None
    """Unix time of the last completed handshake, or None."""
    persistent_keepalive: int
    has_preshared_key: bool
    relayed: bool = False
    """``endpoint`` is a relay's address (wgpy.relay)."""
    probe_endpoint: Endpoint | None = None
    """The direct endpoint probed while relayed, or None."""
    relayed_rx_bytes: int = 0
    """Bytes of relay frames received from this peer (``rx_bytes`` counts their payload)."""
    relayed_tx_bytes: int = 0
    """Bytes of relay frames sent to this peer (``tx_bytes`` counts their payload)."""


def _network(net: IPNetwork | str) -> IPNetwork:
    if not isinstance(net, str):
        return net
    try:
        return ipaddress.ip_network(net, strict=False)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def open_tun(name: str, mtu: int = DEFAULT_MTU) -> TunDevice:
    """Create TUN ``name`` as ``Interface.create`` does: with virtio-net offload when the native data plane
    will serve it (``wgpy.io.fastpath.tun_offload_wanted``), and one queue per CPU then (``tun_queues``)."""
    return TunDevice.create(name, mtu, offload=fastpath.tun_offload_wanted(), queues=fastpath.tun_queues())


class _Base:
    """Configuration and statistics shared by both interface kinds."""

    def __init__(self, device: Device, runner: Runner) -> None:
        self.device = device
        self.runner = runner
        first = device.on_event
        if first is None:
            first = device.on_event = EventLog(peer_log)
        self._first_sink: EventSink = first
        self._sinks: list[EventSink] = []

    def add_event_sink(self, sink: EventSink) -> None:
        """Also hand every engine peer event (``wgpy.events``) to ``sink``, after the log line
        (or the sink the device had before)."""
        self._sinks.append(sink)
        self.device.on_event = self._fan_out

    def _fan_out(self, event: Event, peer: Peer | None, endpoint: Endpoint | None) -> None:
        self._first_sink(event, peer, endpoint)
        for sink in self._sinks:
            sink(event, peer, endpoint)

    # ------------------------------------------------------------- configure

    def configure(self, update: DeviceUpdate) -> None:
        """Apply one UAPI-style transaction atomically (raises ``UapiError``)."""
        self._apply(lambda: update)

    def _apply(self, build: Callable[[], DeviceUpdate]) -> None:
        """Build and apply one transaction: the one boundary where errors become ``UapiError``."""
        try:
            self.runner.configure(build())
        except ConfigError as exc:
            raise UapiError(errno.EINVAL, str(exc)) from exc
        except OSError as exc:
            raise UapiError(errno.EADDRINUSE, str(exc)) from exc

    def set_private_key(self, key: PrivateKey | None) -> None:
        self._apply(lambda: DeviceUpdate(private_key=key if key is not None else PrivateKey(bytes(32))))

    def set_listen_port(self, port: int) -> None:
        self._apply(lambda: DeviceUpdate(listen_port=port))

    def set_fwmark(self, fwmark: int) -> None:
        self._apply(lambda: DeviceUpdate(fwmark=fwmark))

    def set_peer(self, public_key: PublicKey, *, endpoint: Endpoint | None = None,
                 allowed_ips: Iterable[IPNetwork | str] | None = None, replace_allowed_ips: bool = True,
                 preshared_key: PresharedKey | None = None, persistent_keepalive: int | None = None,
                 update_only: bool = False, relayed: bool = False, probe_endpoint: Endpoint | None = None) -> None:
        """Create or update a peer (``allowed_ips`` replace the peer's list unless told otherwise;
        ``relayed``/``probe_endpoint``: see ``PeerUpdate``)."""
        self._apply(lambda: DeviceUpdate(peers=[PeerUpdate(
            public_key=public_key, endpoint=endpoint, relayed=relayed, probe_endpoint=probe_endpoint,
            preshared_key=preshared_key,
            persistent_keepalive=persistent_keepalive, update_only=update_only,
            replace_allowed_ips=allowed_ips is not None and replace_allowed_ips,
            allowed_ips=[_network(n) for n in allowed_ips or ()])]))

    def set_relay(self, key: bytes | None, *, serve: bool = False, rate: int = RELAY_PAIR_RATE,
                  burst: int = RELAY_PAIR_BURST) -> None:
        """Relaying (wgpy.relay): the 32-byte relay ``key`` frames are tagged with (None: off, every frame a
        counted drop), ``serve``: forward frames for others, ``rate``/``burst``: bytes per (sender, receiver)
        pair.  Raises ``UapiError`` (EINVAL) and changes nothing on a bad value."""
        try:
            self.device.relay.configure(key, serve=serve, rate=rate, burst=burst)
        except ConfigError as exc:
            raise UapiError(errno.EINVAL, str(exc)) from exc

    def remove_peer(self, public_key: PublicKey) -> None:
        self._apply(lambda: DeviceUpdate(peers=[PeerUpdate(public_key=public_key, remove=True)]))

    def replace_peers(self, peers: Iterable[PeerUpdate] = ()) -> None:
        self._apply(lambda: DeviceUpdate(replace_peers=True, peers=list(peers)))

    # ------------------------------------------------------------- inspect

    @property
    def public_key(self) -> PublicKey | None:
        return self.device.public_key

    @property
    def listen_port(self) -> int:
        return self.runner.bind.port

    def peers(self) -> list[PeerStats]:
        self.runner.sync()
        return [PeerStats(
            public_key=p.public_key, endpoint=p.endpoint, allowed_ips=tuple(p.allowed_ips()),
            rx_bytes=p.rx_bytes, tx_bytes=p.tx_bytes, last_handshake=p.last_handshake_wall,
            persistent_keepalive=p.persistent_keepalive, has_preshared_key=p.preshared_key is not None,
            relayed=p.relayed, probe_endpoint=p.probe_endpoint, relayed_rx_bytes=p.relayed_rx_bytes,
            relayed_tx_bytes=p.relayed_tx_bytes,
        ) for p in self.device.peers()]

    def unknown_initiators(self) -> dict[PublicKey, float]:
        """Static keys of recent initiations from no configured peer, with the wall-clock time of the
        latest one each (``Device.unknown_initiators``; unauthenticated claims)."""
        return dict(self.device.unknown_initiators)

    def relay_stats(self) -> RelayStats:
        """Relay counters: frames forwarded for others, delivered to us, sent by us, probes, drops by reason."""
        self.runner.sync()
        return self.device.relay.stats(self.device.drops)

    def drops(self) -> dict[str, int]:
        """Drop counters: the engine's reasons plus the runtime's I/O drops."""
        out = {reason.value: n for reason, n in self.device.drops.items() if isinstance(reason, DropReason)}
        out.update(self.runner.io_drops)
        return out

    def uapi_get(self) -> str:
        """The ``get`` body wg would see (for debugging and tests)."""
        self.runner.sync()
        return serialize_get(self.device)


class PacketInterface(_Base):
    """A WireGuard endpoint without TUN: the caller supplies the packet I/O."""

    @classmethod
    async def create(cls, on_packet: Callable[[bytes], None], *, private_key: PrivateKey | None = None,
                     listen_port: int = 0, mtu: int = DEFAULT_MTU) -> PacketInterface:
        device = Device(rng=os.urandom, wall_clock=time.time, mtu=mtu, clock=time.monotonic)
        bind = UdpBind.open(listen_port)
        runner = Runner(device, bind, deliver=on_packet)
        self = cls(device, runner)
        runner.start()
        if private_key is not None:
            self.set_private_key(private_key)
        runner.set_link(True)
        return self

    def send_packets(self, packets: list[bytes]) -> None:
        """Hand plaintext IP packets to WireGuard (routed by allowed IPs)."""
        self.runner.inject(packets)

    async def close(self) -> None:
        self.runner.stop("closed")
        self.device.down(time.monotonic())
        self.runner.bind.close()

    async def __aenter__(self) -> PacketInterface:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Interface(_Base):
    """A WireGuard interface backed by a Linux TUN device (needs CAP_NET_ADMIN)."""

    def __init__(self, device: Device, runner: Runner, tun: TunDevice) -> None:
        super().__init__(device, runner)
        self.tun = tun
        self.name = tun.name
        self._index = tun.index()
        self._watcher: LinkWatcher | None = None
        self._uapi: UapiServer | None = None
        self._waiters: list[asyncio.Task[None]] = []
        self._metrics: MetricsServer | None = None
        self._closed = False

    @classmethod
    async def create(cls, name: str, *, mtu: int = DEFAULT_MTU, private_key: PrivateKey | None = None,
                     listen_port: int = 0, tun: TunDevice | None = None,
                     uapi: bool | socket.socket = False, metrics_addr: str | None = None) -> Interface:
        """Create TUN ``name`` (or adopt ``tun``), bind UDP, optionally serve UAPI and
        Prometheus metrics on ``metrics_addr`` (``HOST:PORT``; see ``serve_metrics``)."""
        native = fastpath.enabled()
        own_tun = tun is None
        if tun is None:
            tun = open_tun(name, mtu)
        try:
            plane = NativeDataPlane() if native else None
            device = Device(rng=os.urandom, wall_clock=time.time, mtu=tun.mtu(), dataplane=plane,
                            clock=time.monotonic)
            bind = UdpBind.open(listen_port)
        except BaseException:
            if own_tun:
                tun.close()
            raise
        self = cls(device, Runner(device, bind, tun=tun, plane=plane), tun)
        try:
            await self._start(private_key, uapi)
            if metrics_addr is not None:
                await self.serve_metrics(metrics_addr)
        except BaseException:
            await self.close()
            raise
        return self

    async def _start(self, private_key: PrivateKey | None, uapi: bool | socket.socket) -> None:
        self._watcher = LinkWatcher()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._watcher.fileno(), self._on_link_events)
        self.runner.start()
        if private_key is not None:
            self.set_private_key(private_key)
        if uapi is not False:
            sock = uapi if isinstance(uapi, socket.socket) else open_uapi_socket(self.name)
            self._uapi = UapiServer(sock, self.device, self.configure, lambda: self.device.public_key,
                                    before_get=self.runner.sync)
            await self._uapi.start()
            self._waiters.append(asyncio.create_task(self._uapi.watch_path()))
        if self.tun.running():
            self.runner.set_link(True)

    def _on_link_events(self) -> None:
        assert self._watcher is not None
        try:
            events = self._watcher.read_events()
        except OSError as exc:
            log.error("netlink error: %s", exc)
            return
        for event in events:
            self._link_event(event)

    def _link_event(self, event: LinkEvent) -> None:
        if event.index == 0:  # netlink overrun: re-read the flags
            with contextlib.suppress(OSError):
                self.runner.set_link(self.tun.running())
            return
        if event.index != self._index:
            return
        if event.deleted:
            log.info("interface %s deleted", self.name)
            self.runner.stop("tun-gone")
            return
        if event.mtu is not None and event.mtu != self.device.mtu:
            self.runner.set_mtu(event.mtu)
        if event.running != self.runner.link_up:
            self.runner.set_link(event.running)

    def metrics_collector(self, peer_names: Callable[[], Mapping[str, str]] | None = None) -> InterfaceCollector:
        """A prometheus-client collector of this interface (``wgpy.io.metrics``): ``peer_names`` maps a peer's
        base64 public key to the ``name`` label.  For callers that serve their own registry."""
        from .io.metrics import InterfaceCollector

        return InterfaceCollector(self, self.name, peer_names=peer_names)

    async def serve_metrics(self, addr: str, peer_names: Callable[[], Mapping[str, str]] | None = None
                            ) -> MetricsServer:
        """Serve this interface's metrics at ``http://addr/metrics`` on this loop until ``close``
        (``ValueError`` for a bad address, ``OSError`` when it cannot bind)."""
        from prometheus_client.registry import CollectorRegistry

        from .io.metrics_http import MetricsServer

        if self._metrics is not None:
            raise ValueError(f"{self.name}: metrics are already served on port {self._metrics.port}")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.metrics_collector(peer_names))
        server = MetricsServer(registry, addr)
        await server.start()
        self._metrics = server
        return server

    async def wait_closed(self) -> str:
        """Wait until the interface stops by itself; returns the reason."""
        assert self.runner.closed is not None
        closed = self.runner.closed
        waits: set[asyncio.Future[object]] = {closed, *self._waiters}  # type: ignore[arg-type]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        return closed.result() if closed.done() else "uapi-socket-removed"

    async def close(self) -> None:
        """Stop, remove the UAPI socket, close sockets and the TUN (which deletes it)."""
        if self._closed:
            return
        self._closed = True
        for task in self._waiters:
            task.cancel()
        if self._metrics is not None:
            await self._metrics.close()
        if self._uapi is not None:
            await self._uapi.close()
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._watcher.fileno())
            self._watcher.close()
        self.runner.stop("closed")
        self.device.down(time.monotonic())
        self.runner.bind.close()
        self.tun.close()

    async def __aenter__(self) -> Interface:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
