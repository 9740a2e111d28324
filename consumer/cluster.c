/* The presence map: nodes by id, and per user the nodes holding it. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "xalloc.h"

#define INCARNATION_MAX 64

struct node {
    UT_hash_handle hh;
    char *id;
    char incarnation[INCARNATION_MAX + 1];
    int64_t last_ms;
    int up;
};

/* A user and the nodes holding it: a few at most (tabs on several nodes). */
struct holding {
    UT_hash_handle hh;
    char *user;
    struct node **nodes;
    size_t n, cap;
};

struct cluster {
    char *self;
    int64_t live_ms;
    int64_t newest_ms; /* the newest heartbeat's time: "now" on the broker's clock */
    struct node *nodes;
    struct holding *users;
};

cluster_t *cluster_new(const char *self, int64_t live_ms)
{
    cluster_t *c = xcalloc(1, sizeof(*c));
    c->self = xstrdup(self);
    c->live_ms = live_ms;
    return c;
}

void cluster_free(cluster_t *c)
{
    if (!c)
        return;
    struct holding *h, *htmp;
    HASH_ITER(hh, c->users, h, htmp) {
        HASH_DEL(c->users, h);
        free(h->user);
        free(h->nodes);
        free(h);
    }
    struct node *n, *ntmp;
    HASH_ITER(hh, c->nodes, n, ntmp) {
        HASH_DEL(c->nodes, n);
        free(n->id);
        free(n);
    }
    free(c->self);
    free(c);
}

size_t cluster_node_key(char *buf, size_t size, const char *node)
{
    int n = snprintf(buf, size, "n %s", node);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

size_t cluster_user_key(char *buf, size_t size, const char *node, const char *user)
{
    int n = snprintf(buf, size, "u %s %s", node, user);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static struct node *node_get(cluster_t *c, const char *id, size_t len)
{
    struct node *n = NULL;
    HASH_FIND(hh, c->nodes, id, len, n);
    if (!n) {
        n = xcalloc(1, sizeof(*n));
        n->id = xstrndup(id, len);
        HASH_ADD_KEYPTR(hh, c->nodes, n->id, len, n);
    }
    return n;
}

/* Judged by the broker's clock alone (log-append times): a node is live
 * while its last heartbeat is less than live_ms older than the newest
 * heartbeat read, this node's own included. So an outage, in which no
 * heartbeat is read, kills no one, and no node's clock matters. */
static int live(const cluster_t *c, const struct node *n)
{
    return n->up && c->newest_ms - n->last_ms < c->live_ms && strcmp(n->id, c->self) != 0;
}

static void hold(cluster_t *c, const char *user, size_t ulen, struct node *n)
{
    struct holding *h = NULL;
    HASH_FIND(hh, c->users, user, ulen, h);
    if (!h) {
        h = xcalloc(1, sizeof(*h));
        h->user = xstrndup(user, ulen);
        HASH_ADD_KEYPTR(hh, c->users, h->user, ulen, h);
    }
    for (size_t i = 0; i < h->n; i++)
        if (h->nodes[i] == n)
            return;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 2;
        h->nodes = xrealloc(h->nodes, h->cap * sizeof(*h->nodes));
    }
    h->nodes[h->n++] = n;
}

static void unhold(cluster_t *c, const char *user, size_t ulen, const struct node *n)
{
    struct holding *h = NULL;
    HASH_FIND(hh, c->users, user, ulen, h);
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        if (h->nodes[i] == n)
            h->nodes[i] = h->nodes[--h->n];
    if (h->n == 0) {
        HASH_DEL(c->users, h);
        free(h->user);
        free(h->nodes);
        free(h);
    }
}

/* "up INC" / "down INC" */
static int apply_heartbeat(struct node *n, const char *val, size_t vlen, int64_t ts_ms,
                           int64_t *newest)
{
    const char *sp = memchr(val, ' ', vlen);
    size_t word = sp ? (size_t)(sp - val) : 0, inc = sp ? vlen - word - 1 : 0;
    if (!sp || inc == 0 || inc > INCARNATION_MAX)
        return -1;
    int up = word == 2 && !memcmp(val, "up", 2);
    if (!up && !(word == 4 && !memcmp(val, "down", 4)))
        return -1;
    if (ts_ms < n->last_ms) /* an older heartbeat read late changes nothing */
        return 0;
    if (ts_ms > *newest)
        *newest = ts_ms;
    n->up = up;
    n->last_ms = ts_ms;
    memcpy(n->incarnation, sp + 1, inc);
    n->incarnation[inc] = '\0';
    return 0;
}

int cluster_apply(cluster_t *c, const char *key, size_t klen, const char *val, size_t vlen,
                  int64_t ts_ms)
{
    if (klen < 3 || key[1] != ' ' || (key[0] != 'n' && key[0] != 'u'))
        return -1;
    const char *id = key + 2, *end = key + klen;
    const char *sp = memchr(id, ' ', (size_t)(end - id));
    if (key[0] == 'n') {
        if (sp || !val)
            return sp ? -1 : 0; /* a node key's tombstone: compaction's business */
        return apply_heartbeat(node_get(c, id, (size_t)(end - id)), val, vlen, ts_ms,
                               &c->newest_ms);
    }
    if (!sp || sp == id || sp + 1 == end)
        return -1;
    struct node *n = node_get(c, id, (size_t)(sp - id));
    if (val)
        hold(c, sp + 1, (size_t)(end - sp - 1), n);
    else
        unhold(c, sp + 1, (size_t)(end - sp - 1), n);
    return 0;
}

int cluster_record_user(const char *key, size_t klen, char *node, size_t nsize, char *user,
                        size_t usize)
{
    if (klen < 5 || key[0] != 'u' || key[1] != ' ')
        return 0;
    const char *sp = memchr(key + 2, ' ', klen - 2);
    if (!sp || sp == key + 2 || sp + 1 == key + klen)
        return 0;
    snprintf(node, nsize, "%.*s", (int)(sp - key - 2), key + 2);
    snprintf(user, usize, "%.*s", (int)(key + klen - sp - 1), sp + 1);
    return 1;
}

size_t cluster_holders(const cluster_t *c, const char *user, const char **out, size_t max)
{
    struct holding *h = NULL;
    size_t k = 0;
    HASH_FIND_STR(c->users, user, h);
    for (size_t i = 0; h && i < h->n && k < max; i++)
        if (live(c, h->nodes[i]))
            out[k++] = h->nodes[i]->id;
    return k;
}

size_t cluster_peers(const cluster_t *c, const char **out, size_t max)
{
    size_t k = 0;
    for (const struct node *n = c->nodes; n && k < max; n = n->hh.next)
        if (live(c, n))
            out[k++] = n->id;
    return k;
}

int cluster_node_state(const cluster_t *c, const char *node, struct cluster_node_state *out)
{
    struct node *n = NULL;
    HASH_FIND_STR(c->nodes, node, n);
    if (!n || !n->last_ms)
        return -1;
    *out = (struct cluster_node_state){n->incarnation, n->last_ms, n->up};
    return 0;
}

void cluster_each_user_of(const cluster_t *c, const char *node,
                          void (*fn)(void *arg, const char *user), void *arg)
{
    for (const struct holding *h = c->users; h; h = h->hh.next)
        for (size_t i = 0; i < h->n; i++)
            if (!strcmp(h->nodes[i]->id, node))
                fn(arg, h->user);
}

const char *cluster_self(const cluster_t *c)
{
    return c->self;
}

size_t cluster_remote_users(const cluster_t *c)
{
    size_t n = 0;
    for (const struct holding *h = c->users; h; h = h->hh.next)
        for (size_t i = 0; i < h->n; i++)
            if (strcmp(h->nodes[i]->id, c->self) != 0) {
                n++;
                break;
            }
    return n;
}

size_t cluster_dead(const cluster_t *c, int64_t within_ms, const char **out, size_t max)
{
    size_t k = 0;
    /* Killed ones first: their inboxes hold what was on its way to them. */
    for (int crashed = 1; crashed >= 0; crashed--)
        for (const struct node *n = c->nodes; n && k < max; n = n->hh.next)
            if (n->last_ms && c->newest_ms - n->last_ms < within_ms && !live(c, n) &&
                n->up == crashed && strcmp(n->id, c->self) != 0)
                out[k++] = n->id;
    return k;
}

int cluster_lowest(const cluster_t *c)
{
    for (const struct node *n = c->nodes; n; n = n->hh.next)
        if (live(c, n) && strcmp(n->id, c->self) < 0)
            return 0;
    return 1;
}

int cluster_node_up(const cluster_t *c, const char *node)
{
    struct node *n = NULL;
    HASH_FIND_STR(c->nodes, node, n);
    return n && n->up;
}
