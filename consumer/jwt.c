/* JSON Web Token verification: keys, signature, claims. */
#include "jwt.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define KEYS_MAX 32      /* keys in a JWKS file */
#define KID_MAX 128
#define KEY_FILE_MAX (256u << 10)

enum alg { HS256, RS256, ES256 };
static const char *const alg_names[] = {"HS256", "RS256", "ES256"};

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

/* ---- helpers ---- */

__attribute__((format(printf, 3, 4))) static int fail(char *errstr, size_t size,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
    return -1;
}

/* base64url without padding (RFC 7515 §2); -1 on any other character. */
static int b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
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
        fail(errstr, size, "cannot open %s", path);
        return NULL;
    }
    char *buf = xmalloc(KEY_FILE_MAX + 1);
    *len = fread(buf, 1, KEY_FILE_MAX + 1, f);
    int bad = ferror(f) || *len > KEY_FILE_MAX;
    fclose(f);
    if (bad) {
        free(buf);
        fail(errstr, size, "cannot read %s, or it is over 256 KiB", path);
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
            snprintf(keys->algs + l, sizeof(keys->algs) - l, "%s%s", l ? ", " : "", alg_names[a]);
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

/* ---- loading keys ---- */

jwt_keys_t *jwt_keys_secret(const unsigned char *secret, size_t len, char *errstr, size_t size)
{
    if (len < 32) {
        fail(errstr, size, "%s", "the HS256 secret is shorter than 32 bytes; use 32 random bytes "
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
            return fail(errstr, size, "%s", "RSA keys under 2048 bits are refused");
        return RS256;
    }
    char group[64];
    if (EVP_PKEY_is_a(pkey, "EC") &&
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) &&
        strcmp(group, "prime256v1") == 0)
        return ES256;
    return fail(errstr, size, "%s", "only RSA (RS256) and P-256 (ES256) public keys are supported");
}

jwt_keys_t *jwt_keys_pem_file(const char *path, char *errstr, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fail(errstr, size, "cannot open %s", path);
        return NULL;
    }
    EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey) {
        fail(errstr, size, "%s holds no PEM public key (-----BEGIN PUBLIC KEY-----)", path);
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
    return s ? b64url_decode(s, strlen(s), out, cap, len) : -1;
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
        return fail(errstr, size, "%s has no \"kty\"", where);
    if (kid && strlen(kid) > KID_MAX)
        return fail(errstr, size, "%s: \"kid\" is over 128 bytes", where);
    if (keys->n == KEYS_MAX)
        return fail(errstr, size, "%s", "more than 32 keys");
    EVP_PKEY *pkey = strcmp(kty, "RSA") == 0 ? rsa_jwk(jwk)
                     : strcmp(kty, "EC") == 0 ? ec_jwk(jwk)
                                              : NULL;
    if (!pkey)
        return fail(errstr, size,
                    "%s is not an RSA or P-256 public key (symmetric \"oct\" keys are not read "
                    "from a JWKS file: use JWT_SECRET)", where);
    int a = alg_of(pkey, errstr, size);
    if (a >= 0 && alg && strcmp(alg, alg_names[a]) != 0)
        a = fail(errstr, size, "%s: its \"alg\" does not match its type", where);
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

/* ---- verifying ---- */

/* The key for a token's header: by kid when it has one, else the only key
 * of that algorithm. The algorithm must be the key's. */
static const struct key *pick_key(const jwt_keys_t *keys, const char *alg, const char *kid,
                                  char *errstr, size_t size)
{
    const struct key *found = NULL;
    for (size_t i = 0; i < keys->n; i++) {
        const struct key *k = &keys->k[i];
        if (kid ? strcmp(k->kid, kid) == 0 : strcmp(alg_names[k->alg], alg) == 0) {
            found = k;
            break;
        }
    }
    if (!found) {
        if (kid)
            fail(errstr, size, "%s", "no key has the token's kid");
        else
            fail(errstr, size, "the token's algorithm is not %s", keys->algs);
        return NULL;
    }
    if (strcmp(alg_names[found->alg], alg) != 0) {
        fail(errstr, size, "the token's algorithm is not its key's (%s)", alg_names[found->alg]);
        return NULL;
    }
    return found;
}

static int verify_signature(const struct key *k, const char *input, size_t input_len,
                            const unsigned char *sig, size_t sig_len)
{
    if (k->alg == HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input,
                  input_len, mac, &mac_len))
            return -1;
        return sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0 ? 0 : -1;
    }
    unsigned char der[80];
    const unsigned char *s = sig;
    size_t s_len = sig_len;
    if (k->alg == ES256) {
        /* JOSE's r || s, as the DER that OpenSSL verifies. */
        if (sig_len != 64)
            return -1;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !ss || !ECDSA_SIG_set0(es, r, ss)) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            return -1;
        }
        unsigned char *p = der;
        int n = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        if (n <= 0)
            return -1;
        s = der;
        s_len = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, s, s_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* A base64url part as a JSON object. */
static json_t *json_part(const char *part, size_t len)
{
    unsigned char buf[JWT_TOKEN_MAX];
    size_t n;
    if (b64url_decode(part, len, buf, sizeof(buf), &n) != 0)
        return NULL;
    json_t *o = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    if (o && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A NumericDate claim: 1 and *out when present, 0 when absent, -1 when not
 * a number. */
static int numeric_date(json_t *claims, const char *name, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!(d > -1e15 && d < 1e15)) /* also NaN; keeps the cast defined */
        return -1;
    *out = (int64_t)d;
    return 1;
}

static int audience_has(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    return 0;
}

/* Why the claims are refused, or NULL; *r says how. */
static const char *refuse_claims(json_t *c, const struct jwt_rules *rules, int64_t now,
                                 enum jwt_result *r)
{
    int64_t exp = 0, nbf = 0, iat = 0, leeway = rules->leeway_s;
    const char *sub = json_string_value(json_object_get(c, "sub"));
    json_t *jti = json_object_get(c, "jti");
    int has_nbf = numeric_date(c, "nbf", &nbf), has_iat = numeric_date(c, "iat", &iat);
    *r = JWT_INVALID;
    if (!sub || !notification_user_valid(sub, strlen(sub)))
        return "\"sub\" is missing or not a valid user id";
    if (numeric_date(c, "exp", &exp) != 1)
        return "\"exp\" is missing or not a number";
    if (has_nbf < 0 || has_iat < 0)
        return "\"nbf\" or \"iat\" is not a number";
    if (has_nbf && now + leeway < nbf)
        return "the token is not valid yet (nbf)";
    if (has_iat && now + leeway < iat)
        return "the token was issued in the future (iat)";
    if (rules->issuer && *rules->issuer) {
        const char *iss = json_string_value(json_object_get(c, "iss"));
        if (!iss || strcmp(iss, rules->issuer) != 0)
            return "\"iss\" is not the expected issuer";
    }
    if (rules->audience && *rules->audience &&
        !audience_has(json_object_get(c, "aud"), rules->audience))
        return "\"aud\" does not name this gateway";
    if (jti && (!json_is_string(jti) || json_string_length(jti) > JWT_JTI_MAX))
        return "\"jti\" is not a string of 128 bytes at most";
    if (now - leeway >= exp) {
        *r = JWT_EXPIRED;
        return "the token has expired";
    }
    *r = JWT_OK;
    return NULL;
}

static void take_claims(json_t *c, struct jwt_claims *out)
{
    json_t *jti = json_object_get(c, "jti");
    snprintf(out->sub, sizeof(out->sub), "%s", json_string_value(json_object_get(c, "sub")));
    snprintf(out->jti, sizeof(out->jti), "%s", jti ? json_string_value(jti) : "");
    numeric_date(c, "exp", &out->exp);
}

enum jwt_result jwt_verify(const jwt_keys_t *keys, const struct jwt_rules *rules,
                           const char *token, size_t len, int64_t now_s,
                           struct jwt_claims *claims, char *errstr, size_t size)
{
    if (len == 0 || len > JWT_TOKEN_MAX)
        return fail(errstr, size, "%s", "the token is empty or over 8192 bytes"), JWT_INVALID;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return fail(errstr, size, "%s", "not a signed JWT (three parts joined by dots)"),
               JWT_INVALID;

    json_t *header = json_part(token, (size_t)(dot1 - token));
    const char *alg = json_string_value(json_object_get(header, "alg"));
    json_t *kid = json_object_get(header, "kid");
    const struct key *k = NULL;
    enum jwt_result r = JWT_INVALID;
    if (!alg || (kid && !json_is_string(kid)) || json_object_get(header, "crit")) {
        fail(errstr, size, "%s", "the token's header is malformed or has \"crit\"");
        goto out;
    }
    k = pick_key(keys, alg, kid ? json_string_value(kid) : NULL, errstr, size);
    if (!k)
        goto out;

    unsigned char sig[512];
    size_t sig_len;
    const char *sig_b64 = dot2 + 1;
    if (b64url_decode(sig_b64, len - (size_t)(sig_b64 - token), sig, sizeof(sig), &sig_len) ||
        verify_signature(k, token, (size_t)(dot2 - token), sig, sig_len) != 0) {
        fail(errstr, size, "%s", "the token's signature does not verify");
        goto out;
    }
    json_t *payload = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload) {
        fail(errstr, size, "%s", "the token's claims are not a JSON object");
        goto out;
    }
    const char *why = refuse_claims(payload, rules, now_s, &r);
    if (why)
        fail(errstr, size, "%s", why);
    else
        take_claims(payload, claims);
    json_decref(payload);
out:
    json_decref(header);
    return r;
}
