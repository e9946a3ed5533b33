"""Helpers for the root integration tests: daemons, tunnels, pings, transfers.

Commands and namespaces are ``lab.netns``'s (``run``, ``Netns``, re-exported
here for the tests).  Everything created here carries a random suffix and is
removed by the fixtures in ``conftest.py`` (also on failure).  Traffic stays
inside the namespaces the tests create; underlay and tunnel addresses exist
only there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lab.netns import Netns, run, stop_process
from wgpy.io.unixsock import is_live
from wgpy.keys import PrivateKey

__all__ = ["Netns", "run"]  # and the helpers below

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SOCK_DIR = Path("/var/run/wireguard")

# underlay (veth) and tunnel addresses, inside the test namespaces only
UNDER4 = ("10.231.0.1", "10.231.0.2")
UNDER6 = ("fd00:231::1", "fd00:231::2")
TUN4 = ("10.232.0.1", "10.232.0.2")
TUN6 = ("fd00:232::1", "fd00:232::2")


def suffix() -> str:
    return secrets.token_hex(4)


@dataclasses.dataclass
class Daemon:
    """A wgpy or wireguard-go process serving ``ifname`` inside ``ns``."""

    ns: Netns
    ifname: str
    kind: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def sock(self) -> Path:
        return SOCK_DIR / f"{self.ifname}.sock"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def drops(self) -> dict[str, int]:
        """The daemon's drop counters, from the line SIGUSR1 makes it log (wgpy only)."""
        before = self.log_text().count("stats: drops=")
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: self.log_text().count("stats: drops=") > before, 10, "stats line")
        line = [x for x in self.log_text().splitlines() if "stats: drops=" in x][-1]
        return json.loads(line.split("stats: drops=", 1)[1])  # type: ignore[no-any-return]

    def stop(self) -> None:
        stop_process(self.proc, 10)


def daemon_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), LOG_LEVEL="verbose", PYTHONFAULTHANDLER="1",
               WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
    env.update(extra or {})
    return env


def start_daemon(ns: Netns, ifname: str, kind: str, logdir: Path, env: dict[str, str] | None = None) -> Daemon:
    """Run ``wgpy -f`` or ``wireguard-go -f`` in ``ns`` and wait for its socket."""
    cmd = [PYTHON, "-m", "wgpy", "-f", ifname] if kind == "wgpy" else ["wireguard-go", "-f", ifname]
    log = logdir / f"{kind}-{ifname}.log"
    with open(log, "wb") as out:
        proc = ns.popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=daemon_env(env), cwd=str(REPO))
    daemon = Daemon(ns, ifname, kind, proc, log)
    wait_for(lambda: uapi_ready(daemon.sock) or not daemon.alive(), 20, f"{kind} socket for {ifname}")
    assert daemon.alive(), f"{kind} exited: {daemon.log_text()}"
    return daemon


def uapi_ready(path: Path) -> bool:
    return is_live(str(path))


def uapi_request(path: Path, request: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes on the UAPI socket and read until the peer stops sending."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def wait_for(pred: object, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def gen_key() -> PrivateKey:
    return PrivateKey.generate(os.urandom)


@dataclasses.dataclass
class Side:
    """One end of a tunnel: namespace, daemon, key, addresses."""

    ns: Netns
    daemon: Daemon
    key: PrivateKey
    port: int
    tun4: str
    tun6: str
    under4: str
    under6: str

    @property
    def ifname(self) -> str:
        return self.daemon.ifname

    @property
    def pub(self) -> str:
        return self.key.public_key().to_base64()


def write_conf(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def configure_pair(a: Side, b: Side, tmp: Path, *, psk: bool = False, endpoint_v6: bool = False,
                   endpoint_on: str = "both", keepalive: int = 0) -> None:
    """wg setconf on both sides (each peer owns the other's tunnel /32 and /128), addresses, link up."""
    psk_line = f"PresharedKey = {gen_key().to_base64()}\n" if psk else ""
    for me, other in ((a, b), (b, a)):
        ep_host = f"[{other.under6}]" if endpoint_v6 else other.under4
        with_ep = endpoint_on == "both" or endpoint_on == me.ifname
        conf = (f"[Interface]\nPrivateKey = {me.key.to_base64()}\nListenPort = {me.port}\n\n"
                f"[Peer]\nPublicKey = {other.pub}\n{psk_line}"
                f"AllowedIPs = {other.tun4}/32, {other.tun6}/128\n"
                + (f"Endpoint = {ep_host}:{other.port}\n" if with_ep else "")
                + (f"PersistentKeepalive = {keepalive}\n" if keepalive else ""))
        path = write_conf(tmp, f"{me.ifname}.conf", conf)
        me.ns.run("wg", "setconf", me.ifname, str(path))
        me.ns.run("ip", "addr", "add", f"{me.tun4}/24", "dev", me.ifname)
        me.ns.run("ip", "-6", "addr", "add", f"{me.tun6}/64", "dev", me.ifname, "nodad")
        me.ns.run("ip", "link", "set", me.ifname, "up")


PINGER = r"""
import os, socket, struct, sys, time
addr, count, interval, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
start = time.monotonic(); deadline = start + timeout
got, seq, last_reply, max_gap, next_send = 0, 0, None, 0.0, start
s.settimeout(0.05)
while got < count and time.monotonic() < deadline:
    now = time.monotonic()
    if now >= next_send:
        seq += 1
        payload = struct.pack("!d", now) + b"x" * 48
        hdr = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq & 0xFFFF)
        if not v6:
            hdr = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq & 0xFFFF)
        try:
            s.sendto(hdr + payload, (addr, 0))
        except OSError:
            pass
        next_send = now + interval
    try:
        data = s.recv(2048)
    except socket.timeout:
        continue
    icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
    if len(icmp) >= 8 and icmp[0] == (129 if v6 else 0) and struct.unpack("!H", icmp[4:6])[0] == ident:
        t = time.monotonic()
        if last_reply is not None:
            max_gap = max(max_gap, t - last_reply)
        last_reply = t
        got += 1
print(got, seq, round(max_gap, 3))
sys.exit(0 if got >= count else 1)
"""


def ping(ns: Netns, addr: str, count: int = 3, timeout: float = 20, interval: float = 0.2) -> bool:
    """ICMP echo until ``count`` replies arrived (bounded by ``timeout``); raw socket, no ping(8) needed."""
    return ping_stats(ns, addr, count, timeout, interval)[0] >= count


def ping_stats(ns: Netns, addr: str, count: int, timeout: float, interval: float = 0.2) -> tuple[int, int, float]:
    """(replies, requests sent, longest gap between replies in seconds)."""
    res = ns.run(PYTHON, "-c", PINGER, addr, str(count), str(interval), str(timeout), check=False,
                 timeout=timeout + 15)
    got, sent, gap = res.stdout.split()
    return int(got), int(sent), float(gap)


SENDER = r"""
import hashlib, socket, sys, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0  # bytes/s, 0 = unlimited
t0 = time.monotonic()
block = hashlib.sha512(b"wgpy").digest() * 1024
h = hashlib.sha256()
for attempt in range(50):
    try:
        s = socket.create_connection((host, port), timeout=5); break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("connect failed")
s.settimeout(60)
sent = 0
i = 0
while sent < total:
    chunk = block[: min(len(block), total - sent)]
    chunk = bytes([i & 0xFF]) + chunk[1:]
    i += 1
    s.sendall(chunk); h.update(chunk); sent += len(chunk)
    if rate:
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(sent, h.hexdigest())
"""

RECEIVER = r"""
import hashlib, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
ls = socket.socket(fam); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port)); ls.listen(1); ls.settimeout(60)
print("listening", flush=True)
c, _ = ls.accept(); c.settimeout(60)
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d: break
    h.update(d); n += len(d)
c.close()
print(n, h.hexdigest(), flush=True)
"""


def transfer(src: Netns, dst: Netns, dst_addr: str, nbytes: int, timeout: float,
             rate: float = 0.0) -> tuple[str, str]:
    """Stream ``nbytes`` over TCP from ``src`` to ``dst_addr`` in ``dst``; both sides' "count sha256"."""
    port = 40000 + secrets.randbelow(20000)
    recv = dst.popen([PYTHON, "-c", RECEIVER, dst_addr, str(port)], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        assert recv.stdout is not None
        first = recv.stdout.readline().decode().strip()
        assert first == "listening", first
        sent = src.run(PYTHON, "-c", SENDER, dst_addr, str(port), str(nbytes), str(rate),
                      timeout=timeout).stdout.strip()
        out, err = recv.communicate(timeout=30)
        return sent, out.decode().strip()
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait(5)


def wrapper_bin(tmp: Path) -> Path:
    """A directory with a ``wgpy`` script that runs this checkout (for wg-quick)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "wgpy"
    script.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {PYTHON} -m wgpy \"$@\"\n")
    script.chmod(0o755)
    return bindir
