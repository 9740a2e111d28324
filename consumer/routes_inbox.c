/* A user's inbox over HTTP: what is pending for them (stored, and pushed
 * or held on this node and not yet acknowledged), newest first, and
 * acknowledgements from outside a connection. An API key reads any user's;
 * a user token (--auth jwt) only its own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "routes.h"
#include "timeutil.h"
#include "xalloc.h"

#define INBOX_LIMIT 50
#define INBOX_LIMIT_MAX 500

/* Who may read or acknowledge path_user's inbox; path_user NULL: the
 * caller's own (/messages), which an API key does not name. Answers a
 * refusal itself (0); else 1 with the user in out. */
static int inbox_caller(const struct routes_view *v, http_request_t *req, const char *path_user,
                        char out[NOTIF_USER_MAX + 1])
{
    cors(v, req);
    if (path_user && !user_param_ok(req, path_user))
        return 0;
    char bearer[4096];
    const char *b = http_request_bearer(req, bearer, sizeof(bearer));
    if (!b) {
        respond_json(req, HTTP_STATUS_UNAUTHORIZED,
                     "{\"error\":\"send Authorization: Bearer <API key or user token>\"}\n");
        return 0;
    }
    const api_keys_t *keys = v->keys ? *v->keys : NULL;
    if (keys && api_keys_match(keys, b, strlen(b))) {
        if (!path_user) {
            respond_json(req, HTTP_STATUS_BAD_REQUEST,
                         "{\"error\":\"an API key names no user: ask "
                         "/api/users/{userId}/notifications\"}\n");
            return 0;
        }
        snprintf(out, NOTIF_USER_MAX + 1, "%s", path_user);
        return 1;
    }
    if (!auth_required(v->ws->auth)) {
        respond_json(req, HTTP_STATUS_FORBIDDEN,
                     keys ? "{\"error\":\"not an API key of this gateway\"}\n"
                          : "{\"error\":\"no API keys configured: see --api-keys-file\"}\n");
        return 0;
    }
    struct auth_grant g;
    auth_check(v->ws->auth, b, strlen(b), NULL, now_wall_ms(), &g);
    if (g.close_code) {
        char body[256];
        snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", g.reason);
        respond_json(req, HTTP_STATUS_UNAUTHORIZED, body);
        return 0;
    }
    if (path_user && strcmp(g.user, path_user) != 0) {
        respond_json(req, HTTP_STATUS_FORBIDDEN, "{\"error\":\"this token is another user's\"}\n");
        return 0;
    }
    snprintf(out, NOTIF_USER_MAX + 1, "%s", g.user);
    return 1;
}

/* ---- GET: the inbox ---- */

/* One read: the node's pending, copied when it was asked (what a tab holds
 * then may be stored or acknowledged before the store answers), merged
 * with the store's answer. */
struct inbox_read {
    http_request_t *req;
    size_t limit;
    hub_msg_t *live; /* strings owned */
    size_t nlive, cap;
};

static void keep_live(void *arg, const hub_msg_t *m)
{
    struct inbox_read *r = arg;
    if (r->nlive == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->live = xrealloc(r->live, r->cap * sizeof(*r->live));
    }
    r->live[r->nlive++] = (hub_msg_t){.id = xstrdup(m->id),
                                      .frame = xstrndup(m->frame, m->frame_len),
                                      .frame_len = m->frame_len,
                                      .seq = m->seq,
                                      .partition = -1,
                                      .offset = -1};
}

/* One notification of the answer; acked_at 0: pending. */
struct item {
    const hub_msg_t *m;
    int64_t acked_at;
};

static int newest_first(const void *a, const void *b)
{
    int64_t x = ((const struct item *)a)->m->seq, y = ((const struct item *)b)->m->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Appends an item: the frame as pushed, with its state (and when it was
 * acknowledged). */
static void append_item(char **buf, size_t *len, size_t *cap, const struct item *it, int first)
{
    const hub_msg_t *m = it->m;
    size_t need = *len + m->frame_len + 80;
    if (need > *cap) {
        *cap = need * 2;
        *buf = xrealloc(*buf, *cap);
    }
    size_t body = m->frame_len;
    while (body && m->frame[body - 1] != '}')
        body--; /* the frame is an object: splice before its last brace */
    if (!first)
        (*buf)[(*len)++] = ',';
    memcpy(*buf + *len, m->frame, body ? body - 1 : 0);
    *len += body ? body - 1 : 0;
    if (it->acked_at) {
        char at[ISO8601_LEN];
        iso8601_from_ms(it->acked_at, at);
        *len += (size_t)sprintf(*buf + *len, ",\"state\":\"acked\",\"ackedAt\":\"%s\"}", at);
    } else {
        *len += (size_t)sprintf(*buf + *len, ",\"state\":\"pending\"}");
    }
}

static void inbox_answer(void *arg, const struct store_result *res)
{
    struct inbox_read *r = arg;
    size_t n = r->nlive + res->n, taken = 0;
    struct item *all = xmalloc((n ? n : 1) * sizeof(*all));
    for (size_t i = 0; i < r->nlive; i++)
        all[i] = (struct item){&r->live[i], 0};
    for (size_t i = 0; i < res->n; i++)
        all[r->nlive + i] = (struct item){&res->msgs[i], res->acked_at ? res->acked_at[i] : 0};
    qsort(all, n, sizeof(*all), newest_first);

    size_t cap = 256, len = 0;
    char *body = xmalloc(cap);
    len += (size_t)sprintf(body, "{\"notifications\":[");
    int64_t last = 0;
    for (size_t i = 0; i < n && taken < r->limit; i++) {
        /* A replayed one is both in a tab and in the store (or, acknowledged
         * as it was asked, in the history too): once. */
        if (i && all[i].m->seq == all[i - 1].m->seq && strcmp(all[i].m->id, all[i - 1].m->id) == 0)
            continue;
        append_item(&body, &len, &cap, &all[i], taken == 0);
        last = all[i].m->seq;
        taken++;
    }
    /* More found than the page (each read asked one more): a next page. */
    int more = n > taken;
    if (len + 64 > cap)
        body = xrealloc(body, cap = len + 64);
    if (more && taken)
        len += (size_t)sprintf(body + len, "],\"next\":\"s%" PRId64 "\"}\n", last);
    else
        len += (size_t)sprintf(body + len, "],\"next\":null}\n");
    http_respond(r->req, HTTP_STATUS_OK, "application/json", body, len);
    free(body);
    free(all);
    for (size_t i = 0; i < r->nlive; i++) {
        free((char *)r->live[i].id);
        free((char *)r->live[i].frame);
    }
    free(r->live);
    free(r);
}

/* A query argument, NULL when absent; an unusable one reads as "" (and
 * is then refused as a bad value). */
static const char *query(http_request_t *req, const char *name, char *buf, size_t size)
{
    int n = http_request_query(req, name, buf, size);
    if (n == -2)
        buf[0] = '\0';
    return n == -1 ? NULL : buf;
}

/* state, after and limit from the query; a bad one is answered (0). */
static int inbox_query(http_request_t *req, int history, int *all, int64_t *before,
                       size_t *limit)
{
    char sbuf[16], abuf[32], lbuf[16];
    const char *state = query(req, "state=", sbuf, sizeof(sbuf));
    const char *after = query(req, "after=", abuf, sizeof(abuf));
    const char *lim = query(req, "limit=", lbuf, sizeof(lbuf));
    char *end;
    *all = state && strcmp(state, "all") == 0;
    if (state && !*all && strcmp(state, "pending") != 0) {
        respond_json(req, HTTP_STATUS_BAD_REQUEST,
                     "{\"error\":\"state must be pending or all\"}\n");
        return 0;
    }
    if (*all && !history) {
        respond_json(req, HTTP_STATUS_BAD_REQUEST,
                     "{\"error\":\"state=all needs HISTORY_RETENTION (--history-retention)\"}\n");
        return 0;
    }
    *before = INT64_MAX;
    if (after) {
        long long s = after[0] == 's' ? strtoll(after + 1, &end, 10) : 0;
        if (after[0] != 's' || !after[1] || *end || s <= 0) {
            respond_json(req, HTTP_STATUS_BAD_REQUEST,
                         "{\"error\":\"after: pass the next value of the previous page\"}\n");
            return 0;
        }
        *before = s;
    }
    *limit = INBOX_LIMIT;
    if (lim) {
        long n = strtol(lim, &end, 10);
        if (!*lim || *end || n < 1 || n > INBOX_LIMIT_MAX) {
            respond_json(req, HTTP_STATUS_BAD_REQUEST,
                         "{\"error\":\"limit must be a number from 1 to 500\"}\n");
            return 0;
        }
        *limit = (size_t)n;
    }
    return 1;
}

static int store_answers(const struct routes_view *v, http_request_t *req)
{
    if (!store_worker_health(v->pipe->store).failing)
        return 1;
    http_add_header(req, "retry-after:", "5");
    respond_json(req, HTTP_STATUS_SERVICE_UNAVAILABLE,
                 "{\"error\":\"the store is failing; try again shortly\"}\n");
    return 0;
}

static void inbox(const struct routes_view *v, http_request_t *req, const char *path_user)
{
    char user[NOTIF_USER_MAX + 1];
    int64_t before;
    size_t limit;
    int all;
    if (!inbox_caller(v, req, path_user, user) ||
        !inbox_query(req, v->pipe->history, &all, &before, &limit) || !store_answers(v, req))
        return;
    struct inbox_read *r = xcalloc(1, sizeof(*r));
    r->req = req;
    r->limit = limit;
    hub_each_pending(v->pipe->hub, user, before, keep_live, r);
    store_worker_list(v->pipe->store, user, before, limit + 1, all, inbox_answer, r);
    v->ws->turn_work(v->ws->arg);
}

/* GET /api/users/{userId}/notifications */
void get_user_notifications(void *ctx, http_request_t *req)
{
    inbox(ctx, req, http_request_param(req, "userId"));
}

/* GET /messages (seed 001) and /api/messages (seed 002): the token's user. */
void get_messages(void *ctx, http_request_t *req)
{
    inbox(ctx, req, NULL);
}

/* ---- POST: acknowledgements ---- */

struct ack_req {
    http_request_t *req;
    size_t acked; /* on this node already */
    events_t *events;
};

static void ack_answer(void *arg, const struct store_result *res)
{
    struct ack_req *a = arg;
    if (res->removed > 0 && res->msg->id[0]) /* one by id (all: the store names none) */
        events_emit(a->events, res->msg->user, res->msg->id, EVENT_ACKED);
    char body[64];
    int len = snprintf(body, sizeof(body), "{\"acked\":%" PRId64 "}\n",
                       (int64_t)a->acked + res->removed);
    http_respond(a->req, HTTP_STATUS_OK, "application/json", body, (size_t)len);
    free(a);
}

/* Acknowledges id of the path's user, or with id NULL everything pending
 * for them when it arrives: first what this node holds, then the store. */
static void acknowledge(const struct routes_view *v, http_request_t *req, const char *id)
{
    char user[NOTIF_USER_MAX + 1];
    if (!inbox_caller(v, req, http_request_param(req, "userId"), user))
        return;
    if (id && !notification_id_valid(id, strlen(id))) {
        respond_json(req, HTTP_STATUS_BAD_REQUEST,
                     "{\"error\":\"invalid id: the ids notifications have (see "
                     "docs/protocol.md)\"}\n");
        return;
    }
    hub_t *hub = v->pipe->hub;
    if (id && hub_ack_user(hub, user, id)) {
        v->ws->turn_work(v->ws->arg);
        respond_json(req, HTTP_STATUS_OK, "{\"acked\":1}\n");
        return;
    }
    if (!store_answers(v, req))
        return;
    struct ack_req *a = xcalloc(1, sizeof(*a));
    a->req = req;
    a->events = v->pipe->events;
    if (!id)
        a->acked = hub_ack_user_through(hub, user, INT64_MAX); /* all pending here now */
    store_worker_remove_counted(v->pipe->store, user, id, now_wall_ms(), ack_answer, a);
    v->ws->turn_work(v->ws->arg);
    log_debug("user %s: %s acknowledged over HTTP", user, id ? id : "everything pending");
}

/* POST /api/users/{userId}/notifications/{id}/ack */
void post_ack(void *ctx, http_request_t *req)
{
    acknowledge(ctx, req, http_request_param(req, "id"));
}

/* POST /api/users/{userId}/notifications/ack-all */
void post_ack_all(void *ctx, http_request_t *req)
{
    acknowledge(ctx, req, NULL);
}
