"""The prometheus-client collector of ``kubespan.metrics.AgentMetrics`` (the metric names and help texts
are listed there); imported only by an agent that serves metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .metrics import RECONCILE_BUCKETS, AgentMetrics
from .peers import PeerState, PeerStatus
from .relay import relayed_via


class AgentCollector(Collector):
    """Reads an ``AgentMetrics`` at scrape time."""

    def __init__(self, metrics: AgentMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        statuses = m.statuses()
        state = GaugeMetricFamily("kubespan_peer_state", "KubeSpan peer state (Talos KubeSpanPeerStatus.state): "
                                  "1 for the current one.", labels=["public_key", "label", "state"])
        rotations = CounterMetricFamily("kubespan_peer_endpoint_rotations",
                                        "Times the agent moved a peer on to its next candidate endpoint.",
                                        labels=["public_key", "label"])
        for key, status in sorted(statuses.items()):
            for candidate in PeerState:
                state.add_metric([key, status.label, candidate.value], 1 if status.state is candidate else 0)
            rotations.add_metric([key, status.label], m.rotations[key])
        yield state
        yield rotations
        yield from self._relay(statuses)
        yield self._duration()
        results = CounterMetricFamily("kubespan_reconcile", "Reconcile passes, by result.", labels=["result"])
        for result, n in sorted(m.results.items()):
            results.add_metric([result], n)
        yield results
        passes = CounterMetricFamily("kubespan_status_passes", "Status passes between reconciles, by what asked "
                                     "for them (a completed handshake, a state-table timeout).", labels=["trigger"])
        for trigger, n in sorted(m.status_passes.items()):
            passes.add_metric([trigger], n)
        yield passes
        yield from self._discovery()

    def _duration(self) -> Metric:
        m = self.metrics
        buckets: list[tuple[str, float]] = []
        total = 0
        for bound, n in zip([*map(repr, RECONCILE_BUCKETS), "+Inf"], m.duration_buckets):
            total += n
            buckets.append((bound, total))
        return HistogramMetricFamily("kubespan_reconcile_duration_seconds",
                                     "Time one reconcile pass took (read, decide, apply, publish).",
                                     buckets=buckets, sum_value=m.duration_sum)

    @staticmethod
    def _relay(statuses: Mapping[str, PeerStatus]) -> Iterator[Metric]:
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
        for client in self.metrics.clients():
            name = client.endpoint.target
            connected.add_metric([name], 1 if client.watching else 0)
            for field in dataclasses.fields(client.counters):
                events.add_metric([name, field.name], getattr(client.counters, field.name))
        yield connected
        yield events
