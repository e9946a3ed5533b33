/* The handshake gate: what the RX thread checks before a handshake message may enter the
 * mailbox's handshake ring (wireguard.md §4).
 *
 * 1. mac1 = BLAKE2s-128 keyed with HASH("mac1----" || our static public key) over msg[0 : len-32],
 *    stored at msg[len-32 : len-16].  Our own BLAKE2s (wgdp_blake2s.c) keeps this free of OpenSSL
 *    context set-up, so a junk initiation costs well under a microsecond.
 * 2. Under load (128 messages waited in the handshake ring or it overflowed within the last second, or Python
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

void wgdp_set_mac1_key(wgdp *ctx, const uint8_t *key)
{
    pthread_rwlock_wrlock(&ctx->lock);
    ctx->has_mac1_key = key != NULL;
    if (key) {
        memcpy(ctx->mac1_key, key, 32);
        wgdp_mac16_prepare(key, ctx->mac1_state);  /* the key block once, not per message */
    } else {
        memset(ctx->mac1_key, 0, 32);
        memset(ctx->mac1_state, 0, sizeof(ctx->mac1_state));
    }
    pthread_rwlock_unlock(&ctx->lock);
}

/* 1 if msg (an initiation or response of its exact size) carries our mac1; caller holds the read lock */
int wgdp_mac1_ok(struct wgdp *ctx, const uint8_t *msg, uint32_t len)
{
    uint8_t mac[16];
    uint8_t diff = 0;
    if (!ctx->has_mac1_key || len <= 32)
        return 0;
    wgdp_mac16_from(ctx->mac1_state, msg, len - 32, mac);
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
