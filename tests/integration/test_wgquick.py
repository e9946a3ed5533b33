"""Issue item 4: wg-quick up/down with WG_QUICK_USERSPACE_IMPLEMENTATION=wgpy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netns import SOCK_DIR, gen_key, ping, run, wait_for, wrapper_bin, write_conf

pytestmark = [pytest.mark.root, pytest.mark.interop]


def test_wg_quick_up_down(netns_pair) -> None:  # type: ignore[no-untyped-def]
    if os.path.exists("/sys/module/wireguard"):
        pytest.fail("this host has the WireGuard kernel module: wg-quick would ignore the userspace variable")
    pair = netns_pair
    b_daemon = pair.add_daemon(pair.b, "wireguard-go", "b")
    a_name = pair.ifname("q")
    a_key, b_key = gen_key(), gen_key()
    conf = (f"[Interface]\nPrivateKey = {a_key.to_base64()}\nListenPort = 51820\n"
            "Address = 10.232.0.1/24, fd00:232::1/64\nMTU = 1380\n\n"
            f"[Peer]\nPublicKey = {b_key.public_key().to_base64()}\n"
            "AllowedIPs = 10.232.0.2/32, fd00:232::2/128\nEndpoint = 10.231.0.2:51821\n")
    path = write_conf(pair.tmp, f"{a_name}.conf", conf)
    env = dict(os.environ, PATH=f"{wrapper_bin(pair.tmp)}:{os.environ['PATH']}",
               WG_QUICK_USERSPACE_IMPLEMENTATION="wgpy")
    # the far side: wireguard-go configured by hand
    b_conf = (f"[Interface]\nPrivateKey = {b_key.to_base64()}\nListenPort = 51821\n\n"
              f"[Peer]\nPublicKey = {a_key.public_key().to_base64()}\nAllowedIPs = 10.232.0.1/32, fd00:232::1/128\n")
    pair.b.run("wg", "setconf", b_daemon.ifname, str(write_conf(pair.tmp, "b.conf", b_conf)))
    pair.b.run("ip", "addr", "add", "10.232.0.2/24", "dev", b_daemon.ifname)
    pair.b.run("ip", "-6", "addr", "add", "fd00:232::2/64", "dev", b_daemon.ifname, "nodad")
    pair.b.run("ip", "link", "set", b_daemon.ifname, "up")

    up = pair.a.run("wg-quick", "up", str(path), env=env, check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"wgpy {a_name}" in up.stderr  # wg-quick ran our implementation
    link = pair.a.run("ip", "link", "show", a_name).stdout
    assert "mtu 1380" in link and "UP" in link
    assert ping(pair.a, "10.232.0.2") and ping(pair.a, "fd00:232::2"), pair.logs()
    assert pair.a.wg("show", a_name, "listen-port").strip() == "51820"
    pids = run(["ip", "netns", "pids", pair.a.name]).stdout.split()
    assert pids, "the daemon runs in the namespace"

    down = pair.a.run("wg-quick", "down", str(path), env=env, check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    def ns_procs() -> list[bytes]:
        pids = run(["ip", "netns", "pids", pair.a.name]).stdout.split()
        return [Path(f"/proc/{p}/cmdline").read_bytes() for p in pids if Path(f"/proc/{p}").exists()]

    wait_for(lambda: not ns_procs(), 10, f"daemon exit: {ns_procs()}")
    assert not (SOCK_DIR / f"{a_name}.sock").exists()
    assert pair.a.run("ip", "link", "show", a_name, check=False).returncode != 0
