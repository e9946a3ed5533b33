"""kubespan.leave with no agent running: a real discovery service on loopback, real clients.

The affiliate a node published is deleted from the service and its identity files are removed; without
a node identity, or when the service cannot be reached, nothing is removed and the error says why.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import pytest

from kubespan.cli import main
from kubespan.errors import KubespanError
from kubespan.identity import load_identity
from kubespan.leave import STATE_FILES, leave_offline_async
from kubespan.lock import AgentLock, AgentLocked

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "discovery"))
from discovery_support import SECRET, affiliate, client, run, start  # noqa: E402

CLUSTER = "leave-test-cluster"
MAC = bytes.fromhex("2e1ab6538169")


def write_config(tmp: Path, port: int) -> str:
    path = tmp / "config.yaml"
    path.write_text(f"""apiVersion: v1alpha1
kind: KubeSpanConfig
enabled: true
---
apiVersion: v1alpha1
kind: DiscoveryServiceConfig
name: default
endpoint: http://127.0.0.1:{port}
---
apiVersion: v1alpha1
kind: DiscoveryIdentityConfig
clusterID: {CLUSTER}
clusterSecret: {base64.b64encode(SECRET).decode()}
""")
    return str(path)


async def _seen_by_other(server: object, node_id: str) -> bool:
    other = client(server, CLUSTER, "observer")  # type: ignore[arg-type]
    other.set_local(affiliate("observer", 9), ())
    await other.start()
    try:
        await other.wait_for(lambda c: node_id in c.affiliates(), 5.0)
        return node_id in other.affiliates()
    finally:
        await other.close(delete=True)


def test_leave_without_agent_deletes_the_affiliate_and_the_identity(tmp_path: Path) -> None:
    state = tmp_path / "state"
    node_id = load_identity(str(state), CLUSTER, mac=MAC).node_id

    async def scenario() -> tuple[bool, str, bool]:
        server = await start()
        try:
            node = client(server, CLUSTER, node_id)
            node.set_local(affiliate(node_id, 2), ())
            await node.start()
            assert await node.wait_for(lambda c: c.watching, 5.0)
            await node.close(delete=False)  # the agent stopped: stopping is not leaving
            before = await _seen_by_other(server, node_id)
            left = await leave_offline_async(write_config(tmp_path, server.port), str(state),
                                             lock_dir=str(tmp_path / "locks"))
            after = await _seen_by_other(server, node_id)
            return before, left, after
        finally:
            await server.stop()

    before, left, after = run(scenario())
    assert before and left == node_id and not after
    assert [p.name for p in state.iterdir() if p.name in STATE_FILES] == []


def test_leave_without_identity_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, 1)
    code = main(["leave", "--api-socket", str(tmp_path / "none.sock"), "--config", config,
                 "--state-dir", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert code == 1 and "no node identity" in err and err.count("\n") == 1


def test_leave_without_agent_or_config_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["leave", "--api-socket", str(tmp_path / "none.sock"), "--state-dir", str(tmp_path)])
    assert code == 1 and "pass --config" in capsys.readouterr().err


def test_unreachable_service_keeps_the_identity(tmp_path: Path) -> None:
    state = tmp_path / "state"
    load_identity(str(state), CLUSTER, mac=MAC)

    async def scenario() -> None:
        server = await start()
        port = server.port
        await server.stop()  # nothing listens on the port any more
        with pytest.raises(KubespanError, match="identity kept"):
            await leave_offline_async(write_config(tmp_path, port), str(state), lock_dir=str(tmp_path / "locks"))

    asyncio.run(asyncio.wait_for(scenario(), 30))
    assert sorted(p.name for p in state.iterdir()) == sorted(STATE_FILES)


def test_leave_refuses_next_to_an_agent_holding_the_state_dir(tmp_path: Path) -> None:
    # an agent that answers on another API socket still holds <state-dir>/agent.lock
    state = tmp_path / "state"
    load_identity(str(state), CLUSTER, mac=MAC)
    with AgentLock.acquire(str(state), "kubespan", lock_dir=str(tmp_path / "agent-locks")):
        with pytest.raises(AgentLocked, match="state dir"):
            run(leave_offline_async(write_config(tmp_path, 1), str(state), lock_dir=str(tmp_path / "locks")))
        assert sorted(p.name for p in state.iterdir() if p.name in STATE_FILES) == sorted(STATE_FILES)
