/* The notification codec: parsing what producers send, rendering frames. */
#include "notification.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errstr.h"
#include "utf8.h"
#include "uuid7.h"
#include "xalloc.h"

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

int notification_type_reserved(const char *type)
{
    static const char *const reserved[] = {"welcome", "error", "acked", "sent", "subscribed"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(type, reserved[i]) == 0)
            return 1;
    return 0;
}

int notification_user_valid(const char *s, size_t len)
{
    return token_valid(s, len, NOTIF_USER_MAX);
}

int notification_id_valid(const char *s, size_t len)
{
    return token_valid(s, len, NOTIF_ID_MAX);
}

int notification_room_valid(const char *s, size_t len)
{
    if (len == 0 || len > NOTIF_ROOM_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

void notification_clear(notification_t *n)
{
    free(n->message);
    free(n->data_json);
    free(n->user_ids);
    memset(n, 0, sizeof(*n));
}

int notification_set_time(notification_t *n, int64_t ms)
{
    if (iso8601_from_ms(ms, n->timestamp) != 0)
        return -1;
    n->time_ms = ms;
    if (n->ttl_ms) {
        char check[ISO8601_LEN];
        n->expires_ms = ms + n->ttl_ms;
        if (iso8601_from_ms(n->expires_ms, check) != 0)
            return -1;
    }
    return 0;
}

void notification_kafka_key(const notification_t *n, char key[NOTIF_ID_MAX + 1])
{
    switch (n->audience) {
    case NOTIF_TO_USER: snprintf(key, NOTIF_ID_MAX + 1, "%s", n->user); break;
    case NOTIF_TO_USERS: snprintf(key, NOTIF_ID_MAX + 1, "%s", n->id); break;
    case NOTIF_TO_ROOM: snprintf(key, NOTIF_ID_MAX + 1, "room:%s", n->room); break;
    case NOTIF_TO_BROADCAST: snprintf(key, NOTIF_ID_MAX + 1, "broadcast"); break;
    }
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Found on a sorted copy: the order given is the order kept. */
const char *notification_repeated(char *const *ids, size_t n)
{
    char **sorted = xmalloc((n ? n : 1) * sizeof(char *));
    memcpy(sorted, ids, n * sizeof(char *));
    qsort(sorted, n, sizeof(char *), cmp_str);
    const char *repeat = NULL;
    for (size_t i = 1; i < n && !repeat; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            repeat = sorted[i];
    free(sorted);
    return repeat;
}

/* "userIds": an array of distinct valid user ids, kept in one allocation
 * (the pointers, then the strings). */
static int parse_user_ids(json_t *ids, notification_t *n, char *errstr, size_t size)
{
    size_t count = json_array_size(ids), bytes = 0;
    if (!json_is_array(ids) || count == 0)
        return errstr_set(errstr, size, "\"userIds\" must be a non-empty array of user ids");
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_string(v) ||
            !notification_user_valid(json_string_value(v), json_string_length(v)))
            return errstr_set(errstr, size, "\"userIds\"[%zu] must be 1 to %d letters, digits "
                              "or . _ - @ : + ~", i, NOTIF_USER_MAX);
        bytes += json_string_length(v) + 1;
    }
    n->user_ids = xmalloc(count * sizeof(char *) + bytes);
    char *p = (char *)(n->user_ids + count);
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_array_get(ids, i);
        n->user_ids[i] = p;
        memcpy(p, json_string_value(v), json_string_length(v) + 1);
        p += json_string_length(v) + 1;
    }
    n->nuser_ids = count;
    const char *repeat = notification_repeated(n->user_ids, count);
    return repeat ? errstr_set(errstr, size, "\"userIds\" names \"%s\" twice", repeat) : 0;
}

/* Exactly one of "userId" (or "user_id"), "userIds", "room", "broadcast": true. */
static int parse_audience(json_t *root, notification_t *n, char *errstr, size_t size)
{
    const char *named[4];
    size_t nnamed = 0, len = 0;
    int bad;

    const char *user = string_field(root, "userId", &len, &bad);
    if (!user && !bad)
        user = string_field(root, "user_id", &len, &bad);
    if (bad)
        return errstr_set(errstr, size, "\"userId\" must be a string");
    if (user) {
        if (!notification_user_valid(user, len))
            return errstr_set(errstr, size,
                              "\"userId\" must be 1 to %d letters, digits or . _ - @ : + ~",
                              NOTIF_USER_MAX);
        memcpy(n->user, user, len + 1);
        n->audience = NOTIF_TO_USER;
        named[nnamed++] = "\"userId\"";
    }
    json_t *ids = json_object_get(root, "userIds");
    if (ids && !json_is_null(ids)) {
        if (parse_user_ids(ids, n, errstr, size) != 0)
            return -1;
        n->audience = NOTIF_TO_USERS;
        named[nnamed++] = "\"userIds\"";
    }
    const char *room = string_field(root, "room", &len, &bad);
    if (bad || (room && !notification_room_valid(room, len)))
        return errstr_set(errstr, size, "\"room\" must be 1 to %d letters, digits or . _ -",
                          NOTIF_ROOM_MAX);
    if (room) {
        memcpy(n->room, room, len + 1);
        n->audience = NOTIF_TO_ROOM;
        named[nnamed++] = "\"room\"";
    }
    json_t *all = json_object_get(root, "broadcast");
    if (all && !json_is_null(all) && !json_is_boolean(all))
        return errstr_set(errstr, size, "\"broadcast\" must be true or false");
    if (json_is_true(all)) {
        n->audience = NOTIF_TO_BROADCAST;
        named[nnamed++] = "\"broadcast\"";
    }
    if (nnamed == 0)
        return errstr_set(errstr, size, "\"userId\" is missing: a notification names its "
                          "audience, one of \"userId\", \"userIds\", \"room\" or "
                          "\"broadcast\": true");
    if (nnamed > 1)
        return errstr_set(errstr, size, "%s and %s both given: a notification names exactly "
                          "one audience", named[0], named[1]);
    return 0;
}

/* A time in one of the forms "timestamp" takes: ISO-8601 text or epoch
 * milliseconds. */
static int parse_time(json_t *v, const char *name, int64_t *ms, char *errstr, size_t size)
{
    if (json_is_integer(v)) {
        *ms = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        /* Checked before the cast: 1e300 does not fit an int64_t (undefined). */
        double d = json_real_value(v);
        if (!(d >= 0 && d < 253402300800000.0)) /* 1970 to 9999 */
            return errstr_set(errstr, size, "\"%s\" is out of range (1970 to 9999)", name);
        *ms = (int64_t)d;
    } else if (json_is_string(v)) {
        if (iso8601_parse(json_string_value(v), json_string_length(v), ms) != 0)
            return errstr_set(errstr, size, "\"%s\" must be ISO-8601 "
                              "(2023-10-01T12:00:00Z) or epoch milliseconds", name);
    } else {
        return errstr_set(errstr, size, "\"%s\" must be a string or a number", name);
    }
    char check[ISO8601_LEN];
    if (iso8601_from_ms(*ms, check) != 0)
        return errstr_set(errstr, size, "\"%s\" is out of range (1970 to 9999)", name);
    return 0;
}

#define TTL_MAX_S (100LL * 366 * 24 * 3600)

/* "ttl" (whole seconds after the timestamp) or "expiresAt", not both. */
static int parse_expiry(json_t *root, notification_t *n, char *errstr, size_t size)
{
    json_t *ttl = json_object_get(root, "ttl"), *at = json_object_get(root, "expiresAt");
    int has_ttl = ttl && !json_is_null(ttl), has_at = at && !json_is_null(at);
    if (has_ttl && has_at)
        return errstr_set(errstr, size, "\"ttl\" and \"expiresAt\" both given: give one");
    if (has_ttl) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) <= 0 ||
            json_integer_value(ttl) > TTL_MAX_S)
            return errstr_set(errstr, size, "\"ttl\" must be a whole number of seconds "
                              "from 1 to %lld", TTL_MAX_S);
        n->ttl_ms = (int64_t)json_integer_value(ttl) * 1000;
    } else if (has_at) {
        if (parse_time(at, "expiresAt", &n->expires_ms, errstr, size) != 0)
            return -1;
        if (n->expires_ms == 0)
            n->expires_ms = 1; /* 0 means never */
    }
    return 0;
}

static int parse_fields(json_t *root, int fill, notification_t *n, char *errstr, size_t size)
{
    const char *s;
    size_t len = 0;
    int bad;

    if (!json_is_object(root))
        return errstr_set(errstr, size, "a notification must be a JSON object");

    /* id */
    s = string_field(root, "id", &len, &bad);
    if (bad)
        return errstr_set(errstr, size, "\"id\" must be a string");
    if (s) {
        if (!notification_id_valid(s, len))
            return errstr_set(errstr, size,
                              "\"id\" must be 1 to %d letters, digits or . _ - @ : + ~",
                              NOTIF_ID_MAX);
        memcpy(n->id, s, len + 1);
    } else if (fill & NOTIF_FILL_ID) {
        uuid7_generate(n->id);
        n->filled |= NOTIF_FILL_ID;
    } else {
        return errstr_set(errstr, size, "\"id\" is missing");
    }

    if (parse_audience(root, n, errstr, size) != 0)
        return -1;

    /* from: the sender, a user id */
    s = string_field(root, "from", &len, &bad);
    if (bad || (s && !notification_user_valid(s, len)))
        return errstr_set(errstr, size,
                          "\"from\" must be 1 to %d letters, digits or . _ - @ : + ~",
                          NOTIF_USER_MAX);
    if (s)
        memcpy(n->from, s, len + 1);

    /* message */
    s = string_field(root, "message", &len, &bad);
    if (bad)
        return errstr_set(errstr, size, "\"message\" must be a string");
    if (!s)
        return errstr_set(errstr, size, "\"message\" is missing");
    if (strlen(s) != len)
        return errstr_set(errstr, size, "\"message\" contains a NUL character");
    n->message = xstrdup(s);

    /* timestamp: ISO-8601 text or epoch milliseconds */
    json_t *ts = json_object_get(root, "timestamp");
    int64_t ms;
    if (!ts || json_is_null(ts)) {
        if (!(fill & NOTIF_FILL_TIMESTAMP))
            return errstr_set(errstr, size, "\"timestamp\" is missing");
        ms = now_wall_ms();
        n->filled |= NOTIF_FILL_TIMESTAMP;
    } else if (parse_time(ts, "timestamp", &ms, errstr, size) != 0) {
        return -1;
    }
    if (parse_expiry(root, n, errstr, size) != 0)
        return -1;
    if (notification_set_time(n, ms) != 0)
        return errstr_set(errstr, size, "\"ttl\" runs past the year 9999");

    /* type */
    s = string_field(root, "type", &len, &bad);
    if (bad)
        return errstr_set(errstr, size, "\"type\" must be a string");
    if (s) {
        if (len > NOTIF_TYPE_MAX || strlen(s) != len)
            return errstr_set(errstr, size, "\"type\" must be at most %d characters",
                              NOTIF_TYPE_MAX);
        if (notification_type_reserved(s))
            return errstr_set(errstr, size, "\"type\" \"%s\" is reserved for the gateway's "
                              "control frames (docs/protocol.md): pick another", s);
        memcpy(n->type, s, len + 1);
    }

    /* data: any JSON value, passed through compactly */
    json_t *data = json_object_get(root, "data");
    if (data && !json_is_null(data)) {
        n->data_json = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!n->data_json)
            return errstr_set(errstr, size, "out of memory");
    }
    return 0;
}

/* ---- the flat reader ----
 *
 * Nearly every notification is a flat object of plain strings and an
 * integer timestamp. Building a jansson tree for it was a third of the
 * gateway's CPU in a burst, so such an object is read in place. The rule
 * that keeps this safe: the flat reader only ever answers "this is the
 * notification jansson would give" or "not sure", never an error. Escapes,
 * nested values, "data", fractions and exponents, duplicate keys, anything
 * out of the way: "not sure", and the full parser below decides, with its
 * error messages. tests/fuzz/fuzz_notification.c checks that whatever the
 * flat reader takes, the full parser reads the same. */

#define FLAT_KEYS_MAX 16

struct span {
    const char *s;
    size_t len;
};

enum flat_kind { FLAT_ABSENT, FLAT_NULL, FLAT_STRING, FLAT_INT };

struct flat_value {
    enum flat_kind kind;
    struct span str;
    int64_t i;
};

static int json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && json_ws(*p))
        p++;
    return p;
}

/* A string without escapes or control characters, p just past its opening
 * quote: returns the position after the closing quote, NULL if not sure. */
static const char *flat_string(const char *p, const char *end, struct span *out)
{
    const char *start = p;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            *out = (struct span){start, (size_t)(p - start)};
            return p + 1;
        }
        if (c < 0x20 || c == '\\')
            return NULL;
        size_t n = utf8_seq((const unsigned char *)p, (size_t)(end - p));
        if (!n)
            return NULL;
        p += n;
    }
    return NULL;
}

/* An integer of at most 18 digits (no fraction, no exponent, no leading
 * zero): returns the position after it, NULL if not sure. */
static const char *flat_int(const char *p, const char *end, int64_t *out)
{
    int neg = p < end && *p == '-';
    p += neg;
    const char *digits = p;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9' && p - digits < 18)
        v = v * 10 + (*p++ - '0');
    if (p == digits || (p - digits > 1 && *digits == '0') || p == end ||
        !(*p == ',' || *p == '}' || json_ws(*p)))
        return NULL;
    *out = neg ? -v : v;
    return p;
}

static int span_is(struct span k, const char *name)
{
    return k.len == strlen(name) && memcmp(k.s, name, k.len) == 0;
}

/* 0 with n filled, or -1 for "not sure" (n left empty). */
static int parse_flat(const char *json, size_t len, int fill, notification_t *n)
{
    const char *p = json, *end = json + len;
    struct span keys[FLAT_KEYS_MAX];
    size_t nkeys = 0;
    struct flat_value id = {0}, user = {0}, user_alt = {0}, message = {0}, ts = {0}, type = {0};

    p = skip_ws(p, end);
    if (p == end || *p++ != '{')
        return -1;
    p = skip_ws(p, end);
    if (p < end && *p == '}')
        return -1; /* empty: the full parser says what is missing */
    for (;;) {
        struct span key;
        struct flat_value v = {0};
        if (p == end || *p++ != '"' || !(p = flat_string(p, end, &key)))
            return -1;
        for (size_t i = 0; i < nkeys; i++)
            if (keys[i].len == key.len && memcmp(keys[i].s, key.s, key.len) == 0)
                return -1; /* duplicate */
        if (nkeys == FLAT_KEYS_MAX)
            return -1;
        keys[nkeys++] = key;
        p = skip_ws(p, end);
        if (p == end || *p++ != ':')
            return -1;
        p = skip_ws(p, end);
        if (p == end)
            return -1;
        if (*p == '"') {
            v.kind = FLAT_STRING;
            p = flat_string(p + 1, end, &v.str);
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            v.kind = FLAT_INT;
            p = flat_int(p, end, &v.i);
        } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            v.kind = FLAT_NULL;
            p += 4;
        } else {
            return -1; /* true, false, an object, an array */
        }
        if (!p)
            return -1;
        if (span_is(key, "id"))
            id = v;
        else if (span_is(key, "userId"))
            user = v;
        else if (span_is(key, "user_id"))
            user_alt = v;
        else if (span_is(key, "message"))
            message = v;
        else if (span_is(key, "timestamp"))
            ts = v;
        else if (span_is(key, "type"))
            type = v;
        else if (span_is(key, "data") && v.kind != FLAT_NULL)
            return -1; /* rendered by jansson's rules: the full parser */
        else if (span_is(key, "userIds") || span_is(key, "room") || span_is(key, "broadcast") ||
                 span_is(key, "from") || span_is(key, "ttl") || span_is(key, "expiresAt"))
            return -1; /* rarer shapes: the full parser */
        p = skip_ws(p, end);
        if (p == end)
            return -1;
        if (*p == '}')
            break;
        if (*p++ != ',')
            return -1;
        p = skip_ws(p, end);
    }
    if (skip_ws(p + 1, end) != end)
        return -1;

    /* The rules of parse_fields, for these kinds only. */
    if (id.kind == FLAT_STRING) {
        if (!notification_id_valid(id.str.s, id.str.len))
            return -1;
        memcpy(n->id, id.str.s, id.str.len);
        n->id[id.str.len] = '\0';
    } else if (id.kind == FLAT_INT || !(fill & NOTIF_FILL_ID)) {
        return -1;
    }
    struct flat_value *u = user.kind == FLAT_ABSENT || user.kind == FLAT_NULL ? &user_alt : &user;
    if (u->kind != FLAT_STRING || !notification_user_valid(u->str.s, u->str.len))
        return -1;
    if (message.kind != FLAT_STRING)
        return -1;
    int64_t ms;
    if (ts.kind == FLAT_INT)
        ms = ts.i;
    else if (ts.kind == FLAT_STRING) {
        if (iso8601_parse(ts.str.s, ts.str.len, &ms) != 0)
            return -1;
    } else if (fill & NOTIF_FILL_TIMESTAMP)
        ms = now_wall_ms();
    else
        return -1;
    if (notification_set_time(n, ms) != 0)
        return -1;
    if (type.kind == FLAT_INT)
        return -1;
    if (type.kind == FLAT_STRING) {
        if (type.str.len > NOTIF_TYPE_MAX)
            return -1;
        memcpy(n->type, type.str.s, type.str.len);
        n->type[type.str.len] = '\0';
        if (notification_type_reserved(n->type))
            return -1;
    }
    /* Nothing can fail from here: what is filled in is decided last. */
    if (id.kind != FLAT_STRING) {
        uuid7_generate(n->id);
        n->filled |= NOTIF_FILL_ID;
    }
    if (ts.kind != FLAT_INT && ts.kind != FLAT_STRING)
        n->filled |= NOTIF_FILL_TIMESTAMP;
    memcpy(n->user, u->str.s, u->str.len);
    n->user[u->str.len] = '\0';
    n->message = xstrndup(message.str.s, message.str.len);
    return 0;
}

int notification_parse_tree(const char *json, size_t len, int fill, notification_t *n,
                            char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(n, 0, sizeof(*n));
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return errstr_set(errstr, errstr_size, "not valid JSON: %s (at character %d)", jerr.text,
                          jerr.position);
    rc = parse_fields(root, fill, n, errstr, errstr_size);
    json_decref(root);
    if (rc != 0)
        notification_clear(n);
    return rc;
}

int notification_parse_flat(const char *json, size_t len, int fill, notification_t *n)
{
    memset(n, 0, sizeof(*n));
    if (parse_flat(json, len, fill, n) == 0)
        return 0;
    memset(n, 0, sizeof(*n)); /* nothing is allocated before the last step */
    return -1;
}

int notification_parse(const char *json, size_t len, int fill, notification_t *n, char *errstr,
                       size_t errstr_size)
{
    if (len > NOTIF_JSON_MAX) {
        memset(n, 0, sizeof(*n));
        return errstr_set(errstr, errstr_size,
                          "notification is %zu bytes, more than the limit of %d", len,
                          NOTIF_JSON_MAX);
    }
    if (notification_parse_flat(json, len, fill, n) == 0)
        return 0;
    return notification_parse_tree(json, len, fill, n, errstr, errstr_size);
}

/* The frame is written directly rather than through a jansson object:
 * rendering is on the path of every notification, and "data" is already
 * compact JSON (json_dumps at parse time), so it is spliced as is instead
 * of being parsed and dumped again. The bytes are those jansson writes
 * with JSON_COMPACT (and without JSON_ENSURE_ASCII), which the unit tests
 * check against jansson itself. */

/* What jansson writes for c when it must escape it, or NULL when c goes
 * out as is. */
static const char *short_escape(unsigned char c)
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
    }
}

/* Bytes that pass through unescaped: everything but quote, backslash and
 * control characters. '/' and DEL are not escaped, and UTF-8 sequences
 * (validated by the parser) pass through whole. */
static int plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

/* Length of s as a JSON string, quotes included. */
static size_t quoted_len(const char *s)
{
    size_t len = 2;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        len += plain(*p) ? 1 : short_escape(*p) ? 2 : 6;
    return len;
}

/* Writes s as a JSON string at out; returns the end of what was written. */
static char *put_quoted(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF"; /* jansson's \u00XX is upper case */
    const unsigned char *p = (const unsigned char *)s;

    *out++ = '"';
    for (;;) {
        const unsigned char *run = p;
        while (plain(*p))
            p++;
        memcpy(out, run, (size_t)(p - run));
        out += p - run;
        if (!*p)
            break;
        const char *e = short_escape(*p);
        if (e) {
            *out++ = e[0];
            *out++ = e[1];
        } else {
            memcpy(out, "\\u00", 4);
            out[4] = hex[*p >> 4];
            out[5] = hex[*p & 0xf];
            out += 6;
        }
        p++;
    }
    *out++ = '"';
    return out;
}

static char *put(char *out, const char *s, size_t len)
{
    memcpy(out, s, len);
    return out + len;
}

#define LIT(s) s, sizeof(s) - 1

/* Shared by both renderings of a replayed frame, so they cannot differ. */
static const char replayed_field[] = ",\"replayed\":true";
_Static_assert(sizeof(replayed_field) - 1 == NOTIF_REPLAYED_EXTRA, "NOTIF_REPLAYED_EXTRA");

char *notification_to_json(const notification_t *n, int replayed, size_t *len)
{
    const char *message = n->message ? n->message : "";
    size_t data_len = n->data_json ? strlen(n->data_json) : 0;
    char expires[ISO8601_LEN] = "";
    size_t size = sizeof("{\"id\":,\"message\":,\"timestamp\":}") - 1 + quoted_len(n->id) +
                  quoted_len(message) + quoted_len(n->timestamp);

    if (n->user[0])
        size += sizeof(",\"userId\":") - 1 + quoted_len(n->user);
    if (n->type[0])
        size += sizeof(",\"type\":") - 1 + quoted_len(n->type);
    if (n->data_json)
        size += sizeof(",\"data\":") - 1 + data_len;
    if (n->audience == NOTIF_TO_USERS) {
        size += sizeof(",\"userIds\":[]") - 1 + (n->nuser_ids ? n->nuser_ids - 1 : 0);
        for (size_t i = 0; i < n->nuser_ids; i++)
            size += quoted_len(n->user_ids[i]);
    }
    if (n->audience == NOTIF_TO_ROOM)
        size += sizeof(",\"room\":") - 1 + quoted_len(n->room);
    if (n->audience == NOTIF_TO_BROADCAST)
        size += sizeof(",\"broadcast\":true") - 1;
    if (n->from[0])
        size += sizeof(",\"from\":") - 1 + quoted_len(n->from);
    if (n->expires_ms && iso8601_from_ms(n->expires_ms, expires) == 0)
        size += sizeof(",\"expiresAt\":") - 1 + quoted_len(expires);
    if (replayed)
        size += NOTIF_REPLAYED_EXTRA;

    char *json = xmalloc(size + 1);
    char *p = json;
    /* The original design's field order, which clients may rely on; what
     * came later follows it. */
    p = put(p, LIT("{\"id\":"));
    p = put_quoted(p, n->id);
    if (n->user[0]) {
        p = put(p, LIT(",\"userId\":"));
        p = put_quoted(p, n->user);
    }
    p = put(p, LIT(",\"message\":"));
    p = put_quoted(p, message);
    p = put(p, LIT(",\"timestamp\":"));
    p = put_quoted(p, n->timestamp);
    if (n->type[0]) {
        p = put(p, LIT(",\"type\":"));
        p = put_quoted(p, n->type);
    }
    if (n->data_json) {
        p = put(p, LIT(",\"data\":"));
        p = put(p, n->data_json, data_len);
    }
    if (n->audience == NOTIF_TO_USERS) {
        p = put(p, LIT(",\"userIds\":["));
        for (size_t i = 0; i < n->nuser_ids; i++) {
            if (i)
                *p++ = ',';
            p = put_quoted(p, n->user_ids[i]);
        }
        *p++ = ']';
    }
    if (n->audience == NOTIF_TO_ROOM) {
        p = put(p, LIT(",\"room\":"));
        p = put_quoted(p, n->room);
    }
    if (n->audience == NOTIF_TO_BROADCAST)
        p = put(p, LIT(",\"broadcast\":true"));
    if (n->from[0]) {
        p = put(p, LIT(",\"from\":"));
        p = put_quoted(p, n->from);
    }
    if (expires[0]) {
        p = put(p, LIT(",\"expiresAt\":"));
        p = put_quoted(p, expires);
    }
    if (replayed)
        p = put(p, LIT(replayed_field));
    *p++ = '}';
    *p = '\0';
    if (len)
        *len = size;
    return json;
}

size_t notification_frame_replayed(const char *frame, size_t len, char *out)
{
    if (len < 2 || frame[0] != '{' || frame[len - 1] != '}')
        return 0;
    if (len == 2) {
        /* No field to follow, so no comma: {"replayed":true} */
        out[0] = '{';
        memcpy(out + 1, replayed_field + 1, NOTIF_REPLAYED_EXTRA - 1);
        memcpy(out + NOTIF_REPLAYED_EXTRA, "}", 2);
        return NOTIF_REPLAYED_EXTRA + 1;
    }
    /* memmove: out may be frame itself. */
    memmove(out, frame, len - 1);
    memcpy(out + len - 1, replayed_field, NOTIF_REPLAYED_EXTRA);
    memcpy(out + len - 1 + NOTIF_REPLAYED_EXTRA, "}", 2);
    return len + NOTIF_REPLAYED_EXTRA;
}
