"""One affiliate as the discovery service stores it, and its update rules (spec §3.5).

Owns the rules every state backend applies (the in-memory ``state.State``
and the etcd-backed ``etcdstate.EtcdState`` both call these, so they cannot
drift apart):

* ``check_update`` validates a request against every limit of ``limits``
  before anything is touched: a failed update changes nothing;
* ``merge``: non-empty data replaces the stored data and resets the
  affiliate's expiry to now+TTL; absent or empty data only extends it;
  endpoints are merged and each keeps its own expiry, which merges only
  extend (so peers' endpoint-only updates keep an affiliate alive);
* ``expire``: drops endpoints whose expiry has passed; the affiliate itself
  is gone when ``expired``.

``changed`` results and ``view`` equality decide whether watchers hear of an
update: a new affiliate, new data or a new endpoint blob (refreshing expiries
alone notifies no one).  Pure: no I/O, no clock (``now`` and expiries are
float seconds on the caller's scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kubespan.discovery import limits


@dataclass(frozen=True, slots=True)
class AffiliateView:
    """An affiliate as the API returns it: opaque encrypted blobs."""

    id: str
    data: bytes
    endpoints: tuple[bytes, ...]


@dataclass(slots=True)
class Affiliate:
    """A stored affiliate: data, its expiry, and each endpoint blob's expiry."""

    id: str
    data: bytes = b""
    expiration: float = 0.0
    endpoints: dict[bytes, float] = field(default_factory=dict)  # blob -> expiry, in arrival order

    def view(self) -> AffiliateView:
        return AffiliateView(self.id, self.data, tuple(self.endpoints))

    def expired(self, now: float) -> bool:
        return self.expiration <= now


def check_update(
    cluster_id: str,
    affiliate_id: str,
    data: bytes | None,
    endpoints: Sequence[bytes],
    ttl: float,
    current: Affiliate | None,
    cluster_size: int,
) -> None:
    """Every limit of an update; ``cluster_size`` counts the cluster's affiliates now."""
    check_request(cluster_id, affiliate_id, data, endpoints, ttl)
    check_capacity(current, endpoints, cluster_size)


def check_request(cluster_id: str, affiliate_id: str, data: bytes | None, endpoints: Sequence[bytes],
                  ttl: float) -> None:
    """The limits an update request breaks on its own (INVALID_ARGUMENT)."""
    limits.validate_cluster_id(cluster_id)
    limits.validate_affiliate_id(affiliate_id)
    limits.validate_affiliate_data(data)
    limits.validate_endpoints(endpoints)
    limits.validate_ttl(ttl)


def check_capacity(current: Affiliate | None, endpoints: Sequence[bytes], cluster_size: int) -> None:
    """The capacity limits given what is stored (RESOURCE_EXHAUSTED)."""
    if current is None:
        limits.check_affiliate_count(cluster_size + 1)
    known = current.endpoints if current is not None else {}
    limits.check_endpoint_count(len(known) + len({e for e in endpoints if e not in known}))


def merge(current: Affiliate, data: bytes | None, endpoints: Sequence[bytes], ttl: float, now: float) -> bool:
    """Apply a checked update in place; returns whether watchers must hear of it."""
    expiry = now + max(ttl, 0.0)
    changed = False
    if data:  # absent or empty data keeps the stored data (upstream: len > 0)
        changed = data != current.data
        current.data = data
        current.expiration = expiry
    else:
        current.expiration = max(current.expiration, expiry)
    for blob in endpoints:
        if blob not in current.endpoints:
            changed = True
        current.endpoints[blob] = max(current.endpoints.get(blob, 0.0), expiry)
    return changed


def expire(affiliate: Affiliate, now: float) -> int:
    """Drop the endpoints whose expiry has passed; returns how many."""
    stale = [blob for blob, exp in affiliate.endpoints.items() if exp <= now]
    for blob in stale:
        del affiliate.endpoints[blob]
    return len(stale)
