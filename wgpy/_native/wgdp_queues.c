/* What the I/O loops of a multi-queue TUN share (wireguard.md §10; wgdp_io.c runs the loops).
 *
 * Each TUN queue has a TX and an RX loop.  The TX loops share nothing but the
 * context: the kernel keeps each flow on one queue.  The RX loops share the UDP
 * sockets, and with them the order of the inner packets, which TCP needs kept:
 *  - a recvmmsg and the ticket that numbers its batch happen under one mutex
 *    (wgdp_rx_recv), so tickets follow the sockets' order;
 *  - the batch is then opened with no lock shared with the other loops;
 *  - its TUN writes wait until every earlier ticket has passed
 *    (wgdp_rx_turn_wait), and passing (wgdp_rx_turn_pass) lets the next one go.
 *    Every ticket taken is passed, also when a loop stops on an error, or the
 *    loops after it would wait for ever.
 * With one queue the ticket is always its own turn and nothing waits.
 *
 * Only queue 0's RX loop waits for the sockets (epoll, or poll() without it).
 * The other RX loops are helpers: they sleep until a receive finds a backlog
 * (a full batch, or BACKLOG_BYTES or more at once: one loop is not keeping up)
 * and then receive and open batches beside it until a receive finds less.  A
 * loop that is keeping up thus keeps its large batches (each helper woken per
 * datagram would split them into small ones, and on a machine whose cores are
 * all busy that costs more CPU per byte than the parallel opening saves), and
 * the helpers' crypto runs in parallel exactly when the socket fills up. */
#include "wgdp_internal.h"
#include <errno.h>
#include <poll.h>
#include <unistd.h>
#include <time.h>
#include <sys/epoll.h>

#define BACKLOG_BYTES (512u * 1024u)

int wgdp_io_init(struct wgdp *ctx)
{
    pthread_mutex_init(&ctx->rxo.recv, NULL);
    pthread_mutex_init(&ctx->rxo.lock, NULL);
    pthread_cond_init(&ctx->rxo.cv, NULL);
    {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&ctx->rxo.backlog_cv, &a);
        pthread_condattr_destroy(&a);
    }
    ctx->rxo.next = ctx->rxo.turn = 0;
    ctx->rxo.backlog = 0;
    return 0;
}

void wgdp_rx_order_free(struct wgdp *ctx)
{
    pthread_cond_destroy(&ctx->rxo.cv);
    pthread_cond_destroy(&ctx->rxo.backlog_cv);
    pthread_mutex_destroy(&ctx->rxo.lock);
    pthread_mutex_destroy(&ctx->rxo.recv);
}

int wgdp_rx_recv(struct wgdp *ctx, int fd, struct mmsghdr *m, uint32_t n, uint64_t *ticket)
{
    int got;
    uint64_t bytes = 0;
    pthread_mutex_lock(&ctx->rxo.recv);
    got = recvmmsg(fd, m, n, MSG_DONTWAIT, NULL);
    if (got > 0) {
        *ticket = ctx->rxo.next++;
        for (int i = 0; i < got; i++)
            bytes += m[i].msg_len;
    }
    ctx->rxo.backlog = got > 0 && ((uint32_t)got == n || bytes >= BACKLOG_BYTES);
    if (ctx->rxo.backlog)
        pthread_cond_broadcast(&ctx->rxo.backlog_cv);
    pthread_mutex_unlock(&ctx->rxo.recv);
    return got;
}

int wgdp_rx_backlog_wait(struct wgdp *ctx, int ms)
{
    struct timespec until;
    int backlog;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ctx->rxo.recv);
    if (!ctx->rxo.backlog)
        pthread_cond_timedwait(&ctx->rxo.backlog_cv, &ctx->rxo.recv, &until);
    backlog = ctx->rxo.backlog;
    pthread_mutex_unlock(&ctx->rxo.recv);
    return backlog;
}

void wgdp_rx_turn_wait(struct wgdp *ctx, uint64_t ticket)
{
    pthread_mutex_lock(&ctx->rxo.lock);
    while (ctx->rxo.turn != ticket)
        pthread_cond_wait(&ctx->rxo.cv, &ctx->rxo.lock);
    pthread_mutex_unlock(&ctx->rxo.lock);
}

void wgdp_rx_turn_pass(struct wgdp *ctx, uint64_t ticket)
{
    pthread_mutex_lock(&ctx->rxo.lock);
    if (ctx->rxo.turn == ticket) {
        ctx->rxo.turn++;
        pthread_cond_broadcast(&ctx->rxo.cv);
    }
    pthread_mutex_unlock(&ctx->rxo.lock);
}

int wgdp_rx_epoll(int sock4, int sock6, int wake_fd)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    int fds[3] = {sock4, sock6, wake_fd};
    for (int k = 0; k < 3 && epfd >= 0; k++) {
        struct epoll_event ev = {.events = EPOLLIN | (k < 2 ? EPOLLEXCLUSIVE : 0), .data.u32 = (uint32_t)k};
        if (fds[k] >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fds[k], &ev) < 0) {
            close(epfd);
            epfd = -1;
        }
    }
    return epfd;
}

int wgdp_rx_wait(int epfd, int sock4, int sock6, int flush_ms, int ready[2])
{
    int r;
    ready[0] = ready[1] = 0;
    if (epfd >= 0) {
        struct epoll_event ev[3];
        r = epoll_wait(epfd, ev, 3, flush_ms);
        for (int i = 0; i < r; i++)
            if (ev[i].data.u32 < 2)  /* 2 is the wake fd: the caller looks at stop */
                ready[ev[i].data.u32] = (ev[i].events & (EPOLLIN | EPOLLERR)) != 0;
    } else {
        struct pollfd p[2] = {{.fd = sock4, .events = POLLIN}, {.fd = sock6, .events = POLLIN}};
        r = poll(p, 2, flush_ms);
        for (int k = 0; k < 2 && r > 0; k++)
            ready[k] = p[k].fd >= 0 && (p[k].revents & (POLLIN | POLLERR));
    }
    return r < 0 ? -errno : r;
}
