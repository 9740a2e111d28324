/* API keys for the HTTP routes that are not for end users (/metrics, and
 * later publishing and operator actions): a file of "NAME KEY" lines
 * (--api-keys-file; # comments), re-read on SIGHUP. Callers send
 * "Authorization: Bearer KEY"; the log names the key's NAME, never the key.
 * Keys are compared in constant time, every one of them every time. */
#ifndef CONSUMER_API_KEYS_H
#define CONSUMER_API_KEYS_H

#include <stddef.h>

#define API_KEY_NAME_MAX 64
#define API_KEY_MIN 16  /* bytes: shorter keys are refused at load */
#define API_KEY_MAX 256

typedef struct api_keys api_keys_t;

/* NULL with errstr (file and line) when the file does not read. */
api_keys_t *api_keys_load(const char *path, char *errstr, size_t size);
void api_keys_free(api_keys_t *k);
size_t api_keys_count(const api_keys_t *k);
/* The NAME of the key equal to key (len bytes), or NULL. */
const char *api_keys_match(const api_keys_t *k, const char *key, size_t len);

#endif
