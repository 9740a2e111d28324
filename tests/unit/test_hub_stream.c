/* Rooms and broadcast in the hub, without sockets: which tabs take a
 * stream notification, each user's cursor (out-of-order acks, type
 * filters), and the replay of what a user has not read. A recorder
 * stands in for the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "hub.h"

#define MAX 64

static struct {
    char loaded_streams[MAX][32];
    int nloads, nanswered; /* streams asked, and those answered */
    char fetch_stream[MAX][32];
    char fetch_user[MAX][32];
    int64_t fetch_after[MAX];
    uint64_t fetch_gen[MAX];
    int nfetches;
    char saved_stream[MAX][32];
    int64_t saved_seq[MAX];
    char saved_acked[MAX][128];
    int nsaved;
    int writes;
} rec;

static void want_write(void *ctx, void *t)
{
    (void)ctx;
    (void)t;
    rec.writes++;
}
static void store(void *ctx, const hub_msg_t *m) { (void)ctx; (void)m; }
static void fetch(void *ctx, const char *u, int64_t a, size_t l, uint64_t g)
{
    (void)ctx; (void)u; (void)a; (void)l; (void)g;
}
static void removed(void *ctx, const char *u, const char *id) { (void)ctx; (void)u; (void)id; }
static void offset_done(void *ctx, int32_t p, int64_t o) { (void)ctx; (void)p; (void)o; }
static void closed(void *ctx, void *t) { (void)ctx; (void)t; }

static void cursor_load(void *ctx, const char *user, const char *const *streams, size_t n)
{
    (void)ctx;
    (void)user;
    for (size_t i = 0; i < n; i++)
        snprintf(rec.loaded_streams[rec.nloads++], 32, "%s", streams[i]);
}

static void stream_fetch(void *ctx, const char *user, const char *stream, int64_t after,
                         size_t limit, uint64_t gen)
{
    (void)ctx;
    (void)limit;
    snprintf(rec.fetch_user[rec.nfetches], 32, "%s", user);
    snprintf(rec.fetch_stream[rec.nfetches], 32, "%s", stream);
    rec.fetch_after[rec.nfetches] = after;
    rec.fetch_gen[rec.nfetches++] = gen;
}

static void cursor_save(void *ctx, const char *user, const hub_cursor_t *c)
{
    (void)ctx;
    (void)user;
    snprintf(rec.saved_stream[rec.nsaved], 32, "%s", c->stream);
    snprintf(rec.saved_acked[rec.nsaved], 128, "%s", c->acked);
    rec.saved_seq[rec.nsaved++] = c->acked_seq;
}

static hub_t *new_hub(size_t window)
{
    memset(&rec, 0, sizeof(rec));
    struct hub_ops ops = {.ctx = &rec,
                          .want_write = want_write,
                          .store = store,
                          .fetch = fetch,
                          .remove = removed,
                          .offset_done = offset_done,
                          .closed = closed,
                          .cursor_load = cursor_load,
                          .stream_fetch = stream_fetch,
                          .cursor_save = cursor_save};
    struct hub_limits lim = {.window = window, .window_bytes = 1 << 20, .ack_timeout_ms = 1000,
                             .conns_per_user = 3, .fetch_batch = 10, .frame_headroom = 16};
    return hub_new(&ops, &lim);
}

/* A stream notification as the codec renders it: no "userId". */
static hub_msg_t smsg(const char *stream, const char *id, int64_t seq, const char *type)
{
    static char frames[MAX][128];
    static int next;
    char *f = frames[next++ % MAX];
    snprintf(f, 128, "{\"id\":\"%s\",\"message\":\"m\",\"type\":\"%s\"}", id, type);
    return (hub_msg_t){.id = id, .frame = f, .frame_len = strlen(f), .seq = seq,
                       .partition = -1, .offset = -1, .stream = stream, .type = type};
}

static const char *next_frame(hub_t *hub, hub_conn_t *c)
{
    size_t len;
    char *f = hub_next_frame(c, &len);
    if (f)
        hub_frame_sent(hub, c, 0);
    return f;
}

/* user's last fetch of stream, answered with msgs. */
static void answer(hub_t *hub, const char *user, const char *stream, const hub_msg_t *msgs,
                   size_t n)
{
    for (int i = rec.nfetches - 1; i >= 0; i--) {
        if (strcmp(rec.fetch_stream[i], stream) == 0 && strcmp(rec.fetch_user[i], user) == 0) {
            hub_stream_fetch_done(hub, user, stream, rec.fetch_gen[i], msgs, n, 0);
            return;
        }
    }
    fail_msg("no fetch of %s", stream);
}

/* Answers the cursor loads not answered yet, with cursors (the rest: none). */
static void loaded(hub_t *hub, const char *user, const hub_cursor_t *cursors, size_t n)
{
    const char *asked[MAX];
    size_t nasked = 0;
    while (rec.nanswered < rec.nloads)
        asked[nasked++] = rec.loaded_streams[rec.nanswered++];
    hub_cursors_loaded(hub, user, asked, nasked, cursors, n);
}

/* Connects user, subscribed to rooms, answers the cursors (none) and the
 * personal replay; then every stream's first read, empty. */
static hub_conn_t *online(hub_t *hub, const char *user, int *t, const char *const *rooms,
                          size_t nrooms, const char *const *types, size_t ntypes)
{
    hub_conn_t *c = hub_connect(hub, user, t);
    hub_fetch_done(hub, user, 1, NULL, 0, 0); /* nothing stored for the user */
    hub_subscribe(hub, c, rooms, nrooms, types, ntypes);
    loaded(hub, user, NULL, 0);
    return c;
}

static void a_room_reaches_the_tabs_in_it_each_with_its_user(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    const char *rooms[] = {"ops"};
    hub_conn_t *in = online(hub, "u1", &t1, rooms, 1, NULL, 0);
    answer(hub, "u1", "room:ops", NULL, 0);
    answer(hub, "u1", "broadcast", NULL, 0);
    hub_conn_t *out = online(hub, "u1", &t2, NULL, 0, NULL, 0);
    answer(hub, "u1", "broadcast", NULL, 0);
    hub_msg_t m = smsg("room:ops", "r1", 10, "");
    hub_publish_stream(hub, &m);
    const char *f = next_frame(hub, in);
    assert_non_null(f);
    assert_string_equal(f, "{\"id\":\"r1\",\"userId\":\"u1\",\"message\":\"m\",\"type\":\"\"}");
    assert_null(next_frame(hub, out));
    /* Acked: the cursor moves, kept at most once a second. */
    assert_int_equal(hub_ack(hub, in, "r1"), 0);
    hub_tick(hub, 500);
    hub_tick(hub, 5000);
    assert_int_equal(rec.nsaved, 1);
    assert_string_equal(rec.saved_stream[0], "room:ops");
    assert_int_equal(rec.saved_seq[0], 10);
    hub_free(hub);
}

/* Ack 1, 3, 5 of 5 across two tabs, reconnect: exactly 2 and 4 return. */
static void out_of_order_acks_leave_exactly_the_unread(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *a = online(hub, "u2", &t1, NULL, 0, NULL, 0);
    hub_conn_t *b = online(hub, "u2", &t2, NULL, 0, NULL, 0);
    static const char *ids[] = {"b1", "b2", "b3", "b4", "b5"};
    hub_msg_t all[5];
    for (int i = 0; i < 5; i++)
        all[i] = smsg("broadcast", ids[i], i + 1, "");
    answer(hub, "u2", "broadcast", all, 5); /* a never-seen user: from the oldest */
    for (int i = 0; i < 5; i++) {
        assert_non_null(strstr(next_frame(hub, a), ids[i]));
        assert_non_null(strstr(next_frame(hub, b), "replayed"));
    }
    assert_int_equal(hub_ack(hub, a, "b1"), 0);
    assert_int_equal(hub_ack(hub, b, "b3"), 0);
    assert_int_equal(hub_ack(hub, a, "b5"), 0);
    hub_disconnect(hub, a);
    hub_disconnect(hub, b); /* offline: the cursor is kept */
    assert_int_equal(rec.nsaved, 1);
    assert_int_equal(rec.saved_seq[0], 1);
    assert_string_equal(rec.saved_acked[0], "3/b3 5/b5");

    int t3;
    hub_conn_t *c = hub_connect(hub, "u2", &t3);
    hub_fetch_done(hub, "u2", rec.fetch_gen[0], NULL, 0, 0);
    hub_subscribe(hub, c, NULL, 0, NULL, 0);
    hub_cursor_t cur = {"broadcast", rec.saved_seq[0], rec.saved_acked[0]};
    loaded(hub, "u2", &cur, 1);
    assert_int_equal(rec.fetch_after[rec.nfetches - 1], 1);
    answer(hub, "u2", "broadcast", all + 1, 4);
    assert_non_null(strstr(next_frame(hub, c), "\"b2\""));
    assert_non_null(strstr(next_frame(hub, c), "\"b4\""));
    assert_null(next_frame(hub, c));
    hub_free(hub);
}

/* Types filter rooms and broadcast: what no tab takes is read as if
 * acknowledged; a tab without a filter takes every type. */
static void what_no_tab_takes_moves_the_cursor(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t;
    const char *types[] = {"alert"}, *rooms[] = {"news"};
    hub_conn_t *c = online(hub, "u3", &t, rooms, 1, types, 1);
    answer(hub, "u3", "room:news", NULL, 0);
    hub_msg_t chat = smsg("room:news", "c1", 20, "chat"), alert = smsg("room:news", "a1", 21, "alert");
    hub_publish_stream(hub, &chat);
    hub_publish_stream(hub, &alert);
    assert_non_null(strstr(next_frame(hub, c), "\"a1\""));
    assert_null(next_frame(hub, c));
    assert_int_equal(hub_ack(hub, c, "a1"), 0);
    hub_disconnect(hub, c);
    assert_int_equal(rec.saved_seq[rec.nsaved - 1], 21);
    hub_free(hub);
}

/* A live one that no window has room for is read from the store once
 * an ack makes room, in order; one arriving during that read is reached
 * by it. */
static void full_windows_read_from_the_store(void **state)
{
    (void)state;
    hub_t *hub = new_hub(1);
    int t;
    const char *rooms[] = {"news"};
    hub_conn_t *c = online(hub, "u4", &t, rooms, 1, NULL, 0);
    answer(hub, "u4", "room:news", NULL, 0);
    hub_msg_t m1 = smsg("room:news", "w1", 30, ""), m2 = smsg("room:news", "w2", 31, "");
    hub_publish_stream(hub, &m1);
    int fetches = rec.nfetches;
    hub_publish_stream(hub, &m2); /* the window of 1 is full */
    assert_int_equal(rec.nfetches, fetches); /* no room to read into yet */
    assert_non_null(next_frame(hub, c));
    assert_int_equal(hub_ack(hub, c, "w1"), 0);
    assert_int_equal(rec.nfetches, fetches + 1);
    assert_int_equal(rec.fetch_after[fetches], 30);
    answer(hub, "u4", "room:news", &m2, 1);
    assert_non_null(strstr(next_frame(hub, c), "\"w2\""));
    hub_free(hub);
}

/* With no broadcast stored at all, an idle user holds no state for it;
 * the first broadcast reads it from the cursor (it is durable by then). */
static void with_no_broadcast_stored_idle_users_keep_no_state_for_it(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *a = online(hub, "u5", &t1, NULL, 0, NULL, 0);
    answer(hub, "u5", "broadcast", NULL, 0); /* none stored */
    int loads = rec.nloads;
    hub_conn_t *b = online(hub, "u6", &t2, NULL, 0, NULL, 0); /* not even asked */
    assert_int_equal(rec.nloads, loads);
    hub_msg_t m = smsg("broadcast", "first", 40, "");
    hub_publish_stream(hub, &m);
    assert_int_equal(rec.nloads, loads + 2); /* both read it from their cursors */
    const char *bc[] = {"broadcast"};
    hub_cursors_loaded(hub, "u5", bc, 1, NULL, 0);
    hub_cursors_loaded(hub, "u6", bc, 1, NULL, 0);
    answer(hub, "u5", "broadcast", &m, 1);
    answer(hub, "u6", "broadcast", &m, 1);
    assert_non_null(strstr(next_frame(hub, a), "\"userId\":\"u5\""));
    assert_non_null(strstr(next_frame(hub, b), "\"userId\":\"u6\""));
    hub_free(hub);
}

/* Room is counted in the tabs that take the type: one that would not
 * take it does not make it "handed" while the tab that would is full. */
static void only_tabs_that_take_a_type_count_as_room(void **state)
{
    (void)state;
    hub_t *hub = new_hub(1);
    int t1, t2;
    const char *rooms[] = {"news"}, *chat[] = {"chat"};
    hub_conn_t *picky = online(hub, "u7", &t1, rooms, 1, chat, 1);
    hub_conn_t *all = online(hub, "u7", &t2, rooms, 1, NULL, 0);
    answer(hub, "u7", "room:news", NULL, 0);
    hub_msg_t first = smsg("room:news", "n0", 50, "x"), alert = smsg("room:news", "n1", 51, "alert");
    hub_publish_stream(hub, &first); /* fills the window of the tab that takes every type */
    int fetches = rec.nfetches;
    hub_publish_stream(hub, &alert);
    assert_null(next_frame(hub, picky));
    /* Not handed: read from the store once there is room. */
    assert_non_null(strstr(next_frame(hub, all), "\"n0\""));
    assert_int_equal(hub_ack(hub, all, "n0"), 0);
    assert_int_equal(rec.nfetches, fetches + 1);
    assert_int_equal(rec.fetch_after[fetches], 50);
    answer(hub, "u7", "room:news", &alert, 1);
    assert_non_null(strstr(next_frame(hub, all), "\"n1\""));
    hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_room_reaches_the_tabs_in_it_each_with_its_user),
        cmocka_unit_test(out_of_order_acks_leave_exactly_the_unread),
        cmocka_unit_test(what_no_tab_takes_moves_the_cursor),
        cmocka_unit_test(full_windows_read_from_the_store),
        cmocka_unit_test(with_no_broadcast_stored_idle_users_keep_no_state_for_it),
        cmocka_unit_test(only_tabs_that_take_a_type_count_as_room),
    };
    return cmocka_run_group_tests_name("hub streams", tests, NULL, NULL);
}
