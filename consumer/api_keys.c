/* API keys: loading and constant-time matching. */
#include "api_keys.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define KEYS_MAX 1024

struct api_key {
    char name[API_KEY_NAME_MAX + 1];
    char key[API_KEY_MAX];
    size_t len;
};

struct api_keys {
    struct api_key *k;
    size_t n;
};

api_keys_t *api_keys_load(const char *path, char *errstr, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, size, "--api-keys-file %s: cannot open it", path);
        return NULL;
    }
    api_keys_t *keys = xcalloc(1, sizeof(*keys));
    keys->k = xcalloc(KEYS_MAX, sizeof(*keys->k));
    char line[API_KEY_NAME_MAX + API_KEY_MAX + 8];
    int n = 0, bad = 0;
    while (!bad && fgets(line, sizeof(line), f)) {
        n++;
        char *p = line, name[API_KEY_NAME_MAX + 2], key[API_KEY_MAX + 2], extra[2];
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        int fields = sscanf(p, "%65s %257s %1s", name, key, extra);
        size_t klen = fields >= 2 ? strlen(key) : 0;
        if (fields != 2 || strlen(name) > API_KEY_NAME_MAX || klen < API_KEY_MIN ||
            klen >= API_KEY_MAX || keys->n == KEYS_MAX || !strchr(line, '\n')) {
            /* The line is not quoted: it may hold a key. */
            snprintf(errstr, size,
                     "%s:%d: expected NAME KEY (a name of at most %d bytes, a key of %d to %d "
                     "bytes, at most %d keys)", path, n, API_KEY_NAME_MAX, API_KEY_MIN,
                     API_KEY_MAX - 1, KEYS_MAX);
            bad = 1;
            break;
        }
        struct api_key *k = &keys->k[keys->n++];
        snprintf(k->name, sizeof(k->name), "%s", name);
        memcpy(k->key, key, klen);
        k->len = klen;
        OPENSSL_cleanse(key, sizeof(key));
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    if (bad) {
        api_keys_free(keys);
        return NULL;
    }
    return keys;
}

void api_keys_free(api_keys_t *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k->k, KEYS_MAX * sizeof(*k->k));
    free(k->k);
    free(k);
}

size_t api_keys_count(const api_keys_t *k)
{
    return k ? k->n : 0;
}

const char *api_keys_match(const api_keys_t *k, const char *key, size_t len)
{
    const char *found = NULL;
    if (!k || len == 0 || len >= API_KEY_MAX)
        return NULL;
    char padded[API_KEY_MAX] = {0};
    memcpy(padded, key, len);
    /* Every key, compared over the same length: how long it takes says
     * nothing about which key, or how much of one, matched. */
    for (size_t i = 0; i < k->n; i++) {
        int same = (CRYPTO_memcmp(padded, k->k[i].key, API_KEY_MAX) == 0) & (len == k->k[i].len);
        if (same && !found)
            found = k->k[i].name;
    }
    OPENSSL_cleanse(padded, sizeof(padded));
    return found;
}
