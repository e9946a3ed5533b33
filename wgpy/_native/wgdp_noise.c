/* The responder's side of the Noise_IKpsk2 handshake in C (wireguard.md §3): consuming an
 * initiation (wgdp_noise_read_static, then wgdp_noise_read_payload once Python has looked the
 * decrypted static key up and passes that peer's precomputed DH(S_r, S_i)) and creating the
 * response (wgdp_noise_write_response, which also splits the session keys).  The state machine
 * stays in Python (wgpy.handshake).  X25519 runs here through the libsodium functions PyNaCl
 * exports (wgdp_noise_set_x25519 takes their addresses once; ~32 us a DH, against ~45 us through
 * the system libcrypto 3.0's EVP with key set-up), so a step is one call from Python; the rest is
 * HASH/HMAC/KDF over our BLAKE2s (wgdp_blake2s.c) and the zero-nonce ChaCha20-Poly1305 over EVP.
 *
 * Every call works on local copies and writes its outputs only on success (WGDP_NOISE_OK); a bad
 * tag gives WGDP_NOISE_DECRYPT, an all-zero DH result (a low-order point) WGDP_NOISE_ZERO_DH, an
 * allocation failure or missing X25519 functions WGDP_NOISE_ERROR.  Intermediate secrets are
 * wiped before returning.  Twin: wgpy.handshake_steps.PURE, checked byte for byte by
 * tests/native/test_noise_diff.py. */
#include "wgdp_internal.h"
#include <string.h>
#include <openssl/crypto.h>

#define CONSTRUCTION "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *chacha;           /* fetched once: EVP_chacha20_poly1305() would fetch per init */
static uint8_t c0[32];               /* HASH(CONSTRUCTION) */
typedef int (*x25519_fn)(unsigned char *q, const unsigned char *n, const unsigned char *p);
typedef int (*x25519_base_fn)(unsigned char *q, const unsigned char *n);
static x25519_fn scalarmult;         /* libsodium's crypto_scalarmult: -1 for an all-zero result */
static x25519_base_fn scalarmult_base;

void wgdp_noise_set_x25519(void *mult, void *base)
{
    scalarmult = (x25519_fn)mult;
    scalarmult_base = (x25519_base_fn)base;
}

int wgdp_noise_ready(void)
{
    return scalarmult != NULL && scalarmult_base != NULL;
}

/* out = X25519(n, p); WGDP_NOISE_ZERO_DH for an all-zero result (libsodium refuses it) */
static int dh(const uint8_t n[32], const uint8_t p[32], uint8_t out[32])
{
    uint8_t d = 0;
    if (!scalarmult)
        return WGDP_NOISE_ERROR;
    if (scalarmult(out, n, p) != 0)
        return WGDP_NOISE_ZERO_DH;
    for (int i = 0; i < 32; i++)
        d |= out[i];
    return d ? WGDP_NOISE_OK : WGDP_NOISE_ZERO_DH;
}

static void hash2(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[32])
{
    wgdp_blake2s s;
    wgdp_blake2s_init(&s, 32, NULL, 0);
    wgdp_blake2s_update(&s, a, alen);
    wgdp_blake2s_update(&s, b, blen);
    wgdp_blake2s_final(&s, out);
}

static void init_once(void)
{
    chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    hash2((const uint8_t *)CONSTRUCTION, strlen(CONSTRUCTION), NULL, 0, c0);
}

/* HMAC-BLAKE2s (RFC 2104, B = 64) of a || b; key is 32 bytes */
static void hmac(const uint8_t key[32], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                 uint8_t out[32])
{
    uint8_t pad[64], inner[32];
    wgdp_blake2s s;
    memset(pad, 0x36, sizeof(pad));
    for (int i = 0; i < 32; i++)
        pad[i] ^= key[i];
    wgdp_blake2s_init(&s, 32, NULL, 0);
    wgdp_blake2s_update(&s, pad, 64);
    wgdp_blake2s_update(&s, a, alen);
    wgdp_blake2s_update(&s, b, blen);
    wgdp_blake2s_final(&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    wgdp_blake2s_init(&s, 32, NULL, 0);
    wgdp_blake2s_update(&s, pad, 64);
    wgdp_blake2s_update(&s, inner, 32);
    wgdp_blake2s_final(&s, out);
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    OPENSSL_cleanse(&s, sizeof(s));
}

/* KDFn(key, input): t1 into out1, t2 into out2, t3 into out3 (NULL: not wanted) */
static void kdf(const uint8_t key[32], const uint8_t *input, size_t len, uint8_t *out1, uint8_t *out2,
                uint8_t *out3)
{
    uint8_t prk[32], t1[32], t2[32];
    const uint8_t one = 1, two = 2, three = 3;
    hmac(key, input, len, NULL, 0, prk);
    hmac(prk, &one, 1, NULL, 0, t1);
    if (out2 || out3)
        hmac(prk, t1, 32, &two, 1, t2);
    if (out3)
        hmac(prk, t2, 32, &three, 1, out3);
    if (out2)
        memcpy(out2, t2, 32);
    memcpy(out1, t1, 32);
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(t1, sizeof(t1));
    OPENSSL_cleanse(t2, sizeof(t2));
}

/* ChaCha20-Poly1305 with the all-zero nonce; enc: out = ct || tag (len + 16); else in = ct || tag */
static int aead0(int enc, const uint8_t key[32], const uint8_t *in, size_t len, const uint8_t ad[32],
                 uint8_t *out)
{
    static const uint8_t nonce[12];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, rc = WGDP_NOISE_ERROR;
    size_t body = enc ? len : len - 16;
    if (!c || !chacha || len > 0x7fffffff)
        goto out;
    if (EVP_CipherInit_ex(c, chacha, NULL, key, nonce, enc) != 1 ||
        EVP_CipherUpdate(c, NULL, &n, ad, 32) != 1)
        goto out;
    if (body && EVP_CipherUpdate(c, out, &n, in, (int)body) != 1)
        goto out;
    if (enc) {
        if (EVP_CipherFinal_ex(c, out + body, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + body) != 1)
            goto out;
        rc = WGDP_NOISE_OK;
    } else {
        if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(in + body)) != 1)
            goto out;
        rc = EVP_CipherFinal_ex(c, out + body, &n) == 1 ? WGDP_NOISE_OK : WGDP_NOISE_DECRYPT;
        if (rc != WGDP_NOISE_OK && body)
            OPENSSL_cleanse(out, body);
    }
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int wgdp_noise_read_static(const uint8_t *local, const uint8_t *h0, const uint8_t *msg, uint8_t *remote_static,
                           uint8_t *ck, uint8_t *hash)
{
    uint8_t c[32], h[32], k[32], es[32], rs[32];
    int rc;
    pthread_once(&once, init_once);
    rc = dh(local, msg, es);                            /* DH(S_r, E_i) */
    if (rc != WGDP_NOISE_OK)
        goto out;
    kdf(c0, msg, 32, c, NULL, NULL);                    /* C = KDF1(C0, e) */
    hash2(h0, 32, msg, 32, h);                          /* H = HASH(H, e) */
    kdf(c, es, 32, c, k, NULL);                         /* C, k = KDF2(C, DH(S_r, E_i)) */
    rc = aead0(0, k, msg + 32, 48, h, rs);
    if (rc != WGDP_NOISE_OK)
        goto out;
    hash2(h, 32, msg + 32, 48, h);                      /* H = HASH(H, enc(S_i)) */
    memcpy(remote_static, rs, 32);
    memcpy(ck, c, 32);
    memcpy(hash, h, 32);
out:
    OPENSSL_cleanse(c, sizeof(c));
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(es, sizeof(es));
    return rc;
}

int wgdp_noise_read_payload(uint8_t *ck, uint8_t *hash, const uint8_t *ss, const uint8_t *enc, size_t enc_len,
                            uint8_t *payload)
{
    uint8_t c[32], h[32], k[32];
    int rc;
    if (enc_len < 16)
        return WGDP_NOISE_DECRYPT;
    pthread_once(&once, init_once);
    kdf(ck, ss, 32, c, k, NULL);                        /* C, k = KDF2(C, DH(S_r, S_i)) */
    rc = aead0(0, k, enc, enc_len, hash, payload);
    if (rc == WGDP_NOISE_OK) {
        hash2(hash, 32, enc, enc_len, h);               /* H = HASH(H, enc(payload)) */
        memcpy(ck, c, 32);
        memcpy(hash, h, 32);
    }
    OPENSSL_cleanse(c, sizeof(c));
    OPENSSL_cleanse(k, sizeof(k));
    return rc;
}

int wgdp_noise_write_response(uint8_t *ck, uint8_t *hash, const uint8_t *e_priv, const uint8_t *e_i,
                              const uint8_t *s_i, const uint8_t *psk, const uint8_t *payload, size_t len,
                              uint8_t *e_pub, uint8_t *enc, uint8_t *split)
{
    uint8_t c[32], h[32], tau[32], k[32], e[32], ee[32], se[32];
    int rc = WGDP_NOISE_ERROR;
    pthread_once(&once, init_once);
    if (!scalarmult_base || scalarmult_base(e, e_priv) != 0)    /* E_r */
        goto out;
    rc = dh(e_priv, e_i, ee);                                   /* DH(E_r, E_i) */
    if (rc == WGDP_NOISE_OK)
        rc = dh(e_priv, s_i, se);                               /* DH(E_r, S_i) */
    if (rc != WGDP_NOISE_OK)
        goto out;
    kdf(ck, e, 32, c, NULL, NULL);                      /* C = KDF1(C, E_r) */
    hash2(hash, 32, e, 32, h);                          /* H = HASH(H, E_r) */
    kdf(c, ee, 32, c, NULL, NULL);                      /* C = KDF1(C, DH(E_r, E_i)) */
    kdf(c, se, 32, c, NULL, NULL);                      /* C = KDF1(C, DH(E_r, S_i)) */
    kdf(c, psk, 32, c, tau, k);                         /* C, tau, k = KDF3(C, Q) */
    hash2(h, 32, tau, 32, h);                           /* H = HASH(H, tau) */
    rc = aead0(1, k, payload, len, h, enc);
    if (rc == WGDP_NOISE_OK) {
        hash2(h, 32, enc, len + 16, h);                 /* H = HASH(H, enc(payload)) */
        kdf(c, NULL, 0, split, split + 32, NULL);       /* T1, T2 = KDF2(C, ""): the session keys */
        memcpy(e_pub, e, 32);
        memcpy(ck, c, 32);
        memcpy(hash, h, 32);
    }
out:
    OPENSSL_cleanse(c, sizeof(c));
    OPENSSL_cleanse(tau, sizeof(tau));
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(ee, sizeof(ee));
    OPENSSL_cleanse(se, sizeof(se));
    return rc;
}
