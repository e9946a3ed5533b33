"""The five per-peer timers as data (wireguard.md §6).

Contract: ``PeerTimers`` stores deadlines (monotonic seconds, ``None`` when
not pending) and implements the arming rules of wireguard-go's
``timers.go`` / the kernel's ``timers.c`` as event hooks named after the
events.  It never acts: ``expired(now)`` reports which timers fired (and
disarms them) and the device carries out the consequences.  Jitter comes from
the injected ``rng``.

Timeline of one peer (initiator side)::

    t0 initiation sent ──► retransmit_handshake at t0 + 5 s + jitter (≤ 20 tries)
    t1 response consumed ─► handshake complete: retransmit stopped,
                             zero_key_material at t1 + 540 s
    data sent, nothing heard back ──► new_handshake at +15 s + jitter
    data heard, nothing sent back ──► send_keepalive at +10 s
    any authenticated packet, in either direction ──► persistent_keepalive at +interval
    relayed with a probe endpoint ──► relay_probe every 5 s (wgpy.relay; not WireGuard)
"""

from __future__ import annotations

import enum
from typing import Callable

from .constants import (
    KEEPALIVE_TIMEOUT,
    NEW_HANDSHAKE_TIMEOUT,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
    ZERO_KEY_MATERIAL_AFTER,
)


class Timer(enum.Enum):
    RETRANSMIT_HANDSHAKE = "retransmit-handshake"
    SEND_KEEPALIVE = "send-keepalive"
    NEW_HANDSHAKE = "new-handshake"
    ZERO_KEY_MATERIAL = "zero-key-material"
    PERSISTENT_KEEPALIVE = "persistent-keepalive"
    RELAY_PROBE = "relay-probe"


def jitter(rng: Callable[[int], bytes]) -> float:
    """Uniform 0..333 ms, from two random bytes."""
    return int.from_bytes(rng(2), "little") / 65536.0 * REKEY_TIMEOUT_JITTER_MAX


class PeerTimers:
    """Deadlines of one peer's timers and the flags their rules use."""

    __slots__ = (
        "retransmit_handshake", "send_keepalive", "new_handshake", "zero_key_material",
        "persistent_keepalive", "persistent_keepalive_interval", "handshake_attempts",
        "need_another_keepalive", "sent_last_minute_handshake", "relay_probe",
    )

    def __init__(self) -> None:
        self.retransmit_handshake: float | None = None
        self.send_keepalive: float | None = None
        self.new_handshake: float | None = None
        self.zero_key_material: float | None = None
        self.persistent_keepalive: float | None = None
        self.persistent_keepalive_interval = 0
        self.handshake_attempts = 0
        self.need_another_keepalive = False
        self.sent_last_minute_handshake = False
        self.relay_probe: float | None = None
        """The next direct probe of a relayed peer (armed and carried out by wgpy.relay)."""

    # --- event hooks (names as in wireguard-go / the kernel) -------------
    def timers_data_sent(self, now: float, rng: Callable[[int], bytes]) -> None:
        """A batch with a non-keepalive data packet was sent."""
        if self.new_handshake is None:
            self.new_handshake = now + NEW_HANDSHAKE_TIMEOUT + jitter(rng)

    def timers_data_received(self, now: float) -> None:
        """A non-empty data packet was received."""
        if self.send_keepalive is None:
            self.send_keepalive = now + KEEPALIVE_TIMEOUT
        else:
            self.need_another_keepalive = True

    def timers_any_authenticated_packet_sent(self) -> None:
        self.send_keepalive = None

    def timers_any_authenticated_packet_received(self) -> None:
        self.new_handshake = None

    def timers_handshake_initiated(self, now: float, rng: Callable[[int], bytes]) -> None:
        self.retransmit_handshake = now + REKEY_TIMEOUT + jitter(rng)

    def timers_handshake_complete(self) -> None:
        self.retransmit_handshake = None
        self.handshake_attempts = 0
        self.sent_last_minute_handshake = False

    def timers_session_derived(self, now: float) -> None:
        self.zero_key_material = now + ZERO_KEY_MATERIAL_AFTER

    def timers_any_authenticated_packet_traversal(self, now: float) -> None:
        if self.persistent_keepalive_interval > 0:
            self.persistent_keepalive = now + self.persistent_keepalive_interval

    def give_up(self, now: float) -> None:
        """retransmit_handshake exhausted its attempts."""
        self.send_keepalive = None
        if self.zero_key_material is None:
            self.zero_key_material = now + ZERO_KEY_MATERIAL_AFTER

    def stop(self) -> None:
        self.retransmit_handshake = self.send_keepalive = self.new_handshake = None
        self.zero_key_material = self.persistent_keepalive = self.relay_probe = None

    # --- expiry -------------------------------------------------------------
    def next_deadline(self) -> float | None:
        best: float | None = None
        for t in (
            self.retransmit_handshake, self.send_keepalive, self.new_handshake,
            self.zero_key_material, self.persistent_keepalive, self.relay_probe,
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def expired(self, now: float) -> list[Timer]:
        """Disarm and return the timers whose deadline is ≤ now, in a fixed order."""
        fired: list[Timer] = []
        if self.retransmit_handshake is not None and self.retransmit_handshake <= now:
            self.retransmit_handshake = None
            fired.append(Timer.RETRANSMIT_HANDSHAKE)
        if self.send_keepalive is not None and self.send_keepalive <= now:
            self.send_keepalive = None
            fired.append(Timer.SEND_KEEPALIVE)
        if self.new_handshake is not None and self.new_handshake <= now:
            self.new_handshake = None
            fired.append(Timer.NEW_HANDSHAKE)
        if self.zero_key_material is not None and self.zero_key_material <= now:
            self.zero_key_material = None
            fired.append(Timer.ZERO_KEY_MATERIAL)
        if self.persistent_keepalive is not None and self.persistent_keepalive <= now:
            self.persistent_keepalive = None
            fired.append(Timer.PERSISTENT_KEEPALIVE)
        if self.relay_probe is not None and self.relay_probe <= now:
            self.relay_probe = None
            fired.append(Timer.RELAY_PROBE)
        return fired
