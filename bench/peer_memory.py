"""Resident memory per configured (idle) peer, in-process and in a daemon.

Contract: ``python bench/peer_memory.py N`` (a fresh subprocess per
measurement) builds a ``wgpy.device.Device`` with a private key, generates N
peer public keys, records VmRSS, applies N peers (each a key and one
allowed-IP /32, in set transactions of ``CHUNK`` peers), drops the updates,
runs ``gc.collect()`` and records VmRSS again; prints JSON with the delta / N.
``daemon_rss_per_peer`` does the same to a fresh daemon process (wgpy or
wireguard-go) over its UAPI socket: one ``set`` transaction with N peers,
VmRSS of the daemon pid before and after (after a short settle).
"""

from __future__ import annotations

import gc
import ipaddress
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

CHUNK = 1000


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def peer_ip(i: int) -> str:
    return str(ipaddress.IPv4Address(0x0A000000 + i + 2))  # 10.0.0.2 upwards


def in_process(n: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from wgpy.config import DeviceUpdate, PeerUpdate
    from wgpy.device import Device
    from wgpy.keys import PrivateKey

    dev = Device(rng=os.urandom, wall_clock=time.time)
    dev.apply(DeviceUpdate(private_key=PrivateKey.generate(os.urandom), listen_port=51820), 0.0)
    pubs = [PrivateKey.generate(os.urandom).public_key() for _ in range(n)]
    gc.collect()
    before = rss()
    for start in range(0, n, CHUNK):
        upd = DeviceUpdate(peers=[PeerUpdate(public_key=pubs[i],
                                             allowed_ips=[ipaddress.ip_network(peer_ip(i) + "/32")])
                                  for i in range(start, min(n, start + CHUNK))])
        dev.apply(upd, 0.0)
        del upd
    gc.collect()
    after = rss()
    if len(dev.peers()) != n:
        raise RuntimeError(f"configured {len(dev.peers())} peers, wanted {n}")
    return {"peers": n, "rss_before": before, "rss_after": after, "per_peer": (after - before) / n}


def uapi_set(sock: Path, body: str, timeout: float = 120) -> str:
    """One UAPI set transaction; returns the daemon's answer (``errno=0`` on success)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(("set=1\n" + body + "\n").encode())
        answer = b""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in answer and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.decode(errors="replace")


def daemon_rss_per_peer(daemon: Any, n: int, pubkeys_hex: list[str], private_hex: str,
                        settle: float = 2.0) -> dict[str, Any]:
    from .common import proc_rss

    ans = uapi_set(daemon.sock, f"private_key={private_hex}\nlisten_port=0\n")
    if "errno=0" not in ans:
        raise RuntimeError(f"set private key: {ans.strip()!r}")
    time.sleep(0.5)
    before = proc_rss(daemon.pid)
    body = "".join(f"public_key={pubkeys_hex[i]}\nallowed_ip={peer_ip(i)}/32\n" for i in range(n))
    t0 = time.monotonic()
    ans = uapi_set(daemon.sock, body)
    set_s = time.monotonic() - t0
    if "errno=0" not in ans:
        raise RuntimeError(f"set {n} peers: {ans.strip()!r}")
    time.sleep(settle)
    after = proc_rss(daemon.pid)
    if not daemon.alive():
        raise RuntimeError("daemon died")
    return {"peers": n, "rss_before": before, "rss_after": after, "per_peer": (after - before) / n, "set_s": set_s}


if __name__ == "__main__":
    print(json.dumps(in_process(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)))
