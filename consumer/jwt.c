/* JSON Web Token verification: signature, then claims. */
#include "jwt.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errstr.h"
#include "jwt_internal.h"

/* The key for a token's header: by kid when it has one, else the only key
 * of that algorithm. The algorithm must be the key's. */
static const struct key *pick_key(const jwt_keys_t *keys, const char *alg, const char *kid,
                                  char *errstr, size_t size)
{
    const struct key *found = NULL;
    for (size_t i = 0; i < keys->n; i++) {
        const struct key *k = &keys->k[i];
        if (kid ? strcmp(k->kid, kid) == 0 : strcmp(jwt_alg_names[k->alg], alg) == 0) {
            found = k;
            break;
        }
    }
    if (!found) {
        if (kid)
            errstr_set(errstr, size, "%s", "no key has the token's kid");
        else
            errstr_set(errstr, size, "the token's algorithm is not %s", keys->algs);
        return NULL;
    }
    if (strcmp(jwt_alg_names[found->alg], alg) != 0) {
        errstr_set(errstr, size, "the token's algorithm is not its key's (%s)", jwt_alg_names[found->alg]);
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
    if (jwt_b64url_decode(part, len, buf, sizeof(buf), &n) != 0)
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
    json_t *send = json_object_get(c, "send");
    if (send && !json_is_boolean(send))
        return "\"send\" is not true or false";
    json_t *rooms = json_object_get(c, "rooms");
    if (rooms) {
        size_t i;
        json_t *v;
        if (!json_is_array(rooms) || json_array_size(rooms) > JWT_ROOMS_MAX)
            return "\"rooms\" is not an array of at most 64 room names";
        json_array_foreach(rooms, i, v)
            if (!json_is_string(v) ||
                !notification_room_valid(json_string_value(v), json_string_length(v)))
                return "\"rooms\" holds something that is not a room name (1 to 64 letters, "
                       "digits or . _ -)";
    }
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
    out->send = json_is_true(json_object_get(c, "send"));
    json_t *rooms = json_object_get(c, "rooms");
    size_t i, used = 0;
    json_t *v;
    out->has_rooms = rooms != NULL;
    out->rooms[0] = '\0';
    json_array_foreach(rooms, i, v)
        used += (size_t)snprintf(out->rooms + used, sizeof(out->rooms) - used, "%s%s",
                                 used ? "," : "", json_string_value(v));
}

enum jwt_result jwt_verify(const jwt_keys_t *keys, const struct jwt_rules *rules,
                           const char *token, size_t len, int64_t now_s,
                           struct jwt_claims *claims, char *errstr, size_t size)
{
    if (len == 0 || len > JWT_TOKEN_MAX)
        return errstr_set(errstr, size, "%s", "the token is empty or over 8192 bytes"), JWT_INVALID;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return errstr_set(errstr, size, "%s", "not a signed JWT (three parts joined by dots)"),
               JWT_INVALID;

    json_t *header = json_part(token, (size_t)(dot1 - token));
    const char *alg = json_string_value(json_object_get(header, "alg"));
    json_t *kid = json_object_get(header, "kid");
    const struct key *k = NULL;
    enum jwt_result r = JWT_INVALID;
    if (!alg || (kid && !json_is_string(kid)) || json_object_get(header, "crit")) {
        errstr_set(errstr, size, "%s", "the token's header is malformed or has \"crit\"");
        goto out;
    }
    k = pick_key(keys, alg, kid ? json_string_value(kid) : NULL, errstr, size);
    if (!k)
        goto out;

    unsigned char sig[512];
    size_t sig_len;
    const char *sig_b64 = dot2 + 1;
    if (jwt_b64url_decode(sig_b64, len - (size_t)(sig_b64 - token), sig, sizeof(sig), &sig_len) ||
        verify_signature(k, token, (size_t)(dot2 - token), sig, sig_len) != 0) {
        errstr_set(errstr, size, "%s", "the token's signature does not verify");
        goto out;
    }
    json_t *payload = json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload) {
        errstr_set(errstr, size, "%s", "the token's claims are not a JSON object");
        goto out;
    }
    const char *why = refuse_claims(payload, rules, now_s, &r);
    if (why)
        errstr_set(errstr, size, "%s", why);
    else
        take_claims(payload, claims);
    json_decref(payload);
out:
    json_decref(header);
    return r;
}
