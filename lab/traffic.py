"""TCP transfers between two namespaces, checked end to end (bytes and SHA-256 on both sides).

Contract: ``transfer(src, dst, addr, nbytes, timeout=...)`` starts a one-shot receiver on ``addr`` (an
address inside ``dst``) and a sender in ``src``, both ``sys.executable -c`` scripts, and returns a
``Transfer``; a receiver that does not start or output that does not parse is a ``LabError``.  Every
wait is bounded by ``timeout``; the receiver process is killed on the way out.  Used by ``lab.mesh``
(the KubeSpan lab and demo).
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import sys

from .netns import LabError, Netns

PYTHON = sys.executable


@dataclasses.dataclass
class Transfer:
    """One TCP stream through the lab: bytes and sha256 on both ends, receiver-side duration."""

    sent: int
    sent_sha256: str
    received: int
    received_sha256: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.sent == self.received and self.sent_sha256 == self.received_sha256

    @property
    def mbit_per_s(self) -> float:
        return self.received * 8 / self.seconds / 1e6 if self.seconds > 0 else 0.0



def transfer(src: Netns, dst: Netns, addr: str, nbytes: int, *, timeout: float = 120) -> Transfer:
    """Stream ``nbytes`` over TCP from ``src`` to ``addr`` (an address in ``dst``)."""
    port = str(20000 + secrets.randbelow(20000))
    recv = dst.popen([PYTHON, "-c", _RECEIVER, addr, port, str(timeout)], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        assert recv.stdout is not None
        first = recv.stdout.readline().decode().strip()
        if first != "listening":
            raise LabError(f"receiver did not start: {first} {recv.stderr.read().decode() if recv.stderr else ''}")
        sent = src.run(PYTHON, "-c", _SENDER, addr, port, str(nbytes), str(timeout),
                       timeout=timeout + 10).stdout.split()
        out, err = recv.communicate(timeout=30)
        received = out.decode().split()
        if len(received) != 3 or len(sent) != 2:
            raise LabError(f"transfer failed: sender {sent} receiver {received} {err.decode()[-500:]}")
        return Transfer(int(sent[0]), sent[1], int(received[0]), received[1], float(received[2]))
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait(5)


_SENDER = r"""
import hashlib, socket, sys, time
host, port, total, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
block = bytearray(hashlib.sha512(b"kubespan").digest() * 1024)
h = hashlib.sha256()
deadline = time.monotonic() + timeout
while True:
    try:
        s = socket.create_connection((host, port), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("connect failed")
        time.sleep(0.2)
s.settimeout(timeout)
sent, i = 0, 0
while sent < total:
    block[0] = i & 0xFF
    chunk = bytes(block[: min(len(block), total - sent)])
    i += 1
    s.sendall(chunk)
    h.update(chunk)
    sent += len(chunk)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(sent, h.hexdigest())
"""

_RECEIVER = r"""
import hashlib, socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(1)
ls.settimeout(timeout)
print("listening", flush=True)
c, _ = ls.accept()
c.settimeout(timeout)
t0 = time.monotonic()
h = hashlib.sha256()
n = 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
dt = time.monotonic() - t0
c.close()
print(n, h.hexdigest(), round(dt, 6), flush=True)
"""
