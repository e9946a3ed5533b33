"""In-memory state of the discovery service (spec/kubespan.md §3.5).

Owns clusters → affiliates → endpoints, their expiries, and the Watch
subscriptions.  Pure: no I/O, no clock (every call that needs time takes
``now``, float seconds on any monotonic scale), no asyncio.  The service
wakes its stream tasks through ``Subscription.wake``, a plain callback.

Rules:
* clusters are created lazily and dropped by GC once they have neither
  affiliates nor subscribers;
* an update with (non-empty) data replaces it and resets the affiliate's
  expiry to now+TTL; endpoints are merged and each keeps its own expiry, which merges
  only extend (so peers' endpoint-only updates keep an affiliate alive);
* an update for an unknown ID creates it even without data;
* TTL has only an upper bound (like upstream): a zero or missing TTL makes
  the record expire at the next GC;
* every limit is checked before anything is touched: a failed update
  changes nothing and notifies no one.

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

from kubespan.discovery import limits


@dataclass(frozen=True, slots=True)
class AffiliateView:
    """An affiliate as the API returns it: opaque encrypted blobs."""

    id: str
    data: bytes
    endpoints: tuple[bytes, ...]


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

    def pop_all(self) -> list[Notification]:
        items = list(self.pending)
        self.pending.clear()
        return items


@dataclass(slots=True)
class _Affiliate:
    id: str
    data: bytes = b""
    expiration: float = 0.0
    endpoints: dict[bytes, float] = field(default_factory=dict)  # blob -> expiry

    def view(self) -> AffiliateView:
        return AffiliateView(self.id, self.data, tuple(self.endpoints))


@dataclass(slots=True)
class _Cluster:
    affiliates: dict[str, _Affiliate] = field(default_factory=dict)
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
        limits.validate_cluster_id(cluster_id)
        limits.validate_affiliate_id(affiliate_id)
        limits.validate_affiliate_data(data)
        limits.validate_endpoints(endpoints)
        limits.validate_ttl(ttl)
        cluster = self._clusters.get(cluster_id)
        current = cluster.affiliates.get(affiliate_id) if cluster is not None else None
        if current is None:
            count = len(cluster.affiliates) if cluster is not None else 0
            limits.check_affiliate_count(count + 1)
        known = current.endpoints if current is not None else {}
        new_blobs = list(dict.fromkeys(e for e in endpoints if e not in known))
        limits.check_endpoint_count(len(known) + len(new_blobs))
        # Validated: from here on nothing can fail.
        if cluster is None:
            cluster = self._clusters[cluster_id] = _Cluster()
        changed = current is None
        if current is None:
            current = cluster.affiliates[affiliate_id] = _Affiliate(affiliate_id)
        expiry = now + max(ttl, 0.0)
        if data:  # absent or empty data keeps the stored data (upstream: len > 0)
            changed = changed or data != current.data
            current.data = data
            current.expiration = expiry
        else:
            current.expiration = max(current.expiration, expiry)
        for blob in endpoints:
            current.endpoints[blob] = max(current.endpoints.get(blob, 0.0), expiry)
        changed = changed or bool(new_blobs)
        if changed:
            cluster.notify(Notification(affiliate_id, current.view()))
        return changed

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
        gone_affiliates = gone_endpoints = gone_clusters = 0
        for cluster_id, cluster in list(self._clusters.items()):
            for affiliate_id, aff in list(cluster.affiliates.items()):
                if aff.expiration <= now:
                    del cluster.affiliates[affiliate_id]
                    gone_affiliates += 1
                    cluster.notify(Notification(affiliate_id, None))
                    continue
                stale = [blob for blob, exp in aff.endpoints.items() if exp <= now]
                for blob in stale:
                    del aff.endpoints[blob]
                if stale:
                    gone_endpoints += len(stale)
                    cluster.notify(Notification(affiliate_id, aff.view()))
            if not cluster.affiliates and not cluster.subscriptions:
                del self._clusters[cluster_id]
                gone_clusters += 1
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
