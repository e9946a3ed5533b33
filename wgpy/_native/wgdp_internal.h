/* Internal structures shared by the wgpy native sources (not part of the cffi API). */
#ifndef WGDP_INTERNAL_H
#define WGDP_INTERNAL_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include "wgpy_native.h"

#define WGDP_REJECT_AFTER_MESSAGES (UINT64_MAX - 8192ULL) /* 2^64 - 2^13 - 1 */
#define WGDP_REJECT_AFTER_TIME 180.0
#define WGDP_REPLAY_WINDOW 8128ULL
#define WGDP_MESSAGE_TRANSPORT 4
#define WGDP_MESSAGE_RELAY 5      /* wgpy relay frame: always a slow item (wgpy/relay.py) */
#define WGDP_HEADER 16
#define WGDP_TAG 16
#define WGDP_INDEX_BUCKETS 4096

struct wgdp_keypair {
    atomic_int refs;
    uint32_t local_index, remote_index, peer_id;
    int is_initiator;
    double created;
    atomic_int fast_rx;
    atomic_int dead;
    pthread_mutex_t send_lock;
    uint8_t send_key[32];             /* under send_lock (zeroed by wgdp_keypair_zero) */
    uint64_t send_counter;            /* under send_lock */
    pthread_mutex_t recv_lock;
    uint8_t recv_key[32];             /* under recv_lock */
    wgdp_replay replay;               /* under recv_lock */
    struct wgdp_keypair *hnext;       /* index bucket chain, under the ctx lock */
};

struct wgdp_peer {
    pthread_mutex_t lock;             /* endpoint, fast_tx, slow_seq */
    uint32_t gen;                     /* generation of this assignment of the slot (constant) */
    wgdp_addr ep;
    int fast_tx;
    uint32_t slow_seq;
    struct wgdp_keypair *current;     /* under the ctx lock */
    struct {                          /* counters for Python, per direction, under the mailbox lock */
        uint64_t bytes;
        uint32_t messages, data;
        wgdp_addr endpoint;
        int dirty;
    } acc[2];
};

struct route_entry {
    uint8_t family, len;
    uint8_t addr[16];
    uint32_t peer_id;
};

struct route_table {
    struct route_entry *entries;
    uint32_t n;
    uint32_t *slots;                  /* open addressing, entry index + 1, 0 = empty */
    uint32_t mask;
    uint8_t lens4[33], n4, lens6[129], n6;  /* populated lengths, longest first */
};

struct io_bufs; /* wgdp_io.c */


struct wgdp {
    pthread_rwlock_t lock;
    struct wgdp_keypair *index[WGDP_INDEX_BUCKETS];
    struct wgdp_peer **peers;
    uint32_t n_peers;
    struct route_table *routes;
    atomic_uint mtu;
    atomic_int stop;
    int wake_fd;                                /* eventfd: readable once stop is asked (-1: none) */
    struct io_bufs *txb[WGDP_MAX_QUEUES], *rxb[WGDP_MAX_QUEUES];  /* per queue */
    struct {                                    /* the RX loops' write order (wgdp_io.c) */
        pthread_mutex_t recv;                   /* a recvmmsg and its ticket */
        pthread_mutex_t lock;                   /* turn */
        pthread_cond_t cv;
        uint64_t next, turn;                    /* tickets handed out; the ticket whose writes go now */
        pthread_cond_t backlog_cv;              /* helpers' wake-up, with the recv mutex */
        int backlog;                            /* the last receive found more than one loop keeps up with */
    } rxo;
    struct wgdp_mbox *mbox;
    atomic_int gso, gro, tun_vnet;              /* UDP offloads: 1 on, 0 off (also when the kernel refused) */
    uint8_t mac1_key[32];                       /* HASH("mac1----" || our public key), under the ctx lock */
    int has_mac1_key;
    uint32_t mac1_state[8];                     /* the MAC's state after that key block (wgdp_mac16_prepare) */
    struct wgdp_gate *gate;                     /* under-load admission, wgdp_hsgate.c */
};

/* crypto.c */
void wgdp_keypair_ref(struct wgdp_keypair *kp);
int wgdp_kp_usable(struct wgdp_keypair *kp, double now);
size_t wgdp_kp_seal_if_usable(struct wgdp_keypair *kp, double now, const uint8_t *packet, size_t len,
                              uint32_t mtu, uint8_t *out, size_t cap);
/* blake2s.c: incremental BLAKE2s (outlen <= 32, keylen <= 32) */
typedef struct {
    uint32_t h[8];
    uint64_t t;
    uint8_t buf[64];
    size_t buflen, outlen;
} wgdp_blake2s;
void wgdp_blake2s_init(wgdp_blake2s *s, size_t outlen, const uint8_t *key, size_t keylen);
void wgdp_blake2s_update(wgdp_blake2s *s, const uint8_t *in, size_t len);
void wgdp_blake2s_final(wgdp_blake2s *s, uint8_t *out);
void wgdp_mac16_prepare(const uint8_t *key, uint32_t *state);
void wgdp_mac16_from(const uint32_t *state, const uint8_t *msg, size_t len, uint8_t *out);

/* hsgate.c */
int wgdp_mac1_ok(struct wgdp *ctx, const uint8_t *msg, uint32_t len);
int wgdp_gate_init(struct wgdp *ctx);
void wgdp_gate_free(struct wgdp *ctx);
void wgdp_gate_loaded(struct wgdp *ctx, double now);
int wgdp_gate_allow(struct wgdp *ctx, const wgdp_addr *src, double now);
/* ctx.c */
struct wgdp_keypair *wgdp_index_find(struct wgdp *ctx, uint32_t index);
struct wgdp_peer *wgdp_peer_get(struct wgdp *ctx, uint32_t id);
int64_t wgdp_route_find(struct route_table *t, int family, const uint8_t *addr);
void wgdp_route_table_free(struct route_table *t);
int wgdp_encrypt_one(struct wgdp *ctx, double now, const uint8_t *pkt, uint32_t len, uint8_t *out,
                     uint32_t cap, uint32_t *peer_out, wgdp_addr *ep_out, wgdp_result *res);
int wgdp_decrypt_one(struct wgdp *ctx, double now, const uint8_t *msg, uint32_t len, const wgdp_addr *src,
                     uint8_t *out, wgdp_result *res);
double wgdp_now(void);
struct iovec;
#define WGDP_PARK_MS 1000  /* an idle loop's wait when nothing waits for a mailbox tick (wake_fd ends it) */
#define WGDP_GRO_IOV 128                         /* iovecs of one coalesced write (wgdp_gro_run) */
typedef int (*wgdp_emit_fn)(void *arg, const struct iovec *iov, int iovcnt, uint32_t len);
int wgdp_gro_run(uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint8_t *cbuf, wgdp_emit_fn emit, void *arg);
void wgdp_io_free(struct wgdp *ctx);
/* queues.c */
struct mmsghdr;
int wgdp_io_init(struct wgdp *ctx);
void wgdp_rx_order_free(struct wgdp *ctx);
int wgdp_rx_recv(struct wgdp *ctx, int fd, struct mmsghdr *m, uint32_t n, uint64_t *ticket);  /* recvmmsg + ticket */
void wgdp_rx_turn_wait(struct wgdp *ctx, uint64_t ticket);   /* every earlier ticket has passed */
void wgdp_rx_turn_pass(struct wgdp *ctx, uint64_t ticket);   /* after waiting: let the next ticket go */
int wgdp_rx_backlog_wait(struct wgdp *ctx, int ms);          /* helper loops: 1 when there is a backlog */
int wgdp_rx_epoll(int sock4, int sock6, int wake_fd);        /* an EPOLLEXCLUSIVE set, or -1 */
int wgdp_rx_wait(int epfd, int sock4, int sock6, int flush_ms, int ready[2]);  /* > 0 ready, 0 timeout, -errno */
void wgdp_io_restart(struct wgdp *ctx);
int wgdp_mbox_init(struct wgdp *ctx);
void wgdp_mbox_free(struct wgdp *ctx);
void wgdp_mbox_publish(struct wgdp *ctx, int d, const wgdp_result *res, double now, int flush_ms);
void wgdp_mbox_tick(struct wgdp *ctx, double now, int flush_ms);
int wgdp_idle_wait_ms(struct wgdp *ctx, int flush_ms);      /* flush_ms while the mailbox waits for a tick */

#endif
