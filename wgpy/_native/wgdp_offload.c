/* TUN virtio-net offload (wireguard.md §10): split a TSO super-packet read with
 * IFF_VNET_HDR into MSS-sized IP packets and complete partial checksums (as
 * wireguard-go's tun/offload_linux.go gsoSplit does), and coalesce runs of
 * same-flow TCP segments into one GSO write for the TUN (GRO).
 * Twins: wgpy.offload.tso_split, gro_coalesce, checksum. */
#include "wgdp_internal.h"
#include <string.h>
#include <sys/uio.h>

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

/* sum + the 16-bit big-endian words of p (a trailing byte padded with zero), folded to 16
 * bits so callers can add more.  RFC 1071 2(B): the one's-complement sum does not depend
 * on byte order except for a final swap, so whole 64-bit native words are summed. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize")))  /* the main loop as SIMD adds: ~3x at MTU sizes (bench/README.md) */
#endif
static uint64_t csum_add(uint64_t sum, const uint8_t *p, uint32_t len)
{
    uint64_t acc = 0;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        acc += (v & 0xFFFFFFFFu) + (v >> 32);
    }
    for (; i + 2 <= len; i += 2) {
        uint16_t v;
        memcpy(&v, p + i, 2);
        acc += v;
    }
    while (acc >> 16)
        acc = (acc & 0xFFFF) + (acc >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    acc = (acc >> 8 | acc << 8) & 0xFFFF;
#endif
    if (i < len)
        acc += (uint32_t)p[i] << 8;
    return sum + acc;
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

/* ------------------------------------------------------------------ GRO on TUN write */

/* A TCP segment that may start or join a coalesced write: no IP options or
 * fragments, no extension headers, flags ACK (+PSH) only, some payload. */
struct seg {
    const uint8_t *p;
    uint32_t len, iphlen, hlen, payload, seq;
    int v6;
};

static int parse_seg(const uint8_t *p, uint32_t len, struct seg *s)
{
    uint32_t tcphlen;
    s->p = p;
    s->len = len;
    if (len < 20)
        return 0;
    if (p[0] >> 4 == 4) {
        if (p[0] != 0x45 || p[9] != 6 || (rd16(p + 6) & 0x3FFF) || rd16(p + 2) != len)
            return 0;
        s->v6 = 0;
        s->iphlen = 20;
    } else if (p[0] >> 4 == 6) {
        if (len < 40 || p[6] != 6 || (uint32_t)rd16(p + 4) + 40 != len)
            return 0;
        s->v6 = 1;
        s->iphlen = 40;
    } else {
        return 0;
    }
    if (len < s->iphlen + 20)
        return 0;
    tcphlen = (uint32_t)(p[s->iphlen + 12] >> 4) * 4;
    s->hlen = s->iphlen + tcphlen;
    if (tcphlen < 20 || s->hlen >= len || (p[s->iphlen + 13] & ~0x08) != 0x10)
        return 0;
    s->payload = len - s->hlen;
    s->seq = rd32(p + s->iphlen + 4);
    return 1;
}

/* q continues the flow of head (same addresses, ports, ack, options, window, TTL/TOS) at seq */
static int same_flow(const struct seg *head, const struct seg *q, uint32_t next_seq)
{
    const uint8_t *a = head->p, *b = q->p;
    if (q->v6 != head->v6 || q->hlen != head->hlen || q->seq != next_seq)
        return 0;
    if (head->v6) {
        if (memcmp(a, b, 4) || a[7] != b[7] || memcmp(a + 8, b + 8, 32))
            return 0;
    } else {
        if (a[1] != b[1] || a[6] != b[6] || a[8] != b[8] || memcmp(a + 12, b + 12, 8))
            return 0;
    }
    a += head->iphlen;
    b += q->iphlen;
    return !memcmp(a, b, 4) && !memcmp(a + 8, b + 8, 6) && !memcmp(a + 14, b + 14, 2) &&
           !memcmp(a + 20, b + 20, head->hlen - head->iphlen - 20);
}

/* the segment's checksums hold (IPv4 header; TCP over its pseudo-header, v4 and v6): a
 * coalesced write goes out NEEDS_CSUM, so the kernel would never see a bad one */
static int seg_csum_ok(const struct seg *s)
{
    const uint8_t *p = s->p;
    uint32_t tcplen = s->len - s->iphlen;
    uint64_t pseudo;
    if (s->v6) {
        pseudo = csum_add(0, p + 8, 32) + tcplen + 6;
    } else {
        if (wgdp_checksum(p, 20, 0) != 0)
            return 0;
        pseudo = csum_add(0, p + 12, 8) + tcplen + 6;
    }
    return wgdp_checksum(p + s->iphlen, tcplen, pseudo) == 0;
}

typedef wgdp_emit_fn emit_fn;

/* Coalesce runs of same-flow TCP segments into GSO writes (virtio-net header
 * first); only segments whose checksums hold are merged (wireguard-go does the
 * same), the others are written alone, unchanged.  Each pkts[i] must have VNET_HDR bytes of writable headroom before it
 * (a lone packet is written in place behind a zero header).  A coalesced write is
 * handed over as iovecs: the header and the head's IP/TCP headers (rewritten) from
 * cbuf, then every segment's payload where it lies, so the payload is not copied;
 * a run of more than GRO_IOV - 1 segments (tiny segments only) is copied into cbuf
 * whole instead (65535 + VNET_HDR bytes).  Returns the number of writes, or a
 * negative emit result. */
int wgdp_gro_run(uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint8_t *cbuf, emit_fn emit, void *arg)
{
    struct iovec iov[WGDP_GRO_IOV];
    uint32_t i = 0;
    int writes = 0, rc;
    while (i < n) {
        struct seg head, q;
        uint32_t j = i + 1, total = 0, next_seq, gso_size = 0;
        int closed = 0, psh = 0;
        if (parse_seg(pkts[i], lens[i], &head)) {
            total = head.len;
            gso_size = head.payload;
            next_seq = head.seq + head.payload;
            closed = (head.p[head.iphlen + 13] & 0x08) != 0;  /* PSH ends a run */
            while (!closed && j < n && parse_seg(pkts[j], lens[j], &q) && same_flow(&head, &q, next_seq) &&
                   q.payload <= gso_size && total + q.payload <= 65535) {
                if (j == i + 1 && !seg_csum_ok(&head))
                    break;  /* a bad checksum: the head goes out alone, as it came */
                if (!seg_csum_ok(&q))
                    break;  /* ends the run; q then fails as a head and goes out alone */
                total += q.payload;
                next_seq += q.payload;
                closed = q.payload < gso_size || (q.p[q.iphlen + 13] & 0x08);
                psh |= (q.p[q.iphlen + 13] & 0x08) != 0;
                j++;
            }
        }
        if (j == i + 1) {  /* alone: zero header in the headroom */
            memset(pkts[i] - VNET_HDR, 0, VNET_HDR);
            iov[0].iov_base = pkts[i] - VNET_HDR;
            iov[0].iov_len = lens[i] + VNET_HDR;
            rc = emit(arg, iov, 1, lens[i] + VNET_HDR);
        } else {
            uint8_t *o = cbuf + VNET_HDR;
            uint32_t tcplen = total - head.iphlen, segs = j - i, niov;
            uint64_t pseudo;
            memcpy(o, head.p, head.hlen);  /* the headers, rewritten below */
            if (psh)
                o[head.iphlen + 13] |= 0x08;
            cbuf[0] = F_NEEDS_CSUM;
            cbuf[1] = head.v6 ? GSO_TCPV6 : GSO_TCPV4;
            cbuf[2] = (uint8_t)head.hlen;
            cbuf[3] = (uint8_t)(head.hlen >> 8);
            cbuf[4] = (uint8_t)gso_size;
            cbuf[5] = (uint8_t)(gso_size >> 8);
            cbuf[6] = (uint8_t)head.iphlen;
            cbuf[7] = 0;
            cbuf[8] = 16;
            cbuf[9] = 0;
            if (head.v6) {
                wr16(o + 4, (uint16_t)(total - 40));
                pseudo = csum_add(0, o + 8, 32) + tcplen + 6;
            } else {
                wr16(o + 2, (uint16_t)total);
                wr16(o + 10, 0);
                wr16(o + 10, wgdp_checksum(o, 20, 0));
                pseudo = csum_add(0, o + 12, 8) + tcplen + 6;
            }
            wr16(o + head.iphlen + 16, (uint16_t)~wgdp_checksum(NULL, 0, pseudo));  /* partial: folded, not inverted */
            if (segs < WGDP_GRO_IOV) {
                iov[0].iov_base = cbuf;
                iov[0].iov_len = VNET_HDR + head.hlen;
                niov = 1;
                for (uint32_t k = i; k < j; k++) {  /* a run's segments share the head's header length */
                    iov[niov].iov_base = pkts[k] + head.hlen;
                    iov[niov].iov_len = lens[k] - head.hlen;
                    niov++;
                }
            } else {
                uint32_t used = head.hlen;
                for (uint32_t k = i; k < j; k++) {
                    memcpy(o + used, pkts[k] + head.hlen, lens[k] - head.hlen);
                    used += lens[k] - head.hlen;
                }
                iov[0].iov_base = cbuf;
                iov[0].iov_len = VNET_HDR + total;
                niov = 1;
            }
            rc = emit(arg, iov, (int)niov, total + VNET_HDR);
        }
        if (rc < 0)
            return rc;
        writes++;
        i = j;
    }
    return writes;
}

struct collect {
    uint8_t *out;
    uint32_t cap, used, n, max;
    uint32_t *off, *len;
};

static int collect_emit(void *arg, const struct iovec *iov, int iovcnt, uint32_t len)
{
    struct collect *c = arg;
    if (c->n >= c->max || c->cap - c->used < len)
        return -1;
    c->off[c->n] = c->used;
    for (int k = 0; k < iovcnt; k++) {
        memcpy(c->out + c->used, iov[k].iov_base, iov[k].iov_len);
        c->used += (uint32_t)iov[k].iov_len;
    }
    c->len[c->n++] = len;
    return 0;
}

int wgdp_gro_coalesce(uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint8_t *cbuf, uint8_t *out,
                      uint32_t out_cap, uint32_t *out_off, uint32_t *out_len, uint32_t max_out)
{
    struct collect c = {out, out_cap, 0, 0, max_out, out_off, out_len};
    return wgdp_gro_run(pkts, lens, n, cbuf, collect_emit, &c);
}
