/* Per-address connection limits and the client address behind proxies. */
#include "peer.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

#include "xalloc.h"

struct entry {
    char addr[PEER_ADDR_MAX];
    int open;
    double tokens;
    int64_t refilled_ms;
    UT_hash_handle hh;
};

struct peers {
    struct peer_conf conf;
    struct entry *by_addr;
};

peers_t *peers_new(const struct peer_conf *conf)
{
    peers_t *p = xcalloc(1, sizeof(*p));
    p->conf = *conf;
    return p;
}

void peers_free(peers_t *p)
{
    if (!p)
        return;
    struct entry *e, *tmp;
    HASH_ITER(hh, p->by_addr, e, tmp) {
        HASH_DEL(p->by_addr, e);
        free(e);
    }
    free(p);
}

static void refill(const peers_t *p, struct entry *e, int64_t now_ms)
{
    double add = (double)(now_ms - e->refilled_ms) * p->conf.rate_per_s / 1000.0;
    if (add > 0) {
        e->tokens = e->tokens + add > p->conf.burst ? p->conf.burst : e->tokens + add;
        e->refilled_ms = now_ms;
    }
}

enum peer_verdict peers_admit(peers_t *p, const char *addr, int64_t now_ms, const char **key)
{
    struct entry *e;
    HASH_FIND_STR(p->by_addr, addr, e);
    if (!e) {
        e = xcalloc(1, sizeof(*e));
        snprintf(e->addr, sizeof(e->addr), "%s", addr);
        e->tokens = p->conf.burst;
        e->refilled_ms = now_ms;
        HASH_ADD_STR(p->by_addr, addr, e);
    }
    refill(p, e, now_ms);
    if (e->tokens < 1)
        return PEER_TOO_FAST;
    e->tokens -= 1;
    if (e->open >= p->conf.max_per_address)
        return PEER_TOO_MANY;
    e->open++;
    if (key)
        *key = e->addr;
    return PEER_OK;
}

void peers_release(peers_t *p, const char *addr)
{
    struct entry *e;
    HASH_FIND_STR(p->by_addr, addr, e);
    if (e && e->open > 0)
        e->open--;
}

void peers_sweep(peers_t *p, int64_t now_ms)
{
    struct entry *e, *tmp;
    HASH_ITER(hh, p->by_addr, e, tmp) {
        refill(p, e, now_ms);
        if (e->open == 0 && e->tokens >= p->conf.burst) {
            HASH_DEL(p->by_addr, e);
            free(e);
        }
    }
}

size_t peers_tracked(const peers_t *p)
{
    return HASH_COUNT(p->by_addr);
}

/* An address as bytes; 0, or -1 if it is none. */
static int parse_addr(const char *s, int *family, unsigned char out[16])
{
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

int proxies_parse(struct proxies *px, const char *csv, char *errstr, size_t size)
{
    memset(px, 0, sizeof(*px));
    const char *p = csv;
    while (*p) {
        size_t len = strcspn(p, ",");
        char item[80];
        snprintf(item, sizeof(item), "%.*s", (int)(len < sizeof(item) ? len : sizeof(item) - 1),
                 p);
        p += len + (p[len] == ',');
        char *s = item, *end = item + strlen(item);
        while (isspace((unsigned char)*s))
            s++;
        while (end > s && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (!*s)
            continue;
        char *slash = strchr(s, '/');
        if (slash)
            *slash = '\0';
        struct cidr c;
        char *bad = NULL;
        int ok = px->n < PROXIES_MAX && parse_addr(s, &c.family, c.addr) == 0;
        int max = c.family == AF_INET ? 32 : 128;
        c.bits = max;
        if (ok && slash) {
            long bits = strtol(slash + 1, &bad, 10);
            ok = *bad == '\0' && slash[1] && bits >= 0 && bits <= max;
            c.bits = (int)bits;
        }
        if (!ok) {
            snprintf(errstr, size,
                     "\"%s%s%s\" is not an address or network such as 10.0.0.0/8 or ::1 (at most "
                     "%d, comma-separated)", s, slash ? "/" : "", slash ? slash + 1 : "",
                     PROXIES_MAX);
            return -1;
        }
        px->nets[px->n++] = c;
    }
    return 0;
}

int proxies_trust(const struct proxies *px, const char *addr)
{
    int family;
    unsigned char a[16];
    if (parse_addr(addr, &family, a) != 0)
        return 0;
    for (size_t i = 0; i < px->n; i++) {
        const struct cidr *c = &px->nets[i];
        if (c->family != family)
            continue;
        int whole = c->bits / 8, rest = c->bits % 8;
        if (memcmp(a, c->addr, (size_t)whole) != 0)
            continue;
        if (rest && ((a[whole] ^ c->addr[whole]) & (0xff << (8 - rest)) & 0xff))
            continue;
        return 1;
    }
    return 0;
}

const char *peer_unmapped(const char *addr)
{
    /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: one client,
     * one spelling. */
    return strncasecmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.') ? addr + 7 : addr;
}

void peer_client_address(const struct proxies *px, const char *peer, const char *xff,
                         char *out)
{
    peer = peer_unmapped(peer);
    snprintf(out, PEER_ADDR_MAX, "%s", peer);
    if (!xff || !proxies_trust(px, peer))
        return;
    /* From the right: each hop appended the address it got the request from. */
    const char *end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        const char *a = start, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        char hop[PEER_ADDR_MAX];
        int family;
        unsigned char bytes[16];
        if (b - a > 0 && (size_t)(b - a) < sizeof(hop)) {
            snprintf(hop, sizeof(hop), "%.*s", (int)(b - a), a);
            if (parse_addr(hop, &family, bytes) != 0)
                return; /* not an address: believe nothing further left */
            snprintf(out, PEER_ADDR_MAX, "%s", hop);
            if (!proxies_trust(px, hop))
                return;
        }
        end = start > xff ? start - 1 : xff;
    }
}
