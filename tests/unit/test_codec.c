/* The notification codec, client acks, timestamps and ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "client_msg.h"
#include "notification.h"
#include "timeutil.h"
#include "uuid7.h"
#include "wsframe.h"

static int parse(const char *json, int fill, notification_t *n, char *err)
{
    return notification_parse(json, strlen(json), fill, n, err, 256);
}

static void parses_the_original_designs_form(void **state)
{
    (void)state;
    notification_t n;
    char err[256];
    assert_int_equal(parse("{\"id\":\"notif-001\",\"userId\":\"user1\",\"message\":\"This is a test "
                           "notification\",\"timestamp\":\"2023-10-01T12:00:00Z\"}",
                           0, &n, err),
                     0);
    assert_string_equal(n.id, "notif-001");
    assert_string_equal(n.user, "user1");
    assert_string_equal(n.message, "This is a test notification");
    assert_string_equal(n.timestamp, "2023-10-01T12:00:00.000Z");
    assert_int_equal(n.filled, 0);
    size_t len;
    char *out = notification_to_json(&n, 0, &len);
    assert_string_equal(out, "{\"id\":\"notif-001\",\"userId\":\"user1\",\"message\":\"This is a "
                             "test notification\",\"timestamp\":\"2023-10-01T12:00:00.000Z\"}");
    assert_int_equal(len, strlen(out));
    free(out);
    notification_clear(&n);
}

static void accepts_user_id_and_epoch_ms(void **state)
{
    (void)state;
    notification_t n;
    char err[256];
    assert_int_equal(parse("{\"id\":\"a\",\"user_id\":\"u2\",\"message\":\"m\",\"timestamp\":"
                           "1696161600123,\"type\":\"alert\",\"data\":{\"k\":[1,2]}}",
                           0, &n, err),
                     0);
    assert_string_equal(n.user, "u2");
    assert_string_equal(n.timestamp, "2023-10-01T12:00:00.123Z");
    char *out = notification_to_json(&n, 1, NULL);
    assert_string_equal(out, "{\"id\":\"a\",\"userId\":\"u2\",\"message\":\"m\",\"timestamp\":"
                             "\"2023-10-01T12:00:00.123Z\",\"type\":\"alert\",\"data\":{\"k\":[1,"
                             "2]},\"replayed\":true}");
    free(out);
    notification_clear(&n);
}

/* The frame as the codec used to render it, through jansson: an object
 * with the fields in order, dumped compact. notification_to_json must
 * give the same bytes. data is JSON text or NULL; type "" means none. */
static char *jansson_frame(const char *id, const char *user, const char *message,
                           const char *timestamp, const char *type, const char *data, int replayed)
{
    json_t *o = json_object();
    assert_int_equal(json_object_set_new(o, "id", json_string(id)), 0);
    assert_int_equal(json_object_set_new(o, "userId", json_string(user)), 0);
    assert_int_equal(json_object_set_new(o, "message", json_string(message)), 0);
    assert_int_equal(json_object_set_new(o, "timestamp", json_string(timestamp)), 0);
    if (type[0])
        assert_int_equal(json_object_set_new(o, "type", json_string(type)), 0);
    if (data) {
        json_t *d = json_loads(data, JSON_DECODE_ANY, NULL);
        assert_non_null(d);
        assert_int_equal(json_object_set_new(o, "data", d), 0);
    }
    if (replayed)
        assert_int_equal(json_object_set_new(o, "replayed", json_true()), 0);
    char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(out);
    json_decref(o);
    return out;
}

struct sample {
    const char *id, *user, *message, *type; /* type "" when none */
    const char *data;                       /* JSON text as published, or NULL */
};

/* Publishes s as a producer would (jansson writes the input), parses it,
 * and checks both renderings against jansson's, the replayed splice
 * against the replayed rendering, and that the frame parses back to the
 * same notification. */
static void check_sample(const struct sample *s)
{
    static const char ts[] = "2023-10-01T12:00:00.123Z";
    json_t *in = json_pack("{s:s, s:s, s:s, s:s}", "id", s->id, "userId", s->user, "message",
                           s->message, "timestamp", ts);
    assert_non_null(in);
    if (s->type[0])
        json_object_set_new(in, "type", json_string(s->type));
    if (s->data)
        json_object_set_new(in, "data", json_loads(s->data, JSON_DECODE_ANY, NULL));
    char *text = json_dumps(in, JSON_COMPACT);
    json_decref(in);

    notification_t n, back;
    char err[256];
    if (parse(text, 0, &n, err) != 0)
        fail_msg("%s: %s", text, err);
    for (int replayed = 0; replayed <= 1; replayed++) {
        char *want = jansson_frame(s->id, s->user, s->message, ts, s->type, s->data, replayed);
        size_t len = 0;
        char *got = notification_to_json(&n, replayed, &len);
        assert_string_equal(got, want);
        assert_int_equal(len, strlen(want));
        free(want);

        if (!replayed) {
            char *spliced = malloc(len + NOTIF_REPLAYED_EXTRA + 1);
            size_t slen = notification_frame_replayed(got, len, spliced);
            char *want_r = notification_to_json(&n, 1, NULL);
            assert_int_equal(slen, strlen(want_r));
            assert_string_equal(spliced, want_r);
            free(want_r);
            free(spliced);
        }

        /* Parsing the frame gives the notification back. */
        assert_int_equal(notification_parse(got, len, 0, &back, err, sizeof(err)), 0);
        assert_string_equal(back.id, n.id);
        assert_string_equal(back.user, n.user);
        assert_string_equal(back.message, n.message);
        assert_string_equal(back.timestamp, n.timestamp);
        assert_string_equal(back.type, n.type);
        if (n.data_json)
            assert_string_equal(back.data_json, n.data_json);
        else
            assert_null(back.data_json);
        notification_clear(&back);
        free(got);
    }
    notification_clear(&n);
    free(text);
}

static void frames_are_byte_for_byte_janssons(void **state)
{
    (void)state;
    char controls[32];
    for (int c = 1; c < 0x20; c++)
        controls[c - 1] = (char)c;
    controls[31] = '\0';

    const struct sample samples[] = {
        {"n1", "u1", "plain", "", NULL},
        {"n.2_-@:+~", "Ux.y-z@h:1+2~", "quotes \" and \\ backslash \\\" / slash", "t", "{}"},
        {"n3", "u", controls, "", NULL},
        {"n4", "u", "DEL \x7f and a tab\tnewline\ncr\r", "\x01type\"\\", NULL},
        {"n5", "u", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \xe2\x80\xa9 \xef\xbf\xbf",
         "\xc3\xa9t\xc3\xa9", "\"\xe2\x80\xa8\xf0\x9f\x98\x80\""},
        {"n6", "u", "", "", "[]"},
        {"n7", "u", "m", "alert", "{\"k\":[1,2],\"o\":{\"a\":null,\"b\":true,\"c\":false}}"},
        {"n8", "u", "m", "", "[1,\"two\",3.5,-4,{\"x\":[[],{}]},true,false,null]"},
        {"n9", "u", "m", "", "\"a string with \\\"quotes\\\", \\\\, \\/ and \\u0001\\u001f\\u2028\""},
        {"n10", "u", "m", "", "42"},
        {"n11", "u", "m", "", "-0.0"},
        {"n12", "u", "m", "", "0.1"},
        {"n13", "u", "m", "", "1e300"},
        {"n14", "u", "m", "", "-9223372036854775808"},
        {"n15", "u", "m", "", "true"},
        {"n16", "u", "m", "", "false"},
        {"n17", "u", "m", "", "{\"deep\":{\"er\":[{\"est\":[\"\\ud83d\\ude00\"]}]}}"},
        /* Published with spaces: the frame carries it compact. */
        {"n18", "u", "m", "t", " { \"a\" : [ 1 , 2 ] , \"b\" : \"\\u00e9\" } "},
        {"n19", "u", "m", "0123456789012345678901234567890123456789012345678901234567890123",
         NULL},
    };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        check_sample(&samples[i]);

    /* Every ASCII byte alone, in a message and in a data string. */
    for (int c = 1; c < 0x80; c++) {
        char m[2] = {(char)c, '\0'};
        json_t *j = json_string(m);
        char *data = json_dumps(j, JSON_ENCODE_ANY);
        json_decref(j);
        struct sample one = {"n", "u", m, m, data};
        check_sample(&one);
        free(data);
    }
}

/* Appends code point c as UTF-8. */
static size_t put_utf8(char *p, uint32_t c)
{
    if (c < 0x80) {
        p[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        p[0] = (char)(0xc0 | c >> 6);
        p[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        p[0] = (char)(0xe0 | c >> 12);
        p[1] = (char)(0x80 | (c >> 6 & 0x3f));
        p[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    p[0] = (char)(0xf0 | c >> 18);
    p[1] = (char)(0x80 | (c >> 12 & 0x3f));
    p[2] = (char)(0x80 | (c >> 6 & 0x3f));
    p[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

static void random_messages_match_jansson(void **state)
{
    (void)state;
    uint32_t seed = 12345; /* fixed: a failure can be replayed */
    for (int round = 0; round < 2000; round++) {
        char m[4 * 40 + 1];
        size_t len = 0;
        int chars = (int)(seed % 40);
        for (int i = 0; i < chars; i++) {
            seed = seed * 1103515245 + 12345;
            uint32_t r = seed >> 8, c;
            /* Mostly the bytes that need care; some of every UTF-8 length. */
            switch (r % 4) {
            case 0: c = 1 + r / 4 % 0x7f; break;
            case 1: c = 0x80 + r / 4 % 0x780; break;
            case 2: c = 0x800 + r / 4 % 0xf800; break;
            default: c = 0x10000 + r / 4 % 0x100000; break;
            }
            if (c >= 0xd800 && c <= 0xdfff) /* surrogates are not UTF-8 */
                c = 0x2028;
            len += put_utf8(m + len, c);
        }
        m[len] = '\0';
        struct sample one = {"n", "u", m, "", NULL};
        check_sample(&one);
    }
}

/* The producer renders notifications it built itself, message possibly unset. */
static void renders_what_was_not_parsed(void **state)
{
    (void)state;
    notification_t n;
    memset(&n, 0, sizeof(n));
    strcpy(n.id, "i");
    strcpy(n.user, "u");
    strcpy(n.timestamp, "2023-10-01T12:00:00.000Z");
    char *got = notification_to_json(&n, 0, NULL);
    char *want = jansson_frame("i", "u", "", n.timestamp, "", NULL, 0);
    assert_string_equal(got, want);
    free(got);
    free(want);
}

static void replayed_splice_checks_its_input(void **state)
{
    (void)state;
    char out[64 + NOTIF_REPLAYED_EXTRA + 1];
    static const char *bad[] = {"", "x", "[1]", "}", "{", "{\"a\":1", "\"}\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(out, '#', sizeof(out));
        assert_int_equal(notification_frame_replayed(bad[i], strlen(bad[i]), out), 0);
        assert_int_equal(out[0], '#'); /* untouched */
    }
    assert_int_equal(notification_frame_replayed("{}", 2, out), strlen("{\"replayed\":true}"));
    assert_string_equal(out, "{\"replayed\":true}");
    assert_int_equal(NOTIF_REPLAYED_EXTRA, strlen(",\"replayed\":true"));

    /* In place, as the header allows. */
    strcpy(out, "{\"id\":\"a\"}");
    assert_int_equal(notification_frame_replayed(out, strlen(out), out),
                     strlen("{\"id\":\"a\",\"replayed\":true}"));
    assert_string_equal(out, "{\"id\":\"a\",\"replayed\":true}");
}

static void fills_missing_id_and_timestamp_when_asked(void **state)
{
    (void)state;
    notification_t n;
    char err[256];
    assert_int_equal(parse("{\"userId\":\"u\",\"message\":\"m\"}", 0, &n, err), -1);
    assert_non_null(strstr(err, "\"id\" is missing"));
    assert_int_equal(
        parse("{\"userId\":\"u\",\"message\":\"m\"}", NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n, err),
        0);
    assert_int_equal(strlen(n.id), 36);
    assert_int_equal(n.id[14], '7');
    assert_int_equal(n.filled, NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP);
    assert_int_equal(strlen(n.timestamp), 24);
    notification_clear(&n);
}

/* Each audience parses, renders in the form published to Kafka (which
 * parses back the same) and has its Kafka key. */
static void audiences_parse_render_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out, *key;
        enum notif_audience audience;
    } cases[] = {
        {"{\"id\":\"a\",\"userIds\":[\"u2\",\"u1\"],\"message\":\"m\",\"timestamp\":1}",
         "{\"id\":\"a\",\"message\":\"m\",\"timestamp\":\"1970-01-01T00:00:00.001Z\","
         "\"userIds\":[\"u2\",\"u1\"]}",
         "a", NOTIF_TO_USERS},
        {"{\"id\":\"a\",\"room\":\"ops.eu_1-x\",\"message\":\"m\",\"timestamp\":1,\"from\":\"u9\"}",
         "{\"id\":\"a\",\"message\":\"m\",\"timestamp\":\"1970-01-01T00:00:00.001Z\","
         "\"room\":\"ops.eu_1-x\",\"from\":\"u9\"}",
         "room:ops.eu_1-x", NOTIF_TO_ROOM},
        {"{\"id\":\"a\",\"broadcast\":true,\"message\":\"m\",\"timestamp\":1,\"ttl\":60}",
         "{\"id\":\"a\",\"message\":\"m\",\"timestamp\":\"1970-01-01T00:00:00.001Z\","
         "\"broadcast\":true,\"expiresAt\":\"1970-01-01T00:01:00.001Z\"}",
         "broadcast", NOTIF_TO_BROADCAST},
        {"{\"id\":\"a\",\"userId\":\"u\",\"broadcast\":false,\"message\":\"m\",\"timestamp\":1,"
         "\"expiresAt\":\"2030-01-01T00:00:00Z\"}",
         "{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":\"1970-01-01T00:00:00.001Z\","
         "\"expiresAt\":\"2030-01-01T00:00:00.000Z\"}",
         "u", NOTIF_TO_USER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        notification_t n, back;
        char err[256], key[NOTIF_ID_MAX + 1];
        if (parse(cases[i].in, 0, &n, err) != 0)
            fail_msg("%s: %s", cases[i].in, err);
        assert_int_equal(n.audience, cases[i].audience);
        size_t len;
        char *out = notification_to_json(&n, 0, &len);
        assert_string_equal(out, cases[i].out);
        notification_kafka_key(&n, key);
        assert_string_equal(key, cases[i].key);
        assert_int_equal(notification_parse(out, len, 0, &back, err, sizeof(err)), 0);
        assert_int_equal(back.audience, n.audience);
        assert_int_equal(back.expires_ms, n.expires_ms);
        assert_int_equal(back.nuser_ids, n.nuser_ids);
        free(out);
        notification_clear(&back);
        notification_clear(&n);
    }
}

/* "ttl" counts from the notification's time, and follows it when the
 * gateway sets the time later (a record without a timestamp). */
static void ttl_follows_the_time(void **state)
{
    (void)state;
    notification_t n;
    char err[256];
    assert_int_equal(parse("{\"userId\":\"u\",\"message\":\"m\",\"ttl\":5}",
                           NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n, err), 0);
    assert_true(n.expires_ms - n.time_ms == 5000);
    assert_int_equal(notification_set_time(&n, 1000000), 0);
    assert_true(n.expires_ms == 1005000);
    assert_string_equal(n.timestamp, "1970-01-01T00:16:40.000Z");
    notification_clear(&n);
}

static void rejects_what_it_cannot_deliver(void **state)
{
    (void)state;
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"not json", "not valid JSON"},
        {"[1]", "must be a JSON object"},
        {"{\"id\":\"a\",\"message\":\"m\",\"timestamp\":1}", "\"userId\" is missing"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"timestamp\":1}", "\"message\" is missing"},
        {"{\"id\":\"a\",\"userId\":\"u v\",\"message\":\"m\",\"timestamp\":1}", "\"userId\" must be"},
        {"{\"id\":\"a/b\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1}", "\"id\" must be"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":5,\"timestamp\":1}", "\"message\" must be a string"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":\"yesterday\"}", "ISO-8601"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"userId\":\"v\",\"message\":\"m\",\"timestamp\":1}", "not valid JSON"},
        /* Too large for an int64_t: refused before the cast. */
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1e300}", "out of range"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":-1e300}", "out of range"},
        /* A notification must not pass for a control frame. */
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1,\"type\":\"welcome\"}", "is reserved"},
        /* Audiences: exactly one, each well formed. */
        {"{\"id\":\"a\",\"userId\":\"u\",\"room\":\"r\",\"message\":\"m\"}", "\"userId\" and \"room\" both given"},
        {"{\"id\":\"a\",\"userIds\":[\"u\"],\"broadcast\":true,\"message\":\"m\"}", "\"userIds\" and \"broadcast\" both"},
        {"{\"id\":\"a\",\"broadcast\":false,\"message\":\"m\"}", "\"userId\" is missing"},
        {"{\"id\":\"a\",\"broadcast\":1,\"message\":\"m\"}", "\"broadcast\" must be true or false"},
        {"{\"id\":\"a\",\"userIds\":[],\"message\":\"m\"}", "non-empty array"},
        {"{\"id\":\"a\",\"userIds\":\"u\",\"message\":\"m\"}", "non-empty array"},
        {"{\"id\":\"a\",\"userIds\":[\"u\",\"v w\"],\"message\":\"m\"}", "\"userIds\"[1] must be"},
        {"{\"id\":\"a\",\"userIds\":[\"u\",\"v\",\"u\"],\"message\":\"m\"}", "names \"u\" twice"},
        {"{\"id\":\"a\",\"room\":\"a@b\",\"message\":\"m\"}", "\"room\" must be"},
        {"{\"id\":\"a\",\"room\":\"\",\"message\":\"m\"}", "\"room\" must be"},
        {"{\"id\":\"a\",\"room\":\"r\",\"message\":\"m\",\"from\":\"x y\"}", "\"from\" must be"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1,\"ttl\":0}", "\"ttl\" must be"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1,\"ttl\":1.5}", "\"ttl\" must be"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1,\"ttl\":5,\"expiresAt\":9}", "both given"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1,\"expiresAt\":\"soon\"}", "\"expiresAt\" must be ISO-8601"},
        {"{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":253402300799000,\"ttl\":5}", "past the year 9999"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        notification_t n;
        char err[256] = "";
        assert_int_equal(parse(bad[i].json, 0, &n, err), -1);
        if (!strstr(err, bad[i].says))
            fail_msg("%s: said \"%s\", expected \"%s\"", bad[i].json, err, bad[i].says);
        assert_null(n.message);
    }
}

static void rejects_oversized_input(void **state)
{
    (void)state;
    size_t len = NOTIF_JSON_MAX + 1;
    char *big = malloc(len);
    memset(big, ' ', len);
    notification_t n;
    char err[256];
    assert_int_equal(notification_parse(big, len, 0, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than the limit"));
    free(big);
}

static void iso8601_round_trips(void **state)
{
    (void)state;
    int64_t ms;
    char out[ISO8601_LEN];
    assert_int_equal(iso8601_parse("2023-10-01T14:00:00.5+02:00", 27, &ms), 0);
    assert_int_equal(iso8601_from_ms(ms, out), 0);
    assert_string_equal(out, "2023-10-01T12:00:00.500Z");
    assert_int_equal(iso8601_parse("2023-10-01", 10, &ms), -1);
    assert_int_equal(iso8601_parse("2023-13-01T00:00:00Z", 20, &ms), -1);
    assert_int_equal(iso8601_from_ms(-1, out), -1);
}

static void uuid7_ids_are_unique_and_increasing(void **state)
{
    (void)state;
    char prev[UUID7_LEN] = "", id[UUID7_LEN];
    for (int i = 0; i < 10000; i++) {
        uuid7_generate(id);
        assert_true(strcmp(prev, id) < 0);
        memcpy(prev, id, sizeof(id));
    }
}

/* The flat reader takes the plain shapes and the tree reader reads them
 * the same; everything out of its way is left to the tree reader ("not
 * sure"), which answers as it always did. */
static void the_flat_reader_takes_plain_shapes_and_leaves_the_rest(void **state)
{
    (void)state;
    const int fill = NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP;
    static const char *const taken[] = {
        "{\"id\":\"a\",\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1700000000000}",
        " {\"userId\" : \"u\" ,\"message\":\"h\xc3\xa9 \xf0\x9f\x98\x80\", \"id\":null,"
        " \"type\":\"t\", \"data\":null, \"x\":1}\n",
        "{\"user_id\":\"u\",\"message\":\"\",\"timestamp\":\"2023-10-01T12:00:00Z\"}",
        "{\"userId\":null,\"user_id\":\"u\",\"message\":\"m\",\"timestamp\":-0}",
    };
    static const char *const left[] = {
        "{\"userId\":\"u\",\"message\":\"a\\nb\"}",             /* an escape */
        "{\"userId\":\"u\",\"message\":\"m\",\"data\":{\"k\":1}}", /* data */
        "{\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1.5}",  /* a fraction */
        "{\"userId\":\"u\",\"message\":\"m\",\"timestamp\":01}",   /* a leading zero */
        "{\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1e3}",  /* an exponent */
        "{\"userId\":\"u\",\"userId\":\"v\",\"message\":\"m\"}",   /* a duplicate */
        "{\"userId\":\"u\",\"message\":\"m\"} x",                  /* trailing bytes */
        "{\"userId\":\"u\",\"message\":\"\xc0\xaf\"}",             /* overlong UTF-8 */
        "{\"userId\":\"u\",\"message\":\"\xed\xa0\x80\"}",         /* a surrogate */
        "{\"userId\":\"u\",\"message\":\"m\",\"type\":\"welcome\"}", /* reserved type */
        "{\"userId\":\"u b\",\"message\":\"m\"}",                  /* a bad user */
        "{\"userId\":\"u\",\"message\":true}",
        "{\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1234567890123456789}",
        "{\"userId\":\"u\"}",
        "{}",
        "[]",
    };
    notification_t flat, tree;
    char err[256];
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        size_t len = strlen(taken[i]);
        assert_int_equal(notification_parse_flat(taken[i], len, fill, &flat), 0);
        assert_int_equal(notification_parse_tree(taken[i], len, fill, &tree, err, sizeof(err)), 0);
        assert_int_equal(flat.filled, tree.filled);
        assert_string_equal(flat.user, tree.user);
        assert_string_equal(flat.message, tree.message);
        assert_string_equal(flat.type, tree.type);
        if (!(flat.filled & NOTIF_FILL_ID))
            assert_string_equal(flat.id, tree.id);
        if (!(flat.filled & NOTIF_FILL_TIMESTAMP))
            assert_string_equal(flat.timestamp, tree.timestamp);
        notification_clear(&flat);
        notification_clear(&tree);
    }
    for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
        assert_int_equal(notification_parse_flat(left[i], strlen(left[i]), fill, &flat), -1);
    /* Without the fills, a missing id is the tree reader's to refuse. */
    const char *no_id = "{\"userId\":\"u\",\"message\":\"m\",\"timestamp\":1}";
    assert_int_equal(notification_parse_flat(no_id, strlen(no_id), 0, &flat), -1);
    assert_int_equal(notification_parse(no_id, strlen(no_id), 0, &tree, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"id\" is missing"));
}

static void client_message_forms(void **state)
{
    (void)state;
    struct client_msg m;
    char err[160];
    const char *a = "{\"type\":\"ack\",\"id\":\"n1\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_ACK);
    assert_string_equal(m.id, "n1");
    a = "{\"type\":\"ack\",\"userId\":\"u\",\"messageId\":\"n2\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_ACK);
    assert_string_equal(m.id, "n2");
    a = "{\"type\":\"ack\",\"contentId\":\"n3\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_ACK);
    assert_string_equal(m.id, "n3");
    a = "{\"type\":\"ping\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_OTHER);
    a = "{\"id\":\"n4\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_OTHER);
    a = "{\"type\":\"ack\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_INVALID);
    a = "hello";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_INVALID);
    assert_non_null(strstr(err, "JSON object"));
    /* Near the plain ack's shape, each answered as the full parser does. */
    a = "{\"type\":\"ack\",\"id\":\"a\",\"id\":\"b\"}"; /* the last one counts */
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_ACK);
    assert_string_equal(m.id, "b");
    a = "{\"type\":\"ack\",\"id\":\"a b\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_INVALID);
    a = "{\"type\":\"ack\",\"id\":\"\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_INVALID);
    a = "{\"type\":\"ack\",\"id\":\"n5\"}}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_INVALID);
    a = "{\"type\":\"ack\",\"id\":\"n\\u0036\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_ACK);
    assert_string_equal(m.id, "n6");
    a = "{\"type\":\"auth\",\"token\":\"h.p.s\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_AUTH);
    assert_string_equal(m.token, "h.p.s");
    a = "{\"type\":\"refresh\",\"token\":\"h.p.t\"}";
    assert_int_equal(client_msg_parse(a, strlen(a), &m, err, sizeof(err)), CLIENT_MSG_REFRESH);
    assert_string_equal(m.token, "h.p.t");
    const char *bad[] = {"{\"type\":\"auth\"}", "{\"type\":\"auth\",\"token\":7}",
                         "{\"type\":\"auth\",\"token\":\"\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(client_msg_parse(bad[i], strlen(bad[i]), &m, err, sizeof(err)),
                         CLIENT_MSG_INVALID);
        assert_non_null(strstr(err, "needs \"token\""));
    }
}

static void websocket_frame_headers(void **state)
{
    (void)state;
    unsigned char h[WSFRAME_HEADER_MAX];
    assert_int_equal(wsframe_text_header(h, 5), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 5);
    assert_int_equal(wsframe_text_header(h, 125), 2);
    assert_int_equal(h[1], 125);
    assert_int_equal(wsframe_text_header(h, 126), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 126);
    assert_int_equal(wsframe_text_header(h, 65535), 4);
    assert_int_equal(h[2] << 8 | h[3], 65535);
    assert_int_equal(wsframe_text_header(h, 65536), 10);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 1); /* 0x10000 big-endian in bytes 2..9 */
    assert_int_equal(h[8], 0);
    assert_int_equal(h[9], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_original_designs_form),
        cmocka_unit_test(accepts_user_id_and_epoch_ms),
        cmocka_unit_test(frames_are_byte_for_byte_janssons),
        cmocka_unit_test(random_messages_match_jansson),
        cmocka_unit_test(renders_what_was_not_parsed),
        cmocka_unit_test(replayed_splice_checks_its_input),
        cmocka_unit_test(fills_missing_id_and_timestamp_when_asked),
        cmocka_unit_test(rejects_what_it_cannot_deliver),
        cmocka_unit_test(rejects_oversized_input),
        cmocka_unit_test(iso8601_round_trips),
        cmocka_unit_test(uuid7_ids_are_unique_and_increasing),
        cmocka_unit_test(the_flat_reader_takes_plain_shapes_and_leaves_the_rest),
        cmocka_unit_test(audiences_parse_render_and_key),
        cmocka_unit_test(ttl_follows_the_time),
        cmocka_unit_test(client_message_forms),
        cmocka_unit_test(websocket_frame_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
