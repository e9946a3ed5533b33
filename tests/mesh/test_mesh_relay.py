"""Relaying over time (our extension, ``kubespan.relay``): a relay that dies, and a direct path that appears.

Topology: ``relay-1`` and ``relay-2`` (``relay: true``) and the pair ``a``, ``b`` all sit on the internet, but the
router drops UDP between ``a`` and ``b`` (``block_pair``), so the pair can only talk through a relay.  The pair
uses the relay with the lowest public key (both sides pick the same one).  When that relay's agent stops, the
relayed path stops answering; within Talos's timeouts (a path is down 275 s after its last handshake) the pair
moves to the other relay.  When the block is lifted, the direct endpoints the pair keeps probing answer and both
sides leave the relay.
"""

from __future__ import annotations

import pytest

from lab.mesh import METRICS_ADDR, Lab, Node, wait_until
from kubespan.peers import PEER_DOWN_INTERVAL

pytestmark = [pytest.mark.root]


def _endpoint(lab: Lab, node: Node, peer: Node) -> str:
    status = lab.peer_statuses(node).get(peer.name, {})
    return str(status.get("endpoint", "")) if status.get("state") == "up" else ""


@pytest.mark.slow
def test_a_dead_relay_gives_way_to_another_and_a_later_direct_path_is_taken(lab: Lab) -> None:
    lab.start_discovery()
    relays = [lab.add_node("relay-1"), lab.add_node("relay-2")]
    a, b = lab.add_node("a"), lab.add_node("b")
    lab.block_pair(a, b)
    for node in relays:
        lab.start_agent(node, lab.node_config(node, kubespan={"relay": True}), extra_args=["--metrics-addr",
                                                                                          METRICS_ADDR])
    for node in (a, b):
        lab.start_agent(node)
    lab.wait_mesh([*relays, a, b], timeout=300)

    first = min(relays, key=lab.public_key)
    second = next(r for r in relays if r is not first)
    assert _endpoint(lab, a, b) == f"relay:{first.name}" and _endpoint(lab, b, a) == f"relay:{first.name}"
    assert lab.ping(a, lab.kubespan_address(b), count=2)

    # the relay in use dies: the pair moves to the other one (bounded by the Talos down interval)
    lab.stop_agent(first)
    wait_until(lambda: _endpoint(lab, a, b) == _endpoint(lab, b, a) == f"relay:{second.name}",
               PEER_DOWN_INTERVAL + 180, f"the pair to move to {second.name}\n{lab.describe([second, a, b])}",
               interval=2)
    assert lab.ping(a, lab.kubespan_address(b), count=2) and lab.ping(b, lab.kubespan_address(a), count=2)

    # a direct path appears: the probes answer and both sides leave the relay
    lab.unblock_pairs()
    wait_until(lambda: _endpoint(lab, a, b) == f"{b.addr}:51820" and _endpoint(lab, b, a) == f"{a.addr}:51820",
               180, f"the pair to go direct\n{lab.describe([a, b])}", interval=2)
    assert lab.ping(a, lab.kubespan_address(b), count=2) and lab.ping(b, lab.kubespan_address(a), count=2)
    # nothing of the pair crosses the relay any more
    forwarded = lab.metric(second, "wgpy_relay_frames_total", kind="forwarded")
    assert forwarded > 0
    t = lab.transfer(a, b, lab.kubespan_address(b), 200_000)
    assert t.ok, t
    assert lab.metric(second, "wgpy_relay_frames_total", kind="forwarded") == forwarded
