/* Which web pages may open a WebSocket to the gateway: the Origin header
 * (RFC 6454) checked against --allowed-origins, or, when that is empty,
 * against the gateway's own origin (the Host the page was served from), so
 * that the served test.html works and no other site's page can connect.
 * A request without Origin is not from a browser page: allowed (it still
 * needs a token with --auth jwt). */
#ifndef CONSUMER_ORIGIN_H
#define CONSUMER_ORIGIN_H

#include <stddef.h>

#define ORIGINS_MAX 32

struct origins {
    /* "scheme://host[:port]", lower case; "*": any; "null": pages opened
     * from a file (and sandboxed frames, so not for production) */
    char *list[ORIGINS_MAX];
    size_t n;
};

/* Parses "https://a.example,https://b.example:8443" (or "*"); -1 with
 * errstr for an entry that is not scheme://host[:port]. */
int origins_parse(struct origins *o, const char *csv, char *errstr, size_t size);
void origins_free(struct origins *o);

/* origin: the header's value or NULL; host: the Host header or NULL. */
int origin_allowed(const struct origins *o, const char *origin, const char *host);

#endif
