/* BLAKE2s (RFC 7693): the one-shot keyed 16-byte MAC (wgdp_mac16, WireGuard's MAC) and an
 * incremental hash for the handshake's HASH/HMAC/KDF (wgdp_noise.c).  Twins: hashlib.blake2s
 * via wgpy.crypto.mac / wgpy.crypto.hash_ (tests/native/test_noise_diff.py, test_hsgate_diff.py). */
#include "wgdp_internal.h"
#include <string.h>

static const uint32_t IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                               0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};
static const uint8_t SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static inline uint32_t rotr(uint32_t x, int n) { return x >> n | x << (32 - n); }
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define G(a, b, c, d, x, y)                                                                        \
    do {                                                                                           \
        v[a] += v[b] + (x); v[d] = rotr(v[d] ^ v[a], 16); v[c] += v[d]; v[b] = rotr(v[b] ^ v[c], 12); \
        v[a] += v[b] + (y); v[d] = rotr(v[d] ^ v[a], 8);  v[c] += v[d]; v[b] = rotr(v[b] ^ v[c], 7);  \
    } while (0)

static void compress(uint32_t h[8], const uint8_t block[64], uint64_t t, int last)
{
    uint32_t m[16], v[16];
    for (int i = 0; i < 16; i++)
        m[i] = le32(block + 4 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= (uint32_t)t;
    v[13] ^= (uint32_t)(t >> 32);
    if (last)
        v[14] = ~v[14];
#pragma GCC unroll 10
    for (int r = 0; r < 10; r++) {
        const uint8_t *s = SIGMA[r];
        G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

/* the MAC's state after its key block (for a message that follows: len > 0) */
void wgdp_mac16_prepare(const uint8_t *key, uint32_t *state)
{
    uint8_t block[64];
    memcpy(state, IV, 8 * sizeof(uint32_t));
    state[0] ^= 0x01010000u ^ (32u << 8) ^ 16u;
    memset(block, 0, sizeof(block));
    memcpy(block, key, 32);
    compress(state, block, 64, 0);
}

/* wgdp_mac16 from a prepared state (len > 0): one compression fewer per message */
void wgdp_mac16_from(const uint32_t *state, const uint8_t *msg, size_t len, uint8_t *out)
{
    uint32_t h[8];
    uint8_t block[64];
    uint64_t t = 64;
    memcpy(h, state, sizeof(h));
    while (len > 64) {
        t += 64;
        compress(h, msg, t, 0);
        msg += 64;
        len -= 64;
    }
    memset(block, 0, sizeof(block));
    memcpy(block, msg, len);
    compress(h, block, t + len, 1);
    for (int i = 0; i < 4; i++) {
        out[4 * i] = (uint8_t)h[i];
        out[4 * i + 1] = (uint8_t)(h[i] >> 8);
        out[4 * i + 2] = (uint8_t)(h[i] >> 16);
        out[4 * i + 3] = (uint8_t)(h[i] >> 24);
    }
}

/* keyed BLAKE2s with a 32-byte key and a 16-byte digest (WireGuard's MAC) */
void wgdp_mac16(const uint8_t *key, const uint8_t *msg, size_t len, uint8_t *out)
{
    uint32_t h[8];
    if (len == 0) {  /* the key block is also the last block */
        uint8_t block[64];
        memcpy(h, IV, sizeof(h));
        h[0] ^= 0x01010000u ^ (32u << 8) ^ 16u;
        memset(block, 0, sizeof(block));
        memcpy(block, key, 32);
        compress(h, block, 64, 1);
        for (int i = 0; i < 16; i++)
            out[i] = (uint8_t)(h[i / 4] >> (8 * (i % 4)));
        return;
    }
    wgdp_mac16_prepare(key, h);
    wgdp_mac16_from(h, msg, len, out);
}

void wgdp_blake2s_init(wgdp_blake2s *s, size_t outlen, const uint8_t *key, size_t keylen)
{
    memcpy(s->h, IV, sizeof(s->h));
    s->h[0] ^= 0x01010000u ^ ((uint32_t)keylen << 8) ^ (uint32_t)outlen;
    s->t = 0;
    s->outlen = outlen;
    s->buflen = 0;
    memset(s->buf, 0, sizeof(s->buf));
    if (keylen) {
        memcpy(s->buf, key, keylen);
        s->buflen = 64;
    }
}

void wgdp_blake2s_update(wgdp_blake2s *s, const uint8_t *in, size_t len)
{
    while (len > 0) {
        size_t room;
        if (s->buflen == 64) {          /* more input follows: the buffered block is not the last */
            s->t += 64;
            compress(s->h, s->buf, s->t, 0);
            s->buflen = 0;
        }
        room = 64 - s->buflen;
        if (room > len)
            room = len;
        memcpy(s->buf + s->buflen, in, room);
        s->buflen += room;
        in += room;
        len -= room;
    }
}

void wgdp_blake2s_final(wgdp_blake2s *s, uint8_t *out)
{
    uint8_t full[32];
    s->t += s->buflen;
    memset(s->buf + s->buflen, 0, 64 - s->buflen);
    compress(s->h, s->buf, s->t, 1);
    for (int i = 0; i < 8; i++) {
        full[4 * i] = (uint8_t)s->h[i];
        full[4 * i + 1] = (uint8_t)(s->h[i] >> 8);
        full[4 * i + 2] = (uint8_t)(s->h[i] >> 16);
        full[4 * i + 3] = (uint8_t)(s->h[i] >> 24);
    }
    memcpy(out, full, s->outlen);
}
