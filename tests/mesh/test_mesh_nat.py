"""Nodes behind masquerading NAT routers (kubespan.md §2 endpoint list, §5 harvesting, §10 NAT).

Topology: ``public`` sits on the internet; ``home-1`` and ``home-2`` each sit behind their own NAT router
(masquerade on the WAN link, unsolicited WAN traffic dropped like a home router).  Every node announces
its own addresses plus the public IP the discovery service saw (``Hello.client_ip``, here the NAT's WAN
address) with port 51820, and harvests the endpoints it observes (``harvestExtraEndpoints``).

What works and why:

- public ↔ home-N: the NATed node initiates to the public endpoint; the public node learns the NAT
  mapping by roaming; the 25 s keepalive keeps the mapping open.
- home-1 ↔ home-2 through *port-preserving* (endpoint-independent mapping) NATs: both nodes rotate onto
  the other's announced ``WAN:51820`` and keep sending handshakes; the first datagram each way opens the
  sender's NAT for the reply, so the pair comes up.  This is incidental simultaneous open, not hole
  punching: nothing coordinates timing; it works because masquerade keeps source port 51820 and the
  conntrack entry outlives one rotation (UDP unreplied timeout 30 s > the ~15 s per endpoint).

Behind *symmetric* NATs (``masquerade random``: a new port per destination) the NATed pair cannot reach each
other directly: the port a NAT used towards the public node (the harvested endpoint) is not the one it would
use towards the other NAT, and unsolicited datagrams are dropped.  Talos stays down there (kubespan.md §10: no
hole punching, no relay; only a static port forward announced with ``extraAnnouncedEndpoints`` fixes it), and
so do we without a relay.  With our relay extension (``relay: true`` on the public node, ``kubespan.relay``)
the pair comes up through the public node, which forwards only their ciphertext.
"""

from __future__ import annotations

import base64
import os
import time

import pytest

from kubespan.relay import relay_key
from lab.mesh import METRICS_ADDR, PYTHON, WG_PORT, Lab, Node
from wgpy import relayframe
from wgpy.keys import PublicKey

pytestmark = [pytest.mark.root]

METRICS = ["--metrics-addr", METRICS_ADDR]
SEND_UDP = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for _ in range(int(sys.argv[4])):\n s.sendto(bytes.fromhex(sys.argv[3]),(sys.argv[1],int(sys.argv[2])))\n")


def _nat_lab(lab: Lab, random_ports: bool, relay: bool = False,
             talos_node: bool = False) -> tuple[Node, Node, Node, Node | None]:
    lab.start_discovery()
    public = lab.add_node("public")
    talos = lab.add_node("talos") if talos_node else None
    homes = []
    for i in (1, 2):
        nat = lab.add_nat(f"nat-{i}", random_ports=random_ports)
        homes.append(lab.add_node(f"home-{i}", nat=nat))
    settings = {"harvestExtraEndpoints": True}
    lab.start_agent(public, lab.node_config(public, kubespan={**settings, "relay": relay}), extra_args=METRICS)
    if talos is not None:  # ignores the relay field and drops relay frames, as a Talos node
        lab.start_agent(talos, lab.node_config(talos, kubespan=settings), extra_args=["--no-relay"])
    for home in homes:
        lab.start_agent(home, lab.node_config(home, kubespan=settings), extra_args=METRICS)
    return public, homes[0], homes[1], talos

def test_nodes_behind_port_preserving_nat_mesh(lab: Lab) -> None:
    public, h1, h2, _ = _nat_lab(lab, random_ports=False)
    lab.wait_mesh([public, h1, h2], timeout=150)

    # the public node sees each home node at its NAT's WAN address (learned by roaming)
    seen = lab.peer_statuses(public)
    for home in (h1, h2):
        assert home.nat is not None
        assert seen[home.name]["endpoint"].split(":")[0] == home.nat.wan_addr, seen[home.name]
        # the home node announced its private address and the public IP discovery reported
        endpoints = {s["spec"]["label"]: s["spec"]["endpoints"] for s in lab.get(public, "peerspecs")}[home.name]
        assert f"{home.addr}:{WG_PORT}" in endpoints and f"{home.nat.wan_addr}:{WG_PORT}" in endpoints
    # the NATed pair talks over the WAN addresses
    assert lab.peer_statuses(h1)[h2.name]["endpoint"].split(":")[0] == h2.public_addr
    assert lab.peer_statuses(h2)[h1.name]["endpoint"].split(":")[0] == h1.public_addr
    # harvesting: the public node reports the endpoints it observes for the two NATed peers
    harvested = lab.get(public, "endpoints")
    assert {e["spec"]["endpoint"].split(":")[0] for e in harvested} >= {h1.public_addr, h2.public_addr}

    # through the mesh, a private address behind one NAT is reachable from behind the other
    assert lab.ping(h1, h2.addr, count=2)
    assert lab.ping(h2, lab.kubespan_address(h1), count=2)
    t = lab.transfer(h1, h2, lab.kubespan_address(h2), 1_000_000)
    assert t.ok, t
    assert lab.ping(public, h1.addr, count=2)


@pytest.mark.slow
def test_symmetric_nat_pair_stays_down_without_a_relay(lab: Lab) -> None:
    """Talos's behaviour (and ours with no member relaying): with per-destination random ports no pair of
    NATed nodes meshes."""
    public, h1, h2, _ = _nat_lab(lab, random_ports=True)
    lab.wait_mesh([public, h1], timeout=150)
    lab.wait_mesh([public, h2], timeout=60)
    # the endpoints the public node observes use the NATs' random ports, not 51820
    seen = lab.peer_statuses(public)
    assert seen[h1.name]["endpoint"] != f"{h1.public_addr}:{WG_PORT}" or seen[h2.name]["endpoint"] != \
        f"{h2.public_addr}:{WG_PORT}"
    # three full rotations over every candidate endpoint; a bounded observation, not a timing claim
    deadline = time.monotonic() + 60
    states, endpoints = set(), set()
    while time.monotonic() < deadline:
        for a, b in ((h1, h2), (h2, h1)):
            status = lab.peer_statuses(a)[b.name]
            states.add(status["state"])
            endpoints.add(status["endpoint"])
        time.sleep(1)
    assert "up" not in states, states
    assert not any(e.startswith("relay:") for e in endpoints), endpoints
    assert lab.peer_statuses(h1)[h2.name]["receiveBytes"] == 0
    assert not lab.ping(h1, lab.kubespan_address(h2), count=1, timeout=3)


def _pair_packets(lines: list[str], a: str, b: str) -> list[str]:
    return [line for line in lines if f" {a} > {b}" in line or f" {b} > {a}" in line
            or f" {a}." in line and f" {b}." in line]


def test_symmetric_nat_pair_comes_up_through_the_relay(lab: Lab) -> None:
    """The public node relays: the symmetric-NAT pair meshes through it, pings both ways, the relay's
    kubespan interface sees none of the pair's packets, a frame without the cluster's MAC is dropped and
    counted, and a Talos-shaped node (no relay field, no relay frames) meshes with everyone."""
    public, h1, h2, talos = _nat_lab(lab, random_ports=True, relay=True, talos_node=True)
    assert talos is not None
    everyone = [public, talos, h1, h2]
    lab.wait_mesh(everyone, timeout=300)

    # the pair is relayed through the public node (the only member that relays), both ways
    assert lab.peer_statuses(h1)[h2.name]["endpoint"] == f"relay:{public.name}"
    assert lab.peer_statuses(h2)[h1.name]["endpoint"] == f"relay:{public.name}"
    # everyone else is direct, and the Talos-shaped node relays nothing and is relayed by nobody
    for node in everyone:
        for label, status in lab.peer_statuses(node).items():
            if {node.name, label} != {h1.name, h2.name}:
                assert not status["endpoint"].startswith("relay:"), (node.name, label, status)
    announced = {a["spec"]["nodename"]: a["spec"].get("kubespan", {}).get("relay", False)
                 for a in lab.get(h1, "affiliates")}
    assert announced == {public.name: True, talos.name: False, h1.name: False, h2.name: False}

    # pings both ways through the relay; the relay's kubespan interface sees none of the pair's packets
    h1_ula, h2_ula = lab.kubespan_address(h1), lab.kubespan_address(h2)
    with lab.capture(public, "kubespan") as seen:
        assert lab.ping(h1, h2_ula, count=3)
        assert lab.ping(h2, h1_ula, count=3)
        assert lab.ping(h1, h2.addr, count=2)  # a private address behind the other NAT, routed into the mesh
        assert lab.ping(public, h1_ula, count=2)  # the control: the relay's own traffic with h1 is seen
    assert _pair_packets(seen.lines, lab.kubespan_address(public), h1_ula), seen.lines
    assert _pair_packets(seen.lines, h1_ula, h2_ula) == [] and _pair_packets(seen.lines, h1.addr, h2.addr) == []
    assert not [line for line in seen.lines if h2_ula in line or h2.addr in line], seen.lines
    t = lab.transfer(h1, h2, h2_ula, 200_000)
    assert t.ok, t

    # metrics: the relay forwarded frames; the pair counts relayed bytes for each other
    assert lab.metric(public, "wgpy_relay_forwarded_bytes_total") > 200_000
    for a, b in ((h1, h2), (h2, h1)):
        assert lab.metric(a, "kubespan_peer_relayed", label=b.name, relay=public.name) == 1
        for direction in ("receive", "transmit"):
            name = f"wgpy_peer_relayed_{direction}_bytes_total"
            assert lab.metric(a, name, public_key=lab.public_key(b)) > 0
            assert lab.metric(a, name, public_key=lab.public_key(public)) == 0

    # a frame without the cluster's MAC is dropped and counted; one with it (for nobody) is a no-route drop
    sender, receiver = PublicKey.from_base64(lab.public_key(h1)), PublicKey.from_base64(lab.public_key(h2))
    payload = bytes([4, 0, 0, 0]) + os.urandom(44)  # shaped like a transport message
    forged = relayframe.encode(os.urandom(32), sender, receiver, payload)
    good_key = relay_key(base64.b64decode(lab.cluster_secret))
    stranger = relayframe.encode(good_key, sender, PublicKey(os.urandom(32)), payload)
    before = {r: lab.metric(public, "wgpy_drops_total", reason=r) for r in ("relay-bad-mac", "relay-no-route")}
    lab.internet.run(PYTHON, "-c", SEND_UDP, public.addr, str(WG_PORT), forged.hex(), "5")
    lab.internet.run(PYTHON, "-c", SEND_UDP, public.addr, str(WG_PORT), stranger.hex(), "2")

    def counted() -> bool:
        return (lab.metric(public, "wgpy_drops_total", reason="relay-bad-mac") == before["relay-bad-mac"] + 5
                and lab.metric(public, "wgpy_drops_total", reason="relay-no-route") == before["relay-no-route"] + 2)

    deadline = time.monotonic() + 20
    while not counted() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert counted(), lab.metrics(public)
    # and the mesh is unaffected
    assert lab.ping(h2, h1_ula, count=2) and public.agent is not None and public.agent.alive()
