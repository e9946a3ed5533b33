"""TUN virtio-net offload, pure twin of ``wgpy/_native/wgdp_offload.c`` (wireguard.md §10).

Contract: ``tso_split`` turns one read from a TUN opened with
``IFF_VNET_HDR`` (a 10-byte virtio-net header, then the packet) into plain IP
packets: a TSO super-packet (GSO_TCPV4/V6) becomes one packet per
``gso_size`` of payload with its headers fixed and checksums completed, as
the kernel's ``tcp_gso_segment`` / wireguard-go's ``gsoSplit`` do; a
NEEDS_CSUM packet gets its partial checksum completed.  Malformed input gives
None.  Pure: bytes in, bytes out.
"""

from __future__ import annotations

import struct

VNET_HDR_LEN = 10
_VNET = struct.Struct("<BBHHHH")
_NEEDS_CSUM = 1
_GSO_TCPV4, _GSO_TCPV6, _GSO_ECN = 1, 4, 0x80


def checksum(data: bytes, initial: int = 0) -> int:
    """The Internet checksum (RFC 1071): folded one's-complement sum, complemented."""
    if len(data) % 2:
        data += b"\0"
    total: int = initial + sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tso_split(data: bytes, max_packets: int = 1024, stride: int = 65536) -> list[bytes] | None:
    """Split one TUN read with a virtio-net header into IP packets, completing checksums.

    GSO_NONE: the packet, its partial checksum completed if NEEDS_CSUM.
    GSO_TCPV4/V6: one packet per ``gso_size`` of payload with the headers
    copied and fixed (IP length, IPv4 id + i and header checksum, TCP seq,
    FIN/PSH on the last only, CWR on the first only, TCP checksum).  None
    for anything malformed.
    """
    if len(data) < VNET_HDR_LEN:
        return None
    flags, gso, _hdr_len, gso_size, cstart, coff = _VNET.unpack_from(data)
    gso &= ~_GSO_ECN
    pkt = bytearray(data[VNET_HDR_LEN:])
    plen = len(pkt)
    if gso == 0:
        if plen > stride:
            return None
        if flags & _NEEDS_CSUM:
            if cstart + coff + 2 > plen:
                return None
            struct.pack_into(">H", pkt, cstart + coff, checksum(bytes(pkt[cstart:])))
        return [bytes(pkt)]
    if gso not in (_GSO_TCPV4, _GSO_TCPV6):
        return None
    v6 = gso == _GSO_TCPV6
    if plen < 20 or pkt[0] >> 4 != (6 if v6 else 4) or gso_size == 0:
        return None
    iphlen = 40 if v6 else (pkt[0] & 15) * 4
    if iphlen < 20 or cstart != iphlen or plen < cstart + 20:
        return None
    tcphlen = (pkt[cstart + 12] >> 4) * 4
    hlen = cstart + tcphlen
    if tcphlen < 20 or hlen > plen:
        return None
    payload = plen - hlen
    nseg = -(-payload // gso_size) if payload else 1
    if nseg > max_packets or hlen + gso_size > stride:
        return None
    seq = struct.unpack_from(">I", pkt, cstart + 4)[0]
    ident = struct.unpack_from(">H", pkt, 4)[0]
    out = []
    for i in range(nseg):
        off = i * gso_size
        seg = min(gso_size, payload - off)
        o = bytearray(pkt[:hlen] + pkt[hlen + off:hlen + off + seg])
        tcplen = tcphlen + seg
        if v6:
            struct.pack_into(">H", o, 4, hlen - 40 + seg)
            pseudo = sum(struct.unpack(">16H", bytes(o[8:40]))) + tcplen + 6
        else:
            struct.pack_into(">HH", o, 2, hlen + seg, (ident + i) & 0xFFFF)
            struct.pack_into(">H", o, 10, 0)
            struct.pack_into(">H", o, 10, checksum(bytes(o[:iphlen])))
            pseudo = sum(struct.unpack(">4H", bytes(o[12:20]))) + tcplen + 6
        struct.pack_into(">I", o, cstart + 4, (seq + off) & 0xFFFFFFFF)
        if i + 1 < nseg:
            o[cstart + 13] &= ~0x09 & 0xFF
        if i > 0:
            o[cstart + 13] &= ~0x80 & 0xFF
        struct.pack_into(">H", o, cstart + 16, 0)
        struct.pack_into(">H", o, cstart + 16, checksum(bytes(o[cstart:]), pseudo))
        out.append(bytes(o))
    return out
