"""client.py against real in-process servers: convergence, isolation, expiry, redirect,
overflow re-watch, harvesting, undecryptable entries, delete on close (§3.4)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from discovery_support import SECRET, affiliate, client, endpoint, run, start, stub

from kubespan.discovery import protocol
from kubespan.discovery.client import DiscoveryClient, RemoteAffiliate, ServiceEndpoint
from kubespan.discovery.proto import cluster_pb2 as pb
from kubespan.discovery.state import State


def decrypted_view(c: DiscoveryClient) -> dict[str, RemoteAffiliate]:
    return c.affiliates()


def test_three_clients_converge_and_clusters_are_isolated() -> None:
    async def go() -> None:
        server = await start()
        nodes = [client(server, "cluster-1", f"n{i}") for i in range(1, 4)]
        other = client(server, "cluster-2", "x1")
        try:
            for i, c in enumerate(nodes, 1):
                c.set_local(affiliate(c.node_id, i), [endpoint(f"192.0.2.{i}:51820"), endpoint("[2001:db8::1]:51820")])
                await c.start()
            other.set_local(affiliate("x1", 9), [endpoint("192.0.2.9:51820")])
            await other.start()
            for c in nodes:
                others = {n.node_id for n in nodes} - {c.node_id}
                assert await c.wait_for(lambda c, o=others: set(c.affiliates()) == o, 10)  # type: ignore[misc]
            expected = {
                c.node_id: RemoteAffiliate(
                    affiliate(c.node_id, i),
                    (endpoint(f"192.0.2.{i}:51820"), endpoint("[2001:db8::1]:51820")),
                )
                for i, c in enumerate(nodes, 1)
            }
            for c in nodes:
                view = decrypted_view(c)
                assert view == {k: v for k, v in expected.items() if k != c.node_id}
                assert c.client_ip == ipaddress.ip_address("127.0.0.1")
            # the other cluster sees nothing of cluster-1
            assert await other.wait_for(lambda c: c.watching, 10)
            assert other.affiliates() == {}
            # a change is re-sent at once and reaches the peers
            assert nodes[0].set_local(affiliate("n1", 1, hostname="renamed"), [endpoint("192.0.2.1:51820")])
            assert not nodes[0].set_local(affiliate("n1", 1, hostname="renamed"), [endpoint("192.0.2.1:51820")])
            assert await nodes[1].wait_for(lambda c: c.affiliates()["n1"].affiliate.hostname == "renamed", 10)
        finally:
            for c in [*nodes, other]:
                await c.close()
            await server.stop()

    run(go())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttl_expiry_and_gc_reach_watchers() -> None:
    clock = FakeClock()

    async def go() -> None:
        server = await start(clock=clock, gc_interval=3600)
        short = client(server, "c", "short", ttl=60.0)
        long = client(server, "c", "long", ttl=600.0)
        try:
            for i, c in enumerate((short, long), 1):
                c.set_local(affiliate(c.node_id, i), [endpoint(f"192.0.2.{i}:51820")])
                await c.start()
            assert await long.wait_for(lambda c: "short" in c.affiliates(), 10)
            assert await short.wait_for(lambda c: "long" in c.affiliates(), 10)
            clock.now += 61
            result = server.state.garbage_collect(clock())
            assert result.expired_affiliates == 1
            assert await long.wait_for(lambda c: "short" not in c.affiliates(), 10)
            assert "long" in short.affiliates()
        finally:
            await short.close(delete=False)
            await long.close(delete=False)
            await server.stop()

    run(go())


def test_redirect_moves_client_to_second_server() -> None:
    async def go() -> None:
        target = await start()
        front = await start(redirect=f"127.0.0.1:{target.port}")
        a = client(front, "c", "a")
        b = client(target, "c", "b")
        try:
            for i, c in enumerate((a, b), 1):
                c.set_local(affiliate(c.node_id, i), [])
                await c.start()
            # seen b, and our own first refresh (sent after the Watch opened) is done
            assert await a.wait_for(lambda c: "b" in c.affiliates() and c.counters.refreshes >= 1, 10)
            assert a.current_endpoint.port == target.port
            assert a.counters.redirects >= 1
            assert front.state.stats()["affiliates"] == 0
            assert {v.id for v in target.state.list_affiliates("c")} == {"a", "b"}
        finally:
            await a.close()
            await b.close()
            await front.stop()
            await target.stop()

    run(go())


def test_watch_overflow_makes_client_rewatch_and_reconverge() -> None:
    async def go() -> None:
        server = await start(watch_buffer=1)
        watcher = client(server, "c", "watcher")
        try:
            watcher.set_local(affiliate("watcher", 1), [])
            await watcher.start()
            assert await watcher.wait_for(lambda c: c.watching, 10)
            now = server.config.clock()
            for i in range(5):  # a burst in one loop step overflows the 1-slot buffer
                blob = protocol.seal_affiliate(SECRET, affiliate(f"p{i}", i + 2), bytes(12))
                server.state.update_affiliate("c", f"p{i}", blob, [], 600.0, now)
            want = {f"p{i}" for i in range(5)}
            assert await watcher.wait_for(lambda c: set(c.affiliates()) == want, 10)
            assert watcher.counters.watch_errors >= 1
            assert server.state.stats()["subscriptions"] == 1
        finally:
            await watcher.close()
            await server.stop()

    run(go())


def test_observed_endpoints_are_published_per_peer() -> None:
    async def go() -> None:
        server = await start()
        a, b, c3 = (client(server, "c", n) for n in ("a", "b", "c"))
        try:
            for i, c in enumerate((a, b, c3), 1):
                c.set_local(affiliate(c.node_id, i), [endpoint(f"192.0.2.{i}:51820")])
                await c.start()
            assert await a.wait_for(lambda c: {"b", "c"} <= set(c.affiliates()), 10)
            a.set_observed_endpoints({"b": [endpoint("203.0.113.5:41000")], "a": [endpoint("1.2.3.4:1")]})
            want = (endpoint("192.0.2.2:51820"), endpoint("203.0.113.5:41000"))
            assert await c3.wait_for(
                lambda c: "b" in c.affiliates() and c.affiliates()["b"].endpoints == want, 10
            )
            # own ID is never sent as an observed peer
            assert not any(v.id == "a" and len(v.endpoints) > 1 for v in server.state.list_affiliates("c"))
        finally:
            for c in (a, b, c3):
                await c.close()
            await server.stop()

    run(go())


def test_undecryptable_and_empty_entries_are_dropped_and_counted() -> None:
    async def go() -> None:
        server = await start()
        c = client(server, "c", "me")
        channel, s = stub(server.port)
        try:
            c.set_local(affiliate("me", 1), [])
            await c.start()
            assert await c.wait_for(lambda c: c.watching, 10)
            good = protocol.seal_affiliate(SECRET, affiliate("good", 2), bytes(12))
            wrong_key = protocol.seal_affiliate(bytes(32), affiliate("evil", 3), bytes(12))
            ttl = pb.AffiliateUpdateRequest().ttl.__class__(seconds=600)
            for aff_id, data, eps in (
                ("bad", b"garbage-garbage-garbage-garbage", []),
                ("evil", wrong_key, []),
                ("empty", None, [protocol.seal_endpoint(SECRET, endpoint("192.0.2.7:1"))]),
                ("good", good, [b"\x00" * 16, protocol.seal_endpoint(SECRET, endpoint("192.0.2.8:2"))]),
            ):
                req = pb.AffiliateUpdateRequest(cluster_id="c", affiliate_id=aff_id, affiliate_endpoints=eps, ttl=ttl)
                if data is not None:
                    req.affiliate_data = data
                await s.AffiliateUpdate(req)
            assert await c.wait_for(lambda c: "good" in c.affiliates(), 10)
            assert set(c.affiliates()) == {"good"}
            assert c.affiliates()["good"].endpoints == (endpoint("192.0.2.8:2"),)
            assert c.counters.dropped_data == 2
            assert c.counters.dropped_endpoints == 1
        finally:
            await channel.close(None)
            await c.close()
            await server.stop()

    run(go())


def test_close_deletes_affiliate_and_peers_forget_it() -> None:
    async def go() -> None:
        server = await start()
        a, b = client(server, "c", "a"), client(server, "c", "b")
        try:
            for i, c in enumerate((a, b), 1):
                c.set_local(affiliate(c.node_id, i), [])
                await c.start()
            assert await b.wait_for(lambda c: "a" in c.affiliates(), 10)
            await a.close()
            assert await b.wait_for(lambda c: "a" not in c.affiliates(), 10)
            assert [v.id for v in server.state.list_affiliates("c")] == ["b"]
        finally:
            await b.close()
            await server.stop()

    run(go())


def test_reconnects_after_server_restart() -> None:
    async def go() -> None:
        state = State()
        from kubespan.discovery.service import serve
        from discovery_support import config

        server = await serve(config(), state)
        port = server.port
        a, b = client(server, "c", "a"), client(server, "c", "b")
        try:
            for i, c in enumerate((a, b), 1):
                c.set_local(affiliate(c.node_id, i), [])
                await c.start()
            assert await a.wait_for(lambda c: "b" in c.affiliates(), 10)
            await server.stop(grace=0)
            assert await a.wait_for(lambda c: c.counters.session_errors >= 1, 10)
            fresh = State()
            server = await serve(config(listen=f"127.0.0.1:{port}"), fresh)
            # both re-Hello, re-Watch and re-send into the empty server
            for _ in range(100):
                if {v.id for v in fresh.list_affiliates("c")} == {"a", "b"}:
                    break
                await asyncio.sleep(0.1)
            assert {v.id for v in fresh.list_affiliates("c")} == {"a", "b"}
            assert await a.wait_for(lambda c: "b" in c.affiliates() and c.watching, 15)
        finally:
            await a.close()
            await b.close()
            await server.stop()

    run(go())


def test_service_endpoint_parsing() -> None:
    assert ServiceEndpoint.parse("https://discovery.talos.dev/") == ServiceEndpoint("discovery.talos.dev", 443, False)
    assert ServiceEndpoint.parse("grpc://h:3000") == ServiceEndpoint("h", 3000, False)
    assert ServiceEndpoint.parse("http://h") == ServiceEndpoint("h", 80, True)
    assert ServiceEndpoint.parse("h:3000", insecure=True) == ServiceEndpoint("h", 3000, True)
    assert ServiceEndpoint.parse("[::1]:3000").target == "[::1]:3000"
    for bad in ("ftp://h", "nohost", "h:port"):
        with pytest.raises(ValueError):
            ServiceEndpoint.parse(bad)


def test_client_argument_validation() -> None:
    ep = ServiceEndpoint("127.0.0.1", 1, True)
    with pytest.raises(ValueError):
        DiscoveryClient(ep, "c", b"short", "n")
    with pytest.raises(Exception):
        DiscoveryClient(ep, "", SECRET, "n")
    with pytest.raises(Exception):
        DiscoveryClient(ep, "c", SECRET, "n", ttl=3600.0)


def test_backoff_sequence_is_bounded_and_reset() -> None:
    from kubespan.discovery.client import ClientTimers

    c = DiscoveryClient(ServiceEndpoint("127.0.0.1", 1, True), "c", SECRET, "n",
                        timers=ClientTimers(backoff_base=0.5, backoff_max=60.0, jitter=0.5),
                        uniform=lambda: 1.0)
    delays = [c._next_backoff() for _ in range(20)]
    assert delays[0] == pytest.approx(0.75)  # 0.5 * (1 + 0.5)
    assert delays[1] == pytest.approx(0.5 * 1.5 * 1.5)
    assert max(delays) == pytest.approx(90.0)  # 60 s cap, +50 % jitter
    asyncio.run(asyncio.sleep(0))


# --- discovery-client behaviour (siderolabs/discovery-client pkg/client/client.go) ---------


def test_undecryptable_update_keeps_the_previous_entry() -> None:
    """parseReply: a decryption or decode failure logs and ``continue``s; the old entry stays."""
    async def go() -> None:
        server = await start()
        c = client(server, "c", "me")
        channel, s = stub(server.port)
        ttl = pb.AffiliateUpdateRequest().ttl.__class__(seconds=600)
        try:
            c.set_local(affiliate("me", 1), [])
            await c.start()
            assert await c.wait_for(lambda c: c.watching, 10)
            good = protocol.seal_affiliate(SECRET, affiliate("b", 2), bytes(12))
            await s.AffiliateUpdate(pb.AffiliateUpdateRequest(
                cluster_id="c", affiliate_id="b", affiliate_data=good, ttl=ttl,
                affiliate_endpoints=[protocol.seal_endpoint(SECRET, endpoint("192.0.2.2:51820"))]))
            assert await c.wait_for(lambda c: "b" in c.affiliates(), 10)
            before = c.affiliates()["b"]
            for bad in (b"garbage-garbage-garbage-garbage", protocol.seal_affiliate(bytes(32), affiliate("b", 9),
                                                                                    bytes(12))):
                dropped = c.counters.dropped_data
                await s.AffiliateUpdate(pb.AffiliateUpdateRequest(cluster_id="c", affiliate_id="b",
                                                                  affiliate_data=bad, ttl=ttl))
                assert await c.wait_for(lambda c: c.counters.dropped_data == dropped + 1, 10)
                assert c.affiliates() == {"b": before}
            # a good update replaces it again; a delete removes it
            newer = protocol.seal_affiliate(SECRET, affiliate("b", 3), bytes(12))
            await s.AffiliateUpdate(pb.AffiliateUpdateRequest(cluster_id="c", affiliate_id="b",
                                                              affiliate_data=newer, ttl=ttl))
            assert await c.wait_for(lambda c: c.affiliates()["b"].affiliate == affiliate("b", 3), 10)
            await s.AffiliateDelete(pb.AffiliateDeleteRequest(cluster_id="c", affiliate_id="b"))
            assert await c.wait_for(lambda c: "b" not in c.affiliates(), 10)
        finally:
            await channel.close(None)
            await c.close()
            await server.stop()

    run(go())


def test_empty_data_update_keeps_the_previous_entry() -> None:
    """parseReply: ``len(affiliate.Data) == 0`` → skip (the server never sends this for a
    stored affiliate, so the watch message is applied directly)."""
    c = DiscoveryClient(ServiceEndpoint("127.0.0.1", 1, insecure=True), "c", SECRET, "me")
    good = protocol.seal_affiliate(SECRET, affiliate("b", 2), bytes(12))
    eps = [protocol.seal_endpoint(SECRET, endpoint("192.0.2.2:51820"))]
    c._apply(pb.Affiliate(id="b", data=good, endpoints=eps))
    before = c.affiliates()
    assert set(before) == {"b"}
    c._apply(pb.Affiliate(id="b", data=b"", endpoints=[protocol.seal_endpoint(SECRET, endpoint("192.0.2.9:1"))]))
    assert c.affiliates() == before
    c._apply(pb.Affiliate(id="new", data=b""))
    assert set(c.affiliates()) == {"b"} and c.counters.dropped_data == 0


def test_redirect_is_adopted_for_good_and_client_ip_recorded() -> None:
    """sendHello stores ``ClientIp`` before looking at ``Redirect``; Run replaces
    ``options.Endpoint`` and never goes back to the first endpoint."""
    async def go() -> None:
        closed = await start()
        dead_port = closed.port
        await closed.stop(grace=0)  # nothing listens on dead_port now
        front = await start(redirect=f"127.0.0.1:{dead_port}")
        a = client(front, "c", "a")
        try:
            a.set_local(affiliate("a", 1), [])
            await a.start()
            assert await a.wait_for(lambda c: c.counters.redirects == 1 and c.counters.session_errors >= 2, 10)
            assert a.client_ip == ipaddress.ip_address("127.0.0.1")
            assert a.current_endpoint.port == dead_port  # errors there do not send it back to the front
            assert a.counters.redirects == 1
            assert front.state.stats()["affiliates"] == 0
            # once a service listens on the adopted endpoint, the client meshes there
            target = await start(listen=f"127.0.0.1:{dead_port}")
            try:
                assert await a.wait_for(lambda c: c.watching and c.counters.refreshes >= 1, 15)
                assert {v.id for v in target.state.list_affiliates("c")} == {"a"}
            finally:
                await a.close()
                await target.stop()
        finally:
            await a.close()
            await front.stop()

    run(go())
