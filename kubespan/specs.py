"""Talos field names for our resources: dataclass → ``spec`` mapping.

Contract (kubespan.md §2, §5 and §8): one function per resource type turns
the typed objects into the ``spec`` mapping ``talosctl get -o yaml`` shows,
with Talos' field names (``receiveBytes``, ``lastUsedEndpoint``,
``allowedIPs``...), plus our relay extension (``endpoint: relay:<label>``, ``kubespan.relay: true``).
Times are RFC 3339 UTC; a missing time is Go's zero time
``0001-01-01T00:00:00Z``; a missing endpoint or address is ``""``.  The
private key is never included.  Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime
from typing import Any

from .affiliates import AffiliateSpec, Member
from .controller import HarvestedEndpoint
from .discovery.protocol import ControlPlane
from .identity import Identity
from .peers import PeerSpec, PeerStatus
from .relay import status_text

__all__ = ["affiliate_spec", "endpoint_spec", "format_time", "identity_spec", "member_spec", "node_identity_spec",
           "peer_spec", "peer_status_spec"]

ZERO_TIME = "0001-01-01T00:00:00Z"


def format_time(when: float | None) -> str:
    """Unix seconds → RFC 3339 UTC (``Z``), Go's zero time for ``None``."""
    if when is None or when <= 0:
        return ZERO_TIME
    stamp = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return stamp.isoformat().replace("+00:00", "Z")


def _text(value: object | None) -> str:
    """``str(value)``, ``""`` for a missing endpoint or address."""
    return str(value) if value is not None else ""


def identity_spec(identity: Identity) -> dict[str, Any]:
    """``KubeSpanIdentities`` (ID ``local``) without ``privateKey``."""
    return {
        "address": f"{identity.address}/128",
        "subnet": str(identity.subnet),
        "publicKey": identity.public_key.to_base64(),
    }


def node_identity_spec(node_id: str) -> dict[str, Any]:
    """``Identities.cluster.talos.dev`` (ID ``local``)."""
    return {"nodeId": node_id}


def peer_spec(spec: PeerSpec) -> dict[str, Any]:
    """``KubeSpanPeerSpecs`` (ID = public key)."""
    return {
        "address": _text(spec.address),
        "allowedIPs": [str(n) for n in spec.allowed_ips],
        "endpoints": [str(e) for e in spec.endpoints],
        "label": spec.label,
    }


def peer_status_spec(status: PeerStatus) -> dict[str, Any]:
    """``KubeSpanPeerStatuses`` (ID = public key); ``state`` as text; ``endpoint`` is ``relay:<label>``
    while the peer is reached through a relay (our extension, ``kubespan.relay``)."""
    return {
        "endpoint": status_text(status),
        "label": status.label,
        "state": status.state.value,
        "receiveBytes": status.receive_bytes,
        "transmitBytes": status.transmit_bytes,
        "lastHandshakeTime": format_time(status.last_handshake_time),
        "lastUsedEndpoint": _text(status.last_used_endpoint),
        "lastEndpointChange": format_time(status.last_endpoint_change),
    }


def endpoint_spec(item: HarvestedEndpoint) -> dict[str, Any]:
    """``KubeSpanEndpoints`` (ID = the peer's public key)."""
    return {"affiliateID": item.affiliate_id, "endpoint": str(item.endpoint)}


def _with_control_plane(out: dict[str, Any], cp: ControlPlane | None) -> dict[str, Any]:
    """``out`` plus ``controlPlane`` when there is one (Talos omits the field otherwise).

    The key is ``port`` (Talos ``resources/cluster/affiliate.go``: ``APIServerPort int `yaml:"port"```).
    """
    if cp is not None:
        out["controlPlane"] = {"port": cp.api_server_port}
    return out


def affiliate_spec(aff: AffiliateSpec) -> dict[str, Any]:
    """``Affiliates.cluster.talos.dev`` (ID = node ID)."""
    out: dict[str, Any] = {
        "nodeId": aff.node_id,
        "addresses": [str(a) for a in aff.addresses],
        "hostname": aff.hostname,
        "nodename": aff.nodename,
        "operatingSystem": aff.operating_system,
        "machineType": aff.machine_type,
    }
    if aff.public_key:
        out["kubespan"] = {
            "publicKey": aff.public_key,
            "address": _text(aff.kubespan_address),
            "additionalAddresses": [str(n) for n in aff.additional_addresses],
            "endpoints": [str(e) for e in aff.endpoints],
            "excludeAdvertisedNetworks": [str(n) for n in aff.exclude_advertised_networks],
        }
        if aff.relay:  # our extension; absent (as in Talos) when the member does not relay
            out["kubespan"]["relay"] = True
    return _with_control_plane(out, aff.control_plane)


def member_spec(member: Member) -> dict[str, Any]:
    """``Members.cluster.talos.dev`` (ID = nodename)."""
    out: dict[str, Any] = {
        "nodeId": member.node_id,
        "addresses": [str(a) for a in member.addresses],
        "hostname": member.hostname,
        "machineType": member.machine_type,
        "operatingSystem": member.operating_system,
    }
    return _with_control_plane(out, member.control_plane)
