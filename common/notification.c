#include "notification.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uuid7.h"
#include "xalloc.h"

static int fail(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *errstr, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
    return -1;
}

static int token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._-@:+~", c) != NULL;
}

static int token_valid(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || !token_char((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

int notification_user_valid(const char *s, size_t len)
{
    return token_valid(s, len, NOTIF_USER_MAX);
}

int notification_id_valid(const char *s, size_t len)
{
    return token_valid(s, len, NOTIF_ID_MAX);
}

void notification_clear(notification_t *n)
{
    free(n->message);
    free(n->data_json);
    memset(n, 0, sizeof(*n));
}

/* A string field, or NULL with errstr set when present but not a string. */
static const char *string_field(json_t *root, const char *name, size_t *len, int *bad)
{
    json_t *v = json_object_get(root, name);
    *bad = 0;
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

static int parse_fields(json_t *root, int fill, notification_t *n, char *errstr, size_t size)
{
    const char *s;
    size_t len = 0;
    int bad;

    if (!json_is_object(root))
        return fail(errstr, size, "a notification must be a JSON object");

    /* id */
    s = string_field(root, "id", &len, &bad);
    if (bad)
        return fail(errstr, size, "\"id\" must be a string");
    if (s) {
        if (!notification_id_valid(s, len))
            return fail(errstr, size,
                        "\"id\" must be 1 to %d letters, digits or . _ - @ : + ~", NOTIF_ID_MAX);
        memcpy(n->id, s, len + 1);
    } else if (fill & NOTIF_FILL_ID) {
        uuid7_generate(n->id);
        n->filled |= NOTIF_FILL_ID;
    } else {
        return fail(errstr, size, "\"id\" is missing");
    }

    /* userId, or user_id as some of the original producers send it */
    s = string_field(root, "userId", &len, &bad);
    if (!s && !bad)
        s = string_field(root, "user_id", &len, &bad);
    if (bad)
        return fail(errstr, size, "\"userId\" must be a string");
    if (!s)
        return fail(errstr, size, "\"userId\" is missing: every notification is for one user");
    if (!notification_user_valid(s, len))
        return fail(errstr, size, "\"userId\" must be 1 to %d letters, digits or . _ - @ : + ~",
                    NOTIF_USER_MAX);
    memcpy(n->user, s, len + 1);

    /* message */
    s = string_field(root, "message", &len, &bad);
    if (bad)
        return fail(errstr, size, "\"message\" must be a string");
    if (!s)
        return fail(errstr, size, "\"message\" is missing");
    if (strlen(s) != len)
        return fail(errstr, size, "\"message\" contains a NUL character");
    n->message = xstrdup(s);

    /* timestamp: ISO-8601 text or epoch milliseconds */
    json_t *ts = json_object_get(root, "timestamp");
    int64_t ms;
    if (!ts || json_is_null(ts)) {
        if (!(fill & NOTIF_FILL_TIMESTAMP))
            return fail(errstr, size, "\"timestamp\" is missing");
        ms = now_wall_ms();
        n->filled |= NOTIF_FILL_TIMESTAMP;
    } else if (json_is_integer(ts)) {
        ms = (int64_t)json_integer_value(ts);
    } else if (json_is_real(ts)) {
        ms = (int64_t)json_real_value(ts);
    } else if (json_is_string(ts)) {
        if (iso8601_parse(json_string_value(ts), json_string_length(ts), &ms) != 0)
            return fail(errstr, size,
                        "\"timestamp\" must be ISO-8601 (2023-10-01T12:00:00Z) or epoch milliseconds");
    } else {
        return fail(errstr, size, "\"timestamp\" must be a string or a number");
    }
    if (iso8601_from_ms(ms, n->timestamp) != 0)
        return fail(errstr, size, "\"timestamp\" is out of range (1970 to 9999)");

    /* type */
    s = string_field(root, "type", &len, &bad);
    if (bad)
        return fail(errstr, size, "\"type\" must be a string");
    if (s) {
        if (len > NOTIF_TYPE_MAX || strlen(s) != len)
            return fail(errstr, size, "\"type\" must be at most %d characters", NOTIF_TYPE_MAX);
        memcpy(n->type, s, len + 1);
    }

    /* data: any JSON value, passed through compactly */
    json_t *data = json_object_get(root, "data");
    if (data && !json_is_null(data)) {
        n->data_json = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!n->data_json)
            return fail(errstr, size, "out of memory");
    }
    return 0;
}

int notification_parse(const char *json, size_t len, int fill, notification_t *n, char *errstr,
                       size_t errstr_size)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(n, 0, sizeof(*n));
    if (len > NOTIF_JSON_MAX)
        return fail(errstr, errstr_size, "notification is %zu bytes, more than the limit of %d",
                    len, NOTIF_JSON_MAX);

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(errstr, errstr_size, "not valid JSON: %s (at character %d)", jerr.text,
                    jerr.position);
    rc = parse_fields(root, fill, n, errstr, errstr_size);
    json_decref(root);
    if (rc != 0)
        notification_clear(n);
    return rc;
}

char *notification_to_json(const notification_t *n, int replayed, size_t *len)
{
    json_t *o = json_object();
    char *out = NULL;

    if (!o)
        return NULL;
    /* Field order is kept (jansson preserves insertion order) so frames read
     * the same as the original design's. */
    if (json_object_set_new(o, "id", json_string(n->id)) ||
        json_object_set_new(o, "userId", json_string(n->user)) ||
        json_object_set_new(o, "message", json_string(n->message ? n->message : "")) ||
        json_object_set_new(o, "timestamp", json_string(n->timestamp)))
        goto out;
    if (n->type[0] && json_object_set_new(o, "type", json_string(n->type)))
        goto out;
    if (n->data_json) {
        json_t *data = json_loads(n->data_json, JSON_DECODE_ANY, NULL);
        if (!data || json_object_set_new(o, "data", data))
            goto out;
    }
    if (replayed && json_object_set_new(o, "replayed", json_true()))
        goto out;
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (out && len)
        *len = strlen(out);
out:
    json_decref(o);
    return out;
}
