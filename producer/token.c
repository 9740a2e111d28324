/* HS256 tokens (RFC 7519) for producer --token-for. */
#include "token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

/* base64url without padding; returns the length written, or 0 when out
 * cannot hold it. */
static size_t b64url(const unsigned char *in, size_t len, char *out, size_t size)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    if ((len * 4 + 2) / 3 + 1 > size)
        return 0;
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
    return o;
}

int token_mint(const char *user, int64_t now_s, long ttl_s, const unsigned char *secret,
               size_t secret_len, char *out, size_t size)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char claims[256];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    /* User ids need no JSON escaping (letters, digits and . _ - @ : + ~). */
    int n = snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}", user,
                     (long long)now_s, (long long)(now_s + ttl_s));
    if (n < 0 || (size_t)n >= sizeof(claims))
        return -1;
    size_t used = b64url((const unsigned char *)header, strlen(header), out, size);
    if (!used || used + 2 > size)
        return -1;
    out[used++] = '.';
    size_t p = b64url((const unsigned char *)claims, (size_t)n, out + used, size - used);
    if (!p)
        return -1;
    used += p;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)out, used, mac,
              &mac_len) || used + 2 > size)
        return -1;
    out[used++] = '.';
    return b64url(mac, mac_len, out + used, size - used) ? 0 : -1;
}
