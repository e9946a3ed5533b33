"""``kubespan get``: show the agent's resources like ``talosctl get``.

Contract (kubespan.md §8): ``get RESOURCE [-o table|yaml|json]
[--api-socket PATH]`` (``KUBESPAN_API_SOCKET`` honoured; default
``/run/kubespan/agent.sock``).  RESOURCE is a lowercase alias (``peerstatuses``,
``peerstatus``...), a Talos type name (``KubeSpanPeerStatuses``) or the fully
qualified type, case-insensitive (``resources.resolve_type``).

- ``table``: NODE, NAMESPACE, TYPE, ID, VERSION, then the type's columns
  (identities: ADDRESS, PUBLICKEY; peerspecs: LABEL, ENDPOINTS; peerstatuses:
  LABEL, ENDPOINT, STATE, RX, TX; endpoints: ENDPOINT, AFFILIATE ID;
  affiliates: HOSTNAME, MACHINE TYPE, ADDRESSES; members: HOSTNAME, MACHINE
  TYPE, OS, ADDRESSES; nodeidentities: ID), TYPE as talosctl's singular kind (``KubeSpanPeerStatus``).
- ``json``: one JSON list of ``{"metadata": ..., "spec": ...}``.
- ``yaml``: one document per resource (``node``, ``metadata``, ``spec``),
  separated by ``---``.

No agent: ``error: no kubespan agent is running (socket PATH)``, exit 1.
Formatting is pure (``render``); only ``run`` talks to the socket.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from .api import API_SOCKET_ENV, DEFAULT_API_SOCKET, request
from .errors import KubespanError
from .resources import RESOURCE_TYPES, ResourceType, resolve_type

__all__ = ["COLUMNS", "render", "render_table", "run"]

Column = tuple[str, Callable[[dict[str, Any]], str]]


def _field(name: str) -> Callable[[dict[str, Any]], str]:
    def get(spec: dict[str, Any]) -> str:
        value = spec.get(name, "")
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)
    return get


COLUMNS: dict[str, list[Column]] = {
    "KubeSpanIdentities": [("ADDRESS", _field("address")), ("PUBLICKEY", _field("publicKey"))],
    "KubeSpanPeerSpecs": [("LABEL", _field("label")), ("ENDPOINTS", _field("endpoints"))],
    "KubeSpanPeerStatuses": [("LABEL", _field("label")), ("ENDPOINT", _field("endpoint")),
                             ("STATE", _field("state")), ("RX", _field("receiveBytes")),
                             ("TX", _field("transmitBytes"))],
    "KubeSpanEndpoints": [("ENDPOINT", _field("endpoint")), ("AFFILIATE ID", _field("affiliateID"))],
    "Affiliates": [("HOSTNAME", _field("hostname")), ("MACHINE TYPE", _field("machineType")),
                   ("ADDRESSES", _field("addresses"))],
    "Members": [("HOSTNAME", _field("hostname")), ("MACHINE TYPE", _field("machineType")),
                ("OS", _field("operatingSystem")), ("ADDRESSES", _field("addresses"))],
    "Identities": [("ID", _field("nodeId"))],
}


def render_table(rtype: ResourceType, node: str, items: Sequence[dict[str, Any]]) -> str:
    """talosctl-style table (columns padded, three spaces apart)."""
    columns = COLUMNS[rtype.name]
    rows = [["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", *(name for name, _ in columns)]]
    for item in items:
        meta, spec = item["metadata"], item["spec"]
        rows.append([node, str(meta["namespace"]), rtype.kind, str(meta["id"]), str(meta["version"]), *(get(spec) for _, get in columns)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def render(rtype: ResourceType, node: str, items: Sequence[dict[str, Any]], output: str) -> str:
    """Format ``items`` as ``table``, ``json`` or ``yaml``."""
    if output == "json":
        return json.dumps(list(items), indent=2) + "\n"
    if output == "yaml":
        docs = [{"node": node, **item} for item in items]
        return yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=False) if docs else ""
    if output == "table":
        return render_table(rtype, node, items)
    raise ValueError(f"unknown output format {output!r}")


def socket_path(option: str | None) -> str:
    """``--api-socket``, else ``$KUBESPAN_API_SOCKET``, else the default."""
    return option or os.environ.get(API_SOCKET_ENV) or DEFAULT_API_SOCKET


def run(resource_name: str, output: str = "table", api_socket: str | None = None) -> int:
    """``kubespan get``: print the resources; raise ``KubespanError`` on failure."""
    rtype = resolve_type(resource_name)
    if rtype is None:
        known = ", ".join(t.aliases[0] for t in RESOURCE_TYPES)
        raise KubespanError(f"unknown resource {resource_name!r} (one of: {known})")
    reply = request(socket_path(api_socket), rtype.type)
    items = reply.get("items")
    if not isinstance(items, list):
        raise KubespanError("malformed response from the agent")
    sys.stdout.write(render(rtype, str(reply.get("node", "")), items, output))
    return 0
