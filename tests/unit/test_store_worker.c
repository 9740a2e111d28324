/* The store worker on a real SQLite store: each request answered by its
 * own completion, on the polling thread, puts before the fetch that
 * follows them, backlog counted until completion. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "store_worker.h"
#include "timeutil.h"

struct seen {
    pthread_t thread;
    int puts, fetches, removes;
    int32_t last_partition;
    size_t found;
    uint64_t tag;
    char first_id[32];
};

static budget_t budget;

static void wake(void *arg)
{
    (void)arg;
}

static void on_put(void *arg, const struct store_result *r)
{
    struct seen *s = arg;
    assert_true(pthread_equal(s->thread, pthread_self()));
    s->puts++;
    s->last_partition = r->msg->partition;
}

static void on_fetch(void *arg, const struct store_result *r)
{
    struct seen *s = arg;
    assert_true(pthread_equal(s->thread, pthread_self()));
    s->fetches++;
    s->found = r->n;
    s->tag = r->tag;
    if (r->n)
        snprintf(s->first_id, sizeof(s->first_id), "%s", r->msgs[0].id);
}

static void on_remove(void *arg, const struct store_result *r)
{
    struct seen *s = arg;
    (void)r;
    s->removes++;
}

static void wait_for(store_worker_t *w, const int *count, int want)
{
    int64_t until = now_mono_ms() + 10000;
    while (*count < want && now_mono_ms() < until) {
        store_worker_poll(w);
        usleep(1000);
    }
    assert_int_equal(*count, want);
}

static void each_request_completes_on_the_polling_thread(void **state)
{
    (void)state;
    char dir[] = "/tmp/store_worker_XXXXXX", uri[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(uri, sizeof(uri), "sqlite:%s/s.db", dir);
    store_t *st = store_open(uri, NULL, 5000, err, sizeof(err));
    assert_non_null(st);
    struct store_expiry none = {0, 0, 0, 3600000, 60000};
    store_t *conns[] = {st, store_open(uri, NULL, 5000, err, sizeof(err)),
                        store_open(uri, NULL, 5000, err, sizeof(err))};
    store_worker_t *w = store_worker_start(conns, &none, &budget, wake, NULL);
    struct seen s = {.thread = pthread_self()};

    for (int i = 0; i < 3; i++) {
        char id[16], frame[64];
        snprintf(id, sizeof(id), "n%d", i);
        snprintf(frame, sizeof(frame), "{\"id\":\"%s\"}", id);
        hub_msg_t m = {.id = id, .user = "alice", .frame = frame, .frame_len = strlen(frame), .seq = 100 + i, .partition = 7, .offset = 1000 + i};
        store_worker_put(w, &m, on_put, &s);
    }
    store_worker_fetch(w, "alice", 0, 10, 42, on_fetch, &s);
    assert_int_equal(store_worker_backlog(w), 3);
    assert_int_equal(budget_part(&budget, BUDGET_STORE),
                     3 * (strlen("{\"id\":\"n0\"}") + BUDGET_PER_NOTIFICATION));
    store_worker_flush(w);
    wait_for(w, &s.fetches, 1);
    assert_int_equal(s.puts, 3);
    assert_int_equal(s.last_partition, 7);
    assert_int_equal(store_worker_backlog(w), 0);
    assert_int_equal(budget_part(&budget, BUDGET_STORE), 0);
    assert_int_equal(s.found, 3);
    assert_int_equal(s.tag, 42);
    assert_string_equal(s.first_id, "n0");

    store_worker_remove(w, "alice", "n0", on_remove, &s);
    store_worker_fetch(w, "alice", 100, 10, 43, on_fetch, &s);
    store_worker_flush(w);
    wait_for(w, &s.fetches, 2);
    assert_int_equal(s.removes, 1);
    assert_int_equal(s.found, 2); /* after seq 100: n1, n2 */
    assert_string_equal(s.first_id, "n1");

    store_worker_stop(w, now_mono_ms() + 5000);
    store_worker_free(w);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

struct order {
    int done;     /* completions seen */
    int put_at;   /* the put's place among them */
};

static void count_fetch(void *arg, const struct store_result *r)
{
    (void)r;
    ((struct order *)arg)->done++;
}

static void note_put(void *arg, const struct store_result *r)
{
    (void)r;
    struct order *o = arg;
    o->put_at = o->done++;
}

/* A write submitted while reads are being run goes next, not after them:
 * writes commit offsets, reads can be slow. */
static void a_write_does_not_wait_behind_reads(void **state)
{
    (void)state;
    enum { READS = 400, STORED = 1000 };
    char dir[] = "/tmp/store_worker_XXXXXX", uri[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(uri, sizeof(uri), "sqlite:%s/s.db", dir);
    store_t *st = store_open(uri, NULL, 5000, err, sizeof(err));
    struct store_expiry none = {0, 0, 0, 3600000, 60000};
    struct order o = {0, -1};

    /* Reads that take a while: each returns a thousand notifications. */
    static char ids[STORED][16];
    static store_doc_t docs[STORED];
    for (int i = 0; i < STORED; i++) {
        snprintf(ids[i], sizeof(ids[i]), "r%04d", i);
        static const char frame[] = "{\"message\":\"a read takes a while\"}";
        docs[i] = (store_doc_t){ids[i], "reader", frame, sizeof(frame) - 1, i + 1, 0, 0, 0};
    }
    assert_int_equal(store_prepare(st, err, sizeof(err)), 0);
    assert_int_equal(store_put(st, docs, STORED, err, sizeof(err)), 0);
    store_t *conns[] = {st, store_open(uri, NULL, 5000, err, sizeof(err)),
                        store_open(uri, NULL, 5000, err, sizeof(err))};
    store_worker_t *w = store_worker_start(conns, &none, &budget, wake, NULL);
    for (int i = 0; i < READS; i++)
        store_worker_fetch(w, "reader", 0, STORED, (uint64_t)i, count_fetch, &o);
    store_worker_flush(w);
    usleep(2000); /* the worker is reading now */
    hub_msg_t m = {.id = "w1", .user = "writer", .frame = "{}", .frame_len = 2, .seq = 1, .offset = 1};
    store_worker_put(w, &m, note_put, &o);
    store_worker_flush(w);
    wait_for(w, &o.done, READS + 1);
    assert_true(o.put_at >= 0);
    assert_true(o.put_at < READS / 2);

    store_worker_stop(w, now_mono_ms() + 5000);
    store_worker_free(w);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_request_completes_on_the_polling_thread),
        cmocka_unit_test(a_write_does_not_wait_behind_reads),
    };
    return cmocka_run_group_tests_name("store worker", tests, NULL, NULL);
}
