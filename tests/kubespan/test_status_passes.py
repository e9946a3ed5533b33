"""kubespan.status_passes: which engine events ask for a status pass, coalescing, and the due-time timer.

The engine is a real wgpy ``Device`` pair on the in-memory wire (tests/wgsupport.py): its peer object is
what the sink receives.  The timer runs on the real clock with a boundary a tenth of a second ahead; the
waits are bounded, nothing asserts how long they took.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

from wgsupport import DevicePair

from kubespan.controller import FIRST_CONTACT_HOLD
from kubespan.discovery.protocol import Endpoint
from kubespan.peers import ENDPOINT_CONNECTION_TIMEOUT, PeerState, PeerStatus
from kubespan.status_passes import StatusPasses
from wgpy.events import Event


async def _wait_for(cond, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):  # at most ~10 s
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_handshakes_of_peers_not_up_ask_for_one_pass_and_up_peers_for_none() -> None:
    pair = DevicePair()
    pair.send_ip(pair.a, b"hello")
    pair.deliver()
    (peer,) = pair.a.device.peers()
    assert peer.endpoint is not None and peer.last_handshake_wall is not None
    key = peer.public_key.to_base64()
    statuses: dict[str, PeerStatus] = {}
    calls: list[str] = []

    async def main() -> None:
        async def run_pass(why: str) -> bool:
            calls.append(why)
            return True

        passes = StatusPasses(run_pass, lambda: statuses, "local-key")
        task = asyncio.create_task(passes.run())
        try:
            passes.engine_event(Event.KEEPALIVE_RECEIVED, peer, peer.endpoint)
            passes.engine_event(Event.KEYPAIR_CREATED, peer, None)
            assert passes.pending is None  # only a completed handshake can change a status
            passes.engine_event(Event.HANDSHAKE_COMPLETE, peer, None)
            passes.engine_event(Event.HANDSHAKE_COMPLETE, peer, None)
            assert passes.pending == "handshake"
            await _wait_for(lambda: calls == ["handshake"] and passes.pending is None, "the handshake pass")
            # up on the endpoint the handshake came from: a rekey changes nothing a status shows
            host, port = peer.endpoint
            statuses[key] = PeerStatus(state=PeerState.UP, endpoint=Endpoint(ipaddress.ip_address(host), port))
            passes.engine_event(Event.HANDSHAKE_COMPLETE, peer, None)
            assert passes.pending is None
            # ... but from another endpoint it is a roam to show
            statuses[key] = PeerStatus(state=PeerState.UP, endpoint=Endpoint(ipaddress.ip_address(host), port + 1))
            passes.engine_event(Event.HANDSHAKE_COMPLETE, peer, None)
            assert passes.pending == "handshake"
            await _wait_for(lambda: calls == ["handshake", "handshake"], "the roaming pass")
        finally:
            passes.stop()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_the_timer_asks_for_a_pass_at_the_next_boundary_and_stop_ends_it() -> None:
    endpoint = Endpoint(ipaddress.ip_address("192.0.2.9"), 51820)
    statuses: dict[str, PeerStatus] = {}
    calls: list[str] = []

    async def main() -> None:
        async def run_pass(why: str) -> bool:
            calls.append(why)
            statuses.clear()  # the pass moved the peer on: nothing more is due
            passes.arm()
            return True

        passes = StatusPasses(run_pass, lambda: statuses, "local-key")
        task = asyncio.create_task(passes.run())
        try:
            passes.arm()  # nothing known: nothing due, no pass
            await asyncio.sleep(0.2)
            assert calls == [] and passes.pending is None
            # an endpoint applied 14.9 s ago and no handshake: unknown -> down 0.1 s from now
            statuses["k"] = PeerStatus(last_used_endpoint=endpoint,
                                       last_endpoint_change=time.time() - ENDPOINT_CONNECTION_TIMEOUT + 0.1)
            passes.arm()
            await _wait_for(lambda: calls == ["timeout"], "the pass at the 15 s boundary")
        finally:
            passes.stop()
            await asyncio.wait_for(task, 5)
        assert task.done() and passes.pending is None

    asyncio.run(main())


def test_a_hold_that_ended_while_the_pass_applied_is_due_at_once() -> None:
    # the statuses were computed 0.1 s ago, inside the greater key's first-contact hold, which ended
    # 0.05 s ago (while the pass awaited netlink): counted from when they were computed, it is due now
    endpoint = Endpoint(ipaddress.ip_address("192.0.2.9"), 51820)
    calls: list[str] = []

    async def main() -> None:
        async def run_pass(why: str) -> bool:
            calls.append(why)
            return True

        now = time.time()
        statuses = {"a-smaller-key": PeerStatus(last_used_endpoint=endpoint,
                                                last_endpoint_change=now - FIRST_CONTACT_HOLD - 0.05)}
        passes = StatusPasses(run_pass, lambda: statuses, "z-greater-key")
        task = asyncio.create_task(passes.run())
        try:
            passes.arm()  # counted from now, the hold is over and the 15 s timeout is far: no pass soon
            await asyncio.sleep(0.3)
            assert calls == []
            passes.arm(now - 0.1)
            await _wait_for(lambda: calls == ["timeout"], "the pass for the hold's end")
        finally:
            passes.stop()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
