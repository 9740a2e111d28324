/* The offline-store contract, run against every backend: SQLite always
 * (a file in a temporary folder), MongoDB when STORE_TEST_MONGODB_URI names
 * a server (the integration suite points it at FerretDB). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <mongoc/mongoc.h>
#include <sqlite3.h>

#include "record.h"
#include "store.h"

static char uri[512];
static char db[64];

struct got {
    char ids[64][32];
    int64_t seqs[64];
    char frames[64][128];
    int n;
};

static void collect(void *arg, size_t read, const store_doc_t *d)
{
    struct got *g = (struct got *)arg + read;
    snprintf(g->ids[g->n], 32, "%s", d->id);
    snprintf(g->frames[g->n], 128, "%.*s", (int)d->frame_len, d->frame);
    g->seqs[g->n++] = d->seq;
}

/* One user's read; *more gets store_read_t's. */
static int fetch_user(store_t *st, const char *user, int64_t after, size_t limit, struct got *g,
                      int *more)
{
    char err[512];
    store_read_t r = {user, after, limit, -1};
    int n = store_fetch(st, &r, 1, collect, g, err, sizeof(err));
    if (more)
        *more = r.more;
    return n;
}

static store_doc_t doc(const char *id, const char *user, int64_t seq)
{
    static char frames[64][96];
    static int next;
    char *f = frames[next++ % 64];
    snprintf(f, 96, "{\"id\":\"%s\",\"userId\":\"%s\",\"message\":\"é ✓\"}", id, user);
    return (store_doc_t){id, user, f, strlen(f), seq, 0, 0, 0};
}

/* Keeping a history of acknowledged ones for history_ms (0: none). */
static store_t *open_store_keeping(int64_t history_ms)
{
    char err[512];
    store_t *st = store_open(uri, db, 5000, err, sizeof(err));
    if (!st)
        fail_msg("store_open(%s): %s", uri, err);
    store_keep_history(st, history_ms);
    if (store_prepare(st, err, sizeof(err)) != 0)
        fail_msg("store_prepare(%s): %s", uri, err);
    return st;
}

static store_t *open_store(void)
{
    return open_store_keeping(0);
}

static int fresh(void **state)
{
    (void)state;
    static int n;
    snprintf(db, sizeof(db), "store_suite_%d_%d", (int)getpid(), ++n);
    if (strncmp(uri, "sqlite:", 7) == 0) {
        static char dir[] = "/tmp/store-suite-XXXXXX";
        static int made;
        if (!made && mkdtemp(dir))
            made = 1;
        snprintf(uri, sizeof(uri), "sqlite:%s/%s.db", dir, db);
    }
    return 0;
}

static void put_is_idempotent_by_id(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t docs[] = {doc("a", "u1", 1), doc("b", "u1", 2)};
    assert_int_equal(store_put(st, docs, 2, err, sizeof(err)), 0);
    /* The same ids again, with one new: no error, no second copy. */
    store_doc_t again[] = {doc("a", "u1", 1), doc("c", "u1", 3), doc("b", "u1", 2)};
    assert_int_equal(store_put(st, again, 3, err, sizeof(err)), 0);
    assert_int_equal(store_count(st, "u1", err, sizeof(err)), 3);
    store_close(st);
}

static void fetch_is_per_user_oldest_first_in_batches(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    /* Put out of order and mixed with another user's. */
    store_doc_t docs[] = {doc("n3", "u1", 30), doc("x", "u2", 15), doc("n1", "u1", 10),
                          doc("n2", "u1", 20), doc("n4", "u1", 40)};
    assert_int_equal(store_put(st, docs, 5, err, sizeof(err)), 0);

    struct got g = {0};
    assert_int_equal(fetch_user(st, "u1", 0, 3, &g, NULL), 3);
    assert_string_equal(g.ids[0], "n1");
    assert_string_equal(g.ids[1], "n2");
    assert_string_equal(g.ids[2], "n3");
    assert_int_equal(g.seqs[2], 30);
    assert_string_equal(g.frames[0], "{\"id\":\"n1\",\"userId\":\"u1\",\"message\":\"é ✓\"}");

    struct got rest = {0};
    assert_int_equal(fetch_user(st, "u1", 30, 3, &rest, NULL), 1);
    assert_string_equal(rest.ids[0], "n4");

    struct got none = {0};
    int more = -1;
    assert_int_equal(fetch_user(st, "nobody", 0, 10, &none, &more), 0);
    assert_int_equal(more, 0);
    assert_int_equal(fetch_user(st, "u1", 0, 4, &none, &more), 4);
    assert_int_equal(more, 1); /* as many as asked: maybe more */
    store_close(st);
}

/* Several users in one read, each cut to its own limit, each saying
 * whether it may have more. */
static void one_read_for_many_users(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t docs[] = {doc("a1", "ua", 11), doc("b1", "ub", 12), doc("a2", "ua", 13),
                          doc("a3", "ua", 14), doc("b2", "ub", 15), doc("a4", "ua", 16),
                          doc("a5", "ua", 17), doc("c1", "uc", 5)};
    assert_int_equal(store_put(st, docs, 8, err, sizeof(err)), 0);

    store_read_t reads[] = {{"ua", 0, 3, -1}, {"ub", 0, 10, -1}, {"uc", 5, 10, -1},
                            {"nobody", 0, 10, -1}};
    struct got g[4] = {0};
    assert_int_equal(store_fetch(st, reads, 4, collect, g, err, sizeof(err)), 5);
    assert_int_equal(g[0].n, 3);
    assert_string_equal(g[0].ids[0], "a1");
    assert_string_equal(g[0].ids[2], "a3");
    assert_int_equal(reads[0].more, 1);
    assert_int_equal(g[1].n, 2);
    assert_string_equal(g[1].ids[0], "b1");
    assert_string_equal(g[1].ids[1], "b2");
    assert_int_equal(reads[1].more, 0);
    assert_int_equal(g[2].n, 0); /* c1 is not after seq 5 */
    assert_int_equal(reads[2].more, 0);
    assert_int_equal(g[3].n, 0);
    assert_int_equal(reads[3].more, 0);
    store_close(st);
}

static void remove_needs_the_owner(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t docs[] = {doc("mine", "alice", 1), doc("other", "alice", 2)};
    assert_int_equal(store_put(st, docs, 2, err, sizeof(err)), 0);

    const char *users[] = {"mallory"}, *ids[] = {"mine"};
    assert_int_equal(store_remove(st, users, ids, 1, err, sizeof(err)), 0); /* none removed */
    assert_int_equal(store_count(st, "alice", err, sizeof(err)), 2);

    const char *owners[] = {"alice", "alice"}, *both[] = {"mine", "missing"};
    assert_int_equal(store_remove(st, owners, both, 2, err, sizeof(err)), 1);
    assert_int_equal(store_count(st, "alice", err, sizeof(err)), 1);
    assert_int_equal(store_count(st, NULL, err, sizeof(err)), 1);

    /* A batch of several users' acks, interleaved: each removes only its own. */
    store_doc_t more[] = {doc("b1", "bob", 3), doc("b2", "bob", 4), doc("c1", "carol", 5)};
    assert_int_equal(store_put(st, more, 3, err, sizeof(err)), 0);
    const char *who[] = {"bob", "carol", "bob", "carol"}, *what[] = {"b2", "b1", "b1", "c1"};
    assert_int_equal(store_remove(st, who, what, 4, err, sizeof(err)), 3);
    assert_int_equal(store_count(st, "bob", err, sizeof(err)), 0);
    assert_int_equal(store_count(st, "carol", err, sizeof(err)), 0);
    assert_int_equal(store_count(st, "alice", err, sizeof(err)), 1);
    store_close(st);
}

/* The inbox: one user's newest first, below a cursor; another user's
 * never. */
static void list_is_newest_first_below_a_cursor(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t docs[] = {doc("n1", "ann", 10), doc("n2", "ann", 20), doc("x", "bo", 25),
                          doc("n3", "ann", 30), doc("n4", "ann", 40)};
    assert_int_equal(store_put(st, docs, 5, err, sizeof(err)), 0);
    struct got g = {0};
    assert_int_equal(store_list(st, STORE_PENDING, "ann", INT64_MAX, 3, collect, &g, err, sizeof(err)), 3);
    assert_string_equal(g.ids[0], "n4");
    assert_string_equal(g.ids[1], "n3");
    assert_string_equal(g.ids[2], "n2");
    assert_int_equal(g.seqs[2], 20);
    assert_non_null(strstr(g.frames[0], "\"id\":\"n4\""));
    struct got rest = {0};
    assert_int_equal(store_list(st, STORE_PENDING, "ann", 20, 3, collect, &rest, err, sizeof(err)), 1);
    assert_string_equal(rest.ids[0], "n1");
    struct got none = {0};
    assert_int_equal(store_list(st, STORE_PENDING, "nobody", INT64_MAX, 3, collect, &none, err, sizeof(err)), 0);
    store_close(st);
}

/* Acknowledging all: what was handed to the store before a time, of that
 * user only, counted. */
static void remove_through_a_time_counts_one_users(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t docs[] = {doc("a", "ann", 10), doc("b", "ann", 20), doc("c", "ann", 30),
                          doc("a", "bo", 15)};
    for (int i = 0; i < 4; i++)
        docs[i].stored_at = docs[i].seq; /* handed to the store at "seq" ms */
    assert_int_equal(store_put(st, docs, 4, err, sizeof(err)), 0);
    assert_int_equal(store_remove_through(st, "ann", 21, err, sizeof(err)), 2);
    assert_int_equal(store_count(st, "ann", err, sizeof(err)), 1);
    assert_int_equal(store_count(st, "bo", err, sizeof(err)), 1);
    assert_int_equal(store_remove_through(st, "ann", 21, err, sizeof(err)), 0);
    assert_int_equal(store_remove_through(st, "ann", 30, err, sizeof(err)), 0); /* at 30: kept */
    store_close(st);
}

/* With a history: what an ack deletes moves there, acknowledged now; what
 * was never stored is put there; newest first; expired past its
 * retention; a store without one deletes. */
static void acknowledged_ones_move_into_the_history(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store_keeping(3600 * 1000);
    store_doc_t docs[] = {doc("a", "ann", 10), doc("b", "ann", 20), doc("c", "ann", 30),
                          doc("a", "bo", 15)};
    for (int i = 0; i < 4; i++)
        docs[i].stored_at = docs[i].seq;
    assert_int_equal(store_put(st, docs, 4, err, sizeof(err)), 0);
    const char *users[] = {"ann"}, *ids[] = {"a"};
    assert_int_equal(store_remove(st, users, ids, 1, err, sizeof(err)), 1);
    assert_int_equal(store_remove_through(st, "ann", 21, err, sizeof(err)), 1); /* b */
    store_doc_t live = doc("live", "ann", 40);
    live.acked_at = 1234;
    assert_int_equal(store_history_put(st, &live, 1, err, sizeof(err)), 0);
    assert_int_equal(store_history_put(st, &live, 1, err, sizeof(err)), 0); /* idempotent */
    assert_int_equal(store_count(st, "ann", err, sizeof(err)), 1);           /* c */
    struct got g = {0};
    assert_int_equal(store_list(st, STORE_HISTORY, "ann", INT64_MAX, 10, collect, &g, err,
                                sizeof(err)),
                     3);
    assert_string_equal(g.ids[0], "live");
    assert_string_equal(g.ids[1], "b");
    assert_string_equal(g.ids[2], "a");
    assert_non_null(strstr(g.frames[1], "\"id\":\"b\""));
    struct got bo = {0};
    assert_int_equal(store_list(st, STORE_HISTORY, "bo", INT64_MAX, 10, collect, &bo, err,
                                sizeof(err)),
                     0);
    /* Past the retention (an hour): "live" was acknowledged in 1970. */
    assert_true(store_expire(st, 0, 0, err, sizeof(err)) >= 0);
    struct got after = {0};
    assert_int_equal(store_list(st, STORE_HISTORY, "ann", INT64_MAX, 10, collect, &after, err,
                                sizeof(err)),
                     2);
    store_close(st);
    /* Without a history, a removal only deletes. */
    st = open_store();
    const char *bos[] = {"bo"};
    assert_int_equal(store_remove(st, bos, ids, 1, err, sizeof(err)), 1);
    struct got none = {0};
    assert_int_equal(store_list(st, STORE_HISTORY, "bo", INT64_MAX, 10, collect, &none, err,
                                sizeof(err)),
                     0);
    store_close(st);
}

static void survives_reopening(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t d = doc("kept", "u9", 5);
    assert_int_equal(store_put(st, &d, 1, err, sizeof(err)), 0);
    store_close(st);

    st = open_store();
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u9", 0, 10, &g, NULL), 1);
    assert_string_equal(g.ids[0], "kept");
    store_close(st);
}

static void big_batches(void **state)
{
    (void)state;
    char err[512];
    enum { N = 2500 };
    static char ids[N][16];
    static store_doc_t docs[N];
    store_t *st = open_store();
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "b%05d", i);
        docs[i] = (store_doc_t){ids[i], "bulk", "{}", 2, i + 1, 0, 0, 0};
    }
    assert_int_equal(store_put(st, docs, N, err, sizeof(err)), 0);
    assert_int_equal(store_count(st, "bulk", err, sizeof(err)), N);
    store_close(st);
}

/* Ids are unique per user, not across users: a campaign id sent to many
 * users is stored once for each (the reliability issue's defect 1). */
static void same_id_for_two_users_keeps_both(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t docs[] = {doc("campaign", "u1", 1), doc("campaign", "u2", 2)};
    assert_int_equal(store_put(st, docs, 2, err, sizeof(err)), 0);
    assert_int_equal(store_count(st, "u1", err, sizeof(err)), 1);
    assert_int_equal(store_count(st, "u2", err, sizeof(err)), 1);
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u2", 0, 10, &g, NULL), 1);
    assert_string_equal(g.ids[0], "campaign");
    assert_non_null(strstr(g.frames[0], "\"userId\":\"u2\""));
    /* Still idempotent for one user, and an ack removes only its owner's. */
    assert_int_equal(store_put(st, docs, 2, err, sizeof(err)), 0);
    assert_int_equal(store_count(st, NULL, err, sizeof(err)), 2);
    const char *users[] = {"u1"}, *ids[] = {"campaign"};
    assert_int_equal(store_remove(st, users, ids, 1, err, sizeof(err)), 1);
    assert_int_equal(store_count(st, "u1", err, sizeof(err)), 0);
    assert_int_equal(store_count(st, "u2", err, sizeof(err)), 1);
    store_close(st);
}

/* Writes two notifications the way schema version 1 kept them (keyed by
 * id alone), as a gateway of that version left them. */
static void seed_version_1(void)
{
    if (strncmp(uri, "sqlite:", 7) == 0) {
        sqlite3 *lite;
        assert_int_equal(sqlite3_open(uri + 7, &lite), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(lite,
                         "CREATE TABLE notifications (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
                         " seq INTEGER NOT NULL, notification TEXT NOT NULL,"
                         " stored_at INTEGER NOT NULL);"
                         "CREATE INDEX notifications_user_seq ON notifications (user_id, seq);"
                         "INSERT INTO notifications VALUES ('old1', 'u1', 10, '{\"id\":\"old1\"}', 0);"
                         "INSERT INTO notifications VALUES ('old2', 'u2', 20, '{\"id\":\"old2\"}', 0);",
                         NULL, NULL, NULL),
            SQLITE_OK);
        sqlite3_close(lite);
        return;
    }
    bson_error_t err;
    mongoc_client_t *client = mongoc_client_new(uri);
    assert_non_null(client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db, "notifications");
    bson_t *d1 = BCON_NEW("_id", "old1", "userId", "u1", "seq", BCON_INT64(10), "notification",
                          BCON_UTF8("{\"id\":\"old1\"}"));
    bson_t *d2 = BCON_NEW("_id", "old2", "userId", "u2", "seq", BCON_INT64(20), "notification",
                          BCON_UTF8("{\"id\":\"old2\"}"));
    const bson_t *docs[] = {d1, d2};
    if (!mongoc_collection_insert_many(coll, docs, 2, NULL, NULL, &err))
        fail_msg("seeding version 1 documents: %s", err.message);
    bson_destroy(d1);
    bson_destroy(d2);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
}

/* A store of schema version 2, 3 (the history) or 4 (expiry), as a
 * gateway of that version left it. */
static void seed_version(int version)
{
    if (strncmp(uri, "sqlite:", 7) == 0) {
        sqlite3 *lite;
        assert_int_equal(sqlite3_open(uri + 7, &lite), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(lite,
                         "CREATE TABLE notifications (user_id TEXT NOT NULL, id TEXT NOT NULL,"
                         " seq INTEGER NOT NULL, notification TEXT NOT NULL,"
                         " stored_at INTEGER NOT NULL, PRIMARY KEY (user_id, id));"
                         "CREATE INDEX notifications_user_seq ON notifications (user_id, seq);"
                         "INSERT INTO notifications VALUES ('u1', 'kept', 10, '{\"id\":\"kept\"}', 0);",
                         NULL, NULL, NULL),
            SQLITE_OK);
        if (version >= 3)
            assert_int_equal(
                sqlite3_exec(lite,
                             "CREATE TABLE history (user_id TEXT NOT NULL, id TEXT NOT NULL,"
                             " seq INTEGER NOT NULL, notification TEXT NOT NULL,"
                             " acked_at INTEGER NOT NULL, PRIMARY KEY (user_id, id));"
                             "CREATE INDEX history_user_seq ON history (user_id, seq);"
                             "CREATE INDEX history_acked_at ON history (acked_at);",
                             NULL, NULL, NULL),
                SQLITE_OK);
        if (version >= 4)
            assert_int_equal(sqlite3_exec(lite,
                                          "ALTER TABLE notifications ADD COLUMN expires_at INTEGER",
                                          NULL, NULL, NULL),
                             SQLITE_OK);
        if (version >= 5)
            assert_int_equal(
                sqlite3_exec(
                    lite,
                    "CREATE TABLE room_notifications (stream TEXT NOT NULL, id TEXT NOT NULL,"
                    " seq INTEGER NOT NULL, notification TEXT NOT NULL, type TEXT NOT NULL,"
                    " stored_at INTEGER NOT NULL, expires_at INTEGER, PRIMARY KEY (stream, id));"
                    "CREATE INDEX room_notifications_stream_seq ON room_notifications (stream, seq);"
                    "CREATE INDEX room_notifications_stored_at ON room_notifications (stored_at);"
                    "CREATE TABLE room_cursors (user_id TEXT NOT NULL, stream TEXT NOT NULL,"
                    " acked_seq INTEGER NOT NULL, acked TEXT NOT NULL, updated_at INTEGER NOT NULL,"
                    " PRIMARY KEY (user_id, stream));",
                    NULL, NULL, NULL),
                SQLITE_OK);
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version);
        assert_int_equal(sqlite3_exec(lite, pragma, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(lite);
        return;
    }
    bson_error_t err;
    mongoc_client_t *client = mongoc_client_new(uri);
    assert_non_null(client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db, "notifications");
    mongoc_collection_t *meta = mongoc_client_get_collection(client, db, "meta");
    bson_t *d = BCON_NEW("_id", "u1/kept", "id", "kept", "userId", "u1", "seq", BCON_INT64(10),
                         "notification", BCON_UTF8("{\"id\":\"kept\"}"), "storedAt",
                         BCON_DATE_TIME(0));
    bson_t *v = BCON_NEW("_id", "schema", "version", BCON_INT32(version));
    if (!mongoc_collection_insert_one(coll, d, NULL, NULL, &err) ||
        !mongoc_collection_insert_one(meta, v, NULL, NULL, &err))
        fail_msg("seeding version %d documents: %s", version, err.message);
    bson_destroy(d);
    bson_destroy(v);
    mongoc_collection_destroy(meta);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
}

/* 2 -> 3: the data stays; the history is there and used. */
static void version_2_data_is_migrated(void **state)
{
    (void)state;
    char err[512];
    seed_version(2);
    store_t *st = open_store_keeping(3600 * 1000);
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u1", 0, 10, &g, NULL), 1);
    assert_string_equal(g.ids[0], "kept");
    const char *users[] = {"u1"}, *ids[] = {"kept"};
    assert_int_equal(store_remove(st, users, ids, 1, err, sizeof(err)), 1);
    struct got h = {0};
    assert_int_equal(store_list(st, STORE_HISTORY, "u1", INT64_MAX, 10, collect, &h, err,
                                sizeof(err)),
                     1);
    store_close(st);
}

static void version_1_data_is_migrated(void **state)
{
    (void)state;
    char err[512];
    seed_version_1();
    store_t *st = open_store(); /* migrates */
    assert_int_equal(store_count(st, NULL, err, sizeof(err)), 2);
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u1", 0, 10, &g, NULL), 1);
    assert_string_equal(g.ids[0], "old1");
    assert_int_equal(g.seqs[0], 10);
    assert_string_equal(g.frames[0], "{\"id\":\"old1\"}");
    /* The new key: old1 for another user is another notification. */
    store_doc_t d = doc("old1", "u2", 30);
    assert_int_equal(store_put(st, &d, 1, err, sizeof(err)), 0);
    assert_int_equal(store_count(st, "u2", err, sizeof(err)), 2);
    const char *users[] = {"u2"}, *ids[] = {"old2"};
    assert_int_equal(store_remove(st, users, ids, 1, err, sizeof(err)), 1);
    assert_int_equal(store_count(st, "u2", err, sizeof(err)), 1);
    store_close(st);
    /* Opening again finds the current version and changes nothing. */
    st = open_store();
    assert_int_equal(store_count(st, NULL, err, sizeof(err)), 2);
    store_close(st);
}

/* Expiry: of each user all but the newest max, and everything stored
 * before a time (the reliability issue's defect 8). */
static void expire_keeps_each_users_newest_and_what_is_recent(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    store_doc_t docs[] = {doc("e1", "heavy", 1), doc("e2", "heavy", 2), doc("e3", "heavy", 3),
                          doc("e4", "heavy", 4), doc("e5", "heavy", 5), doc("l1", "light", 6),
                          doc("l2", "light", 7)};
    assert_int_equal(store_put(st, docs, 7, err, sizeof(err)), 0);
    assert_int_equal(store_expire(st, 3, 0, err, sizeof(err)), 2);
    struct got g = {0};
    assert_int_equal(fetch_user(st, "heavy", 0, 10, &g, NULL), 3);
    assert_string_equal(g.ids[0], "e3");
    assert_string_equal(g.ids[2], "e5");
    assert_int_equal(store_count(st, "light", err, sizeof(err)), 2);
    assert_int_equal(store_expire(st, 3, 0, err, sizeof(err)), 0); /* nothing over now */

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    assert_int_equal(store_expire(st, 0, now_ms - 60000, err, sizeof(err)), 0);
    assert_int_equal(store_expire(st, 0, now_ms + 60000, err, sizeof(err)), 5);
    assert_int_equal(store_count(st, NULL, err, sizeof(err)), 0);
    store_close(st);
}

static int64_t wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* "ttl"/"expiresAt": what has expired is neither fetched nor listed, and
 * store_expire_due deletes it, counted; the rest stays. */
static void what_expired_is_not_read_and_is_swept(void **state)
{
    (void)state;
    char err[512];
    int64_t now = wall_ms();
    store_t *st = open_store();
    store_doc_t docs[] = {doc("x1", "u", 1), doc("x2", "u", 2), doc("x3", "u", 3),
                          doc("x4", "v", 4)};
    docs[0].expires_at = now - 1000; /* expired */
    docs[1].expires_at = now + 3600 * 1000;
    docs[3].expires_at = now - 1;
    assert_int_equal(store_put(st, docs, 4, err, sizeof(err)), 0);
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u", 0, 10, &g, NULL), 2);
    assert_string_equal(g.ids[0], "x2");
    assert_string_equal(g.ids[1], "x3");
    struct got l = {0};
    assert_int_equal(store_list(st, STORE_PENDING, "u", INT64_MAX, 10, collect, &l, err,
                                sizeof(err)),
                     2);
    assert_int_equal(store_count(st, NULL, err, sizeof(err)), 4); /* until the sweep */
    assert_int_equal(store_expire_due(st, now, err, sizeof(err)), 2);
    assert_int_equal(store_count(st, NULL, err, sizeof(err)), 2);
    assert_int_equal(store_expire_due(st, now, err, sizeof(err)), 0);
    store_close(st);
}

/* 3 -> 4: the data stays, readable, and never expires; new ones can. */
static void version_3_data_is_migrated(void **state)
{
    (void)state;
    char err[512];
    seed_version(3);
    store_t *st = open_store_keeping(3600 * 1000);
    store_doc_t d = doc("soon", "u1", 20);
    d.expires_at = wall_ms() - 1;
    assert_int_equal(store_put(st, &d, 1, err, sizeof(err)), 0);
    assert_int_equal(store_expire_due(st, wall_ms(), err, sizeof(err)), 1);
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u1", 0, 10, &g, NULL), 1);
    assert_string_equal(g.ids[0], "kept");
    store_close(st);
}

struct room_got {
    char ids[64][32];
    int64_t seqs[64];
    char types[64][16];
    int n;
};

static void collect_room(void *arg, const room_doc_t *d)
{
    struct room_got *g = arg;
    snprintf(g->ids[g->n], 32, "%s", d->id);
    snprintf(g->types[g->n], 16, "%s", d->type);
    g->seqs[g->n++] = d->seq;
}

static room_doc_t room_doc(const char *stream, const char *id, int64_t seq, int64_t stored_at)
{
    static const char frame[] = "{\"id\":\"x\",\"message\":\"m\"}";
    return (room_doc_t){stream, id, frame, sizeof(frame) - 1, "news", seq, stored_at, 0};
}

/* Rooms: stored once per (stream, id), read oldest first above a seq,
 * within retention and unexpired, in batches; swept by retention and
 * expiry. */
static void room_notifications_are_kept_once_per_stream(void **state)
{
    (void)state;
    char err[512];
    int64_t now = wall_ms();
    store_t *st = open_store();
    room_doc_t docs[] = {room_doc("room:a", "r1", 10, now - 10000),
                         room_doc("room:a", "r2", 20, now), room_doc("room:a", "r3", 30, now),
                         room_doc("broadcast", "r1", 15, now), room_doc("room:a", "r2", 20, now),
                         room_doc("room:a", "r4", 40, now)};
    docs[5].expires_at = now - 1;
    assert_int_equal(store_room_put(st, docs, 6, err, sizeof(err)), 0);
    assert_int_equal(store_room_put(st, docs, 2, err, sizeof(err)), 0); /* again: a no-op */
    struct room_got g = {0};
    int m = 0;
    assert_int_equal(store_room_fetch(st, "room:a", 0, 0, now, 10, collect_room, &g, &m, err,
                                      sizeof(err)),
                     3);
    assert_string_equal(g.ids[0], "r1");
    assert_string_equal(g.ids[2], "r3");
    assert_string_equal(g.types[0], "news");
    assert_false(m);
    struct room_got after = {0};
    assert_int_equal(store_room_fetch(st, "room:a", 10, now - 5000, now, 1, collect_room, &after,
                                      &m, err, sizeof(err)),
                     1);
    assert_string_equal(after.ids[0], "r2");
    assert_true(m);
    struct room_got all = {0};
    assert_int_equal(store_room_fetch(st, "broadcast", 0, 0, now, 10, collect_room, &all, &m, err,
                                      sizeof(err)),
                     1);
    /* Retention (stored before now - 5 s) and expiry: r1 of room:a and r4. */
    assert_int_equal(store_room_expire(st, now - 5000, now, err, sizeof(err)), 2);
    struct room_got left = {0};
    assert_int_equal(store_room_fetch(st, "room:a", 0, 0, now + 1, 10, collect_room, &left, &m,
                                      err, sizeof(err)),
                     2);
    store_close(st);
}

struct cursor_got {
    char streams[8][32];
    int64_t seqs[8];
    char acked[8][64];
    int n;
};

static void collect_cursor(void *arg, const room_cursor_t *c)
{
    struct cursor_got *g = arg;
    snprintf(g->streams[g->n], 32, "%s", c->stream);
    snprintf(g->acked[g->n], 64, "%s", c->acked);
    g->seqs[g->n++] = c->acked_seq;
}

/* A cursor per (user, stream); a write never moves it back. */
static void cursors_are_per_user_and_stream_and_never_move_back(void **state)
{
    (void)state;
    char err[512];
    store_t *st = open_store();
    const char *streams[] = {"room:a", "broadcast", "room:none"};
    struct cursor_got none = {0};
    const char *u1[] = {"u1"};
    assert_int_equal(store_cursor_get(st, u1, 1, streams, 3, collect_cursor, &none, err,
                                      sizeof(err)),
                     0);
    room_cursor_t c[] = {{"u1", "room:a", 20, "r5 r7"}, {"u1", "broadcast", 3, ""},
                         {"u2", "room:a", 99, ""}};
    assert_int_equal(store_cursor_put(st, c, 3, err, sizeof(err)), 0);
    room_cursor_t older = {"u1", "room:a", 10, "r2"};
    assert_int_equal(store_cursor_put(st, &older, 1, err, sizeof(err)), 0);
    room_cursor_t newer = {"u1", "broadcast", 8, "b9"};
    assert_int_equal(store_cursor_put(st, &newer, 1, err, sizeof(err)), 0);
    struct cursor_got g = {0};
    assert_int_equal(store_cursor_get(st, u1, 1, streams, 3, collect_cursor, &g, err, sizeof(err)),
                     2);
    /* Many users in one read. */
    const char *both[] = {"u1", "u2"};
    struct cursor_got two = {0};
    assert_int_equal(store_cursor_get(st, both, 2, streams, 3, collect_cursor, &two, err,
                                      sizeof(err)),
                     3);
    for (int i = 0; i < g.n; i++) {
        if (strcmp(g.streams[i], "room:a") == 0) {
            assert_int_equal(g.seqs[i], 20);
            assert_string_equal(g.acked[i], "r5 r7");
        } else {
            assert_string_equal(g.streams[i], "broadcast");
            assert_int_equal(g.seqs[i], 8);
            assert_string_equal(g.acked[i], "b9");
        }
    }
    store_close(st);
}

/* 4 -> 5: what was stored stays; rooms and cursors work. */
static void version_4_data_is_migrated(void **state)
{
    (void)state;
    char err[512];
    seed_version(4);
    store_t *st = open_store();
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u1", 0, 10, &g, NULL), 1);
    assert_string_equal(g.ids[0], "kept");
    room_doc_t d = room_doc("room:a", "r1", 1, wall_ms());
    assert_int_equal(store_room_put(st, &d, 1, err, sizeof(err)), 0);
    room_cursor_t c = {"u1", "room:a", 1, ""};
    assert_int_equal(store_cursor_put(st, &c, 1, err, sizeof(err)), 0);
    store_close(st);
}

/* 5 -> 6: seq is a record's place in Kafka from now on; what was stored
 * before (a clock's seq) stays ahead of what comes after, and an ack of
 * all still reaches both. */
static void version_5_data_is_migrated(void **state)
{
    (void)state;
    char err[512];
    seed_version(5);
    store_t *st = open_store();
    store_doc_t later = doc("later", "u1", record_seq(0, 3));
    assert_int_equal(store_put(st, &later, 1, err, sizeof(err)), 0);
    struct got g = {0};
    assert_int_equal(fetch_user(st, "u1", 0, 10, &g, NULL), 2);
    assert_string_equal(g.ids[0], "kept");
    assert_string_equal(g.ids[1], "later");
    assert_int_equal(store_remove_through(st, "u1", wall_ms() + 1, err, sizeof(err)), 2);
    store_close(st);
}

static void bad_uris_are_refused_clearly(void **state)
{
    (void)state;
    char err[512];
    assert_null(store_open("redis://x", "d", 5000, err, sizeof(err)));
    assert_non_null(strstr(err, "mongodb://"));
    assert_null(store_open("sqlite:", "d", 5000, err, sizeof(err)));
    assert_non_null(strstr(err, "file path"));
    assert_null(store_open("sqlite:/nonexistent-dir/x/y.db", "d", 5000, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
}

#define SUITE                                                                                   \
    {                                                                                          \
        cmocka_unit_test_setup(put_is_idempotent_by_id, fresh),                                \
            cmocka_unit_test_setup(fetch_is_per_user_oldest_first_in_batches, fresh),          \
            cmocka_unit_test_setup(one_read_for_many_users, fresh),                            \
            cmocka_unit_test_setup(remove_needs_the_owner, fresh),                             \
            cmocka_unit_test_setup(list_is_newest_first_below_a_cursor, fresh),                \
            cmocka_unit_test_setup(remove_through_a_time_counts_one_users, fresh),              \
            cmocka_unit_test_setup(acknowledged_ones_move_into_the_history, fresh),            \
            cmocka_unit_test_setup(version_2_data_is_migrated, fresh),                         \
            cmocka_unit_test_setup(survives_reopening, fresh),                                 \
            cmocka_unit_test_setup(big_batches, fresh),                                        \
            cmocka_unit_test_setup(same_id_for_two_users_keeps_both, fresh),                   \
            cmocka_unit_test_setup(version_1_data_is_migrated, fresh),                         \
            cmocka_unit_test_setup(expire_keeps_each_users_newest_and_what_is_recent, fresh),  \
            cmocka_unit_test_setup(what_expired_is_not_read_and_is_swept, fresh),              \
            cmocka_unit_test_setup(version_3_data_is_migrated, fresh),                         \
            cmocka_unit_test_setup(room_notifications_are_kept_once_per_stream, fresh),        \
            cmocka_unit_test_setup(cursors_are_per_user_and_stream_and_never_move_back, fresh), \
            cmocka_unit_test_setup(version_4_data_is_migrated, fresh),                         \
            cmocka_unit_test_setup(version_5_data_is_migrated, fresh),                         \
    }

int main(void)
{
    int failed = 0;
    const struct CMUnitTest sqlite_suite[] = SUITE;
    const struct CMUnitTest mongo_suite[] = SUITE;
    const struct CMUnitTest common[] = {cmocka_unit_test(bad_uris_are_refused_clearly)};

    failed += cmocka_run_group_tests_name("store: common", common, NULL, NULL);
    snprintf(uri, sizeof(uri), "sqlite:");
    printf("store: SQLite\n");
    fflush(stdout);
    failed += cmocka_run_group_tests_name("store: SQLite", sqlite_suite, NULL, NULL);

    const char *mongo = getenv("STORE_TEST_MONGODB_URI");
    if (mongo && *mongo) {
        snprintf(uri, sizeof(uri), "%s", mongo);
        printf("store: MongoDB at %s\n", mongo);
        fflush(stdout);
        failed += cmocka_run_group_tests_name("store: MongoDB", mongo_suite, NULL, NULL);
    } else {
        printf("store: MongoDB suite not run (set STORE_TEST_MONGODB_URI; the integration "
               "tests do)\n");
    }
    return failed;
}
