/* JWT keys: a secret, a PEM public key or a JWK set, each key with the one
 * algorithm it verifies. */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errstr.h"
#include "jwt_internal.h"
#include "xalloc.h"

const char *const jwt_alg_names[] = {"HS256", "RS256", "ES256"};

int jwt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                      size_t *out_len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-')
            v = 62;
        else if (c == '_')
            v = 63;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = n;
    return 0;
}

static char *read_key_file(const char *path, size_t *len, char *errstr, size_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        errstr_set(errstr, size, "cannot open %s", path);
        return NULL;
    }
    char *buf = xmalloc(KEY_FILE_MAX + 1);
    *len = fread(buf, 1, KEY_FILE_MAX + 1, f);
    int bad = ferror(f) || *len > KEY_FILE_MAX;
    fclose(f);
    if (bad) {
        free(buf);
        errstr_set(errstr, size, "cannot read %s, or it is over 256 KiB", path);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

static jwt_keys_t *keys_new(void)
{
    return xcalloc(1, sizeof(jwt_keys_t));
}

static void name_algs(jwt_keys_t *keys)
{
    int seen[3] = {0};
    keys->algs[0] = '\0';
    for (size_t i = 0; i < keys->n; i++)
        seen[keys->k[i].alg] = 1;
    for (int a = 0; a < 3; a++)
        if (seen[a]) {
            size_t l = strlen(keys->algs);
            snprintf(keys->algs + l, sizeof(keys->algs) - l, "%s%s", l ? ", " : "", jwt_alg_names[a]);
        }
}

void jwt_keys_free(jwt_keys_t *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++) {
        EVP_PKEY_free(keys->k[i].pkey);
        if (keys->k[i].secret)
            OPENSSL_clear_free(keys->k[i].secret, keys->k[i].secret_len);
    }
    free(keys);
}

const char *jwt_keys_algorithms(const jwt_keys_t *keys)
{
    return keys->algs;
}

jwt_keys_t *jwt_keys_secret(const unsigned char *secret, size_t len, char *errstr, size_t size)
{
    if (len < 32) {
        errstr_set(errstr, size, "%s", "the HS256 secret is shorter than 32 bytes; use 32 random bytes "
                                 "or more (e.g. openssl rand -hex 32)");
        return NULL;
    }
    jwt_keys_t *keys = keys_new();
    keys->k[0].alg = HS256;
    keys->k[0].secret = xmalloc(len);
    memcpy(keys->k[0].secret, secret, len);
    keys->k[0].secret_len = len;
    keys->n = 1;
    name_algs(keys);
    return keys;
}

jwt_keys_t *jwt_keys_secret_file(const char *path, char *errstr, size_t size)
{
    size_t len;
    char *buf = read_key_file(path, &len, errstr, size);
    if (!buf)
        return NULL;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    jwt_keys_t *keys = jwt_keys_secret((unsigned char *)buf, len, errstr, size);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return keys;
}

/* The algorithm of a public key, or -1 with errstr. */
static int alg_of(EVP_PKEY *pkey, char *errstr, size_t size)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < 2048)
            return errstr_set(errstr, size, "%s", "RSA keys under 2048 bits are refused");
        return RS256;
    }
    char group[64];
    if (EVP_PKEY_is_a(pkey, "EC") &&
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) &&
        strcmp(group, "prime256v1") == 0)
        return ES256;
    return errstr_set(errstr, size, "%s", "only RSA (RS256) and P-256 (ES256) public keys are supported");
}

jwt_keys_t *jwt_keys_pem_file(const char *path, char *errstr, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        errstr_set(errstr, size, "cannot open %s", path);
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey) {
        errstr_set(errstr, size, "%s holds no PEM public key (-----BEGIN PUBLIC KEY-----)", path);
        return NULL;
    }
    int alg = alg_of(pkey, errstr, size);
    if (alg < 0) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    jwt_keys_t *keys = keys_new();
    keys->k[0] = (struct key){.alg = (enum alg)alg, .pkey = pkey};
    keys->n = 1;
    name_algs(keys);
    return keys;
}

/* A JWK's base64url member as bytes; -1 if missing or malformed. */
static int jwk_bytes(json_t *jwk, const char *name, unsigned char *out, size_t cap, size_t *len)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    return s ? jwt_b64url_decode(s, strlen(s), out, cap, len) : -1;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_jwk(json_t *jwk)
{
    unsigned char n[1024], e[16];
    size_t nlen, elen;
    if (jwk_bytes(jwk, "n", n, sizeof(n), &nlen) || jwk_bytes(jwk, "e", e, sizeof(e), &elen))
        return NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pkey = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

static EVP_PKEY *ec_jwk(json_t *jwk)
{
    unsigned char point[65];
    size_t xlen, ylen;
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0)
        return NULL;
    point[0] = 0x04; /* uncompressed: x then y */
    if (jwk_bytes(jwk, "x", point + 1, 32, &xlen) || jwk_bytes(jwk, "y", point + 33, 32, &ylen) ||
        xlen != 32 || ylen != 32)
        return NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        pkey = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static int add_jwk(jwt_keys_t *keys, json_t *jwk, size_t index, char *errstr, size_t size)
{
    char where[32];
    snprintf(where, sizeof(where), "key %zu", index);
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    if (use && strcmp(use, "sig") != 0)
        return 0; /* an encryption key: not for tokens */
    if (!kty)
        return errstr_set(errstr, size, "%s has no \"kty\"", where);
    if (kid && strlen(kid) > KID_MAX)
        return errstr_set(errstr, size, "%s: \"kid\" is over 128 bytes", where);
    if (keys->n == KEYS_MAX)
        return errstr_set(errstr, size, "%s", "more than 32 keys");
    EVP_PKEY *pkey = strcmp(kty, "RSA") == 0 ? rsa_jwk(jwk)
                     : strcmp(kty, "EC") == 0 ? ec_jwk(jwk)
                                              : NULL;
    if (!pkey)
        return errstr_set(errstr, size,
                    "%s is not an RSA or P-256 public key (symmetric \"oct\" keys are not read "
                    "from a JWKS file: use JWT_SECRET)", where);
    int a = alg_of(pkey, errstr, size);
    if (a >= 0 && alg && strcmp(alg, jwt_alg_names[a]) != 0)
        a = errstr_set(errstr, size, "%s: its \"alg\" does not match its type", where);
    if (a < 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }
    struct key *k = &keys->k[keys->n++];
    *k = (struct key){.alg = (enum alg)a, .pkey = pkey};
    snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
    return 0;
}

jwt_keys_t *jwt_keys_jwks_file(const char *path, char *errstr, size_t size)
{
    size_t len;
    char *buf = read_key_file(path, &len, errstr, size), err[200];
    if (!buf)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    json_t *list = json_object_get(root, "keys");
    jwt_keys_t *keys = keys_new();
    int bad = !json_is_array(list);
    if (bad)
        snprintf(err, sizeof(err), "%s", "not a JWK set {\"keys\":[...]}");
    for (size_t i = 0; !bad && i < json_array_size(list); i++)
        bad = add_jwk(keys, json_array_get(list, i), i, err, sizeof(err)) != 0;
    if (!bad && keys->n == 0) {
        bad = 1;
        snprintf(err, sizeof(err), "%s", "no signing key in it");
    }
    json_decref(root);
    if (bad) {
        snprintf(errstr, size, "%s: %s", path, err);
        jwt_keys_free(keys);
        return NULL;
    }
    name_algs(keys);
    return keys;
}
