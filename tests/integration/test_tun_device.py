"""Root: ``wgpy.io.tun_linux.TunDevice`` over python-pytun, in a namespace the test creates and always deletes.

A created device has the asked name and MTU, a non-blocking close-on-exec fd
(the daemon re-executes itself: a leaked TUN fd would keep the interface
alive) and no virtio-net header unless asked; ``from_fd`` adopts an fd and
reads the name and the header flag back; closing the last fd deletes the
interface.  ``attached_queues`` reads how many fds a TUN has; a live
multi-queue device refuses a second owner (who would otherwise take queues of
it and a share of its traffic).
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
import os, subprocess
from wgpy.io.tun_linux import TunDevice

def exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0

plain = TunDevice.create("wgpt0", 1380)
assert plain.name == "wgpt0" and plain.mtu() == 1380 and not plain.vnet_hdr
assert not os.get_inheritable(plain.fd) and not os.get_blocking(plain.fd)
try:
    plain.read()
except BlockingIOError:
    pass
else:
    raise SystemExit("a fresh TUN had a packet")
assert not plain.running()

offload = TunDevice.create("wgpt1", 1420, offload=True)
adopted = TunDevice.from_fd(os.dup(offload.fd))
assert adopted.name == "wgpt1" and adopted.vnet_hdr and not os.get_inheritable(adopted.fd)
offload.close()
assert exists("wgpt1"), "the adopted fd keeps the interface"
adopted.close()
assert not exists("wgpt1")

import errno
from wgpy.io.tun_linux import attached_queues
assert attached_queues("wgpt0") is None and attached_queues("lo") is None  # counted for multi-queue TUNs only
assert attached_queues("nosuch0") is None
multi = TunDevice.create("wgpt2", 1420, queues=3)
assert len(multi.queue_fds) == 3 and attached_queues("wgpt2") == 3
for queues in (1, 3):  # a live device: no second owner takes a queue of it
    try:
        TunDevice.create("wgpt2", 1420, queues=queues)
    except OSError as exc:
        assert exc.errno in (errno.EBUSY, errno.EINVAL), exc
    else:
        raise SystemExit(f"a second owner attached to a live multi-queue TUN ({queues} queues)")
assert attached_queues("wgpt2") == 3, "the live device lost or gained queues"
multi.close()
assert not exists("wgpt2")

plain.close()
plain.close()  # twice is harmless
assert not exists("wgpt0")
print("tun ok")
"""


def test_tun_device_create_adopt_close() -> None:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        pytest.fail("needs root and /dev/net/tun")
    ns = f"wgpyt-{secrets.token_hex(4)}-t"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert res.returncode == 0 and "tun ok" in res.stdout, res.stdout + res.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
