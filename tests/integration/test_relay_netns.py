"""Relaying in namespaces (wgpy.relay, issue 14): three wgpy nodes, A and P blocked from each other by nft,
both reach R.  On both planes: A<->P handshake and ping through R both ways; a capture on R's TUN sees none
of the pair's packets (R forwards ciphertext only); a frame with a wrong tag is dropped and counted and R keeps
running; a low per-pair rate is enforced and counted; after the block is lifted the pair moves back to the
direct path by itself (A probes P's direct endpoint).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from lab.relay import KEY, PORTS, TUNNEL, UNDER, RelayLab
from netns import PYTHON, ping, ping_stats, suffix, wait_for

FORGE = r"""
import socket, sys
from wgpy import relayframe
from wgpy.keys import PublicKey
sender, receiver, host, port = sys.argv[1:5]
frame = bytearray(relayframe.encode(bytes(32), PublicKey.from_base64(sender), PublicKey.from_base64(receiver),
                                    b"\x04\0\0\0" + bytes(60)))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    for _ in range(3):
        s.sendto(bytes(frame), (host, int(port)))
"""


@pytest.fixture(params=["native", "pure"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RelayLab]:
    if os.geteuid() != 0:
        pytest.fail("root integration test: needs root")
    relay_lab = RelayLab(f"wgrl{suffix()}", tmp_path, native=request.param == "native")
    try:
        yield relay_lab
    finally:
        relay_lab.close()


def capture(lab: RelayLab, path: Path) -> subprocess.Popen[bytes]:
    """tcpdump on R's TUN, every packet to a pcap (stopped by ``stop_capture``)."""
    proc = lab.ns("r").popen(["tcpdump", "-i", lab["r"].ifname, "-n", "-U", "--immediate-mode", "-w", str(path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listening on ..." once the capture runs
    assert b"listening" in line, line
    return proc


def stop_capture(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def captured(lab: RelayLab, path: Path, expr: str) -> int:
    """The number of captured packets matching the tcpdump filter ``expr``."""
    res = lab.ns("r").run("tcpdump", "-r", str(path), "-n", expr)
    return len(res.stdout.splitlines())


def test_pair_talks_through_the_relay_then_moves_back_to_direct(lab: RelayLab, tmp_path: Path) -> None:
    a, r, p = lab["a"], lab["r"], lab["p"]
    lab.block()
    assert lab.ns("a").run("ping", "-c", "1", "-W", "1", UNDER["p"], check=False).returncode != 0
    pcap = tmp_path / "r-tun.pcap"
    cap = capture(lab, pcap)
    try:
        assert ping(lab.ns("a"), TUNNEL["p"], count=3, timeout=30)
        assert ping(lab.ns("p"), TUNNEL["a"], count=3, timeout=30)
        assert ping(lab.ns("a"), TUNNEL["r"], count=1, timeout=20)  # the capture does see R's own traffic
    finally:
        stop_capture(cap)
    assert captured(lab, pcap, f"host {TUNNEL['a']} and host {TUNNEL['p']}") == 0
    assert captured(lab, pcap, f"host {TUNNEL['a']} and host {TUNNEL['r']}") >= 2
    a_p, p_a = lab.peer("a", "p"), lab.peer("p", "a")
    assert a_p["relayed"] and p_a["relayed"]
    assert a_p["endpoint"] == r.endpoint and p_a["endpoint"] == r.endpoint
    assert a_p["handshake"] is not None and a_p["relayed_rx"] > 0 and p_a["relayed_tx"] > 0
    assert r.cmd("stats")["relay"]["forwarded_frames"] >= 12

    # a frame with a wrong tag (a stranger without the relay key): dropped, counted, R keeps serving
    lab.ns("a").run(PYTHON, "-c", FORGE, a.pub, p.pub, UNDER["r"], str(PORTS["r"]))
    wait_for(lambda: r.cmd("stats")["relay"]["drops"]["relay-bad-mac"] >= 3, 10, "relay-bad-mac counted")
    assert r.alive()
    assert ping(lab.ns("a"), TUNNEL["p"], count=1, timeout=20)

    # per-pair rate limit: a 2 KiB burst and 64 B/s per pair; 60 pings (~200-byte frames) overrun it however slow
    r.cmd("relay", key=KEY.hex(), serve=True, rate=64, burst=2048)
    got, sent, _ = ping_stats(lab.ns("a"), TUNNEL["p"], count=60, timeout=8, interval=0.01)
    limited = r.cmd("stats")["relay"]["drops"]["relay-rate-limited"]
    assert limited > 0 and got < sent
    r.cmd("relay", key=KEY.hex(), serve=True)  # default rate again
    assert ping(lab.ns("a"), TUNNEL["p"], count=2, timeout=20)

    # lift the block: A's probes reach P, both roam to the direct path without being told
    lab.unblock()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if not lab.peer("a", "p")["relayed"] and not lab.peer("p", "a")["relayed"]:
            break
        ping(lab.ns("a"), TUNNEL["p"], count=1, timeout=3)
        time.sleep(0.5)
    a_p, p_a = lab.peer("a", "p"), lab.peer("p", "a")
    assert not a_p["relayed"] and a_p["endpoint"] == p.endpoint, a_p
    assert not p_a["relayed"] and p_a["endpoint"] == a.endpoint, p_a
    forwarded = r.cmd("stats")["relay"]["forwarded_frames"]
    assert ping(lab.ns("a"), TUNNEL["p"], count=3, timeout=20)
    assert ping(lab.ns("p"), TUNNEL["a"], count=3, timeout=20)
    assert r.cmd("stats")["relay"]["forwarded_frames"] == forwarded
    assert a.cmd("stats")["relay"]["probes_sent"] >= 1
    for node in (a, r, p):
        assert node.alive(), node.log_tail()
