/* Client sends without a socket: the message's forms, the per-user rate,
 * and the notification the gateway publishes for them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client_msg.h"
#include "client_send.h"

static enum client_msg_type parse(const char *text, struct client_msg *m, char *err)
{
    return client_msg_parse(text, strlen(text), m, err, 160);
}

static void send_forms(void **state)
{
    (void)state;
    struct client_msg m;
    char err[160];
    assert_int_equal(parse("{\"type\":\"send\",\"toUser\":\"u2\",\"message\":\"hi\",\"data\":[1],"
                           "\"ref\":\"c-7\",\"from\":\"x\",\"id\":\"y\"}", &m, err),
                     CLIENT_MSG_SEND);
    assert_string_equal(m.ref, "c-7");
    assert_false(m.to_room);
    /* Only the audience, the message and data: "from" and "id" are not taken. */
    assert_string_equal(m.body, "{\"userId\":\"u2\",\"message\":\"hi\",\"data\":[1]}");
    free(m.body);
    assert_int_equal(parse("{\"type\":\"send\",\"toRoom\":\"ops\",\"message\":\"m\"}", &m, err),
                     CLIENT_MSG_SEND);
    assert_true(m.to_room);
    assert_string_equal(m.ref, "");
    free(m.body);
    /* Invalid ones are answered, never closed: body NULL, errstr says why,
     * and the ref is kept when it is valid. */
    static const struct {
        const char *text, *says, *ref;
    } bad[] = {
        {"{\"type\":\"send\",\"message\":\"m\",\"ref\":\"r1\"}", "\"toUser\" or \"toRoom\"", "r1"},
        {"{\"type\":\"send\",\"toUser\":\"a\",\"toRoom\":\"b\",\"message\":\"m\"}", "one of them", ""},
        {"{\"type\":\"send\",\"toUser\":5,\"message\":\"m\"}", "a string", ""},
        {"{\"type\":\"send\",\"toUser\":\"a\",\"ref\":\"r2\"}", "\"message\"", "r2"},
        {"{\"type\":\"send\",\"toUser\":\"a\",\"message\":\"m\",\"ref\":\"no spaces\"}", "\"ref\"", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i].text, &m, err), CLIENT_MSG_SEND);
        assert_null(m.body);
        assert_non_null(strstr(err, bad[i].says));
        assert_string_equal(m.ref, bad[i].ref);
    }
}

/* A bucket of rate, holding twice that, per user; full ones forgotten. */
static void the_rate_is_per_user_with_a_burst_of_twice_it(void **state)
{
    (void)state;
    send_limiter_t *l = send_limiter_new(2);
    for (int i = 0; i < 4; i++)
        assert_true(send_limiter_take(l, "a", 1000));
    assert_false(send_limiter_take(l, "a", 1000));
    assert_true(send_limiter_take(l, "b", 1000)); /* another user's own */
    assert_false(send_limiter_take(l, "a", 1400));
    assert_true(send_limiter_take(l, "a", 1500)); /* half a second: one more */
    assert_int_equal(send_limiter_users(l), 2);
    /* Three seconds later both are full again: forgotten at the next send. */
    assert_true(send_limiter_take(l, "c", 4600));
    assert_int_equal(send_limiter_users(l), 1);
    send_limiter_free(l);
}

static void the_gateway_names_the_id_the_sender_and_the_key(void **state)
{
    (void)state;
    char *value, key[NOTIF_ID_MAX + 1], id[NOTIF_ID_MAX + 1], err[160];
    size_t len;
    assert_int_equal(client_send_build("{\"userId\":\"u2\",\"message\":\"hi\"}", "u1", &value, &len,
                                       key, id, err, sizeof(err)),
                     0);
    assert_string_equal(key, "u2");
    assert_int_equal(strlen(id), 36); /* a UUIDv7 */
    assert_non_null(strstr(value, "\"from\":\"u1\""));
    assert_non_null(strstr(value, id));
    assert_int_equal(len, strlen(value));
    free(value);
    assert_int_equal(client_send_build("{\"userId\":\"u 2\",\"message\":\"hi\"}", "u1", &value,
                                       &len, key, id, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "\"userId\" must be"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(send_forms),
        cmocka_unit_test(the_rate_is_per_user_with_a_burst_of_twice_it),
        cmocka_unit_test(the_gateway_names_the_id_the_sender_and_the_key),
    };
    return cmocka_run_group_tests_name("client sends", tests, NULL, NULL);
}
