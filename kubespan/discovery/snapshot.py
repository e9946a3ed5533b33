"""State snapshots of the discovery service (spec/kubespan.md §3.5).

Owns the mapping State <-> ``sidero.discovery.storage.StateSnapshot`` and the
snapshot file.  Encoding writes the remaining ``ttl`` of every affiliate and
endpoint; decoding uses ``ttl`` and falls back to the deprecated wall-clock
``expiration`` only when ``ttl`` is absent (``wall_now`` is passed in).  The
file is written atomically: temp file in the same directory, fsync,
``os.replace``, directory fsync; mode 0600.  Only client-encrypted blobs are
ever stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError

from kubespan.discovery.errors import SnapshotError
from kubespan.discovery.proto import storage_pb2 as spb
from kubespan.discovery.state import AffiliateRecord, EndpointRecord, State


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def encode_snapshot(state: State, now: float) -> bytes:
    """Serialize every live affiliate of ``state`` with remaining TTLs."""
    snap = spb.StateSnapshot()
    for cluster_id, records in state.export(now).items():
        cluster = snap.clusters.add(id=cluster_id)
        for rec in records:
            aff = cluster.affiliates.add(id=rec.id, data=rec.data, ttl=_duration(rec.ttl))
            for ep in rec.endpoints:
                aff.endpoints.add(data=ep.data, ttl=_duration(ep.ttl))
    return snap.SerializeToString()


def _remaining(msg: spb.AffiliateSnapshot | spb.EndpointSnapshot, wall_now: float) -> float:
    if msg.HasField("ttl"):
        return float(msg.ttl.ToNanoseconds()) / 1e9
    if msg.HasField("expiration"):
        return float(msg.expiration.ToNanoseconds()) / 1e9 - wall_now
    return 0.0


def decode_snapshot(data: bytes, wall_now: float) -> list[tuple[str, list[AffiliateRecord]]]:
    """Parse snapshot bytes into records; raises ``SnapshotError`` if malformed."""
    snap = spb.StateSnapshot()
    try:
        snap.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise SnapshotError("snapshot is not a valid StateSnapshot") from exc
    return [(c.id, list(_records(c, wall_now))) for c in snap.clusters]


def _records(cluster: spb.ClusterSnapshot, wall_now: float) -> Iterator[AffiliateRecord]:
    for aff in cluster.affiliates:
        endpoints = tuple(
            EndpointRecord(ep.data, _remaining(ep, wall_now)) for ep in aff.endpoints
        )
        yield AffiliateRecord(aff.id, aff.data, _remaining(aff, wall_now), endpoints)


def load_snapshot(state: State, data: bytes, now: float, wall_now: float) -> int:
    """Restore ``state`` from snapshot bytes; returns the affiliates loaded."""
    return state.restore(decode_snapshot(data, wall_now), now)


def write_snapshot_file(path: str, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_snapshot_file(path: str) -> bytes | None:
    """The snapshot bytes, or None when the file does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
