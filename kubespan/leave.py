"""Leaving the cluster: ``kubespan leave``, the counterpart of a Talos machine reset.

Contract (issue 15 item 2): stopping or restarting an agent is *not* leaving.
Talos deletes its affiliate from the discovery service only when the machine
is reset (``internal/app/machined/pkg/controllers/cluster/discovery_service.go``
calls ``DeleteLocalAffiliate`` only under ``MachineResetSignal``); a reboot
keeps it until its TTL, so the other nodes keep the peer (it goes down) and
take it back with the same identity when it returns.  Leaving is explicit:

- with the agent running, ``kubespan leave`` asks it over its API socket
  (``api.leave``); the agent deletes its affiliate from every discovery
  service, removes its identity files (``remove_state``), cleans up its link
  and routing as on any stop, and exits 0.  The command waits (bounded) until
  the agent's API socket is gone.
- with no agent answering, it takes the agent's locks (``kubespan.lock``: an
  agent that runs with another API socket makes it fail, changing nothing),
  reads the node ID from the state directory (never creating one), sends
  AffiliateDelete to every discovery service of the config and removes the
  identity files.  Without a node ID there is nothing to leave: an error,
  nothing changed.

The identity files go last, after the deletes were sent: a node that could not
reach a service still has its identity, and a second ``leave`` can retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from .api import AgentNotRunning
from .api import leave as ask_agent
from .config import load_config
from .controller import LINK_NAME
from .discovery.client import DiscoveryClient, ServiceEndpoint
from .errors import KubespanError
from .identity import load_or_create_node_id
from .lock import LOCK_DIR, AgentLock
from .resources import KUBESPAN_IDENTITY_FILE, NODE_IDENTITY_FILE

__all__ = ["STATE_FILES", "leave", "leave_offline", "leave_offline_async", "remove_state"]

STATE_FILES = (NODE_IDENTITY_FILE, KUBESPAN_IDENTITY_FILE)
SOCKET_GONE_TIMEOUT = 30.0


def remove_state(state_dir: str) -> list[str]:
    """Delete the node ID and KubeSpan key files in ``state_dir``; the paths removed."""
    removed = []
    for name in STATE_FILES:
        path = os.path.join(state_dir, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed


def _node_id(state_dir: str) -> str:
    path = os.path.join(state_dir, NODE_IDENTITY_FILE)
    if not os.path.exists(path):
        raise KubespanError(f"{path}: no node identity, so this node has nothing to leave")
    return load_or_create_node_id(state_dir)  # exists: only reads (and validates) it


async def _delete_everywhere(config_path: str, node_id: str) -> list[str]:
    config = load_config(config_path)
    if config.identity is None or not config.discovery_endpoints:
        raise KubespanError(f"{config_path}: no discovery service and cluster identity to leave from")
    failed = []
    for ep in config.discovery_endpoints:
        client = DiscoveryClient(ServiceEndpoint(ep.host, ep.port, ep.insecure), config.identity.cluster_id,
                                 config.identity.cluster_secret, node_id)
        if not await client.delete_affiliate():
            failed.append(ep.address)
    return failed


def leave_offline(config_path: str, state_dir: str) -> str:
    """Leave with no agent running; the node ID that left.  Raises ``KubespanError``."""
    return asyncio.run(leave_offline_async(config_path, state_dir))


async def leave_offline_async(config_path: str, state_dir: str, lock_dir: str = LOCK_DIR) -> str:
    """``leave_offline`` on the running event loop."""
    node_id = _node_id(state_dir)
    with AgentLock.acquire(state_dir, LINK_NAME, create_state_dir=False, lock_dir=lock_dir):
        failed = await _delete_everywhere(config_path, node_id)
        if failed:
            raise KubespanError(f"could not delete affiliate {node_id} from {', '.join(failed)}; identity kept, "
                                "run leave again")
        remove_state(state_dir)
    return node_id


def leave(api_socket: str, config_path: str | None, state_dir: str) -> str:
    """``kubespan leave``: through the running agent, else offline; a one-line report."""
    try:
        reply = ask_agent(api_socket)
    except AgentNotRunning:
        if config_path is None:
            raise KubespanError(f"no kubespan agent is running (socket {api_socket}); pass --config to leave "
                                "without it") from None
        return f"left the cluster: affiliate {leave_offline(config_path, state_dir)} deleted, identity removed"
    deadline = time.monotonic() + SOCKET_GONE_TIMEOUT
    while os.path.exists(api_socket) and time.monotonic() < deadline:
        time.sleep(0.1)
    if os.path.exists(api_socket):
        raise KubespanError(f"the agent left but has not exited after {SOCKET_GONE_TIMEOUT:g} s")
    failed = reply.get("failed") or []
    if failed:
        raise KubespanError(f"affiliate {reply.get('left')} could not be deleted from {', '.join(failed)}")
    return f"left the cluster: affiliate {reply.get('left')} deleted, identity removed"
