/* The token verifier's handling of input: any bytes as a token, against
 * an HS256 secret and a P-256 key. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "jwt.h"

static jwt_keys_t *hs, *es;

static void keys(void)
{
    char err[200], path[] = "/tmp/fuzz_jwt_XXXXXX";
    static const char secret[] = "fuzz-secret-0123456789abcdef0123456789";
    hs = jwt_keys_secret((const unsigned char *)secret, sizeof(secret) - 1, err, sizeof(err));
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    PEM_write_PUBKEY(f, k);
    fclose(f);
    es = jwt_keys_pem_file(path, err, sizeof(err));
    unlink(path);
    EVP_PKEY_free(k);
    if (!hs || !es)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!hs)
        keys();
    struct jwt_claims c;
    char err[200];
    struct jwt_rules rules = {"aud", "iss", 30};
    jwt_verify(hs, &rules, (const char *)data, size, 1800000000, &c, err, sizeof(err));
    jwt_verify(es, &rules, (const char *)data, size, 1800000000, &c, err, sizeof(err));
    return 0;
}
