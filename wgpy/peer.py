"""One configured peer: its Noise state, keypairs, timers, staged packets, counters.

Contract: ``Peer`` is the per-peer state the device engine works on.  It owns
no behaviour beyond small state helpers; the device decides what to send.
Callers outside the engine treat it as read-only (``public_key``,
``preshared_key``, ``endpoint``, ``persistent_keepalive``, ``allowed_ips()``,
``rx_bytes``, ``tx_bytes``, ``last_handshake_wall``, and for relaying (wgpy.relay) ``relayed``,
``probe_endpoint``, ``relayed_rx_bytes``, ``relayed_tx_bytes``).  No I/O.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from .config import Endpoint, IPNetwork
from .constants import MAX_STAGED_PACKETS, RELAY_PROBE_INTERVAL
from .cookie import CookieGenerator
from .handshake import Handshake, StaticIdentity
from .keypair import Keypairs
from .keys import PresharedKey, PublicKey
from .timers import PeerTimers

if TYPE_CHECKING:
    from .allowedips import AllowedIPs


class Peer:
    """State of one peer of a ``Device``."""

    __slots__ = (
        "public_key", "handshake", "cookie_generator", "keypairs", "timers", "endpoint",
        "_staged", "rx_bytes", "tx_bytes", "last_handshake_wall", "last_sent_handshake",
        "_allowed_ips", "_scheduled", "relayed", "probe_endpoint", "relayed_rx_bytes", "relayed_tx_bytes",
        "__weakref__",
    )

    def __init__(
        self,
        public_key: PublicKey,
        local: StaticIdentity | None,
        allowed_ips: AllowedIPs[Peer],
    ) -> None:
        self.public_key = public_key
        self.handshake = Handshake(local, public_key, None)
        self.cookie_generator = CookieGenerator(public_key)
        self.keypairs = Keypairs()
        self.timers = PeerTimers()
        self.endpoint: Endpoint | None = None
        self._staged: collections.deque[bytes] | None = None
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.last_handshake_wall: float | None = None
        self.last_sent_handshake = float("-inf")
        self._allowed_ips = allowed_ips
        self._scheduled: float | None = None
        self.relayed = False
        """``endpoint`` is a relay's address: datagrams to the peer are framed (wgpy.relay)."""
        self.probe_endpoint: Endpoint | None = None
        self.relayed_rx_bytes = 0
        self.relayed_tx_bytes = 0

    @property
    def preshared_key(self) -> PresharedKey | None:
        return self.handshake.preshared_key

    @property
    def persistent_keepalive(self) -> int:
        return self.timers.persistent_keepalive_interval

    def allowed_ips(self) -> list[IPNetwork]:
        return self._allowed_ips.entries_for(self)

    @property
    def staged(self) -> collections.deque[bytes]:
        """Packets waiting for a session (the newest 128), created on first use:
        an idle peer carries no queue (about 760 bytes saved per peer)."""
        staged = self._staged
        if staged is None:
            staged = self._staged = collections.deque(maxlen=MAX_STAGED_PACKETS)
        return staged

    @property
    def has_staged(self) -> bool:
        """Packets are waiting (read without creating a queue for an idle peer)."""
        return bool(self._staged)

    def flush_staged(self) -> None:
        """Drop every staged packet (without creating a queue for an idle peer)."""
        if self._staged is not None:
            self._staged.clear()

    def arm_relay_probe(self, now: float) -> None:
        """Arm the direct-probe timer of a relayed peer with a probe endpoint, unless armed (wgpy.relay)."""
        if self.relayed and self.probe_endpoint is not None and self.timers.relay_probe is None:
            self.timers.relay_probe = now + RELAY_PROBE_INTERVAL

    def __repr__(self) -> str:
        relayed = ", relayed" if self.relayed else ""
        return f"Peer({self.public_key.to_base64()!r}, endpoint={self.endpoint!r}{relayed})"
