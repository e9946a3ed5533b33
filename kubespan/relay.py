"""Relaying (our extension, issue 14): reaching a peer through a third member when no direct endpoint answers.

Contract.  A member configured with ``relay: true`` (``KubeSpanConfig.relay``) announces it in its affiliate
(``KubeSpan.relay``, a protobuf field of our own that Talos skips) and its wgpy device forwards relay frames
(``Interface.set_relay(key, serve=True)``); every member of ours sets the relay key, so it can send and receive
frames.  The frame (one UDP datagram on the WireGuard port: sender key, receiver key, a keyed BLAKE2s tag,
then one WireGuard datagram) carries only WireGuard ciphertext: the relay never has the pair's session keys.

The relay key is ``relay_key(secret)`` = BLAKE2s(key = the 32-byte cluster secret, data =
``b"kubespan relay v1"``, digest 32 bytes): every member derives the same key, nobody outside the cluster can
make a frame a member accepts, and the key is not the secret itself (the secret is also the discovery AES key
and the WireGuard PSK).

The decision is ``step(old, spec, observed, now, relays)``, one status pass for one peer, pure (fake-clock
tested); ``controller.next_statuses`` calls it in place of ``peers.step_status`` and the rest of the
pass is Talos's:

- not relayed: Talos's step (state table, endpoint rotation).  Each endpoint the rotation leaves while the
  peer is not up is *tried*; when the peer is still not up and every announced endpoint has been tried,
  the peer switches to a relay: the first (by public key, so both sides pick the same one when they see the
  same relays) of ``candidates()``: peers that announce relay, are up, and have a direct endpoint in
  WireGuard, minus relays that failed for this peer in the last ``RELAY_RETRY_AFTER`` seconds.  The switch
  counts as an endpoint change (``lastEndpointChange`` = now, state unknown), so the state table judges
  the relayed path like any endpoint.
- relayed (WireGuard reports the peer's endpoint as relayed; also when the *other* side switched first and
  wgpy roamed onto the relay on an authenticated relayed datagram): the state table on the handshakes; the
  direct endpoints keep being probed, ``PROBE_INTERVAL`` each in turn (wgpy sends the probe keepalives).
  When the relayed path goes down, the relay counts as failed for this peer and the next relay is taken;
  with none left, Talos's rotation over the direct endpoints resumes.
- back to direct: when WireGuard reports the peer direct again (a probe answered and both sides roamed),
  the peer is up on that endpoint and the relay is forgotten.

``next_change(status, now)`` is when the decision next moves on by itself (the probe's turn ends), for an
agent that runs status passes at deadlines.  ``wireguard_endpoint(status)`` is what the pass writes into
WireGuard: ``(relay endpoint, relayed, probe)`` while relayed, else Talos's re-push rule.  ``status_text`` is the ENDPOINT a status shows
(``relay:<relay label>`` while relayed).  Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .discovery.protocol import Endpoint
from .peers import (
    ENDPOINT_CONNECTION_TIMEOUT, PEER_DOWN_INTERVAL, ObservedPeer, PeerSpec, PeerState, PeerStatus, calculate_state,
    endpoint_to_push, pick_next_endpoint, step_status, update_endpoint, update_from_wireguard,
)

__all__ = ["PROBE_INTERVAL", "RELAY_KEY_CONTEXT", "RELAY_RETRY_AFTER", "Relay", "RelayState", "candidates",
           "describe_change", "next_change", "relay_key", "relayed_via", "status_text", "step", "wireguard_endpoint"]

RELAY_KEY_CONTEXT = b"kubespan relay v1"
PROBE_INTERVAL = ENDPOINT_CONNECTION_TIMEOUT
"""Seconds each direct endpoint is probed while relayed (Talos's time per endpoint)."""
RELAY_RETRY_AFTER = PEER_DOWN_INTERVAL
"""A relay whose path went down for a peer is not chosen again for that peer for this long."""


def relay_key(cluster_secret: bytes) -> bytes:
    """The 32-byte relay frame key: BLAKE2s(key=cluster secret, data=``RELAY_KEY_CONTEXT``)."""
    if len(cluster_secret) != 32:
        raise ValueError("the cluster secret must be 32 bytes")
    return hashlib.blake2s(RELAY_KEY_CONTEXT, key=cluster_secret, digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class Relay:
    """A member that can relay to a peer: its key, label and the endpoint WireGuard has for it."""

    public_key: str
    label: str
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class RelayState:
    """What the decision remembers per peer (kept in ``PeerStatus.relay``)."""

    tried: frozenset[Endpoint] = frozenset()
    """Announced endpoints that failed since the peer was last up without a relay."""
    failed: tuple[tuple[str, float], ...] = ()
    """(relay, when) for relays whose path went down for this peer (forgotten after ``RELAY_RETRY_AFTER``)."""
    via: str = ""
    """The relay's public key while relayed (``""`` when the relay is not one of our peers)."""
    label: str = ""
    """The relay's label (its address when it is not one of our peers)."""
    address: Endpoint | None = None
    """Where relay frames for this peer go; ``None``: not relayed."""
    probe: Endpoint | None = None
    """The direct endpoint probed now (while relayed)."""
    probe_since: float | None = None

    @property
    def active(self) -> bool:
        return self.address is not None


def candidates(specs: Sequence[PeerSpec], statuses: Mapping[str, PeerStatus],
               observed: Mapping[str, ObservedPeer]) -> tuple[Relay, ...]:
    """Peers that announce relay, are up and are reached directly, by public key."""
    out = []
    for spec in specs:
        status, seen = statuses.get(spec.public_key), observed.get(spec.public_key)
        if (spec.relay and status is not None and status.state is PeerState.UP and seen is not None
                and seen.endpoint is not None and not seen.relayed):
            out.append(Relay(spec.public_key, spec.label, seen.endpoint))
    return tuple(sorted(out, key=lambda r: r.public_key))


def _choose(relays: Sequence[Relay], spec: PeerSpec, memory: RelayState) -> Relay | None:
    failed = {name for name, _ in memory.failed}
    return next((r for r in relays if r.public_key != spec.public_key and r.public_key not in failed), None)


def _memory(old: PeerStatus | None, now: float) -> RelayState:
    memory = old.relay if old is not None and old.relay is not None else RelayState()
    failed = tuple((name, when) for name, when in memory.failed if now - when < RELAY_RETRY_AFTER)
    return memory if failed == memory.failed else dataclasses.replace(memory, failed=failed)


def step(old: PeerStatus | None, spec: PeerSpec, observed: ObservedPeer | None, now: float,
         relays: Sequence[Relay]) -> PeerStatus:
    """One status pass for one peer (see the module contract)."""
    memory = _memory(old, now)
    if observed is not None and observed.relayed:
        return _relayed(old, spec, observed, now, relays, memory)
    if memory.active and observed is not None and observed.endpoint is not None:
        return _back_to_direct(old, spec, observed, now, memory)
    if memory.active:  # WireGuard lost the peer (re-added): start over directly
        memory = RelayState(tried=memory.tried, failed=memory.failed)
    return _direct(old, spec, observed, now, relays, memory)


def _direct(old: PeerStatus | None, spec: PeerSpec, observed: ObservedPeer | None, now: float,
            relays: Sequence[Relay], memory: RelayState) -> PeerStatus:
    new = step_status(old, spec, observed, now)
    tried = memory.tried
    if new.state is PeerState.UP:
        tried = frozenset()
    elif old is not None and old.last_used_endpoint is not None and (
            new.last_used_endpoint != old.last_used_endpoint or new.state is PeerState.DOWN):
        tried = tried | {old.last_used_endpoint}  # it had its time and the peer is still not up
    tried &= frozenset(spec.endpoints)
    if tried != memory.tried:  # (replace only on a change: a pass runs this for every peer)
        memory = dataclasses.replace(memory, tried=tried)
    if new.state is not PeerState.UP and spec.endpoints and memory.tried >= frozenset(spec.endpoints):
        relay = _choose(relays, spec, memory)
        if relay is not None:
            return _switch(new, spec, relay, memory, now)
    return new if new.relay == memory else dataclasses.replace(new, relay=memory)


def _switch(status: PeerStatus, spec: PeerSpec, relay: Relay, memory: RelayState, now: float) -> PeerStatus:
    probe = status.last_used_endpoint if status.last_used_endpoint in spec.endpoints else (
        spec.endpoints[0] if spec.endpoints else None)
    memory = dataclasses.replace(memory, via=relay.public_key, label=relay.label, address=relay.endpoint,
                                 probe=probe, probe_since=now)
    return dataclasses.replace(status, endpoint=relay.endpoint, last_endpoint_change=now, state=PeerState.UNKNOWN,
                               relay=memory)


def _relayed(old: PeerStatus | None, spec: PeerSpec, observed: ObservedPeer, now: float,
             relays: Sequence[Relay], memory: RelayState) -> PeerStatus:
    status = update_from_wireguard(dataclasses.replace(old or PeerStatus(), label=spec.label), observed)
    if memory.address != observed.endpoint:  # the other side moved us onto a relay (wgpy roamed)
        known = next((r for r in relays if r.endpoint == observed.endpoint), None)
        memory = dataclasses.replace(
            memory, via=known.public_key if known else "", label=known.label if known else str(observed.endpoint),
            address=observed.endpoint, probe=None, probe_since=None)
    status = dataclasses.replace(status, state=calculate_state(status, now))
    if status.state is PeerState.DOWN:
        memory = dataclasses.replace(memory, failed=(*memory.failed, (memory.via or memory.label, now)))
        other = _choose([r for r in relays if r.endpoint != memory.address], spec, memory)
        if other is not None:
            return _switch(status, spec, other, memory, now)
        status = dataclasses.replace(status, relay=RelayState(tried=memory.tried, failed=memory.failed))
        new = pick_next_endpoint(status, spec.endpoints)
        return update_endpoint(status, new, now) if new is not None else status
    return dataclasses.replace(status, relay=_next_probe(memory, spec.endpoints, now))


def _next_probe(memory: RelayState, endpoints: Sequence[Endpoint], now: float) -> RelayState:
    if not endpoints:
        return dataclasses.replace(memory, probe=None, probe_since=None)
    if memory.probe in endpoints and memory.probe_since is not None and now - memory.probe_since < PROBE_INTERVAL:
        return memory
    index = list(endpoints).index(memory.probe) if memory.probe is not None and memory.probe in endpoints else -1
    return dataclasses.replace(memory, probe=endpoints[(index + 1) % len(endpoints)], probe_since=now)


def _back_to_direct(old: PeerStatus | None, spec: PeerSpec, observed: ObservedPeer, now: float,
                    memory: RelayState) -> PeerStatus:
    status = update_from_wireguard(dataclasses.replace(old or PeerStatus(), label=spec.label), observed)
    if observed.endpoint in spec.endpoints:
        status = dataclasses.replace(status, last_used_endpoint=observed.endpoint)
    status = dataclasses.replace(status, state=calculate_state(status, now),
                                 relay=RelayState(failed=memory.failed))
    return status


def next_change(status: PeerStatus, now: float) -> float | None:
    """When ``step`` can next decide something on its own that the state table does not announce
    (``peers.next_state_change`` covers the rest): the end of the current probe's turn while relayed."""
    memory = status.relay
    if memory is None or not memory.active or memory.probe is None or memory.probe_since is None:
        return None
    return max(now, memory.probe_since + PROBE_INTERVAL)


def wireguard_endpoint(status: PeerStatus) -> tuple[Endpoint | None, bool, Endpoint | None]:
    """(endpoint to write or ``None`` to keep WireGuard's, relayed, probe endpoint) after ``step``."""
    memory = status.relay
    if memory is not None and memory.address is not None:
        return memory.address, True, memory.probe
    return endpoint_to_push(status), False, None


def relayed_via(status: PeerStatus) -> str | None:
    """The relay's label while ``status`` is relayed, else ``None``."""
    memory = status.relay
    return memory.label if memory is not None and memory.active else None


def status_text(status: PeerStatus) -> str:
    """The ENDPOINT column: ``relay:<label>`` while relayed, else the endpoint (``""`` without one)."""
    via = relayed_via(status)
    if via is not None:
        return f"relay:{via}"
    return str(status.endpoint) if status.endpoint is not None else ""


def describe_change(old: PeerStatus | None, new: PeerStatus) -> str | None:
    """A log line when a peer moved onto, between or off relays, else ``None``."""
    before = relayed_via(old) if old is not None else None
    after = relayed_via(new)
    if before == after:
        return None
    if after is None and new.state is PeerState.UP:
        return f"direct again on {new.endpoint} (relay {before} no longer used)"
    if after is None:
        return f"no answer through relay {before} and no other relay is up: back to the direct endpoints"
    if before is None:
        tried = ", ".join(sorted(map(str, new.relay.tried))) if new.relay is not None else ""
        return f"relayed via {after} (no direct endpoint answered: {tried or 'none announced'})"
    return f"relayed via {after} (no answer through relay {before})"
