"""systemd readiness (``Type=notify``): ``wgpy.io.sdnotify`` and the three processes that use it.

Each process runs for real against a fake ``NOTIFY_SOCKET`` (a unix datagram
socket the test owns, see ``deploy_support``): the wgpy daemon in the
foreground and daemonized (the child names itself ``MAINPID``), the kubespan
agent (ready once its interface is configured and its API socket serves) and
the discovery service (ready once it listens).  The sender's pid comes from
``SCM_CREDENTIALS``, so the test knows which process said ``READY=1``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from deploy_support import PYTHON, alive, env, kill_pid, netns, notify_socket, popen, sh, stop
from kubespan.config import render_gen_config
from kubespan.get import json_stream
from wgpy.io import sdnotify
from wgpy.io.unixsock import is_live

SOCK_DIR = Path("/var/run/wireguard")


# --- the module ------------------------------------------------------------------------------


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_reaches_the_notify_socket(abstract: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with notify_socket(None if abstract else tmp_path / "notify") as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", sock.name)
        assert sdnotify.ready("serving", main_pid=True)
        fields, pid = sock.receive(None, timeout=10)
    assert fields == {"READY": "1", "STATUS": "serving", "MAINPID": str(os.getpid())}
    assert pid == os.getpid()


def test_no_socket_or_a_bad_one_is_a_false_never_an_exception(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    for name in (str(tmp_path / "nobody-listens"), "relative/path", "@", "vsock:2:1234", str(tmp_path)):
        monkeypatch.setenv("NOTIFY_SOCKET", name)
        assert sdnotify.ready() is False, name
    with notify_socket(tmp_path / "notify") as sock:  # a later good socket still works
        monkeypatch.setenv("NOTIFY_SOCKET", sock.name)
        assert sdnotify.notify({"STATUS": "x"}) is True
        assert sock.receive(None, timeout=10)[0] == {"STATUS": "x"}


# --- the wgpy daemon ---------------------------------------------------------------------------


@pytest.mark.root
def test_wgpy_foreground_daemon_notifies_once_its_uapi_socket_serves(tmp_path: Path) -> None:
    with netns("h6n") as ns, notify_socket(tmp_path / "notify") as sock:
        name = f"wgn{os.urandom(3).hex()}"
        proc = popen(["ip", "netns", "exec", ns, PYTHON, "-m", "wgpy", "-f", name], tmp_path / "wgpy.log",
                     env(NOTIFY_SOCKET=sock.name, LOG_LEVEL="verbose"))
        try:
            fields, pid = sock.receive(proc)
            assert pid == proc.pid and fields["READY"] == "1" and "MAINPID" not in fields, fields
            assert is_live(str(SOCK_DIR / f"{name}.sock"))
            assert sh("ip", "-n", ns, "link", "show", name).returncode == 0
        finally:
            assert stop(proc) == 0, (tmp_path / "wgpy.log").read_text()


@pytest.mark.root
def test_wgpy_daemonized_child_notifies_with_its_own_mainpid(tmp_path: Path) -> None:
    with netns("h6n") as ns, notify_socket(tmp_path / "notify") as sock:
        name = f"wgn{os.urandom(3).hex()}"
        parent = subprocess.run(["ip", "netns", "exec", ns, PYTHON, "-m", "wgpy", name], capture_output=True,
                                text=True, timeout=60, env=env(NOTIFY_SOCKET=sock.name), cwd="/")
        pids = [int(p) for p in sh("ip", "netns", "pids", ns).stdout.split()]
        try:
            assert parent.returncode == 0, parent.stderr
            fields, pid = sock.receive(None, timeout=10)  # sent before the parent was told, so already queued
            assert fields["READY"] == "1" and fields["MAINPID"] == str(pid) and pids == [pid], (fields, pids)
            assert alive(pid)
            assert is_live(str(SOCK_DIR / f"{name}.sock"))
        finally:
            for pid in pids:
                kill_pid(pid)
    assert not (SOCK_DIR / f"{name}.sock").exists()


# --- kubespan ------------------------------------------------------------------------------------


@pytest.mark.root
def test_agent_notifies_once_its_interface_and_api_serve(tmp_path: Path) -> None:
    config = tmp_path / "machine.yaml"
    config.write_text(render_gen_config("http://127.0.0.1:1", legacy=False))  # no service: readiness is local
    api = tmp_path / "agent.sock"
    with netns("h6a") as ns, notify_socket(tmp_path / "notify") as sock:
        proc = popen(["ip", "netns", "exec", ns, PYTHON, "-m", "kubespan", "agent", "--config", str(config),
                      "--state-dir", str(tmp_path / "state"), "--api-socket", str(api), "--uapi-socket", "none",
                      "--mac", "02:00:00:00:00:07"], tmp_path / "agent.log", env(NOTIFY_SOCKET=sock.name))
        try:
            fields, pid = sock.receive(proc)
            assert pid == proc.pid and fields["READY"] == "1", fields
            assert is_live(str(api))
            link = sh("ip", "-n", ns, "-d", "link", "show", "kubespan").stdout
            assert "tun" in link
            dump = subprocess.run([PYTHON, "-m", "kubespan", "get", "kubespanidentities", "-o", "json", "--api-socket",
                                   str(api)], capture_output=True, text=True, timeout=30, env=env())
            assert dump.returncode == 0, dump.stderr
            assert json_stream(dump.stdout)[0]["spec"]["address"].endswith(":0:ff:fe00:7/128")  # EUI-64 of --mac
        finally:
            assert stop(proc) == 0, (tmp_path / "agent.log").read_text()


def test_discovery_service_notifies_once_it_listens(tmp_path: Path) -> None:
    with notify_socket() as sock:  # abstract, on this host's loopback only
        proc = popen([PYTHON, "-m", "kubespan", "discovery-service", "--listen", "127.0.0.1:0", "--no-snapshots",
                      "--metrics-addr="],
                     tmp_path / "service.log", env(NOTIFY_SOCKET=sock.name))
        try:
            fields, pid = sock.receive(proc)
            assert pid == proc.pid and fields["READY"] == "1", fields
            port = int(fields["STATUS"].rsplit(" ", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10):
                pass
        finally:
            assert stop(proc) == 0, (tmp_path / "service.log").read_text()
