/* The handshake gate: what the RX thread checks before a handshake message may enter the
 * mailbox's handshake ring (wireguard.md §4).
 *
 * 1. mac1 = BLAKE2s-128 keyed with HASH("mac1----" || our static public key) over msg[0 : len-32],
 *    stored at msg[len-32 : len-16].  A small BLAKE2s (RFC 7693) keeps this free of OpenSSL
 *    context set-up, so a junk initiation costs well under a microsecond.
 * 2. Under load (the handshake ring filled to 1/8 or overflowed within the last second, or Python
 *    said so with wgdp_set_under_load), initiations and responses also pass a per-source token
 *    bucket, 20/s with a burst of 5, per IPv4 address and IPv6 /64 (the kernel's ratelimiter.c
 *    figures): a flood from a few addresses then fills the ring with at most that much, and a
 *    legitimate peer's messages (its first, answered by a cookie, and the next, with mac2) get
 *    in.  A refusal extends the load by a second, so the state lasts while the flood does.  The table is fixed (GATE_SLOTS, a colliding source takes the slot over).
 * Twins: wgpy.cookie.CookieChecker.check_mac1, wgpy.ratelimiter.RateLimiter, and
 * PureDataPlane._decrypt_one (tests/native/test_hsgate_diff.py). */
#include "wgdp_internal.h"
#include <stdlib.h>
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

/* keyed BLAKE2s with a 32-byte key and a 16-byte digest (WireGuard's MAC) */
void wgdp_mac16(const uint8_t key[32], const uint8_t *msg, size_t len, uint8_t out[16])
{
    uint32_t h[8];
    uint8_t block[64];
    uint64_t t = 64;
    memcpy(h, IV, sizeof(h));
    h[0] ^= 0x01010000u ^ (32u << 8) ^ 16u;
    memset(block, 0, sizeof(block));
    memcpy(block, key, 32);
    if (len == 0) {
        compress(h, block, t, 1);
    } else {
        compress(h, block, t, 0);
        while (len > 64) {
            t += 64;
            compress(h, msg, t, 0);
            msg += 64;
            len -= 64;
        }
        memset(block, 0, sizeof(block));
        memcpy(block, msg, len);
        compress(h, block, t + len, 1);
    }
    for (int i = 0; i < 4; i++) {
        out[4 * i] = (uint8_t)h[i];
        out[4 * i + 1] = (uint8_t)(h[i] >> 8);
        out[4 * i + 2] = (uint8_t)(h[i] >> 16);
        out[4 * i + 3] = (uint8_t)(h[i] >> 24);
    }
}

void wgdp_set_mac1_key(wgdp *ctx, const uint8_t *key)
{
    pthread_rwlock_wrlock(&ctx->lock);
    ctx->has_mac1_key = key != NULL;
    if (key)
        memcpy(ctx->mac1_key, key, 32);
    else
        memset(ctx->mac1_key, 0, 32);
    pthread_rwlock_unlock(&ctx->lock);
}

/* 1 if msg (an initiation or response of its exact size) carries our mac1; caller holds the read lock */
int wgdp_mac1_ok(struct wgdp *ctx, const uint8_t *msg, uint32_t len)
{
    uint8_t mac[16];
    uint8_t diff = 0;
    if (!ctx->has_mac1_key || len < 32)
        return 0;
    wgdp_mac16(ctx->mac1_key, msg, len - 32, mac);
    for (int i = 0; i < 16; i++)
        diff |= mac[i] ^ msg[len - 32 + i];
    return diff == 0;
}

/* ------------------------------------------------------------------ under load */

#define GATE_SLOTS 4096u
#define GATE_NS 1000000000ull
#define GATE_COST (GATE_NS / 20)       /* RATELIMIT_PACKETS_PER_SECOND */
#define GATE_MAX (GATE_COST * 5)       /* RATELIMIT_BURST */
#define GATE_UNDER_LOAD_AFTER 1.0      /* UNDER_LOAD_AFTER_TIME */

struct gate_entry {
    uint8_t key[9];                    /* family byte, then 4 (IPv4) or 8 (IPv6 /64) address bytes */
    uint8_t used;
    uint64_t last_ns, tokens;
};

struct wgdp_gate {
    pthread_mutex_t lock;
    double under_load_until;
    struct gate_entry t[GATE_SLOTS];
};

int wgdp_gate_init(struct wgdp *ctx)
{
    struct wgdp_gate *g = calloc(1, sizeof(*g));
    if (!g)
        return -1;
    pthread_mutex_init(&g->lock, NULL);
    g->under_load_until = -1.0;
    ctx->gate = g;
    return 0;
}

void wgdp_gate_free(struct wgdp *ctx)
{
    if (!ctx->gate)
        return;
    pthread_mutex_destroy(&ctx->gate->lock);
    free(ctx->gate);
    ctx->gate = NULL;
}

void wgdp_set_under_load(wgdp *ctx, double until)
{
    struct wgdp_gate *g = ctx->gate;
    pthread_mutex_lock(&g->lock);
    if (until > g->under_load_until)
        g->under_load_until = until;
    pthread_mutex_unlock(&g->lock);
}

/* the mailbox saw its handshake ring fill up at now */
void wgdp_gate_loaded(struct wgdp *ctx, double now) { wgdp_set_under_load(ctx, now + GATE_UNDER_LOAD_AFTER); }

/* 1 if a handshake message from src may go on: not under load, or its source has a token */
int wgdp_gate_allow(struct wgdp *ctx, const wgdp_addr *src, double now)
{
    struct wgdp_gate *g = ctx->gate;
    uint8_t key[9] = {0};
    uint32_t h = 2166136261u;
    uint64_t now_ns;
    struct gate_entry *e;
    int ok = 1;
    key[0] = src->family;
    memcpy(key + 1, src->addr, src->family == 4 ? 4 : 8);
    for (int i = 0; i < 9; i++)
        h = (h ^ key[i]) * 16777619u;
    now_ns = now > 0 ? (uint64_t)(now * 1e9 + 0.5) : 0;
    pthread_mutex_lock(&g->lock);
    if (!(g->under_load_until > now))
        goto out;
    e = &g->t[h & (GATE_SLOTS - 1)];
    if (!e->used || memcmp(e->key, key, sizeof(key))) {
        memcpy(e->key, key, sizeof(key));
        e->used = 1;
        e->last_ns = now_ns;
        e->tokens = GATE_MAX - GATE_COST;
        goto out;
    }
    if (now_ns > e->last_ns) {
        e->tokens += now_ns - e->last_ns;
        e->last_ns = now_ns;
    }
    if (e->tokens > GATE_MAX)
        e->tokens = GATE_MAX;
    if (e->tokens >= GATE_COST) {
        e->tokens -= GATE_COST;
    } else {
        ok = 0;
        g->under_load_until = now + GATE_UNDER_LOAD_AFTER;  /* refusing is load: it lasts while the flood does */
    }
out:
    pthread_mutex_unlock(&g->lock);
    return ok;
}
