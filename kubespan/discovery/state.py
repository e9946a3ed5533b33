"""In-memory state of the discovery service (spec/kubespan.md §3.5).

Owns clusters → affiliates → endpoints, their expiries, and the Watch
subscriptions.  Pure: no I/O, no clock (every call that needs time takes
``now``, float seconds on any monotonic scale), no asyncio.  The service
wakes its stream tasks through ``Subscription.wake``, a plain callback.

Rules:
* clusters are created lazily and dropped by GC once they have neither
  affiliates nor subscribers;
* what an update may do and how it merges are ``record``'s rules
  (``check_update``, ``merge``, ``expire``), shared with the etcd backend;
* TTL has only an upper bound (like upstream): a zero or missing TTL makes
  the record expire at the next GC.

A ``State`` is also the etcd backend's per-replica mirror: ``put_affiliate``
and ``remove_affiliate`` replace or drop what etcd's watch reports and
notify watchers when the view changes; ``fail_subscriptions`` ends every
stream when the mirror loses etcd.

Subscriptions: each holds at most ``buffer_size`` pending notifications.
Overflow marks it ``lost`` and drops its buffer; the service then ends that
stream with an error and the client re-watches.

Deviation from upstream (documented, §11.3): when GC expires an endpoint but
the affiliate stays, watchers receive the updated affiliate, not
``deleted=true`` (upstream broadcasts the ID as deleted, making clients
forget the peer until its next refresh).

Concurrency: not thread-safe; the service calls it from one event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kubespan.discovery import limits, record
from kubespan.discovery.record import Affiliate, AffiliateView

__all__ = ["AffiliateRecord", "AffiliateView", "EndpointRecord", "GcResult", "Notification", "State", "Subscription"]


@dataclass(slots=True)
class Notification:
    """One change for watchers; ``affiliate is None`` means deleted.

    One object is shared by every subscriber of the cluster; ``encoded`` is a
    slot for the service to cache the serialized message once for all of them.
    """

    affiliate_id: str
    affiliate: AffiliateView | None
    encoded: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    data: bytes
    ttl: float


@dataclass(frozen=True, slots=True)
class AffiliateRecord:
    """An affiliate with its remaining lifetimes (snapshot export/import)."""

    id: str
    data: bytes
    ttl: float
    endpoints: tuple[EndpointRecord, ...]


@dataclass(frozen=True, slots=True)
class GcResult:
    expired_affiliates: int
    expired_endpoints: int
    removed_clusters: int


class Subscription:
    """A Watch subscriber's bounded buffer of notifications."""

    def __init__(self, cluster_id: str, buffer_size: int) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be >= 1")
        self.cluster_id = cluster_id
        self.buffer_size = buffer_size
        self.pending: deque[Notification] = deque()
        self.lost = False
        self.unavailable = False  # the backend lost its store: end with UNAVAILABLE
        self.wake: Callable[[], None] | None = None

    def push(self, notification: Notification) -> None:
        if self.lost:
            return
        if len(self.pending) >= self.buffer_size:
            self.lost = True
            self.pending.clear()
        else:
            self.pending.append(notification)
        if self.wake is not None:
            self.wake()

    def fail(self) -> None:
        """End this stream: the state behind it is no longer current."""
        self.lost = self.unavailable = True
        self.pending.clear()
        if self.wake is not None:
            self.wake()

    def pop_all(self) -> list[Notification]:
        items = list(self.pending)
        self.pending.clear()
        return items


@dataclass(slots=True)
class _Cluster:
    affiliates: dict[str, Affiliate] = field(default_factory=dict)
    subscriptions: set[Subscription] = field(default_factory=set)

    def notify(self, notification: Notification) -> None:
        for sub in list(self.subscriptions):
            sub.push(notification)


class State:
    """Clusters of affiliates plus subscriptions."""

    def __init__(self, *, watch_buffer: int = limits.WATCH_BUFFER) -> None:
        self._clusters: dict[str, _Cluster] = {}
        self.watch_buffer = watch_buffer

    # --- mutations ----------------------------------------------------------

    def update_affiliate(
        self,
        cluster_id: str,
        affiliate_id: str,
        data: bytes | None,
        endpoints: Sequence[bytes],
        ttl: float,
        now: float,
    ) -> bool:
        """Create/update an affiliate; returns whether watchers were notified."""
        cluster = self._clusters.get(cluster_id)
        current = cluster.affiliates.get(affiliate_id) if cluster is not None else None
        size = len(cluster.affiliates) if cluster is not None else 0
        record.check_update(cluster_id, affiliate_id, data, endpoints, ttl, current, size)
        # Checked: from here on nothing can fail.
        if cluster is None:
            cluster = self._clusters[cluster_id] = _Cluster()
        created = current is None
        if current is None:
            current = cluster.affiliates[affiliate_id] = Affiliate(affiliate_id)
        changed = record.merge(current, data, endpoints, ttl, now) or created
        if changed:
            cluster.notify(Notification(affiliate_id, current.view()))
        return changed

    def put_affiliate(self, cluster_id: str, affiliate: Affiliate) -> bool:
        """Store ``affiliate`` as given (a mirror of etcd); notifies when its view changed."""
        cluster = self._clusters.setdefault(cluster_id, _Cluster())
        previous = cluster.affiliates.get(affiliate.id)
        cluster.affiliates[affiliate.id] = affiliate
        if previous is not None and previous.view() == affiliate.view():
            return False
        cluster.notify(Notification(affiliate.id, affiliate.view()))
        return True

    def get_affiliate(self, cluster_id: str, affiliate_id: str) -> Affiliate | None:
        cluster = self._clusters.get(cluster_id)
        return cluster.affiliates.get(affiliate_id) if cluster is not None else None

    def remove_affiliate(self, cluster_id: str, affiliate_id: str) -> bool:
        """Drop an affiliate without validating IDs (a mirror of etcd); notifies if it existed."""
        cluster = self._clusters.get(cluster_id)
        if cluster is None or cluster.affiliates.pop(affiliate_id, None) is None:
            return False
        cluster.notify(Notification(affiliate_id, None))
        return True

    def affiliates(self) -> list[tuple[str, Affiliate]]:
        """Every stored affiliate with its cluster (for the etcd backend's GC)."""
        return [(cid, aff) for cid, c in self._clusters.items() for aff in c.affiliates.values()]

    def fail_subscriptions(self) -> int:
        """End every Watch stream (``Subscription.fail``) and forget all affiliates."""
        failed = 0
        for cluster in self._clusters.values():
            for sub in list(cluster.subscriptions):
                sub.fail()
                failed += 1
            cluster.affiliates.clear()
        self.drop_idle_clusters()
        return failed

    def drop_idle_clusters(self) -> int:
        """Forget clusters with neither affiliates nor subscribers; returns how many."""
        idle = [cid for cid, c in self._clusters.items() if not c.affiliates and not c.subscriptions]
        for cid in idle:
            del self._clusters[cid]
        return len(idle)

    def delete_affiliate(self, cluster_id: str, affiliate_id: str) -> bool:
        """Remove an affiliate; returns whether it existed."""
        limits.validate_cluster_id(cluster_id)
        limits.validate_affiliate_id(affiliate_id)
        cluster = self._clusters.get(cluster_id)
        if cluster is None or cluster.affiliates.pop(affiliate_id, None) is None:
            return False
        cluster.notify(Notification(affiliate_id, None))
        return True

    def garbage_collect(self, now: float) -> GcResult:
        """Drop expired affiliates/endpoints and empty, unwatched clusters."""
        gone_affiliates = gone_endpoints = 0
        for cluster in self._clusters.values():
            for affiliate_id, aff in list(cluster.affiliates.items()):
                if aff.expired(now):
                    del cluster.affiliates[affiliate_id]
                    gone_affiliates += 1
                    cluster.notify(Notification(affiliate_id, None))
                    continue
                stale = record.expire(aff, now)
                if stale:
                    gone_endpoints += stale
                    cluster.notify(Notification(affiliate_id, aff.view()))
        gone_clusters = self.drop_idle_clusters()
        return GcResult(gone_affiliates, gone_endpoints, gone_clusters)

    # --- queries ------------------------------------------------------------

    def list_affiliates(self, cluster_id: str) -> list[AffiliateView]:
        limits.validate_cluster_id(cluster_id)
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            return []
        return [aff.view() for aff in cluster.affiliates.values()]

    def subscribe(
        self, cluster_id: str, buffer_size: int | None = None
    ) -> tuple[list[AffiliateView], Subscription]:
        """Register a watcher; returns the current snapshot and its subscription."""
        limits.validate_cluster_id(cluster_id)
        cluster = self._clusters.setdefault(cluster_id, _Cluster())
        sub = Subscription(cluster_id, buffer_size or self.watch_buffer)
        cluster.subscriptions.add(sub)
        return [aff.view() for aff in cluster.affiliates.values()], sub

    def unsubscribe(self, sub: Subscription) -> None:
        cluster = self._clusters.get(sub.cluster_id)
        if cluster is not None:
            cluster.subscriptions.discard(sub)

    def stats(self) -> dict[str, int]:
        return {
            "clusters": len(self._clusters),
            "affiliates": sum(len(c.affiliates) for c in self._clusters.values()),
            "endpoints": sum(len(a.endpoints) for c in self._clusters.values() for a in c.affiliates.values()),
            "subscriptions": sum(len(c.subscriptions) for c in self._clusters.values()),
        }

    # --- snapshot support ---------------------------------------------------

    def export(self, now: float) -> dict[str, list[AffiliateRecord]]:
        """Every live affiliate with remaining lifetimes (for snapshots)."""
        out: dict[str, list[AffiliateRecord]] = {}
        for cluster_id, cluster in self._clusters.items():
            records = [
                AffiliateRecord(
                    aff.id,
                    aff.data,
                    aff.expiration - now,
                    tuple(EndpointRecord(b, exp - now) for b, exp in aff.endpoints.items() if exp > now),
                )
                for aff in cluster.affiliates.values()
                if aff.expiration > now
            ]
            if records:
                out[cluster_id] = records
        return out

    def restore(self, clusters: Iterable[tuple[str, Iterable[AffiliateRecord]]], now: float) -> int:
        """Load exported records (replacing same IDs); skips invalid or expired ones.

        Returns the number of affiliates loaded.  Limits are applied again, so
        a corrupted or foreign snapshot cannot exceed them.
        """
        loaded = 0
        for cluster_id, records in clusters:
            for rec in records:
                ttl = min(rec.ttl, limits.TTL_MAX)
                if ttl <= 0:
                    continue
                eps = [e.data for e in rec.endpoints if e.ttl > 0][: limits.AFFILIATE_ENDPOINTS_MAX]
                try:
                    self.update_affiliate(cluster_id, rec.id, rec.data, eps, ttl, now)
                except limits.LimitErrors:
                    continue
                aff = self._clusters[cluster_id].affiliates[rec.id]
                for e in rec.endpoints:
                    if e.data in aff.endpoints:
                        aff.endpoints[e.data] = now + min(e.ttl, limits.TTL_MAX)
                loaded += 1
        return loaded
