"""Prometheus metrics of one interface, read from its counters at scrape time.

Contract: ``InterfaceCollector(iface, device)`` is a prometheus-client
collector: each ``collect()`` (one scrape, on the event loop's thread: the
HTTP server in ``wgpy.io.metrics_http`` runs there) syncs the data plane's
counters once and reports what ``wg show`` reports, under the names and
labels of mdlayher/wireguard_exporter so its dashboards work unchanged:

    wireguard_device_info{device,public_key}                       1
    wireguard_peer_info{device,public_key,endpoint,name}           1
    wireguard_peer_allowed_ips_info{device,public_key,allowed_ips,family}  1
    wireguard_peer_receive_bytes_total{device,public_key}          counter
    wireguard_peer_transmit_bytes_total{device,public_key}         counter
    wireguard_peer_last_handshake_seconds{device,public_key}       UNIX seconds, 0 before the first

(the peer's ``public_key`` is the peer's, not the device's; ``endpoint`` is
"" when unknown; ``name`` comes from the optional ``peer_names`` callable,
"" otherwise).  Then what only the engine knows, prefixed ``wgpy_``: drops
by ``reason`` (every ``DropReason`` and the runtime's I/O drops), handshake
messages sent and received by ``type`` (initiation, response, cookie_reply),
keypairs created, the handshake timers' decisions by ``event``, the
under-load state and the handshake queue length, and the data-plane mode;
relaying (wgpy.relay): ``wgpy_relay_frames_total{device,kind}`` (kind: forwarded,
delivered, sent, probe), ``wgpy_relay_forwarded_bytes_total{device}``,
``wgpy_path_changes_total{device,to}`` (to: relayed, direct), and per peer
``wgpy_peer_relayed{device,public_key}`` (1 while its endpoint is a relay) and
``wgpy_peer_relayed_{receive,transmit}_bytes_total`` (relay drops are in ``wgpy_drops``).
Nothing is counted per packet for this: every value already exists.  Not
thread-safe: call ``collect`` on the interface's loop.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..errors import DropReason
from ..events import Event
from .eventlog import format_endpoint

if TYPE_CHECKING:
    from ..interface import _Base

_PEER = ["device", "public_key"]
_SENT = {Event.INITIATION_SENT: "initiation", Event.RESPONSE_SENT: "response",
         Event.COOKIE_REPLY_SENT: "cookie_reply"}
_RECEIVED = {Event.INITIATION_RECEIVED: "initiation", Event.RESPONSE_RECEIVED: "response",
             Event.COOKIE_REPLY_RECEIVED: "cookie_reply"}
_TIMERS = {Event.HANDSHAKE_RETRY: "retry", Event.HANDSHAKE_GIVE_UP: "give_up",
           Event.HANDSHAKE_STALE: "stale", Event.KEYS_ZEROED: "keys_zeroed"}


class InterfaceCollector(Collector):
    """The metrics of one wgpy interface (see the module contract)."""

    def __init__(self, iface: _Base, device: str, *, peer_names: Callable[[], Mapping[str, str]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.iface = iface
        self.device = device
        self.peer_names = peer_names
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from self._wireguard()
        yield from self._engine()
        yield from self._relay()

    def _relay(self) -> Iterator[Metric]:
        dev = self.device
        stats = self.iface.relay_stats()
        frames = CounterMetricFamily("wgpy_relay_frames", "Relay frames: forwarded for other pairs, delivered to "
                                     "this node, sent to relayed peers, and direct probes sent.",
                                     labels=["device", "kind"])
        for kind, n in (("forwarded", stats.forwarded_frames), ("delivered", stats.delivered_frames),
                        ("sent", stats.sent_frames), ("probe", stats.probes_sent)):
            frames.add_metric([dev, kind], n)
        fwd = CounterMetricFamily("wgpy_relay_forwarded_bytes", "Bytes of relay frames forwarded for other pairs.",
                                  labels=["device"])
        fwd.add_metric([dev], stats.forwarded_bytes)
        changes = CounterMetricFamily("wgpy_path_changes", "Peers whose path moved to a relay or back to direct "
                                      "(an authenticated datagram came the other way).", labels=["device", "to"])
        events = self.iface.device.events
        changes.add_metric([dev, "relayed"], events[Event.PATH_RELAYED])
        changes.add_metric([dev, "direct"], events[Event.PATH_DIRECT])
        relayed = GaugeMetricFamily("wgpy_peer_relayed", "1 while the peer's endpoint is a relay.", labels=_PEER)
        rx = CounterMetricFamily("wgpy_peer_relayed_receive_bytes", "Bytes of relay frames received from a peer.",
                                 labels=_PEER)
        tx = CounterMetricFamily("wgpy_peer_relayed_transmit_bytes", "Bytes of relay frames sent to a peer.",
                                 labels=_PEER)
        for p in self.iface.peers():
            pub = p.public_key.to_base64()
            relayed.add_metric([dev, pub], 1 if p.relayed else 0)
            rx.add_metric([dev, pub], p.relayed_rx_bytes)
            tx.add_metric([dev, pub], p.relayed_tx_bytes)
        yield from (frames, fwd, changes, relayed, rx, tx)

    def _wireguard(self) -> Iterator[Metric]:
        dev = self.device
        info = GaugeMetricFamily("wireguard_device_info", "Metadata about a device.", labels=_PEER)
        key = self.iface.public_key
        info.add_metric([dev, key.to_base64() if key is not None else ""], 1)
        yield info
        peer_info = GaugeMetricFamily(
            "wireguard_peer_info", "Metadata about a peer. The public_key label on peer metrics refers to the "
            "peer's public key; not the device's public key.", labels=[*_PEER, "endpoint", "name"])
        allowed = GaugeMetricFamily(
            "wireguard_peer_allowed_ips_info",
            "Metadata about each of a peer's allowed IP subnets for a given device.",
            labels=[*_PEER, "allowed_ips", "family"])
        rx = CounterMetricFamily("wireguard_peer_receive_bytes", "Number of bytes received from a given peer.",
                                 labels=_PEER)
        tx = CounterMetricFamily("wireguard_peer_transmit_bytes", "Number of bytes transmitted to a given peer.",
                                 labels=_PEER)
        last = GaugeMetricFamily("wireguard_peer_last_handshake_seconds",
                                 "UNIX timestamp for the last handshake with a given peer.", labels=_PEER)
        names = self.peer_names() if self.peer_names is not None else {}
        for p in self.iface.peers():
            pub = p.public_key.to_base64()
            endpoint = format_endpoint(p.endpoint) if p.endpoint is not None else ""
            peer_info.add_metric([dev, pub, endpoint, names.get(pub, "")], 1)
            for net in p.allowed_ips:
                allowed.add_metric([dev, pub, str(net), _family(net)], 1)
            rx.add_metric([dev, pub], p.rx_bytes)
            tx.add_metric([dev, pub], p.tx_bytes)
            last.add_metric([dev, pub], int(p.last_handshake) if p.last_handshake else 0)
        yield from (peer_info, allowed, rx, tx, last)

    def _engine(self) -> Iterator[Metric]:
        dev = self.device
        device = self.iface.device
        drops = CounterMetricFamily("wgpy_drops", "Packets and messages dropped, by reason.",
                                    labels=["device", "reason"])
        counted = self.iface.drops()
        for reason in [r.value for r in DropReason] + sorted(set(counted) - {r.value for r in DropReason}):
            drops.add_metric([dev, reason], counted.get(reason, 0))
        yield drops
        events = device.events
        for name, table, what in (("wgpy_handshake_messages_sent", _SENT, "sent"),
                                  ("wgpy_handshake_messages_received", _RECEIVED, "received and accepted")):
            family = CounterMetricFamily(name, f"Handshake messages {what}, by type.", labels=["device", "type"])
            for event, kind in table.items():
                family.add_metric([dev, kind], events[event])
            yield family
        created = CounterMetricFamily("wgpy_keypairs_created", "Session keypairs derived from handshakes.",
                                      labels=["device"])
        created.add_metric([dev], events[Event.KEYPAIR_CREATED])
        yield created
        timers = CounterMetricFamily(
            "wgpy_handshake_timer_events", "Handshake timer decisions: retry (no response in REKEY_TIMEOUT), "
            "give_up, stale (nothing heard after sending), keys_zeroed.", labels=["device", "event"])
        for event, kind in _TIMERS.items():
            timers.add_metric([dev, kind], events[event])
        yield timers
        load = GaugeMetricFamily("wgpy_under_load", "1 while the device is under load (cookie replies engage).",
                                 labels=["device"])
        load.add_metric([dev], 1 if device.under_load(self.clock()) else 0)
        yield load
        queue = GaugeMetricFamily("wgpy_handshake_queue_length", "Handshake messages waiting to be processed.",
                                  labels=["device"])
        queue.add_metric([dev], device.handshake_queue_length)
        yield queue
        runner = self.iface.runner
        mode = GaugeMetricFamily("wgpy_dataplane_info", "The data plane serving the device: native (C threads) "
                                 "or python; tun_offload: virtio-net offload on the TUN.",
                                 labels=["device", "mode", "tun_offload"])
        offload = runner.tun is not None and runner.tun.vnet_hdr
        mode.add_metric([dev, "native" if runner.fast is not None else "python", "on" if offload else "off"], 1)
        yield mode


def _family(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return "IPv4" if net.version == 4 else "IPv6"
