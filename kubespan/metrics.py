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
(``wgpy.io.metrics``, labelled with the peers' hostnames).  Not thread-safe:
scrape on the agent's loop (``wgpy.io.metrics_http`` does).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .discovery.client import DiscoveryClient
from .peers import PeerState, PeerStatus
from .relay import relayed_via

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AgentMetrics(Collector):
    """The agent's own metrics (see the module contract)."""

    def __init__(self, statuses: Callable[[], Mapping[str, PeerStatus]],
                 clients: Callable[[], Sequence[DiscoveryClient]]) -> None:
        self._statuses = statuses
        self._clients = clients
        self.rotations: Counter[str] = Counter()
        self._labels: dict[str, str] = {}
        self._results: Counter[str] = Counter({"ok": 0, "error": 0})
        self.status_passes: Counter[str] = Counter({"handshake": 0, "timeout": 0})
        self._duration = Histogram("kubespan_reconcile_duration_seconds",
                                   "Time one reconcile pass took (read, decide, apply, publish).",
                                   buckets=RECONCILE_BUCKETS, registry=None)

    def observe_statuses(self, old: Mapping[str, PeerStatus], new: Mapping[str, PeerStatus]) -> None:
        for key, status in new.items():
            self._labels[key] = status.label
            before = old.get(key)
            if before is not None and before.last_used_endpoint != status.last_used_endpoint:
                self.rotations[key] += 1

    def reconciled(self, seconds: float, ok: bool) -> None:
        self._duration.observe(seconds)
        self._results["ok" if ok else "error"] += 1

    def status_pass(self, trigger: str) -> None:
        self.status_passes[trigger] += 1

    def collect(self) -> Iterator[Metric]:
        statuses = self._statuses()
        state = GaugeMetricFamily("kubespan_peer_state", "KubeSpan peer state (Talos KubeSpanPeerStatus.state): "
                                  "1 for the current one.", labels=["public_key", "label", "state"])
        rotations = CounterMetricFamily("kubespan_peer_endpoint_rotations",
                                        "Times the agent moved a peer on to its next candidate endpoint.",
                                        labels=["public_key", "label"])
        for key, status in sorted(statuses.items()):
            for candidate in PeerState:
                state.add_metric([key, status.label, candidate.value], 1 if status.state is candidate else 0)
            rotations.add_metric([key, status.label], self.rotations[key])
        yield state
        yield rotations
        yield from self._relay(statuses)
        yield from self._duration.collect()
        results = CounterMetricFamily("kubespan_reconcile", "Reconcile passes, by result.", labels=["result"])
        for result, n in sorted(self._results.items()):
            results.add_metric([result], n)
        yield results
        passes = CounterMetricFamily("kubespan_status_passes", "Status passes between reconciles, by what asked "
                                     "for them (a completed handshake, a state-table timeout).", labels=["trigger"])
        for trigger, n in sorted(self.status_passes.items()):
            passes.add_metric([trigger], n)
        yield passes
        yield from self._discovery()

    def _relay(self, statuses: Mapping[str, PeerStatus]) -> Iterator[Metric]:
        relayed = GaugeMetricFamily("kubespan_peer_relayed", "1 while the peer is reached through the relay "
                                    "(kubespan relay extension).", labels=["public_key", "label", "relay"])
        for key, status in sorted(statuses.items()):
            via = relayed_via(status)
            if via is not None:
                relayed.add_metric([key, status.label, via], 1)
        yield relayed

    def _discovery(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily("kubespan_discovery_connected",
                                      "1 while the Watch stream to the discovery service is established.",
                                      labels=["endpoint"])
        events = CounterMetricFamily("kubespan_discovery_client_events",
                                     "Discovery client events: refreshes, redirects, session and watch errors, "
                                     "dropped undecryptable data and endpoints.", labels=["endpoint", "event"])
        for client in self._clients():
            name = client.endpoint.target
            connected.add_metric([name], 1 if client.watching else 0)
            for field in dataclasses.fields(client.counters):
                events.add_metric([name, field.name], getattr(client.counters, field.name))
        yield connected
        yield events
