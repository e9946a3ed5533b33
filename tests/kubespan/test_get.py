"""``kubespan get`` against a real API socket (server in-process, fixture resources)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubespan import specs
from kubespan.affiliates import AffiliateSpec, Member
from kubespan.api import ApiInUse, ApiServer, answer
from kubespan.cli import main
from kubespan.controller import HarvestedEndpoint
from kubespan.discovery.protocol import ControlPlane, Endpoint
from kubespan.peers import PeerSpec, PeerState, PeerStatus
from kubespan.resources import (
    AFFILIATES, KUBESPAN_ENDPOINTS, KUBESPAN_IDENTITIES, KUBESPAN_PEER_SPECS, KUBESPAN_PEER_STATUSES, MEMBERS,
    NODE_IDENTITIES, ResourceStore, resolve_type,
)

from test_affiliates import identity

KEY_B = "ONEnP9UwQ+MeRf+WaQBTXN2fWKvx6ZVxfSfsUWb04ko="
EP_B = Endpoint(ipaddress.ip_address("10.0.0.2"), 51820)
T = 1_763_769_600.0  # 2025-11-22T00:00:00Z


def fixture_store() -> ResourceStore:
    store = ResourceStore()
    ident = identity()
    store.publish(KUBESPAN_IDENTITIES, {"local": specs.identity_spec(ident)})
    store.publish(NODE_IDENTITIES, {"local": specs.node_identity_spec(ident.node_id)})
    spec = PeerSpec(KEY_B, ipaddress.ip_address("fd00::2"), (ipaddress.ip_network("10.0.0.2/32"),
                    ipaddress.ip_network("fd00::2/128")), (EP_B,), "node-b", "b")
    store.publish(KUBESPAN_PEER_SPECS, {KEY_B: specs.peer_spec(spec)})
    status = PeerStatus(label="node-b", endpoint=EP_B, state=PeerState.DOWN, receive_bytes=1, transmit_bytes=2,
                        last_used_endpoint=EP_B, last_endpoint_change=T)
    store.publish(KUBESPAN_PEER_STATUSES, {KEY_B: specs.peer_status_spec(status)})
    # a second publish with a change bumps the version
    status = PeerStatus(label="node-b", endpoint=EP_B, state=PeerState.UP, receive_bytes=1234, transmit_bytes=5678,
                        last_handshake_time=T + 5, last_used_endpoint=EP_B, last_endpoint_change=T)
    store.publish(KUBESPAN_PEER_STATUSES, {KEY_B: specs.peer_status_spec(status)})
    store.publish(KUBESPAN_ENDPOINTS, {KEY_B: specs.endpoint_spec(HarvestedEndpoint(KEY_B, "b", EP_B))})
    aff = AffiliateSpec(node_id="b", addresses=(ipaddress.ip_address("10.0.0.2"),), hostname="host-b",
                        nodename="node-b", machine_type="worker", operating_system="Talos (v1.13.0)",
                        public_key=KEY_B, kubespan_address=ipaddress.ip_address("fd00::2"), endpoints=(EP_B,),
                        control_plane=ControlPlane(6443))
    store.publish(AFFILIATES, {"b": specs.affiliate_spec(aff)})
    member = Member("node-b", "b", aff.addresses, "host-b", "worker", "Talos (v1.13.0)", None)
    store.publish(MEMBERS, {"node-b": specs.member_spec(member)})
    return store


class ServerThread:
    """An ApiServer on its own event loop in a thread (the CLI client is blocking)."""

    def __init__(self, path: str, store: ResourceStore) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = ApiServer(path, store, "node-a")
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "run" / "agent.sock")
    with ServerThread(path, fixture_store()):
        yield path


def get(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["get", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_socket_permissions(api: str) -> None:
    assert stat.S_IMODE(os.stat(api).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(api)).st_mode) == 0o755


@pytest.mark.parametrize("name", ["peerstatuses", "peerstatus", "KubeSpanPeerStatuses", "kubespanpeerstatus",
                                  "KubeSpanPeerStatuses.kubespan.talos.dev"])
def test_peerstatuses_json_any_alias(api: str, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = get(capsys, name, "-o", "json", "--api-socket", api)
    assert code == 0
    items = json.loads(out)
    assert items == [{
        "metadata": {"namespace": "kubespan", "type": "KubeSpanPeerStatuses.kubespan.talos.dev", "id": KEY_B,
                     "version": 2},
        "spec": {"endpoint": "10.0.0.2:51820", "label": "node-b", "state": "up", "receiveBytes": 1234,
                 "transmitBytes": 5678, "lastHandshakeTime": "2025-11-22T00:00:05Z",
                 "lastUsedEndpoint": "10.0.0.2:51820", "lastEndpointChange": "2025-11-22T00:00:00Z"},
    }]


def test_peerstatuses_table(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = get(capsys, "peerstatuses", "--api-socket", api)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", "LABEL", "ENDPOINT", "STATE", "RX", "TX"]
    assert row.split() == ["node-a", "kubespan", "KubeSpanPeerStatus", KEY_B, "2", "node-b", "10.0.0.2:51820", "up",
                           "1234", "5678"]


TABLES = {
    "identities": (["ADDRESS", "PUBLICKEY"], ["KubeSpanIdentity", "local", "1", f"{identity().address}/128",
                                              identity().public_key.to_base64()]),
    "peerspecs": (["LABEL", "ENDPOINTS"], ["KubeSpanPeerSpec", KEY_B, "1", "node-b", "10.0.0.2:51820"]),
    "endpoints": (["ENDPOINT", "AFFILIATE", "ID"], ["KubeSpanEndpoint", KEY_B, "1", "10.0.0.2:51820", "b"]),
    "affiliates": (["HOSTNAME", "MACHINE", "TYPE", "ADDRESSES"], ["Affiliate", "b", "1", "host-b", "worker",
                                                                  "10.0.0.2"]),
    "members": (["HOSTNAME", "MACHINE", "TYPE", "OS", "ADDRESSES"], ["Member", "node-b", "1", "host-b", "worker",
                                                                     "Talos", "(v1.13.0)", "10.0.0.2"]),
    "nodeidentities": (["ID"], ["Identity", "local", "1", "local-node"]),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables(api: str, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = get(capsys, name, "-o", "table", "--api-socket", api)
    assert code == 0
    header, row = out.splitlines()
    columns, cells = TABLES[name]
    assert header.split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", *columns]
    rtype = resolve_type(name)
    assert rtype is not None
    assert row.split() == ["node-a", rtype.namespace, *cells]


@pytest.mark.parametrize("name", ["identities", "peerspecs", "peerstatuses", "endpoints", "affiliates", "members",
                                  "nodeidentities"])
def test_yaml_and_json_agree(api: str, capsys: pytest.CaptureFixture[str], name: str) -> None:
    _, out_json, _ = get(capsys, name, "-o", "json", "--api-socket", api)
    _, out_yaml, _ = get(capsys, name, "-o", "yaml", "--api-socket", api)
    from_json = json.loads(out_json)
    from_yaml = list(yaml.safe_load_all(out_yaml))
    assert len(from_json) == len(from_yaml) == 1
    assert from_yaml[0]["node"] == "node-a"
    assert {k: v for k, v in from_yaml[0].items() if k != "node"} == from_json[0]


def test_field_names(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = get(capsys, "peerspecs", "-o", "json", "--api-socket", api)
    assert json.loads(out)[0]["spec"] == {"address": "fd00::2", "allowedIPs": ["10.0.0.2/32", "fd00::2/128"],
                                          "endpoints": ["10.0.0.2:51820"], "label": "node-b"}
    _, out, _ = get(capsys, "identities", "-o", "json", "--api-socket", api)
    spec = json.loads(out)[0]["spec"]
    assert set(spec) == {"address", "subnet", "publicKey"}  # never the private key
    _, out, _ = get(capsys, "affiliates", "-o", "json", "--api-socket", api)
    aff = json.loads(out)[0]["spec"]
    assert aff["kubespan"]["publicKey"] == KEY_B and aff["controlPlane"] == {"port": 6443}
    assert aff["nodeId"] == "b" and aff["machineType"] == "worker"


def test_env_variable_names_the_socket(api: str, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESPAN_API_SOCKET", api)
    code, out, _ = get(capsys, "members", "-o", "json")
    assert code == 0 and json.loads(out)[0]["metadata"]["id"] == "node-b"


def test_no_agent_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "none.sock")
    code, out, err = get(capsys, "peerstatuses", "--api-socket", path)
    assert code == 1 and out == ""
    assert err == f"error: no kubespan agent is running (socket {path})\n"


def test_stale_socket_file_is_no_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    code, _, err = get(capsys, "identities", "--api-socket", path)
    assert code == 1 and "no kubespan agent is running" in err


def test_unknown_resource(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = get(capsys, "pods", "--api-socket", api)
    assert code == 1 and "unknown resource 'pods'" in err


def test_second_server_on_live_socket_refused(api: str) -> None:
    async def start() -> None:
        await ApiServer(api, ResourceStore(), "x").start()

    with pytest.raises(ApiInUse):
        asyncio.run(start())


def test_answer_rejects_bad_requests() -> None:
    store = fixture_store()
    assert "error" in answer(store, "n", b"not json\n")
    assert "error" in answer(store, "n", b'{"put": "x"}\n')
    assert "error" in answer(store, "n", b'{"get": "nothing"}\n')
    assert "error" in answer(store, "n", b"\xff\xfe\n")
    ok = answer(store, "n", b'{"get": "Members.cluster.talos.dev"}\n')
    assert ok["type"] == "Members.cluster.talos.dev" and len(ok["items"]) == 1


def test_store_versions() -> None:
    store = ResourceStore()
    store.publish(MEMBERS, {"a": {"x": 1}})
    store.publish(MEMBERS, {"a": {"x": 1}, "b": {"x": 2}})
    store.publish(MEMBERS, {"a": {"x": 3}, "b": {"x": 2}})
    assert [(r["metadata"]["id"], r["metadata"]["version"]) for r in store.list(MEMBERS)] == [("a", 2), ("b", 1)]
    store.publish(MEMBERS, {})
    assert store.list(MEMBERS) == []
