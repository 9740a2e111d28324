/* The delivery rules of the hub, driven without sockets: a recorder stands
 * in for the world (connections, store, Kafka) and the tests check what the
 * hub asked of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "hub.h"

#define MAX_EVENTS 256

struct rec {
    char stored[MAX_EVENTS][64];
    int64_t stored_offset[MAX_EVENTS];
    int64_t stored_expires[MAX_EVENTS];
    int nstored;
    char fetched_user[MAX_EVENTS][32];
    int64_t fetched_after[MAX_EVENTS];
    size_t fetched_limit[MAX_EVENTS];
    uint64_t fetched_gen[MAX_EVENTS];
    int nfetched;
    char removed[MAX_EVENTS][64];
    int nremoved;
    int64_t done[MAX_EVENTS];
    int ndone;
    int writes;
    int closed;
    int events[4]; /* by enum event_kind */
    void *told[MAX_EVENTS]; /* transports told "acked" */
    char told_id[MAX_EVENTS][64];
    int ntold;
    char presence[MAX_EVENTS][40]; /* "+user" online, "-user" offline */
    int npresence;
};

static void want_write(void *ctx, void *t)
{
    (void)t;
    ((struct rec *)ctx)->writes++;
}

static void store(void *ctx, const hub_msg_t *m)
{
    struct rec *r = ctx;
    snprintf(r->stored[r->nstored], 64, "%s", m->id);
    r->stored_expires[r->nstored] = m->expires_ms;
    r->stored_offset[r->nstored++] = m->offset;
}

static void fetch(void *ctx, const char *user, int64_t after, size_t limit, uint64_t gen)
{
    struct rec *r = ctx;
    snprintf(r->fetched_user[r->nfetched], 32, "%s", user);
    r->fetched_after[r->nfetched] = after;
    r->fetched_limit[r->nfetched] = limit;
    r->fetched_gen[r->nfetched++] = gen;
}

static void removed(void *ctx, const char *user, const char *id)
{
    (void)user;
    struct rec *r = ctx;
    snprintf(r->removed[r->nremoved++], 64, "%s", id);
}

static void offset_done(void *ctx, int32_t p, int64_t o)
{
    (void)p;
    struct rec *r = ctx;
    r->done[r->ndone++] = o;
}

static void closed(void *ctx, void *t)
{
    (void)t;
    ((struct rec *)ctx)->closed++;
}

static void event(void *ctx, enum event_kind kind, const hub_msg_t *m)
{
    (void)m;
    ((struct rec *)ctx)->events[kind]++;
}

static void acked(void *ctx, void *t, const char *id)
{
    struct rec *r = ctx;
    snprintf(r->told_id[r->ntold], 64, "%s", id);
    r->told[r->ntold++] = t;
}

static void presence(void *ctx, const char *user, int online)
{
    struct rec *r = ctx;
    snprintf(r->presence[r->npresence++], 40, "%c%s", online ? '+' : '-', user);
}

static struct rec rec;

/* held: live notifications held per user (0: straight to the store). */
static hub_t *new_hub_holding(size_t window, size_t held, budget_t *budget)
{
    memset(&rec, 0, sizeof(rec));
    struct hub_ops ops = {&rec,   want_write, store, fetch, removed, offset_done,
                          closed, event,      acked, NULL,  NULL,    NULL, presence};
    struct hub_limits lim = {
        .window = window,
        .window_bytes = 1 << 20,
        .ack_timeout_ms = 1000,
        .conns_per_user = 3,
        .fetch_batch = 10,
        .frame_headroom = 16,
        .held_per_user = held,
        .budget = budget,
    };
    return hub_new(&ops, &lim);
}

static hub_t *new_hub(size_t window)
{
    return new_hub_holding(window, 0, NULL);
}

static hub_msg_t msg(const char *id, const char *user, int64_t offset)
{
    static char frames[64][128];
    static int next;
    char *f = frames[next++ % 64];
    snprintf(f, 128, "{\"id\":\"%s\",\"userId\":\"%s\",\"message\":\"m\"}", id, user);
    return (hub_msg_t){.id = id, .user = user, .frame = f, .frame_len = strlen(f),
                       .offset = offset};
}

/* The store's answer: nothing stored for the user. */
static void answer_empty(hub_t *hub, const char *user)
{
    int i = rec.nfetched - 1;
    assert_true(i >= 0);
    hub_fetch_done(hub, user, rec.fetched_gen[i], NULL, 0, 0);
}

static const char *next_frame(hub_t *hub, hub_conn_t *c)
{
    size_t len;
    char *f = hub_next_frame(c, &len);
    if (f)
        hub_frame_sent(hub, c, 0);
    return f;
}

static void offline_user_is_stored(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    hub_msg_t m = msg("n1", "alice", 5);
    hub_publish(hub, &m);
    assert_int_equal(rec.nstored, 1);
    assert_string_equal(rec.stored[0], "n1");
    assert_int_equal(rec.stored_offset[0], 5);
    assert_int_equal(rec.ndone, 0); /* done only once the store says so */
    hub_free(hub);
}

static void connect_replays_before_live(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t;
    hub_conn_t *c = hub_connect(hub, "alice", &t);
    assert_non_null(c);
    assert_int_equal(rec.nfetched, 1);
    assert_int_equal(rec.fetched_after[0], 0);
    assert_true(hub_user_replaying(hub, "alice"));

    /* While the replay is outstanding, a live one waits in the store. */
    hub_msg_t live = msg("n2", "alice", 9);
    hub_publish(hub, &live);
    assert_int_equal(rec.nstored, 1);

    /* The fetch answered before the store write: the hub asks again. */
    answer_empty(hub, "alice");
    assert_int_equal(rec.nfetched, 2);
    assert_true(hub_user_replaying(hub, "alice"));

    hub_msg_t stored[2] = {msg("n1", "alice", -1), msg("n2", "alice", -1)};
    stored[0].seq = 100;
    stored[1].seq = 200;
    hub_fetch_done(hub, "alice", rec.fetched_gen[1], stored, 2, 2 >= rec.fetched_limit[1]);
    assert_non_null(strstr(next_frame(hub, c), "\"id\":\"n1\""));
    const char *f2 = next_frame(hub, c);
    assert_non_null(strstr(f2, "\"id\":\"n2\""));
    assert_non_null(strstr(f2, "\"replayed\":true}"));
    assert_null(next_frame(hub, c));

    /* Fewer than asked, and nothing stored since the question: caught up. */
    assert_int_equal(rec.nfetched, 2);
    assert_false(hub_user_replaying(hub, "alice"));

    /* Caught up: live delivery again, with no store write. */
    hub_msg_t n3 = msg("n3", "alice", 10);
    hub_publish(hub, &n3);
    assert_int_equal(rec.nstored, 1);
    assert_non_null(strstr(next_frame(hub, c), "n3"));
    hub_free(hub);
}

static hub_conn_t *online(hub_t *hub, const char *user, void *t)
{
    hub_conn_t *c = hub_connect(hub, user, t);
    answer_empty(hub, user);
    return c;
}

static void ack_of_live_completes_its_offset(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t;
    hub_conn_t *c = online(hub, "bob", &t);
    hub_msg_t m = msg("x1", "bob", 42);
    hub_publish(hub, &m);
    next_frame(hub, c);
    assert_int_equal(hub_inflight_count(hub), 1);
    assert_int_equal(hub_ack(hub, c, "x1"), 0);
    assert_int_equal(rec.ndone, 1);
    assert_int_equal(rec.done[0], 42);
    assert_int_equal(hub_inflight_count(hub), 0);
    assert_int_equal(rec.nstored, 0);
    /* A second ack of the same id does nothing. */
    assert_int_equal(hub_ack(hub, c, "x1"), -1);
    assert_int_equal(rec.ndone, 1);
    hub_free(hub);
}

static void ack_of_replayed_removes_it_from_the_store(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t;
    hub_conn_t *c = hub_connect(hub, "bob", &t);
    hub_msg_t s = msg("old", "bob", -1);
    s.seq = 7;
    s.partition = -1;
    hub_fetch_done(hub, "bob", rec.fetched_gen[0], &s, 1, 1 >= rec.fetched_limit[0]);
    next_frame(hub, c);
    assert_int_equal(hub_ack(hub, c, "old"), 0);
    assert_int_equal(rec.nremoved, 1);
    assert_string_equal(rec.removed[0], "old");
    assert_int_equal(rec.ndone, 0);
    hub_free(hub);
}

static void closing_unacked_stores_live_ones(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t;
    hub_conn_t *c = online(hub, "carol", &t);
    hub_msg_t a = msg("a", "carol", 1), b = msg("b", "carol", 2);
    hub_publish(hub, &a);
    hub_publish(hub, &b);
    next_frame(hub, c);
    hub_ack(hub, c, "a");
    hub_disconnect(hub, c);
    /* "a" was acknowledged; "b" was not and is kept for later. */
    assert_int_equal(rec.nstored, 1);
    assert_string_equal(rec.stored[0], "b");
    assert_int_equal(rec.stored_offset[0], 2);
    assert_int_equal(hub_user_count(hub), 0);
    assert_int_equal(hub_inflight_count(hub), 0);
    hub_free(hub);
}

static void every_tab_gets_it_and_one_ack_is_enough(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *c1 = online(hub, "dave", &t1);
    hub_conn_t *c2 = online(hub, "dave", &t2);
    hub_msg_t m = msg("m1", "dave", 3);
    hub_publish(hub, &m);
    assert_non_null(next_frame(hub, c1));
    assert_non_null(next_frame(hub, c2));
    assert_int_equal(hub_ack(hub, c2, "m1"), 0);
    assert_int_equal(rec.ndone, 1);
    /* The other tab closing without an ack stores nothing: it was delivered. */
    hub_disconnect(hub, c1);
    assert_int_equal(rec.nstored, 0);
    hub_disconnect(hub, c2);
    hub_free(hub);
}

/* An ack is the user's read mark: the first one releases the notification
 * in every tab at once; those it was written to are told, one that had it
 * queued only lets it go; a second ack of it is ignored. */
static void the_first_ack_releases_it_in_every_tab(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2, t3;
    hub_conn_t *c1 = online(hub, "erin", &t1);
    hub_conn_t *c2 = online(hub, "erin", &t2);
    hub_conn_t *c3 = online(hub, "erin", &t3);
    hub_msg_t m = msg("r1", "erin", 3);
    hub_publish(hub, &m);
    assert_non_null(next_frame(hub, c1));
    assert_non_null(next_frame(hub, c2)); /* c3 has it queued, not written */
    assert_int_equal(hub_inflight_count(hub), 1);
    assert_int_equal(hub_ack(hub, c1, "r1"), 0);
    assert_int_equal(rec.ndone, 1);
    assert_int_equal(rec.ntold, 1);
    assert_ptr_equal(rec.told[0], &t2);
    assert_string_equal(rec.told_id[0], "r1");
    assert_int_equal(hub_inflight_count(hub), 0); /* no tab holds it */
    assert_null(next_frame(hub, c3));
    assert_int_equal(hub_ack(hub, c2, "r1"), -1);
    /* Over HTTP too: every tab that was written it is told. */
    hub_msg_t m2 = msg("r2", "erin", 4);
    hub_publish(hub, &m2);
    assert_non_null(next_frame(hub, c1));
    assert_non_null(next_frame(hub, c3));
    assert_int_equal(hub_ack_user(hub, "erin", "r2"), 1);
    assert_int_equal(rec.ntold, 3);
    assert_int_equal(hub_inflight_count(hub), 0);
    hub_disconnect(hub, c1);
    hub_disconnect(hub, c2);
    hub_disconnect(hub, c3);
    assert_int_equal(rec.nstored, 0);
    hub_free(hub);
}

static void no_user_sees_another_users_notification(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *alice = online(hub, "alice", &t1);
    hub_conn_t *eve = online(hub, "eve", &t2);
    hub_msg_t m = msg("secret", "alice", 1);
    hub_publish(hub, &m);
    assert_null(next_frame(hub, eve));
    /* Nor can eve acknowledge it away. */
    assert_int_equal(hub_ack(hub, eve, "secret"), -1);
    assert_int_equal(rec.ndone, 0);
    assert_non_null(next_frame(hub, alice));
    hub_free(hub);
}

static void full_window_sends_to_the_store_then_replays(void **state)
{
    (void)state;
    hub_t *hub = new_hub(2);
    int t;
    hub_conn_t *c = online(hub, "erin", &t);
    hub_msg_t a = msg("a", "erin", 1), b = msg("b", "erin", 2), d = msg("d", "erin", 3);
    hub_publish(hub, &a);
    hub_publish(hub, &b);
    int fetches = rec.nfetched;
    hub_publish(hub, &d); /* window of 2 is full */
    assert_int_equal(rec.nstored, 1);
    assert_string_equal(rec.stored[0], "d");
    assert_true(hub_user_replaying(hub, "erin"));
    assert_int_equal(rec.nfetched, fetches); /* no room to replay into yet */
    next_frame(hub, c);
    next_frame(hub, c);
    hub_ack(hub, c, "a");
    assert_int_equal(rec.nfetched, fetches + 1);
    assert_int_equal(rec.fetched_limit[fetches], 1);
    hub_free(hub);
}

static void ack_timeout_releases_to_the_store(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t;
    hub_conn_t *c = online(hub, "frank", &t);
    hub_msg_t m = msg("slow", "frank", 11);
    m.expires_ms = 4102444800000; /* 2100: goes to the store with it */
    hub_publish(hub, &m);
    size_t len;
    hub_next_frame(c, &len);
    hub_frame_sent(hub, c, 5000);
    hub_tick(hub, 5500);
    assert_int_equal(rec.nstored, 0);
    int fetches = rec.nfetched;
    hub_tick(hub, 6000);
    assert_int_equal(rec.nstored, 1);
    assert_string_equal(rec.stored[0], "slow");
    assert_true(rec.stored_expires[0] == 4102444800000);
    assert_int_equal(hub_inflight_count(hub), 0);
    /* It is sent again from the store, ahead of anything newer. */
    assert_int_equal(rec.nfetched, fetches + 1);
    assert_int_equal(rec.fetched_after[fetches], 0);
    assert_true(hub_user_replaying(hub, "frank"));
    hub_msg_t newer = msg("newer", "frank", 12);
    hub_publish(hub, &newer);
    assert_int_equal(rec.nstored, 2);
    hub_free(hub);
}

static void per_user_connection_limit(void **state)
{
    (void)state;
    hub_t *hub = new_hub(4);
    int t[4];
    for (int i = 0; i < 3; i++)
        assert_non_null(hub_connect(hub, "gina", &t[i]));
    assert_null(hub_connect(hub, "gina", &t[3]));
    assert_int_equal(hub_conn_count(hub), 3);
    hub_disconnect_all(hub);
    assert_int_equal(rec.closed, 3);
    assert_int_equal(hub_conn_count(hub), 0);
    hub_free(hub);
}

static void redelivered_copy_in_flight_goes_to_the_store(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t;
    online(hub, "hal", &t);
    hub_msg_t m1 = msg("dup", "hal", 1), m2 = msg("dup", "hal", 7);
    hub_publish(hub, &m1);
    hub_publish(hub, &m2);
    assert_int_equal(rec.nstored, 1);
    assert_int_equal(rec.stored_offset[0], 7);
    hub_free(hub);
}

/* A store read asked for by a connection that has since closed must not be
 * taken for the answer to the user's next connection's read (issue 9,
 * defect 3): the stale, short answer would end the new replay early, and
 * live notifications would overtake what is stored. */
static void a_late_read_from_a_closed_connection_is_ignored(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *c1 = hub_connect(hub, "erin", &t1);
    uint64_t stale_gen = rec.fetched_gen[0];
    size_t stale_limit = rec.fetched_limit[0];
    hub_disconnect(hub, c1);
    hub_conn_t *c2 = hub_connect(hub, "erin", &t2);
    assert_int_equal(rec.nfetched, 2);

    /* The first connection's read answers late, with nothing. */
    hub_fetch_done(hub, "erin", stale_gen, NULL, 0, 0 >= stale_limit);
    assert_true(hub_user_replaying(hub, "erin"));
    hub_msg_t live = msg("live", "erin", 7);
    hub_publish(hub, &live);
    assert_int_equal(rec.nstored, 1); /* waits behind what is stored */
    assert_null(next_frame(hub, c2));

    /* The real answer: the stored one comes first, then the live one. */
    hub_msg_t old = msg("old", "erin", -1);
    old.seq = 5;
    hub_fetch_done(hub, "erin", rec.fetched_gen[1], &old, 1, 1 >= rec.fetched_limit[1]);
    assert_non_null(strstr(next_frame(hub, c2), "\"id\":\"old\""));
    hub_free(hub);
}

/* What a closing tab held unacknowledged goes to the user's other open
 * tabs, not only to their next connection (issue 9, defect 4). */
static void a_closing_tab_passes_what_it_held_to_the_others(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *c1 = online(hub, "fay", &t1);
    hub_msg_t n = msg("n", "fay", 11);
    hub_publish(hub, &n);
    assert_non_null(next_frame(hub, c1));
    hub_conn_t *c2 = online(hub, "fay", &t2); /* came later: "n" was in flight */
    assert_null(next_frame(hub, c2));
    int asked = rec.nfetched;

    hub_disconnect(hub, c1);
    assert_int_equal(rec.nstored, 1);
    assert_string_equal(rec.stored[0], "n");
    /* The other tab replays it from the store at once. */
    assert_int_equal(rec.nfetched, asked + 1);
    assert_int_equal(rec.fetched_after[asked], 0);
    hub_msg_t stored = msg("n", "fay", -1);
    stored.seq = 1;
    hub_fetch_done(hub, "fay", rec.fetched_gen[asked], &stored, 1, 1 >= rec.fetched_limit[asked]);
    assert_non_null(strstr(next_frame(hub, c2), "\"id\":\"n\""));
    hub_free(hub);
}

/* A replay that restarts while its read is out (a second tab connects)
 * asks again once that read answers: the user is not left without reads. */
static void a_tab_joining_during_a_read_does_not_stall_the_replay(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *c1 = hub_connect(hub, "gus", &t1);
    hub_conn_t *c2 = hub_connect(hub, "gus", &t2); /* the first read is still out */
    assert_int_equal(rec.nfetched, 1);
    answer_empty(hub, "gus"); /* the first read's answer, for the old replay */
    assert_int_equal(rec.nfetched, 2);
    assert_int_equal(rec.fetched_after[1], 0);
    hub_msg_t old = msg("old", "gus", -1);
    old.seq = 3;
    hub_fetch_done(hub, "gus", rec.fetched_gen[1], &old, 1, 1 >= rec.fetched_limit[1]);
    assert_non_null(strstr(next_frame(hub, c1), "old"));
    assert_non_null(strstr(next_frame(hub, c2), "old"));
    assert_false(hub_user_replaying(hub, "gus"));
    hub_msg_t live = msg("live", "gus", 4);
    hub_publish(hub, &live);
    assert_non_null(strstr(next_frame(hub, c1), "live"));
    hub_free(hub);
}

/* One tab that neither reads nor acknowledges does not hold back the
 * user's other tabs (the reliability issue's defect 5): each connection
 * has its own window, a full one is passed over, and a notification one
 * tab acknowledges is complete for the user. */
static void a_stalled_tab_does_not_hold_back_the_others(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8);
    int t1, t2;
    hub_conn_t *stalled = online(hub, "hal", &t1);
    hub_conn_t *healthy = online(hub, "hal", &t2);
    char ids[30][16];
    for (int i = 0; i < 30; i++) {
        snprintf(ids[i], sizeof(ids[i]), "n%02d", i);
        hub_msg_t m = msg(ids[i], "hal", 100 + i);
        hub_publish(hub, &m);
        const char *f = next_frame(hub, healthy);
        assert_non_null(f);
        assert_non_null(strstr(f, ids[i]));
        assert_int_equal(hub_ack(hub, healthy, ids[i]), 0);
    }
    assert_int_equal(rec.ndone, 30); /* every offset completes */
    assert_int_equal(rec.nstored, 0); /* nothing waited in the store */
    /* The healthy tab's acks let the stalled one go of each as well: it
     * holds nothing acknowledged (an ack of its own now is ignored), only
     * what came after, queued up to its window and never written. */
    assert_int_equal(hub_ack(hub, stalled, "n07"), -1);
    assert_int_equal(rec.ntold, 0); /* it was written none of them */
    assert_int_equal(hub_inflight_count(hub), 0);
    hub_free(hub);
}

/* Live notifications that arrive during a replay wait in memory, not in
 * the store, and follow the replayed ones in order. */
static void live_during_a_replay_is_held_then_follows_it(void **state)
{
    (void)state;
    hub_t *hub = new_hub_holding(8, 4, NULL);
    int t;
    hub_conn_t *c = hub_connect(hub, "hana", &t);
    hub_msg_t live = msg("live", "hana", 9);
    hub_publish(hub, &live);
    assert_int_equal(rec.nstored, 0);
    assert_null(next_frame(hub, c)); /* not before the stored one */

    hub_msg_t old = msg("old", "hana", -1);
    old.seq = 1;
    hub_fetch_done(hub, "hana", rec.fetched_gen[0], &old, 1, 0);
    assert_false(hub_user_replaying(hub, "hana"));
    assert_non_null(strstr(next_frame(hub, c), "\"id\":\"old\""));
    const char *f = next_frame(hub, c);
    assert_non_null(strstr(f, "\"id\":\"live\""));
    assert_null(strstr(f, "replayed"));
    assert_int_equal(hub_ack(hub, c, "live"), 0);
    assert_int_equal(rec.ndone, 1);
    assert_int_equal(rec.done[0], 9);
    assert_int_equal(rec.nstored, 0);
    hub_free(hub);
}

static void count_pending(void *arg, const hub_msg_t *m)
{
    (void)m;
    (*(int *)arg)++;
}

/* Acknowledgements over HTTP: a held one completes and is never pushed; a
 * pushed one completes once, however often it is acknowledged; a replayed
 * one is removed from the store; "all" takes what is at or below a seq. */
static void acks_from_outside_a_connection(void **state)
{
    (void)state;
    hub_t *hub = new_hub_holding(8, 4, NULL);
    int t, pending = 0;
    hub_conn_t *c = hub_connect(hub, "jo", &t);
    hub_msg_t held = msg("held", "jo", 7), held2 = msg("held2", "jo", 8);
    hub_publish(hub, &held); /* held: the replay has not answered */
    hub_publish(hub, &held2);
    hub_each_pending(hub, "jo", INT64_MAX, count_pending, &pending);
    assert_int_equal(pending, 2);
    assert_int_equal(hub_ack_user(hub, "jo", "held"), 1);
    assert_int_equal(rec.ndone, 1);
    assert_int_equal(rec.done[0], 7);
    assert_int_equal(hub_ack_user(hub, "jo", "held"), 0);

    hub_msg_t old = msg("old", "jo", -1);
    old.seq = 1;
    hub_fetch_done(hub, "jo", rec.fetched_gen[0], &old, 1, 0);
    assert_non_null(strstr(next_frame(hub, c), "\"id\":\"old\""));
    assert_non_null(strstr(next_frame(hub, c), "\"id\":\"held2\""));
    assert_null(next_frame(hub, c)); /* "held" was acknowledged: never pushed */

    assert_int_equal(hub_ack_user(hub, "jo", "old"), 1);
    assert_int_equal(rec.nremoved, 1);
    assert_string_equal(rec.removed[0], "old");
    assert_int_equal(rec.ntold, 1); /* the tab it was written to */
    assert_int_equal(hub_ack(hub, c, "old"), -1); /* released there: nothing more */
    assert_int_equal(rec.nremoved, 1);

    assert_int_equal(hub_ack_user_through(hub, "jo", 0), 0); /* all are newer */
    assert_int_equal(hub_ack_user_through(hub, "jo", INT64_MAX), 1);
    assert_int_equal(rec.ndone, 2);
    assert_int_equal(rec.done[1], 8);
    pending = 0;
    hub_each_pending(hub, "jo", INT64_MAX, count_pending, &pending);
    assert_int_equal(pending, 0);
    assert_int_equal(hub_ack_user(hub, "nobody", "x"), 0);
    /* Receipts: written to the tab once each (old, held2), acknowledged
     * once each (held, old, held2). */
    assert_int_equal(rec.events[EVENT_DELIVERED], 2);
    assert_int_equal(rec.events[EVENT_ACKED], 3);
    hub_free(hub);
}

/* Past its share, what a user holds goes to the store, oldest first, with
 * what comes next, and the replay reads it back. */
static void past_its_share_what_is_held_goes_to_the_store_in_order(void **state)
{
    (void)state;
    hub_t *hub = new_hub_holding(8, 2, NULL);
    int t;
    hub_connect(hub, "ivan", &t);
    hub_msg_t a = msg("a", "ivan", 1), b = msg("b", "ivan", 2), d = msg("d", "ivan", 3);
    hub_publish(hub, &a);
    hub_publish(hub, &b);
    assert_int_equal(rec.nstored, 0);
    hub_publish(hub, &d);
    assert_int_equal(rec.nstored, 3);
    assert_string_equal(rec.stored[0], "a");
    assert_string_equal(rec.stored[1], "b");
    assert_string_equal(rec.stored[2], "d");
    /* The read out was asked before they were stored: asked again. */
    answer_empty(hub, "ivan");
    assert_int_equal(rec.nfetched, 2);
    assert_true(hub_user_replaying(hub, "ivan"));
    hub_free(hub);
}

static void going_offline_stores_what_is_held(void **state)
{
    (void)state;
    hub_t *hub = new_hub_holding(8, 4, NULL);
    int t;
    hub_conn_t *c = hub_connect(hub, "jo", &t);
    hub_msg_t a = msg("a", "jo", 1), b = msg("b", "jo", 2);
    hub_publish(hub, &a);
    hub_publish(hub, &b);
    hub_disconnect(hub, c);
    assert_int_equal(rec.nstored, 2);
    assert_string_equal(rec.stored[0], "a");
    assert_int_equal(rec.stored_offset[1], 2);
    hub_free(hub);
}

/* Every window full: held, and pushed as soon as an ack makes room. */
static void full_windows_hold_until_an_ack(void **state)
{
    (void)state;
    hub_t *hub = new_hub_holding(1, 4, NULL);
    int t;
    hub_conn_t *c = online(hub, "kim", &t);
    hub_msg_t a = msg("a", "kim", 1), b = msg("b", "kim", 2);
    hub_publish(hub, &a);
    hub_publish(hub, &b);
    assert_int_equal(rec.nstored, 0);
    assert_non_null(strstr(next_frame(hub, c), "\"id\":\"a\""));
    assert_null(next_frame(hub, c));
    hub_ack(hub, c, "a");
    assert_non_null(strstr(next_frame(hub, c), "\"id\":\"b\""));
    assert_false(hub_user_replaying(hub, "kim"));
    hub_free(hub);
}

/* With the memory budget spent, a live notification for an online user
 * goes to the store rather than into a window, and no read is asked until
 * memory is given back. */
static void a_spent_budget_sends_live_ones_to_the_store(void **state)
{
    (void)state;
    budget_t budget = {.limit = 1000};
    hub_t *hub = new_hub_holding(8, 4, &budget);
    int t;
    hub_conn_t *c = online(hub, "lee", &t);
    budget_take(&budget, BUDGET_HANDOFF, 1000);
    hub_msg_t a = msg("a", "lee", 1);
    int fetches = rec.nfetched;
    hub_publish(hub, &a);
    assert_int_equal(rec.nstored, 1);
    assert_null(next_frame(hub, c));
    assert_true(hub_user_replaying(hub, "lee"));
    assert_int_equal(rec.nfetched, fetches);
    budget_give(&budget, BUDGET_HANDOFF, 1000);
    hub_tick(hub, 0);
    assert_int_equal(rec.nfetched, fetches + 1);
    /* Windows count against it while they hold something. */
    hub_msg_t stored = msg("a", "lee", -1);
    stored.seq = 5;
    hub_fetch_done(hub, "lee", rec.fetched_gen[fetches], &stored, 1, 0);
    assert_true(budget_part(&budget, BUDGET_WINDOWS) > stored.frame_len);
    next_frame(hub, c);
    hub_ack(hub, c, "a");
    assert_int_equal(budget_used(&budget), 0);
    hub_free(hub);
}

/* A held copy of what the replay just sent (Kafka redelivered one that
 * was stored before a crash) is not sent twice: it goes to the store,
 * where its id is already kept. */
static void a_held_copy_of_a_replayed_one_is_not_sent_twice(void **state)
{
    (void)state;
    hub_t *hub = new_hub_holding(8, 4, NULL);
    int t;
    hub_conn_t *c = hub_connect(hub, "mo", &t);
    hub_msg_t copy = msg("x", "mo", 4);
    hub_publish(hub, &copy);
    hub_msg_t stored = msg("x", "mo", -1);
    stored.seq = 1;
    hub_fetch_done(hub, "mo", rec.fetched_gen[0], &stored, 1, 0);
    assert_non_null(strstr(next_frame(hub, c), "\"id\":\"x\""));
    assert_null(next_frame(hub, c));
    assert_int_equal(rec.nstored, 1);
    assert_int_equal(rec.stored_offset[0], 4); /* its offset completes once stored */
    hub_free(hub);
}

/* At the per-user cap, the oldest connection is the one a newer signed-in
 * one replaces; below it, none. */
static void the_oldest_connection_is_named_at_the_cap(void **state)
{
    (void)state;
    hub_t *hub = new_hub(8); /* three a user */
    int t[3];
    hub_conn_t *c[3];
    for (int i = 0; i < 3; i++) {
        assert_null(hub_oldest_transport(hub, "dora"));
        c[i] = hub_connect(hub, "dora", &t[i]);
    }
    assert_ptr_equal(hub_oldest_transport(hub, "dora"), &t[0]);
    assert_null(hub_connect(hub, "dora", &t[0]));
    hub_disconnect(hub, c[0]);
    assert_null(hub_oldest_transport(hub, "dora"));
    assert_null(hub_oldest_transport(hub, "nobody"));
    hub_disconnect(hub, c[1]);
    assert_true(hub_user_online(hub, "dora"));
    hub_disconnect(hub, c[2]);
    assert_false(hub_user_online(hub, "dora"));
    /* The user's presence here: once at the first tab, once at the last. */
    assert_int_equal(rec.npresence, 2);
    assert_string_equal(rec.presence[0], "+dora");
    assert_string_equal(rec.presence[1], "-dora");
    hub_free(hub);
}

static hub_t *disconnecting_hub;
static int walked[3];            /* the transports: &walked[i] */
static hub_conn_t *walked_conn[3];

static void disconnect_each(void *arg, void *transport)
{
    (void)arg;
    int i = (int)((int *)transport - walked);
    hub_disconnect(disconnecting_hub, walked_conn[i]);
    walked_conn[i] = NULL;
}

/* An operator's disconnect: every connection of the user, each released
 * from inside the walk, the last one taking the user with it. */
static void each_connection_of_a_user_may_be_disconnected(void **state)
{
    (void)state;
    hub_t *hub = disconnecting_hub = new_hub(8);
    walked_conn[0] = hub_connect(hub, "ivy", &walked[0]);
    walked_conn[1] = hub_connect(hub, "ivy", &walked[1]);
    walked_conn[2] = hub_connect(hub, "jo", &walked[2]);
    assert_int_equal(hub_each_user_transport(hub, "ivy", disconnect_each, NULL), 2);
    assert_null(walked_conn[0]);
    assert_null(walked_conn[1]);
    assert_int_equal(hub_user_count(hub), 1); /* jo */
    assert_int_equal(hub_each_user_transport(hub, "ivy", disconnect_each, NULL), 0);
    hub_disconnect(hub, walked_conn[2]);
    hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offline_user_is_stored),
        cmocka_unit_test(the_oldest_connection_is_named_at_the_cap),
        cmocka_unit_test(each_connection_of_a_user_may_be_disconnected),
        cmocka_unit_test(connect_replays_before_live),
        cmocka_unit_test(ack_of_live_completes_its_offset),
        cmocka_unit_test(ack_of_replayed_removes_it_from_the_store),
        cmocka_unit_test(closing_unacked_stores_live_ones),
        cmocka_unit_test(every_tab_gets_it_and_one_ack_is_enough),
        cmocka_unit_test(the_first_ack_releases_it_in_every_tab),
        cmocka_unit_test(no_user_sees_another_users_notification),
        cmocka_unit_test(full_window_sends_to_the_store_then_replays),
        cmocka_unit_test(ack_timeout_releases_to_the_store),
        cmocka_unit_test(per_user_connection_limit),
        cmocka_unit_test(redelivered_copy_in_flight_goes_to_the_store),
        cmocka_unit_test(a_late_read_from_a_closed_connection_is_ignored),
        cmocka_unit_test(a_closing_tab_passes_what_it_held_to_the_others),
        cmocka_unit_test(a_tab_joining_during_a_read_does_not_stall_the_replay),
        cmocka_unit_test(a_stalled_tab_does_not_hold_back_the_others),
        cmocka_unit_test(live_during_a_replay_is_held_then_follows_it),
        cmocka_unit_test(past_its_share_what_is_held_goes_to_the_store_in_order),
        cmocka_unit_test(going_offline_stores_what_is_held),
        cmocka_unit_test(full_windows_hold_until_an_ack),
        cmocka_unit_test(a_spent_budget_sends_live_ones_to_the_store),
        cmocka_unit_test(a_held_copy_of_a_replayed_one_is_not_sent_twice),
        cmocka_unit_test(acks_from_outside_a_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
