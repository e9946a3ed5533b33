"""The wgpy daemon's metrics and verbose log, in network namespaces against wireguard-go and wgpy.

The daemon serves WGPY_METRICS_ADDR inside its namespace; the scrape runs there too, with urllib in a
child Python, and is parsed with prometheus-client's parser.  Values are checked against ``wg show dump``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from metrics_support import Pair, parse, value
from netns import PYTHON, REPO, Netns, configure_pair, ping, wait_for

from wgpy.io import fastpath
from wgpy.io.eventlog import short_key

ADDR = "127.0.0.1:9586"
FETCH = ("import sys, urllib.request\n"
         "with urllib.request.urlopen(sys.argv[1], timeout=10) as r: sys.stdout.write(r.read().decode())\n")


def scrape(ns: Netns) -> str:
    return ns.run(PYTHON, "-c", FETCH, f"http://{ADDR}/metrics").stdout


def dump(ns: Netns, ifname: str) -> dict[str, list[str]]:
    """``wg show IF dump`` peer lines by public key: [psk, endpoint, allowed, handshake, rx, tx, keepalive]."""
    lines = ns.run("wg", "show", ifname, "dump").stdout.splitlines()[1:]
    return {f[0]: f[1:] for f in (line.split("\t") for line in lines)}


def test_daemon_metrics_match_wg_show(netns_pair: Pair) -> None:
    a, b = netns_pair.start("wgpy", "wireguard-go", env={"WGPY_METRICS_ADDR": ADDR})
    configure_pair(a, b, netns_pair.tmp)
    assert ping(a.ns, b.tun4, count=3), netns_pair.logs()
    wait_for(lambda: "wireguard_peer_info" in scrape(a.ns), 10, "metrics")
    for _ in range(5):  # the same counters twice around one dump: nothing moved in between
        before, wg, after = scrape(a.ns), dump(a.ns, a.ifname), scrape(a.ns)
        if parse(before) == parse(after):
            break
    samples = parse(after)
    psk, endpoint, allowed, handshake, rx, tx, _ = wg[b.pub]
    peer = {"device": a.ifname, "public_key": b.pub}
    assert value(samples, "wireguard_device_info", device=a.ifname, public_key=a.pub) == 1
    assert value(samples, "wireguard_peer_info", endpoint=endpoint, name="", **peer) == 1
    assert {dict(ls)["allowed_ips"] for (n, ls) in samples if n == "wireguard_peer_allowed_ips_info"} \
        == set(allowed.split(","))
    assert value(samples, "wireguard_peer_receive_bytes_total", **peer) == int(rx) > 0
    assert value(samples, "wireguard_peer_transmit_bytes_total", **peer) == int(tx) > 0
    assert value(samples, "wireguard_peer_last_handshake_seconds", **peer) == int(handshake) > 0
    assert value(samples, "wgpy_handshake_messages_sent_total", type="initiation") >= 1
    assert value(samples, "wgpy_handshake_messages_received_total", type="response") >= 1
    assert value(samples, "wgpy_keypairs_created_total", device=a.ifname) >= 1
    mode = "native" if fastpath.enabled() else "python"
    assert value(samples, "wgpy_dataplane_info", device=a.ifname, mode=mode) == 1


def test_daemon_logs_handshakes_per_peer_at_verbose(netns_pair: Pair) -> None:
    a, b = netns_pair.start("wgpy", "wgpy")
    configure_pair(a, b, netns_pair.tmp, psk=True)
    assert ping(a.ns, b.tun4, count=2), netns_pair.logs()
    name_a, name_b = short_key(a.key.public_key()), short_key(b.key.public_key())
    want_a = [f"{name_b} - Sending handshake initiation", f"{name_b} - Received handshake response",
              f"{name_b} - Keypair 1 created"]
    want_b = [f"{name_a} - Received handshake initiation", f"{name_a} - Sending handshake response",
              f"{name_a} - Keypair 1 created"]
    wait_for(lambda: all(w in b.daemon.log_text() for w in want_b), 10, "b's handshake lines")
    for side, want in ((a, want_a), (b, want_b)):
        text = side.daemon.log_text()
        lines = [line for line in text.splitlines() if any(w in line for w in want)]
        assert len(lines) >= len(want), text
        for line in lines:  # the daemon's own format: the level first, then the interface
            assert line.startswith(f"INFO: ({side.ifname}) "), line
        for key in (a.key.to_base64(), b.key.to_base64(), a.pub, b.pub):
            assert key not in text
        psk = open(netns_pair.tmp / f"{side.ifname}.conf").read().split("PresharedKey = ")[1].split()[0]
        assert psk not in text


def test_a_malformed_metrics_address_is_refused_before_anything_is_created() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), WGPY_METRICS_ADDR="9586", LOG_LEVEL="error")
    res = subprocess.run([sys.executable, "-m", "wgpy", "-f", "wgpy-nonexist0"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "WGPY_METRICS_ADDR" in res.stderr, res.stderr
    assert not os.path.exists("/sys/class/net/wgpy-nonexist0")
