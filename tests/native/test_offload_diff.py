"""TUN virtio-net offload: native TSO split / checksum vs the pure twin, and validity of the result."""

from __future__ import annotations

import ipaddress
import random
import struct

from hypothesis import given, strategies as st

from wgpy import _native
from wgpy.offload import checksum, tso_split


def tcp_packet(v6: bool, payload: bytes, flags: int, seq: int, ident: int, options: bytes = b"") -> bytes:
    tcp = struct.pack(">HHIIBBHHH", 40000, 5201, seq, 7, (5 + len(options) // 4) << 4, flags, 512, 0, 0) + options
    if v6:
        src, dst = ipaddress.IPv6Address("fd00::1").packed, ipaddress.IPv6Address("fd00::2").packed
        ip = struct.pack(">IHBB", 0x60000000, len(tcp) + len(payload), 6, 64) + src + dst
        pseudo = sum(struct.unpack(">16H", src + dst)) + len(tcp) + len(payload) + 6
    else:
        src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
        ip = struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(tcp) + len(payload), ident, 0x4000, 64, 6, 0) + src + dst
        pseudo = sum(struct.unpack(">4H", src + dst)) + len(tcp) + len(payload) + 6
    # a partial checksum as the kernel leaves it: the folded pseudo-header sum, not complemented
    while pseudo >> 16:
        pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    tcp = tcp[:16] + struct.pack(">H", pseudo) + tcp[18:]
    return ip + tcp + payload


def vnet(flags: int, gso: int, hdr_len: int, gso_size: int, cstart: int, coff: int) -> bytes:
    return struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, cstart, coff)


@st.composite
def tso_reads(draw: st.DrawFn) -> bytes:
    v6 = draw(st.booleans())
    payload = draw(st.binary(min_size=0, max_size=6000))
    options = draw(st.sampled_from([b"", b"\x01\x01\x08\x0a" + bytes(8)]))
    pkt = tcp_packet(v6, payload, draw(st.sampled_from([0x18, 0x19, 0x10, 0x98, 0x11])),
                     draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 0xFFFF)), options)
    cstart = 40 if v6 else 20
    gso = draw(st.sampled_from([0, 0, 4 if v6 else 1, (4 if v6 else 1) | 0x80, 3]))
    gso_size = draw(st.sampled_from([0, 1, 500, 1380, 1440]))
    hdr = vnet(draw(st.sampled_from([0, 1])), gso, cstart + 20 + len(options), gso_size, cstart, 16)
    data = hdr + pkt
    if draw(st.integers(0, 9)) == 0:  # some damage
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@given(tso_reads())
def test_tso_split_identical(data: bytes) -> None:
    assert _native.tso_split(data, 256) == tso_split(data, 256)


@given(st.binary(max_size=3000), st.integers(0, 2**20))
def test_checksum_identical(data: bytes, initial: int) -> None:
    assert _native.checksum(data, initial) == checksum(data, initial)


def test_checksum_edges_identical() -> None:
    """Word-at-a-time summing in C: every length mod 8, all-zero and all-0xFF data, a 64 KiB packet."""
    rnd = random.Random(9)
    cases = [bytes(n) for n in range(18)] + [b"\xff" * n for n in range(18)]
    cases += [rnd.randbytes(n) for n in list(range(1, 40)) + [65535, 65536]]
    for data in cases:
        for initial in (0, 1, 0xFFFF, 0x1FFFE, 6 + 0xFFFF * 7):
            assert _native.checksum(data, initial) == checksum(data, initial), (len(data), initial)


@given(st.booleans(), st.binary(min_size=1, max_size=9000), st.sampled_from([536, 1380, 1440]),
       st.integers(0, 2**32 - 1))
def test_split_segments_are_valid_tcp(v6: bool, payload: bytes, mss: int, seq: int) -> None:
    pkt = tcp_packet(v6, payload, 0x19, seq, 77)  # FIN|PSH|ACK on the super-packet
    cstart = 40 if v6 else 20
    segs = _native.tso_split(vnet(1, 4 if v6 else 1, cstart + 20, mss, cstart, 16) + pkt)
    assert segs is not None and len(segs) == -(-len(payload) // mss)
    body = b""
    for i, seg in enumerate(segs):
        tcp = seg[cstart:]
        if v6:
            assert struct.unpack_from(">H", seg, 4)[0] == len(seg) - 40
            pseudo = sum(struct.unpack(">16H", seg[8:40])) + len(tcp) + 6
        else:
            assert struct.unpack_from(">H", seg, 2)[0] == len(seg)
            assert struct.unpack_from(">H", seg, 4)[0] == 77 + i
            assert checksum(seg[:20]) == 0  # a valid header sums to 0xFFFF
            pseudo = sum(struct.unpack(">4H", seg[12:20])) + len(tcp) + 6
        assert checksum(tcp, pseudo) == 0
        assert struct.unpack_from(">I", tcp, 4)[0] == (seq + i * mss) & 0xFFFFFFFF
        last = i == len(segs) - 1
        assert bool(tcp[13] & 0x01) == last and bool(tcp[13] & 0x08) == last
        body += tcp[20:]
    assert body == payload


def test_needs_csum_without_gso() -> None:
    pkt = tcp_packet(False, b"hello world", 0x18, 1, 2)
    out = _native.tso_split(vnet(1, 0, 0, 0, 20, 16) + pkt)
    assert out is not None and len(out) == 1
    pseudo = sum(struct.unpack(">4H", out[0][12:20])) + len(out[0]) - 20 + 6
    assert checksum(out[0][20:], pseudo) == 0


# ---------------------------------------------------------------- GRO on TUN write

from wgpy.offload import gro_coalesce  # noqa: E402


@st.composite
def decrypted_streams(draw: st.DrawFn) -> list[bytes]:
    """Segments as a TSO split makes them, interleaved with other flows, gaps and junk."""
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 4))):
        v6 = draw(st.booleans())
        payload = draw(st.binary(min_size=1, max_size=8000))
        mss = draw(st.sampled_from([100, 536, 1380]))
        cstart = 40 if v6 else 20
        pkt = tcp_packet(v6, payload, draw(st.sampled_from([0x10, 0x18, 0x11, 0x12])), draw(st.integers(0, 2**32 - 1)),
                         draw(st.integers(0, 0xFFFF)))
        segs = tso_split(vnet(1, 4 if v6 else 1, cstart + 20, mss, cstart, 16) + pkt) or []
        if segs and draw(st.booleans()):
            del segs[draw(st.integers(0, len(segs) - 1))]  # a lost segment: a seq gap
        out.extend(segs)
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.binary(max_size=80)))
    return out


@given(decrypted_streams())
def test_gro_coalesce_identical(packets: list[bytes]) -> None:
    assert _native.gro_coalesce(packets) == gro_coalesce(packets)


@given(st.booleans(), st.binary(min_size=1, max_size=20000), st.sampled_from([536, 1380]),
       st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF))
def test_gro_then_tso_round_trip(v6: bool, payload: bytes, mss: int, seq: int, ident: int) -> None:
    cstart = 40 if v6 else 20
    pkt = tcp_packet(v6, payload, 0x18, seq, ident)
    segs = tso_split(vnet(1, 4 if v6 else 1, cstart + 20, mss, cstart, 16) + pkt)
    assert segs is not None
    writes = _native.gro_coalesce(segs)
    assert len(writes) == 1  # under 64 KiB in all: one GSO write
    again = [s for w in writes for s in (_native.tso_split(w, 256) or [])]
    assert again == segs


@st.composite
def damaged_streams(draw: st.DrawFn) -> tuple[list[bytes], set[int]]:
    """Same-flow TCP runs (as a TSO split makes them, with junk between) with a few segments damaged
    once each: the IPv4 header checksum,
    the TCP checksum field or a payload byte (so the packet's checksum no longer holds)."""
    packets: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):  # streams that mostly coalesce when undamaged
        v6 = draw(st.booleans())
        payload = draw(st.randoms(use_true_random=False)).randbytes(draw(st.integers(1, 8000)))
        cstart = 40 if v6 else 20
        pkt = tcp_packet(v6, payload, draw(st.sampled_from([0x10, 0x18])), draw(st.integers(0, 2**32 - 1)),
                         draw(st.integers(0, 0xFFFF)))
        packets += tso_split(vnet(1, 4 if v6 else 1, cstart + 20, draw(st.sampled_from([100, 536, 1380])), cstart,
                                  16) + pkt) or []
        if draw(st.integers(0, 3)) == 0:
            packets.append(draw(st.binary(max_size=80)))
    segments = [k for k, p in enumerate(packets)
                if len(p) > 60 and ((p[0] == 0x45 and p[9] == 6) or (p[0] >> 4 == 6 and p[6] == 6))]
    if not segments:
        return packets, set()
    damaged = set(draw(st.lists(st.sampled_from(segments), min_size=1, max_size=4, unique=True)))
    for k in damaged:
        p = bytearray(packets[k])
        iphlen = 40 if p[0] >> 4 == 6 else 20
        where = draw(st.sampled_from(["tcp", "payload"] if iphlen == 40 else ["ip", "tcp", "payload"]))
        off = {"ip": 10, "tcp": iphlen + 16}.get(where) or draw(st.integers(iphlen + 20, len(p) - 1))
        p[off + draw(st.integers(0, 1)) if where != "payload" else off] ^= draw(st.integers(1, 255))
        packets[k] = bytes(p)
    return packets, damaged


@given(damaged_streams())
def test_gro_never_merges_bad_checksums(case: tuple[list[bytes], set[int]]) -> None:
    """Native and twin agree; a damaged segment is written alone and unchanged; every packet
    comes back byte for byte when the writes are split again (so nothing bad was merged)."""
    packets, damaged = case
    writes = _native.gro_coalesce(packets)
    assert writes == gro_coalesce(packets)
    for k in damaged:
        assert bytes(10) + packets[k] in writes
    again = [s for w in writes for s in (tso_split(w, 256) or [])]
    assert again == packets


def test_gro_bad_checksum_examples() -> None:
    """Three valid segments merge into one write; with the middle one's TCP checksum (v4, v6) or the
    IPv4 header checksum of the first broken, the broken one goes out alone."""
    for v6 in (False, True):
        cstart = 40 if v6 else 20
        segs = tso_split(vnet(1, 4 if v6 else 1, cstart + 20, 100, cstart, 16) + tcp_packet(v6, bytes(300), 0x10, 9, 1))
        assert segs is not None and len(segs) == 3
        assert len(_native.gro_coalesce(segs)) == 1 == len(gro_coalesce(segs))
        bad = bytearray(segs[1])
        bad[cstart + 16] ^= 1
        broken = [segs[0], bytes(bad), segs[2]]
        writes = _native.gro_coalesce(broken)
        assert writes == gro_coalesce(broken) and len(writes) == 3 and writes[1] == bytes(10) + bytes(bad)
        if not v6:
            bad = bytearray(segs[0])
            bad[11] ^= 0x10
            broken = [bytes(bad), segs[1], segs[2]]
            writes = _native.gro_coalesce(broken)
            assert writes == gro_coalesce(broken) and writes[0] == bytes(10) + bytes(bad) and len(writes) == 2


@given(damaged_streams(), st.lists(st.tuples(st.integers(0, 2**16), st.integers(1, 255)), max_size=6))
def test_gro_flipped_bytes_identical(case: tuple[list[bytes], set[int]], flips: list[tuple[int, int]]) -> None:
    """Bytes flipped anywhere (headers, lengths, flags, options): native and twin agree, and the
    writes split back into exactly the packets given (GRO never alters a packet)."""
    packets = list(case[0])
    for pos, mask in flips:
        if packets:
            k = pos % len(packets)
            p = bytearray(packets[k])
            if p:
                p[(pos // len(packets)) % len(p)] ^= mask
                packets[k] = bytes(p)
    writes = _native.gro_coalesce(packets)
    assert writes == gro_coalesce(packets)
    assert [s for w in writes for s in (tso_split(w, 256) or [])] == packets


@given(st.binary(min_size=10, max_size=10), st.booleans(), st.binary(max_size=3000), st.integers(0, 70))
def test_tso_split_random_headers_identical(hdr: bytes, v6: bool, payload: bytes, cut: int) -> None:
    """Any 10 header bytes over a real TCP packet (possibly cut short): native and twin agree."""
    pkt = tcp_packet(v6, payload, 0x18, 1, 2)
    data = hdr + (pkt[:cut] if cut < 70 else pkt)
    assert _native.tso_split(data, 64) == tso_split(data, 64)


@given(st.booleans(), st.binary(min_size=1, max_size=30000), st.sampled_from([8, 40, 200, 536, 1380]),
       st.integers(0, 2**32 - 1), st.integers(0, 0xFFFF))
def test_gro_long_runs_identical(v6: bool, payload: bytes, mss: int, seq: int, ident: int) -> None:
    """Runs past the iovec limit of one coalesced write (tiny segments: copied whole) and below it
    (payloads handed over where they lie) both come out as the twin's writes."""
    cstart = 40 if v6 else 20
    segs = tso_split(vnet(1, 4 if v6 else 1, cstart + 20, mss, cstart, 16) + tcp_packet(v6, payload, 0x10, seq, ident))
    assert segs
    assert _native.gro_coalesce(segs) == gro_coalesce(segs)
