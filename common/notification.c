/* The notification codec: parsing what producers send, rendering frames. */
#include "notification.h"

#include <jansson.h>
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

    /* userId, or user_id as some of the original producers send it */
    s = string_field(root, "userId", &len, &bad);
    if (!s && !bad)
        s = string_field(root, "user_id", &len, &bad);
    if (bad)
        return errstr_set(errstr, size, "\"userId\" must be a string");
    if (!s)
        return errstr_set(errstr, size,
                          "\"userId\" is missing: every notification is for one user");
    if (!notification_user_valid(s, len))
        return errstr_set(errstr, size,
                          "\"userId\" must be 1 to %d letters, digits or . _ - @ : + ~",
                          NOTIF_USER_MAX);
    memcpy(n->user, s, len + 1);

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
    } else if (json_is_integer(ts)) {
        ms = (int64_t)json_integer_value(ts);
    } else if (json_is_real(ts)) {
        /* Checked before the cast: 1e300 does not fit an int64_t (undefined). */
        double d = json_real_value(ts);
        if (!(d >= 0 && d < 253402300800000.0)) /* 1970 to 9999 */
            return errstr_set(errstr, size, "\"timestamp\" is out of range (1970 to 9999)");
        ms = (int64_t)d;
    } else if (json_is_string(ts)) {
        if (iso8601_parse(json_string_value(ts), json_string_length(ts), &ms) != 0)
            return errstr_set(errstr, size, "\"timestamp\" must be ISO-8601 "
                              "(2023-10-01T12:00:00Z) or epoch milliseconds");
    } else {
        return errstr_set(errstr, size, "\"timestamp\" must be a string or a number");
    }
    if (iso8601_from_ms(ms, n->timestamp) != 0)
        return errstr_set(errstr, size, "\"timestamp\" is out of range (1970 to 9999)");

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
    if (iso8601_from_ms(ms, n->timestamp) != 0)
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
    size_t size = sizeof("{\"id\":,\"userId\":,\"message\":,\"timestamp\":}") - 1 +
                  quoted_len(n->id) + quoted_len(n->user) + quoted_len(message) +
                  quoted_len(n->timestamp);

    if (n->type[0])
        size += sizeof(",\"type\":") - 1 + quoted_len(n->type);
    if (n->data_json)
        size += sizeof(",\"data\":") - 1 + data_len;
    if (replayed)
        size += NOTIF_REPLAYED_EXTRA;

    char *json = xmalloc(size + 1);
    char *p = json;
    /* The original design's field order, which clients may rely on. */
    p = put(p, LIT("{\"id\":"));
    p = put_quoted(p, n->id);
    p = put(p, LIT(",\"userId\":"));
    p = put_quoted(p, n->user);
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
