/* Keypairs: padding, ChaCha20-Poly1305 seal/open over OpenSSL EVP, send counter,
 * RFC 6479 replay window (wireguard.md §1, §2, §7); the AEAD's threading and its
 * OpenSSL entry points are described below.  Twins: wgpy.keypair.Keypair,
 * wgpy.keypair.padded_length, wgpy.replay.ReplayWindow. */
#include "wgdp_internal.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>

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

/* ------------------------------------------------------------------ the AEAD
 *
 * ChaCha20-Poly1305 re-keys for free (the key is 32 bytes copied into the state; the
 * Poly1305 key comes from the nonce anyway), so a keypair keeps its two keys and every
 * thread seals and opens with a cipher context of its own: the send and receive locks
 * then guard only the counter and the replay window, and threads working for one
 * keypair (several TX or RX queues) run their crypto side by side.
 *
 * The context is OpenSSL's default provider's ChaCha20-Poly1305, called through its
 * dispatch table (OSSL_PROVIDER_query_operation), which skips the per-call EVP
 * bookkeeping (parameter look-ups by name on every init and tag call; about 12 % of a
 * 1,424-byte seal in a bare loop, within the noise in the plane: bench/README.md).
 * Where that table cannot be had, or WGPY_AEAD_DIRECT=0, the same calls go through EVP.
 * A thread's context keeps the last key it used until its next packet or the thread's
 * end (freeing it cleanses it); keypairs' own copies are cleansed on zero and free. */

struct aead_fns {
    OSSL_FUNC_cipher_newctx_fn *newctx;
    OSSL_FUNC_cipher_freectx_fn *freectx;
    OSSL_FUNC_cipher_encrypt_init_fn *einit;
    OSSL_FUNC_cipher_decrypt_init_fn *dinit;
    OSSL_FUNC_cipher_update_fn *update;
    OSSL_FUNC_cipher_final_fn *final;
    OSSL_FUNC_cipher_get_ctx_params_fn *get_params;
    OSSL_FUNC_cipher_set_ctx_params_fn *set_params;
    void *provctx;
};

static struct aead_fns direct;        /* valid when use_direct */
static int use_direct;
static EVP_CIPHER *fetched;           /* keeps the provider loaded */
static pthread_once_t aead_once = PTHREAD_ONCE_INIT;
static pthread_key_t aead_tls;

struct aead_thread {
    int direct;
    void *pc[2];                      /* [0] open, [1] seal: provider contexts */
    EVP_CIPHER_CTX *evp[2];
};

static void aead_thread_free(void *arg)
{
    struct aead_thread *t = arg;
    for (int d = 0; d < 2; d++) {
        if (t->pc[d])
            direct.freectx(t->pc[d]);  /* the provider cleanses the key state */
        EVP_CIPHER_CTX_free(t->evp[d]);
    }
    free(t);
}

static void aead_setup(void)
{
    const OSSL_PROVIDER *prov;
    const OSSL_ALGORITHM *algs, *alg;
    const char *env = getenv("WGPY_AEAD_DIRECT");
    int no_cache = 0;
    pthread_key_create(&aead_tls, aead_thread_free);
    fetched = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    if (!fetched || (env && !strcmp(env, "0")))
        return;
    prov = EVP_CIPHER_get0_provider(fetched);
    if (!prov || strcmp(OSSL_PROVIDER_get0_name(prov), "default"))
        return;  /* e.g. a FIPS setup: leave it to EVP */
    algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
    for (alg = algs; alg && alg->algorithm_names; alg++) {
        const char *n = alg->algorithm_names;
        size_t l = strlen("ChaCha20-Poly1305");
        if (strncmp(n, "ChaCha20-Poly1305", l) || (n[l] && n[l] != ':'))
            continue;
        for (const OSSL_DISPATCH *d = alg->implementation; d->function_id; d++) {
            switch (d->function_id) {
            case OSSL_FUNC_CIPHER_NEWCTX: direct.newctx = OSSL_FUNC_cipher_newctx(d); break;
            case OSSL_FUNC_CIPHER_FREECTX: direct.freectx = OSSL_FUNC_cipher_freectx(d); break;
            case OSSL_FUNC_CIPHER_ENCRYPT_INIT: direct.einit = OSSL_FUNC_cipher_encrypt_init(d); break;
            case OSSL_FUNC_CIPHER_DECRYPT_INIT: direct.dinit = OSSL_FUNC_cipher_decrypt_init(d); break;
            case OSSL_FUNC_CIPHER_UPDATE: direct.update = OSSL_FUNC_cipher_update(d); break;
            case OSSL_FUNC_CIPHER_FINAL: direct.final = OSSL_FUNC_cipher_final(d); break;
            case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: direct.get_params = OSSL_FUNC_cipher_get_ctx_params(d); break;
            case OSSL_FUNC_CIPHER_SET_CTX_PARAMS: direct.set_params = OSSL_FUNC_cipher_set_ctx_params(d); break;
            }
        }
        break;
    }
    direct.provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
    use_direct = direct.newctx && direct.freectx && direct.einit && direct.dinit && direct.update &&
                 direct.final && direct.get_params && direct.set_params;
    if (algs)
        OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);  /* the functions stay: `fetched` holds the provider */
}

int wgdp_aead_direct(void)
{
    pthread_once(&aead_once, aead_setup);
    return use_direct;
}

/* this thread's context for one direction (1 = seal), created on first use */
static struct aead_thread *aead_thread(int enc)
{
    struct aead_thread *t;
    pthread_once(&aead_once, aead_setup);
    t = pthread_getspecific(aead_tls);
    if (!t) {
        if (!(t = calloc(1, sizeof(*t))))
            return NULL;
        t->direct = use_direct;
        pthread_setspecific(aead_tls, t);
    }
    if (t->direct && !t->pc[enc])
        t->pc[enc] = direct.newctx(direct.provctx);
    if (!t->direct && !t->evp[enc]) {
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        if (c && (!fetched || EVP_CipherInit_ex(c, fetched, NULL, NULL, NULL, enc) != 1 ||
                  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1)) {
            EVP_CIPHER_CTX_free(c);
            c = NULL;
        }
        t->evp[enc] = c;
    }
    return (t->direct ? t->pc[enc] != NULL : t->evp[enc] != NULL) ? t : NULL;
}

/* in place or into out: ciphertext of len bytes, then the tag */
static int aead_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *in, size_t len, uint8_t *out)
{
    struct aead_thread *t = aead_thread(1);
    if (!t)
        return 0;
    if (t->direct) {
        size_t outl = 0, fin = 0;
        OSSL_PARAM p[2] = {OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + len, WGDP_TAG),
                           OSSL_PARAM_END};
        return direct.einit(t->pc[1], key, 32, nonce, 12, NULL) == 1 &&
               (!len || direct.update(t->pc[1], out, &outl, len, in, len) == 1) &&
               direct.final(t->pc[1], out + outl, &fin, len - outl) == 1 && direct.get_params(t->pc[1], p) == 1;
    } else {
        int outl = 0, fin = 0;
        EVP_CIPHER_CTX *c = t->evp[1];
        return EVP_CipherInit_ex(c, NULL, NULL, key, nonce, 1) == 1 &&
               (!len || EVP_CipherUpdate(c, out, &outl, in, (int)len) == 1) &&
               EVP_CipherFinal_ex(c, out + outl, &fin) == 1 &&
               EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, WGDP_TAG, out + len) == 1;
    }
}

/* len bytes of ciphertext followed by the tag at in + len; plaintext into out */
static int aead_open(const uint8_t *key, const uint8_t *nonce, const uint8_t *in, size_t len, uint8_t *out)
{
    struct aead_thread *t = aead_thread(0);
    uint8_t tag[WGDP_TAG];
    if (!t)
        return 0;
    memcpy(tag, in + len, WGDP_TAG);  /* out may overlap the tag */
    if (t->direct) {
        size_t outl = 0, fin = 0;
        OSSL_PARAM p[2] = {OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, WGDP_TAG), OSSL_PARAM_END};
        return direct.dinit(t->pc[0], key, 32, nonce, 12, NULL) == 1 &&
               (!len || direct.update(t->pc[0], out, &outl, len, in, len) == 1) &&
               direct.set_params(t->pc[0], p) == 1 && direct.final(t->pc[0], out + outl, &fin, len - outl) == 1;
    } else {
        int outl = 0, fin = 0;
        EVP_CIPHER_CTX *c = t->evp[0];
        return EVP_CipherInit_ex(c, NULL, NULL, key, nonce, 0) == 1 &&
               (!len || EVP_CipherUpdate(c, out, &outl, in, (int)len) == 1) &&
               EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, WGDP_TAG, tag) == 1 &&
               EVP_CipherFinal_ex(c, out + outl, &fin) == 1;
    }
}

/* ------------------------------------------------------------------ keypairs */

wgdp_keypair *wgdp_keypair_new(const uint8_t *send_key, const uint8_t *recv_key, uint32_t local_index,
                               uint32_t remote_index, int is_initiator, double created, uint32_t peer_id)
{
    struct wgdp_keypair *kp = calloc(1, sizeof(*kp));
    if (!kp)
        return NULL;
    memcpy(kp->send_key, send_key, 32);
    memcpy(kp->recv_key, recv_key, 32);
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

/* Seal with a counter taken under the send lock and the key copied there; the cipher
 * runs outside the lock.  check_time: also refuse an expired keypair (the fast path). */
static size_t seal(struct wgdp_keypair *kp, int check_time, double now, const uint8_t *packet, size_t len,
                   uint32_t mtu, uint8_t *out, size_t cap)
{
    uint32_t padded = wgdp_padded_length((uint32_t)len, mtu);
    uint8_t nonce[12] = {0}, key[32];
    uint64_t counter;
    int ok;
    if (cap < (size_t)padded + WGDP_HEADER + WGDP_TAG)
        return 0;
    pthread_mutex_lock(&kp->send_lock);
    ok = check_time ? usable_locked(kp, now) : !atomic_load(&kp->dead);
    if (ok) {
        counter = kp->send_counter++;
        memcpy(key, kp->send_key, 32);
    }
    pthread_mutex_unlock(&kp->send_lock);
    if (!ok)
        return 0;
    put_le32(out, WGDP_MESSAGE_TRANSPORT);
    put_le32(out + 4, kp->remote_index);
    put_le64(out + 8, counter);
    if (packet != out + WGDP_HEADER && len)
        memmove(out + WGDP_HEADER, packet, len);
    memset(out + WGDP_HEADER + len, 0, padded - len);
    put_le64(nonce + 4, counter);
    ok = aead_seal(key, nonce, out + WGDP_HEADER, padded, out + WGDP_HEADER);
    OPENSSL_cleanse(key, sizeof(key));
    return ok ? (size_t)padded + WGDP_HEADER + WGDP_TAG : 0;
}

size_t wgdp_keypair_seal(wgdp_keypair *kp, const uint8_t *packet, size_t len, uint32_t mtu, uint8_t *out,
                         size_t cap)
{
    return seal(kp, 0, 0.0, packet, len, mtu, out, cap);
}

/* fast path: seal only if usable; returns 0 when not (the caller goes slow) */
size_t wgdp_kp_seal_if_usable(struct wgdp_keypair *kp, double now, const uint8_t *packet, size_t len,
                              uint32_t mtu, uint8_t *out, size_t cap)
{
    return seal(kp, 1, now, packet, len, mtu, out, cap);
}

int64_t wgdp_keypair_open(wgdp_keypair *kp, const uint8_t *msg, size_t len, uint8_t *out)
{
    uint8_t nonce[12] = {0}, key[32];
    uint64_t counter;
    int ok;
    int64_t plen;
    if (len < WGDP_HEADER + WGDP_TAG)
        return -WGDP_DROP_MALFORMED;
    counter = get_le64(msg + 8);
    plen = (int64_t)(len - WGDP_HEADER - WGDP_TAG);
    put_le64(nonce + 4, counter);
    pthread_mutex_lock(&kp->recv_lock);
    ok = !atomic_load(&kp->dead);
    if (ok)
        memcpy(key, kp->recv_key, 32);
    pthread_mutex_unlock(&kp->recv_lock);
    if (!ok)
        return -WGDP_DROP_DECRYPTION_FAILED;
    ok = aead_open(key, nonce, msg + WGDP_HEADER, (size_t)plen, out);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok)
        return -WGDP_DROP_DECRYPTION_FAILED;
    pthread_mutex_lock(&kp->recv_lock);
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
    OPENSSL_cleanse(kp->send_key, sizeof(kp->send_key));
    OPENSSL_cleanse(kp->recv_key, sizeof(kp->recv_key));
    pthread_mutex_unlock(&kp->recv_lock);
    pthread_mutex_unlock(&kp->send_lock);
}
