/* The data-plane context: index table, peers, allowed-IPs routes, and the
 * per-packet encrypt/decrypt steps of a batch (wireguard.md §2, §8); routes are in wgdp_routes.c,
 * the I/O loops in wgdp_io.c, the mailbox in wgdp_mbox.c.
 * Twin: wgpy.dataplane_twin.PureDataPlane (Python drives it through wgpy.dataplane.NativeDataPlane). */
#include "wgdp_internal.h"
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

wgdp *wgdp_new(void)
{
    struct wgdp *ctx = calloc(1, sizeof(*ctx));
    pthread_rwlockattr_t attr;
    if (!ctx)
        return NULL;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&ctx->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    atomic_init(&ctx->mtu, 1420);
    atomic_init(&ctx->stop, 0);
    atomic_init(&ctx->gso, 0);
    atomic_init(&ctx->gro, 0);
    atomic_init(&ctx->tun_vnet, 0);
    ctx->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);  /* -1: the loops fall back to ticking */
    wgdp_io_init(ctx);
    if (wgdp_mbox_init(ctx) < 0 || wgdp_gate_init(ctx) < 0) {
        wgdp_mbox_free(ctx);
        pthread_rwlock_destroy(&ctx->lock);
        if (ctx->wake_fd >= 0)
            close(ctx->wake_fd);
        free(ctx);
        return NULL;
    }
    return ctx;
}

void wgdp_free(wgdp *ctx)
{
    if (!ctx)
        return;
    for (uint32_t b = 0; b < WGDP_INDEX_BUCKETS; b++) {
        struct wgdp_keypair *kp = ctx->index[b];
        while (kp) {
            struct wgdp_keypair *next = kp->hnext;
            wgdp_keypair_unref(kp);
            kp = next;
        }
    }
    for (uint32_t i = 0; i < ctx->n_peers; i++)
        if (ctx->peers[i]) {
            wgdp_keypair_unref(ctx->peers[i]->current);
            pthread_mutex_destroy(&ctx->peers[i]->lock);
            free(ctx->peers[i]);
        }
    free(ctx->peers);
    wgdp_route_table_free(ctx->routes);
    wgdp_io_free(ctx);
    wgdp_mbox_free(ctx);
    wgdp_gate_free(ctx);
    pthread_rwlock_destroy(&ctx->lock);
    if (ctx->wake_fd >= 0)
        close(ctx->wake_fd);
    free(ctx);
}

void wgdp_set_mtu(wgdp *ctx, uint32_t mtu) { atomic_store(&ctx->mtu, mtu); }
void wgdp_stop(wgdp *ctx, int stop)
{
    uint64_t one = 1;
    atomic_store(&ctx->stop, stop);
    if (stop) {  /* wake the loops parked in poll/epoll and the RX helpers parked on their condition */
        if (ctx->wake_fd >= 0 && write(ctx->wake_fd, &one, sizeof(one)) < 0) {
            /* the counter is already non-zero: the loops are awake */
        }
        pthread_mutex_lock(&ctx->rxo.recv);
        pthread_cond_broadcast(&ctx->rxo.backlog_cv);
        pthread_mutex_unlock(&ctx->rxo.recv);
    } else {
        if (ctx->wake_fd >= 0 && read(ctx->wake_fd, &one, sizeof(one)) < 0) {
            /* nothing was written: no stop since the last start */
        }
        wgdp_io_restart(ctx);  /* called while the loops are not running */
    }
}

/* ------------------------------------------------------------------ index table */

static uint32_t bucket_of(uint32_t index) { return (index * 2654435761u) >> 20; }

struct wgdp_keypair *wgdp_index_find(struct wgdp *ctx, uint32_t index)
{
    struct wgdp_keypair *kp = ctx->index[bucket_of(index) & (WGDP_INDEX_BUCKETS - 1)];
    while (kp && kp->local_index != index)
        kp = kp->hnext;
    return kp;
}

static int unlink_index(struct wgdp *ctx, struct wgdp_keypair *kp)
{
    struct wgdp_keypair **pp = &ctx->index[bucket_of(kp->local_index) & (WGDP_INDEX_BUCKETS - 1)];
    while (*pp && *pp != kp)
        pp = &(*pp)->hnext;
    if (!*pp)
        return 0;
    *pp = kp->hnext;
    kp->hnext = NULL;
    return 1;
}

int wgdp_add_keypair(wgdp *ctx, wgdp_keypair *kp)
{
    struct wgdp_keypair *old, **head;
    pthread_rwlock_wrlock(&ctx->lock);
    old = wgdp_index_find(ctx, kp->local_index);
    if (old == kp) {
        pthread_rwlock_unlock(&ctx->lock);
        return 0;
    }
    if (old && unlink_index(ctx, old))
        wgdp_keypair_unref(old);
    head = &ctx->index[bucket_of(kp->local_index) & (WGDP_INDEX_BUCKETS - 1)];
    wgdp_keypair_ref(kp);
    kp->hnext = *head;
    *head = kp;
    pthread_rwlock_unlock(&ctx->lock);
    return 0;
}

void wgdp_remove_keypair(wgdp *ctx, wgdp_keypair *kp)
{
    struct wgdp_peer *peer;
    pthread_rwlock_wrlock(&ctx->lock);
    if (unlink_index(ctx, kp))
        wgdp_keypair_unref(kp);
    peer = wgdp_peer_get(ctx, kp->peer_id);
    if (peer && peer->current == kp) {
        peer->current = NULL;
        wgdp_keypair_unref(kp);
    }
    pthread_rwlock_unlock(&ctx->lock);
}

/* ------------------------------------------------------------------ peers */

struct wgdp_peer *wgdp_peer_get(struct wgdp *ctx, uint32_t id)
{
    return id < ctx->n_peers ? ctx->peers[id] : NULL;
}

int wgdp_peer_add(wgdp *ctx, uint32_t peer_id, uint32_t generation)
{
    int rc = 0;
    pthread_rwlock_wrlock(&ctx->lock);
    if (peer_id >= ctx->n_peers) {
        uint32_t n = ctx->n_peers ? ctx->n_peers : 16;
        struct wgdp_peer **grown;
        while (n <= peer_id)
            n *= 2;
        grown = realloc(ctx->peers, n * sizeof(*grown));
        if (!grown) {
            rc = -1;
            goto out;
        }
        memset(grown + ctx->n_peers, 0, (n - ctx->n_peers) * sizeof(*grown));
        ctx->peers = grown;
        ctx->n_peers = n;
    }
    if (ctx->peers[peer_id] && ctx->peers[peer_id]->gen != generation) {  /* reassigned without a remove */
        struct wgdp_peer *old = ctx->peers[peer_id];
        ctx->peers[peer_id] = NULL;
        wgdp_keypair_unref(old->current);
        pthread_mutex_destroy(&old->lock);
        free(old);
    }
    if (!ctx->peers[peer_id]) {
        struct wgdp_peer *p = calloc(1, sizeof(*p));
        if (!p) {
            rc = -1;
            goto out;
        }
        pthread_mutex_init(&p->lock, NULL);
        p->gen = generation;
        ctx->peers[peer_id] = p;
    }
out:
    pthread_rwlock_unlock(&ctx->lock);
    return rc;
}

void wgdp_peer_remove(wgdp *ctx, uint32_t peer_id)
{
    struct wgdp_peer *p;
    pthread_rwlock_wrlock(&ctx->lock);
    p = wgdp_peer_get(ctx, peer_id);
    if (p) {
        ctx->peers[peer_id] = NULL;
        wgdp_keypair_unref(p->current);
        pthread_mutex_destroy(&p->lock);
        free(p);
    }
    pthread_rwlock_unlock(&ctx->lock);
}

void wgdp_peer_set_keypair(wgdp *ctx, uint32_t peer_id, wgdp_keypair *kp)
{
    struct wgdp_peer *p;
    pthread_rwlock_wrlock(&ctx->lock);
    p = wgdp_peer_get(ctx, peer_id);
    if (p && p->current != kp) {
        if (kp)
            wgdp_keypair_ref(kp);
        wgdp_keypair_unref(p->current);
        p->current = kp;
    }
    pthread_rwlock_unlock(&ctx->lock);
}

void wgdp_peer_set_endpoint(wgdp *ctx, uint32_t peer_id, const wgdp_addr *ep)
{
    struct wgdp_peer *p;
    pthread_rwlock_rdlock(&ctx->lock);
    p = wgdp_peer_get(ctx, peer_id);
    if (p) {
        pthread_mutex_lock(&p->lock);
        p->ep = *ep;
        pthread_mutex_unlock(&p->lock);
    }
    pthread_rwlock_unlock(&ctx->lock);
}

int wgdp_peer_enable_fast_tx(wgdp *ctx, uint32_t peer_id, uint32_t processed_seq)
{
    struct wgdp_peer *p;
    int on = 0;
    pthread_rwlock_rdlock(&ctx->lock);
    p = wgdp_peer_get(ctx, peer_id);
    if (p) {
        pthread_mutex_lock(&p->lock);
        if (p->slow_seq == processed_seq)
            p->fast_tx = 1;
        on = p->fast_tx;
        pthread_mutex_unlock(&p->lock);
    }
    pthread_rwlock_unlock(&ctx->lock);
    return on;
}

void wgdp_peer_disable_fast_tx(wgdp *ctx, uint32_t peer_id)
{
    struct wgdp_peer *p;
    pthread_rwlock_rdlock(&ctx->lock);
    p = wgdp_peer_get(ctx, peer_id);
    if (p) {
        pthread_mutex_lock(&p->lock);
        p->fast_tx = 0;
        pthread_mutex_unlock(&p->lock);
    }
    pthread_rwlock_unlock(&ctx->lock);
}

/* ------------------------------------------------------------------ batch results */

void wgdp_result_reset(wgdp_result *res)
{
    res->n_events = res->n_slow = res->slow_buf_used = 0;
    memset(res->drops, 0, sizeof(res->drops));
    res->packets = 0;
    res->err = 0;
}

static wgdp_event *event_for(wgdp_result *res, uint32_t peer_id, uint32_t gen)
{
    for (uint32_t i = res->n_events; i-- > 0;)
        if (res->events[i].peer_id == peer_id && res->events[i].generation == gen)
            return &res->events[i];
    if (res->n_events >= res->events_cap)
        return NULL;
    wgdp_event *ev = &res->events[res->n_events++];
    memset(ev, 0, sizeof(*ev));
    ev->peer_id = peer_id;
    ev->generation = gen;
    return ev;
}

static void push_slow(wgdp_result *res, const uint8_t *data, uint32_t len, uint32_t peer_id, uint32_t gen,
                      uint32_t seq, const wgdp_addr *src)
{
    wgdp_slow *s;
    if (res->n_slow >= res->slow_cap || res->slow_buf_cap - res->slow_buf_used < len) {
        res->drops[WGDP_DROP_IO_SEND]++;  /* the caller sized the buffers too small */
        return;
    }
    s = &res->slow[res->n_slow++];
    memset(s, 0, sizeof(*s));
    s->off = res->slow_buf_used;
    s->len = len;
    s->peer_id = peer_id;
    s->generation = gen;
    s->seq = seq;
    if (src)
        s->src = *src;
    memcpy(res->slow_buf + s->off, data, len);
    res->slow_buf_used += len;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* ------------------------------------------------------------------ one packet */

/* Seal one TUN packet.  Returns the message length (> 0) when sealed into out, else 0
 * (the packet went to the slow list or was counted as a drop).  Caller holds the read lock. */
int wgdp_encrypt_one(struct wgdp *ctx, double now, const uint8_t *pkt, uint32_t len, uint8_t *out,
                     uint32_t cap, uint32_t *peer_out, wgdp_addr *ep_out, wgdp_result *res)
{
    const uint8_t *addr;
    int family, fast;
    int64_t id;
    struct wgdp_peer *peer;
    struct wgdp_keypair *kp;
    size_t n = 0;
    wgdp_event *ev;
    uint32_t seq;
    family = len ? pkt[0] >> 4 : 0;
    if (family == 4 && len >= 20)
        addr = pkt + 16;
    else if (family == 6 && len >= 40)
        addr = pkt + 24;
    else {
        res->drops[WGDP_DROP_INVALID_INNER_PACKET]++;
        return 0;
    }
    id = wgdp_route_find(ctx->routes, family, addr);  /* reads 4 or 16 bytes; no table: -1 */
    peer = id >= 0 ? wgdp_peer_get(ctx, (uint32_t)id) : NULL;
    if (!peer) {
        res->drops[WGDP_DROP_NO_ROUTE]++;
        return 0;
    }
    kp = peer->current;
    pthread_mutex_lock(&peer->lock);
    fast = peer->fast_tx && peer->ep.family && kp;
    if (ep_out)
        *ep_out = peer->ep;
    pthread_mutex_unlock(&peer->lock);
    if (fast)
        n = wgdp_kp_seal_if_usable(kp, now, pkt, len, atomic_load(&ctx->mtu), out, cap);
    if (n > 0 && (ev = event_for(res, (uint32_t)id, peer->gen)) != NULL) {
        ev->messages++;
        ev->bytes += n;
        if (len)
            ev->data++;
        *peer_out = (uint32_t)id;
        res->packets++;
        return (int)n;
    }
    pthread_mutex_lock(&peer->lock);
    peer->fast_tx = 0;
    seq = ++peer->slow_seq;
    pthread_mutex_unlock(&peer->lock);
    if (n > 0)  /* sealed but no room for the event: cannot happen with sized buffers */
        res->drops[WGDP_DROP_IO_SEND]++;
    else
        push_slow(res, pkt, len, (uint32_t)id, peer->gen, seq, NULL);
    return 0;
}

static uint32_t inner_length(const uint8_t *p, uint32_t len)
{
    uint32_t l;
    int v = p[0] >> 4;
    if (v == 4) {
        if (len < 20)
            return 0;
        l = be16(p + 2);
        return l < 20 || l > len ? 0 : l;
    }
    if (v == 6) {
        if (len < 40)
            return 0;
        l = be16(p + 4) + 40u;
        return l > len ? 0 : l;
    }
    return 0;
}

/* Open one datagram.  Returns the inner packet length (> 0) written to out, else 0.
 * Caller holds the read lock; out has room for len - 32 bytes. */
int wgdp_decrypt_one(struct wgdp *ctx, double now, const uint8_t *msg, uint32_t len, const wgdp_addr *src,
                     uint8_t *out, wgdp_result *res)
{
    struct wgdp_keypair *kp;
    struct wgdp_peer *peer;
    wgdp_event *ev;
    int64_t plen, owner;
    uint32_t ilen, index;
    if (len < 4) {
        res->drops[WGDP_DROP_MALFORMED]++;
        return 0;
    }
    if (msg[0] == WGDP_MESSAGE_RELAY) {  /* Python checks, delivers or forwards it: no mac1, no gate here */
        push_slow(res, msg, len, 0, 0, 0, src);
        return 0;
    }
    if (msg[1] || msg[2] || msg[3] || msg[0] == 0 || msg[0] > 4) {
        res->drops[WGDP_DROP_UNKNOWN_TYPE]++;
        return 0;
    }
    if (msg[0] != WGDP_MESSAGE_TRANSPORT) {
        static const uint32_t sizes[4] = {0, 148, 92, 64};
        if (len != sizes[msg[0]])
            res->drops[WGDP_DROP_MALFORMED]++;
        else if (msg[0] != 3 && !wgdp_mac1_ok(ctx, msg, len))  /* cookie replies carry no mac1 */
            res->drops[WGDP_DROP_INVALID_MAC1]++;
        else if (msg[0] != 3 && !wgdp_gate_allow(ctx, src, now))
            res->drops[WGDP_DROP_RATE_LIMITED]++;
        else
            push_slow(res, msg, len, 0, 0, 0, src);
        return 0;
    }
    if (len < WGDP_HEADER + WGDP_TAG) {
        res->drops[WGDP_DROP_MALFORMED]++;
        return 0;
    }
    index = (uint32_t)msg[4] | (uint32_t)msg[5] << 8 | (uint32_t)msg[6] << 16 | (uint32_t)msg[7] << 24;
    kp = wgdp_index_find(ctx, index);
    if (!kp) {
        res->drops[WGDP_DROP_UNKNOWN_INDEX]++;
        return 0;
    }
    peer = wgdp_peer_get(ctx, kp->peer_id);
    if (!atomic_load(&kp->fast_rx) || !peer) {
        push_slow(res, msg, len, 0, 0, 0, src);
        return 0;
    }
    if (!(now - kp->created < WGDP_REJECT_AFTER_TIME)) {
        res->drops[WGDP_DROP_KEYPAIR_EXPIRED]++;
        return 0;
    }
    ev = event_for(res, kp->peer_id, peer->gen);
    if (!ev) {  /* cannot happen with sized buffers: let Python do it */
        push_slow(res, msg, len, 0, 0, 0, src);
        return 0;
    }
    plen = wgdp_keypair_open(kp, msg, len, out);
    if (plen < 0) {
        if (!ev->messages && res->events + res->n_events - 1 == ev)
            res->n_events--;  /* drop the empty event we just made */
        res->drops[-plen]++;
        return 0;
    }
    ev->messages++;
    ev->bytes += len;
    ev->endpoint = *src;
    pthread_mutex_lock(&peer->lock);
    if (memcmp(&peer->ep, src, sizeof(*src)))
        peer->ep = *src;
    pthread_mutex_unlock(&peer->lock);
    res->packets++;
    if (plen == 0)
        return 0;
    ev->data++;
    ilen = inner_length(out, (uint32_t)plen);
    if (!ilen) {
        res->drops[WGDP_DROP_INVALID_INNER_PACKET]++;
        return 0;
    }
    if (out[0] >> 4 == 4)
        owner = wgdp_route_find(ctx->routes, 4, out + 12);
    else
        owner = wgdp_route_find(ctx->routes, 6, out + 8);
    if (owner != (int64_t)kp->peer_id) {
        res->drops[WGDP_DROP_DISALLOWED_SOURCE]++;
        return 0;
    }
    return (int)ilen;
}

/* ------------------------------------------------------------------ buffer batches */

int wgdp_encrypt_batch(wgdp *ctx, double now, uint32_t n, const uint8_t *in, const uint32_t *in_off,
                       const uint32_t *in_len, uint8_t *out, uint32_t out_stride, uint32_t *out_len,
                       uint32_t *out_peer, wgdp_result *res)
{
    pthread_rwlock_rdlock(&ctx->lock);
    for (uint32_t i = 0; i < n; i++) {
        out_peer[i] = 0;
        out_len[i] = (uint32_t)wgdp_encrypt_one(ctx, now, in + in_off[i], in_len[i], out + (size_t)i * out_stride,
                                                out_stride, &out_peer[i], NULL, res);
    }
    pthread_rwlock_unlock(&ctx->lock);
    return 0;
}

int wgdp_decrypt_batch(wgdp *ctx, double now, uint32_t n, const uint8_t *in, const uint32_t *in_off,
                       const uint32_t *in_len, const wgdp_addr *src, uint8_t *out, uint32_t out_stride,
                       uint32_t *out_len, wgdp_result *res)
{
    pthread_rwlock_rdlock(&ctx->lock);
    for (uint32_t i = 0; i < n; i++)
        out_len[i] = (uint32_t)wgdp_decrypt_one(ctx, now, in + in_off[i], in_len[i], &src[i],
                                                out + (size_t)i * out_stride, res);
    pthread_rwlock_unlock(&ctx->lock);
    return 0;
}
