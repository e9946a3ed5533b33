"""Prometheus metrics of the discovery service, under upstream's names.

Contract: ``ServiceMetrics(state)`` is a prometheus-client collector.  At
scrape time it reads ``State.stats()`` as siderolabs/discovery-service's
state collector does (``discovery_state_clusters``, ``_affiliates``,
``_endpoints``, ``_subscriptions``, same help texts) and reports the GC
counters the service feeds through ``gc(result)``
(``discovery_state_gc_runs_total``, ``_clusters_total``,
``_affiliates_total``).  ``wrap(servicer)`` returns a servicer that counts
every RPC as go-grpc-prometheus does: ``grpc_server_started_total`` and
``grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}``,
with the code in Go's spelling (``OK``, ``InvalidArgument``,
``ResourceExhausted``...), every method pre-initialised for every code.
Counting is per RPC, not per byte.  Single event loop; not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kubespan.discovery.rpc import SERVICE
from kubespan.discovery.state import GcResult, State

METHODS = {"Hello": "unary", "AffiliateUpdate": "unary", "AffiliateDelete": "unary", "List": "unary",
           "Watch": "server_stream"}


def go_code(code: grpc.StatusCode) -> str:
    """``RESOURCE_EXHAUSTED`` -> ``ResourceExhausted`` (Go's codes.Code.String())."""
    return "OK" if code is grpc.StatusCode.OK else "".join(p.capitalize() for p in code.name.split("_"))


class ServiceMetrics(Collector):
    """The service's metrics (see the module contract)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.gc_runs = self.gc_clusters = self.gc_affiliates = 0
        self.started: Counter[str] = Counter({m: 0 for m in METHODS})
        self.handled: Counter[tuple[str, str]] = Counter(
            {(m, go_code(c)): 0 for m in METHODS for c in grpc.StatusCode})

    def gc(self, result: GcResult) -> None:
        self.gc_runs += 1
        self.gc_clusters += result.removed_clusters
        self.gc_affiliates += result.expired_affiliates

    def wrap(self, servicer: Any) -> Any:
        return _Metered(servicer, self)

    def collect(self) -> Iterator[Metric]:
        stats = self.state.stats()
        for key, what in (("clusters", "clusters"), ("affiliates", "affiliates"), ("endpoints", "endpoints"),
                          ("subscriptions", "subscriptions")):
            family = GaugeMetricFamily(f"discovery_state_{key}", f"The current number of {what} in the state.")
            family.add_metric([], stats.get(key, 0))
            yield family
        for name, helptext, n in (("runs", "The number of GC runs.", self.gc_runs),
                                  ("clusters", "The total number of GC'ed clusters.", self.gc_clusters),
                                  ("affiliates", "The total number of GC'ed affiliates.", self.gc_affiliates)):
            gc = CounterMetricFamily(f"discovery_state_gc_{name}", helptext)
            gc.add_metric([], n)
            yield gc
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        started = CounterMetricFamily("grpc_server_started", "Total number of RPCs started on the server.",
                                      labels=labels)
        for method, n in sorted(self.started.items()):
            started.add_metric([METHODS[method], SERVICE, method], n)
        yield started
        handled = CounterMetricFamily(
            "grpc_server_handled", "Total number of RPCs completed on the server, regardless of success or failure.",
            labels=[*labels, "grpc_code"])
        for (method, code), n in sorted(self.handled.items()):
            handled.add_metric([METHODS[method], SERVICE, method, code], n)
        yield handled

    def done(self, method: str, context: Any, exc: BaseException | None) -> None:
        code = context.code() if exc is not None else None
        if isinstance(code, grpc.StatusCode):
            name = go_code(code)
        elif exc is None:
            name = "OK"
        else:
            name = "Canceled" if isinstance(exc, (GeneratorExit, asyncio.CancelledError)) else "Unknown"
        self.handled[(method, name)] += 1


class _Metered:
    """A servicer that counts each RPC of the one it wraps."""

    def __init__(self, inner: Any, metrics: ServiceMetrics) -> None:
        self._inner = inner
        self._metrics = metrics
        for method in ("Hello", "AffiliateUpdate", "AffiliateDelete", "List"):
            setattr(self, method, self._unary(method, getattr(inner, method)))

    def _unary(self, method: str, call: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
        async def metered(request: Any, context: Any) -> Any:
            self._metrics.started[method] += 1
            try:
                response = await call(request, context)
            except BaseException as exc:
                self._metrics.done(method, context, exc)
                raise
            self._metrics.done(method, context, None)
            return response

        return metered

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self._metrics.started["Watch"] += 1
        try:
            async for message in self._inner.Watch(request, context):
                yield message
        except BaseException as exc:
            self._metrics.done("Watch", context, exc)
            raise
        self._metrics.done("Watch", context, None)
