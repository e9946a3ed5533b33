"""wgpy.icmp: the unreachable replies the engine builds for TUN packets without a route."""

from __future__ import annotations

import ipaddress
import struct

from wgsupport import ipv4_packet, ipv6_packet

from wgpy.icmp import unreachable
from wgpy.offload import checksum

V4_DST = ipaddress.IPv4Address("10.9.9.9").packed
V6_DST = ipaddress.IPv6Address("fd00:99::9").packed


def test_ipv4_host_unreachable_from_the_destination_quoting_the_packet() -> None:
    pkt = ipv4_packet("10.0.0.1", "10.9.9.9", b"q" * 40)
    reply = unreachable(pkt, V4_DST)
    assert reply is not None
    assert reply[0] == 0x45 and reply[9] == 1 and reply[12:16] == V4_DST and reply[16:20] == pkt[12:16]
    assert struct.unpack("!H", reply[2:4])[0] == len(reply)
    assert checksum(reply[:20]) == 0  # header checksum verifies
    assert (reply[20], reply[21]) == (3, 1) and checksum(reply[20:]) == 0 and reply[28:] == pkt


def test_ipv6_address_unreachable_with_a_valid_pseudo_header_checksum() -> None:
    pkt = ipv6_packet("fd00::1", "fd00:99::9", b"q" * 40)
    reply = unreachable(pkt, V6_DST)
    assert reply is not None
    body = reply[40:]
    assert reply[6] == 58 and reply[8:24] == V6_DST and reply[24:40] == pkt[8:24]
    assert (body[0], body[1]) == (1, 3) and body[8:] == pkt
    pseudo = V6_DST + pkt[8:24] + struct.pack("!I3xB", len(body), 58)
    assert checksum(pseudo + body) == 0


def test_quote_is_capped_at_the_minimum_mtu() -> None:
    big4 = unreachable(ipv4_packet("10.0.0.1", "10.9.9.9", b"z" * 1400), V4_DST)
    big6 = unreachable(ipv6_packet("fd00::1", "fd00:99::9", b"z" * 1400), V6_DST)
    assert big4 is not None and len(big4) == 576
    assert big6 is not None and len(big6) == 1280


def test_no_reply_where_the_rfcs_forbid_one() -> None:
    icmp_error = ipv4_packet("10.0.0.1", "10.9.9.9", bytes([3, 1]) + bytes(30), proto=1)
    assert unreachable(icmp_error, V4_DST) is None
    assert unreachable(ipv4_packet("224.0.0.1", "10.9.9.9"), V4_DST) is None
    assert unreachable(ipv4_packet("0.0.0.0", "10.9.9.9"), V4_DST) is None
    frag = bytearray(ipv4_packet("10.0.0.1", "10.9.9.9"))
    frag[6:8] = struct.pack("!H", 5)  # fragment offset 5: not the first fragment
    assert unreachable(bytes(frag), V4_DST) is None
    assert unreachable(ipv6_packet("ff02::1", "fd00:99::9"), V6_DST) is None
    assert unreachable(ipv6_packet("::", "fd00:99::9"), V6_DST) is None
    icmp6_error = ipv6_packet("fd00::1", "fd00:99::9", bytes([1, 3]) + bytes(30), nh=58)
    assert unreachable(icmp6_error, V6_DST) is None
    assert unreachable(b"\x45" + bytes(10), V4_DST) is None  # not a whole header
    assert unreachable(ipv4_packet("10.0.0.1", "10.9.9.9"), V6_DST) is None  # source of the wrong family
