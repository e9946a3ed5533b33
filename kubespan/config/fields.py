"""Typed access to untyped YAML, and the value parsers the v1alpha1 and the multi-document readers share.

Contract: every function takes a mapping, a key and the YAML path of the mapping, and returns the typed
value (``None`` or the default when absent) or raises ``ConfigError`` naming the full path and the value
(``<redacted>`` for a secret).  ``kubespan_section`` reads the KubeSpan settings block, which Talos spells
the same in ``machine.network.kubespan`` and in a ``KubeSpanConfig`` document.  Pure.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, TypeVar

from ..discovery.url import parse_url
from ..errors import ConfigError
from ..filters import IPNetwork, parse_addr, parse_prefix, validate_rules
from .model import CLUSTER_SECRET_BYTES, DEFAULT_MTU, MAX_MTU, MIN_MTU, DiscoveryEndpoint, KubeSpanConfig

_PORT_RE = re.compile(r"[0-9]{1,5}\Z")


_T = TypeVar("_T")


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def typed(node: dict[str, Any], key: str, path: str, kind: type[_T], what: str, secret: bool = False) -> _T | None:
    """``node[key]`` if it is a ``kind``; ``None`` when absent; a ConfigError naming ``what`` otherwise."""
    value = node.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        shown = "<redacted>" if secret else show(value)
        raise ConfigError(join(path, key), f"{shown} is not {what}")
    return value


def mapping(node: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    return typed(node, key, path, dict, "a mapping")


def boolean(node: dict[str, Any], key: str, path: str, default: bool = False) -> bool:
    value = typed(node, key, path, bool, "a boolean")
    return default if value is None else value


def string(node: dict[str, Any], key: str, path: str, secret: bool = False) -> str | None:
    return typed(node, key, path, str, "a string", secret)


def yaml_list(node: dict[str, Any], key: str, path: str) -> list[Any] | None:
    return typed(node, key, path, list, "a list")


def cidrs(node: dict[str, Any], key: str, path: str) -> tuple[IPNetwork, ...]:
    items = yaml_list(node, key, path) or []
    out: list[IPNetwork] = []
    for i, item in enumerate(items):
        where = f"{join(path, key)}[{i}]"
        if not isinstance(item, str):
            raise ConfigError(where, f"{show(item)} is not a CIDR string")
        try:
            out.append(parse_prefix(item))
        except ValueError:
            raise ConfigError(where, f"{show(item)} is not a valid CIDR") from None
    return tuple(out)


# --- sections ----------------------------------------------------------------------


def mtu(node: dict[str, Any], path: str) -> int:
    value = node.get("mtu")
    if value is None:
        return DEFAULT_MTU
    where = join(path, "mtu")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"{show(value)} is not an integer")
    if value < MIN_MTU:
        raise ConfigError(where, f"{value} is below the minimum {MIN_MTU}")
    if value > MAX_MTU:
        raise ConfigError(where, f"{value} is above the maximum {MAX_MTU}")
    return value


def kubespan_section(node: dict[str, Any], path: str) -> tuple[KubeSpanConfig, tuple[IPNetwork, ...]]:
    """A legacy ``machine.network.kubespan`` block or a ``KubeSpanConfig`` document."""
    filters = mapping(node, "filters", path) or {}
    filters_path = join(path, "filters")
    endpoints = filters.get("endpoints")
    endpoint_filters = None if endpoints is None else validate_rules(endpoints, join(filters_path, "endpoints"))
    config = KubeSpanConfig(
        enabled=boolean(node, "enabled", path),
        advertise_kubernetes_networks=boolean(node, "advertiseKubernetesNetworks", path),
        allow_down_peer_bypass=boolean(node, "allowDownPeerBypass", path),
        harvest_extra_endpoints=boolean(node, "harvestExtraEndpoints", path),
        mtu=mtu(node, path),
        endpoint_filters=endpoint_filters,
        exclude_advertised_networks=cidrs(filters, "excludeAdvertisedNetworks", filters_path),
    )
    return config, cidrs(node, "podCIDRs", path)


def addr_port(text: object, where: str) -> tuple[str, int]:
    """Go ``netip.ParseAddrPort``: ``1.2.3.4:5`` or ``[v6]:5``."""
    if not isinstance(text, str):
        raise ConfigError(where, f"{show(text)} is not an ip:port string")
    bad = ConfigError(where, f"{show(text)} is not a valid ip:port (IPv6 in brackets, port 1-65535)")
    host, sep, port_text = text.rpartition(":")
    if not sep or not _PORT_RE.match(port_text) or "%" in host:
        raise bad
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    try:
        addr = parse_addr(host)
    except ValueError:
        raise bad from None
    port = int(port_text)
    if bracketed != (addr.version == 6) or not 0 < port <= 65535:
        raise bad
    return str(addr), port


def extra_endpoints(doc: dict[str, Any], path: str) -> tuple[tuple[str, int], ...]:
    items = yaml_list(doc, "extraAnnouncedEndpoints", path) or []
    where = join(path, "extraAnnouncedEndpoints")
    return tuple(addr_port(item, f"{where}[{i}]") for i, item in enumerate(items))


def parse_discovery_endpoint(name: str, url: object, path: str, legacy: bool = False) -> DiscoveryEndpoint:
    """Validate and normalise a discovery service URL (kubespan.md §3.4; ``discovery.url``)."""
    if not isinstance(url, str) or not url:
        raise ConfigError(path, f"{show(url)} is not a URL string")
    try:
        parsed = parse_url(url)
    except ValueError as exc:
        raise ConfigError(path, f"{show(url)}: {exc}") from None
    if legacy and parsed.path not in ("", "/"):
        raise ConfigError(path, f"{show(url)}: the path must be empty or '/'")
    return DiscoveryEndpoint(name=name, url=url, host=parsed.host, port=parsed.port, insecure=parsed.insecure)


def secret(text: str, where: str) -> tuple[bytes, str]:
    """Decode a cluster secret: std base64 (newlines ignored, as Go) of 32 bytes."""
    cleaned = text.replace("\r", "").replace("\n", "")
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(where, "<redacted> is not valid standard base64") from None
    if len(raw) != CLUSTER_SECRET_BYTES or len(cleaned) != 44:
        raise ConfigError(where, f"<redacted> must decode to exactly {CLUSTER_SECRET_BYTES} bytes, got {len(raw)}")
    return raw, base64.b64encode(raw).decode("ascii")
