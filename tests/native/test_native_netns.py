"""Root integration: the native fast path between namespaces (checksummed TCP transfers).

wgpy(native) <-> wgpy(native), wgpy(native) <-> wgpy(WGPY_NATIVE=0) and
wgpy(native) <-> wireguard-go, each in two namespaces joined by a veth that
the fixture creates and always deletes (tests/integration/conftest.py's Pair).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(_INTEGRATION))

import netns  # noqa: E402
from netns import configure_pair, ping, transfer  # noqa: E402

pytestmark = [pytest.mark.root]

MB = 1 << 20
NATIVE_LINE = "native data plane running"


def _pair_class() -> type:
    spec = importlib.util.spec_from_file_location("wgpy_integration_conftest", _INTEGRATION / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Pair  # type: ignore[no-any-return]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[object]:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        pytest.fail("root integration test: needs root and /dev/net/tun")
    p = _pair_class()(tmp_path)
    try:
        p.setup()
        yield p
    finally:
        p.teardown()


def _start(pair, kind_a: str, kind_b: str, pure_b: bool = False,  # type: ignore[no-untyped-def]
           env: dict[str, str] | None = None):
    sides = []
    for ns, kind, role, i, port, pure in ((pair.a, kind_a, "a", 0, 51820, False),
                                          (pair.b, kind_b, "b", 1, 51821, pure_b)):
        extra = dict(env or {}, WGPY_NATIVE="0" if pure else "1")
        old = {k: os.environ.get(k) for k in extra}
        os.environ.update(extra)
        try:
            daemon = netns.start_daemon(ns, pair.ifname(role), kind, pair.tmp)
        finally:
            for k, v in old.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v
        pair.daemons.append(daemon)
        sides.append(netns.Side(ns, daemon, netns.gen_key(), port, netns.TUN4[i], netns.TUN6[i],
                                netns.UNDER4[i], netns.UNDER6[i]))
    return sides[0], sides[1]


def _check_transfer(pair, src, dst, nbytes: int, addr: str) -> None:  # type: ignore[no-untyped-def]
    sent, received = transfer(src.ns, dst.ns, addr, nbytes, timeout=300)
    assert sent == received and sent.startswith(f"{nbytes} "), (sent, received, pair.logs())
    # the native plane hands counters to Python every FLUSH_MS: wait for them (bounded)
    netns.wait_for(lambda: int(dst.ns.wg("show", dst.ifname, "transfer").split()[1]) > nbytes, 10,
                   "rx counter to include the transfer")


@pytest.mark.parametrize("offloads", ["on", "off"])
def test_native_pair_transfer_both_ways(pair, offloads: str) -> None:  # type: ignore[no-untyped-def]
    env = {} if offloads == "on" else {"WGPY_UDP_GSO": "0", "WGPY_UDP_GRO": "0", "WGPY_TUN_OFFLOAD": "0"}
    a, b = _start(pair, "wgpy", "wgpy", env=env)
    configure_pair(a, b, pair.tmp, psk=True)
    assert ping(a.ns, b.tun4) and ping(b.ns, a.tun6), pair.logs()
    _check_transfer(pair, a, b, 64 * MB, b.tun4)
    _check_transfer(pair, b, a, 32 * MB, a.tun6)
    for side in (a, b):
        assert NATIVE_LINE in side.daemon.log_text(), side.daemon.log_text()[-2000:]
        assert f"GSO {offloads}, GRO {offloads}; TUN offload {offloads}" in side.daemon.log_text()
        assert side.daemon.alive()
        hs = side.ns.wg("show", side.ifname, "latest-handshakes").split()
        assert int(hs[1]) > 0


@pytest.mark.parametrize("queues", ["3", "off"])
def test_native_multiqueue_flows_both_ways(pair, queues: str) -> None:  # type: ignore[no-untyped-def]
    """A multi-queue TUN (3 queues, a TX and an RX thread each) carries several checksummed TCP flows
    in both directions at once; WGPY_TUN_MULTIQUEUE=0 gives the one queue of before."""
    env = {"WGPY_TUN_QUEUES": "3"} if queues == "3" else {"WGPY_TUN_MULTIQUEUE": "0", "WGPY_TUN_QUEUES": "3"}
    want = 3 if queues == "3" else 1
    a, b = _start(pair, "wgpy", "wgpy", env=env)
    configure_pair(a, b, pair.tmp)
    assert ping(a.ns, b.tun4) and ping(b.ns, a.tun6), pair.logs()
    for side in (a, b):
        listing = side.ns.run("ls", f"/sys/class/net/{side.ifname}/queues").stdout.split()
        assert sorted(q for q in listing if q.startswith("tx-")) == [f"tx-{i}" for i in range(want)], listing
        line = f"TX and RX threads for {want} TUN queue{'s' if want > 1 else ''};"
        assert line in side.daemon.log_text(), side.daemon.log_text()[-2000:]
    flows = [(a, b, b.tun4), (a, b, b.tun6), (a, b, b.tun4), (b, a, a.tun4), (b, a, a.tun6), (b, a, a.tun4)]
    results: list[tuple[str, str] | BaseException] = [ValueError("not run")] * len(flows)

    def run(i: int) -> None:
        src, dst, addr = flows[i]
        try:
            results[i] = transfer(src.ns, dst.ns, addr, 12 * MB, timeout=300)
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(flows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=330)
    for res in results:
        assert isinstance(res, tuple), (res, pair.logs())
        sent, received = res
        assert sent == received and sent.startswith(f"{12 * MB} "), (sent, received, pair.logs())
    assert a.daemon.alive() and b.daemon.alive()


def test_native_with_pure_peer(pair) -> None:  # type: ignore[no-untyped-def]
    a, b = _start(pair, "wgpy", "wgpy", pure_b=True)
    configure_pair(a, b, pair.tmp)
    assert ping(b.ns, a.tun4), pair.logs()
    _check_transfer(pair, a, b, 8 * MB, b.tun4)
    _check_transfer(pair, b, a, 4 * MB, a.tun4)
    assert NATIVE_LINE in a.daemon.log_text()
    assert NATIVE_LINE not in b.daemon.log_text()


@pytest.mark.interop
@pytest.mark.parametrize("initiator", ["wgpy", "wireguard-go"])
def test_native_with_wireguard_go(pair, initiator: str) -> None:  # type: ignore[no-untyped-def]
    a, b = _start(pair, "wgpy", "wireguard-go")
    init_if = a.ifname if initiator == "wgpy" else b.ifname
    configure_pair(a, b, pair.tmp, endpoint_on=init_if)
    src, dst = (a, b) if initiator == "wgpy" else (b, a)
    assert ping(src.ns, dst.tun4) and ping(src.ns, dst.tun6), pair.logs()
    _check_transfer(pair, a, b, 32 * MB, b.tun4)
    _check_transfer(pair, b, a, 32 * MB, a.tun6)
    assert NATIVE_LINE in a.daemon.log_text()
    assert a.daemon.alive() and b.daemon.alive()


FLOODER = r"""
import base64, hashlib, os, socket, sys, time
host, port, pub, secs = sys.argv[1], int(sys.argv[2]), base64.b64decode(sys.argv[3]), float(sys.argv[4])
key = hashlib.blake2s(b"mac1----" + pub).digest()
msgs = []
for _ in range(64):
    body = b"\x01\x00\x00\x00" + os.urandom(112)
    msgs.append(body + hashlib.blake2s(body, digest_size=16, key=key).digest() + bytes(16))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
end, n = time.monotonic() + secs, 0
while time.monotonic() < end:
    for m in msgs:
        try:
            s.sendto(m, (host, port))
            n += 1
        except BlockingIOError:
            pass
print(n)
"""


def test_native_transfer_during_initiation_flood(pair) -> None:  # type: ignore[no-untyped-def]
    """Valid-mac1 initiations flood b while a checksummed transfer runs through it."""
    a, b = _start(pair, "wgpy", "wgpy")
    configure_pair(a, b, pair.tmp)
    assert ping(a.ns, b.tun4), pair.logs()
    flood = a.ns.popen([netns.PYTHON, "-c", FLOODER, b.under4, str(b.port), b.pub, "20"],
                       stdout=subprocess.PIPE)
    pair.procs.append(flood)
    _check_transfer(pair, a, b, 16 * MB, b.tun4)
    _check_transfer(pair, b, a, 8 * MB, a.tun4)
    sent = int(flood.communicate(timeout=60)[0] or 0)
    assert sent > 1000, sent  # the flood really ran
    assert ping(a.ns, b.tun6) and a.daemon.alive() and b.daemon.alive(), pair.logs()
