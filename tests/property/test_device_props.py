"""The engine under arbitrary datagrams: never raises, counts every drop, keeps its configuration."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from wgsupport import DevicePair

SIZES = {1: 148, 2: 92, 3: 64}


def type_shaped() -> st.SearchStrategy[bytes]:
    exact = st.sampled_from(sorted(SIZES)).flatmap(
        lambda t: st.binary(min_size=SIZES[t] - 4, max_size=SIZES[t] - 4).map(lambda b: struct.pack("<I", t) + b))
    transport = st.binary(min_size=28, max_size=200).map(lambda b: struct.pack("<I", 4) + b)
    return st.one_of(exact, transport, st.binary(max_size=300))


def snapshot(pair: DevicePair) -> list[tuple[object, ...]]:
    dev = pair.b.device
    return [(dev.private_key, dev.listen_port, dev.fwmark)] + [
        (p.public_key, p.preshared_key, p.endpoint, p.persistent_keepalive, tuple(p.allowed_ips()))
        for p in dev.peers()
    ]


@given(st.lists(type_shaped(), max_size=40), st.booleans())
def test_garbage_is_dropped_and_counted(datagrams: list[bytes], established: bool) -> None:
    pair = DevicePair(seed=7)
    if established:
        pair.send_ip(pair.a, b"x")
        pair.deliver()
    before = snapshot(pair)
    dev = pair.b.device
    drops_before = sum(dev.drops.values())
    actions = dev.datagrams_received([(d, ("198.51.100.1", 9)) for d in datagrams], pair.clock.now)
    actions += dev.handle_timeout(pair.clock.now)
    assert actions == []
    assert sum(dev.drops.values()) - drops_before == len(datagrams)
    assert snapshot(pair) == before
    # and the tunnel still works afterwards
    pair.send_ip(pair.a, b"after")
    pair.deliver()
    assert pair.b.tun[-1].endswith(b"after")
