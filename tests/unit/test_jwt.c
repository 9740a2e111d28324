/* Token verification: tokens signed here with OpenSSL (HS256, RS256,
 * ES256), checked against keys given as a secret, a PEM file and a JWKS
 * file; every way a token can be wrong is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "jwt.h"

#define NOW 1800000000
static const char secret[] = "0123456789abcdef0123456789abcdef-test";
static const struct jwt_rules rules = {NULL, NULL, 30};

static EVP_PKEY *rsa_key, *ec_key, *other_rsa_key;

static void b64url(const unsigned char *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* header.payload, signed with alg: "HS256" (key NULL: the test secret;
 * else the bytes of hmac_key), "RS256" or "ES256" with pkey, "none". */
static char *sign(const char *header, const char *payload, const char *alg, EVP_PKEY *pkey,
                  const char *hmac_key)
{
    static char token[8192];
    char h[1024], p[2048], s[1024] = "";
    b64url((const unsigned char *)header, strlen(header), h);
    b64url((const unsigned char *)payload, strlen(payload), p);
    char input[4096];
    snprintf(input, sizeof(input), "%s.%s", h, p);
    unsigned char sig[512];
    size_t sig_len = 0;
    if (strcmp(alg, "HS256") == 0) {
        unsigned int n;
        const char *k = hmac_key ? hmac_key : secret;
        HMAC(EVP_sha256(), k, (int)strlen(k), (unsigned char *)input, strlen(input), sig, &n);
        sig_len = n;
    } else if (strcmp(alg, "none") != 0) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        sig_len = sizeof(sig);
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
        assert_int_equal(EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)input,
                                        strlen(input)), 1);
        EVP_MD_CTX_free(ctx);
        if (strcmp(alg, "ES256") == 0) { /* DER -> r || s */
            const unsigned char *q = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sig_len);
            memset(sig, 0, 64);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sig_len = 64;
        }
    }
    if (sig_len)
        b64url(sig, sig_len, s);
    snprintf(token, sizeof(token), "%s.%s", input, s);
    return token;
}

static const char *claims(const char *sub, long exp)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "{\"sub\":\"%s\",\"exp\":%ld,\"iat\":%d}", sub, exp, NOW - 10);
    return buf;
}

static enum jwt_result check(const jwt_keys_t *keys, const char *token,
                             const struct jwt_rules *r, struct jwt_claims *c)
{
    char err[200] = "";
    enum jwt_result res = jwt_verify(keys, r, token, strlen(token), NOW, c, err, sizeof(err));
    if (res != JWT_OK)
        assert_true(err[0] != '\0');
    return res;
}

static jwt_keys_t *hs_keys(void)
{
    char err[200];
    jwt_keys_t *k = jwt_keys_secret((const unsigned char *)secret, strlen(secret), err,
                                    sizeof(err));
    assert_non_null(k);
    return k;
}

static char *write_tmp(const char *text)
{
    static char paths[8][64];
    static int n;
    char *path = paths[n++ % 8];
    snprintf(path, 64, "/tmp/test_jwt_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static jwt_keys_t *pem_keys(EVP_PKEY *pkey)
{
    char err[200], pem[4096];
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pkey);
    int n = BIO_read(b, pem, sizeof(pem) - 1);
    pem[n] = '\0';
    BIO_free(b);
    char *path = write_tmp(pem);
    jwt_keys_t *k = jwt_keys_pem_file(path, err, sizeof(err));
    unlink(path);
    assert_non_null(k);
    return k;
}

static void bn_param(EVP_PKEY *pkey, const char *name, char *out)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
    int n = BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
}

/* A JWKS with the RSA key as kid "r1" and the EC key as kid "e1". */
static char *jwks_text(void)
{
    static char text[4096];
    char n[700], e[16], x[64], y[64];
    unsigned char pt[65];
    size_t len;
    bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_N, n);
    bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_E, e);
    assert_int_equal(EVP_PKEY_get_octet_string_param(ec_key, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                                     sizeof(pt), &len), 1);
    assert_int_equal(len, 65);
    b64url(pt + 1, 32, x);
    b64url(pt + 33, 32, y);
    snprintf(text, sizeof(text),
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"alg\":\"RS256\",\"use\":\"sig\","
             "\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             n, e, x, y);
    return text;
}

static int setup(void **state)
{
    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    other_rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return rsa_key && ec_key && other_rsa_key ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(other_rsa_key);
    EVP_PKEY_free(ec_key);
    return 0;
}

static void hs256_valid_token_gives_the_user(void **state)
{
    (void)state;
    jwt_keys_t *k = hs_keys();
    struct jwt_claims c;
    const char *t = sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                         "{\"sub\":\"alice\",\"exp\":1800000600,\"jti\":\"t-1\"}", "HS256", NULL,
                         NULL);
    assert_int_equal(check(k, t, &rules, &c), JWT_OK);
    assert_string_equal(c.sub, "alice");
    assert_int_equal(c.exp, 1800000600);
    assert_string_equal(c.jti, "t-1");
    assert_string_equal(jwt_keys_algorithms(k), "HS256");
    jwt_keys_free(k);
}

static void forged_and_malformed_tokens_are_refused(void **state)
{
    (void)state;
    jwt_keys_t *k = hs_keys();
    struct jwt_claims c;
    const char *h = "{\"alg\":\"HS256\"}";
    /* Another secret. */
    assert_int_equal(check(k, sign(h, claims("alice", NOW + 60), "HS256", NULL,
                                   "another-secret-of-32-bytes-or-more!"), &rules, &c),
                     JWT_INVALID);
    /* The payload changed after signing: bob's claims under alice's signature. */
    char good[8192], evil[8192];
    snprintf(good, sizeof(good), "%s", sign(h, claims("alice", NOW + 60), "HS256", NULL, NULL));
    snprintf(evil, sizeof(evil), "%s", sign(h, claims("bob", NOW + 60), "HS256", NULL, NULL));
    char *sig = strrchr(good, '.'), *evil_sig = strrchr(evil, '.');
    memcpy(evil_sig, sig, strlen(sig) + 1);
    assert_int_equal(check(k, evil, &rules, &c), JWT_INVALID);
    /* alg none, with and without a signature part. */
    assert_int_equal(check(k, sign("{\"alg\":\"none\"}", claims("alice", NOW + 60), "none", NULL,
                                   NULL), &rules, &c), JWT_INVALID);
    /* Not three parts, bad base64url, not JSON, too long, crit. */
    const char *bad[] = {"", "abc", "a.b", "a.b.c.d", "e30.e30.!!!!", "bm90IGpzb24.e30.AAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(check(k, bad[i], &rules, &c), JWT_INVALID);
    static char huge[JWT_TOKEN_MAX + 2];
    memset(huge, 'a', sizeof(huge) - 1);
    assert_int_equal(check(k, huge, &rules, &c), JWT_INVALID);
    assert_int_equal(check(k, sign("{\"alg\":\"HS256\",\"crit\":[\"x\"]}",
                                   claims("alice", NOW + 60), "HS256", NULL, NULL), &rules, &c),
                     JWT_INVALID);
    jwt_keys_free(k);
}

static void claims_are_checked(void **state)
{
    (void)state;
    jwt_keys_t *k = hs_keys();
    struct jwt_claims c;
    const char *h = "{\"alg\":\"HS256\"}";
    /* Expired past the leeway; within it still valid. */
    assert_int_equal(check(k, sign(h, claims("alice", NOW - 31), "HS256", NULL, NULL), &rules, &c),
                     JWT_EXPIRED);
    assert_int_equal(check(k, sign(h, claims("alice", NOW - 29), "HS256", NULL, NULL), &rules, &c),
                     JWT_OK);
    const char *refused[] = {
        "{\"sub\":\"alice\"}",                                  /* no exp */
        "{\"sub\":\"alice\",\"exp\":\"soon\"}",                 /* exp not a number */
        "{\"exp\":1900000000}",                                 /* no sub */
        "{\"sub\":\"al ice\",\"exp\":1900000000}",              /* sub not a user id */
        "{\"sub\":\"alice\",\"exp\":1900000000,\"nbf\":1800000100}", /* not yet valid */
        "{\"sub\":\"alice\",\"exp\":1900000000,\"iat\":1800000100}", /* issued in the future */
        "{\"sub\":\"alice\",\"exp\":1e300}",                    /* out of range */
        "{\"sub\":\"alice\",\"exp\":1900000000,\"jti\":7}",
        "[1,2]",
        "{\"sub\":\"alice\",\"sub\":\"bob\",\"exp\":1900000000}", /* duplicate member */
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_int_equal(check(k, sign(h, refused[i], "HS256", NULL, NULL), &rules, &c),
                         JWT_INVALID);
    /* Audience and issuer, when required. */
    struct jwt_rules strict = {"gateway", "https://auth.example", 30};
    assert_int_equal(check(k, sign(h, "{\"sub\":\"a\",\"exp\":1900000000,\"aud\":[\"x\",\"gateway\"],"
                                      "\"iss\":\"https://auth.example\"}", "HS256", NULL, NULL),
                           &strict, &c), JWT_OK);
    assert_int_equal(check(k, sign(h, "{\"sub\":\"a\",\"exp\":1900000000,\"aud\":\"other\","
                                      "\"iss\":\"https://auth.example\"}", "HS256", NULL, NULL),
                           &strict, &c), JWT_INVALID);
    assert_int_equal(check(k, sign(h, "{\"sub\":\"a\",\"exp\":1900000000,\"aud\":\"gateway\"}",
                                   "HS256", NULL, NULL), &strict, &c), JWT_INVALID);
    jwt_keys_free(k);
}

static void rs256_and_es256_from_pem_files(void **state)
{
    (void)state;
    struct jwt_claims c;
    jwt_keys_t *rs = pem_keys(rsa_key), *es = pem_keys(ec_key);
    assert_string_equal(jwt_keys_algorithms(rs), "RS256");
    assert_string_equal(jwt_keys_algorithms(es), "ES256");
    const char *rt = sign("{\"alg\":\"RS256\"}", claims("bob", NOW + 60), "RS256", rsa_key, NULL);
    assert_int_equal(check(rs, rt, &rules, &c), JWT_OK);
    assert_string_equal(c.sub, "bob");
    assert_int_equal(check(es, rt, &rules, &c), JWT_INVALID);
    const char *et = sign("{\"alg\":\"ES256\"}", claims("carol", NOW + 60), "ES256", ec_key, NULL);
    assert_int_equal(check(es, et, &rules, &c), JWT_OK);
    assert_string_equal(c.sub, "carol");
    /* Signed by another RSA key. */
    assert_int_equal(check(rs, sign("{\"alg\":\"RS256\"}", claims("bob", NOW + 60), "RS256",
                                    other_rsa_key, NULL), &rules, &c), JWT_INVALID);
    jwt_keys_free(rs);
    jwt_keys_free(es);
}

/* The classic confusion: an HS256 token whose HMAC key is the RSA public
 * key's PEM text, sent to a gateway that verifies RS256. */
static void hs_rs_confusion_is_refused(void **state)
{
    (void)state;
    struct jwt_claims c;
    char pem[4096];
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, rsa_key);
    int n = BIO_read(b, pem, sizeof(pem) - 1);
    pem[n] = '\0';
    BIO_free(b);
    jwt_keys_t *rs = pem_keys(rsa_key);
    assert_int_equal(check(rs, sign("{\"alg\":\"HS256\"}", claims("bob", NOW + 60), "HS256", NULL,
                                    pem), &rules, &c), JWT_INVALID);
    assert_int_equal(check(rs, sign("{\"alg\":\"none\"}", claims("bob", NOW + 60), "none", NULL,
                                    NULL), &rules, &c), JWT_INVALID);
    jwt_keys_free(rs);
}

static void jwks_keys_are_picked_by_kid(void **state)
{
    (void)state;
    char err[200];
    struct jwt_claims c;
    char *path = write_tmp(jwks_text());
    jwt_keys_t *k = jwt_keys_jwks_file(path, err, sizeof(err));
    unlink(path);
    assert_non_null(k);
    assert_string_equal(jwt_keys_algorithms(k), "RS256, ES256");
    assert_int_equal(check(k, sign("{\"alg\":\"RS256\",\"kid\":\"r1\"}", claims("dan", NOW + 60),
                                   "RS256", rsa_key, NULL), &rules, &c), JWT_OK);
    assert_int_equal(check(k, sign("{\"alg\":\"ES256\",\"kid\":\"e1\"}", claims("dan", NOW + 60),
                                   "ES256", ec_key, NULL), &rules, &c), JWT_OK);
    /* A kid with the other key's algorithm, an unknown kid, no kid. */
    assert_int_equal(check(k, sign("{\"alg\":\"ES256\",\"kid\":\"r1\"}", claims("dan", NOW + 60),
                                   "ES256", ec_key, NULL), &rules, &c), JWT_INVALID);
    assert_int_equal(check(k, sign("{\"alg\":\"RS256\",\"kid\":\"r9\"}", claims("dan", NOW + 60),
                                   "RS256", rsa_key, NULL), &rules, &c), JWT_INVALID);
    assert_int_equal(check(k, sign("{\"alg\":\"RS256\"}", claims("dan", NOW + 60), "RS256",
                                   rsa_key, NULL), &rules, &c), JWT_OK);
    jwt_keys_free(k);
}

static void bad_key_files_are_refused_clearly(void **state)
{
    (void)state;
    char err[200];
    assert_null(jwt_keys_secret((const unsigned char *)"short", 5, err, sizeof(err)));
    assert_non_null(strstr(err, "32 bytes"));
    assert_null(jwt_keys_pem_file("/nonexistent/key.pem", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/key.pem"));
    const char *bad_jwks[] = {"[]", "{\"keys\":[]}", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}",
                              "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!\",\"e\":\"AQAB\"}]}", "not json"};
    for (size_t i = 0; i < sizeof(bad_jwks) / sizeof(bad_jwks[0]); i++) {
        char *path = write_tmp(bad_jwks[i]);
        err[0] = '\0';
        assert_null(jwt_keys_jwks_file(path, err, sizeof(err)));
        assert_non_null(strstr(err, path));
        unlink(path);
    }
    char *path = write_tmp("0123456789abcdef0123456789abcdef\n");
    jwt_keys_t *k = jwt_keys_secret_file(path, err, sizeof(err));
    unlink(path);
    assert_non_null(k);
    jwt_keys_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hs256_valid_token_gives_the_user),
        cmocka_unit_test(forged_and_malformed_tokens_are_refused),
        cmocka_unit_test(claims_are_checked),
        cmocka_unit_test(rs256_and_es256_from_pem_files),
        cmocka_unit_test(hs_rs_confusion_is_refused),
        cmocka_unit_test(jwks_keys_are_picked_by_kid),
        cmocka_unit_test(bad_key_files_are_refused_clearly),
    };
    return cmocka_run_group_tests_name("jwt", tests, setup, teardown);
}
