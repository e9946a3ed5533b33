"""Discovery state in etcd, shared by stateless service replicas (spec §3.5).

Owns the key layout, the writes, the lease-based expiry, and each replica's
mirror of etcd that feeds its Watch streams.

Layout: one key per affiliate, ``PREFIX c/<cluster>/<affiliate>`` (IDs
percent-encoded, so ``/`` cannot cross a boundary), whose value is a
``sidero.discovery.storage.AffiliateSnapshot``: data, the affiliate's expiry
and every endpoint blob with its own expiry, as wall-clock ``expiration``
timestamps (replicas on different hosts share the wall clock, not a
monotonic one).

Writes: an update reads the key, applies ``record``'s rules (the same limits
and merge as the in-memory state) and commits with a Txn that compares the
key's mod_revision, retrying on a conflict, so concurrent updates through
different replicas never lose each other's endpoints.  The affiliate count
limit is checked against a count Range before a new key is created; two
replicas creating affiliates at the same instant can overshoot it by one
each (documented, not enforced by etcd).

Expiry: every key is attached to a lease that ends at the first lease slot
(``lease_slot``, 5 s) at or after the affiliate's expiry, so a key
disappears even when no replica runs; leases are shared by all keys of a
slot and cached per replica.  The GC pass (every ``gc_interval``) deletes
keys whose expiry has passed (zero TTLs, data updates that shortened the
expiry) and rewrites keys whose endpoints expired; its Txns compare
mod_revision, so replicas racing to collect change nothing twice.

Watch: each replica runs one etcd Watch over the whole prefix from the
revision of its initial load, so every replica applies the same changes in
the same (revision) order to its mirror ``State``; the mirror notifies its
subscribers exactly as the in-memory service does (snapshot, then updates;
``deleted`` for a removed key; no event when only expiries moved).  A watch
that breaks is reopened on any endpoint from the next revision (nothing is
lost).  When etcd cannot be reached at all, or the revision was compacted,
the mirror drops everything and ends every Watch stream (UNAVAILABLE); new
Watch calls fail fast until it has loaded etcd again; clients re-watch and
get the full snapshot.

Errors: ``EtcdError`` / ``EtcdUnavailableError`` from ``etcd`` (the service
answers UNAVAILABLE), limit errors from ``limits``.  A value under the prefix
that does not decode or breaks a limit is skipped and counted
(``counters["bad_records"]``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Sequence

from google.protobuf.message import DecodeError

from kubespan.discovery import limits, record
from kubespan.discovery.errors import LimitError
from kubespan.discovery.etcd import (
    EtcdClient,
    EtcdError,
    EtcdLeaseNotFoundError,
    EtcdUnavailableError,
    conditional,
    make_delete,
    make_put,
    mod_revision_is,
    range_end,
)
from kubespan.discovery.proto import etcd_pb2 as epb
from kubespan.discovery.proto import storage_pb2 as spb
from kubespan.discovery.record import Affiliate, AffiliateView
from kubespan.discovery.state import GcResult, State, Subscription

log = logging.getLogger("kubespan.discovery.etcdstate")

DEFAULT_PREFIX = "/kubespan-discovery/"
TXN_ATTEMPTS = 8
LOAD_PAGE = 1000
RETRY_MIN, RETRY_MAX = 0.1, 2.0


def encode_affiliate(affiliate: Affiliate) -> bytes:
    msg = spb.AffiliateSnapshot(id=affiliate.id, data=affiliate.data)
    msg.expiration.FromNanoseconds(int(affiliate.expiration * 1e9))
    for blob, expiry in affiliate.endpoints.items():
        ep = msg.endpoints.add(data=blob)
        ep.expiration.FromNanoseconds(int(expiry * 1e9))
    return msg.SerializeToString()


def decode_affiliate(affiliate_id: str, value: bytes) -> Affiliate:
    """An affiliate from a key's value; ``ValueError`` (or a LimitError) when it is not one."""
    msg = spb.AffiliateSnapshot()
    try:
        msg.ParseFromString(value)
    except (DecodeError, RuntimeError) as exc:
        raise ValueError("not an AffiliateSnapshot") from exc
    limits.validate_affiliate_data(msg.data)
    blobs = [ep.data for ep in msg.endpoints]
    limits.validate_endpoints(blobs)
    limits.check_endpoint_count(len(set(blobs)))
    endpoints = {ep.data: ep.expiration.ToNanoseconds() / 1e9 for ep in msg.endpoints}
    return Affiliate(affiliate_id, msg.data, msg.expiration.ToNanoseconds() / 1e9, endpoints)


class Keys:
    """The key layout under one prefix: ``PREFIX c/<cluster>/<affiliate>``, IDs percent-encoded."""

    def __init__(self, prefix: str) -> None:
        self.root = prefix.encode() + b"c/"

    def cluster_prefix(self, cluster_id: str) -> bytes:
        return self.root + urllib.parse.quote(cluster_id, safe="").encode() + b"/"

    def key(self, cluster_id: str, affiliate_id: str) -> bytes:
        return self.cluster_prefix(cluster_id) + urllib.parse.quote(affiliate_id, safe="").encode()

    def parse(self, key: bytes) -> tuple[str, str] | None:
        """``(cluster, affiliate)`` of a key, or None for a key that is not one of ours."""
        if not key.startswith(self.root):
            return None
        parts = key[len(self.root):].split(b"/")
        if len(parts) != 2:
            return None
        try:
            cid, aid = (urllib.parse.unquote(p.decode(), errors="strict") for p in parts)
        except UnicodeDecodeError:
            return None
        return cid, aid


class EtcdState:
    """Affiliates in etcd plus this replica's watched mirror of them."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: str = DEFAULT_PREFIX,
        *,
        watch_buffer: int = limits.WATCH_BUFFER,
        clock: Callable[[], float] = time.time,
        lease_slot: float = 5.0,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.root = self.keys.root
        self.mirror = State(watch_buffer=watch_buffer)
        self.clock = clock
        self.lease_slot = lease_slot
        self.synced = asyncio.Event()
        self.revision = 0  # last etcd revision applied to the mirror
        self._keys: dict[tuple[str, str], tuple[int, int]] = {}  # -> (mod_revision, lease)
        self._leases: dict[int, int] = {}  # slot end (s) -> lease ID
        self.counters: dict[str, int] = {"bad_records": 0, "conflicts": 0, "resyncs": 0, "watch_reopens": 0}

    # --- writes ---------------------------------------------------------------

    async def _lease_for(self, expiration: float, now: float) -> int:
        """A lease (shared per slot) that ends at or after ``expiration``."""
        for slot in [s for s in self._leases if s < now]:
            del self._leases[slot]
        slot_end = int(math.ceil(max(expiration, now) / self.lease_slot) * self.lease_slot)
        lease = self._leases.get(slot_end)
        if lease is None:
            lease = await self.client.lease_grant(max(1, int(math.ceil(slot_end - now)) + 1))
            self._leases[slot_end] = lease
        return lease

    async def update_affiliate(
        self, cluster_id: str, affiliate_id: str, data: bytes | None, endpoints: Sequence[bytes], ttl: float
    ) -> None:
        record.check_request(cluster_id, affiliate_id, data, endpoints, ttl)
        key = self.keys.key(cluster_id, affiliate_id)
        for _ in range(TXN_ATTEMPTS):
            now = self.clock()
            found = (await self.client.range(epb.RangeRequest(key=key))).kvs
            current = self._decode(affiliate_id, found[0].value) if found else None
            revision = found[0].mod_revision if found else 0
            size = 0
            if current is None:
                prefix = self.keys.cluster_prefix(cluster_id)
                size = (await self.client.range(
                    epb.RangeRequest(key=prefix, range_end=range_end(prefix), count_only=True))).count
            record.check_capacity(current, endpoints, size)
            affiliate = current if current is not None else Affiliate(affiliate_id)
            record.merge(affiliate, data, endpoints, ttl, now)
            value = encode_affiliate(affiliate)
            if found and found[0].value == value:
                return
            try:
                lease = await self._lease_for(affiliate.expiration, now)
                txn = conditional(mod_revision_is(key, revision), [make_put(key, value, lease)])
                if (await self.client.txn(txn)).succeeded:
                    return
            except EtcdLeaseNotFoundError:
                self._leases.clear()  # etcd lost our cached leases (restore, revoke): grant new ones
                continue
            self.counters["conflicts"] += 1
        raise EtcdError(f"affiliate {affiliate_id[:40]!r}: {TXN_ATTEMPTS} conflicting writes in a row")

    async def delete_affiliate(self, cluster_id: str, affiliate_id: str) -> None:
        limits.validate_cluster_id(cluster_id)
        limits.validate_affiliate_id(affiliate_id)
        await self.client.delete_range(epb.DeleteRangeRequest(key=self.keys.key(cluster_id, affiliate_id)))

    async def list_affiliates(self, cluster_id: str) -> list[AffiliateView]:
        """A linearizable read of the cluster (an update through any replica is listed at once)."""
        limits.validate_cluster_id(cluster_id)
        prefix = self.keys.cluster_prefix(cluster_id)
        resp = await self.client.range(epb.RangeRequest(key=prefix, range_end=range_end(prefix)))
        views = []
        for kv in resp.kvs:
            parsed = self.keys.parse(kv.key)
            affiliate = self._decode(parsed[1], kv.value) if parsed is not None else None
            if affiliate is not None:
                views.append(affiliate.view())
        return views

    def _decode(self, affiliate_id: str, value: bytes) -> Affiliate | None:
        try:
            return decode_affiliate(affiliate_id, value)
        except (ValueError, LimitError):
            self.counters["bad_records"] += 1
            return None

    # --- watch ----------------------------------------------------------------

    def subscribe(self, cluster_id: str) -> tuple[list[AffiliateView], Subscription]:
        limits.validate_cluster_id(cluster_id)
        if not self.synced.is_set():
            raise EtcdUnavailableError("etcd unavailable: this replica has not loaded the state")
        return self.mirror.subscribe(cluster_id)

    def unsubscribe(self, sub: Subscription) -> None:
        self.mirror.unsubscribe(sub)

    async def _load(self) -> None:
        """Replace the mirror with everything under the prefix at one revision."""
        loaded: list[tuple[epb.KeyValue, str, str]] = []
        start, revision = self.root, 0
        while True:
            resp = await self.client.range(
                epb.RangeRequest(key=start, range_end=range_end(self.root), limit=LOAD_PAGE, revision=revision))
            revision = revision or resp.header.revision
            for kv in resp.kvs:
                parsed = self.keys.parse(kv.key)
                if parsed is not None:
                    loaded.append((kv, *parsed))
            if not resp.more or not resp.kvs:
                break
            start = resp.kvs[-1].key + b"\0"
        self.mirror.fail_subscriptions()
        self._keys.clear()
        for kv, cid, aid in loaded:
            self._apply_put(kv, cid, aid)
        self.revision = revision
        self.synced.set()
        log.info("loaded %d affiliates from etcd at revision %d", len(loaded), revision)

    def _apply_put(self, kv: epb.KeyValue, cluster_id: str, affiliate_id: str) -> None:
        affiliate = self._decode(affiliate_id, kv.value)
        if affiliate is None:
            return
        self._keys[(cluster_id, affiliate_id)] = (kv.mod_revision, kv.lease)
        self.mirror.put_affiliate(cluster_id, affiliate)

    def _apply(self, message: epb.WatchResponse) -> None:
        for event in message.events:
            parsed = self.keys.parse(event.kv.key)
            if parsed is not None:
                if event.type == epb.Event.DELETE:
                    self._keys.pop(parsed, None)
                    self.mirror.remove_affiliate(*parsed)
                else:
                    self._apply_put(event.kv, *parsed)
            self.revision = max(self.revision, event.kv.mod_revision)
        if not message.events:  # a progress notification: everything up to here is seen
            self.revision = max(self.revision, message.header.revision)

    def _desync(self, reason: str) -> None:
        if self.synced.is_set():
            log.warning("lost etcd (%s): ending %d watch streams until it is back", reason,
                        self.mirror.stats()["subscriptions"])
            self.counters["resyncs"] += 1
        self.synced.clear()
        self.mirror.fail_subscriptions()
        self._keys.clear()

    async def run(self) -> None:
        """Keep the mirror in step with etcd until cancelled."""
        delay = RETRY_MIN
        while True:
            try:
                if not self.synced.is_set():
                    await self._load()
                    delay = RETRY_MIN
                await self._follow()
            except EtcdError as exc:  # unreachable, or compacted past our revision
                self._desync(str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _follow(self) -> None:
        """Apply etcd's watch; reopen it from the next revision while etcd answers within
        ``client.config.timeout`` (e.g. a member died, an election runs); else raise."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.client.config.timeout
        while True:
            try:
                async for message in self.client.watch(self.root, self.revision + 1):
                    give_up = loop.time() + self.client.config.timeout
                    self._apply(message)
            except EtcdUnavailableError as exc:
                if loop.time() >= give_up:
                    raise
                self.counters["watch_reopens"] += 1
                log.info("etcd watch reopening: %s", exc)
                await asyncio.sleep(0.05)

    # --- expiry ---------------------------------------------------------------

    async def garbage_collect(self) -> GcResult:
        """Delete expired affiliates, drop expired endpoints (conditional on mod_revision)."""
        now = self.clock()
        gone_affiliates = gone_endpoints = 0
        for cluster_id, affiliate in self.mirror.affiliates():
            seen = self._keys.get((cluster_id, affiliate.id))
            if seen is None:
                continue
            key = self.keys.key(cluster_id, affiliate.id)
            expired, stale = affiliate.expired(now), 0
            if expired:
                ops = [make_delete(key)]
            else:
                pruned = Affiliate(affiliate.id, affiliate.data, affiliate.expiration, dict(affiliate.endpoints))
                stale = record.expire(pruned, now)
                if not stale:
                    continue
                ops = [make_put(key, encode_affiliate(pruned), seen[1])]
            try:
                if (await self.client.txn(conditional(mod_revision_is(key, seen[0]), ops))).succeeded:
                    gone_affiliates += expired
                    gone_endpoints += stale
            except EtcdLeaseNotFoundError:
                continue  # the lease ended meanwhile: the key is gone already
        return GcResult(gone_affiliates, gone_endpoints, self.mirror.drop_idle_clusters())
