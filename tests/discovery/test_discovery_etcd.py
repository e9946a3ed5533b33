"""Discovery service replicas sharing a real etcd (Debian's etcd-server) on loopback.

Every replica is a real grpc.aio server; clients are real gRPC stubs.  What
one replica accepts, every other lists and streams to its watchers, in the
same order; deletes and expiries reach every watcher; etcd failures give
UNAVAILABLE and heal by themselves.  All waits are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.duration_pb2 import Duration

from kubespan.discovery.etcd import EtcdConfig
from kubespan.discovery.proto import cluster_pb2 as pb
from kubespan.discovery.rpc import ClusterStub
from kubespan.discovery.service import DiscoveryServer
from discovery_support import run, start, stub
from etcd_support import EtcdCluster, etcd1, etcd3  # noqa: F401 - fixtures

WAIT = 15.0


async def replica(cluster: EtcdCluster, endpoints: tuple[str, ...] | None = None, **kw: Any) -> DiscoveryServer:
    server = await start(etcd=EtcdConfig(endpoints or cluster.endpoints), **kw)
    try:
        assert server.etcd is not None
        await asyncio.wait_for(server.etcd.synced.wait(), WAIT)
    except BaseException:
        await server.stop(0)
        raise
    return server


def update(aid: str, data: bytes = b"d", eps: tuple[bytes, ...] = (), ttl: float = 60.0,
           cluster: str = "c") -> pb.AffiliateUpdateRequest:
    d = Duration()
    d.FromNanoseconds(int(ttl * 1e9))
    req = pb.AffiliateUpdateRequest(cluster_id=cluster, affiliate_id=aid, affiliate_endpoints=list(eps), ttl=d)
    if data:
        req.affiliate_data = data
    return req


class Replicas:
    """Running replicas with one channel and stub each; ``close`` stops all."""

    def __init__(self) -> None:
        self.servers: list[DiscoveryServer] = []
        self.channels: list[grpc.aio.Channel] = []
        self.stubs: list[ClusterStub] = []

    async def add(self, cluster: EtcdCluster, **kw: Any) -> ClusterStub:
        server = await replica(cluster, **kw)
        channel, s = stub(server.port)
        self.servers.append(server)
        self.channels.append(channel)
        self.stubs.append(s)
        return s

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)
        for server in self.servers:
            await server.stop(0)


async def next_event(watch: Any) -> pb.WatchResponse:
    msg = await asyncio.wait_for(watch.read(), WAIT)
    assert isinstance(msg, pb.WatchResponse)
    return msg


async def gather_ids(watch: Any, want: set[str]) -> set[str]:
    """The IDs a fresh watch reports, snapshot plus updates, until ``want`` are all present (bounded).

    A replica's Watch snapshot comes from its mirror, which may be a few
    milliseconds behind an update just made through another replica; that
    update then arrives as the first event instead.
    """
    seen: set[str] = set()
    for _ in range(100):
        msg = await next_event(watch)
        for aff in msg.affiliates:
            (seen.discard if msg.deleted else seen.add)(aff.id)
        if want <= seen:
            return seen
    raise AssertionError(f"saw {seen}, wanted {want}")


def event(msg: pb.WatchResponse) -> tuple[str, bytes, tuple[bytes, ...], bool]:
    (aff,) = msg.affiliates
    return aff.id, aff.data, tuple(aff.endpoints), msg.deleted


@contextlib.asynccontextmanager
async def replicas(cluster: EtcdCluster, n: int, **kw: Any) -> AsyncIterator[Replicas]:
    group = Replicas()
    try:
        for _ in range(n):
            await group.add(cluster, **kw)
        yield group
    finally:
        await group.close()


def test_update_through_one_replica_is_listed_and_watched_on_the_others(etcd1: EtcdCluster) -> None:
    async def go() -> None:
        await etcd1.wait_ready()
        async with replicas(etcd1, 3) as group:
            a, b, c = group.stubs
            watches = [s.Watch(pb.WatchRequest(cluster_id="c")) for s in (b, c)]
            for w in watches:
                assert (await next_event(w)).affiliates == []  # the (empty) snapshot first
            await a.AffiliateUpdate(update("n1", b"blob", (b"ep1",)))
            for s in group.stubs:
                listed = (await s.List(pb.ListRequest(cluster_id="c"))).affiliates
                assert [(x.id, x.data, list(x.endpoints)) for x in listed] == [("n1", b"blob", [b"ep1"])]
            for w in watches:
                assert event(await next_event(w)) == ("n1", b"blob", (b"ep1",), False)
            # an endpoint-only refresh through another replica merges (not replaces) and is streamed
            await b.AffiliateUpdate(update("n1", b"", (b"ep2",)))
            for w in watches:
                assert event(await next_event(w)) == ("n1", b"blob", (b"ep1", b"ep2"), False)
            # a refresh that changes nothing visible is stored but streams nothing; the delete is next
            await c.AffiliateUpdate(update("n1", b"blob", (b"ep1",)))
            await c.AffiliateDelete(pb.AffiliateDeleteRequest(cluster_id="c", affiliate_id="n1"))
            for w in watches:
                assert event(await next_event(w)) == ("n1", b"", (), True)
            for w in watches:
                w.cancel()

    run(go(), 60)


def test_every_replica_streams_the_same_order(etcd1: EtcdCluster) -> None:
    async def go() -> None:
        await etcd1.wait_ready()
        async with replicas(etcd1, 3) as group:
            watches = [s.Watch(pb.WatchRequest(cluster_id="c")) for s in group.stubs]
            for w in watches:
                await next_event(w)
            n = 30
            await asyncio.gather(*(group.stubs[i % 3].AffiliateUpdate(update(f"a{i % 7}", f"v{i}".encode()))
                                   for i in range(n)))
            seen = []
            for w in watches:
                stream = []
                while len(stream) < n:
                    stream.append(event(await next_event(w)))
                seen.append(stream)
                w.cancel()
            assert seen[0] == seen[1] == seen[2]
            final = {x.id: x.data for x in (await group.stubs[0].List(pb.ListRequest(cluster_id="c"))).affiliates}
            last = {}
            for aid, data, _, _ in seen[0]:
                last[aid] = data
            assert final == last

    run(go(), 60)


def test_limits_and_bad_input_are_the_in_memory_ones(etcd1: EtcdCluster) -> None:
    async def go() -> None:
        await etcd1.wait_ready()
        async with replicas(etcd1, 1) as group:
            (s,) = group.stubs
            for req, code in ((update("x" * 257), grpc.StatusCode.INVALID_ARGUMENT),
                              (update("n", b"d" * 2049), grpc.StatusCode.INVALID_ARGUMENT),
                              (update("n", ttl=31 * 60), grpc.StatusCode.INVALID_ARGUMENT),
                              (update("n", eps=(b"e" * 33,)), grpc.StatusCode.INVALID_ARGUMENT)):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await s.AffiliateUpdate(req)
                assert err.value.code() == code
            await s.AffiliateUpdate(update("n", eps=tuple(b"e%02d" % i for i in range(64))))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await s.AffiliateUpdate(update("n", eps=(b"one-more",)))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            (listed,) = (await s.List(pb.ListRequest(cluster_id="c"))).affiliates
            assert len(listed.endpoints) == 64
            # IDs with '/' and '%' stay inside their cluster
            await s.AffiliateUpdate(update("a/b%2F", cluster="c/x"))
            assert [x.id for x in (await s.List(pb.ListRequest(cluster_id="c/x"))).affiliates] == ["a/b%2F"]
            assert [x.id for x in (await s.List(pb.ListRequest(cluster_id="c"))).affiliates] == ["n"]

    run(go(), 60)


def test_expiry_by_gc_and_by_lease_reaches_every_replica(etcd1: EtcdCluster) -> None:
    async def go() -> None:
        await etcd1.wait_ready()
        async with replicas(etcd1, 2, gc_interval=0.2) as group:
            a, b = group.stubs
            watches = [s.Watch(pb.WatchRequest(cluster_id="c")) for s in group.stubs]
            for w in watches:
                await next_event(w)
            await a.AffiliateUpdate(update("short", b"d", (b"ep-long",), ttl=1.0))
            await b.AffiliateUpdate(update("short", b"", (b"ep-short",), ttl=0.5))
            await a.AffiliateUpdate(update("zero", b"z", ttl=0.0))
            for w in watches:
                got = [event(await next_event(w)) for _ in range(4)]
                # created, endpoint merged, zero-TTL one created and collected, short endpoint expired,
                # then the affiliate; interleaving of the two IDs is etcd's revision order
                assert ("short", b"d", (b"ep-long",), False) in got
                assert ("zero", b"z", (), False) in got
                assert ("zero", b"", (), True) in got
                rest = got + [event(await next_event(w)) for _ in range(2)]
                assert rest[-1] == ("short", b"", (), True)
                assert ("short", b"d", (b"ep-long",), False) in rest[-3:]  # ep-short expired first
                w.cancel()
            for s in group.stubs:
                assert (await s.List(pb.ListRequest(cluster_id="c"))).affiliates == []
        # no replica collects: the lease alone ends the key
        async with replicas(etcd1, 2, gc_interval=3600.0) as group:
            watches = [s.Watch(pb.WatchRequest(cluster_id="c")) for s in group.stubs]
            for w in watches:
                await next_event(w)
            await group.stubs[0].AffiliateUpdate(update("leased", b"d", ttl=1.0))
            for w in watches:
                assert event(await next_event(w)) == ("leased", b"d", (), False)
                assert event(await next_event(w)) == ("leased", b"", (), True)
                w.cancel()

    run(go(), 90)


def test_three_member_etcd_with_one_member_killed_keeps_serving(etcd3: EtcdCluster) -> None:
    async def go() -> None:
        await etcd3.wait_ready()
        async with replicas(etcd3, 2) as group:
            a, b = group.stubs
            watch = b.Watch(pb.WatchRequest(cluster_id="c"))
            await next_event(watch)
            await a.AffiliateUpdate(update("before"))
            assert event(await next_event(watch))[0] == "before"
            etcd3.kill("m0")  # every replica's first (current) endpoint
            await a.AffiliateUpdate(update("after"))  # fails over inside the call
            assert event(await next_event(watch))[0] == "after"  # the watch reopened, lost nothing
            listed = sorted(x.id for x in (await b.List(pb.ListRequest(cluster_id="c"))).affiliates)
            assert listed == ["after", "before"]
            late = a.Watch(pb.WatchRequest(cluster_id="c"))
            assert await gather_ids(late, {"after", "before"}) == {"after", "before"}
            for w in (watch, late):
                w.cancel()

    run(go(), 90)


def test_etcd_down_fails_fast_with_unavailable_and_recovers(etcd1: EtcdCluster) -> None:
    async def go() -> None:
        await etcd1.wait_ready()
        async with replicas(etcd1, 2) as group:
            a, b = group.stubs
            await a.AffiliateUpdate(update("kept", b"d", (b"ep",)))
            watch = b.Watch(pb.WatchRequest(cluster_id="c"))
            assert [x.id for x in (await next_event(watch)).affiliates] == ["kept"]
            etcd1.stop("m0")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await next_event(watch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            for call in (lambda s: s.AffiliateUpdate(update("new"), timeout=WAIT),
                         lambda s: s.List(pb.ListRequest(cluster_id="c"), timeout=WAIT),
                         lambda s: s.AffiliateDelete(pb.AffiliateDeleteRequest(cluster_id="c", affiliate_id="x"),
                                                     timeout=WAIT)):
                for s in group.stubs:
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await call(s)
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await next_event(b.Watch(pb.WatchRequest(cluster_id="c"), timeout=WAIT))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            etcd1.start("m0")
            await etcd1.wait_ready()
            for server in group.servers:  # each replica reloads by itself
                assert server.etcd is not None
                await asyncio.wait_for(server.etcd.synced.wait(), WAIT)
            await b.AffiliateUpdate(update("new"))
            again = a.Watch(pb.WatchRequest(cluster_id="c"))
            assert await gather_ids(again, {"kept", "new"}) == {"kept", "new"}
            again.cancel()

    run(go(), 90)


def test_replica_stopped_mid_watch_loses_nothing(etcd1: EtcdCluster) -> None:
    async def go() -> None:
        await etcd1.wait_ready()
        async with replicas(etcd1, 2) as group:
            a, b = group.stubs
            watch = a.Watch(pb.WatchRequest(cluster_id="c"))
            await next_event(watch)
            for i in range(5):
                await b.AffiliateUpdate(update(f"n{i}", eps=(b"e",)))
            await next_event(watch)
            await group.servers[0].stop(0)  # the watched replica goes away mid-stream
            with pytest.raises(grpc.aio.AioRpcError):
                for _ in range(10):
                    await next_event(watch)
            again = b.Watch(pb.WatchRequest(cluster_id="c"))
            snap = (await next_event(again)).affiliates
            assert sorted((x.id, tuple(x.endpoints)) for x in snap) == [(f"n{i}", (b"e",)) for i in range(5)]
            again.cancel()

    run(go(), 60)


OPS: list[tuple[str, Any]] = [
    ("update", update("n1", b"v1", (b"e1",))),
    ("update", update("n2", b"", ())),  # a new ID without data is created (and streamed)
    ("update", update("n1", b"", (b"e2",))),  # endpoint merge
    ("update", update("n1", b"v1", (b"e1", b"e2"))),  # nothing visible changes: no event
    ("update", update("n1", b"v2", ())),  # new data, endpoints kept
    ("delete", pb.AffiliateDeleteRequest(cluster_id="c", affiliate_id="nobody")),  # unknown: no event
    ("update", update("n2", b"w", (b"x",), cluster="other")),  # another cluster: not on this stream
    ("delete", pb.AffiliateDeleteRequest(cluster_id="c", affiliate_id="n2")),
    ("update", update("n3", b"v3", tuple(b"e%d" % i for i in range(3)))),
    ("delete", pb.AffiliateDeleteRequest(cluster_id="c", affiliate_id="n1")),
]


async def stream_of(s_write: ClusterStub, s_watch: ClusterStub, marker: str) -> list[tuple[Any, ...]]:
    """Apply OPS through ``s_write``; what a watcher on ``s_watch`` receives, up to a final marker update."""
    watch = s_watch.Watch(pb.WatchRequest(cluster_id="c"))
    got: list[tuple[Any, ...]] = [("snapshot", tuple(sorted(a.id for a in (await next_event(watch)).affiliates)))]
    for kind, req in OPS:
        if kind == "update":
            await s_write.AffiliateUpdate(req)
        else:
            await s_write.AffiliateDelete(req)
    await s_write.AffiliateUpdate(update(marker, b"end"))
    for _ in range(50):
        ev = event(await next_event(watch))
        if ev[0] == marker:
            break
        got.append(ev)
    watch.cancel()
    return got


def test_replica_streams_are_the_in_memory_services_streams(etcd1: EtcdCluster) -> None:
    """The same operations give byte-for-byte the same Watch events from an etcd replica (written
    through another replica) as from the single in-memory service."""

    async def go() -> None:
        await etcd1.wait_ready()
        memory = await start()
        channel, mem = stub(memory.port)
        try:
            expected = await stream_of(mem, mem, "zz-end")
        finally:
            await channel.close(None)
            await memory.stop(0)
        async with replicas(etcd1, 2) as group:
            a, b = group.stubs
            assert await stream_of(a, b, "zz-end") == expected
        assert expected[0] == ("snapshot", ()) and len(expected) == 8  # 7 events: 3 of OPS stream nothing

    run(go(), 60)
