/* The notification codec, client acks, timestamps and ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ack.h"
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

static void ack_forms(void **state)
{
    (void)state;
    char id[NOTIF_ID_MAX + 1], err[160];
    const char *a = "{\"type\":\"ack\",\"id\":\"n1\"}";
    assert_int_equal(ack_parse(a, strlen(a), id, err, sizeof(err)), ACK_OK);
    assert_string_equal(id, "n1");
    a = "{\"type\":\"ack\",\"userId\":\"u\",\"messageId\":\"n2\"}";
    assert_int_equal(ack_parse(a, strlen(a), id, err, sizeof(err)), ACK_OK);
    assert_string_equal(id, "n2");
    a = "{\"type\":\"ack\",\"contentId\":\"n3\"}";
    assert_int_equal(ack_parse(a, strlen(a), id, err, sizeof(err)), ACK_OK);
    assert_string_equal(id, "n3");
    a = "{\"type\":\"ping\"}";
    assert_int_equal(ack_parse(a, strlen(a), id, err, sizeof(err)), ACK_OTHER);
    a = "{\"type\":\"ack\"}";
    assert_int_equal(ack_parse(a, strlen(a), id, err, sizeof(err)), ACK_INVALID);
    a = "hello";
    assert_int_equal(ack_parse(a, strlen(a), id, err, sizeof(err)), ACK_INVALID);
    assert_non_null(strstr(err, "JSON object"));
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
        cmocka_unit_test(fills_missing_id_and_timestamp_when_asked),
        cmocka_unit_test(rejects_what_it_cannot_deliver),
        cmocka_unit_test(rejects_oversized_input),
        cmocka_unit_test(iso8601_round_trips),
        cmocka_unit_test(uuid7_ids_are_unique_and_increasing),
        cmocka_unit_test(ack_forms),
        cmocka_unit_test(websocket_frame_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
