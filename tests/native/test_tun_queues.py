"""How many TUN queues the native plane asks for (``wgpy.io.fastpath.tun_queues``): one per CPU of
the affinity mask, capped; ``WGPY_TUN_QUEUES`` sets it, ``WGPY_TUN_MULTIQUEUE=0`` switches it off."""

from __future__ import annotations

import os

import pytest

from wgpy.io import fastpath


def test_follows_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WGPY_TUN_QUEUES", raising=False)
    monkeypatch.delenv("WGPY_TUN_MULTIQUEUE", raising=False)
    assert fastpath.tun_queues() == min(len(os.sched_getaffinity(0)), fastpath.MAX_QUEUES)


def test_off_switch_gives_one_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WGPY_TUN_MULTIQUEUE", "0")
    monkeypatch.setenv("WGPY_TUN_QUEUES", "4")
    assert fastpath.tun_queues() == 1


@pytest.mark.parametrize("value,want", [("1", 1), ("3", 3), ("8", 8), ("64", fastpath.MAX_QUEUES)])
def test_explicit_count_is_capped(monkeypatch: pytest.MonkeyPatch, value: str, want: int) -> None:
    monkeypatch.delenv("WGPY_TUN_MULTIQUEUE", raising=False)
    monkeypatch.setenv("WGPY_TUN_QUEUES", value)
    assert fastpath.tun_queues() == want


@pytest.mark.parametrize("value", ["0", "-2", "two", "", "1.5"])
def test_bad_count_fails_loudly(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.delenv("WGPY_TUN_MULTIQUEUE", raising=False)
    monkeypatch.setenv("WGPY_TUN_QUEUES", value)
    with pytest.raises(ValueError, match="WGPY_TUN_QUEUES"):
        fastpath.tun_queues()


def test_no_native_plane_means_one_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WGPY_FASTPATH", "0")
    monkeypatch.setenv("WGPY_TUN_QUEUES", "4")
    assert fastpath.tun_queues() == 1
