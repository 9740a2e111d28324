/* Client sends: the per-user rate and the notification published. */
#include "client_send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "errstr.h"
#include "timeutil.h"
#include "xalloc.h"

struct bucket {
    UT_hash_handle hh;
    double tokens;
    int64_t at_ms;
    char user[];
};

struct send_limiter {
    struct bucket *users;
    double rate, burst;
    int64_t swept_ms;
};

send_limiter_t *send_limiter_new(double rate_per_s)
{
    send_limiter_t *l = xcalloc(1, sizeof(*l));
    l->rate = rate_per_s;
    l->burst = 2 * rate_per_s;
    return l;
}

void send_limiter_free(send_limiter_t *l)
{
    struct bucket *b, *next;
    if (!l)
        return;
    HASH_ITER(hh, l->users, b, next) {
        HASH_DEL(l->users, b);
        free(b);
    }
    free(l);
}

static double refill(const send_limiter_t *l, const struct bucket *b, int64_t now_ms)
{
    double tokens = b->tokens + (double)(now_ms - b->at_ms) * l->rate / 1000.0;
    return tokens > l->burst ? l->burst : tokens;
}

/* Forgets the users whose bucket is full again: at most once a second,
 * so the map holds only recent senders. */
static void sweep(send_limiter_t *l, int64_t now_ms)
{
    struct bucket *b, *next;
    if (now_ms - l->swept_ms < 1000)
        return;
    l->swept_ms = now_ms;
    HASH_ITER(hh, l->users, b, next) {
        if (refill(l, b, now_ms) >= l->burst) {
            HASH_DEL(l->users, b);
            free(b);
        }
    }
}

int send_limiter_take(send_limiter_t *l, const char *user, int64_t now_ms)
{
    struct bucket *b;
    sweep(l, now_ms);
    HASH_FIND_STR(l->users, user, b);
    if (!b) {
        size_t len = strlen(user);
        b = xmalloc(sizeof(*b) + len + 1);
        memcpy(b->user, user, len + 1);
        b->tokens = l->burst;
        b->at_ms = now_ms;
        HASH_ADD(hh, l->users, user, len, b);
    }
    b->tokens = refill(l, b, now_ms);
    b->at_ms = now_ms;
    if (b->tokens < 1)
        return 0;
    b->tokens -= 1;
    return 1;
}

size_t send_limiter_users(const send_limiter_t *l)
{
    return HASH_COUNT(l->users);
}

int client_send_build(const char *body, const char *from, char **value, size_t *len,
                      char key[NOTIF_ID_MAX + 1], char id[NOTIF_ID_MAX + 1], char *errstr,
                      size_t size)
{
    notification_t n;
    if (notification_parse(body, strlen(body), NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n, errstr,
                           size) != 0)
        return -1;
    /* The body has no id (client_msg.c takes none): a new UUIDv7 is filled in. */
    snprintf(n.from, sizeof(n.from), "%s", from);
    notification_set_time(&n, now_wall_ms());
    *value = notification_to_json(&n, 0, len);
    notification_kafka_key(&n, key);
    memcpy(id, n.id, sizeof(n.id));
    notification_clear(&n);
    if (*len > NOTIF_JSON_MAX) {
        free(*value);
        return errstr_set(errstr, size, "the notification would be over %d bytes",
                          NOTIF_JSON_MAX);
    }
    return 0;
}
