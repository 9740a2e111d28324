/* POST /api/notifications: notifications published over HTTP, all or
 * nothing, answered once Kafka has every one of them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notification.h"
#include "publish.h"
#include "routes.h"
#include "xalloc.h"

#define PUBLISH_ITEMS_MAX 10000

/* A request waiting for Kafka's acknowledgements. */
struct waiting {
    http_request_t *req;
    json_t *ids;
};

static void respond_json_value(http_request_t *req, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    text[len++] = '\n';
    http_respond(req, status, "application/json", text, len);
    free(text);
    json_decref(body);
}

static void on_published(void *arg, const char *error)
{
    struct waiting *w = arg;
    if (!error) {
        respond_json_value(w->req, 202, json_pack("{s:O}", "ids", w->ids));
    } else {
        /* The same ids: a retry with them is deduplicated by id downstream. */
        char why[300];
        snprintf(why, sizeof(why), "Kafka did not take them (%s): send them again with the "
                 "same ids", error);
        http_add_header(w->req, "retry-after:", "5");
        respond_json_value(w->req, HTTP_STATUS_SERVICE_UNAVAILABLE,
                           json_pack("{s:s, s:O, s:i}", "error", why, "ids", w->ids,
                                     "retryAfter", 5));
    }
    json_decref(w->ids);
    free(w);
}

/* The body's notifications as JSON values: an object, an array of them, or
 * NDJSON (one a line). NULL with *why when it is none of these. */
static json_t *items_of(const char *body, size_t len, const char **why)
{
    json_error_t jerr;
    json_t *all = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (json_is_object(all)) {
        json_t *one = json_array();
        json_array_append_new(one, all);
        return one;
    }
    if (json_is_array(all))
        return all;
    json_decref(all);
    json_t *lines = json_array();
    for (const char *p = body, *end = body + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n && strspn(p, " \t\r") < n) {
            json_t *item = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
            if (!item) {
                json_decref(lines);
                *why = "the body is not a JSON object, an array of them, or NDJSON";
                return NULL;
            }
            json_array_append_new(lines, item);
        }
        p += n + 1;
    }
    return lines;
}

/* Parses every item and, when all are valid, publishes them keyed by
 * audience; answers when Kafka has them all. All or nothing: every error,
 * and nothing produced, when one is bad. Takes items. */
static void publish_items(const struct routes_view *v, http_request_t *req, json_t *items)
{
    size_t n = json_array_size(items);
    notification_t *parsed = xcalloc(n, sizeof(*parsed));
    json_t *errors = json_array();
    for (size_t i = 0; i < n; i++) {
        char *text = json_dumps(json_array_get(items, i), JSON_COMPACT | JSON_ENCODE_ANY);
        char err[256];
        if (notification_parse(text, strlen(text), NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP,
                               &parsed[i], err, sizeof(err)) != 0)
            json_array_append_new(errors, json_pack("{s:I, s:s}", "index", (json_int_t)i,
                                                    "error", err));
        else if (parsed[i].nuser_ids > v->max_user_ids) {
            snprintf(err, sizeof(err), "\"userIds\" names %zu users, more than the gateway's "
                     "MAX_USER_IDS (%zu): split it", parsed[i].nuser_ids, v->max_user_ids);
            json_array_append_new(errors, json_pack("{s:I, s:s}", "index", (json_int_t)i,
                                                    "error", err));
        }
        free(text);
    }
    json_decref(items);
    if (json_array_size(errors)) {
        respond_json_value(req, HTTP_STATUS_BAD_REQUEST, json_pack("{s:o}", "errors", errors));
    } else {
        json_decref(errors);
        struct publish_item *out = xcalloc(n, sizeof(*out));
        char(*keys)[NOTIF_ID_MAX + 1] = xcalloc(n, sizeof(*keys));
        struct waiting *w = xcalloc(1, sizeof(*w));
        w->req = req;
        w->ids = json_array();
        for (size_t i = 0; i < n; i++) {
            notification_kafka_key(&parsed[i], keys[i]);
            out[i] = (struct publish_item){keys[i], NULL, 0};
            out[i].value = notification_to_json(&parsed[i], 0, &out[i].len);
            json_array_append_new(w->ids, json_string(parsed[i].id));
        }
        publish(v->publisher, out, n, on_published, w);
        for (size_t i = 0; i < n; i++)
            free((char *)out[i].value);
        free(out);
        free(keys);
    }
    for (size_t i = 0; i < n; i++)
        notification_clear(&parsed[i]);
    free(parsed);
}

/* The body of an API key's request, unless it is over --publish-max-bytes
 * (answered 413); NULL when answered already. */
static const char *caller_body(const struct routes_view *v, http_request_t *req, size_t *len)
{
    if (!api_key_caller(v, req))
        return NULL;
    const char *body = http_request_body(req, len);
    if (*len <= v->publish_max)
        return body;
    respond_json_value(req, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                       json_pack("{s:s}", "error", "the body is over PUBLISH_MAX_BYTES"));
    return NULL;
}

/* The seeds' one-notification forms: the body as a JSON object with a
 * string field `needs`, or NULL when answered (400 naming the shape). */
static json_t *caller_object(const struct routes_view *v, http_request_t *req, const char *needs,
                             const char *shape)
{
    size_t len;
    const char *body = caller_body(v, req, &len);
    if (!body)
        return NULL;
    json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(in) && json_is_string(json_object_get(in, needs)))
        return in;
    char why[160];
    snprintf(why, sizeof(why), "expected %s", shape);
    respond_json_value(req, HTTP_STATUS_BAD_REQUEST, json_pack("{s:s}", "error", why));
    json_decref(in);
    return NULL;
}

/* One notification, published as a list of one. */
static void publish_one(const struct routes_view *v, http_request_t *req, json_t *item)
{
    json_t *items = json_array();
    json_array_append_new(items, item);
    publish_items(v, req, items);
}

void post_notifications(void *ctx, http_request_t *req)
{
    const struct routes_view *v = ctx;
    size_t len;
    const char *body = caller_body(v, req, &len);
    if (!body)
        return;
    const char *why = "no notification in the body";
    json_t *items = len ? items_of(body, len, &why) : NULL;
    size_t n = json_array_size(items);
    if (!n || n > PUBLISH_ITEMS_MAX) {
        respond_json_value(req, HTTP_STATUS_BAD_REQUEST,
                           json_pack("{s:s}", "error",
                                     n ? "more than 10000 notifications in one request" : why));
        json_decref(items);
        return;
    }
    publish_items(v, req, items);
}

/* Seed 000's POST /publisher {"message"}: to everyone (a broadcast),
 * answered as POST /api/notifications is. */
void post_publisher(void *ctx, http_request_t *req)
{
    json_t *item = caller_object(ctx, req, "message", "{\"message\": <text>}");
    if (!item)
        return;
    json_object_set_new(item, "broadcast", json_true());
    publish_one(ctx, req, item);
}

/* Seed 001's POST /send-message {"from","to","message"}: a notification
 * to the user "to" from the user "from" (an operator's call: the API key
 * vouches for "from"). Answered as POST /api/notifications is. */
void post_send_message(void *ctx, http_request_t *req)
{
    json_t *item = caller_object(ctx, req, "to",
                                 "{\"from\": <user>, \"to\": <user>, \"message\": <text>}");
    if (!item)
        return;
    /* "to" is the audience; everything else is the notification's own. */
    json_object_set(item, "userId", json_object_get(item, "to"));
    json_object_del(item, "to");
    publish_one(ctx, req, item);
}
