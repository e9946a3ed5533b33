"""Talos resource shapes: the persisted identities, the resource types the agent serves, their store.

Contract (kubespan.md §1, §2 and §8): the YAML field names of Talos' ``ClusterIdentitySpec``
(``Identities.cluster.talos.dev``, ID ``local``; file ``node-identity.yaml``) and
``KubeSpanIdentitySpec`` (``KubeSpanIdentities.kubespan.talos.dev``, ID ``local``; file
``kubespan-identity.yaml``); the resource types ``kubespan get`` shows (Talos names, namespaces,
aliases), the JSON shape of one resource and ``ResourceStore``, which versions them as Talos does.  The
``spec`` mappings are built by ``kubespan.specs``, the identities validated and persisted by
``kubespan.identity``, the output formatted by ``kubespan.get``.  Plain data, no I/O; ``repr`` never
shows the private key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NODE_IDENTITY_FILE = "node-identity.yaml"
KUBESPAN_IDENTITY_FILE = "kubespan-identity.yaml"
RESOURCE_ID_LOCAL = "local"


@dataclass(frozen=True, slots=True)
class ClusterIdentitySpec:
    """``Identities.cluster.talos.dev``: YAML key ``nodeId``."""

    node_id: str

    def to_mapping(self) -> dict[str, Any]:
        return {"nodeId": self.node_id}


@dataclass(frozen=True, slots=True)
class KubeSpanIdentitySpec:
    """``KubeSpanIdentities.kubespan.talos.dev``.

    YAML keys ``address``, ``subnet``, ``privateKey``, ``publicKey``; keys are
    std base64.  Talos persists ``address`` and ``subnet`` empty and
    recomputes them on every boot; only the keys survive.
    """

    private_key: str = field(repr=False)
    public_key: str
    address: str = ""
    subnet: str = ""

    def to_mapping(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "subnet": self.subnet,
            "privateKey": self.private_key,
            "publicKey": self.public_key,
        }


# --- resources served by the agent (kubespan.md §8) ---------------------------------------
#
# A resource is ``{"metadata": {"namespace", "type", "id", "version"}, "spec": {...}}``
# with Talos field names in ``spec``.  ``ResourceStore`` keeps the current set
# per type and bumps ``version`` when a resource's spec changes (Talos
# semantics: version 1 on creation).  Pure data, no I/O.

NS_KUBESPAN = "kubespan"
NS_CLUSTER = "cluster"


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A resource type: Talos name, namespace and the lowercase aliases ``get`` accepts."""

    name: str
    namespace: str
    aliases: tuple[str, ...]
    kind: str = ""
    """The singular name talosctl shows in the TYPE column (``KubeSpanPeerStatus``)."""

    @property
    def type(self) -> str:
        """The fully qualified type, e.g. ``KubeSpanPeerStatuses.kubespan.talos.dev``."""
        suffix = "kubespan.talos.dev" if self.namespace == NS_KUBESPAN else "cluster.talos.dev"
        return f"{self.name}.{suffix}"


KUBESPAN_IDENTITIES = ResourceType(
    "KubeSpanIdentities", NS_KUBESPAN, ("identities", "identity", "kubespanidentity", "kubespanidentities"),
    "KubeSpanIdentity")
KUBESPAN_PEER_SPECS = ResourceType(
    "KubeSpanPeerSpecs", NS_KUBESPAN, ("peerspecs", "peerspec", "kubespanpeerspec", "kubespanpeerspecs"),
    "KubeSpanPeerSpec")
KUBESPAN_PEER_STATUSES = ResourceType(
    "KubeSpanPeerStatuses", NS_KUBESPAN,
    ("peerstatuses", "peerstatus", "kubespanpeerstatus", "kubespanpeerstatuses"), "KubeSpanPeerStatus")
KUBESPAN_ENDPOINTS = ResourceType(
    "KubeSpanEndpoints", NS_KUBESPAN, ("endpoints", "endpoint", "kubespanendpoint", "kubespanendpoints"),
    "KubeSpanEndpoint")
AFFILIATES = ResourceType("Affiliates", NS_CLUSTER, ("affiliates", "affiliate"), "Affiliate")
MEMBERS = ResourceType("Members", NS_CLUSTER, ("members", "member"), "Member")
NODE_IDENTITIES = ResourceType("Identities", NS_CLUSTER, ("nodeidentities", "nodeidentity"), "Identity")

RESOURCE_TYPES = (KUBESPAN_IDENTITIES, KUBESPAN_PEER_SPECS, KUBESPAN_PEER_STATUSES, KUBESPAN_ENDPOINTS,
                  AFFILIATES, MEMBERS, NODE_IDENTITIES)


def resolve_type(name: str) -> ResourceType | None:
    """Find a type by alias, Talos name or fully qualified type (case-insensitive).

    ``identities`` means ``KubeSpanIdentities`` here (this is the kubespan
    CLI); the cluster ``Identities`` (node ID) is ``nodeidentities`` or
    ``Identities.cluster.talos.dev``.
    """
    key = name.strip().lower()
    for rtype in RESOURCE_TYPES:
        if key in rtype.aliases or key == rtype.type.lower():
            return rtype
    for rtype in RESOURCE_TYPES:
        if key == rtype.name.lower():
            return rtype
    return None


def resource(rtype: ResourceType, rid: str, version: int, spec: dict[str, Any]) -> dict[str, Any]:
    """One resource in the JSON shape of the API and ``get -o json``."""
    return {
        "metadata": {"namespace": rtype.namespace, "type": rtype.type, "id": rid, "version": version},
        "spec": spec,
    }


class ResourceStore:
    """The agent's current resources, versioned per (type, id)."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {}

    def publish(self, rtype: ResourceType, specs: dict[str, dict[str, Any]]) -> None:
        """Replace every resource of ``rtype`` with ``specs`` (id → spec)."""
        old = self._items.get(rtype.type, {})
        new: dict[str, tuple[int, dict[str, Any]]] = {}
        for rid, spec in specs.items():
            prev = old.get(rid)
            if prev is None:
                new[rid] = (1, spec)
            elif prev[1] != spec:
                new[rid] = (prev[0] + 1, spec)
            else:
                new[rid] = prev
        self._items[rtype.type] = new

    def list(self, rtype: ResourceType) -> list[dict[str, Any]]:
        """The resources of ``rtype`` sorted by ID."""
        items = self._items.get(rtype.type, {})
        return [resource(rtype, rid, version, spec) for rid, (version, spec) in sorted(items.items())]
