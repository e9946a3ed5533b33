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
    EVP_CIPHER_CTX *send_ctx;
    uint64_t send_counter;            /* under send_lock */
    pthread_mutex_t recv_lock;
    EVP_CIPHER_CTX *recv_ctx;
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
    struct io_bufs *txb, *rxb;
    struct wgdp_mbox *mbox;
    atomic_int gso, gro, tun_vnet;              /* UDP offloads: 1 on, 0 off (also when the kernel refused) */
    uint8_t mac1_key[32];                       /* HASH("mac1----" || our public key), under the ctx lock */
    int has_mac1_key;
    struct wgdp_gate *gate;                     /* under-load admission, wgdp_hsgate.c */
};

/* crypto.c */
void wgdp_keypair_ref(struct wgdp_keypair *kp);
int wgdp_kp_usable(struct wgdp_keypair *kp, double now);
size_t wgdp_kp_seal_if_usable(struct wgdp_keypair *kp, double now, const uint8_t *packet, size_t len,
                              uint32_t mtu, uint8_t *out, size_t cap);
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
typedef int (*wgdp_emit_fn)(void *arg, uint8_t *data, uint32_t len);
int wgdp_gro_run(uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint8_t *cbuf, wgdp_emit_fn emit, void *arg);
void wgdp_io_free(struct wgdp *ctx);
void wgdp_io_restart(struct wgdp *ctx);
int wgdp_mbox_init(struct wgdp *ctx);
void wgdp_mbox_free(struct wgdp *ctx);
void wgdp_mbox_publish(struct wgdp *ctx, int d, const wgdp_result *res, double now, int flush_ms);
void wgdp_mbox_tick(struct wgdp *ctx, double now, int flush_ms);

#endif
