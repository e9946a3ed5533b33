"""Handshakes per second a wgpy responder completes on one core (in-process).

Contract: run as a fresh subprocess (``python bench/handshakes.py N``); prints
one JSON object.  N initiator ``wgpy.device.Device``s (each its own key, the
responder as its peer) each produce one handshake initiation, outside the
measurement.  The responder ``Device`` (all N initiators configured as peers,
one /32 each) is then fed those initiations in batches of ``BATCH`` datagrams
from distinct source addresses, below the under-load threshold so no cookie
reply is due, and drained with ``handle_timeout``; the figure is handshake
responses produced per second of this process's CPU time
(``time.process_time``, single thread).  A sample of the responses is
delivered back to its initiators afterwards to check that they complete.
Uses the fake-clock style of the engine tests; nothing touches the network.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wgpy.config import DeviceUpdate, PeerUpdate  # noqa: E402
from wgpy.constants import UNDER_LOAD_QUEUE_LEN  # noqa: E402
from wgpy.device import Device, SendDatagram  # noqa: E402
from wgpy.keys import PrivateKey, PublicKey  # noqa: E402

BATCH = min(64, UNDER_LOAD_QUEUE_LEN // 2)
RESPONDER_EP = ("10.0.0.1", 51820)
RESPONDER_TUN = "10.255.255.254"
CHECK = 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


def initiator_addr(i: int) -> str:
    return str(ipaddress.IPv4Address(0x0A800000 + i + 1))  # 10.128.0.0/9


def ipv4_packet(src: str, dst: str) -> bytes:
    import struct
    payload = b"x" * 20
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, 17, 0,
                       ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + payload


Initiation = tuple[Device, tuple[str, int], PublicKey, bytes]


def make_initiations(n: int, responder: PublicKey, clock: Clock,
                     responder_ep: tuple[str, int] = RESPONDER_EP) -> list[Initiation]:
    """N fresh initiator devices and one handshake initiation each: (device, its endpoint, its key, message)."""
    out = []
    for i in range(n):
        key = PrivateKey.generate(os.urandom)
        dev = Device(rng=os.urandom, wall_clock=clock.wall)
        ep = (initiator_addr(i), 40000 + i % 20000)
        dev.apply(DeviceUpdate(private_key=key, listen_port=ep[1], peers=[PeerUpdate(
            public_key=responder, endpoint=responder_ep,
            allowed_ips=[ipaddress.ip_network(RESPONDER_TUN + "/32")])]), clock.now)
        acts = dev.tun_packet(ipv4_packet(ep[0], RESPONDER_TUN), clock.now)
        msgs = [a.data for a in acts if isinstance(a, SendDatagram) and a.data[0] == 1]
        if len(msgs) != 1:
            raise RuntimeError(f"initiator {i} produced {len(msgs)} initiations")
        out.append((dev, ep, key.public_key(), msgs[0]))
    return out


def main(n: int) -> dict[str, object]:
    clock = Clock()
    rng = os.urandom
    rkey = PrivateKey.generate(rng)
    responder = Device(rng=rng, wall_clock=clock.wall)
    t_setup = time.monotonic()
    made = make_initiations(n, rkey.public_key(), clock)
    initiators = [(dev, ep) for dev, ep, _, _ in made]
    inits = [(msg, ep) for _, ep, _, msg in made]
    peers = [PeerUpdate(public_key=pub, allowed_ips=[ipaddress.ip_network(ep[0] + "/32")])
             for _, ep, pub, _ in made]
    responder.apply(DeviceUpdate(private_key=rkey, listen_port=RESPONDER_EP[1], peers=peers), clock.now)
    setup_s = time.monotonic() - t_setup

    responses: list[SendDatagram] = []
    other = 0
    clock.now += 0.001
    c0, w0 = time.process_time(), time.perf_counter()
    for start in range(0, n, BATCH):
        out = responder.datagrams_received(inits[start:start + BATCH], clock.now)
        for _ in range(BATCH + 1):
            if responder.handshake_queue_length == 0:
                break
            out.extend(responder.handle_timeout(clock.now))
        for act in out:
            if isinstance(act, SendDatagram) and act.data[0] == 2:
                responses.append(act)
            else:
                other += 1
    cpu = time.process_time() - c0
    wall = time.perf_counter() - w0

    # sanity: a sample of initiators accepts its response and gets a session
    by_ep = {ep: dev for dev, ep in initiators}
    completed = 0
    for act in responses[:CHECK]:
        dev = by_ep[act.endpoint]
        dev.datagram_received(act.data, RESPONDER_EP, clock.now)
        peer = dev.peers()[0]
        if peer.keypairs.current is not None:
            completed += 1
    return {
        "initiations": n,
        "responses": len(responses),
        "other_actions": other,
        "drops": {str(k): v for k, v in responder.drops.items()},
        "cpu_s": cpu,
        "wall_s": wall,
        "per_cpu_s": len(responses) / cpu if cpu > 0 else None,
        "setup_s": setup_s,
        "checked": min(CHECK, len(responses)),
        "checked_completed": completed,
        "batch": BATCH,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
