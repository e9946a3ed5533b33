"""The agent's two translations between wgpy and the controller's types.

Contract: ``observe`` reads ``Interface.peers()`` into ``peers.ObservedPeer``
(endpoints as ``discovery.protocol.Endpoint``, keys in base64, relay state
included); ``peer_update`` turns a ``controller.PeerChange`` into the one
``wgpy.PeerUpdate`` that applies it (a desired peer replaces its allowed IPs
whole; a relayed endpoint is written with ``relayed=True``).  Pure apart from
reading the interface; no I/O of its own.
"""

from __future__ import annotations

import ipaddress

from wgpy import Interface, PeerUpdate, PresharedKey, PublicKey

from .controller import DesiredPeer, PeerChange
from .discovery.protocol import Endpoint
from .peers import ObservedPeer


def observe(iface: Interface) -> dict[str, ObservedPeer]:
    """WireGuard's peers as the controller reads them, keyed by base64 public key."""
    out: dict[str, ObservedPeer] = {}
    for p in iface.peers():
        endpoint = None
        if p.endpoint is not None:
            endpoint = Endpoint(ipaddress.ip_address(p.endpoint[0]), p.endpoint[1])
        key = p.public_key.to_base64()
        probe = Endpoint(ipaddress.ip_address(p.probe_endpoint[0]), p.probe_endpoint[1]) if p.probe_endpoint else None
        out[key] = ObservedPeer(key, endpoint, p.last_handshake, p.rx_bytes, p.tx_bytes, tuple(p.allowed_ips),
                                p.persistent_keepalive, relayed=p.relayed, probe_endpoint=probe)
    return out


def peer_update(change: PeerChange) -> PeerUpdate:
    """One controller change as the wgpy update that performs it (a removal, or the whole peer)."""
    key = PublicKey.from_base64(change.public_key)
    if change.peer is None:
        return PeerUpdate(public_key=key, remove=True)
    peer: DesiredPeer = change.peer
    return PeerUpdate(
        public_key=key,
        preshared_key=PresharedKey(peer.preshared_key),
        endpoint=(str(peer.endpoint.ip), peer.endpoint.port) if peer.endpoint is not None else None,
        relayed=peer.relayed and peer.endpoint is not None,
        probe_endpoint=(str(peer.probe_endpoint.ip), peer.probe_endpoint.port) if peer.probe_endpoint else None,
        persistent_keepalive=peer.persistent_keepalive,
        replace_allowed_ips=True,
        allowed_ips=list(peer.allowed_ips),
    )
