/* Cryptokey routing: the allowed-IPs table as one open-addressing hash of
 * (family, prefix length, masked address) -> peer id, probed longest populated
 * length first (wireguard.md §8).  Rebuilt wholesale from Python and swapped
 * under the context's write lock.  Twin: wgpy.allowedips.AllowedIPs. */
#include "wgdp_internal.h"
#include <stdlib.h>
#include <string.h>

void wgdp_route_table_free(struct route_table *t)
{
    if (!t)
        return;
    free(t->entries);
    free(t->slots);
    free(t);
}


static void mask_addr(uint8_t *dst, const uint8_t *src, int family, uint32_t len)
{
    uint32_t bytes = family == 4 ? 4 : 16;
    memset(dst, 0, 16);
    for (uint32_t i = 0; i < bytes; i++) {
        if (len >= 8 * (i + 1))
            dst[i] = src[i];
        else if (len > 8 * i)
            dst[i] = src[i] & (uint8_t)(0xFF << (8 - (len - 8 * i)));
    }
}

static uint32_t route_hash(int family, uint32_t len, const uint8_t *addr)
{
    uint64_t a, b, h;
    memcpy(&a, addr, 8);
    memcpy(&b, addr + 8, 8);
    h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL ^
        ((uint64_t)family << 8 | len) * 0x165667B19E3779F9ULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return (uint32_t)h;
}

static int64_t probe(struct route_table *t, int family, uint32_t len, const uint8_t *masked)
{
    uint32_t i = route_hash(family, len, masked) & t->mask;
    for (;;) {
        uint32_t s = t->slots[i];
        if (!s)
            return -1;
        struct route_entry *e = &t->entries[s - 1];
        if (e->family == family && e->len == len && !memcmp(e->addr, masked, 16))
            return e->peer_id;
        i = (i + 1) & t->mask;
    }
}

int64_t wgdp_route_find(struct route_table *t, int family, const uint8_t *addr)
{
    uint8_t masked[16];
    const uint8_t *lens;
    uint32_t n;
    if (!t)
        return -1;
    lens = family == 4 ? t->lens4 : t->lens6;
    n = family == 4 ? t->n4 : t->n6;
    for (uint32_t k = 0; k < n; k++) {
        int64_t id;
        mask_addr(masked, addr, family, lens[k]);
        id = probe(t, family, lens[k], masked);
        if (id >= 0)
            return id;
    }
    return -1;
}

int wgdp_set_routes(wgdp *ctx, uint32_t n, const uint8_t *families, const uint8_t *lens, const uint8_t *addrs,
                    const uint32_t *peer_ids)
{
    struct route_table *t = calloc(1, sizeof(*t)), *old;
    uint32_t size = 16;
    uint8_t seen4[33] = {0}, seen6[129] = {0};
    while (size < 2 * n + 2)
        size *= 2;
    if (!t)
        return -1;
    t->entries = calloc(n ? n : 1, sizeof(*t->entries));
    t->slots = calloc(size, sizeof(uint32_t));
    if (!t->entries || !t->slots) {
        wgdp_route_table_free(t);
        return -1;
    }
    t->mask = size - 1;
    for (uint32_t k = 0; k < n; k++) {
        int family = families[k];
        uint32_t len = lens[k], i;
        struct route_entry *e;
        if ((family != 4 && family != 6) || len > (family == 4 ? 32u : 128u))
            continue;
        e = &t->entries[t->n];
        e->family = (uint8_t)family;
        e->len = (uint8_t)len;
        e->peer_id = peer_ids[k];
        mask_addr(e->addr, addrs + 16 * k, family, len);
        i = route_hash(family, len, e->addr) & t->mask;
        while (t->slots[i]) {
            struct route_entry *o = &t->entries[t->slots[i] - 1];
            if (o->family == e->family && o->len == e->len && !memcmp(o->addr, e->addr, 16))
                break;
            i = (i + 1) & t->mask;
        }
        if (t->slots[i]) {          /* same prefix again: the later one owns it */
            t->entries[t->slots[i] - 1].peer_id = e->peer_id;
            continue;
        }
        t->slots[i] = ++t->n;
        if (family == 4)
            seen4[len] = 1;
        else
            seen6[len] = 1;
    }
    for (int l = 32; l >= 0; l--)
        if (seen4[l])
            t->lens4[t->n4++] = (uint8_t)l;
    for (int l = 128; l >= 0; l--)
        if (seen6[l])
            t->lens6[t->n6++] = (uint8_t)l;
    pthread_rwlock_wrlock(&ctx->lock);
    old = ctx->routes;
    ctx->routes = t;
    pthread_rwlock_unlock(&ctx->lock);
    wgdp_route_table_free(old);
    return 0;
}

int64_t wgdp_route_lookup(wgdp *ctx, const uint8_t *addr, uint32_t len)
{
    int64_t id = -1;
    uint8_t a[16] = {0};
    if (len != 4 && len != 16)
        return -1;
    memcpy(a, addr, len);
    pthread_rwlock_rdlock(&ctx->lock);
    if (ctx->routes)
        id = wgdp_route_find(ctx->routes, len == 4 ? 4 : 6, a);
    pthread_rwlock_unlock(&ctx->lock);
    return id;
}

