"""TUN virtio-net offload, pure twin of ``wgpy/_native/wgdp_offload.c`` (wireguard.md §10).

Contract: ``tso_split`` turns one read from a TUN opened with
``IFF_VNET_HDR`` (a 10-byte virtio-net header, then the packet) into plain IP
packets: a TSO super-packet (GSO_TCPV4/V6) becomes one packet per
``gso_size`` of payload with its headers fixed and checksums completed, as
the kernel's ``tcp_gso_segment`` / wireguard-go's ``gsoSplit`` do; a
NEEDS_CSUM packet gets its partial checksum completed.  Malformed input gives
None.  ``gro_coalesce`` goes the other way for TUN writes: runs of same-flow
TCP segments become one GSO write.  ``checksum`` is the Internet checksum
(RFC 1071) wgpy uses everywhere (``wgpy.icmp`` too).  Pure: bytes in, bytes
out.
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


# ------------------------------------------------------------------ GRO on TUN write


def _parse_seg(p: bytes) -> tuple[bool, int, int, int, int] | None:
    """(v6, iphlen, hlen, payload, seq) of a coalescable TCP segment, else None."""
    n = len(p)
    if n < 20:
        return None
    if p[0] >> 4 == 4:
        if p[0] != 0x45 or p[9] != 6 or struct.unpack_from(">H", p, 6)[0] & 0x3FFF or \
                struct.unpack_from(">H", p, 2)[0] != n:
            return None
        v6, iphlen = False, 20
    elif p[0] >> 4 == 6:
        if n < 40 or p[6] != 6 or struct.unpack_from(">H", p, 4)[0] + 40 != n:
            return None
        v6, iphlen = True, 40
    else:
        return None
    if n < iphlen + 20:
        return None
    hlen = iphlen + (p[iphlen + 12] >> 4) * 4
    if hlen - iphlen < 20 or hlen >= n or (p[iphlen + 13] & ~0x08) != 0x10:
        return None
    return v6, iphlen, hlen, n - hlen, struct.unpack_from(">I", p, iphlen + 4)[0]


def _same_flow(a: bytes, ha: tuple[bool, int, int, int, int], b: bytes, hb: tuple[bool, int, int, int, int],
               next_seq: int) -> bool:
    v6, iphlen, hlen = ha[0], ha[1], ha[2]
    if hb[0] != v6 or hb[2] != hlen or hb[4] != next_seq:
        return False
    if v6:
        if a[:4] != b[:4] or a[7] != b[7] or a[8:40] != b[8:40]:
            return False
    elif a[1] != b[1] or a[6] != b[6] or a[8] != b[8] or a[12:20] != b[12:20]:
        return False
    ta, tb = a[iphlen:hlen], b[iphlen:hlen]
    return ta[:4] == tb[:4] and ta[8:14] == tb[8:14] and ta[14:16] == tb[14:16] and ta[20:] == tb[20:]


def _csum_ok(p: bytes, v6: bool, iphlen: int) -> bool:
    """The IPv4 header checksum and the TCP checksum over its pseudo-header (v4 and v6) hold."""
    tcplen = len(p) - iphlen
    if v6:
        pseudo = sum(struct.unpack(">16H", p[8:40])) + tcplen + 6
    else:
        if checksum(p[:20]) != 0:
            return False
        pseudo = sum(struct.unpack(">4H", p[12:20])) + tcplen + 6
    return checksum(p[iphlen:], pseudo) == 0


def gro_coalesce(packets: list[bytes]) -> list[bytes]:
    """TUN writes (virtio-net header first) for decrypted packets, in order.

    A run of adjacent same-flow TCP segments (contiguous sequence numbers,
    same ack/options/window/TTL, flags ACK with PSH only on the last, every
    payload the size of the first except a shorter last, at most 65535 bytes)
    becomes one GSO_TCPV4/V6 write with NEEDS_CSUM and the pseudo-header
    partial checksum; anything else is written alone behind a zero header.
    Only segments whose IPv4 header and TCP checksums hold are merged (the
    kernel trusts a NEEDS_CSUM write): a bad one is written alone, unchanged.
    """
    out: list[bytes] = []
    i, n = 0, len(packets)
    while i < n:
        head = packets[i]
        h = _parse_seg(head)
        j = i + 1
        buf = bytearray()
        if h is not None:
            v6, iphlen, hlen, gso_size, seq = h
            total, next_seq = len(head), (seq + gso_size) & 0xFFFFFFFF
            closed = bool(head[iphlen + 13] & 0x08)
            while not closed and j < n:
                q = packets[j]
                hq = _parse_seg(q)
                if hq is None or not _same_flow(head, h, q, hq, next_seq) or hq[3] > gso_size or \
                        total + hq[3] > 65535:
                    break
                if (j == i + 1 and not _csum_ok(head, v6, iphlen)) or not _csum_ok(q, v6, iphlen):
                    break  # a bad checksum is never merged: that packet goes out alone
                if j == i + 1:
                    buf = bytearray(head)
                buf += q[hq[2]:]
                total += hq[3]
                next_seq = (next_seq + hq[3]) & 0xFFFFFFFF
                closed = hq[3] < gso_size or bool(q[iphlen + 13] & 0x08)
                if q[iphlen + 13] & 0x08:
                    buf[iphlen + 13] |= 0x08
                j += 1
        if j == i + 1:
            out.append(bytes(VNET_HDR_LEN) + head)
        else:
            assert h is not None
            v6, iphlen, hlen, gso_size, _ = h
            tcplen = total - iphlen
            if v6:
                struct.pack_into(">H", buf, 4, total - 40)
                pseudo = sum(struct.unpack(">16H", bytes(buf[8:40]))) + tcplen + 6
            else:
                struct.pack_into(">H", buf, 2, total)
                struct.pack_into(">H", buf, 10, 0)
                struct.pack_into(">H", buf, 10, checksum(bytes(buf[:20])))
                pseudo = sum(struct.unpack(">4H", bytes(buf[12:20]))) + tcplen + 6
            struct.pack_into(">H", buf, iphlen + 16, ~checksum(b"", pseudo) & 0xFFFF)
            hdr = _VNET.pack(_NEEDS_CSUM, _GSO_TCPV6 if v6 else _GSO_TCPV4, hlen, gso_size, iphlen, 16)
            out.append(hdr + bytes(buf))
        i = j
    return out
