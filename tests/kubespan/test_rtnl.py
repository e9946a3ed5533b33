"""kubespan.rtnl's attribute codec (pure) and one dump of this namespace's links (no root needed)."""

from __future__ import annotations

import socket
import sys

from hypothesis import given
from hypothesis import strategies as st

from kubespan import rtnl


@given(st.lists(st.tuples(st.integers(0, 0x3FFF), st.binary(max_size=40)), max_size=8))
def test_attributes_round_trip(items: list[tuple[int, bytes]]) -> None:
    data = b"".join(rtnl.attr(kind, payload) for kind, payload in items)
    assert len(data) % 4 == 0
    first: dict[int, bytes] = {}
    for kind, payload in items:
        first.setdefault(kind, payload)
    assert rtnl.attrs(data) == first


@given(st.binary(max_size=200))
def test_any_bytes_decode_without_raising(data: bytes) -> None:
    got = rtnl.attrs(data)
    assert all(len(v) <= len(data) for v in got.values())


def test_nested_and_u32() -> None:
    inner = rtnl.u32(rtnl.RTAX_MTU, 1420)
    msg = rtnl.Msg((0,), rtnl.attrs(rtnl.attr(rtnl.RTA_METRICS, inner) + rtnl.u32(rtnl.RTA_OIF, 7)))
    assert msg.u32(rtnl.RTA_OIF) == 7 and msg.u32(rtnl.RTA_DST) is None
    assert rtnl.attrs(msg.attrs[rtnl.RTA_METRICS]) == {rtnl.RTAX_MTU: (1420).to_bytes(4, sys.byteorder)}


def test_dump_links_names_loopback() -> None:
    with rtnl.Rtnl() as nl:
        links = nl.dump(rtnl.LINK)
    names = {m.text(rtnl.IFLA_IFNAME): m.header[2] for m in links}
    assert names["lo"] == socket.if_nametoindex("lo")
