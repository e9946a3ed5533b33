"""``kubespan get`` against a real API socket (server in-process, fixture resources)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from kubespan import specs
from kubespan.affiliates import AffiliateSpec, Member
from kubespan.api import ApiInUse, ApiServer, answer
from kubespan.cli import main
from kubespan.get import json_stream
from kubespan.controller import HarvestedEndpoint
from kubespan.discovery.protocol import ControlPlane, Endpoint
from kubespan.peers import PeerSpec, PeerState, PeerStatus
from kubespan.resources import (
    AFFILIATES, CLUSTER_IDENTITIES, KUBESPAN_ENDPOINTS, KUBESPAN_IDENTITIES, KUBESPAN_PEER_SPECS,
    KUBESPAN_PEER_STATUSES, MEMBERS, AmbiguousResourceType, ResourceEvent, ResourceStore, ResourceType, resolve,
)

from test_affiliates import identity

T_ = TypeVar("T_")
KEY_B = "ONEnP9UwQ+MeRf+WaQBTXN2fWKvx6ZVxfSfsUWb04ko="
EP_B = Endpoint(ipaddress.ip_address("10.0.0.2"), 51820)
T = 1_763_769_600.0  # 2025-11-22T00:00:00Z


def fixture_store() -> ResourceStore:
    store = ResourceStore(clock=lambda: T)
    ident = identity()
    store.publish(KUBESPAN_IDENTITIES, {"local": specs.identity_spec(ident)})
    store.publish(CLUSTER_IDENTITIES, {"local": specs.node_identity_spec(ident.node_id)})
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

    def call(self, fn: Callable[[], T_]) -> T_:
        """Run ``fn`` on the server's loop (the store belongs to it) and wait for it."""
        async def run() -> T_:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

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


META_T = "2025-11-22T00:00:00Z"


@pytest.mark.parametrize("name", ["peerstatuses", "peerstatus", "KubeSpanPeerStatuses", "kubespanpeerstatus",
                                  "kubespanpeerstatuses.kubespan", "KubeSpanPeerStatuses.kubespan.talos.dev"])
def test_peerstatuses_json_any_alias(api: str, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = get(capsys, name, "-o", "json", "--api-socket", api)
    assert code == 0
    assert json_stream(out) == [{
        "node": "node-a",
        "metadata": {"namespace": "kubespan", "type": "KubeSpanPeerStatuses.kubespan.talos.dev", "id": KEY_B,
                     "version": 2, "owner": "kubespan.ManagerController", "phase": "running",
                     "created": META_T, "updated": META_T},
        "spec": {"endpoint": "10.0.0.2:51820", "label": "node-b", "state": "up", "receiveBytes": 1234,
                 "transmitBytes": 5678, "lastHandshakeTime": "2025-11-22T00:00:05Z",
                 "lastUsedEndpoint": "10.0.0.2:51820", "lastEndpointChange": "2025-11-22T00:00:00Z"},
    }]
    # json.go: one indented object per resource, keys sorted (Go's map encoding), 4-space indent
    assert out.startswith('{\n    "metadata": {\n        "created": ')


def test_json_is_a_stream_of_objects(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = get(capsys, "kubespanidentities", "-o", "json", "--api-socket", api)
    assert code == 0
    (one,) = json_stream(out)
    assert sorted(one) == ["metadata", "node", "spec"]


def test_peerstatuses_table(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = get(capsys, "peerstatuses", "--api-socket", api)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", "LABEL", "ENDPOINT", "STATE", "RX", "TX"]
    assert row.split() == ["node-a", "kubespan", "KubeSpanPeerStatus", KEY_B, "2", "node-b", "10.0.0.2:51820", "up",
                           "1234", "5678"]
    # tabwriter: each cell but the last padded to its column's width + 3
    assert header.index("NAMESPACE") == len("node-a") + 3 and row.index("kubespan") == len("node-a") + 3


TABLES = {
    "kubespanidentities": (["ADDRESS", "PUBLICKEY"], ["KubeSpanIdentity", "local", "1",
                                                      f"{identity().address}/128",
                                                      identity().public_key.to_base64()]),
    "peerspecs": (["LABEL", "ENDPOINTS"], ["KubeSpanPeerSpec", KEY_B, "1", "node-b", '["10.0.0.2:51820"]']),
    "endpoints": (["ENDPOINT", "AFFILIATE", "ID"], ["KubeSpanEndpoint", KEY_B, "1", "10.0.0.2:51820", "b"]),
    "affiliates": (["HOSTNAME", "MACHINE", "TYPE", "ADDRESSES"], ["Affiliate", "b", "1", "host-b", "worker",
                                                                  '["10.0.0.2"]']),
    "members": (["HOSTNAME", "MACHINE", "TYPE", "OS", "ADDRESSES"], ["Member", "node-b", "1", "host-b", "worker",
                                                                     "Talos", "(v1.13.0)", '["10.0.0.2"]']),
    "identities": (["ID"], ["Identity", "local", "1", "local-node"]),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables(api: str, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, _ = get(capsys, name, "-o", "table", "--api-socket", api)
    assert code == 0
    header, row = out.splitlines()
    columns, cells = TABLES[name]
    assert header.split() == ["NODE", "NAMESPACE", "TYPE", "ID", "VERSION", *columns]
    assert row.split() == ["node-a", resolve(name).namespace, *cells]


# The automatic aliases of cosi-project/runtime pkg/resource/meta/spec/resource_definition.go (Fill):
# the Talos definitions (pkg/machinery/resources/{kubespan,cluster}/*.go) declare no aliases of their own.
TALOS_ALIASES = {
    KUBESPAN_IDENTITIES: ["ksi", "ksis", "kubespanidentity", "kubespanidentities", "KubeSpanIdentities",
                          "kubespanidentities.kubespan", "kubespanidentities.kubespan.talos",
                          "KubeSpanIdentities.kubespan.talos.dev"],
    KUBESPAN_PEER_SPECS: ["kubespanpeerspec", "kubespanpeerspecs", "kubespanpeerspecs.kubespan"],
    KUBESPAN_PEER_STATUSES: ["kubespanpeerstatus", "KubeSpanPeerStatuses", "kubespanpeerstatuses.kubespan.talos"],
    KUBESPAN_ENDPOINTS: ["kse", "kses", "kubespanendpoint", "kubespanendpoints"],
    AFFILIATES: ["affiliate", "affiliates", "affiliates.cluster", "Affiliates.cluster.talos.dev"],
    MEMBERS: ["member", "members", "members.cluster.talos"],
    CLUSTER_IDENTITIES: ["identity", "identities", "Identities", "identities.cluster",
                         "Identities.cluster.talos.dev"],
}


@pytest.mark.parametrize("rtype", list(TALOS_ALIASES), ids=lambda t: t.name)
def test_talos_aliases_resolve(rtype: ResourceType) -> None:
    for alias in TALOS_ALIASES[rtype]:
        assert resolve(alias) is rtype, alias


def test_ksps_is_ambiguous_as_in_talos(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    """KubeSpanPeerSpecs and KubeSpanPeerStatuses both get ``ksps``; talosctl's
    ResolveResourceKind (pkg/machinery/client/resources.go) refuses to pick one."""
    with pytest.raises(AmbiguousResourceType) as err:
        resolve("KSPS")
    assert err.value.matches == (KUBESPAN_PEER_SPECS.type, KUBESPAN_PEER_STATUSES.type)
    code, out, err_text = get(capsys, "ksps", "--api-socket", api)
    assert code == 1 and out == "" and "is ambiguous" in err_text


@pytest.mark.parametrize("name", ["kubespanidentities", "peerspecs", "peerstatuses", "endpoints", "affiliates",
                                  "members", "identities"])
def test_yaml_and_json_agree(api: str, capsys: pytest.CaptureFixture[str], name: str) -> None:
    _, out_json, _ = get(capsys, name, "-o", "json", "--api-socket", api)
    _, out_yaml, _ = get(capsys, name, "-o", "yaml", "--api-socket", api)
    from_json = json_stream(out_json)
    from_yaml = [timestamps_as_text(d) for d in yaml.safe_load_all(out_yaml)]
    assert len(from_json) == len(from_yaml) == 1
    assert from_yaml == from_json


def timestamps_as_text(value: Any) -> Any:
    """go-yaml writes timestamps plain, so a YAML reader sees datetimes: back to RFC 3339."""
    if isinstance(value, dict):
        return {k: timestamps_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [timestamps_as_text(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def test_yaml_looks_like_talosctl(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = get(capsys, "members", "-o", "yaml", "--api-socket", api)
    assert code == 0
    assert out == textwrap.dedent(f"""\
        node: node-a
        metadata:
            namespace: cluster
            type: Members.cluster.talos.dev
            id: node-b
            version: 1
            owner: cluster.MemberController
            phase: running
            created: {META_T}
            updated: {META_T}
        spec:
            nodeId: b
            addresses:
                - 10.0.0.2
            hostname: host-b
            machineType: worker
            operatingSystem: Talos (v1.13.0)
        """)


def test_get_one_id(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = get(capsys, "kubespanpeerstatuses", KEY_B, "-o", "json", "--api-socket", api)
    assert code == 0 and [o["metadata"]["id"] for o in json_stream(out)] == [KEY_B]
    code, out, err = get(capsys, "members", "nope", "--api-socket", api)
    assert code == 1 and out == ""
    assert err == "error: resource Members.cluster.talos.dev(cluster/nope) doesn't exist\n"


def test_jsonpath_output(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = get(capsys, "peerspecs", "-o", "jsonpath={.spec.label}", "--api-socket", api)
    assert (code, out) == (0, "node-b\n")
    # lists print as indented JSON, text nodes are results of their own (talosctl jsonpath.go)
    code, out, _ = get(capsys, "peerspecs", "-o", "jsonpath=id={.metadata.id} {.spec.allowedIPs}",
                       "--api-socket", api)
    assert code == 0
    assert out == f'id=\n{KEY_B}\n \n[\n    "10.0.0.2/32",\n    "fd00::2/128"\n]\n'
    code, out, _ = get(capsys, "peerspecs", "-o", 'jsonpath={range .spec.endpoints[*]}{@}{end}',
                       "--api-socket", api)
    assert (code, out) == (0, "10.0.0.2:51820\n")
    code, out, err = get(capsys, "peerspecs", "-o", "jsonpath={.spec.nothing}", "--api-socket", api)
    assert code == 1 and err == "error: error finding result for jsonpath: nothing is not found\n"


@pytest.mark.parametrize("argv", [["-o", "xml"], ["-o", "jsonpath={.a"], ["-o", "jsonpath={end}"], ["a", "b", "c"],
                                  ["-w", "-x"]])
def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["get", "members", *argv])
    assert exc.value.code == 2
    _, err = capsys.readouterr()
    assert "usage:" in err and "Traceback" not in err


def test_field_names(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = get(capsys, "peerspecs", "-o", "json", "--api-socket", api)
    assert json_stream(out)[0]["spec"] == {"address": "fd00::2", "allowedIPs": ["10.0.0.2/32", "fd00::2/128"],
                                           "endpoints": ["10.0.0.2:51820"], "label": "node-b"}
    _, out, _ = get(capsys, "kubespanidentities", "-o", "json", "--api-socket", api)
    spec = json_stream(out)[0]["spec"]
    assert set(spec) == {"address", "subnet", "publicKey"}  # never the private key
    _, out, _ = get(capsys, "identities", "-o", "json", "--api-socket", api)
    assert json_stream(out)[0]["spec"] == {"nodeId": "local-node"}
    _, out, _ = get(capsys, "affiliates", "-o", "json", "--api-socket", api)
    aff = json_stream(out)[0]["spec"]
    assert aff["kubespan"]["publicKey"] == KEY_B and aff["controlPlane"] == {"port": 6443}
    assert aff["nodeId"] == "b" and aff["machineType"] == "worker"


def test_env_variable_names_the_socket(api: str, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESPAN_API_SOCKET", api)
    code, out, _ = get(capsys, "members", "-o", "json")
    assert code == 0 and json_stream(out)[0]["metadata"]["id"] == "node-b"


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
    assert code == 1 and err == "error: resource 'pods' is not registered\n"


def test_second_server_on_live_socket_refused(api: str) -> None:
    async def start() -> None:
        await ApiServer(api, ResourceStore(clock=lambda: T), "x").start()

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
    store = ResourceStore(clock=lambda: T)
    store.publish(MEMBERS, {"a": {"x": 1}})
    store.publish(MEMBERS, {"a": {"x": 1}, "b": {"x": 2}})
    store.publish(MEMBERS, {"a": {"x": 3}, "b": {"x": 2}})
    assert [(r["metadata"]["id"], r["metadata"]["version"]) for r in store.list(MEMBERS)] == [("a", 2), ("b", 1)]
    store.publish(MEMBERS, {})
    assert store.list(MEMBERS) == []


def test_store_events_and_metadata() -> None:
    now = [T]
    store = ResourceStore(clock=lambda: now[0])
    seen: list[tuple[str, str, int, str, str]] = []

    def record(ev: ResourceEvent) -> None:
        meta = ev.resource["metadata"]
        seen.append((ev.event, meta["id"], meta["version"], meta["created"], meta["updated"]))

    token = store.subscribe(record)
    assert [e.event for e in store.publish(MEMBERS, {"a": {"x": 1}, "b": {"x": 1}})] == ["created", "created"]
    now[0] = T + 61
    store.publish(MEMBERS, {"a": {"x": 2}, "b": {"x": 1}})
    store.publish(MEMBERS, {"b": {"x": 1}})
    store.unsubscribe(token)
    store.publish(MEMBERS, {})
    later = "2025-11-22T00:01:01Z"
    assert seen == [("created", "a", 1, META_T, META_T), ("created", "b", 1, META_T, META_T),
                    ("updated", "a", 2, META_T, later), ("destroyed", "a", 2, META_T, later)]
    assert store.list(MEMBERS) == []


# --- kubespan get -w: the real CLI in a subprocess against a real API socket ---------------------------


class Cli:
    """``kubespan get ...`` as a child process; output read with a deadline."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "kubespan", "get", *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = b""

    def read_until(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not predicate(self.out.decode()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; output so far: {self.out.decode()!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.out += chunk
        return self.out.decode()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ServerThread]]:
    path = str(tmp_path / "run" / "agent.sock")
    with ServerThread(path, fixture_store()) as server:
        yield path, server


def status_spec(state: PeerState, rx: int) -> dict[str, Any]:
    return specs.peer_status_spec(PeerStatus(label="node-b", endpoint=EP_B, state=state, receive_bytes=rx,
                                             transmit_bytes=2, last_used_endpoint=EP_B, last_endpoint_change=T))


def test_watch_table_prints_current_then_events(served: tuple[str, ServerThread]) -> None:
    path, server = served
    cli = Cli("peerstatuses", "-w", "--api-socket", path)
    try:
        out = cli.read_until(lambda o: o.count("\n") >= 2)
        header, first = out.splitlines()[:2]
        assert header.split() == ["NODE", "*", "NAMESPACE", "TYPE", "ID", "VERSION", "LABEL", "ENDPOINT", "STATE",
                                  "RX", "TX"]
        assert first.split() == ["node-a", "+", "kubespan", "KubeSpanPeerStatus", KEY_B, "2", "node-b",
                                 "10.0.0.2:51820", "up", "1234", "5678"]
        # table.go: created "+", destroyed "-", updated " " (a blank cell)
        server.call(lambda: server.server.store.publish(KUBESPAN_PEER_STATUSES, {KEY_B: status_spec(PeerState.DOWN, 7)}))
        out = cli.read_until(lambda o: o.count("\n") >= 3)
        updated = out.splitlines()[2]
        assert updated.startswith("node-a    " + " " * 3 + "kubespan")
        assert updated.split() == ["node-a", "kubespan", "KubeSpanPeerStatus", KEY_B, "3", "node-b",
                                   "10.0.0.2:51820", "down", "7", "2"]
        server.call(lambda: server.server.store.publish(KUBESPAN_PEER_STATUSES, {}))
        out = cli.read_until(lambda o: o.count("\n") >= 4)
        assert out.splitlines()[3].split()[:6] == ["node-a", "-", "kubespan", "KubeSpanPeerStatus", KEY_B, "3"]
        # other types do not show up in this watch
        server.call(lambda: server.server.store.publish(MEMBERS, {}))
        server.call(lambda: server.server.store.publish(KUBESPAN_PEER_STATUSES, {"k2": status_spec(PeerState.UP, 1)}))
        out = cli.read_until(lambda o: o.count("\n") >= 5)
        assert out.splitlines()[4].split()[:6] == ["node-a", "+", "kubespan", "KubeSpanPeerStatus", "k2", "1"]
        assert out.count("\n") == 5
    finally:
        assert cli.stop() == 0  # Ctrl-C ends a watch quietly, as talosctl
    assert server.call(lambda: server.server._watchers) == 0


def test_watch_json_and_one_id(served: tuple[str, ServerThread]) -> None:
    path, server = served
    cli = Cli("kubespanpeerstatuses", KEY_B, "-w", "-o", "json", "--api-socket", path)
    try:
        cli.read_until(lambda o: len(json_stream_or_partial(o)) >= 1)
        server.call(lambda: server.server.store.publish(
            KUBESPAN_PEER_STATUSES, {KEY_B: status_spec(PeerState.DOWN, 9), "other": status_spec(PeerState.UP, 1)}))
        server.call(lambda: server.server.store.publish(KUBESPAN_PEER_STATUSES, {"other": status_spec(PeerState.UP, 1)}))
        out = cli.read_until(lambda o: len(json_stream_or_partial(o)) >= 3)
        events = json_stream(out)
        assert [(e["event"], e["metadata"]["id"], e["metadata"]["version"]) for e in events] == [
            ("created", KEY_B, 2), ("updated", KEY_B, 3), ("destroyed", KEY_B, 3)]
        assert all(e["node"] == "node-a" for e in events)
    finally:
        assert cli.stop() == 0


def json_stream_or_partial(text: str) -> list[dict[str, Any]]:
    try:
        return json_stream(text)
    except ValueError:
        return []


def test_watch_ends_when_the_agent_stops(tmp_path: Path) -> None:
    path = str(tmp_path / "agent.sock")
    server = ServerThread(path, fixture_store()).__enter__()
    cli = Cli("members", "-w", "-o", "yaml", "--api-socket", path)
    try:
        cli.read_until(lambda o: "event: created" in o)
    finally:
        server.__exit__(None, None, None)
    try:
        assert cli.proc.wait(15) == 0
        out = cli.read_until(lambda o: False)  # the rest, up to EOF
    finally:
        cli.stop()
    assert out.startswith("node: node-a\nevent: created\nmetadata:\n")


def test_a_watch_ends_when_its_socket_is_shut_down(api: str) -> None:
    """``api.watch(on_open=)`` hands the caller the socket: another thread shuts it down to end the watch."""
    from kubespan.api import watch

    opened: list[socket.socket] = []
    events = watch(api, "kubespanpeerstatuses", on_open=opened.append)
    header = next(events)
    assert header.get("type") and len(opened) == 1
    timer = threading.Timer(0.2, opened[0].shutdown, (socket.SHUT_RDWR,))
    timer.start()
    try:
        rest = list(events)  # the current resources, "bootstrapped", then the end of the stream
    finally:
        timer.cancel()
    assert [e["event"] for e in rest] == ["created"] * (len(rest) - 1) + ["bootstrapped"]
    assert len(rest) > 1 and all("resource" in e for e in rest[:-1])
