"""Root: a TUN opened with IFF_VNET_HDR + offloads still reads and writes plain IP packets.

Runs in a namespace the test creates and always deletes: a UDP datagram sent
into the TUN comes out of ``read()`` without the virtio-net header and with
its partial checksum completed; an ICMP echo request written with ``write()``
is answered by the kernel.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.root]

SCRIPT = r"""
import os, select, socket, struct, subprocess, sys, time
from wgpy.io.tun_linux import TunDevice
from wgpy.offload import checksum
tun = TunDevice.create("wgvt0", 1420, offload=True)
assert tun.vnet_hdr
subprocess.run(["ip", "addr", "add", "10.77.0.1/24", "dev", "wgvt0"], check=True)
subprocess.run(["ip", "link", "set", "wgvt0", "up"], check=True)

def read_until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        select.select([tun.fd], [], [], 0.2)
        try:
            pkt = tun.read()
        except BlockingIOError:
            continue
        if pred(pkt):
            return pkt
    raise SystemExit("nothing read")

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"x" * 333, ("10.77.0.2", 9999))
pkt = read_until(lambda p: p[0] == 0x45 and p[9] == 17)
assert len(pkt) == 20 + 8 + 333, len(pkt)
pseudo = sum(struct.unpack(">4H", pkt[12:20])) + 17 + len(pkt) - 20
assert checksum(pkt[20:], pseudo) == 0, "udp checksum not completed"

icmp = struct.pack(">BBHHH", 8, 0, 0, 0x1234, 1) + b"ping"
icmp = icmp[:2] + struct.pack(">H", checksum(icmp)) + icmp[4:]
ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0,
                 bytes([10, 77, 0, 2]), bytes([10, 77, 0, 1]))
ip = ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:]
tun.write(ip + icmp)
reply = read_until(lambda p: p[0] == 0x45 and p[9] == 1 and p[20] == 0)
assert reply[24:26] == b"\x12\x34" and reply.endswith(b"ping")
print("vnet ok")
"""


def test_vnet_tun_reads_and_writes_plain_packets() -> None:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        pytest.fail("needs root and /dev/net/tun")
    ns = f"wgpyt-{secrets.token_hex(4)}-v"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert res.returncode == 0 and "vnet ok" in res.stdout, res.stdout + res.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
