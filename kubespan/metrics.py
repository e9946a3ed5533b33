"""Prometheus metrics of the kubespan agent, read from its state at scrape time.

Contract: ``AgentMetrics`` is a prometheus-client collector the agent feeds
twice per reconcile pass -- ``observe_statuses(old, new)`` (endpoint
rotations: a peer's ``lastUsedEndpoint`` changed, i.e. the agent moved on to
the next candidate as Talos' ``PickNewEndpoint`` does) and
``reconciled(seconds, ok)`` --, once per status pass between reconciles
(``status_pass(trigger)``: ``handshake`` when the engine reported one,
``timeout`` at a state-table boundary), and otherwise reads the peer
statuses and the discovery clients when scraped:

    kubespan_peer_state{public_key,label,state}              1 for the current state, 0 for the others
    kubespan_peer_endpoint_rotations_total{public_key,label} counter
    kubespan_reconcile_duration_seconds                       histogram of whole passes
    kubespan_reconcile_total{result}                          ok / error
    kubespan_status_passes_total{trigger}                     handshake / timeout
    kubespan_discovery_connected{endpoint}                    1 while the Watch stream is established
    kubespan_discovery_client_events_total{endpoint,event}    refreshes, redirects, session/watch errors,
                                                              dropped undecryptable data / endpoints
    kubespan_peer_relayed{public_key,label,relay}             1 while the peer is reached through ``relay``
                                                              (our extension, ``kubespan.relay``)

Relayed bytes per peer, forwarded frames and bytes, and dropped relay frames are the interface's
(``wgpy_peer_relayed_*_bytes_total``, ``wgpy_relay_*``, ``wgpy_drops_total{reason="relay-..."}``).

The agent serves it together with its interface's wgpy collector
(``wgpy.io.metrics``, labelled with the peers' hostnames).  ``AgentMetrics``
itself only counts (no prometheus_client import: an agent that serves no
metrics does not pay for it); ``collector()`` builds the prometheus-client
collector (``kubespan.metrics_export``) when metrics are served.  Not thread-safe:
scrape on the agent's loop (``wgpy.io.metrics_http`` does).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from .discovery.client import DiscoveryClient
from .peers import PeerStatus

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AgentMetrics:
    """The agent's own counts (see the module contract)."""

    def __init__(self, statuses: Callable[[], Mapping[str, PeerStatus]],
                 clients: Callable[[], Sequence[DiscoveryClient]]) -> None:
        self.statuses = statuses
        self.clients = clients
        self.rotations: Counter[str] = Counter()
        self.labels: dict[str, str] = {}
        self.results: Counter[str] = Counter({"ok": 0, "error": 0})
        self.status_passes: Counter[str] = Counter({"handshake": 0, "timeout": 0})
        self.duration_buckets = [0] * (len(RECONCILE_BUCKETS) + 1)
        """Reconcile passes per duration bucket (not cumulative; the last one: above the largest bound)."""
        self.duration_sum = 0.0

    def observe_statuses(self, old: Mapping[str, PeerStatus], new: Mapping[str, PeerStatus]) -> None:
        for key, status in new.items():
            self.labels[key] = status.label
            before = old.get(key)
            if before is not None and before.last_used_endpoint != status.last_used_endpoint:
                self.rotations[key] += 1

    def reconciled(self, seconds: float, ok: bool) -> None:
        self.duration_buckets[bisect.bisect_left(RECONCILE_BUCKETS, seconds)] += 1
        self.duration_sum += seconds
        self.results["ok" if ok else "error"] += 1

    def status_pass(self, trigger: str) -> None:
        self.status_passes[trigger] += 1

    def collector(self) -> Collector:
        """The prometheus-client collector over these counts (imports prometheus_client)."""
        from .metrics_export import AgentCollector

        return AgentCollector(self)
