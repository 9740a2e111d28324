/* Inbox records between gateways: what one encodes, the other decodes
 * the same, and a value that is not one is refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "inbox.h"
#include "record.h"

static void a_notification_crosses_whole(void **state)
{
    (void)state;
    const char frame[] = "{\"id\":\"n1\",\"userId\":\"alice\",\"message\":\"a\\nb\"}";
    hub_msg_t m = {.id = "n1", .user = "alice", .frame = frame, .frame_len = strlen(frame),
                   .seq = 4611686018427387904LL + 7, .kafka_ms = 1700000000123LL,
                   .expires_ms = 1700000060000LL, .partition = 3, .offset = 9};
    size_t len;
    char *v = inbox_encode(INBOX_NOTIFY, &m, &len);
    hub_msg_t out;
    enum inbox_kind kind;
    char err[128];
    assert_int_equal(inbox_decode("alice", 5, v, len, &out, &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, INBOX_NOTIFY);
    assert_string_equal(out.id, "n1");
    assert_string_equal(out.user, "alice");
    assert_int_equal(out.frame_len, strlen(frame));
    assert_memory_equal(out.frame, frame, strlen(frame));
    assert_int_equal(out.seq, m.seq);
    assert_int_equal(out.kafka_ms, m.kafka_ms);
    assert_int_equal(out.expires_ms, m.expires_ms);
    assert_int_equal(out.partition, -1); /* the inbox record's, set by the consumer */
    assert_null(out.stream);
    record_msg_clear(&out);
    free(v);
}

static void a_stream_notification_keeps_its_stream_and_any_type(void **state)
{
    (void)state;
    const char frame[] = "{\"id\":\"r1\",\"room\":\"ops\"}";
    hub_msg_t m = {.id = "r1", .user = "", .frame = frame, .frame_len = strlen(frame),
                   .seq = 42, .stream = "room:ops", .type = "a type\nwith a newline"};
    size_t len;
    char *v = inbox_encode(INBOX_STREAM, &m, &len);
    hub_msg_t out;
    enum inbox_kind kind;
    char err[128];
    assert_int_equal(inbox_decode("room:ops", 8, v, len, &out, &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, INBOX_STREAM);
    assert_string_equal(out.stream, "room:ops");
    assert_string_equal(out.type, "a type\nwith a newline");
    assert_string_equal(out.user, "");
    assert_int_equal(out.seq, 42);
    assert_memory_equal(out.frame, frame, strlen(frame));
    record_msg_clear(&out);
    free(v);
}

static void a_relay_is_a_notification_passed_on_once(void **state)
{
    (void)state;
    hub_msg_t m = {.id = "n9", .user = "cy", .frame = "{\"id\":\"n9\"}", .frame_len = 11,
                   .seq = 5};
    size_t len;
    char *v = inbox_encode(INBOX_RELAY, &m, &len);
    hub_msg_t out;
    enum inbox_kind kind;
    char err[128];
    assert_int_equal(inbox_decode("cy", 2, v, len, &out, &kind, err, sizeof(err)), 0);
    assert_int_equal(kind, INBOX_RELAY);
    assert_string_equal(out.frame, "{\"id\":\"n9\"}");
    assert_int_equal(out.seq, 5);
    record_msg_clear(&out);
    free(v);
}

static void control_records_carry_the_user_and_the_acked_id(void **state)
{
    (void)state;
    hub_msg_t m = {.id = "n7", .user = "bob", .frame = "{}", .frame_len = 2};
    enum inbox_kind kinds[] = {INBOX_ACK, INBOX_DISCONNECT, INBOX_WAKE};
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *v = inbox_encode(kinds[i], &m, &len);
        hub_msg_t out;
        enum inbox_kind kind;
        char err[128];
        assert_int_equal(inbox_decode("bob", 3, v, len, &out, &kind, err, sizeof(err)), 0);
        assert_int_equal(kind, kinds[i]);
        assert_string_equal(out.user, "bob");
        assert_string_equal(out.id, kinds[i] == INBOX_ACK ? "n7" : "");
        assert_int_equal(out.frame_len, 0);
        record_msg_clear(&out);
        free(v);
    }
}

static void what_is_not_an_inbox_record_is_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "notify 1 2 3 2 0 0", /* no newline */
        "shout 1 2 3 2 0 0\nn1{}",
        "notify 1 2 3 2 0\nn1{}",
        "notify 1 2 3 2 0 0 extra\nn1{}",
        "notify 1 2 3 99 0 0\nn1{}", /* id past the value */
        "notify 1 2 3 0 0 0\n{}",    /* no id */
        "ack 0 0 0 0 0 0\n",         /* an ack of nothing */
        "stream 1 2 3 2 0 0\nr1{}",  /* a stream without its stream */
        "notify 1 2 3 129 0 0\n",    /* an id past the limit */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hub_msg_t out;
        enum inbox_kind kind;
        char err[128] = "";
        assert_int_equal(inbox_decode("u", 1, bad[i], strlen(bad[i]), &out, &kind, err,
                                      sizeof(err)),
                         -1);
        assert_true(err[0] != '\0');
    }
    hub_msg_t out;
    enum inbox_kind kind;
    char err[128];
    assert_int_equal(inbox_decode(NULL, 0, "wake 0 0 0 0 0 0\n", 17, &out, &kind, err,
                                  sizeof(err)),
                     -1);
    assert_string_equal(err, "no key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_notification_crosses_whole),
        cmocka_unit_test(a_stream_notification_keeps_its_stream_and_any_type),
        cmocka_unit_test(a_relay_is_a_notification_passed_on_once),
        cmocka_unit_test(control_records_carry_the_user_and_the_acked_id),
        cmocka_unit_test(what_is_not_an_inbox_record_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
