/* The JWT module's insides, shared by jwt_keys.c (loading keys) and jwt.c
 * (verifying tokens). */
#ifndef CONSUMER_JWT_INTERNAL_H
#define CONSUMER_JWT_INTERNAL_H

#include <openssl/evp.h>
#include <stddef.h>

#include "jwt.h"

#define KEYS_MAX 32 /* keys in a JWKS file */
#define KID_MAX 128
#define KEY_FILE_MAX (256u << 10)

enum alg { HS256, RS256, ES256 };
extern const char *const jwt_alg_names[];

struct key {
    enum alg alg;
    char kid[KID_MAX + 1]; /* "" when the key has none */
    EVP_PKEY *pkey;        /* RS256, ES256 */
    unsigned char *secret; /* HS256 */
    size_t secret_len;
};

struct jwt_keys {
    struct key k[KEYS_MAX];
    size_t n;
    char algs[32];
};

/* base64url without padding (RFC 7515 §2); -1 on any other character or
 * when out (cap bytes) cannot hold it. */
int jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                      size_t *out_len);

#endif
