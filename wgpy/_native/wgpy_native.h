/* wgpy native data plane: the C API (wireguard.md §2, §7, §8, §10).
 *
 * Owns the per-packet work of the bulk path: per-keypair ChaCha20-Poly1305
 * contexts (OpenSSL EVP), send counters, the replay window, cryptokey routing
 * (allowed-IPs LPM), and batched TUN/UDP I/O.  It never makes a protocol
 * decision that is not per packet: handshakes, cookies, timers and config are
 * the Python control plane's, which installs keypairs, peers, endpoints and
 * routes here and receives "slow" items and per-peer events back.
 *
 * Everything between the CDEF markers is parsed by cffi (no preprocessor
 * directives other than integer #defines there).
 *
 * Threading: a `wgdp` context is shared by a TX thread, an RX thread and the
 * control thread.  Tables (peers, routes, index) are guarded by a
 * writer-preferring rwlock; each peer's endpoint/fast_tx by a mutex; each
 * keypair's send side (counter, key) and receive side (replay window, key) by one
 * mutex each, held only to take a counter or check the window: every thread has
 * its own cipher contexts, so threads sealing or opening for one keypair overlap.  No function
 * touches a Python object, so cffi may release the GIL for every call.
 * Peer ids are reused after removal; each assignment of a slot has its own
 * generation, so the I/O threads' late results never credit the slot's next peer.
 */
#ifndef WGPY_NATIVE_H
#define WGPY_NATIVE_H
#include <stdint.h>
#include <stddef.h>

/* CDEF-BEGIN */
#define WGDP_DROP_NONE 0
#define WGDP_DROP_MALFORMED 1
#define WGDP_DROP_UNKNOWN_TYPE 2
#define WGDP_DROP_DECRYPTION_FAILED 3
#define WGDP_DROP_REPLAYED_COUNTER 4
#define WGDP_DROP_KEYPAIR_EXPIRED 5
#define WGDP_DROP_INVALID_INNER_PACKET 6
#define WGDP_DROP_DISALLOWED_SOURCE 7
#define WGDP_DROP_NO_ROUTE 8
#define WGDP_DROP_IO_SEND 9
#define WGDP_DROP_IO_TUN_WRITE 10
#define WGDP_DROP_UNKNOWN_INDEX 11
#define WGDP_DROP_SLOW_OVERFLOW 12
#define WGDP_DROP_TUN_DOWN 13
#define WGDP_DROP_TUN_QUEUE_FULL 14
#define WGDP_DROP_INVALID_MAC1 15
#define WGDP_DROP_HANDSHAKE_QUEUE_FULL 16
#define WGDP_DROP_RATE_LIMITED 17
#define WGDP_DROP_COUNT 18

/* mailbox capacity per direction: slow items and their bytes (a drain's wgdp_result needs as much) */
#define WGDP_MAILBOX_SLOTS 2048
#define WGDP_MAILBOX_BYTES 4194304

#define WGDP_REPLAY_WORDS 128

/* TUN queues the I/O loops can serve (wgdp_tun_to_udp_q / wgdp_udp_to_tun_q) */
#define WGDP_MAX_QUEUES 16

typedef struct {
    uint64_t last;
    uint64_t ring[128];
} wgdp_replay;

typedef struct {
    uint8_t family;          /* 0 = none, 4, 6 */
    uint8_t addr[16];        /* IPv4 in the first 4 bytes */
    uint16_t port;           /* host order */
} wgdp_addr;

typedef struct {
    uint32_t peer_id;
    uint32_t generation;     /* the slot's generation when the work was done (wgdp_peer_add) */
    uint32_t messages;       /* authenticated transport messages (incl. keepalives) */
    uint32_t data;           /* of which non-empty */
    uint64_t bytes;          /* wire bytes, as wg counts them */
    wgdp_addr endpoint;      /* rx: the last authenticated source (family 0: unchanged) */
} wgdp_event;

typedef struct {
    uint32_t off;            /* into slow_buf */
    uint32_t len;
    uint32_t peer_id;        /* tx: the routed peer; rx: 0 */
    uint32_t generation;     /* tx: that peer slot's generation; rx: 0 */
    uint32_t seq;            /* tx: the peer's slow sequence number */
    wgdp_addr src;           /* rx: UDP source */
} wgdp_slow;

typedef struct {
    wgdp_event *events;
    uint32_t events_cap;
    uint32_t n_events;
    wgdp_slow *slow;
    uint32_t slow_cap;
    uint32_t n_slow;
    uint8_t *slow_buf;
    uint32_t slow_buf_cap;
    uint32_t slow_buf_used;
    uint64_t drops[18];      /* by WGDP_DROP_* code */
    uint64_t packets;        /* packets moved by the fast path */
    int err;                 /* I/O: errno of a fatal TUN error, else 0 */
} wgdp_result;

typedef struct wgdp wgdp;
typedef struct wgdp_keypair wgdp_keypair;

const char *wgdp_version(void);

/* padding (keypair.padded_length) */
uint32_t wgdp_padded_length(uint32_t length, uint32_t mtu);

/* replay window (wgpy/replay.py twin) */
void wgdp_replay_init(wgdp_replay *r);
int wgdp_replay_check(wgdp_replay *r, uint64_t counter);

/* keypairs: refcounted; _new returns one reference owned by the caller */
wgdp_keypair *wgdp_keypair_new(const uint8_t *send_key, const uint8_t *recv_key,
                               uint32_t local_index, uint32_t remote_index,
                               int is_initiator, double created, uint32_t peer_id);
void wgdp_keypair_unref(wgdp_keypair *kp);
int wgdp_keypair_can_send(wgdp_keypair *kp, double now);
uint64_t wgdp_keypair_send_counter(wgdp_keypair *kp);
void wgdp_keypair_set_send_counter(wgdp_keypair *kp, uint64_t counter);
/* whole transport message into out (cap >= padded + 32); returns its length, 0 if out is too small */
size_t wgdp_keypair_seal(wgdp_keypair *kp, const uint8_t *packet, size_t len, uint32_t mtu,
                         uint8_t *out, size_t cap);
/* padded plaintext into out (cap >= len - 32); returns its length or -DropReason code */
int64_t wgdp_keypair_open(wgdp_keypair *kp, const uint8_t *msg, size_t len, uint8_t *out);
/* 1: seal/open call OpenSSL's ChaCha20-Poly1305 provider directly, 0: through EVP (WGPY_AEAD_DIRECT=0,
 * or no such provider); fixed at the first keypair operation of the process */
int wgdp_aead_direct(void);
void wgdp_keypair_set_fast_rx(wgdp_keypair *kp, int on);
void wgdp_keypair_zero(wgdp_keypair *kp);

/* the context */
wgdp *wgdp_new(void);
void wgdp_free(wgdp *ctx);
void wgdp_set_mtu(wgdp *ctx, uint32_t mtu);
void wgdp_stop(wgdp *ctx, int stop);
int wgdp_add_keypair(wgdp *ctx, wgdp_keypair *kp);
void wgdp_remove_keypair(wgdp *ctx, wgdp_keypair *kp);
/* a peer slot: (re)assigning it takes a new generation (never 0), which every event and
 * tx slow item done for it carries; work published for an older generation is discarded */
int wgdp_peer_add(wgdp *ctx, uint32_t peer_id, uint32_t generation);
void wgdp_peer_remove(wgdp *ctx, uint32_t peer_id);
void wgdp_peer_set_keypair(wgdp *ctx, uint32_t peer_id, wgdp_keypair *kp);
void wgdp_peer_set_endpoint(wgdp *ctx, uint32_t peer_id, const wgdp_addr *ep);
int wgdp_peer_enable_fast_tx(wgdp *ctx, uint32_t peer_id, uint32_t processed_seq);
void wgdp_peer_disable_fast_tx(wgdp *ctx, uint32_t peer_id);
int wgdp_set_routes(wgdp *ctx, uint32_t n, const uint8_t *families, const uint8_t *lens,
                    const uint8_t *addrs, const uint32_t *peer_ids);
int64_t wgdp_route_lookup(wgdp *ctx, const uint8_t *addr, uint32_t len);

/* mac1 of handshake messages, checked before they become slow items (twin: wgpy.cookie):
 * key = HASH("mac1----" || our public key), NULL: no key (every initiation/response is dropped) */
void wgdp_set_mac1_key(wgdp *ctx, const uint8_t *key);
void wgdp_mac16(const uint8_t *key, const uint8_t *msg, size_t len, uint8_t *out);
/* under load until `until` (monotonic seconds; only ever extended): initiations and responses then pass a
 * per-source token bucket before the handshake ring (20/s, burst 5); the ring filling up also sets it */
void wgdp_set_under_load(wgdp *ctx, double until);

/* the handshake responder's arithmetic (wgdp_noise.c; twin: wgpy.handshake_steps.PURE):
 * 0 ok; else nothing is written */
#define WGDP_NOISE_OK 0
#define WGDP_NOISE_DECRYPT 2
#define WGDP_NOISE_ERROR 3
#define WGDP_NOISE_ZERO_DH 4
/* X25519 through these (libsodium's crypto_scalarmult and crypto_scalarmult_base, as PyNaCl exports them);
 * until they are given every step answers WGDP_NOISE_ERROR; ready(): they are */
void wgdp_noise_set_x25519(void *mult, void *base);
int wgdp_noise_ready(void);
/* msg = e (32) || enc(s) (48); local = our private key; h0 = H after the prologue and our public key */
int wgdp_noise_read_static(const uint8_t *local, const uint8_t *h0, const uint8_t *msg, uint8_t *remote_static,
                           uint8_t *ck, uint8_t *hash);
/* ck, hash: in and out; ss = DH(S_r, S_i); payload gets enc_len - 16 bytes */
int wgdp_noise_read_payload(uint8_t *ck, uint8_t *hash, const uint8_t *ss, const uint8_t *enc, size_t enc_len,
                            uint8_t *payload);
/* ck, hash: in and out; e_priv = our ephemeral private key, e_i = E_i, s_i = S_i; e_pub gets E_r, enc the
 * len + 16 bytes of enc(payload), split the 64 bytes of T1 || T2 = KDF2(C, "") (the session keys
 * begin_session would derive) */
int wgdp_noise_write_response(uint8_t *ck, uint8_t *hash, const uint8_t *e_priv, const uint8_t *e_i,
                              const uint8_t *s_i, const uint8_t *psk, const uint8_t *payload, size_t len,
                              uint8_t *e_pub, uint8_t *enc, uint8_t *split);

/* batches over caller buffers (twins: wgpy.dataplane_twin.PureDataPlane.encrypt_batch / decrypt_batch) */
void wgdp_result_reset(wgdp_result *res);
int wgdp_encrypt_batch(wgdp *ctx, double now, uint32_t n, const uint8_t *in, const uint32_t *in_off,
                       const uint32_t *in_len, uint8_t *out, uint32_t out_stride, uint32_t *out_len,
                       uint32_t *out_peer, wgdp_result *res);
int wgdp_decrypt_batch(wgdp *ctx, double now, uint32_t n, const uint8_t *in, const uint32_t *in_off,
                       const uint32_t *in_len, const wgdp_addr *src, uint8_t *out, uint32_t out_stride,
                       uint32_t *out_len, wgdp_result *res);

/* TUN virtio-net offload (IFF_VNET_HDR): split one read into IP packets; the loops
 * read and write the 10-byte header when wgdp_set_tun_vnet(ctx, 1) */
int wgdp_tso_split(const uint8_t *in, uint32_t len, uint8_t *out, uint32_t stride, uint32_t max,
                   uint32_t *out_len);
uint16_t wgdp_checksum(const uint8_t *p, uint32_t len, uint64_t initial);
/* GRO for TUN writes: runs of same-flow TCP segments become one GSO write (header first);
 * each pkts[i] needs 10 bytes of writable headroom; cbuf holds 65545 bytes */
int wgdp_gro_coalesce(uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint8_t *cbuf, uint8_t *out,
                      uint32_t out_cap, uint32_t *out_off, uint32_t *out_len, uint32_t max_out);
void wgdp_set_tun_vnet(wgdp *ctx, int on);

/* UDP offloads for the I/O loops (UDP_SEGMENT on send, UDP_GRO on receive); each is
 * also switched off for good when the kernel refuses it.  Returns the flags in effect. */
int wgdp_set_offloads(wgdp *ctx, int gso, int gro);
int wgdp_offloads(wgdp *ctx);

/* I/O loops, one thread each: run until wgdp_stop(ctx, 1) (0) or the TUN is gone (-errno).
 * They never enter Python: what Python must see goes to the mailbox, and the
 * eventfd wgdp_notify_fd() becomes readable when slow items wait or counters
 * have waited flush_ms; wgdp_drain() then hands over everything (tx and rx). */
int wgdp_tun_to_udp(wgdp *ctx, int tun_fd, int sock4, int sock6, uint32_t max_batch, int flush_ms);
int wgdp_udp_to_tun(wgdp *ctx, int sock4, int sock6, int tun_fd, uint32_t max_batch, int flush_ms);
/* the same for one queue of a multi-queue TUN (queue < WGDP_MAX_QUEUES; the two above are queue 0): each
 * queue's loops have their own buffers; the RX loops share the sockets and write in receive order */
int wgdp_tun_to_udp_q(wgdp *ctx, uint32_t queue, int tun_fd, int sock4, int sock6, uint32_t max_batch,
                      int flush_ms);
int wgdp_udp_to_tun_q(wgdp *ctx, uint32_t queue, int sock4, int sock6, int tun_fd, uint32_t max_batch,
                      int flush_ms);
int wgdp_notify_fd(wgdp *ctx);
int wgdp_drain(wgdp *ctx, wgdp_result *tx, wgdp_result *rx);
/* CDEF-END */

#endif
