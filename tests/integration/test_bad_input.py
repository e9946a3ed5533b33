"""Issue item 7: garbage datagrams at the listen port and garbage on the UAPI
socket: the daemon stays up, the tunnel keeps passing traffic, drops are counted,
a malformed UAPI request gets an errno and changes nothing."""

from __future__ import annotations

import os
import random
import re
import subprocess

import pytest

from netns import PINGER, PYTHON, configure_pair, ping, uapi_request, wait_for

pytestmark = [pytest.mark.root, pytest.mark.interop]

FLOODER = r"""
import os, random, socket, struct, sys
host, port, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
def shaped():
    kind = rnd.randrange(9)
    if kind == 0: return os.urandom(rnd.randrange(0, 1500))                   # random bytes
    if kind == 1: return b"\x01\x00\x00\x00" + os.urandom(144)                # initiation, bad mac1
    if kind == 2: return b"\x02\x00\x00\x00" + os.urandom(88)                 # response, unknown index
    if kind == 3: return b"\x03\x00\x00\x00" + os.urandom(60)                 # cookie reply
    if kind == 4: return b"\x04\x00\x00\x00" + os.urandom(rnd.randrange(28, 1500))  # transport, random index
    if kind == 5: return bytes([rnd.randrange(1, 5)]) + b"\x00\x00\x00" + os.urandom(rnd.randrange(0, 200))
    if kind == 6: return bytes([rnd.randrange(1, 5)]) + os.urandom(3) + os.urandom(rnd.randrange(0, 200))
    if kind == 7: return b""
    return bytes([rnd.randrange(256)]) * rnd.randrange(1, 64)
sent = 0
for i in range(count):
    try:
        s.sendto(shaped(), (host, port)); sent += 1
    except OSError:
        pass
print(sent)
"""


@pytest.mark.parametrize("path", ["native", "pure"])
def test_garbage_datagrams_flood(netns_pair, path: str) -> None:  # type: ignore[no-untyped-def]
    """``pure`` forces the asyncio path (WGPY_FASTPATH=0); ``native`` uses the C data plane if built."""
    a, b = netns_pair.start("wgpy", "wireguard-go", env={"WGPY_FASTPATH": "0"} if path == "pure" else None)
    configure_pair(a, b, netns_pair.tmp)
    assert ping(b.ns, a.tun4), netns_pair.logs()
    # a steady ping through the tunnel while the flood runs
    pinger = b.ns.popen([PYTHON, "-c", PINGER, a.tun4, "100000", "0.2", "20"], stdout=subprocess.PIPE)
    netns_pair.procs.append(pinger)
    n = 20000
    for host in (a.under4, a.under6):
        out = b.ns.run(PYTHON, "-c", FLOODER, host, str(a.port), str(n), str(random.randrange(1 << 30)),
                       timeout=300).stdout
        assert int(out) > n * 0.9
    stdout, _ = pinger.communicate(timeout=60)
    got, sent, _gap = stdout.split()
    assert a.daemon.alive(), netns_pair.logs()
    assert int(got) > 0
    assert ping(b.ns, a.tun4) and ping(a.ns, b.tun6), "tunnel still passes traffic"
    drops = a.daemon.drops()
    assert sum(drops.values()) > n, drops  # most of 2n garbage datagrams were counted
    for reason in ("unknown-type", "malformed", "invalid-mac1"):
        assert drops.get(reason, 0) > 0, drops
    assert drops.get("unknown-index", 0) + drops.get("decryption-failed", 0) > 0, drops


def test_garbage_on_uapi_socket(netns_pair) -> None:  # type: ignore[no-untyped-def]
    a, b = netns_pair.start("wgpy", "wireguard-go")
    configure_pair(a, b, netns_pair.tmp)
    before = a.ns.wg("showconf", a.ifname)
    sock = a.daemon.sock
    rnd = random.Random(1234)
    valid_start = f"set=1\nlisten_port=4242\npublic_key={'ab' * 32}\nallowed_ip=10.99.0.0/16\n"
    for _ in range(150):
        kind = rnd.randrange(4)
        if kind == 0:
            req = os.urandom(rnd.randrange(1, 3000))
        elif kind == 1:
            lines = [b"x" + os.urandom(rnd.randrange(0, 80)).replace(b"\n", b"") for _ in range(rnd.randrange(1, 8))]
            req = b"set=1\n" + b"\n".join(lines) + b"\n\n"
        elif kind == 2:
            req = (valid_start + rnd.choice(["endpoint=nope", "allowed_ip=1.2.3.4/33", "bogus=1",
                                             "noequals", "persistent_keepalive_interval=70000"]) + "\n\n").encode()
        else:
            req = b"get=1\nX" + os.urandom(50)
        reply = uapi_request(sock, req)
        if req.startswith(b"set=1\n"):
            assert re.fullmatch(rb"errno=-\d+\n\n", reply), (req[:80], reply)
    assert a.daemon.alive(), netns_pair.logs()
    assert a.ns.wg("showconf", a.ifname) == before
    # several operations on one connection; the failed set does not break the connection
    reply = uapi_request(sock, b"get=1\n\nset=1\nlisten_port=abc\n\nset=1\nnoequals\n\nget=1\n\n").decode()
    parts = reply.split("\n\n")
    assert parts[0].endswith("errno=0") and parts[1] == "errno=-22" and parts[2] == "errno=-71"
    assert parts[3].endswith("errno=0") and parts[0] == parts[3]
    assert ping(b.ns, a.tun4), "tunnel still passes traffic"
