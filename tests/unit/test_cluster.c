/* The presence map: which live nodes hold a user, from heartbeats and
 * presence records, as every node reads them from <topic>.presence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cluster.h"

static void put(cluster_t *c, const char *key, const char *val, int64_t ts)
{
    assert_int_equal(cluster_apply(c, key, strlen(key), val, val ? strlen(val) : 0, ts), 0);
}

static void a_user_is_held_by_the_live_nodes_that_say_so_but_never_by_itself(void **state)
{
    (void)state;
    cluster_t *c = cluster_new("a", 10000);
    const char *out[4];
    put(c, "n a", "up 1", 1000);
    put(c, "n b", "up 2", 1000);
    put(c, "n c", "up 3", 1000);
    put(c, "u a alice", "1", 1000);
    put(c, "u b alice", "1", 1000);
    put(c, "u c alice", "1", 1000);
    put(c, "u c bob", "1", 1000);
    assert_int_equal(cluster_holders(c, "alice", out, 4), 2);
    assert_true((!strcmp(out[0], "b") && !strcmp(out[1], "c")) ||
                (!strcmp(out[0], "c") && !strcmp(out[1], "b")));
    assert_int_equal(cluster_holders(c, "bob", out, 4), 1);
    assert_string_equal(out[0], "c");
    assert_int_equal(cluster_holders(c, "nobody", out, 4), 0);
    assert_int_equal(cluster_holders(c, "alice", out, 1), 1); /* at most max */

    /* The last tab leaves: a tombstone. */
    put(c, "u b alice", NULL, 1500);
    assert_int_equal(cluster_holders(c, "alice", out, 4), 1);
    assert_string_equal(out[0], "c");
    put(c, "u c alice", NULL, 1500);
    assert_int_equal(cluster_holders(c, "alice", out, 4), 0);
    assert_int_equal(cluster_peers(c, out, 4), 2);
    cluster_free(c);
}

static void a_silent_or_stopped_node_holds_no_one(void **state)
{
    (void)state;
    cluster_t *c = cluster_new("a", 10000);
    const char *out[4];
    struct cluster_node_state st;
    put(c, "u b alice", "1", 1000); /* presence before any heartbeat: not live yet */
    assert_int_equal(cluster_holders(c, "alice", out, 4), 0);
    assert_int_equal(cluster_node_state(c, "b", &st), -1);
    put(c, "n b", "up first", 1000);
    put(c, "n a", "up mine", 10999);
    assert_int_equal(cluster_holders(c, "alice", out, 4), 1);
    /* Killed: the others' heartbeats go on, b's stopped live_ms before. */
    put(c, "n a", "up mine", 11000);
    assert_int_equal(cluster_holders(c, "alice", out, 4), 0);
    assert_int_equal(cluster_peers(c, out, 4), 0);
    /* Back with another incarnation; an older heartbeat read late changes nothing. */
    put(c, "n b", "up second", 12000);
    put(c, "n b", "up first", 5000);
    assert_int_equal(cluster_node_state(c, "b", &st), 0);
    assert_string_equal(st.incarnation, "second");
    assert_int_equal(st.last_ms, 12000);
    assert_int_equal(cluster_holders(c, "alice", out, 4), 1);
    /* Stopped cleanly. */
    put(c, "n b", "down second", 13000);
    assert_int_equal(cluster_holders(c, "alice", out, 4), 0);
    assert_int_equal(cluster_node_state(c, "b", &st), 0);
    assert_false(st.up);
    assert_false(cluster_node_up(c, "b"));
    /* Dead, so drained: by the lowest live id, within a window. */
    assert_int_equal(cluster_dead(c, 60000, out, 4), 1);
    assert_string_equal(out[0], "b");
    assert_true(cluster_lowest(c));
    put(c, "n 0", "up zero", 14000); /* "0" sorts before "a" */
    assert_false(cluster_lowest(c));
    put(c, "n a", "up mine", 73000);
    assert_int_equal(cluster_dead(c, 60000, out, 4), 1); /* "0", silent since 14000; b too old */
    assert_string_equal(out[0], "0");
    assert_true(cluster_lowest(c));
    cluster_free(c);
}

static void no_heartbeat_read_kills_no_one(void **state)
{
    (void)state;
    cluster_t *c = cluster_new("a", 10000);
    const char *out[4];
    put(c, "n a", "up mine", 1000);
    put(c, "n b", "up theirs", 1000);
    put(c, "u b alice", "1", 1000);
    /* An outage: nothing is read for a minute; the broker's clock, as far
     * as this node knows, has not moved, and neither has any node's. */
    assert_int_equal(cluster_holders(c, "alice", out, 4), 1);
    assert_int_equal(cluster_dead(c, 60000, out, 4), 0);
    /* Killed ones come before stopped ones. */
    put(c, "n c", "down gone", 1000);
    put(c, "n d", "up crashed", 1000);
    put(c, "n a", "up mine", 20000);
    put(c, "n b", "up theirs", 20000);
    assert_int_equal(cluster_dead(c, 60000, out, 4), 2);
    assert_string_equal(out[0], "d");
    assert_string_equal(out[1], "c");
    cluster_free(c);
}

static void collect(void *arg, const char *user)
{
    int *n = arg;
    assert_true(!strcmp(user, "x") || !strcmp(user, "y"));
    (*n)++;
}

static void a_nodes_users_can_be_listed_to_clear_them(void **state)
{
    (void)state;
    cluster_t *c = cluster_new("a", 10000);
    int n = 0;
    put(c, "u a x", "1", 1);
    put(c, "u a y", "1", 1);
    put(c, "u b z", "1", 1);
    cluster_each_user_of(c, "a", collect, &n);
    assert_int_equal(n, 2);
    cluster_free(c);
}

static void records_of_another_shape_are_refused(void **state)
{
    (void)state;
    cluster_t *c = cluster_new("a", 10000);
    const char *bad[][2] = {{"", "1"},          {"x a", "1"},        {"u a", "1"},
                            {"u  alice", "1"},  {"u a ", "1"},       {"n a b", "up 1"},
                            {"n b", "up"},      {"n b", "sideways 1"}, {"n b", "up "},
                            {"nb", "up 1"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cluster_apply(c, bad[i][0], strlen(bad[i][0]), bad[i][1],
                                       strlen(bad[i][1]), 1),
                         -1);
    char node[8], user[8];
    assert_int_equal(cluster_record_user("u n1 bob", 8, node, sizeof(node), user, sizeof(user)),
                     1);
    assert_string_equal(node, "n1");
    assert_string_equal(user, "bob");
    assert_int_equal(cluster_record_user("n n1", 4, node, 8, user, 8), 0);
    assert_int_equal(cluster_record_user("u n1", 4, node, 8, user, 8), 0);

    char key[16];
    assert_int_equal(cluster_user_key(key, sizeof(key), "node", "alice"), 12);
    assert_string_equal(key, "u node alice");
    assert_int_equal(cluster_user_key(key, sizeof(key), "node", "a-much-longer-user"), 0);
    assert_int_equal(cluster_node_key(key, sizeof(key), "node"), 6);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_user_is_held_by_the_live_nodes_that_say_so_but_never_by_itself),
        cmocka_unit_test(a_silent_or_stopped_node_holds_no_one),
        cmocka_unit_test(no_heartbeat_read_kills_no_one),
        cmocka_unit_test(a_nodes_users_can_be_listed_to_clear_them),
        cmocka_unit_test(records_of_another_shape_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
