/* The mailbox between the I/O threads and the control thread.
 *
 * The TX/RX loops never take the GIL: after each batch they publish what
 * Python must see -- per-peer counters (accumulated in the peer, so nothing is
 * lost however long Python takes), slow items (bounded queues; beyond them
 * items are dropped and counted) and drop counts -- and write an
 * eventfd when slow items wait, or when counters have waited flush_ms.  The
 * event loop reads the eventfd and drains everything in one call.
 *
 * RX slow items are two queues that share nothing: transport messages Python
 * must open (key confirmation on the responder's `next` keypair) and handshake
 * messages (types 1-3, mac1 already checked by wgdp_decrypt_one).  A handshake
 * flood fills only the handshake ring (its overflow is the protocol drop
 * handshake-queue-full); transport overflow stays slow-overflow.  Relay frames (type 5,
 * wgpy/relay.py) share the transport queue: they carry the relayed pair's data. */
#include "wgdp_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#define MBOX_SLOTS ((uint32_t)WGDP_MAILBOX_SLOTS)
#define MBOX_BYTES ((uint32_t)WGDP_MAILBOX_BYTES)
/* pending handshake messages beyond this are dropped here: the engine works through its own
 * queue (1024) by time per loop turn, so a flood gains nothing by costing Python a conversion
 * per message; 256 of them fit in one drain */
#define MBOX_HS_SLOTS 256u
#define MBOX_HS_BYTES (MBOX_HS_SLOTS * 148u)
#define MBOX_HS_UNDER_LOAD 128u         /* = wgpy.constants.UNDER_LOAD_QUEUE_LEN */
#define DIR_TX 0
#define DIR_RX 1
#define DIR_HS 2   /* rx handshake messages */

struct mbox_dir {
    wgdp_slow slow[MBOX_SLOTS];
    uint32_t n_slow;
    uint8_t *buf;
    uint32_t buf_used;
    uint64_t drops[WGDP_DROP_COUNT];
};

/* the peers whose counters wait (acc[d].dirty), per direction, so a drain visits those and not every
 * slot: ids in the order they became dirty, perhaps stale (removed, or dirty again after a
 * reassignment: the drain skips what is not dirty any more); `all` when the list could not grow (the
 * drain then scans every slot, as it always may) */
struct dirty_list {
    uint32_t *ids;
    uint32_t n, cap;
    int all;
};

struct wgdp_mbox {
    pthread_mutex_t lock;
    struct mbox_dir dir[3];
    struct dirty_list dirty[2];
    int efd;
    int signalled;
    double pending_since;
};

int wgdp_mbox_init(struct wgdp *ctx)
{
    struct wgdp_mbox *m = calloc(1, sizeof(*m));
    if (!m)
        return -1;
    m->dir[DIR_TX].buf = malloc(MBOX_BYTES);
    m->dir[DIR_RX].buf = malloc(MBOX_BYTES);
    m->dir[DIR_HS].buf = malloc(MBOX_HS_BYTES);
    m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!m->dir[DIR_TX].buf || !m->dir[DIR_RX].buf || !m->dir[DIR_HS].buf || m->efd < 0) {
        for (int d = 0; d < 3; d++)
            free(m->dir[d].buf);
        if (m->efd >= 0)
            close(m->efd);
        free(m);
        return -1;
    }
    pthread_mutex_init(&m->lock, NULL);
    ctx->mbox = m;
    return 0;
}

void wgdp_mbox_free(struct wgdp *ctx)
{
    struct wgdp_mbox *m = ctx->mbox;
    if (!m)
        return;
    close(m->efd);
    for (int d = 0; d < 3; d++)
        free(m->dir[d].buf);
    for (int d = 0; d < 2; d++)
        free(m->dirty[d].ids);
    pthread_mutex_destroy(&m->lock);
    free(m);
    ctx->mbox = NULL;
}

int wgdp_notify_fd(wgdp *ctx) { return ctx->mbox ? ctx->mbox->efd : -1; }

static void signal_locked(struct wgdp_mbox *m)
{
    uint64_t one = 1;
    ssize_t r;
    m->signalled = 1;
    do
        r = write(m->efd, &one, sizeof(one));
    while (r < 0 && errno == EINTR);
}

static void maybe_signal(struct wgdp_mbox *m, double now, int flush_ms)
{
    if (m->signalled || m->pending_since == 0)
        return;
    if (m->dir[DIR_TX].n_slow || m->dir[DIR_RX].n_slow || m->dir[DIR_HS].n_slow || now - m->pending_since >= flush_ms / 1000.0)
        signal_locked(m);
}

static void mark_dirty(struct dirty_list *l, uint32_t id)
{
    if (l->all)
        return;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 64;
        uint32_t *grown = realloc(l->ids, cap * sizeof(*grown));
        if (!grown) {
            l->all = 1;
            return;
        }
        l->ids = grown;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
}

/* merge one batch's result (direction 0 = tx, 1 = rx) into the mailbox; the caller resets res */
void wgdp_mbox_publish(struct wgdp *ctx, int d, const wgdp_result *res, double now, int flush_ms)
{
    struct wgdp_mbox *m = ctx->mbox;
    struct mbox_dir *dir = &m->dir[d];
    int content = 0;
    if (!res->n_events && !res->n_slow) {
        int any = 0;
        for (int i = 0; i < WGDP_DROP_COUNT; i++)
            any |= res->drops[i] != 0;
        if (!any)
            return;
    }
    pthread_rwlock_rdlock(&ctx->lock);
    pthread_mutex_lock(&m->lock);
    for (uint32_t i = 0; i < res->n_events; i++) {
        const wgdp_event *ev = &res->events[i];
        struct wgdp_peer *p = wgdp_peer_get(ctx, ev->peer_id);
        if (!p || p->gen != ev->generation)
            continue;  /* the peer was removed (and its id perhaps reassigned) after the batch */
        p->acc[d].messages += ev->messages;
        p->acc[d].data += ev->data;
        p->acc[d].bytes += ev->bytes;
        if (ev->endpoint.family)
            p->acc[d].endpoint = ev->endpoint;
        if (!p->acc[d].dirty)
            mark_dirty(&m->dirty[d], ev->peer_id);
        p->acc[d].dirty = 1;
        content = 1;
    }
    for (uint32_t i = 0; i < res->n_slow; i++) {
        const wgdp_slow *s = &res->slow[i];
        const uint8_t *data = res->slow_buf + s->off;
        int hs = d == DIR_RX && s->len && data[0] != WGDP_MESSAGE_TRANSPORT && data[0] != WGDP_MESSAGE_RELAY;
        struct mbox_dir *q = hs ? &m->dir[DIR_HS] : dir;
        if (hs ? q->n_slow >= MBOX_HS_SLOTS || MBOX_HS_BYTES - q->buf_used < s->len
               : q->n_slow >= MBOX_SLOTS || MBOX_BYTES - q->buf_used < s->len) {
            dir->drops[hs ? WGDP_DROP_HANDSHAKE_QUEUE_FULL : WGDP_DROP_SLOW_OVERFLOW]++;
        } else {
            wgdp_slow *t = &q->slow[q->n_slow++];
            *t = *s;
            t->off = q->buf_used;
            memcpy(q->buf + q->buf_used, data, s->len);
            q->buf_used += s->len;
        }
        content = 1;
    }
    for (int i = 0; i < WGDP_DROP_COUNT; i++)
        if (res->drops[i]) {
            dir->drops[i] += res->drops[i];
            content = 1;
        }
    /* under load: the gate limits each source from now on.  Like wireguard-go and the kernel, only on a real
     * backlog: UNDER_LOAD_QUEUE_LEN (128, wireguard-go's QueueHandshakeSize / 8) messages waiting for Python,
     * or an overflow; a peer (or a bench) with a few dozen handshakes in flight is not refused */
    if (d == DIR_RX && (m->dir[DIR_HS].n_slow >= MBOX_HS_UNDER_LOAD || dir->drops[WGDP_DROP_HANDSHAKE_QUEUE_FULL]))
        wgdp_gate_loaded(ctx, now);
    if (content && m->pending_since == 0)
        m->pending_since = now;
    maybe_signal(m, now, flush_ms);
    pthread_mutex_unlock(&m->lock);
    pthread_rwlock_unlock(&ctx->lock);
}

/* called by the loops when idle: counters that waited flush_ms are signalled */
/* How long an idle loop may wait: flush_ms while published results wait for the tick that signals
 * them, else WGDP_PARK_MS (wgdp_stop wakes a parked loop through wake_fd; without it, flush_ms) */
int wgdp_idle_wait_ms(struct wgdp *ctx, int flush_ms)
{
    struct wgdp_mbox *m = ctx->mbox;
    int waiting;
    if (ctx->wake_fd < 0)
        return flush_ms;
    pthread_mutex_lock(&m->lock);
    waiting = !m->signalled && m->pending_since != 0;
    pthread_mutex_unlock(&m->lock);
    return waiting ? flush_ms : WGDP_PARK_MS;
}

void wgdp_mbox_tick(struct wgdp *ctx, double now, int flush_ms)
{
    struct wgdp_mbox *m = ctx->mbox;
    pthread_mutex_lock(&m->lock);
    maybe_signal(m, now, flush_ms);
    pthread_mutex_unlock(&m->lock);
}

/* dir's slow items into res (what does not fit stays, in order); 1 if some had to wait */
static int drain_slow(struct mbox_dir *dir, wgdp_result *res)
{
    int left = 0;
    uint32_t i;
    for (i = 0; i < dir->n_slow; i++) {
        wgdp_slow *s = &dir->slow[i];
        if (res->n_slow >= res->slow_cap || res->slow_buf_cap - res->slow_buf_used < s->len)
            break;
        res->slow[res->n_slow] = *s;
        res->slow[res->n_slow++].off = res->slow_buf_used;
        memcpy(res->slow_buf + res->slow_buf_used, dir->buf + s->off, s->len);
        res->slow_buf_used += s->len;
    }
    if (i < dir->n_slow) {  /* the rest next time (rare: the caller sized res like the mailbox) */
        uint32_t base = dir->slow[i].off, k = 0;
        memmove(dir->buf, dir->buf + base, dir->buf_used - base);
        dir->buf_used -= base;
        for (; i < dir->n_slow; i++, k++) {
            dir->slow[k] = dir->slow[i];
            dir->slow[k].off -= base;
        }
        dir->n_slow = k;
        left = 1;
    } else {
        dir->n_slow = dir->buf_used = 0;
    }
    return left;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* peer `id`'s waiting counters of direction d as one event of res; 0 when res is full */
static int drain_peer(struct wgdp *ctx, int d, uint32_t id, wgdp_result *res)
{
    struct wgdp_peer *p = wgdp_peer_get(ctx, id);
    wgdp_event *ev;
    if (!p || !p->acc[d].dirty)
        return 1;
    if (res->n_events >= res->events_cap)
        return 0;
    ev = &res->events[res->n_events++];
    memset(ev, 0, sizeof(*ev));
    ev->peer_id = id;
    ev->generation = p->gen;
    ev->messages = p->acc[d].messages;
    ev->data = p->acc[d].data;
    ev->bytes = p->acc[d].bytes;
    ev->endpoint = p->acc[d].endpoint;
    memset(&p->acc[d], 0, sizeof(p->acc[d]));
    return 1;
}

static int drain_dir(struct wgdp *ctx, struct wgdp_mbox *m, int d, wgdp_result *res)
{
    struct mbox_dir *dir = &m->dir[d];
    struct dirty_list *l = &m->dirty[d];
    uint32_t i = 0;
    /* rx: transport items first (key confirmation), then the handshake ring */
    int left = drain_slow(dir, res) | (d == DIR_RX ? drain_slow(&m->dir[DIR_HS], res) : 0);
    for (int j = 0; j < WGDP_DROP_COUNT; j++)
        res->drops[j] += dir->drops[j];
    memset(dir->drops, 0, sizeof(dir->drops));
    if (l->all) {  /* the list could not grow: every slot, in id order */
        for (uint32_t id = 0; id < ctx->n_peers; id++)
            if (!drain_peer(ctx, d, id, res))
                return 1;  /* the list stays `all` for the rest */
        l->all = 0;
        l->n = 0;
        return left;
    }
    if (l->n > 1)  /* (ids is NULL until the first peer is marked) */
        qsort(l->ids, l->n, sizeof(*l->ids), cmp_u32);  /* events in id order, as a scan gives them */
    for (; i < l->n; i++)
        if (!drain_peer(ctx, d, l->ids[i], res))
            break;
    if (i < l->n) {  /* res is full: the rest wait for the next drain */
        memmove(l->ids, l->ids + i, (l->n - i) * sizeof(*l->ids));
        left = 1;
    }
    l->n -= i;
    return left;
}

int wgdp_drain(wgdp *ctx, wgdp_result *tx, wgdp_result *rx)
{
    struct wgdp_mbox *m = ctx->mbox;
    uint64_t counter;
    int left;
    wgdp_result_reset(tx);
    wgdp_result_reset(rx);
    while (read(m->efd, &counter, sizeof(counter)) < 0 && errno == EINTR)
        ;
    pthread_rwlock_rdlock(&ctx->lock);
    pthread_mutex_lock(&m->lock);
    left = drain_dir(ctx, m, 0, tx) | drain_dir(ctx, m, 1, rx);
    m->signalled = 0;
    m->pending_since = left ? wgdp_now() : 0;
    if (left)
        signal_locked(m);
    pthread_mutex_unlock(&m->lock);
    pthread_rwlock_unlock(&ctx->lock);
    return left;
}
