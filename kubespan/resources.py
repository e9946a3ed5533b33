"""Talos resource shapes kubespan persists or shows, and the agent's resource store.

Contract: the YAML field names of Talos' ``ClusterIdentitySpec``
(``Identities.cluster.talos.dev``, ID ``local``; file ``node-identity.yaml``)
and ``KubeSpanIdentitySpec`` (``KubeSpanIdentities.kubespan.talos.dev``, ID
``local``; file ``kubespan-identity.yaml``), kubespan.md §1, §2 and §8.  Plain
data plus mapping converters; no I/O, no validation beyond shape (the
identity module validates values).  ``repr`` never shows the private key.

The second half names the resource types ``kubespan get`` serves, resolves
what an operator types to one of them as talosctl does, and keeps the
agent's current resources with Talos metadata, telling subscribers of every
change (``ResourceStore``).  Pure: the clock is injected, subscribers are
plain callbacks run synchronously inside ``publish``.  The ``spec`` mappings
are built by ``kubespan.specs``, the output formatted by ``kubespan.get``.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import KubespanError

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
# A resource is ``{"metadata": {...}, "spec": {...}}`` with Talos field names in
# ``spec`` and the metadata fields, in order, that COSI's ``Metadata.MarshalYAML``
# writes (cosi-project/runtime pkg/resource/metadata.go): namespace, type, id,
# version, owner, phase, created, updated (RFC 3339, whole seconds).  ``owner`` is
# the Talos controller that owns the type (its ``Name()`` in
# internal/app/machined/pkg/controllers/{kubespan,cluster}/*.go).  ``version`` is
# 1 on creation and goes up by one on every change of the spec.

NS_KUBESPAN = "kubespan"
NS_CLUSTER = "cluster"
PHASE_RUNNING = "running"

EventType = Literal["created", "updated", "destroyed"]


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A resource type as a Talos resource definition describes it.

    ``name`` is the plural CamelCase part of the type, ``display_type`` its
    singular (the TYPE column), ``extra_aliases`` kubespan's own older names
    (``peerstatuses``...), kept because they collide with nothing.
    """

    name: str
    namespace: str
    suffix: str
    display_type: str
    owner: str
    extra_aliases: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        """The fully qualified type, e.g. ``KubeSpanPeerStatuses.kubespan.talos.dev``."""
        return f"{self.name}.{self.suffix}"

    @property
    def aliases(self) -> tuple[str, ...]:
        """The automatic aliases of cosi-project/runtime ``ResourceDefinitionSpec.Fill``
        (pkg/resource/meta/spec/resource_definition.go): the lowercase singular, and
        for a name with several capitals their lowercase initials, plus ``s`` unless
        they end in ``S`` (``KubeSpanIdentities`` → ``ksi``, ``ksis``)."""
        out = [self.display_type.lower()]
        initials = "".join(ch for ch in self.name if ch.isupper())
        if len(initials) > 1:
            out.append(initials.lower())
            if not initials.endswith("S"):
                out.append(initials.lower() + "s")
        return tuple(out)

    @property
    def all_aliases(self) -> tuple[str, ...]:
        """Every name that resolves to this type (``Fill``'s ``AllAliases``, then ours)."""
        plural = self.name.lower()
        parts = self.suffix.split(".")
        prefixed = tuple(".".join([plural, *parts[:i]]) for i in range(1, len(parts)))
        return (plural, *prefixed, *self.aliases, *self.extra_aliases)


# Types and columns: siderolabs/talos pkg/machinery/resources/kubespan/{identity,peer_spec,
# peer_status,endpoint}.go and pkg/machinery/resources/cluster/{affiliate,member,identity}.go.
KUBESPAN_IDENTITIES = ResourceType("KubeSpanIdentities", NS_KUBESPAN, "kubespan.talos.dev", "KubeSpanIdentity",
                                   "kubespan.IdentityController")
KUBESPAN_PEER_SPECS = ResourceType("KubeSpanPeerSpecs", NS_KUBESPAN, "kubespan.talos.dev", "KubeSpanPeerSpec",
                                   "kubespan.PeerSpecController", ("peerspecs", "peerspec"))
KUBESPAN_PEER_STATUSES = ResourceType("KubeSpanPeerStatuses", NS_KUBESPAN, "kubespan.talos.dev",
                                      "KubeSpanPeerStatus", "kubespan.ManagerController",
                                      ("peerstatuses", "peerstatus"))
KUBESPAN_ENDPOINTS = ResourceType("KubeSpanEndpoints", NS_KUBESPAN, "kubespan.talos.dev", "KubeSpanEndpoint",
                                  "kubespan.EndpointController", ("endpoints", "endpoint"))
AFFILIATES = ResourceType("Affiliates", NS_CLUSTER, "cluster.talos.dev", "Affiliate",
                          "cluster.AffiliateMergeController")
MEMBERS = ResourceType("Members", NS_CLUSTER, "cluster.talos.dev", "Member", "cluster.MemberController")
CLUSTER_IDENTITIES = ResourceType("Identities", NS_CLUSTER, "cluster.talos.dev", "Identity",
                                  "cluster.NodeIdentityController", ("nodeidentities", "nodeidentity"))
NODE_IDENTITIES = CLUSTER_IDENTITIES  # the older name of the same type

RESOURCE_TYPES = (KUBESPAN_IDENTITIES, KUBESPAN_PEER_SPECS, KUBESPAN_PEER_STATUSES, KUBESPAN_ENDPOINTS,
                  AFFILIATES, MEMBERS, CLUSTER_IDENTITIES)


class UnknownResourceType(KubespanError):
    """No resource type has this name; ``name`` as typed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"resource {name[:64]!r} is not registered")
        self.name = name


class AmbiguousResourceType(KubespanError):
    """Several types answer to this name (as ``ksps`` in Talos); ``matches`` are their types."""

    def __init__(self, name: str, matches: tuple[str, ...]) -> None:
        super().__init__(f"resource type {name[:64]!r} is ambiguous: {' '.join(matches)}")
        self.name = name
        self.matches = matches


def resolve(name: str) -> ResourceType:
    """The type ``name`` stands for, as talosctl resolves it (siderolabs/talos
    pkg/machinery/client/resources.go ``ResolveResourceKind``): the fully qualified
    type or any alias, case-insensitive; several matches are an error, not a guess."""
    key = name.strip().lower()
    matches = tuple(t for t in RESOURCE_TYPES if key == t.type.lower() or key in t.all_aliases)
    if not matches:
        raise UnknownResourceType(name)
    if len(matches) > 1:
        raise AmbiguousResourceType(name, tuple(t.type for t in matches))
    return matches[0]


def resolve_type(name: str) -> ResourceType | None:
    """``resolve`` that answers ``None`` for an unknown or ambiguous name."""
    try:
        return resolve(name)
    except KubespanError:
        return None


def format_stamp(when: float) -> str:
    """Unix seconds → RFC 3339 UTC in whole seconds (Go's ``time.RFC3339``)."""
    return _stamp(int(when))


@functools.lru_cache(maxsize=256)
def _stamp(seconds: int) -> str:  # every list renders two per resource, mostly the same few seconds
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Stored:
    version: int
    spec: dict[str, Any]
    created: float
    updated: float


def resource(rtype: ResourceType, rid: str, version: int, spec: dict[str, Any],
             created: float = 0.0, updated: float = 0.0) -> dict[str, Any]:
    """One resource in the JSON shape of the API (``metadata`` as Talos prints it)."""
    return {
        "metadata": {"namespace": rtype.namespace, "type": rtype.type, "id": rid, "version": version,
                     "owner": rtype.owner, "phase": PHASE_RUNNING, "created": format_stamp(created),
                     "updated": format_stamp(updated)},
        "spec": spec,
    }


@dataclass(frozen=True, slots=True)
class ResourceEvent:
    """One change: ``resource`` is the new state, or the last one for ``destroyed``."""

    event: EventType
    rtype: ResourceType
    resource: dict[str, Any]


Subscriber = Callable[[ResourceEvent], None]


class ResourceStore:
    """The agent's current resources, versioned per (type, id), with change subscribers.

    ``clock()`` gives Unix seconds for ``created``/``updated``.  Subscribers run
    inside ``publish``, in the order of the changes, and must not raise.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[str, dict[str, _Stored]] = {}
        self._subscribers: dict[int, Subscriber] = {}
        self._next_token = 0

    def publish(self, rtype: ResourceType, specs: dict[str, dict[str, Any]]) -> list[ResourceEvent]:
        """Replace every resource of ``rtype`` with ``specs`` (id → spec); the changes."""
        now = self._clock()
        old = self._items.get(rtype.type, {})
        new: dict[str, _Stored] = {}
        events: list[ResourceEvent] = []
        for rid, spec in sorted(specs.items()):
            prev = old.get(rid)
            if prev is None:
                new[rid] = _Stored(1, spec, now, now)
                events.append(ResourceEvent("created", rtype, self._render(rtype, rid, new[rid])))
            elif prev.spec != spec:
                new[rid] = _Stored(prev.version + 1, spec, prev.created, now)
                events.append(ResourceEvent("updated", rtype, self._render(rtype, rid, new[rid])))
            else:
                new[rid] = prev
        for rid in sorted(set(old) - set(new)):
            events.append(ResourceEvent("destroyed", rtype, self._render(rtype, rid, old[rid])))
        self._items[rtype.type] = new
        for event in events:
            for subscriber in list(self._subscribers.values()):
                subscriber(event)
        return events

    @staticmethod
    def _render(rtype: ResourceType, rid: str, item: _Stored) -> dict[str, Any]:
        return resource(rtype, rid, item.version, item.spec, item.created, item.updated)

    def list(self, rtype: ResourceType, rid: str | None = None) -> list[dict[str, Any]]:
        """The resources of ``rtype`` sorted by ID (only ``rid`` when given)."""
        items = self._items.get(rtype.type, {})
        return [self._render(rtype, key, item) for key, item in sorted(items.items()) if rid in (None, key)]

    def subscribe(self, subscriber: Subscriber) -> int:
        """Call ``subscriber`` with every later change; a token for ``unsubscribe``."""
        self._next_token += 1
        self._subscribers[self._next_token] = subscriber
        return self._next_token

    def unsubscribe(self, token: int) -> None:
        self._subscribers.pop(token, None)
