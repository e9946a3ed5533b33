"""Typed configuration operations: what UAPI ``set`` and ``wgpy.Interface`` apply.

Contract: a ``DeviceUpdate`` is a complete, validated description of one
``set`` transaction (the same operations and semantics as the cross-platform
UAPI, wireguard.md §9).  Parsers (UAPI, wg-quick INI, kubespan) build one;
``Device.apply`` carries it out atomically: either every operation is applied
or, on a ``ConfigError``, nothing is.  No I/O here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .allowedips import Network as IPNetwork
from .errors import ConfigError
from .keys import PresharedKey, PrivateKey, PublicKey

__all__ = ["DeviceUpdate", "Endpoint", "IPNetwork", "PeerUpdate", "format_endpoint"]

Endpoint = tuple[str, int]
"""A UDP endpoint as (numeric IP string, port); IPv6 without brackets.  The one
endpoint type of the engine and its callers; only the native binding packs it
(``wgpy._native.Addr``, via ``wgpy.dataplane.endpoint_to_addr``)."""

@dataclass(slots=True)
class PeerUpdate:
    """One peer section of a set transaction (fields left None are unchanged)."""

    public_key: PublicKey
    remove: bool = False
    update_only: bool = False
    preshared_key: PresharedKey | None = None
    """A new PSK; an all-zero key removes it."""
    endpoint: Endpoint | None = None
    relayed: bool = False
    """With ``endpoint``: the endpoint is a relay's address, and every datagram to the peer is framed for it
    (wgpy.relay); a plain endpoint (False) makes the peer direct again."""
    probe_endpoint: Endpoint | None = None
    """A direct endpoint to probe while relayed (wgpy.relay).  With a relayed ``endpoint`` it is set as given
    (None clears it); without an ``endpoint`` a given one replaces the old; a plain endpoint clears it."""
    persistent_keepalive: int | None = None
    replace_allowed_ips: bool = False
    allowed_ips: list[IPNetwork] = field(default_factory=list)
    """Prefixes to add (after the replace, if any), in order."""
    remove_allowed_ips: list[IPNetwork] = field(default_factory=list)
    """Prefixes to remove exactly (UAPI ``allowed_ip=-cidr``)."""

    def __post_init__(self) -> None:
        if self.persistent_keepalive is not None and not 0 <= self.persistent_keepalive <= 65535:
            raise ConfigError("persistent_keepalive_interval must be 0..65535")
        if self.endpoint is not None:
            check_endpoint(self.endpoint)
        if self.relayed and self.endpoint is None:
            raise ConfigError("a relayed peer needs the relay's endpoint")
        if self.probe_endpoint is not None:
            check_endpoint(self.probe_endpoint)


@dataclass(slots=True)
class DeviceUpdate:
    """One set transaction: device fields then peer sections, in order."""

    private_key: PrivateKey | None = None
    """A new private key; an all-zero key removes it."""
    listen_port: int | None = None
    fwmark: int | None = None
    replace_peers: bool = False
    peers: list[PeerUpdate] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.listen_port is not None and not 0 <= self.listen_port <= 65535:
            raise ConfigError("listen_port must be 0..65535")
        if self.fwmark is not None and not 0 <= self.fwmark <= 0xFFFFFFFF:
            raise ConfigError("fwmark must be a 32-bit value")


def check_endpoint(endpoint: Endpoint) -> Endpoint:
    """Validate a numeric (ip, port) endpoint; raise ConfigError otherwise."""
    host, port = endpoint
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(f"endpoint host must be a numeric IP: {host!r}") from exc
    if not isinstance(port, int) or not 0 < port <= 65535:
        raise ConfigError(f"endpoint port out of range: {port!r}")
    return endpoint


def format_endpoint(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
