"""Typed access to untyped YAML, and the value parsers the v1alpha1 and the multi-document readers share.

Contract: every function takes a mapping, a key and the YAML path of the mapping, and returns the typed
value (``None`` or the default when absent) or raises ``ConfigError`` naming the full path and the value
(``<redacted>`` for a secret).  ``check_fields`` rejects a key a modelled section does not have (Talos
decodes its config documents with known fields only), naming the key's YAML path and the nearest known
field.  ``kubespan_section`` reads the KubeSpan settings block, which Talos spells the same in
``machine.network.kubespan`` and in a ``KubeSpanConfig`` document.  Pure.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Collection
from typing import Any, TypeVar

from ..discovery.url import parse_url
from ..errors import ConfigError
from ..filters import IPNetwork, parse_addr, parse_prefix, validate_rules
from .model import CLUSTER_SECRET_BYTES, DEFAULT_MTU, MAX_MTU, MIN_MTU, DiscoveryEndpoint, KubeSpanConfig

_PORT_RE = re.compile(r"[0-9]{1,5}\Z")

# The fields of the sections we model, as Talos's structs name them in YAML:
META_FIELDS = ("apiVersion", "kind")
"""pkg/machinery/config/types/meta/meta.go ``Meta`` (inlined in every multi-document kind)."""
KUBESPAN_FIELDS = ("enabled", "advertiseKubernetesNetworks", "allowDownPeerBypass", "harvestExtraEndpoints", "mtu",
                   "filters")
"""pkg/machinery/config/types/network/kubespan.go ``KubeSpanConfigV1Alpha1`` and
pkg/machinery/config/types/v1alpha1/v1alpha1_types.go ``NetworkKubeSpan`` (``machine.network.kubespan``)."""
KUBESPAN_FILTERS_FIELDS = ("endpoints", "excludeAdvertisedNetworks")
"""network/kubespan.go ``KubeSpanFiltersConfig`` and v1alpha1_types.go ``KubeSpanFilters`` (kubespan.md §7:
``excludeAdvertisedNetworks`` from 1.13)."""
POD_CIDRS_FIELD = "podCIDRs"
"""Our extension (module docstring of ``kubespan.config``); Talos itself would reject it."""
RELAY_FIELD = "relay"
"""Our extension (issue 14, ``kubespan.relay``): this node forwards relay frames for pairs of members that
cannot reach each other; Talos itself would reject it."""
EXTENSION_FIELDS = (POD_CIDRS_FIELD, RELAY_FIELD)


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


def did_you_mean(word: str, candidates: Collection[str]) -> str:
    """`` (did you mean 'X'?)`` for the nearest candidate (difflib, case-insensitive), else ``""``."""
    by_lower = {c.lower(): c for c in candidates}
    near = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    return f" (did you mean {by_lower[near[0]]!r}?)" if near else ""


def check_fields(node: dict[str, Any], known: Collection[str], path: str) -> None:
    """A ``ConfigError`` at ``path.KEY`` for the first key of ``node`` that is not in ``known``."""
    for key in node:
        if key in known:
            continue
        if not isinstance(key, str):
            raise ConfigError(path, f"{show(key)} is not a field name")
        raise ConfigError(join(path, key), f"unknown field{did_you_mean(key, known)}")


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


def kubespan_section(node: dict[str, Any], path: str,
                     document: bool = False) -> tuple[KubeSpanConfig, tuple[IPNetwork, ...]]:
    """A legacy ``machine.network.kubespan`` block or (``document``) a ``KubeSpanConfig`` document."""
    check_fields(node, (*KUBESPAN_FIELDS, *EXTENSION_FIELDS, *(META_FIELDS if document else ())), path)
    filters = mapping(node, "filters", path) or {}
    filters_path = join(path, "filters")
    check_fields(filters, KUBESPAN_FILTERS_FIELDS, filters_path)
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
        relay=boolean(node, RELAY_FIELD, path),
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
