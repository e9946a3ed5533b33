"""kubespan.lock: one agent per state dir and per interface (flock; real files in a temporary directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubespan.lock import STATE_LOCK_FILE, AgentLock, AgentLocked, netns_id


def lock(tmp: Path, state: str = "state", ifname: str = "kubespan", create: bool = True) -> AgentLock:
    return AgentLock.acquire(str(tmp / state), ifname, create_state_dir=create, lock_dir=str(tmp / "run"))


def test_a_second_agent_for_the_same_state_dir_or_interface_is_refused(tmp_path: Path) -> None:
    with lock(tmp_path):
        assert (tmp_path / "state" / STATE_LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(AgentLocked) as same_iface:
            lock(tmp_path, state="other")
        assert same_iface.value.owner == os.getpid()
        assert str(same_iface.value) == (f"interface kubespan (in this network namespace) is in use by another "
                                         f"kubespan agent (pid {os.getpid()}); stop that one first")
        with pytest.raises(AgentLocked) as same_state:
            lock(tmp_path, ifname="other0")
        assert str(same_state.value).startswith(f"state dir {tmp_path / 'state'} is in use")
        # a refused agent took nothing: its own interface lock was given back
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [f"kubespan.netns-{netns_id()}.lock"]
    assert list((tmp_path / "run").iterdir()) == [] and not (tmp_path / "state" / STATE_LOCK_FILE).exists()
    with lock(tmp_path, state="other"):  # released: the next one may start
        pass


def test_a_stale_lock_file_of_a_dead_agent_is_taken(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / STATE_LOCK_FILE).write_text("999999\n")
    with lock(tmp_path):
        assert (tmp_path / "state" / STATE_LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_a_missing_state_dir_is_not_created_for_a_cleanup(tmp_path: Path) -> None:
    with lock(tmp_path, create=False):
        assert not (tmp_path / "state").exists()
        with pytest.raises(AgentLocked):
            lock(tmp_path, create=False)
    with lock(tmp_path, create=True):
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_release_is_idempotent(tmp_path: Path) -> None:
    held = lock(tmp_path)
    held.release()
    held.release()
    lock(tmp_path).release()
