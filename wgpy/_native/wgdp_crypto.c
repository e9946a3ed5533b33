/* Keypairs: padding, ChaCha20-Poly1305 seal/open over OpenSSL EVP, send counter,
 * RFC 6479 replay window (wireguard.md §1, §2, §7).  Twins: wgpy.keypair.Keypair,
 * wgpy.keypair.padded_length, wgpy.replay.ReplayWindow. */
#include "wgdp_internal.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

const char *wgdp_version(void) { return WGDP_VERSION; }

double wgdp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint32_t wgdp_padded_length(uint32_t length, uint32_t mtu)
{
    uint32_t last = length, padded;
    if (mtu == 0)
        return (last + 15) & ~15u;
    if (last > mtu)
        last %= mtu;
    padded = (last + 15) & ~15u;
    if (padded > mtu)
        padded = mtu;
    return length + (padded - last);
}

void wgdp_replay_init(wgdp_replay *r) { memset(r, 0, sizeof(*r)); }

int wgdp_replay_check(wgdp_replay *r, uint64_t counter)
{
    uint64_t index, cur, top, i;
    if (counter >= WGDP_REJECT_AFTER_MESSAGES)
        return 0;
    index = counter >> 6;
    if (counter > r->last) {
        cur = r->last >> 6;
        top = index - cur;
        if (top > WGDP_REPLAY_WORDS)
            top = WGDP_REPLAY_WORDS;
        for (i = 1; i <= top; i++)
            r->ring[(cur + i) & (WGDP_REPLAY_WORDS - 1)] = 0;
        r->last = counter;
    } else if (r->last - counter > WGDP_REPLAY_WINDOW) {
        return 0;
    }
    index &= WGDP_REPLAY_WORDS - 1;
    if (r->ring[index] & (1ULL << (counter & 63)))
        return 0;
    r->ring[index] |= 1ULL << (counter & 63);
    return 1;
}

static EVP_CIPHER_CTX *aead_new(const uint8_t *key, int enc)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return NULL;
    if (EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, NULL, enc) != 1) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

wgdp_keypair *wgdp_keypair_new(const uint8_t *send_key, const uint8_t *recv_key, uint32_t local_index,
                               uint32_t remote_index, int is_initiator, double created, uint32_t peer_id)
{
    struct wgdp_keypair *kp = calloc(1, sizeof(*kp));
    if (!kp)
        return NULL;
    kp->send_ctx = aead_new(send_key, 1);
    kp->recv_ctx = aead_new(recv_key, 0);
    if (!kp->send_ctx || !kp->recv_ctx) {
        EVP_CIPHER_CTX_free(kp->send_ctx);
        EVP_CIPHER_CTX_free(kp->recv_ctx);
        free(kp);
        return NULL;
    }
    atomic_init(&kp->refs, 1);
    kp->local_index = local_index;
    kp->remote_index = remote_index;
    kp->peer_id = peer_id;
    kp->is_initiator = is_initiator;
    kp->created = created;
    atomic_init(&kp->fast_rx, is_initiator ? 1 : 0);
    atomic_init(&kp->dead, 0);
    pthread_mutex_init(&kp->send_lock, NULL);
    pthread_mutex_init(&kp->recv_lock, NULL);
    wgdp_replay_init(&kp->replay);
    return kp;
}

void wgdp_keypair_ref(struct wgdp_keypair *kp) { atomic_fetch_add(&kp->refs, 1); }

void wgdp_keypair_unref(wgdp_keypair *kp)
{
    if (!kp || atomic_fetch_sub(&kp->refs, 1) != 1)
        return;
    EVP_CIPHER_CTX_free(kp->send_ctx);
    EVP_CIPHER_CTX_free(kp->recv_ctx);
    pthread_mutex_destroy(&kp->send_lock);
    pthread_mutex_destroy(&kp->recv_lock);
    OPENSSL_cleanse(kp, sizeof(*kp));
    free(kp);
}

static int usable_locked(struct wgdp_keypair *kp, double now)
{
    return !atomic_load(&kp->dead) && kp->send_counter < WGDP_REJECT_AFTER_MESSAGES &&
           now - kp->created < WGDP_REJECT_AFTER_TIME;
}

int wgdp_kp_usable(struct wgdp_keypair *kp, double now)
{
    int ok;
    pthread_mutex_lock(&kp->send_lock);
    ok = usable_locked(kp, now);
    pthread_mutex_unlock(&kp->send_lock);
    return ok;
}

int wgdp_keypair_can_send(wgdp_keypair *kp, double now) { return wgdp_kp_usable(kp, now); }

uint64_t wgdp_keypair_send_counter(wgdp_keypair *kp)
{
    uint64_t c;
    pthread_mutex_lock(&kp->send_lock);
    c = kp->send_counter;
    pthread_mutex_unlock(&kp->send_lock);
    return c;
}

void wgdp_keypair_set_send_counter(wgdp_keypair *kp, uint64_t counter)
{
    pthread_mutex_lock(&kp->send_lock);
    kp->send_counter = counter;
    pthread_mutex_unlock(&kp->send_lock);
}

static void put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* seal with the send lock held; counter consumed */
static size_t seal_locked(struct wgdp_keypair *kp, const uint8_t *packet, size_t len, uint32_t mtu,
                          uint8_t *out, size_t cap)
{
    uint32_t padded = wgdp_padded_length((uint32_t)len, mtu);
    uint8_t nonce[12] = {0};
    int outl = 0, fin = 0;
    uint64_t counter;
    if (cap < (size_t)padded + WGDP_HEADER + WGDP_TAG)
        return 0;
    counter = kp->send_counter++;
    put_le32(out, WGDP_MESSAGE_TRANSPORT);
    put_le32(out + 4, kp->remote_index);
    put_le64(out + 8, counter);
    if (packet != out + WGDP_HEADER && len)
        memmove(out + WGDP_HEADER, packet, len);
    memset(out + WGDP_HEADER + len, 0, padded - len);
    put_le64(nonce + 4, counter);
    if (EVP_CipherInit_ex(kp->send_ctx, NULL, NULL, NULL, nonce, 1) != 1 ||
        (padded && EVP_CipherUpdate(kp->send_ctx, out + WGDP_HEADER, &outl, out + WGDP_HEADER,
                                    (int)padded) != 1) ||
        EVP_CipherFinal_ex(kp->send_ctx, out + WGDP_HEADER + outl, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(kp->send_ctx, EVP_CTRL_AEAD_GET_TAG, WGDP_TAG, out + WGDP_HEADER + padded) != 1)
        return 0;
    return (size_t)padded + WGDP_HEADER + WGDP_TAG;
}

size_t wgdp_keypair_seal(wgdp_keypair *kp, const uint8_t *packet, size_t len, uint32_t mtu, uint8_t *out,
                         size_t cap)
{
    size_t n;
    pthread_mutex_lock(&kp->send_lock);
    n = atomic_load(&kp->dead) ? 0 : seal_locked(kp, packet, len, mtu, out, cap);
    pthread_mutex_unlock(&kp->send_lock);
    return n;
}

/* fast path: seal only if usable; returns 0 when not (the caller goes slow) */
size_t wgdp_kp_seal_if_usable(struct wgdp_keypair *kp, double now, const uint8_t *packet, size_t len,
                              uint32_t mtu, uint8_t *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&kp->send_lock);
    if (usable_locked(kp, now))
        n = seal_locked(kp, packet, len, mtu, out, cap);
    pthread_mutex_unlock(&kp->send_lock);
    return n;
}

int64_t wgdp_keypair_open(wgdp_keypair *kp, const uint8_t *msg, size_t len, uint8_t *out)
{
    uint8_t nonce[12] = {0}, tag[WGDP_TAG];
    uint64_t counter;
    int outl = 0, fin = 0, ok;
    int64_t plen;
    if (len < WGDP_HEADER + WGDP_TAG)
        return -WGDP_DROP_MALFORMED;
    counter = get_le64(msg + 8);
    plen = (int64_t)(len - WGDP_HEADER - WGDP_TAG);
    memcpy(tag, msg + len - WGDP_TAG, WGDP_TAG);
    put_le64(nonce + 4, counter);
    pthread_mutex_lock(&kp->recv_lock);
    ok = !atomic_load(&kp->dead) &&
         EVP_CipherInit_ex(kp->recv_ctx, NULL, NULL, NULL, nonce, 0) == 1 &&
         (plen == 0 || EVP_CipherUpdate(kp->recv_ctx, out, &outl, msg + WGDP_HEADER, (int)plen) == 1) &&
         EVP_CIPHER_CTX_ctrl(kp->recv_ctx, EVP_CTRL_AEAD_SET_TAG, WGDP_TAG, tag) == 1 &&
         EVP_CipherFinal_ex(kp->recv_ctx, out + outl, &fin) == 1;
    if (!ok) {
        pthread_mutex_unlock(&kp->recv_lock);
        return -WGDP_DROP_DECRYPTION_FAILED;
    }
    ok = wgdp_replay_check(&kp->replay, counter);
    pthread_mutex_unlock(&kp->recv_lock);
    return ok ? plen : -WGDP_DROP_REPLAYED_COUNTER;
}

void wgdp_keypair_set_fast_rx(wgdp_keypair *kp, int on) { atomic_store(&kp->fast_rx, on ? 1 : 0); }

void wgdp_keypair_zero(wgdp_keypair *kp)
{
    pthread_mutex_lock(&kp->send_lock);
    pthread_mutex_lock(&kp->recv_lock);
    atomic_store(&kp->dead, 1);
    kp->send_counter = WGDP_REJECT_AFTER_MESSAGES;
    EVP_CIPHER_CTX_reset(kp->send_ctx);
    EVP_CIPHER_CTX_reset(kp->recv_ctx);
    pthread_mutex_unlock(&kp->recv_lock);
    pthread_mutex_unlock(&kp->send_lock);
}
