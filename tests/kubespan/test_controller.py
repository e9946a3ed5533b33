"""kubespan.controller: the pure reconcile step (peers, statuses, routed set, harvesting, diff)."""

from __future__ import annotations

import dataclasses
import ipaddress

from kubespan.affiliates import AffiliateSpec
from kubespan.config import NodeConfig
from kubespan.controller import (
    CONTACT_WINDOW, FIRST_CONTACT_HOLD, KEEPALIVE, diff_peers, first_contact_hold_until, next_pass_due, next_statuses,
    observed_endpoints_by_node, peer_pass, reconcile, routed_set,
)
from kubespan.discovery.protocol import Endpoint
from kubespan.peers import ObservedPeer, PeerState, PeerStatus, next_state_change, status_changed

from test_affiliates import KS_IP, config, identity

T0 = 1_700_000_000.0
SUBNET = ipaddress.ip_network("fd7f:175a:b97c:5602::/64")


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def ep(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    return Endpoint(ip(host), int(port))


def peer(node_id: str, n: int, key: str) -> AffiliateSpec:
    return AffiliateSpec(
        node_id=node_id, nodename=f"node-{node_id}", public_key=key, addresses=(ip(f"10.0.0.{n}"),),
        kubespan_address=ip(f"fd7f:175a:b97c:5602::{n}"), additional_addresses=(net(f"10.244.{n}.0/24"),),
        endpoints=(ep(f"10.0.0.{n}:51820"),),
    )


AFFS = {"b": peer("b", 2, "key-b"), "c": peer("c", 3, "key-c")}


def run(cfg: NodeConfig, observed: dict[str, ObservedPeer] | None = None,
        statuses: dict[str, PeerStatus] | None = None, now: float = T0,
        affs: dict[str, AffiliateSpec] | None = None):  # type: ignore[no-untyped-def]
    return reconcile(cfg, identity(), None, AFFS if affs is None else affs, observed or {}, statuses or {}, now)


def test_desired_peers_psk_keepalive_allowed_ips_endpoint() -> None:
    cfg = config()
    d = run(cfg)
    assert [p.public_key for p in d.peers] == ["key-b", "key-c"]
    b = d.peers[0]
    assert cfg.identity is not None and b.preshared_key == cfg.identity.cluster_secret
    assert b.persistent_keepalive == KEEPALIVE == 25
    assert b.allowed_ips == (net("10.0.0.2/32"), net("10.244.2.0/24"), net("fd7f:175a:b97c:5602::2/128"))
    assert b.endpoint == ep("10.0.0.2:51820")  # first endpoint, device has none: pushed
    assert "preshared_key" not in repr(b)
    assert d.statuses["key-b"].state is PeerState.UNKNOWN and d.statuses["key-b"].label == "node-b"
    assert d.routing.address == ipaddress.IPv6Interface(f"{KS_IP}/64")
    assert d.routing.mtu == 1420


def test_local_node_never_a_peer() -> None:
    affs = dict(AFFS, **{"local-node": peer("local-node", 9, identity().public_key.to_base64())})
    d = run(config(), affs=affs)
    assert [p.public_key for p in d.peers] == ["key-b", "key-c"]


def test_reconcile_is_deterministic() -> None:
    cfg = config()
    observed = {"key-b": ObservedPeer("key-b", ep("10.0.0.2:51820"), T0 - 3, 5, 6)}
    assert run(cfg, observed) == run(cfg, observed)
    reordered = {"c": AFFS["c"], "b": AFFS["b"]}
    assert run(cfg, observed, affs=reordered) == run(cfg, observed)


def test_routed_set_force_routing_includes_down_peers() -> None:
    d = run(config())
    assert d.routing.routed == (net("10.0.0.2/31"), net("10.244.2.0/23"))  # ULAs are not in the set


def test_routed_set_bypass_only_up_peers() -> None:
    cfg = config("allowDownPeerBypass: true")
    assert run(cfg).routing.routed == ()  # nobody is up yet
    observed = {"key-b": ObservedPeer("key-b", ep("10.0.0.2:51820"), T0 - 1, 5, 6)}
    statuses = {"key-b": PeerStatus(label="node-b", endpoint=ep("10.0.0.2:51820"),
                                    last_used_endpoint=ep("10.0.0.2:51820"), last_endpoint_change=T0 - 10)}
    d = run(cfg, observed, statuses)
    assert d.statuses["key-b"].state is PeerState.UP
    assert d.routing.routed == (net("10.0.0.2/32"), net("10.244.2.0/24"))


def test_peer_pass_is_the_second_half_of_reconcile() -> None:
    cfg = config("allowDownPeerBypass: true")
    observed = {"key-b": ObservedPeer("key-b", ep("10.0.0.2:51820"), T0 - 3, 5, 6)}
    d = run(cfg, observed)
    p = peer_pass(cfg, identity(), d.peer_specs, observed, {}, T0)
    assert (p.statuses, p.peers, p.routing, p.harvested) == (d.statuses, d.peers, d.routing, d.harvested)
    assert next_statuses(d.peer_specs, observed, {}, T0) == d.statuses


def test_status_pass_follows_handshakes_and_timeouts_between_reconciles() -> None:
    """The agent's status pass (on a completed handshake, or at a peer's next state-table boundary): the same
    specs, fresh WireGuard stats, the clock moving on."""
    cfg = config("allowDownPeerBypass: true")
    d = run(cfg)                                        # the reconcile: both peers unknown, nothing routed
    specs, statuses = d.peer_specs, d.statuses
    assert d.routing.routed == ()
    # 0.5 s later node-b's handshake completes; the pass that event asks for sees it, no reconcile needed
    observed = {"key-b": ObservedPeer("key-b", ep("10.0.0.2:51820"), T0 + 0.5, 148, 92),
                "key-c": ObservedPeer("key-c", ep("10.0.0.3:51820"), None, 0, 148)}
    new = next_statuses(specs, observed, statuses, T0 + 1)
    assert status_changed(statuses["key-b"], new["key-b"]) and not status_changed(statuses["key-c"], new["key-c"])
    p = peer_pass(cfg, identity(), specs, observed, statuses, T0 + 1)
    assert p.statuses["key-b"].state is PeerState.UP and p.statuses["key-c"].state is PeerState.UNKNOWN
    assert p.routing.routed == (net("10.0.0.2/32"), net("10.244.2.0/24"))   # routing follows at once
    # node-c never answers: down at the pass its 15 s endpoint timeout asks for, still not routed
    boundary = next_state_change(p.statuses["key-c"], T0 + 1)
    assert boundary == T0 + 15
    later = peer_pass(cfg, identity(), specs, observed, p.statuses, boundary + 0.05)
    assert later.statuses["key-c"].state is PeerState.DOWN and status_changed(p.statuses["key-c"],
                                                                              later.statuses["key-c"])
    assert later.routing.routed == p.routing.routed


def test_routed_set_function_directly() -> None:
    from kubespan.peers import PeerSpec
    specs = [PeerSpec("k", None, (net("10.1.0.0/24"), net("fd7f:175a:b97c:5602::7/128"), net("2001:db8::/64")),
                      (), "x")]
    assert routed_set(specs, {}, True, SUBNET) == (net("10.1.0.0/24"), net("2001:db8::/64"))
    assert routed_set(specs, {"k": PeerStatus(state=PeerState.DOWN)}, False, SUBNET) == ()


def test_roamed_endpoint_not_pushed_and_no_diff() -> None:
    roamed = ep("198.51.100.9:40000")
    statuses = {"key-b": PeerStatus(label="node-b", endpoint=ep("10.0.0.2:51820"),
                                    last_used_endpoint=ep("10.0.0.2:51820"), last_endpoint_change=T0 - 10)}
    d = run(config(), statuses=statuses, observed={
        "key-b": ObservedPeer("key-b", roamed, T0 - 1, 1, 1,
                              (net("10.0.0.2/32"), net("10.244.2.0/24"), net("fd7f:175a:b97c:5602::2/128")))})
    b = d.peers[0]
    assert b.endpoint is None and d.statuses["key-b"].endpoint == roamed
    changes = {c.public_key: c for c in diff_peers(d.peers, {
        "key-b": ObservedPeer("key-b", roamed, T0 - 1, 1, 1, b.allowed_ips)})}
    assert "key-b" not in changes
    assert changes["key-c"].action == "add"


def test_diff_peers_update_and_remove() -> None:
    d = run(config())
    observed = {
        "key-b": ObservedPeer("key-b", None, None, 0, 0, (net("10.0.0.2/32"),)),
        "key-old": ObservedPeer("key-old", None, None, 0, 0, ()),
    }
    changes = {c.public_key: c for c in diff_peers(d.peers, observed)}
    assert changes["key-b"].action == "update"
    assert any("allowed IPs" in r for r in changes["key-b"].reasons)
    assert any("endpoint" in r for r in changes["key-b"].reasons)
    assert changes["key-c"].action == "add"
    assert changes["key-old"].action == "remove" and changes["key-old"].peer is None


def test_diff_peers_noop_when_in_sync() -> None:
    d = run(config())
    observed = {p.public_key: ObservedPeer(p.public_key, p.endpoint, None, 0, 0, p.allowed_ips) for p in d.peers}
    assert diff_peers(d.peers, observed) == []


def test_harvesting_only_up_peers_and_only_when_enabled() -> None:
    roamed = ep("198.51.100.9:40000")
    observed = {"key-b": ObservedPeer("key-b", roamed, T0 - 1, 1, 1),
                "key-c": ObservedPeer("key-c", ep("10.0.0.3:51820"), None, 0, 0)}
    statuses = {k: PeerStatus(endpoint=None, last_used_endpoint=ep(f"10.0.0.{n}:51820"),
                              last_endpoint_change=T0 - 100) for k, n in (("key-b", 2), ("key-c", 3))}
    assert run(config(), observed, statuses).harvested == ()
    d = run(config("harvestExtraEndpoints: true"), observed, statuses)
    assert [(h.public_key, h.affiliate_id, h.endpoint) for h in d.harvested] == [("key-b", "b", roamed)]
    assert observed_endpoints_by_node(d.harvested) == {"b": [roamed]}


def test_members_include_local_affiliate() -> None:
    local = AffiliateSpec(node_id="local-node", nodename="me")
    d = reconcile(config(), identity(), local, AFFS, {}, {}, T0)
    assert sorted(d.members) == ["me", "node-b", "node-c"]


def test_overlap_warning_surfaces() -> None:
    affs = {"b": peer("b", 2, "key-b"),
            "c": AffiliateSpec(node_id="c", nodename="node-c", public_key="key-c", addresses=(ip("10.0.0.2"),))}
    d = run(config(), affs=affs)
    assert len(d.warnings) == 1 and "overlap" in d.warnings[0]
    assert d.peers[1].allowed_ips == ()


def test_pure_modules_do_no_io() -> None:
    """peers/affiliates/controller/specs never import I/O, clock or RNG modules (style.md convention 1)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "kubespan"
    banned = {"asyncio", "socket", "time", "random", "secrets", "subprocess", "pyroute2", "grpc"}
    for name in ("peers.py", "affiliates.py", "controller.py", "specs.py"):
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = {node.module.split(".")[0]}
            else:
                continue
            assert not mods & banned, f"{name} imports {mods & banned}"


def test_first_contact_the_greater_key_holds_its_keepalive_until_a_handshake_or_the_hold_ends() -> None:
    cfg = config()
    local = identity().public_key.to_base64()
    lower = "A" * 43 + "="  # sorts before the local key: this node is the pair's greater key
    assert lower < local < "key-b"
    affs = {"a": peer("a", 4, lower), "b": AFFS["b"]}
    d = run(cfg, affs=affs)
    keepalive = {p.public_key: p.persistent_keepalive for p in d.peers}
    assert keepalive == {lower: 0, "key-b": KEEPALIVE}  # only towards the smaller key does this node wait
    hold = first_contact_hold_until(local, lower, d.statuses[lower])
    assert hold == T0 + FIRST_CONTACT_HOLD and first_contact_hold_until(local, "key-b", d.statuses["key-b"]) is None
    assert next_pass_due(local, d.statuses, T0) == hold  # before the 15 s endpoint timeout
    seen = {p.public_key: ObservedPeer(p.public_key, p.endpoint, None, 0, 0, p.allowed_ips, p.persistent_keepalive)
            for p in d.peers}
    assert diff_peers(d.peers, seen) == []
    # the hold ends without a handshake: the pass that was due turns the keepalive on (wgpy then initiates)
    later = peer_pass(cfg, identity(), d.peer_specs, seen, d.statuses, hold + 0.05)
    (change,) = diff_peers(later.peers, seen)
    assert (change.public_key, change.action, change.reasons) == (lower, "update", ("persistent keepalive 0 -> 25 s",))
    # or the other node's handshake completes first: keepalive back on at once, the hold is over
    answered = dict(seen, **{lower: dataclasses.replace(seen[lower], last_handshake=T0 + 0.5)})
    up = peer_pass(cfg, identity(), d.peer_specs, answered, d.statuses, T0 + 0.6)
    assert up.statuses[lower].state is PeerState.UP
    assert {p.public_key: p.persistent_keepalive for p in up.peers}[lower] == KEEPALIVE
    assert first_contact_hold_until(local, lower, up.statuses[lower]) is None


def test_first_contact_no_hold_when_the_other_node_already_tried() -> None:
    # the smaller key's initiation reached this node before it knew the key (wgpy dropped it and
    # remembered the claim): this node initiates at once instead of holding back
    cfg = config()
    local = identity().public_key.to_base64()
    lower = "A" * 43 + "="
    affs = {"a": peer("a", 4, lower), "b": AFFS["b"]}
    held = reconcile(cfg, identity(), None, affs, {}, {}, T0, {lower: T0 - CONTACT_WINDOW - 1})  # too long ago
    assert {p.public_key: p.persistent_keepalive for p in held.peers}[lower] == 0
    d = reconcile(cfg, identity(), None, affs, {}, {}, T0, {lower: T0 - 0.5})
    assert {p.public_key: p.persistent_keepalive for p in d.peers}[lower] == KEEPALIVE
    assert first_contact_hold_until(local, lower, d.statuses[lower], {lower: T0 - 0.5}) is None
    # later passes still see the same claim against the same endpoint change: no flapping back to 0
    seen = {p.public_key: ObservedPeer(p.public_key, p.endpoint, None, 0, 0, p.allowed_ips, p.persistent_keepalive)
            for p in d.peers}
    again = peer_pass(cfg, identity(), d.peer_specs, seen, d.statuses, T0 + 0.5, {lower: T0 - 0.5})
    assert diff_peers(again.peers, seen) == []
