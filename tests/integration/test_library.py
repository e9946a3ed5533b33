"""The library API: the README example (no root) and ``Interface`` owning a TUN
in a namespace, talking to wireguard-go (root)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from netns import PYTHON, REPO, TUN4, TUN6, UNDER4, gen_key, ping, run, wait_for, write_conf

MARKER = "<!-- wgpy-library-example -->"


def _example() -> str:
    for name in ("README.md",):
        path = REPO / name
        if path.exists() and MARKER in path.read_text():
            text = path.read_text().split(MARKER, 1)[1]
            match = re.search(r"```python\n(.*?)```", text, re.S)
            assert match, f"no python block after the marker in {name}"
            return match.group(1)
    raise AssertionError("the library example is missing from README.md")


def test_readme_library_example_runs() -> None:
    res = subprocess.run([PYTHON, "-c", _example()], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "b'hello, bob'"
    assert re.fullmatch(r"\('127\.0\.0\.1', \d+\) True", lines[1]), lines


INTERFACE_SCRIPT = r"""
import asyncio, os, sys
from wgpy.interface import Interface
from wgpy.keys import PrivateKey, PublicKey
name, priv, peer_pub, endpoint_host, endpoint_port, peer_addr = sys.argv[1:7]

async def main():
    async with await Interface.create(name, private_key=PrivateKey.from_base64(priv), listen_port=51820,
                                      uapi=True) as wg:
        wg.set_peer(PublicKey.from_base64(peer_pub), endpoint=(endpoint_host, int(endpoint_port)),
                    allowed_ips=[peer_addr + "/32"])
        print("ready", wg.name, wg.listen_port, flush=True)
        print("closed:", await wg.wait_closed(), flush=True)
        (peer,) = wg.peers()
        print("stats", peer.rx_bytes > 0, peer.tx_bytes > 0, peer.last_handshake is not None, flush=True)
        print("mtu", wg.device.mtu, flush=True)

asyncio.run(main())
"""


@pytest.mark.root
@pytest.mark.interop
def test_interface_owns_tun_and_talks_to_wireguard_go(netns_pair) -> None:  # type: ignore[no-untyped-def]
    pair = netns_pair
    name = pair.ifname("i")
    a_key, b_key = gen_key(), gen_key()
    b_daemon = pair.add_daemon(pair.b, "wireguard-go", "b")
    b_conf = (f"[Interface]\nPrivateKey = {b_key.to_base64()}\nListenPort = 51821\n\n"
              f"[Peer]\nPublicKey = {a_key.public_key().to_base64()}\nAllowedIPs = {TUN4[0]}/32\n")
    pair.b.run("wg", "setconf", b_daemon.ifname, str(write_conf(pair.tmp, "b.conf", b_conf)))
    pair.b.run("ip", "addr", "add", f"{TUN4[1]}/24", "dev", b_daemon.ifname)
    pair.b.run("ip", "link", "set", b_daemon.ifname, "up")
    proc = pair.a.popen([PYTHON, "-c", INTERFACE_SCRIPT, name, a_key.to_base64(), b_key.public_key().to_base64(),
                         UNDER4[1], "51821", TUN4[1]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        env=dict(os.environ, PYTHONPATH=str(REPO)))
    pair.procs.append(proc)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode()
    assert first.split() == ["ready", name, "51820"], first + proc.stderr.read().decode()  # type: ignore[union-attr]
    pair.a.run("ip", "addr", "add", f"{TUN4[0]}/24", "dev", name)
    pair.a.run("ip", "link", "set", name, "up")
    assert ping(pair.a, TUN4[1])
    assert pair.a.wg("show", name, "listen-port").strip() == "51820"  # the UAPI socket serves wg too
    pair.a.run("ip", "link", "set", name, "mtu", "1300")  # followed over rtnetlink: padding uses it
    assert ping(pair.a, TUN4[1])
    pair.a.run("ip", "link", "del", name)
    out, err = proc.communicate(timeout=20)
    assert out.decode().split("\n")[:3] == ["closed: tun-gone", "stats True True True", "mtu 1300"], out + err


def test_packet_interface_configuration_is_atomic() -> None:
    import asyncio
    import socket as socketlib

    from wgpy.errors import UapiError
    from wgpy.interface import PacketInterface

    async def main() -> None:
        iface = await PacketInterface.create(lambda packet: None, private_key=gen_key())
        blocker = socketlib.socket(socketlib.AF_INET, socketlib.SOCK_DGRAM)
        blocker.bind(("0.0.0.0", 0))
        try:
            peer = gen_key().public_key()
            iface.set_peer(peer, endpoint=("127.0.0.1", 9), allowed_ips=["10.7.0.0/16"])
            before = iface.uapi_get()
            port = iface.listen_port
            with pytest.raises(UapiError) as exc:
                iface.set_listen_port(blocker.getsockname()[1])
            assert exc.value.errno == 98 and iface.listen_port == port and iface.uapi_get() == before
            for bad in ({"allowed_ips": ["10.7.0.0/99"]}, {"persistent_keepalive": 70000},
                        {"endpoint": ("not-an-ip", 1)}):
                with pytest.raises(UapiError) as exc:
                    iface.set_peer(peer, **bad)  # type: ignore[arg-type]
                assert exc.value.errno == 22 and iface.uapi_get() == before
            iface.set_listen_port(0)
            assert iface.listen_port > 0 and f"listen_port={iface.listen_port}\n" in iface.uapi_get()
            iface.remove_peer(peer)
            assert iface.peers() == []
        finally:
            blocker.close()
            await iface.close()

    asyncio.run(main())


def test_event_sinks_see_a_real_handshake_complete_on_both_sides() -> None:
    import asyncio

    from wgpy.events import Event
    from wgpy.interface import PacketInterface

    async def main() -> None:
        got: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}
        seen: dict[str, list[Event]] = {"a": [], "b": []}
        ka, kb = gen_key(), gen_key()
        a = await PacketInterface.create(lambda packet: None, private_key=ka)
        b = await PacketInterface.create(lambda packet: None, private_key=kb)
        try:
            for name, iface in (("a", a), ("b", b)):
                def sink(event: Event, peer: object, endpoint: object, name: str = name) -> None:
                    seen[name].append(event)
                    if event is Event.HANDSHAKE_COMPLETE:
                        got[name].set()
                iface.add_event_sink(sink)
            a.set_peer(kb.public_key(), endpoint=("127.0.0.1", b.listen_port), allowed_ips=["10.9.0.2/32"],
                       persistent_keepalive=1)
            b.set_peer(ka.public_key(), endpoint=("127.0.0.1", a.listen_port), allowed_ips=["10.9.0.1/32"])
            await asyncio.wait_for(asyncio.gather(got["a"].wait(), got["b"].wait()), 30)
            for iface in (a, b):
                (stats,) = iface.peers()
                assert stats.last_handshake is not None
            # the sink comes after the device's own (log) sink and sees the handshake's other events too
            assert Event.INITIATION_SENT in seen["a"] and Event.RESPONSE_SENT in seen["b"]
            assert a.device.events[Event.HANDSHAKE_COMPLETE] >= 1 and b.device.events[Event.HANDSHAKE_COMPLETE] >= 1
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
