"""state.py, limits.py, snapshot.py, ratelimit.py: pure logic with an injected clock (§3.5)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubespan.discovery import limits, snapshot
from kubespan.discovery.errors import (
    InvalidArgumentError,
    ResourceExhaustedError,
    SnapshotError,
)
from kubespan.discovery.proto import storage_pb2
from kubespan.discovery.ratelimit import RateLimiter
from kubespan.discovery.state import AffiliateView, Notification, State

TTL = 600.0
EP1, EP2 = b"e" * 16, b"f" * 32


def fingerprint(state: State, now: float = 0.0) -> object:
    return state.export(now), state.stats()


def test_update_creates_cluster_and_affiliate_lazily() -> None:
    s = State()
    assert s.list_affiliates("c") == []
    assert s.update_affiliate("c", "a", b"data", [EP1], TTL, now=0.0)
    assert s.list_affiliates("c") == [AffiliateView("a", b"data", (EP1,))]
    assert s.stats() == {"clusters": 1, "affiliates": 1, "endpoints": 1, "subscriptions": 0}


def test_update_without_data_creates_empty_affiliate() -> None:
    s = State()
    s.update_affiliate("c", "peer", None, [EP1], TTL, now=0.0)
    assert s.list_affiliates("c") == [AffiliateView("peer", b"", (EP1,))]


def test_zero_ttl_is_accepted_and_expires_at_next_gc() -> None:
    # upstream validates only the upper bound of the TTL
    s = State()
    s.update_affiliate("c", "a", b"d", [EP1], 0.0, now=5.0)
    s.update_affiliate("c", "b", b"d", [], -3.0, now=5.0)
    assert len(s.list_affiliates("c")) == 2
    assert s.garbage_collect(5.0).expired_affiliates == 2


def test_empty_data_keeps_stored_data() -> None:
    s = State()
    s.update_affiliate("c", "a", b"d1", [], TTL, now=0.0)
    assert not s.update_affiliate("c", "a", b"", [], TTL, now=1.0)
    assert s.list_affiliates("c") == [AffiliateView("a", b"d1", ())]


def test_endpoints_merge_and_data_missing_keeps_data() -> None:
    s = State()
    s.update_affiliate("c", "a", b"d1", [EP1], TTL, now=0.0)
    s.update_affiliate("c", "a", None, [EP2, EP1], TTL, now=1.0)
    assert s.list_affiliates("c") == [AffiliateView("a", b"d1", (EP1, EP2))]


@pytest.mark.parametrize(
    "args, error",
    [
        (("", "a", b"", [], TTL), InvalidArgumentError),
        (("c" * 257, "a", b"", [], TTL), InvalidArgumentError),
        (("c", "", b"", [], TTL), InvalidArgumentError),
        (("c", "a" * 257, b"", [], TTL), InvalidArgumentError),
        (("c", "a", b"x" * 2049, [], TTL), InvalidArgumentError),
        (("c", "a", b"", [b"e" * 33], TTL), InvalidArgumentError),
        (("c", "a", b"", [], 30 * 60 + 1), InvalidArgumentError),
        (("c", "a", b"", [bytes([i]) * 16 for i in range(65)], TTL), ResourceExhaustedError),
    ],
)
def test_limits_reject_and_change_nothing(
    args: tuple[str, str, bytes | None, list[bytes], float], error: type[Exception]
) -> None:
    s = State()
    s.update_affiliate("c", "a", b"old", [EP1], TTL, now=0.0)
    _, sub = s.subscribe("c")
    before = fingerprint(s)
    with pytest.raises(error):
        s.update_affiliate(*args, 1.0)
    assert fingerprint(s) == before
    assert not sub.pending


def test_limit_edges_are_accepted() -> None:
    s = State()
    s.update_affiliate("c" * 256, "a" * 256, b"x" * 2048, [b"e" * 32], 30 * 60.0, now=0.0)
    s.update_affiliate("c", "a", None, [bytes([i]) * 16 for i in range(64)], TTL, now=0.0)
    assert len(s.list_affiliates("c")[0].endpoints) == 64


def test_endpoint_limit_counts_merged_endpoints() -> None:
    s = State()
    s.update_affiliate("c", "a", None, [bytes([i]) * 16 for i in range(60)], TTL, now=0.0)
    before = fingerprint(s)
    with pytest.raises(ResourceExhaustedError):
        s.update_affiliate("c", "a", b"new", [bytes([i]) * 16 for i in range(55, 70)], TTL, now=0.0)
    assert fingerprint(s) == before
    # re-sending known endpoints is fine
    s.update_affiliate("c", "a", None, [bytes([i]) * 16 for i in range(64)], TTL, now=0.0)


def test_affiliates_per_cluster_limit() -> None:
    s = State()
    for i in range(limits.CLUSTER_AFFILIATES_MAX):
        s.update_affiliate("c", f"a{i}", b"", [], TTL, now=0.0)
    before = fingerprint(s)
    with pytest.raises(ResourceExhaustedError):
        s.update_affiliate("c", "one-too-many", b"", [], TTL, now=0.0)
    assert fingerprint(s) == before
    s.update_affiliate("c", "a0", b"update-existing", [], TTL, now=0.0)
    s.update_affiliate("other", "x", b"", [], TTL, now=0.0)  # other clusters unaffected


def test_ttl_expiry_and_gc() -> None:
    s = State()
    s.update_affiliate("c", "a", b"d", [EP1], 100.0, now=0.0)
    s.update_affiliate("c", "b", b"d", [], 300.0, now=0.0)
    assert s.garbage_collect(99.0).expired_affiliates == 0
    result = s.garbage_collect(100.0)
    assert result.expired_affiliates == 1
    assert [v.id for v in s.list_affiliates("c")] == ["b"]
    result = s.garbage_collect(300.0)
    assert (result.expired_affiliates, result.removed_clusters) == (1, 1)
    assert s.stats()["clusters"] == 0


def test_data_update_resets_expiry_endpoint_merge_only_extends() -> None:
    s = State()
    s.update_affiliate("c", "a", b"d", [], 1000.0, now=0.0)
    s.update_affiliate("c", "a", None, [EP1], 10.0, now=0.0)  # does not shorten
    s.garbage_collect(500.0)
    assert s.list_affiliates("c")
    s.update_affiliate("c", "a", b"d2", [], 10.0, now=500.0)  # data resets to now+ttl
    s.garbage_collect(511.0)
    assert s.list_affiliates("c") == []


def test_endpoint_only_updates_keep_affiliate_alive() -> None:
    s = State()
    s.update_affiliate("c", "a", b"d", [], 100.0, now=0.0)
    s.update_affiliate("c", "a", None, [EP1], 100.0, now=90.0)
    s.garbage_collect(150.0)
    assert s.list_affiliates("c") == [AffiliateView("a", b"d", (EP1,))]


def test_gc_endpoint_expiry_sends_updated_affiliate_not_deleted() -> None:
    # Documented deviation from upstream (spec §11.3).
    s = State()
    s.update_affiliate("c", "a", b"d", [EP1], 100.0, now=0.0)
    s.update_affiliate("c", "a", b"d", [EP2], 500.0, now=50.0)
    _, sub = s.subscribe("c")
    result = s.garbage_collect(200.0)
    assert (result.expired_affiliates, result.expired_endpoints) == (0, 1)
    assert sub.pop_all() == [Notification("a", AffiliateView("a", b"d", (EP2,)))]


def test_watch_notifications_and_delete() -> None:
    s = State()
    s.update_affiliate("c", "a", b"d", [], TTL, now=0.0)
    snap, sub = s.subscribe("c")
    assert snap == [AffiliateView("a", b"d", ())]
    assert not s.update_affiliate("c", "a", b"d", [], TTL, now=1.0)  # no visible change
    s.update_affiliate("c", "b", b"x", [], TTL, now=1.0)
    assert s.delete_affiliate("c", "a")
    assert not s.delete_affiliate("c", "a")
    assert sub.pop_all() == [
        Notification("b", AffiliateView("b", b"x", ())),
        Notification("a", None),
    ]
    s.unsubscribe(sub)
    s.update_affiliate("c", "z", b"x", [], TTL, now=1.0)
    assert not sub.pending


def test_subscription_overflow_marks_lost() -> None:
    s = State(watch_buffer=2)
    _, sub = s.subscribe("c")
    woken: list[int] = []
    sub.wake = lambda: woken.append(1)
    for i in range(3):
        s.update_affiliate("c", f"a{i}", b"d", [], TTL, now=0.0)
    assert sub.lost and not sub.pending
    assert woken


def test_gc_keeps_cluster_with_subscribers() -> None:
    s = State()
    _, sub = s.subscribe("c")
    s.garbage_collect(1e9)
    assert s.stats()["clusters"] == 1
    s.unsubscribe(sub)
    s.garbage_collect(1e9)
    assert s.stats()["clusters"] == 0


def test_cluster_isolation() -> None:
    s = State()
    s.update_affiliate("c1", "a", b"d", [], TTL, now=0.0)
    assert s.list_affiliates("c2") == []


# --- snapshots ------------------------------------------------------------------


def test_snapshot_round_trip_keeps_remaining_ttls() -> None:
    s = State()
    s.update_affiliate("c", "a", b"d", [EP1], 100.0, now=0.0)
    s.update_affiliate("c", "a", None, [EP2], 300.0, now=0.0)
    s.update_affiliate("c2", "b", b"x", [], 50.0, now=0.0)
    data = snapshot.encode_snapshot(s, now=10.0)
    restored = State()
    assert snapshot.load_snapshot(restored, data, now=1000.0, wall_now=0.0) == 2
    assert restored.list_affiliates("c") == [AffiliateView("a", b"d", (EP1, EP2))]
    # remaining TTL: a has max(100, 300) - 10 = 290 s left, EP1 90 s
    restored.garbage_collect(1000.0 + 91)
    assert restored.list_affiliates("c") == [AffiliateView("a", b"d", (EP2,))]
    assert restored.list_affiliates("c2") == []  # 40 s left, expired at +91
    restored.garbage_collect(1000.0 + 291)
    assert restored.list_affiliates("c") == []


def test_snapshot_deprecated_expiration_field() -> None:
    snap = storage_pb2.StateSnapshot()
    aff = snap.clusters.add(id="c").affiliates.add(id="a", data=b"d")
    aff.expiration.FromSeconds(1_000_100)
    ep = aff.endpoints.add(data=EP1)
    ep.expiration.FromSeconds(1_000_050)
    s = State()
    snapshot.load_snapshot(s, snap.SerializeToString(), now=0.0, wall_now=1_000_000.0)
    s.garbage_collect(51.0)
    assert s.list_affiliates("c") == [AffiliateView("a", b"d", ())]


def test_snapshot_skips_invalid_records() -> None:
    snap = storage_pb2.StateSnapshot()
    c = snap.clusters.add(id="c")
    c.affiliates.add(id="", data=b"d").ttl.FromSeconds(60)  # bad ID
    c.affiliates.add(id="big", data=b"x" * 5000).ttl.FromSeconds(60)  # oversized
    c.affiliates.add(id="old", data=b"x").ttl.FromSeconds(-5)  # expired
    c.affiliates.add(id="ok", data=b"x").ttl.FromSeconds(60)
    s = State()
    assert snapshot.load_snapshot(s, snap.SerializeToString(), 0.0, 0.0) == 1


def test_bad_snapshot_bytes() -> None:
    with pytest.raises(SnapshotError):
        snapshot.decode_snapshot(b"\xff\xff\xff", 0.0)


def test_snapshot_file_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.binpb"
    snapshot.write_snapshot_file(str(path), b"one")
    snapshot.write_snapshot_file(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["state.binpb"]
    assert snapshot.read_snapshot_file(str(tmp_path / "missing")) is None


# --- rate limiter -----------------------------------------------------------------


def test_rate_limiter_burst_then_rate() -> None:
    rl = RateLimiter(rate=10.0, burst=3)
    assert [rl.reserve("ip", 0.0, None) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.reserve("ip", 0.0, None) == pytest.approx(0.1)
    assert rl.reserve("ip", 0.0, None) == pytest.approx(0.2)
    assert rl.reserve("other", 0.0, None) == 0.0


def test_rate_limiter_refuses_past_deadline_without_consuming() -> None:
    rl = RateLimiter(rate=1.0, burst=1)
    assert rl.reserve("ip", 0.0, 0.5) == 0.0
    assert rl.reserve("ip", 0.0, 0.5) is None
    assert rl.reserve("ip", 0.0, 0.5) is None
    assert rl.reserve("ip", 1.0, 0.5) == 0.0  # refill; refusals did not consume


def test_rate_limiter_is_bounded() -> None:
    rl = RateLimiter(rate=1.0, burst=1, max_keys=4)
    for i in range(10):
        rl.reserve(f"ip{i}", 0.0, None)
        assert len(rl) <= 4
    rl.prune(100.0)
    assert len(rl) == 0


@given(st.binary(max_size=200))
def test_decode_snapshot_raises_only_snapshot_error(data: bytes) -> None:
    try:
        records = snapshot.decode_snapshot(data, 0.0)
    except SnapshotError:
        return
    State().restore(records, 0.0)  # whatever decodes, restoring stays within limits
