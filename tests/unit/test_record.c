/* One Kafka record into one notification, without librdkafka: deliver or
 * skip, ids from the record's place, timestamps from the record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "record.h"

static int from(const char *json, int64_t ts, hub_msg_t *m, char *err)
{
    return notification_from_record(json, json ? strlen(json) : 0, "notifications", 2, 41, ts, m,
                                    err, 256);
}

static void a_valid_record_is_delivered_as_is(void **state)
{
    (void)state;
    hub_msg_t m;
    char err[256];
    assert_int_equal(from("{\"id\":\"n1\",\"userId\":\"u1\",\"message\":\"hi\","
                          "\"timestamp\":\"2023-10-01T12:00:00Z\"}",
                          5, &m, err),
                     0);
    assert_string_equal(m.id, "n1");
    assert_string_equal(m.user, "u1");
    assert_string_equal(m.frame, "{\"id\":\"n1\",\"userId\":\"u1\",\"message\":\"hi\","
                                 "\"timestamp\":\"2023-10-01T12:00:00.000Z\"}");
    assert_int_equal(m.frame_len, strlen(m.frame));
    assert_int_equal(m.partition, 2);
    assert_int_equal(m.offset, 41);
    assert_int_equal(m.seq, 0);
    record_msg_clear(&m);
}

static void missing_id_and_time_come_from_the_record(void **state)
{
    (void)state;
    hub_msg_t m;
    char err[256];
    assert_int_equal(from("{\"user_id\":\"u1\",\"message\":\"hi\"}", 1696161600000, &m, err), 0);
    assert_string_equal(m.id, "notifications-2-41");
    assert_non_null(strstr(m.frame, "\"timestamp\":\"2023-10-01T12:00:00.000Z\""));
    record_msg_clear(&m);
}

static void bad_records_are_skipped_with_a_reason(void **state)
{
    (void)state;
    hub_msg_t m;
    char err[256];
    assert_int_equal(from(NULL, 0, &m, err), -1);
    assert_string_equal(err, "it has no value");
    assert_int_equal(from("not json", 0, &m, err), -1);
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(from("{\"message\":\"hi\"}", 0, &m, err), -1);
    assert_non_null(strstr(err, "userId"));
    assert_null(m.id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_record_is_delivered_as_is),
        cmocka_unit_test(missing_id_and_time_come_from_the_record),
        cmocka_unit_test(bad_records_are_skipped_with_a_reason),
    };
    return cmocka_run_group_tests_name("kafka records", tests, NULL, NULL);
}
