/* Batched I/O loops: TUN -> seal -> sendmmsg, and recvmmsg -> open -> TUN
 * (wireguard.md §10).  Each loop runs on its own thread with the GIL released
 * and returns to Python only when Python has work: slow items, events older
 * than flush_ms, a poll timeout, stop, or a fatal TUN error (-errno). */
#include "wgdp_internal.h"
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#define SLOT 65536u
#define OUT_SLOT (SLOT + 64u)
#define MAX_SLOTS 1024u

void wgdp_io_scratch_free(struct io_scratch *s)
{
    free(s->buf);
    free(s->out);
    free(s->len);
    free(s->olen);
    free(s->peer);
    free(s->msgs4);
    free(s->msgs6);
    free(s->iov4);
    free(s->iov6);
    free(s->names);
    memset(s, 0, sizeof(*s));
}

static int scratch_init(struct io_scratch *s, uint32_t slots)
{
    if (s->slots >= slots)
        return 0;
    wgdp_io_scratch_free(s);
    s->buf = malloc((size_t)slots * SLOT);
    s->out = malloc((size_t)slots * OUT_SLOT);
    s->len = calloc(slots, sizeof(uint32_t));
    s->olen = calloc(slots, sizeof(uint32_t));
    s->peer = calloc(slots, sizeof(uint32_t));
    s->msgs4 = calloc(slots, sizeof(struct mmsghdr));
    s->msgs6 = calloc(slots, sizeof(struct mmsghdr));
    s->iov4 = calloc(slots, sizeof(struct iovec));
    s->iov6 = calloc(slots, sizeof(struct iovec));
    s->names = calloc(slots, sizeof(struct sockaddr_storage));
    if (!s->buf || !s->out || !s->len || !s->olen || !s->peer || !s->msgs4 || !s->msgs6 || !s->iov4 ||
        !s->iov6 || !s->names) {
        wgdp_io_scratch_free(s);
        return -1;
    }
    s->slots = slots;
    s->slot_size = SLOT;
    return 0;
}

static int pending(const wgdp_result *res)
{
    if (res->n_events || res->n_slow)
        return 1;
    for (int i = 0; i < WGDP_DROP_COUNT; i++)
        if (res->drops[i])
            return 1;
    return 0;
}

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

static void send_all(int fd, struct mmsghdr *msgs, uint32_t n, wgdp_result *res)
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
        res->drops[WGDP_DROP_IO_SEND]++;  /* unreachable endpoint, EMSGSIZE, ...: skip this one */
        sent++;
    }
}

/* how long to wait in poll: until pending events are due, else timeout_ms */
static int wait_ms(const wgdp_result *res, double first_pending, int timeout_ms, int flush_ms)
{
    if (first_pending > 0 && pending(res)) {
        int left = (int)((first_pending + flush_ms / 1000.0 - wgdp_now()) * 1000.0) + 1;
        if (left < 0)
            left = 0;
        return left < timeout_ms ? left : timeout_ms;
    }
    return timeout_ms;
}

static int room(const wgdp_result *res, uint32_t max_batch)
{
    return res->events_cap - res->n_events >= max_batch && res->slow_cap - res->n_slow >= max_batch &&
           res->slow_buf_cap - res->slow_buf_used >= (uint64_t)max_batch * SLOT;
}

int wgdp_tun_to_udp(wgdp *ctx, int tun_fd, int sock4, int sock6, uint32_t max_batch, int timeout_ms,
                    int flush_ms, wgdp_result *res)
{
    struct io_scratch *s = &ctx->tx;
    double first_pending = 0;
    if (max_batch == 0 || max_batch > MAX_SLOTS)
        max_batch = 128;
    if (scratch_init(s, max_batch) < 0)
        return -ENOMEM;
    for (;;) {
        struct pollfd p = {.fd = tun_fd, .events = POLLIN};
        struct mmsghdr *m4 = s->msgs4, *m6 = s->msgs6;
        struct iovec *v4 = s->iov4, *v6 = s->iov6;
        struct sockaddr_storage *names = s->names;
        uint32_t n = 0, n4 = 0, n6 = 0;
        int r;
        double now;
        if (atomic_load(&ctx->stop) || res->n_slow || !room(res, max_batch))
            return 0;
        if (first_pending > 0 && wgdp_now() - first_pending >= flush_ms / 1000.0)
            return 0;
        r = poll(&p, 1, wait_ms(res, first_pending, timeout_ms, flush_ms));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return 0;
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
            res->err = p.revents & POLLNVAL ? EBADF : EIO;
            return -res->err;
        }
        while (n < max_batch) {
            ssize_t got = read(tun_fd, s->buf + (size_t)n * SLOT, SLOT);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && n == 0 && tun_gone(errno)) {
                    res->err = errno;
                    return -errno;
                }
                break;
            }
            s->len[n++] = (uint32_t)got;
        }
        if (!n)
            continue;
        now = wgdp_now();
        pthread_rwlock_rdlock(&ctx->lock);
        for (uint32_t i = 0; i < n; i++) {
            wgdp_addr ep;
            uint8_t *out = s->out + (size_t)i * OUT_SLOT;
            int len = wgdp_encrypt_one(ctx, now, s->buf + (size_t)i * SLOT, s->len[i], out, OUT_SLOT, &s->peer[i],
                                       &ep, res, NULL);
            struct mmsghdr *m;
            struct iovec *v;
            if (len <= 0)
                continue;
            if (ep.family == 4 && sock4 >= 0) {
                m = &m4[n4];
                v = &v4[n4++];
            } else if (ep.family == 6 && sock6 >= 0) {
                m = &m6[n6];
                v = &v6[n6++];
            } else {
                res->drops[WGDP_DROP_IO_SEND]++;
                continue;
            }
            memset(m, 0, sizeof(*m));
            v->iov_base = out;
            v->iov_len = (size_t)len;
            m->msg_hdr.msg_iov = v;
            m->msg_hdr.msg_iovlen = 1;
            m->msg_hdr.msg_name = &names[i];
            m->msg_hdr.msg_namelen = to_sockaddr(&ep, &names[i]);
        }
        pthread_rwlock_unlock(&ctx->lock);
        if (n4)
            send_all(sock4, m4, n4, res);
        if (n6)
            send_all(sock6, m6, n6, res);
        if (first_pending == 0 && pending(res))
            first_pending = now;
    }
}

int wgdp_udp_to_tun(wgdp *ctx, int sock4, int sock6, int tun_fd, uint32_t max_batch, int timeout_ms,
                    int flush_ms, wgdp_result *res)
{
    struct io_scratch *s = &ctx->rx;
    double first_pending = 0;
    if (max_batch == 0 || max_batch > MAX_SLOTS)
        max_batch = 128;
    if (scratch_init(s, max_batch) < 0)
        return -ENOMEM;
    for (;;) {
        struct pollfd p[2] = {{.fd = sock4, .events = POLLIN}, {.fd = sock6, .events = POLLIN}};
        int r;
        if (atomic_load(&ctx->stop) || res->n_slow || !room(res, max_batch))
            return 0;
        if (first_pending > 0 && wgdp_now() - first_pending >= flush_ms / 1000.0)
            return 0;
        r = poll(p, 2, wait_ms(res, first_pending, timeout_ms, flush_ms));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return 0;
        for (int k = 0; k < 2; k++) {
            struct mmsghdr *m = s->msgs4;
            struct iovec *v = s->iov4;
            struct sockaddr_storage *names = s->names;
            double now;
            int got;
            if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLERR)))
                continue;
            for (uint32_t i = 0; i < max_batch; i++) {
                memset(&m[i], 0, sizeof(m[i]));
                v[i].iov_base = s->buf + (size_t)i * SLOT;
                v[i].iov_len = SLOT;
                m[i].msg_hdr.msg_iov = &v[i];
                m[i].msg_hdr.msg_iovlen = 1;
                m[i].msg_hdr.msg_name = &names[i];
                m[i].msg_hdr.msg_namelen = sizeof(names[i]);
            }
            got = recvmmsg(p[k].fd, m, max_batch, MSG_DONTWAIT, NULL);
            if (got <= 0)
                continue;  /* EAGAIN, or a queued ICMP error: not ours to act on */
            now = wgdp_now();
            pthread_rwlock_rdlock(&ctx->lock);
            for (int i = 0; i < got; i++) {
                wgdp_addr src;
                from_sockaddr(&names[i], &src);
                s->olen[i] = (uint32_t)wgdp_decrypt_one(ctx, now, s->buf + (size_t)i * SLOT, m[i].msg_len, &src,
                                                        s->out + (size_t)i * OUT_SLOT, res);
            }
            pthread_rwlock_unlock(&ctx->lock);
            for (int i = 0; i < got; i++) {
                ssize_t w;
                if (!s->olen[i])
                    continue;
                do
                    w = write(tun_fd, s->out + (size_t)i * OUT_SLOT, s->olen[i]);
                while (w < 0 && errno == EINTR);
                if (w < 0) {
                    if (tun_gone(errno)) {
                        res->err = errno;
                        return -errno;
                    }
                    res->drops[WGDP_DROP_IO_TUN_WRITE]++;
                }
            }
            if (first_pending == 0 && pending(res))
                first_pending = now;
        }
    }
}
