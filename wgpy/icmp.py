"""ICMP / ICMPv6 destination-unreachable replies for unroutable TUN packets.

Contract: ``unreachable(packet, source)`` builds the error the kernel's
WireGuard sends when no peer owns a destination (wireguard.md §8: ICMP host
unreachable, ICMPv6 address unreachable), or returns None where RFC 1122 /
RFC 4443 forbid an error (the packet is itself an ICMP error, or comes from
an unspecified or multicast source).  The error is written into the TUN, so
its source must not be a local address (the kernel would drop it as a
martian): the caller passes the unreachable destination itself.  Pure byte
building: the engine (``Device.tun_packets``) builds the reply into an
``Unreachable`` action; rate limiting and the TUN write are the shell's.
"""

from __future__ import annotations

import ipaddress
import struct

from .offload import checksum

_V4_ERRORS = frozenset({3, 4, 5, 11, 12})
_V4_MAX = 576
_V6_MAX = 1280


def unreachable(packet: bytes, source: bytes) -> bytes | None:
    """The ICMP(v6) unreachable for ``packet`` sent from ``source`` (4 or 16 raw bytes), or None."""
    if packet[:1] and packet[0] >> 4 == 4 and len(packet) >= 20 and len(source) == 4:
        return _v4(packet, source)
    if packet[:1] and packet[0] >> 4 == 6 and len(packet) >= 40 and len(source) == 16:
        return _v6(packet, source)
    return None


def _v4(packet: bytes, source: bytes) -> bytes | None:
    src = packet[12:16]
    ihl = (packet[0] & 0x0F) * 4
    if ipaddress.IPv4Address(src).is_multicast or src == bytes(4) or src == b"\xff" * 4:
        return None
    if packet[9] == 1 and len(packet) > ihl and packet[ihl] in _V4_ERRORS:
        return None
    if struct.unpack_from("!H", packet, 6)[0] & 0x1FFF:  # not the first fragment
        return None
    quoted = packet[: _V4_MAX - 28]
    body = struct.pack("!BBHI", 3, 1, 0, 0) + quoted
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 1, 0, source, src)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + body


def _v6(packet: bytes, source: bytes) -> bytes | None:
    src = packet[8:24]
    if src == bytes(16) or src[0] == 0xFF:
        return None
    if packet[6] == 58 and len(packet) > 40 and packet[40] < 128:  # an ICMPv6 error (no ext-header walk)
        return None
    quoted = packet[: _V6_MAX - 48]
    body = struct.pack("!BBHI", 1, 3, 0, 0) + quoted
    pseudo = source + src + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", checksum(pseudo + body)) + body[4:]
    header = struct.pack("!IHBB16s16s", 6 << 28, len(body), 58, 64, source, src)
    return header + body

