"""Endpoint cycling (kubespan.md §5 "Rotate endpoints").

Both nodes announce an unreachable endpoint first: an explicitly empty ``filters.endpoints`` drops every
address of their own, and ``extraAnnouncedEndpoints`` lists ``[unreachable, real]``.  Each side first
pushes ``endpoints[0]`` (state ``unknown``); with no handshake 15 s after that change the peer is down,
the manager rotates to the next endpoint (state ``unknown`` again, ``lastEndpointChange`` moves), and the
handshake on the real endpoint brings it ``up``.  Talos rotates in the same pass that finds the peer
down, so ``down`` is only visible when a pass does not rotate; the test checks the endpoint switch and its
timing through ``lastEndpointChange`` instead.  The router counts the handshakes sent to the
unreachable prefix, proving the first endpoint was really tried.
"""

from __future__ import annotations

import datetime
import time

import pytest

from lab.mesh import WG_PORT, Lab, wait_until

pytestmark = [pytest.mark.root]

ENDPOINT_CONNECTION_TIMEOUT = 15.0


def _when(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_unreachable_first_endpoint_rotates_to_the_real_one(lab: Lab) -> None:
    lab.start_discovery()
    a, b = lab.add_node("node-a"), lab.add_node("node-b")
    bad = {a.name: f"100.64.250.{a.index}:{WG_PORT}", b.name: f"100.64.250.{b.index}:{WG_PORT}"}
    good = {n.name: f"{n.addr}:{WG_PORT}" for n in (a, b)}
    for node in (a, b):
        lab.start_agent(node, lab.node_config(node, kubespan={"filters": {"endpoints": []}},
                                              extra_endpoints=[bad[node.name], good[node.name]]))

    samples: dict[str, list[tuple[float, dict]]] = {a.name: [], b.name: []}  # type: ignore[type-arg]

    def sample() -> bool:
        done = True
        for viewer, other in ((a, b), (b, a)):
            spec = lab.peer_statuses(viewer).get(other.name)
            if spec is not None:
                samples[viewer.name].append((time.monotonic(), spec))
            done = done and spec is not None and spec["state"] == "up"
        return done

    wait_until(sample, 120, "both peers up", interval=0.5)

    for viewer, other in ((a, b), (b, a)):
        series = [spec for _, spec in samples[viewer.name]]
        first, last = series[0], series[-1]
        assert first["lastUsedEndpoint"] == bad[other.name], first
        assert first["state"] in ("unknown", "down"), first
        assert last["state"] == "up" and last["endpoint"] == good[other.name], last
        # never up on the unreachable endpoint
        assert not any(s["state"] == "up" and s["endpoint"] == bad[other.name] for s in series)
        assert lab.peer_statuses(viewer)[other.name]["receiveBytes"] > 0

    # at least one side rotated by itself (the other may have roamed to the first handshake it received),
    # and only after the endpoint connection timeout of the first endpoint
    rotated = []
    for viewer, other in ((a, b), (b, a)):
        series = [spec for _, spec in samples[viewer.name]]
        firsts = [s for s in series if s["lastUsedEndpoint"] == bad[other.name]]
        seconds = [s for s in series if s["lastUsedEndpoint"] == good[other.name]]
        if seconds:
            waited = _when(seconds[0]["lastEndpointChange"]) - _when(firsts[0]["lastEndpointChange"])
            assert waited >= ENDPOINT_CONNECTION_TIMEOUT, (viewer.name, firsts[0], seconds[0])
            rotated.append(viewer.name)
    assert rotated, samples
    assert lab.counters()["unreachable"] > 0
    assert lab.ping(a, lab.kubespan_address(b), count=2)
