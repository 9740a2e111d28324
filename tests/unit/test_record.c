/* One Kafka record into the hub's notifications, without librdkafka:
 * deliver, fan out, expire or skip; ids from the record's place,
 * timestamps from the record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "record.h"

#define NOW 1700000000000LL

static struct record_msgs out;

static int decode(const char *json, int64_t ts, char *err)
{
    struct record rec = {json, json ? strlen(json) : 0, "notifications", 2, 41, ts};
    struct record_rules rules = {3, NOW};
    return record_decode(&rec, &rules, &out, err, 256);
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < out.n; i++)
        record_msg_clear(&out.msgs[i]);
    free(out.msgs);
    memset(&out, 0, sizeof(out));
    return 0;
}

static void a_valid_record_is_delivered_as_is(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(decode("{\"id\":\"n1\",\"userId\":\"u1\",\"message\":\"hi\","
                            "\"timestamp\":\"2023-10-01T12:00:00Z\"}",
                            5, err),
                     1);
    assert_int_equal(out.n, 1);
    hub_msg_t *m = &out.msgs[0];
    assert_string_equal(m->id, "n1");
    assert_string_equal(m->user, "u1");
    assert_string_equal(m->frame, "{\"id\":\"n1\",\"userId\":\"u1\",\"message\":\"hi\","
                                  "\"timestamp\":\"2023-10-01T12:00:00.000Z\"}");
    assert_int_equal(m->frame_len, strlen(m->frame));
    assert_int_equal(m->partition, 2);
    assert_int_equal(m->offset, 41);
    /* Its place in Kafka orders it, the same on every gateway. */
    assert_int_equal(m->seq, (INT64_C(1) << 62) + (INT64_C(2) << 46) + 41);
    assert_int_equal(m->expires_ms, 0);
}

static void the_order_is_the_place_in_kafka_within_range(void **state)
{
    (void)state;
    assert_true(record_seq(0, 1) > record_seq(0, 0));
    assert_true(record_seq(0, 0) > (INT64_C(1) << 51)); /* after every clock seq of before */
    assert_true(record_seq(1, 0) > record_seq(0, (INT64_C(1) << 46) - 1));
    assert_true(record_seq(65535, (INT64_C(1) << 46) - 1) > 0); /* no overflow */
    assert_int_equal(record_seq(65536, 0), 0);
    assert_int_equal(record_seq(0, INT64_C(1) << 46), 0);
    assert_int_equal(record_seq(-1, 0), 0);
}

static void missing_id_and_time_come_from_the_record(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(decode("{\"user_id\":\"u1\",\"message\":\"hi\"}", 1696161600000, err), 1);
    assert_string_equal(out.msgs[0].id, "notifications-2-41");
    assert_non_null(strstr(out.msgs[0].frame, "\"timestamp\":\"2023-10-01T12:00:00.000Z\""));
}

/* "userIds": one personal copy each, same id and record, each frame its
 * user's alone. */
static void user_ids_fan_out_into_personal_copies(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(decode("{\"id\":\"n2\",\"userIds\":[\"a\",\"b\",\"c\"],\"message\":\"hi\","
                            "\"timestamp\":1}",
                            5, err),
                     3);
    assert_int_equal(out.n, 3);
    const char *users[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        char want[160];
        snprintf(want, sizeof(want), "{\"id\":\"n2\",\"userId\":\"%s\",\"message\":\"hi\","
                 "\"timestamp\":\"1970-01-01T00:00:00.001Z\"}", users[i]);
        assert_string_equal(out.msgs[i].user, users[i]);
        assert_string_equal(out.msgs[i].id, "n2");
        assert_string_equal(out.msgs[i].frame, want);
        assert_int_equal(out.msgs[i].offset, 41);
    }
    /* More than --max-user-ids (3 here): skipped, nothing appended. */
    assert_int_equal(decode("{\"id\":\"n3\",\"userIds\":[\"a\",\"b\",\"c\",\"d\"],"
                            "\"message\":\"hi\"}", 5, err),
                     RECORD_SKIP);
    assert_non_null(strstr(err, "more than --max-user-ids (3)"));
    assert_int_equal(out.n, 3);
}

/* Expiry counts from the notification's time, or the record's when it has
 * none; what expired before it was consumed is not delivered. */
static void expired_ones_are_not_delivered(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(decode("{\"userId\":\"u\",\"message\":\"m\",\"ttl\":60}", NOW - 61000, err),
                     RECORD_EXPIRED);
    assert_int_equal(decode("{\"userIds\":[\"a\",\"b\"],\"message\":\"m\",\"expiresAt\":1000}", 5,
                            err),
                     RECORD_EXPIRED);
    assert_int_equal(out.n, 0);
    assert_int_equal(decode("{\"userId\":\"u\",\"message\":\"m\",\"ttl\":60}", NOW - 59000, err), 1);
    assert_true(out.msgs[0].expires_ms == NOW + 1000);
    assert_non_null(strstr(out.msgs[0].frame, "\"expiresAt\":"));
}

static void bad_records_are_skipped_with_a_reason(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(decode(NULL, 0, err), RECORD_SKIP);
    assert_string_equal(err, "it has no value");
    assert_int_equal(decode("not json", 0, err), RECORD_SKIP);
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(decode("{\"message\":\"hi\"}", 0, err), RECORD_SKIP);
    assert_non_null(strstr(err, "userId"));
    assert_int_equal(out.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(a_valid_record_is_delivered_as_is, teardown),
        cmocka_unit_test(the_order_is_the_place_in_kafka_within_range),
        cmocka_unit_test_teardown(missing_id_and_time_come_from_the_record, teardown),
        cmocka_unit_test_teardown(user_ids_fan_out_into_personal_copies, teardown),
        cmocka_unit_test_teardown(expired_ones_are_not_delivered, teardown),
        cmocka_unit_test_teardown(bad_records_are_skipped_with_a_reason, teardown),
    };
    return cmocka_run_group_tests_name("kafka records", tests, NULL, NULL);
}
