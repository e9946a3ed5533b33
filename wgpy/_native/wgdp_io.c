/* Batched I/O loops: TUN -> seal -> sendmmsg, and recvmmsg -> open -> TUN
 * (wireguard.md §10).  Each loop runs on its own thread with the GIL released
 * and returns to Python only when Python has work: slow items, events older
 * than flush_ms, a poll timeout, stop, or a fatal TUN error (-errno).  An idle
 * loop parks for WGDP_PARK_MS unless published results wait for their flush_ms
 * tick; wgdp_stop wakes a parked loop through the context's eventfd.
 *
 * UDP offloads (wireguard-go 6a84778): with GSO on, consecutive messages to one
 * endpoint of one size (the last may be shorter) leave in one sendmmsg entry
 * with a UDP_SEGMENT cmsg; EIO (no checksum offload) switches GSO off for good
 * and the messages are resent one by one.  With GRO on, UDP_GRO is set on the
 * sockets and a coalesced datagram is split by the gso_size cmsg before it is
 * opened.  Without either, one datagram per mmsghdr.
 *
 * Multi-queue TUN: each queue has a TX and an RX loop (wgdp_*_q, buffers per
 * queue); the RX loops share the sockets, those beyond queue 0 help only under a
 * backlog, and all write in receive order (wgdp_queues.c).
 *
 * A TUN write that fails is a counted drop, never the end of the loop: EIO
 * (the link is down, e.g. between `wg setconf` and `ip link set up`) counts
 * as tun-down, ENOBUFS/EAGAIN (queue full) as tun-queue-full; only the errors
 * of a deleted interface (EBADFD, ENXIO, ENODEV, EBADF) return -errno. */
#include "wgdp_internal.h"
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>
#include <netinet/udp.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define SLOT 65536u
#define OUT_SLOT (SLOT + 64u)
#define MAX_SLOTS 1024u
#define GSO_MAX_SEGS 64u
#define GSO_MAX_BYTES 65000u
#define CTRL_SIZE 64u
#define MAX_SEGS_PER_DATAGRAM (SLOT / 32u)
#define TSO_EXTRA 256u /* packet slots beyond max_batch for the segments of the last TSO read */
#define VNET_HDR 10u
/* how long the loops of queues beyond 0 wait before looking at stop again: queue 0's loops
 * tick the mailbox every flush_ms, the others need not wake an idle daemon as often */
#define IDLE_WAIT_MS 100

struct tx_ent {
    uint8_t *data;
    uint32_t len;
    wgdp_addr ep;
};

struct io_bufs {
    uint32_t slots;
    uint8_t *buf;                     /* rx: slots * SLOT datagrams */
    uint8_t *raw;                     /* tx: one TUN read with a virtio-net header */
    uint8_t *out;                     /* tx: slots * OUT_SLOT: TUN packets at +16, sealed there */
    uint32_t *len;
    struct tx_ent *ents;              /* tx: sealed messages in order */
    uint32_t *segs;                   /* tx: segments per mmsghdr */
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_storage *names;
    uint8_t *ctrl;                    /* slots * CTRL_SIZE */
    uint8_t **wptr;                   /* rx: inner packets waiting to be written */
    uint32_t *wlen;
    uint32_t nw;
    uint8_t *coal;                    /* rx: one coalesced TUN write (GRO) */
    wgdp_result res;                  /* one batch's events/slow/drops, published to the mailbox */
    int gro_fd[2];
    uint64_t ticket;                  /* rx: this batch's place in the write order */
    int has_turn;                     /* rx: the batch's writes may go now */
};

int wgdp_set_offloads(wgdp *ctx, int gso, int gro)
{
    atomic_store(&ctx->gso, gso ? 1 : 0);
    atomic_store(&ctx->gro, gro ? 1 : 0);
    return wgdp_offloads(ctx);
}

int wgdp_offloads(wgdp *ctx) { return atomic_load(&ctx->gso) | atomic_load(&ctx->gro) << 1; }

void wgdp_set_tun_vnet(wgdp *ctx, int on) { atomic_store(&ctx->tun_vnet, on ? 1 : 0); }

static void bufs_free(struct io_bufs *b)
{
    if (!b)
        return;
    free(b->buf);
    free(b->raw);
    free(b->out);
    free(b->len);
    free(b->ents);
    free(b->segs);
    free(b->msgs);
    free(b->iov);
    free(b->names);
    free(b->ctrl);
    free(b->wptr);
    free(b->wlen);
    free(b->coal);
    free(b->res.events);
    free(b->res.slow);
    free(b->res.slow_buf);
    free(b);
}

/* new run of the loops (maybe on new sockets that reuse old fd numbers): enable GRO again */
void wgdp_io_restart(struct wgdp *ctx)
{
    for (uint32_t q = 0; q < WGDP_MAX_QUEUES; q++)
        if (ctx->rxb[q])
            ctx->rxb[q]->gro_fd[0] = ctx->rxb[q]->gro_fd[1] = -1;
}

void wgdp_io_free(struct wgdp *ctx)
{
    for (uint32_t q = 0; q < WGDP_MAX_QUEUES; q++) {
        bufs_free(ctx->txb[q]);
        bufs_free(ctx->rxb[q]);
        ctx->txb[q] = ctx->rxb[q] = NULL;
    }
    wgdp_rx_order_free(ctx);
}

static struct io_bufs *bufs_get(struct io_bufs **slot, uint32_t slots, int tx)
{
    struct io_bufs *b = *slot;
    if (b && b->slots >= slots)
        return b;
    bufs_free(b);
    *slot = NULL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->slots = slots;
    b->buf = tx ? malloc(1) : malloc((size_t)slots * SLOT);
    b->out = tx ? malloc((size_t)slots * OUT_SLOT) : malloc(1);
    b->raw = malloc(SLOT + VNET_HDR);
    b->len = calloc(slots, sizeof(uint32_t));
    b->ents = calloc(slots, sizeof(struct tx_ent));
    b->segs = calloc(slots, sizeof(uint32_t));
    b->msgs = calloc(slots, sizeof(struct mmsghdr));
    b->iov = calloc(slots, sizeof(struct iovec));
    b->names = calloc(slots, sizeof(struct sockaddr_storage));
    b->ctrl = calloc(slots, CTRL_SIZE);
    b->wptr = calloc(MAX_SEGS_PER_DATAGRAM, sizeof(uint8_t *));
    b->wlen = calloc(MAX_SEGS_PER_DATAGRAM, sizeof(uint32_t));
    b->coal = malloc(65535 + VNET_HDR);
    b->res.events_cap = b->res.slow_cap = MAX_SEGS_PER_DATAGRAM;
    b->res.slow_buf_cap = tx ? slots * SLOT : 2 * SLOT;
    b->res.events = calloc(b->res.events_cap, sizeof(wgdp_event));
    b->res.slow = calloc(b->res.slow_cap, sizeof(wgdp_slow));
    b->res.slow_buf = malloc(b->res.slow_buf_cap);
    b->gro_fd[0] = b->gro_fd[1] = -1;
    if (!b->buf || !b->raw || !b->out || !b->len || !b->ents || !b->segs || !b->msgs || !b->iov || !b->names || !b->ctrl ||
        !b->wptr || !b->wlen || !b->coal || !b->res.events || !b->res.slow || !b->res.slow_buf) {
        bufs_free(b);
        return NULL;
    }
    *slot = b;
    return b;
}

/* errors of a TUN whose interface is gone (a write's EIO is handled before: link down) */
static int tun_gone(int err) { return err == EBADFD || err == EIO || err == ENXIO || err == ENODEV || err == EBADF; }

static socklen_t to_sockaddr(const wgdp_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(a->port);
        memcpy(&sin->sin_addr, a->addr, 4);
        return sizeof(*sin);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(a->port);
    memcpy(&sin6->sin6_addr, a->addr, 16);
    return sizeof(*sin6);
}

static void from_sockaddr(const struct sockaddr_storage *ss, wgdp_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        a->family = 4;
        a->port = ntohs(sin->sin_port);
        memcpy(a->addr, &sin->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        a->port = ntohs(sin6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            a->family = 4;
            memcpy(a->addr, (const uint8_t *)&sin6->sin6_addr + 12, 4);
        } else {
            a->family = 6;
            memcpy(a->addr, &sin6->sin6_addr, 16);
        }
    }
}

/* ------------------------------------------------------------------ send side */

/* one message per segment, for a GSO entry the kernel refused */
static void send_singly(int fd, struct mmsghdr *m, uint32_t segs, wgdp_result *res)
{
    for (uint32_t s = 0; s < segs; s++) {
        struct msghdr h = m->msg_hdr;
        ssize_t r;
        h.msg_iov = m->msg_hdr.msg_iov + s;
        h.msg_iovlen = 1;
        h.msg_control = NULL;
        h.msg_controllen = 0;
        do
            r = sendmsg(fd, &h, 0);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            res->drops[WGDP_DROP_IO_SEND]++;
    }
}

static void send_all(struct wgdp *ctx, int fd, struct mmsghdr *msgs, const uint32_t *segs, uint32_t n,
                     wgdp_result *res)
{
    uint32_t sent = 0;
    int waits = 0;
    while (sent < n) {
        int r = sendmmsg(fd, msgs + sent, n - sent, 0);
        if (r > 0) {
            sent += (uint32_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == ENOBUFS) && waits < 50) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            waits++;
            poll(&p, 1, 20);
            continue;
        }
        if (segs[sent] > 1 && (errno == EIO || errno == EINVAL || errno == EMSGSIZE)) {
            if (errno == EIO)
                atomic_store(&ctx->gso, 0);  /* no checksum offload on this path: GSO off for good */
            send_singly(fd, &msgs[sent], segs[sent], res);
        } else {
            res->drops[WGDP_DROP_IO_SEND] += segs[sent];  /* unreachable, EMSGSIZE, ...: skip it */
        }
        sent++;
    }
}

static int same_addr(const wgdp_addr *a, const wgdp_addr *b)
{
    return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16);
}

/* build and send the mmsghdrs of one family from the sealed messages, grouping for GSO */
static void send_family(struct wgdp *ctx, struct io_bufs *b, uint32_t n, int family, int fd, wgdp_result *res)
{
    int gso = atomic_load(&ctx->gso);
    uint32_t m = 0, iv = 0, gsz = 0, bytes = 0;
    int open_group = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct tx_ent *e = &b->ents[i];
        if (e->ep.family != family)
            continue;
        b->iov[iv].iov_base = e->data;
        b->iov[iv].iov_len = e->len;
        if (gso && open_group && m > 0 && e->len <= gsz && b->segs[m - 1] < GSO_MAX_SEGS &&
            bytes + e->len <= GSO_MAX_BYTES && same_addr(&e->ep, &b->ents[i - 1].ep)) {
            b->msgs[m - 1].msg_hdr.msg_iovlen++;
            b->segs[m - 1]++;
            bytes += e->len;
            if (e->len < gsz)
                open_group = 0;  /* a shorter segment ends the group */
        } else {
            struct mmsghdr *h = &b->msgs[m];
            memset(h, 0, sizeof(*h));
            h->msg_hdr.msg_iov = &b->iov[iv];
            h->msg_hdr.msg_iovlen = 1;
            h->msg_hdr.msg_name = &b->names[m];
            h->msg_hdr.msg_namelen = to_sockaddr(&e->ep, &b->names[m]);
            b->segs[m++] = 1;
            gsz = bytes = e->len;
            open_group = 1;
        }
        iv++;
    }
    for (uint32_t k = 0; k < m; k++) {
        if (b->segs[k] > 1) {
            struct msghdr *h = &b->msgs[k].msg_hdr;
            struct cmsghdr *c;
            uint16_t size = (uint16_t)((struct iovec *)h->msg_iov)[0].iov_len;
            h->msg_control = b->ctrl + (size_t)k * CTRL_SIZE;
            h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            memset(h->msg_control, 0, h->msg_controllen);
            c = CMSG_FIRSTHDR(h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            memcpy(CMSG_DATA(c), &size, sizeof(size));
        }
    }
    if (m)
        send_all(ctx, fd, b->msgs, b->segs, m, res);
}

int wgdp_tun_to_udp(wgdp *ctx, int tun_fd, int sock4, int sock6, uint32_t max_batch, int flush_ms)
{
    return wgdp_tun_to_udp_q(ctx, 0, tun_fd, sock4, sock6, max_batch, flush_ms);
}

int wgdp_tun_to_udp_q(wgdp *ctx, uint32_t queue, int tun_fd, int sock4, int sock6, uint32_t max_batch, int flush_ms)
{
    struct io_bufs *b;
    wgdp_result *res;
    if (queue >= WGDP_MAX_QUEUES)
        return -EINVAL;
    if (max_batch == 0 || max_batch > MAX_SLOTS)
        max_batch = 128;
    if (flush_ms <= 0)
        flush_ms = 20;
    if (!(b = bufs_get(&ctx->txb[queue], max_batch + TSO_EXTRA, 1)))
        return -ENOMEM;
    res = &b->res;
    wgdp_result_reset(res);
    for (;;) {
        struct pollfd fds[2] = {{.fd = tun_fd, .events = POLLIN}, {.fd = ctx->wake_fd, .events = POLLIN}};
        struct pollfd p;
        uint32_t n = 0, k = 0;
        int r, vnet = atomic_load(&ctx->tun_vnet);
        int wait = ctx->wake_fd >= 0 ? wgdp_idle_wait_ms(ctx, flush_ms) : queue == 0 ? flush_ms : IDLE_WAIT_MS;
        double now;
        if (atomic_load(&ctx->stop))
            return 0;
        r = poll(fds, ctx->wake_fd >= 0 ? 2 : 1, wait);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        p = fds[0];
        if (r > 0 && !p.revents)
            continue;  /* only the wake fd: stop is asked */
        if (r == 0) {
            wgdp_mbox_tick(ctx, wgdp_now(), flush_ms);
            continue;
        }
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
            return p.revents & POLLNVAL ? -EBADF : -EIO;
        while (n < max_batch) {
            /* packets land behind the room for the message header and are sealed in place */
            uint8_t *at = b->out + (size_t)n * OUT_SLOT + WGDP_HEADER;
            ssize_t got = vnet ? read(tun_fd, b->raw, SLOT + VNET_HDR) : read(tun_fd, at, SLOT);
            if (got >= 0 && vnet) {
                int cnt = wgdp_tso_split(b->raw, (uint32_t)got, at, OUT_SLOT, b->slots - n, b->len + n);
                if (cnt < 0)
                    res->drops[WGDP_DROP_INVALID_INNER_PACKET]++;
                else
                    n += (uint32_t)cnt;
                continue;
            }
            if (got < 0) {
                int err = errno;
                if (err == EINTR)
                    continue;
                if (err != EAGAIN && n == 0 && tun_gone(err))
                    return -err;
                break;
            }
            b->len[n++] = (uint32_t)got;
        }
        now = wgdp_now();
        pthread_rwlock_rdlock(&ctx->lock);
        for (uint32_t i = 0; i < n; i++) {
            struct tx_ent *e = &b->ents[k];
            uint32_t peer;
            int len;
            e->data = b->out + (size_t)i * OUT_SLOT;
            len = wgdp_encrypt_one(ctx, now, e->data + WGDP_HEADER, b->len[i], e->data, OUT_SLOT, &peer,
                                   &e->ep, res);
            if (len <= 0)
                continue;
            if ((e->ep.family == 4 && sock4 < 0) || (e->ep.family == 6 && sock6 < 0)) {
                res->drops[WGDP_DROP_IO_SEND]++;
                continue;
            }
            e->len = (uint32_t)len;
            k++;
        }
        pthread_rwlock_unlock(&ctx->lock);
        if (k) {
            send_family(ctx, b, k, 4, sock4, res);
            send_family(ctx, b, k, 6, sock6, res);
        }
        wgdp_mbox_publish(ctx, 0, res, now, flush_ms);
        wgdp_result_reset(res);
    }
}

/* ------------------------------------------------------------------ receive side */

static void enable_gro(struct wgdp *ctx, struct io_bufs *b, int k, int fd)
{
    int one = 1;
    if (fd < 0 || b->gro_fd[k] == fd || !atomic_load(&ctx->gro))
        return;
    b->gro_fd[k] = fd;
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0)
        atomic_store(&ctx->gro, 0);  /* kernel without UDP_GRO: stay unsegmented */
}

static uint32_t gro_size(struct msghdr *h, uint32_t len)
{
    struct cmsghdr *c;
    for (c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int size = 0;
            size_t n = c->cmsg_len - CMSG_LEN(0);
            memcpy(&size, CMSG_DATA(c), n < sizeof(size) ? n : sizeof(size));
            return size > 0 && (uint32_t)size < len ? (uint32_t)size : len;
        }
    }
    return len;
}

struct tun_sink {
    int fd;
    wgdp_result *res;
};

static int tun_emit(void *arg, const struct iovec *iov, int iovcnt, uint32_t len)
{
    struct tun_sink *t = arg;
    ssize_t r;
    (void)len;
    do
        r = iovcnt == 1 ? write(t->fd, iov[0].iov_base, iov[0].iov_len) : writev(t->fd, iov, iovcnt);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int err = errno;
        if (err == EIO)  /* the link is down (not IFF_UP): drop until it comes up again */
            t->res->drops[WGDP_DROP_TUN_DOWN]++;
        else if (err == ENOBUFS || err == EAGAIN)
            t->res->drops[WGDP_DROP_TUN_QUEUE_FULL]++;
        else if (tun_gone(err)) {
            t->res->err = err;
            return -err;
        } else
            t->res->drops[WGDP_DROP_IO_TUN_WRITE]++;
    }
    return 0;
}

/* the batch's writes are done: the next ticket's may go (every ticket ends here, also on error) */
static void rx_turn_end(struct wgdp *ctx, struct io_bufs *b)
{
    if (!b->has_turn)
        wgdp_rx_turn_wait(ctx, b->ticket);
    wgdp_rx_turn_pass(ctx, b->ticket);
    b->has_turn = 0;
}

/* write the collected inner packets (in ticket order): coalesced (GRO) behind virtio-net headers, or one by one */
static int flush_writes(struct wgdp *ctx, struct io_bufs *b, int tun_fd, int vnet, wgdp_result *res)
{
    struct tun_sink sink = {tun_fd, res};
    int rc = 0;
    if (b->nw && !b->has_turn) {
        wgdp_rx_turn_wait(ctx, b->ticket);
        b->has_turn = 1;
    }
    if (vnet)
        rc = wgdp_gro_run(b->wptr, b->wlen, b->nw, b->coal, tun_emit, &sink);
    else
        for (uint32_t i = 0; i < b->nw && rc >= 0; i++)
            rc = tun_emit(&sink, &(struct iovec){.iov_base = b->wptr[i], .iov_len = b->wlen[i]}, 1, b->wlen[i]);
    b->nw = 0;
    return rc < 0 ? rc : 0;
}

/* open every segment of one (possibly coalesced) datagram in place; queue the packets */
static int open_datagram(struct wgdp *ctx, struct io_bufs *b, double now, uint8_t *data, uint32_t len,
                         uint32_t seg, const wgdp_addr *src, int tun_fd, int vnet, wgdp_result *res)
{
    if (b->nw + len / seg + 1 > MAX_SEGS_PER_DATAGRAM && flush_writes(ctx, b, tun_fd, vnet, res) < 0)
        return -1;
    pthread_rwlock_rdlock(&ctx->lock);
    for (uint32_t off = 0; off < len && b->nw < MAX_SEGS_PER_DATAGRAM; off += seg) {
        uint32_t n = len - off < seg ? len - off : seg;
        uint8_t *msg = data + off;
        int ilen = wgdp_decrypt_one(ctx, now, msg, n, src, msg + 16, res);
        if (ilen > 0) {
            b->wptr[b->nw] = msg + 16;
            b->wlen[b->nw++] = (uint32_t)ilen;
        }
    }
    pthread_rwlock_unlock(&ctx->lock);
    return 0;
}

int wgdp_udp_to_tun(wgdp *ctx, int sock4, int sock6, int tun_fd, uint32_t max_batch, int flush_ms)
{
    return wgdp_udp_to_tun_q(ctx, 0, sock4, sock6, tun_fd, max_batch, flush_ms);
}

static int rx_loop(wgdp *ctx, uint32_t queue, int sock4, int sock6, int tun_fd, uint32_t max_batch, int flush_ms,
                   int epfd);

int wgdp_udp_to_tun_q(wgdp *ctx, uint32_t queue, int sock4, int sock6, int tun_fd, uint32_t max_batch, int flush_ms)
{
    int epfd, rc;
    if (queue >= WGDP_MAX_QUEUES)
        return -EINVAL;
    epfd = queue == 0 ? wgdp_rx_epoll(sock4, sock6, ctx->wake_fd) : -1;  /* the others are helpers (wgdp_queues.c) */
    rc = rx_loop(ctx, queue, sock4, sock6, tun_fd, max_batch, flush_ms, epfd);
    if (epfd >= 0)
        close(epfd);
    return rc;
}

static int rx_loop(wgdp *ctx, uint32_t queue, int sock4, int sock6, int tun_fd, uint32_t max_batch, int flush_ms,
                   int epfd)
{
    struct io_bufs *b;
    wgdp_result *res;
    int vnet = atomic_load(&ctx->tun_vnet);
    if (max_batch == 0 || max_batch > MAX_SLOTS)
        max_batch = 128;
    if (flush_ms <= 0)
        flush_ms = 20;
    if (!(b = bufs_get(&ctx->rxb[queue], max_batch, 0)))
        return -ENOMEM;
    res = &b->res;
    wgdp_result_reset(res);
    enable_gro(ctx, b, 0, sock4);
    enable_gro(ctx, b, 1, sock6);
    for (;;) {
        int ready[2], fds[2] = {sock4, sock6};
        int r;
        if (atomic_load(&ctx->stop))
            return 0;
        int parks = ctx->wake_fd >= 0 && (queue != 0 || epfd >= 0);  /* poll() without epoll has no wake fd */
        int wait = parks ? wgdp_idle_wait_ms(ctx, flush_ms) : queue == 0 ? flush_ms : IDLE_WAIT_MS;
        if (queue == 0)
            r = wgdp_rx_wait(epfd, sock4, sock6, wait, ready);
        else
            r = ready[0] = ready[1] = wgdp_rx_backlog_wait(ctx, wait);
        if (r == -EINTR)
            continue;
        if (r < 0)
            return r;
        if (r == 0) {
            wgdp_mbox_tick(ctx, wgdp_now(), flush_ms);
            continue;
        }
        for (int k = 0; k < 2; k++) {
            struct mmsghdr *m = b->msgs;
            double now;
            int got, rc;
            if (fds[k] < 0 || !ready[k])
                continue;
            for (uint32_t i = 0; i < max_batch; i++) {
                memset(&m[i], 0, sizeof(m[i]));
                b->iov[i].iov_base = b->buf + (size_t)i * SLOT;
                b->iov[i].iov_len = SLOT;
                m[i].msg_hdr.msg_iov = &b->iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
                m[i].msg_hdr.msg_name = &b->names[i];
                m[i].msg_hdr.msg_namelen = sizeof(b->names[i]);
                m[i].msg_hdr.msg_control = b->ctrl + (size_t)i * CTRL_SIZE;
                m[i].msg_hdr.msg_controllen = CTRL_SIZE;
            }
            got = wgdp_rx_recv(ctx, fds[k], m, max_batch, &b->ticket);
            if (got <= 0)
                continue;  /* EAGAIN (another queue's loop took it), or a queued ICMP error: not ours to act on */
            now = wgdp_now();  /* one clock read per batch, as on the send side */
            for (int i = 0; i < got; i++) {
                wgdp_addr src;
                uint32_t len = m[i].msg_len;
                if ((m[i].msg_hdr.msg_flags & MSG_TRUNC) || len == 0) {
                    res->drops[WGDP_DROP_MALFORMED]++;
                    continue;
                }
                from_sockaddr(&b->names[i], &src);
                if (open_datagram(ctx, b, now, b->buf + (size_t)i * SLOT, len, gro_size(&m[i].msg_hdr, len), &src,
                                  tun_fd, vnet, res) < 0) {
                    rx_turn_end(ctx, b);
                    wgdp_mbox_publish(ctx, 1, res, now, flush_ms);
                    return -res->err;
                }
                if (res->n_slow || res->n_events) {  /* drops alone wait for the batch's end: a flood of */
                    wgdp_mbox_publish(ctx, 1, res, now, flush_ms);  /* junk costs no mailbox lock each */
                    wgdp_result_reset(res);
                }
            }
            rc = flush_writes(ctx, b, tun_fd, vnet, res);
            rx_turn_end(ctx, b);
            if (rc < 0) {
                wgdp_mbox_publish(ctx, 1, res, wgdp_now(), flush_ms);
                return -res->err;
            }
            wgdp_mbox_publish(ctx, 1, res, wgdp_now(), flush_ms);
            wgdp_result_reset(res);
        }
    }
}
