"""Relaying: a peer reached through a third node, and a node forwarding for others (wgpy's extension).

Contract.  A peer's endpoint may be *relayed*: ``peer.relayed`` with ``peer.endpoint`` the relay's address.
Everything the device sends to such a peer (handshakes, cookie replies, keepalives, transport data) is wrapped
in a relay frame (``wgpy.relayframe``: sender = our key, receiver = the peer's) and sent to the relay
(``Relay.wrap``).  ``frame_received`` takes a frame from the wire: with no relay key every frame is a
``relay-off`` drop; a frame for us is *delivered*: its payload is handled as a datagram from the relayed
endpoint (relay address, sender key), and it must authenticate as the peer with the sender key, else
``relay-wrong-peer`` (``wgpy.receive``); the roaming rules are WireGuard's (``receive.roam``): an authenticated
relayed datagram makes the endpoint relayed, an authenticated direct one makes it direct again.  A frame for
another node is *forwarded* unchanged to that node's direct endpoint when this node serves
(``relay-not-serving``), knows a direct endpoint of the receiver (``relay-no-route``) and the (sender, receiver)
pair's byte bucket allows it (``relay-rate-limited``).  A relay never holds the pair's session keys: it sees
WireGuard ciphertext only.

Direct probing: a relayed peer with a ``probe_endpoint`` gets one keepalive of its current session, unframed,
at that endpoint every ``RELAY_PROBE_INTERVAL`` (the ``relay_probe`` timer of ``wgpy.timers``); if the direct
path works the other side roams to it, answers directly, and this side roams too.

Timeline of a relayed peer with a probe endpoint::

    t0 set relayed (or a relayed datagram authenticates) ─► relay_probe at t0 + 5 s
    t0 + 5 s  keepalive to the probe endpoint (when a current keypair can send) ─► re-armed at + 5 s ...
    a direct datagram authenticates ─► direct again: probe timer stopped, one keepalive back directly

Sans-IO: ``now`` is passed in; counters live in ``Relay`` and ``Device.drops``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from .actions import Action, SendDatagram
from .config import Endpoint, PeerUpdate
from .constants import (
    MESSAGE_TRANSPORT, RELAY_KEY_SIZE, RELAY_MAX_PAIRS, RELAY_PAIR_BURST, RELAY_PAIR_RATE,
    REJECT_AFTER_MESSAGES,
)
from .errors import ConfigError, DropReason
from .keys import PublicKey
from .peer import Peer
from . import receive, relayframe

if TYPE_CHECKING:
    from .device import Device

__all__ = ["PairLimiter", "Relay", "RelayStats", "RELAY_DROPS", "apply_endpoint", "frame_received",
           "send_probe"]

RELAY_DROPS: Final = (DropReason.RELAY_OFF, DropReason.RELAY_BAD_FRAME, DropReason.RELAY_BAD_MAC,
                      DropReason.RELAY_NOT_SERVING, DropReason.RELAY_NO_ROUTE, DropReason.RELAY_RATE_LIMITED,
                      DropReason.RELAY_WRONG_PEER)
"""The drop reasons that belong to relaying (``relay_stats().drops``)."""

_NS: Final = 1_000_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class RelayStats:
    """Relay counters of one device."""

    forwarded_frames: int
    """Frames this node forwarded for other pairs (serving as a relay)."""
    forwarded_bytes: int
    delivered_frames: int
    """Frames for this node whose payload was handed to the engine (before it authenticated)."""
    sent_frames: int
    """Frames this node wrapped for its relayed peers."""
    probes_sent: int
    """Direct probes (keepalives to a relayed peer's probe endpoint)."""
    drops: dict[str, int]
    """Relay drops by reason (every ``RELAY_DROPS`` reason, zero included)."""


class PairLimiter:
    """Byte token buckets per (sender, receiver) pair: ``rate`` bytes/s, ``burst`` bytes.

    Time is integer nanoseconds (exact).  At ``max_pairs`` buckets the idle ones (full again) are swept; if none
    is idle the new pair is refused.  ``refused`` counts frames refused for either reason.
    """

    __slots__ = ("_rate", "_burst_ns", "_max_pairs", "_table", "refused")

    def __init__(self, rate: int = RELAY_PAIR_RATE, burst: int = RELAY_PAIR_BURST,
                 max_pairs: int = RELAY_MAX_PAIRS) -> None:
        if rate <= 0 or burst <= 0 or max_pairs <= 0:
            raise ValueError("rate, burst and table size must be positive")
        self._rate = rate
        self._burst_ns = burst * _NS  # tokens are byte-nanoseconds/rate: cost of n bytes is n * 1e9
        self._max_pairs = max_pairs
        self._table: dict[bytes, list[int]] = {}  # pair -> [last_ns, tokens]
        self.refused = 0

    def __len__(self) -> int:
        return len(self._table)

    @property
    def rate(self) -> int:
        """Bytes per second per pair."""
        return self._rate

    @property
    def burst(self) -> int:
        """Bytes a full bucket holds."""
        return self._burst_ns // _NS

    def allow(self, pair: bytes, nbytes: int, now: float) -> bool:
        """Take ``nbytes`` from the pair's bucket; False (nothing taken) if it holds fewer."""
        now_ns = round(now * _NS)
        cost = nbytes * _NS
        entry = self._table.get(pair)
        if entry is None:
            if len(self._table) >= self._max_pairs:
                self._sweep(now_ns)
            if len(self._table) >= self._max_pairs or cost > self._burst_ns:
                self.refused += 1
                return False
            self._table[pair] = [now_ns, self._burst_ns - cost]
            return True
        last, tokens = entry
        tokens = min(self._burst_ns, tokens + max(0, now_ns - last) * self._rate)
        entry[0] = max(last, now_ns)
        if tokens >= cost:
            entry[1] = tokens - cost
            return True
        entry[1] = tokens
        self.refused += 1
        return False

    def _sweep(self, now_ns: int) -> None:
        full = [k for k, (last, tokens) in self._table.items()
                if tokens + max(0, now_ns - last) * self._rate >= self._burst_ns]
        for k in full:
            del self._table[k]


class Relay:
    """A device's relay settings and counters (``Device.relay``)."""

    __slots__ = ("key", "serve", "limiter", "forwarded_frames", "forwarded_bytes", "delivered_frames",
                 "sent_frames", "probes_sent")

    def __init__(self) -> None:
        self.key: bytes | None = None
        """The 32-byte relay key, or None: relaying off."""
        self.serve = False
        """This node forwards frames for others."""
        self.limiter = PairLimiter()
        self.forwarded_frames = self.forwarded_bytes = self.delivered_frames = 0
        self.sent_frames = self.probes_sent = 0

    def configure(self, key: bytes | None, *, serve: bool = False, rate: int = RELAY_PAIR_RATE,
                  burst: int = RELAY_PAIR_BURST) -> None:
        """Set the relay key (None: off) and whether to serve; ``rate``/``burst``: bytes per pair (validated
        before anything changes; a new rate starts fresh buckets)."""
        if key is not None and (not isinstance(key, bytes) or len(key) != RELAY_KEY_SIZE):
            raise ConfigError(f"relay key must be {RELAY_KEY_SIZE} bytes")
        if not isinstance(rate, int) or not isinstance(burst, int) or rate <= 0 or burst <= 0:
            raise ConfigError("relay rate and burst must be positive integers (bytes)")
        if key is not None and serve and burst < 1 << 11:
            raise ConfigError("relay burst must hold one full frame (at least 2048 bytes)")
        if (rate, burst) != (self.limiter.rate, self.limiter.burst):
            self.limiter = PairLimiter(rate, burst)
        self.key, self.serve = key, bool(serve)

    def wrap(self, dev: Device, peer: Peer, payload: bytes) -> bytes | None:
        """The frame carrying ``payload`` to the relayed ``peer`` (None, counted: relaying is off)."""
        if self.key is None or dev.identity is None:
            dev.drops[DropReason.RELAY_OFF] += 1
            return None
        frame = relayframe.encode(self.key, dev.identity.public, peer.public_key, payload)
        self.sent_frames += 1
        peer.relayed_tx_bytes += len(frame)
        return frame

    def to_source(self, dev: Device, data: bytes, endpoint: Endpoint, via: PublicKey | None
                  ) -> SendDatagram | None:
        """A datagram answering a source: as is, or framed for ``via`` when the source is relayed
        (None, counted: relaying is off)."""
        if via is None:
            return SendDatagram(data, endpoint)
        peer = dev.peer(via)
        frame = self.wrap(dev, peer, data) if peer is not None else None
        return SendDatagram(frame, endpoint) if frame is not None else None

    def stats(self, drops: dict[DropReason, int]) -> RelayStats:
        return RelayStats(self.forwarded_frames, self.forwarded_bytes, self.delivered_frames, self.sent_frames,
                          self.probes_sent, {r.value: drops.get(r, 0) for r in RELAY_DROPS})


# ------------------------------------------------------------------ frames from the wire

def frame_received(dev: Device, data: bytes, src: Endpoint, now: float, out: list[Action],
                   touched: dict[Peer, None]) -> None:
    """Deliver, forward or drop one relay frame from ``src`` (peers touched go to ``touched``)."""
    relay = dev.relay
    if relay.key is None:
        dev.drops[DropReason.RELAY_OFF] += 1
        return
    frame = relayframe.decode(relay.key, data)
    if isinstance(frame, DropReason):
        dev.drops[frame] += 1
        return
    if dev.identity is not None and frame.receiver == dev.identity.public:
        relay.delivered_frames += 1
        payload = frame.payload
        if payload[0] == MESSAGE_TRANSPORT:
            peer = receive.receive_transport(dev, payload, src, now, out, via=frame.sender)
            if peer is not None:
                touched[peer] = None
        else:
            dev.queue_handshake(payload, src, now, via=frame.sender)
        return
    _forward(dev, frame, data, now, out)


def _forward(dev: Device, frame: relayframe.RelayFrame, data: bytes, now: float, out: list[Action]) -> None:
    relay = dev.relay
    if not relay.serve:
        dev.drops[DropReason.RELAY_NOT_SERVING] += 1
        return
    target = dev.peer(frame.receiver)
    if target is None or target.endpoint is None or target.relayed or (
            dev.identity is not None and frame.sender == dev.identity.public):
        dev.drops[DropReason.RELAY_NO_ROUTE] += 1
        return
    if not relay.limiter.allow(frame.sender.raw + frame.receiver.raw, len(data), now):
        dev.drops[DropReason.RELAY_RATE_LIMITED] += 1
        return
    relay.forwarded_frames += 1
    relay.forwarded_bytes += len(data)
    out.append(SendDatagram(data, target.endpoint))


# ------------------------------------------------------------------ configuration and probing

def apply_endpoint(peer: Peer, pu: PeerUpdate, now: float) -> None:
    """The endpoint part of a peer update: a relayed endpoint (with its probe endpoint, None clearing it),
    a plain one (direct: relayed and probe cleared), or only a new probe endpoint."""
    if pu.endpoint is not None:
        peer.endpoint = pu.endpoint
        peer.relayed = pu.relayed
        peer.probe_endpoint = pu.probe_endpoint if pu.relayed else None
        peer.timers.relay_probe = None
    elif pu.probe_endpoint is not None:
        peer.probe_endpoint = pu.probe_endpoint
    peer.arm_relay_probe(now)


def send_probe(dev: Device, peer: Peer, now: float, out: list[Action]) -> None:
    """The probe timer fired: one keepalive of the current session, unframed, to the probe endpoint."""
    probe = peer.probe_endpoint
    if not peer.relayed or probe is None:
        return
    kp = peer.keypairs.current
    if kp is not None and kp.can_send(now) and kp.send_counter < REJECT_AFTER_MESSAGES:
        msg = kp.seal(b"", dev.mtu)
        out.append(SendDatagram(msg, probe))
        peer.tx_bytes += len(msg)
        dev.relay.probes_sent += 1
    peer.arm_relay_probe(now)
