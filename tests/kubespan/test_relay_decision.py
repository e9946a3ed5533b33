"""kubespan.relay: the relay decision on a fake clock, against an in-memory WireGuard (what it reports and what
the pass writes back), plus the relay key and how a relayed status is shown, harvested and pushed."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubespan import relay, specs
from kubespan.controller import DesiredPeer, _harvest, diff_peers, next_statuses
from kubespan.discovery.protocol import Endpoint
from kubespan.peers import (
    ENDPOINT_CONNECTION_TIMEOUT, PEER_DOWN_INTERVAL, ObservedPeer, PeerSpec, PeerState, PeerStatus,
)

T0 = 1_700_000_000.0


def ep(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    return Endpoint(ipaddress.ip_address(host), int(port))


E1, E2 = ep("10.1.0.2:51820"), ep("100.64.1.2:51820")
R1_EP, R2_EP = ep("100.64.8.2:51820"), ep("100.64.9.2:51820")
TARGET = PeerSpec(public_key="P" * 43 + "=", address=None, allowed_ips=(), endpoints=(E1, E2), label="home-2",
                  node_id="n-p")
R1 = PeerSpec(public_key="A" * 43 + "=", address=None, allowed_ips=(), endpoints=(R1_EP,), label="public-1", relay=True,
              node_id="n-r1")
R2 = PeerSpec(public_key="B" * 43 + "=", address=None, allowed_ips=(), endpoints=(R2_EP,), label="public-2", relay=True,
              node_id="n-r2")
PLAIN = PeerSpec(public_key="C" * 43 + "=", address=None, allowed_ips=(), endpoints=(ep("100.64.7.2:51820"),),
                 label="plain")


class Mesh:
    """The statuses of one node and an in-memory WireGuard that takes the endpoints the passes write."""

    def __init__(self, peers: list[PeerSpec]) -> None:
        self.specs = peers
        self.now = T0
        self.statuses: dict[str, PeerStatus] = {}
        self.wg = {s.public_key: ObservedPeer(s.public_key, None, None, 0, 0) for s in peers}

    def handshake(self, spec: PeerSpec) -> None:
        self.wg[spec.public_key] = dataclasses.replace(self.wg[spec.public_key], last_handshake=self.now)

    def roam(self, spec: PeerSpec, endpoint: Endpoint, relayed: bool) -> None:
        """What wgpy does on an authenticated datagram from ``endpoint`` (a relay's when ``relayed``)."""
        self.wg[spec.public_key] = dataclasses.replace(self.wg[spec.public_key], endpoint=endpoint, relayed=relayed,
                                                       last_handshake=self.now)

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds
        self.statuses = next_statuses(self.specs, self.wg, self.statuses, self.now)
        for spec in self.specs:
            endpoint, relayed, probe = relay.wireguard_endpoint(self.statuses[spec.public_key])
            seen = self.wg[spec.public_key]
            if endpoint is not None:
                seen = dataclasses.replace(seen, endpoint=endpoint, relayed=relayed)
            self.wg[spec.public_key] = dataclasses.replace(seen, probe_endpoint=probe if seen.relayed else None)

    def run(self, seconds: int, *, keep_up: tuple[PeerSpec, ...] = ()) -> None:
        for _ in range(seconds):
            for spec in keep_up:
                self.handshake(spec)
            self.tick()

    def status(self, spec: PeerSpec) -> PeerStatus:
        return self.statuses[spec.public_key]


def mesh_with_relays(*relays: PeerSpec) -> Mesh:
    mesh = Mesh([TARGET, *relays, PLAIN])
    mesh.run(3, keep_up=(*relays, PLAIN))  # every relay up, reached directly
    return mesh


# --- the key -------------------------------------------------------------------------------


def test_relay_key_is_keyed_blake2s_of_the_context() -> None:
    secret = bytes(range(32))
    key = relay.relay_key(secret)
    assert key == hashlib.blake2s(b"kubespan relay v1", key=secret, digest_size=32).digest()
    assert len(key) == 32 and key != secret and relay.relay_key(bytes(32)) != key
    with pytest.raises(ValueError):
        relay.relay_key(b"short")


# --- candidates ----------------------------------------------------------------------------------


def test_candidates_are_up_relaying_directly_reached_peers_by_key() -> None:
    mesh = mesh_with_relays(R2, R1)
    assert [r.label for r in relay.candidates(mesh.specs, mesh.statuses, mesh.wg)] == ["public-1", "public-2"]
    assert relay.candidates(mesh.specs, mesh.statuses, mesh.wg)[0].endpoint == R1_EP
    # a relay that is itself relayed, or not up, is no candidate
    mesh.wg[R1.public_key] = dataclasses.replace(mesh.wg[R1.public_key], relayed=True)
    mesh.statuses[R2.public_key] = dataclasses.replace(mesh.status(R2), state=PeerState.DOWN)
    assert relay.candidates(mesh.specs, mesh.statuses, mesh.wg) == ()


# --- switching to a relay ----------------------------------------------------------------------------


def test_a_peer_down_on_every_endpoint_switches_to_the_first_relay() -> None:
    mesh = mesh_with_relays(R2, R1)
    seen = []
    for _ in range(60):
        mesh.run(1, keep_up=(R1, R2, PLAIN))
        seen.append(relay.status_text(mesh.status(TARGET)))
        if relay.relayed_via(mesh.status(TARGET)):
            break
    status = mesh.status(TARGET)
    assert relay.relayed_via(status) == "public-1"  # lowest key: both sides pick the same one
    # both announced endpoints had their Talos time first (about 15 s each), in order
    assert seen.index(str(E2)) > seen.index(str(E1)) and seen.count(str(E2)) == ENDPOINT_CONNECTION_TIMEOUT
    assert status.relay is not None and status.relay.tried == {E1, E2}
    assert status.state is PeerState.UNKNOWN and status.last_endpoint_change == mesh.now
    assert relay.wireguard_endpoint(status) == (R1_EP, True, status.relay.probe)
    assert mesh.wg[TARGET.public_key].relayed and mesh.wg[TARGET.public_key].endpoint == R1_EP
    assert specs.peer_status_spec(status)["endpoint"] == "relay:public-1"
    # a handshake through the relay: up, and it stays relayed
    mesh.run(1, keep_up=(R1, R2, PLAIN))
    mesh.handshake(TARGET)
    mesh.run(5, keep_up=(R1, R2, PLAIN))
    assert mesh.status(TARGET).state is PeerState.UP and relay.relayed_via(mesh.status(TARGET)) == "public-1"


def test_without_a_relay_the_talos_rotation_goes_on() -> None:
    mesh = mesh_with_relays()
    mesh.run(120, keep_up=(PLAIN,))
    status = mesh.status(TARGET)
    assert relay.relayed_via(status) is None and not mesh.wg[TARGET.public_key].relayed
    assert status.state is not PeerState.UP and status.last_used_endpoint in (E1, E2)
    assert relay.wireguard_endpoint(status)[1] is False


def test_an_up_peer_never_switches_and_being_up_forgets_what_was_tried() -> None:
    mesh = mesh_with_relays(R1)
    mesh.run(20, keep_up=(R1, PLAIN))  # E1 failed
    assert mesh.status(TARGET).relay is not None and mesh.status(TARGET).relay.tried == {E1}  # type: ignore[union-attr]
    mesh.run(60, keep_up=(R1, PLAIN, TARGET))  # up on E2
    status = mesh.status(TARGET)
    assert status.state is PeerState.UP and status.relay is not None and status.relay.tried == frozenset()
    assert relay.relayed_via(status) is None and status.endpoint == E2


# --- while relayed ----------------------------------------------------------------------------------------


def relayed_mesh(*relays: PeerSpec) -> Mesh:
    mesh = mesh_with_relays(*relays)
    for _ in range(80):
        mesh.run(1, keep_up=(*relays, PLAIN))
        if relay.relayed_via(mesh.status(TARGET)):
            break
    mesh.run(1, keep_up=(*relays, PLAIN))
    mesh.handshake(TARGET)
    mesh.run(1, keep_up=(*relays, PLAIN))
    assert mesh.status(TARGET).state is PeerState.UP
    return mesh


def test_the_direct_endpoints_are_probed_in_turn_while_relayed() -> None:
    mesh = relayed_mesh(R1)
    probes = []
    for _ in range(70):
        mesh.run(1, keep_up=(R1, PLAIN, TARGET))
        probes.append(mesh.wg[TARGET.public_key].probe_endpoint)
    assert set(probes) == {E1, E2}
    status = mesh.status(TARGET)
    assert status.relay is not None and status.relay.probe_since is not None
    assert relay.next_change(status, mesh.now) == status.relay.probe_since + relay.PROBE_INTERVAL
    assert relay.next_change(mesh.status(R1), mesh.now) is None  # a direct peer: nothing of ours pending
    changes = [i for i in range(1, len(probes)) if probes[i] != probes[i - 1]]
    assert len(changes) >= 3 and all(b - a == ENDPOINT_CONNECTION_TIMEOUT for a, b in zip(changes, changes[1:]))
    assert relay.relayed_via(mesh.status(TARGET)) == "public-1"


def test_a_probe_that_answers_takes_the_direct_path() -> None:
    mesh = relayed_mesh(R1)
    mesh.run(3, keep_up=(R1, PLAIN, TARGET))
    nat_mapping = ep("100.64.1.2:40000")  # wgpy roamed onto where the probe's answer came from
    mesh.roam(TARGET, nat_mapping, relayed=False)
    mesh.tick()
    status = mesh.status(TARGET)
    assert relay.relayed_via(status) is None and status.state is PeerState.UP and status.endpoint == nat_mapping
    assert relay.wireguard_endpoint(status) == (None, False, None)  # the roamed endpoint is kept
    assert specs.peer_status_spec(status)["endpoint"] == str(nat_mapping)
    # an announced endpoint that answers becomes the last used one (Talos re-pushes it from then on)
    mesh = relayed_mesh(R1)
    mesh.roam(TARGET, E2, relayed=False)
    mesh.tick()
    assert mesh.status(TARGET).last_used_endpoint == E2 and relay.wireguard_endpoint(mesh.status(TARGET)) == (
        E2, False, None)


def test_moved_onto_a_relay_by_the_other_side() -> None:
    mesh = mesh_with_relays(R1)
    mesh.run(5, keep_up=(R1, PLAIN))
    mesh.roam(TARGET, R1_EP, relayed=True)  # the other side switched first; wgpy followed it
    mesh.tick()
    status = mesh.status(TARGET)
    assert relay.relayed_via(status) == "public-1" and status.state is PeerState.UP
    assert relay.wireguard_endpoint(status)[:2] == (R1_EP, True)
    # a relay that is not one of our peers shows its address
    mesh.roam(TARGET, ep("100.64.200.2:51820"), relayed=True)
    mesh.tick()
    assert relay.status_text(mesh.status(TARGET)) == "relay:100.64.200.2:51820"


def test_a_relay_that_dies_gives_way_to_the_next_then_to_the_direct_rotation() -> None:
    mesh = relayed_mesh(R1, R2)
    mesh.run(int(PEER_DOWN_INTERVAL) + 5, keep_up=(R1, R2, PLAIN))  # no handshake through public-1 any more
    status = mesh.status(TARGET)
    assert relay.relayed_via(status) == "public-2" and mesh.wg[TARGET.public_key].endpoint == R2_EP
    assert status.relay is not None and [name for name, _ in status.relay.failed] == [R1.public_key]
    # the second one dies too: no relay left, back to Talos's rotation (a plain endpoint is written)
    mesh.run(40, keep_up=(R1, R2, PLAIN))
    status = mesh.status(TARGET)
    assert relay.relayed_via(status) is None and not mesh.wg[TARGET.public_key].relayed
    assert mesh.wg[TARGET.public_key].endpoint in (E1, E2)
    # once the failures are older than RELAY_RETRY_AFTER, relays are tried again
    again = set()
    for _ in range(int(relay.RELAY_RETRY_AFTER)):
        mesh.run(1, keep_up=(R1, R2, PLAIN))
        again.add(relay.relayed_via(mesh.status(TARGET)))
    assert "public-1" in again


# --- what the pass writes, shows and harvests ------------------------------------------------------------


def test_pushes_logs_and_harvest_of_a_relayed_peer() -> None:
    mesh = relayed_mesh(R1)
    status = mesh.status(TARGET)
    assert _harvest(mesh.specs, mesh.statuses) and all(h.public_key != TARGET.public_key
                                                        for h in _harvest(mesh.specs, mesh.statuses))
    desired = DesiredPeer(TARGET.public_key, bytes(32), R1_EP, (), relayed=True, probe_endpoint=E2)
    direct = dataclasses.replace(mesh.wg[TARGET.public_key], relayed=False, probe_endpoint=None)
    (change,) = diff_peers([desired], {TARGET.public_key: direct})
    assert change.reasons == (f"endpoint {R1_EP} -> relayed via {R1_EP}", f"probing {E2} directly")
    assert diff_peers([desired], {TARGET.public_key: dataclasses.replace(direct, relayed=True,
                                                                          probe_endpoint=E2)}) == []
    line = relay.describe_change(PeerStatus(), status)
    assert line is not None and line.startswith("relayed via public-1") and str(E1) in line
    assert relay.describe_change(status, status) is None


ENDPOINTS = st.sampled_from([None, E1, E2, R1_EP, R2_EP, ep("100.64.1.2:40000")])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), ENDPOINTS, st.booleans(), st.booleans()), max_size=40))
def test_any_sequence_of_observations_gives_a_consistent_status(
        steps: list[tuple[int, Endpoint | None, bool, bool]]) -> None:
    """Whatever WireGuard reports (roams, relayed flags, handshakes, time jumps), a pass never fails, a relayed
    status names where its frames go, and a peer WireGuard reports direct is never shown relayed after a pass."""
    mesh = mesh_with_relays(R1, R2)
    for seconds, endpoint, relayed, handshake in steps:
        if endpoint is not None:
            mesh.roam(TARGET, endpoint, relayed=relayed)
        if handshake:
            mesh.handshake(TARGET)
        reported = mesh.wg[TARGET.public_key]
        mesh.tick(seconds)
        status = mesh.status(TARGET)
        pushed, is_relayed, probe = relay.wireguard_endpoint(status)
        if is_relayed:
            assert pushed is not None and status.relay is not None and status.relay.address == pushed
            assert probe is None or probe in TARGET.endpoints
        if reported.relayed and relay.relayed_via(status) is None:
            assert pushed in TARGET.endpoints  # leaving the relay means writing a direct endpoint


def test_relay_true_with_no_relay_fails_loudly_before_anything_is_touched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kubespan.cli import main
    from kubespan.config import gen_config_documents

    docs = gen_config_documents("http://127.0.0.1:3000", legacy=False)
    next(d for d in docs if d["kind"] == "KubeSpanConfig")["relay"] = True
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    state = tmp_path / "state"
    code = main(["agent", "--config", str(path), "--no-relay", "--state-dir", str(state),
                 "--api-socket", str(tmp_path / "api.sock"), "--uapi-socket", "none"])
    err = capsys.readouterr().err
    assert code == 1 and err == "error: 'relay: true' in the config conflicts with --no-relay\n"
    assert not state.exists()


def test_log_lines_for_leaving_a_relay() -> None:
    relayed = PeerStatus(state=PeerState.UP, endpoint=R1_EP,
                         relay=relay.RelayState(via=R1.public_key, label="public-1", address=R1_EP))
    back = PeerStatus(state=PeerState.UP, endpoint=E2, relay=relay.RelayState())
    down = PeerStatus(state=PeerState.UNKNOWN, endpoint=E1, relay=relay.RelayState())
    moved = dataclasses.replace(relayed, relay=relay.RelayState(via=R2.public_key, label="public-2", address=R2_EP))
    assert relay.describe_change(relayed, back) == f"direct again on {E2} (relay public-1 no longer used)"
    assert relay.describe_change(relayed, down) == ("no answer through relay public-1 and no other relay is up: "
                                                    "back to the direct endpoints")
    assert relay.describe_change(relayed, moved) == "relayed via public-2 (no answer through relay public-1)"
