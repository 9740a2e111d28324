/* Verifying JSON Web Tokens (RFC 7519) with OpenSSL 3 and jansson: HS256,
 * RS256 and ES256, keys from a secret, a PEM public key or a JWKS file.
 *
 * The algorithm is pinned by the key, never taken from the token: each key
 * has one algorithm (a secret HS256, an RSA key RS256, a P-256 key ES256),
 * and a token whose header names another one is refused before its
 * signature is looked at (no "alg":"none", no HMAC keyed with a public
 * key). With several keys (JWKS), the token's "kid" picks one.
 *
 * No I/O but reading the key files at load; unit-tested in
 * tests/unit/test_jwt.c. */
#ifndef CONSUMER_JWT_H
#define CONSUMER_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "notification.h"

#define JWT_TOKEN_MAX 8192 /* bytes of a token accepted at all */
#define JWT_JTI_MAX 128

typedef struct jwt_keys jwt_keys_t;

/* HS256 with this secret (at least 32 bytes, RFC 7518 §3.2). */
jwt_keys_t *jwt_keys_secret(const unsigned char *secret, size_t len, char *errstr, size_t size);
/* The secret is the file's content without its trailing newline. */
jwt_keys_t *jwt_keys_secret_file(const char *path, char *errstr, size_t size);
/* One PEM public key: RSA (2048 bits or more) for RS256, P-256 for ES256. */
jwt_keys_t *jwt_keys_pem_file(const char *path, char *errstr, size_t size);
/* A JWK set {"keys":[...]} of RSA and P-256 public keys, each with its
 * "kid"; a key's "alg", when given, must be its algorithm. */
jwt_keys_t *jwt_keys_jwks_file(const char *path, char *errstr, size_t size);
void jwt_keys_free(jwt_keys_t *keys);
/* "HS256", "RS256", "ES256" or "RS256, ES256": for the start-up log. */
const char *jwt_keys_algorithms(const jwt_keys_t *keys);

/* What a token must also say, besides a valid signature. */
struct jwt_rules {
    const char *audience; /* NULL or "": "aud" not checked */
    const char *issuer;   /* NULL or "": "iss" not checked */
    int leeway_s;         /* clock skew allowed on exp, nbf and iat */
};

#define JWT_ROOMS_MAX 64 /* rooms one token may name */

struct jwt_claims {
    char sub[NOTIF_USER_MAX + 1]; /* the user */
    int64_t exp;                  /* seconds since the epoch */
    char jti[JWT_JTI_MAX + 1];    /* "" when the token has none */
    int send;                     /* "send": true: may send notifications */
    /* "rooms": the rooms the user may join, comma-separated; has_rooms 0
     * when the token has no such claim (then none). */
    int has_rooms;
    char rooms[JWT_ROOMS_MAX * (NOTIF_ROOM_MAX + 1)];
};

enum jwt_result {
    JWT_OK = 0,
    JWT_INVALID,  /* malformed, bad signature, wrong key or algorithm, claims refused */
    JWT_EXPIRED,  /* valid but past exp (and the leeway) */
};

/* Verifies token (len bytes, not NUL-terminated) at now_s (seconds since
 * the epoch). On JWT_OK, claims holds sub, exp and jti; otherwise errstr
 * says why, without quoting the token. */
enum jwt_result jwt_verify(const jwt_keys_t *keys, const struct jwt_rules *rules,
                           const char *token, size_t len, int64_t now_s,
                           struct jwt_claims *claims, char *errstr, size_t size);

#endif
