/* TUN virtio-net offload: split a TSO super-packet read with IFF_VNET_HDR into
 * MSS-sized IP packets and complete partial checksums (wireguard.md §10;
 * wireguard-go tun/offload_linux.go gsoSplit).  Twin: wgpy.dataplane.tso_split. */
#include "wgdp_internal.h"
#include <string.h>

#define VNET_HDR 10
#define F_NEEDS_CSUM 1
#define GSO_NONE 0
#define GSO_TCPV4 1
#define GSO_TCPV6 4
#define GSO_ECN 0x80

static uint16_t rd16le(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)(v >> 16)); wr16(p + 2, (uint16_t)v); }

static uint64_t csum_add(uint64_t sum, const uint8_t *p, uint32_t len)
{
    uint32_t i = 0;
    for (; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (i < len)
        sum += (uint32_t)p[i] << 8;
    return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

uint16_t wgdp_checksum(const uint8_t *p, uint32_t len, uint64_t initial) { return csum_fold(csum_add(initial, p, len)); }

/* Returns the number of IP packets written to out (each at i * stride, lengths in
 * out_len), or -1 when the packet is malformed or would need more than max slots. */
int wgdp_tso_split(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t stride, uint32_t max, uint32_t *out_len)
{
    const uint8_t *pkt = in + VNET_HDR;
    uint32_t plen, gso_size, cstart, coff, iphlen, tcphlen, hlen, payload, nseg, seq;
    uint8_t flags, gso;
    int v6;
    if (len < VNET_HDR || max == 0)
        return -1;
    flags = in[0];
    gso = in[1] & (uint8_t)~GSO_ECN;
    gso_size = rd16le(in + 4);
    cstart = rd16le(in + 6);
    coff = rd16le(in + 8);
    plen = len - VNET_HDR;
    if (gso == GSO_NONE) {
        if (plen > stride)
            return -1;
        memcpy(out, pkt, plen);
        if (flags & F_NEEDS_CSUM) {
            if ((uint64_t)cstart + coff + 2 > plen)
                return -1;
            wr16(out + cstart + coff, wgdp_checksum(out + cstart, plen - cstart, 0));
        }
        out_len[0] = plen;
        return 1;
    }
    if (gso != GSO_TCPV4 && gso != GSO_TCPV6)
        return -1;
    v6 = gso == GSO_TCPV6;
    if (plen < 20 || (pkt[0] >> 4) != (v6 ? 6 : 4) || gso_size == 0)
        return -1;
    iphlen = v6 ? 40 : (uint32_t)(pkt[0] & 15) * 4;
    if (iphlen < 20 || cstart != iphlen || plen < cstart + 20)
        return -1;
    tcphlen = (uint32_t)(pkt[cstart + 12] >> 4) * 4;
    hlen = cstart + tcphlen;
    if (tcphlen < 20 || hlen > plen)
        return -1;
    payload = plen - hlen;
    nseg = payload ? (payload + gso_size - 1) / gso_size : 1;
    if (nseg > max || hlen + gso_size > stride)
        return -1;
    seq = rd32(pkt + cstart + 4);
    for (uint32_t i = 0; i < nseg; i++) {
        uint8_t *o = out + (size_t)i * stride;
        uint32_t off = i * gso_size, seg = payload - off < gso_size ? payload - off : gso_size;
        uint32_t tcplen = tcphlen + seg;
        uint64_t pseudo;
        memcpy(o, pkt, hlen);
        memcpy(o + hlen, pkt + hlen + off, seg);
        if (v6) {
            wr16(o + 4, (uint16_t)(hlen - 40 + seg));
            pseudo = csum_add(0, o + 8, 32) + tcplen + 6;
        } else {
            wr16(o + 2, (uint16_t)(hlen + seg));
            wr16(o + 4, (uint16_t)(rd16(pkt + 4) + i));
            wr16(o + 10, 0);
            wr16(o + 10, wgdp_checksum(o, iphlen, 0));
            pseudo = csum_add(0, o + 12, 8) + tcplen + 6;
        }
        wr32(o + cstart + 4, seq + off);
        if (i + 1 < nseg)
            o[cstart + 13] &= (uint8_t)~0x09;  /* FIN, PSH only on the last segment */
        if (i > 0)
            o[cstart + 13] &= (uint8_t)~0x80;  /* CWR only on the first */
        wr16(o + cstart + 16, 0);
        wr16(o + cstart + 16, wgdp_checksum(o + cstart, tcplen, pseudo));
        out_len[i] = hlen + seg;
    }
    return (int)nseg;
}
