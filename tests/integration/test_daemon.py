"""The daemon's life cycle and command line (wireguard-go's contract): daemonize,
exit on SIGTERM / `ip link del` / socket removal, socket handling, EADDRINUSE."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from netns import (
    PYTHON, REPO, SOCK_DIR, Daemon, daemon_env, gen_key, run, start_daemon, uapi_request, wait_for,
)

pytestmark = [pytest.mark.root]


def _ns_pids(ns) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(p) for p in run(["ip", "netns", "pids", ns.name]).stdout.split()]


def _gone(daemon: Daemon) -> bool:
    return daemon.proc.poll() is not None


def test_version_and_usage() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = run([PYTHON, "-m", "wgpy", "--version"], env=env)
    assert res.stdout.startswith("wgpy v")
    res = run([PYTHON, "-m", "wgpy"], env=env, check=False)
    assert res.returncode == 1 and "Usage: wgpy [-f/--foreground] INTERFACE-NAME" in res.stderr


def test_daemonizes_and_exits_when_link_deleted(netns_pair) -> None:  # type: ignore[no-untyped-def]
    ns = netns_pair.a
    name = netns_pair.ifname("d")
    log = netns_pair.tmp / "daemonize.log"
    env = {k: v for k, v in daemon_env().items() if k != "WG_PROCESS_FOREGROUND"}
    with open(log, "wb") as out:  # the child inherits stdout/stderr because LOG_LEVEL is set
        res = subprocess.run(ns.argv([PYTHON, "-m", "wgpy", name]), stdout=out, stderr=out, env=env,
                             timeout=60, cwd="/")
    assert res.returncode == 0, log.read_text()
    sock = SOCK_DIR / f"{name}.sock"
    assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o700
    assert (SOCK_DIR.stat().st_mode & 0o777) == 0o755
    pids = _ns_pids(ns)
    assert len(pids) == 1
    cmdline = Path(f"/proc/{pids[0]}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    assert cmdline[-2:] == [b"wgpy", name.encode()]
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    assert b"WG_TUN_FD=3" in environ and b"WG_UAPI_FD=4" in environ and b"WG_PROCESS_FOREGROUND=1" in environ
    assert ns.wg("show", name, "public-key").strip() == "(none)"
    ns.run("ip", "link", "del", name)
    wait_for(lambda: not _ns_pids(ns), 10, "daemon exit after ip link del")
    assert not sock.exists()
    assert "Shutting down (tun-gone)" in log.read_text()


def test_sigterm_removes_socket_and_link(netns_pair) -> None:  # type: ignore[no-untyped-def]
    d = netns_pair.add_daemon(netns_pair.a, "wgpy", "s")
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(10)
    assert d.proc.returncode == 0
    assert not d.sock.exists()
    assert netns_pair.a.run("ip", "link", "show", d.ifname, check=False).returncode != 0


def test_exits_when_socket_file_removed(netns_pair) -> None:  # type: ignore[no-untyped-def]
    d = netns_pair.add_daemon(netns_pair.a, "wgpy", "r")
    d.sock.unlink()
    wait_for(lambda: _gone(d), 10, "daemon exit after socket removal")
    assert d.proc.returncode == 0
    assert netns_pair.a.run("ip", "link", "show", d.ifname, check=False).returncode != 0


def test_live_socket_refused_stale_socket_replaced(netns_pair) -> None:  # type: ignore[no-untyped-def]
    d = netns_pair.add_daemon(netns_pair.a, "wgpy", "l")
    # the same interface name in the other namespace: TUN creation works, the live socket is refused
    res = netns_pair.b.run(PYTHON, "-m", "wgpy", "-f", d.ifname, check=False, env=daemon_env(), timeout=30)
    assert res.returncode == 1 and "in use" in res.stderr, res.stderr
    assert d.alive() and d.sock.exists()
    d.stop()
    # a stale socket file (nobody listening) is replaced
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(d.sock))
    stale.close()
    d2 = start_daemon(netns_pair.b, d.ifname, "wgpy", netns_pair.tmp)
    netns_pair.daemons.append(d2)
    assert netns_pair.b.wg("show", d.ifname, "listen-port").strip().isdigit()


def test_listen_port_in_use_is_eaddrinuse_and_changes_nothing(netns_pair) -> None:  # type: ignore[no-untyped-def]
    ns = netns_pair.a
    d = netns_pair.add_daemon(ns, "wgpy", "p")
    ns.run("wg", "set", d.ifname, "listen-port", "40001")
    blocker = ns.popen([PYTHON, "-c", "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                        "s.bind(('0.0.0.0', 40002)); print('ok', flush=True); time.sleep(60)"],
                       stdout=subprocess.PIPE)
    netns_pair.procs.append(blocker)
    assert blocker.stdout is not None and blocker.stdout.readline().strip() == b"ok"
    reply = uapi_request(d.sock, b"set=1\nlisten_port=40002\nfwmark=5\n\n").decode()
    assert reply == "errno=-98\n\n"
    res = ns.run("wg", "set", d.ifname, "listen-port", "40002", check=False)
    assert res.returncode != 0 and "Address already in use" in res.stderr
    assert ns.wg("show", d.ifname, "listen-port").strip() == "40001"
    assert ns.wg("show", d.ifname, "fwmark").strip() == "off"
    # a free port rebinds; fwmark is applied
    ns.run("wg", "set", d.ifname, "listen-port", "40003", "fwmark", "0x20")
    assert ns.wg("show", d.ifname, "listen-port").strip() == "40003"
    assert ns.wg("show", d.ifname, "fwmark").strip() == "0x20"
    ss = ns.run("ss", "-uaneH", check=False).stdout
    assert ":40003" in ss and ":40001" not in ss
    ours = [line for line in ss.splitlines() if ":40003 " in line]
    assert ours and all("fwmark:0x20" in line for line in ours), ss  # SO_MARK on the v4 and v6 sockets
    assert d.alive()


UNREACH = r"""
import errno, socket, sys
addr = sys.argv[1]
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
# host/address unreachable is a "soft" error: a UDP socket reports it only with IP(V6)_RECVERR
s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, 25 if v6 else 11, 1)
s.settimeout(5)
s.connect((addr, 9))
s.send(b"x" * 20)
try:
    s.recv(100)
    print("no-error")
except OSError as exc:
    print(errno.errorcode.get(exc.errno, str(exc)))
"""


def test_unroutable_packets_dropped_counted_and_icmp_unreachable(netns_pair) -> None:  # type: ignore[no-untyped-def]
    """Packets no peer owns: dropped, counted, and (pure path) answered with ICMP unreachable.

    The native fast path (wgpy/io/fastpath.py) routes TUN packets in C and only
    counts them, so this runs the daemon on the pure asyncio path.
    """
    ns = netns_pair.a
    d = netns_pair.add_daemon(ns, "wgpy", "u", env={"WGPY_FASTPATH": "0"})
    peer = gen_key().public_key().to_base64()
    ns.run("wg", "set", d.ifname, "peer", peer, "allowed-ips", "10.232.0.2/32,fd00:232::2/128")
    ns.run("ip", "addr", "add", "10.232.0.1/24", "dev", d.ifname)
    ns.run("ip", "-6", "addr", "add", "fd00:232::1/64", "dev", d.ifname, "nodad")
    ns.run("ip", "link", "set", d.ifname, "up")
    for addr in ("10.232.0.99", "fd00:232::99"):
        assert ns.run(PYTHON, "-c", UNREACH, addr).stdout.strip() == "EHOSTUNREACH", addr
    before = d.log_text().count("stats: drops=")
    d.proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: d.log_text().count("stats: drops=") > before, 10, "stats line")
    line = [x for x in d.log_text().splitlines() if "stats: drops=" in x][-1]
    assert json.loads(line.split("stats: drops=", 1)[1]).get("no-route", 0) >= 2


def test_daemon_without_log_level_detaches_stdio(netns_pair) -> None:  # type: ignore[no-untyped-def]
    ns = netns_pair.a
    name = netns_pair.ifname("n")
    env = {k: v for k, v in daemon_env().items() if k not in ("LOG_LEVEL", "WG_PROCESS_FOREGROUND")}
    res = ns.run(PYTHON, "-m", "wgpy", name, env=env, timeout=60)  # returns: the child holds no pipe of ours
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""
    (pid,) = _ns_pids(ns)
    fds = {n: os.readlink(f"/proc/{pid}/fd/{n}") for n in ("0", "1", "2", "3", "4")}
    assert fds["0"] == fds["1"] == fds["2"] == "/dev/null"
    assert fds["3"] == "/dev/net/tun" and fds["4"].startswith("socket:")
    os.kill(pid, signal.SIGINT)
    wait_for(lambda: not _ns_pids(ns), 10, "daemon exit on SIGINT")
    assert not (SOCK_DIR / f"{name}.sock").exists()
