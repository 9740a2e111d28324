/* The SQLite backend of the offline store: one file, WAL mode, for a
 * single gateway (development, demos, small installations).
 *
 * Table notifications(user_id, id, seq, notification, stored_at), keyed by
 * (user_id, id), with an index on (user_id, seq). A put commits with
 * synchronous=FULL, so it is on disk before its Kafka offset is committed.
 *
 * The schema's version is PRAGMA user_version; start-up runs the forward
 * migrations from the file's version to SCHEMA_VERSION:
 *   1  (user_version 0 with a table) keyed by id alone;
 *   2  keyed by (user_id, id): ids are unique per user, not across users;
 *   3  a history(user_id, id, seq, notification, acked_at) table of
 *      acknowledged notifications, the same key, swept by acked_at;
 *   4  notifications.expires_at (wall-clock ms, NULL: never), indexed
 *      where set: reads skip what expired, the sweep deletes it;
 *   5  rooms and broadcast: room_notifications(stream, id, seq,
 *      notification, type, stored_at, expires_at) keyed by (stream, id),
 *      indexed by (stream, seq) and stored_at; room_cursors(user_id,
 *      stream, acked_seq, acked, updated_at) keyed by (user_id, stream);
 *   6  seq is the record's place in Kafka (record_seq: 2^62 and over, the
 *      same on every gateway), so rows of version 5 and before (a clock's
 *      µs) come first; an ack of all deletes by stored_at, indexed with
 *      user_id. */
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "notification.h"
#include "store_backend.h"
#include "timeutil.h"
#include "xalloc.h"

#define SCHEMA_VERSION 6
#define CREATE_TABLE(name)                                                                      \
    "CREATE TABLE " name " (user_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"    \
    " notification TEXT NOT NULL, stored_at INTEGER NOT NULL, PRIMARY KEY (user_id, id))"

/* One gateway per SQLite file: the first to open it holds an exclusive
 * lock on PATH.lock for as long as it keeps any connection to it (its
 * store worker opens several); another process is refused at start. */
static struct {
    pthread_mutex_t mu;
    char path[4096];
    int fd, refs;
} held = {PTHREAD_MUTEX_INITIALIZER, "", -1, 0};

static int hold_file(const char *path, char *errstr, size_t size)
{
    int rc = 0;
    pthread_mutex_lock(&held.mu);
    if (held.refs && strcmp(held.path, path) == 0) {
        held.refs++;
    } else if (held.refs) {
        rc = -1; /* one store per process: never happens in the gateway */
        snprintf(errstr, size, "sqlite: this process holds %s already", held.path);
    } else {
        char lock[sizeof(held.path) + 8];
        snprintf(lock, sizeof(lock), "%s.lock", path);
        /* A folder that cannot hold it is said when the store is opened. */
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            snprintf(errstr, size, "the SQLite store %s is in use by another gateway (it holds %s): "
                     "a SQLite store serves one gateway; several share a MongoDB store", path, lock);
            close(fd);
            rc = -1;
        } else {
            snprintf(held.path, sizeof(held.path), "%s", path);
            held.fd = fd;
            held.refs = 1;
        }
    }
    pthread_mutex_unlock(&held.mu);
    return rc;
}

static void release_file(void)
{
    pthread_mutex_lock(&held.mu);
    if (held.refs && --held.refs == 0) {
        if (held.fd >= 0)
            close(held.fd);
        held.fd = -1;
        held.path[0] = '\0';
    }
    pthread_mutex_unlock(&held.mu);
}

struct sqlite_store {
    sqlite3 *db;
    sqlite3_stmt *insert, *select, *list, *delete, *count_user, *count_all;
    sqlite3_stmt *history_insert, *history_list, *archive;
    sqlite3_stmt *room_insert, *room_select, *cursor_select, *cursor_upsert;
    int64_t history_ms; /* 0: removals delete; else they move into history */
    int holds; /* counts in held.refs */
};

typedef struct sqlite_store sqlite_store_t;

static int fail(sqlite_store_t *st, char *errstr, size_t size, const char *what)
{
    snprintf(errstr, size, "%s: %s", what, st->db ? sqlite3_errmsg(st->db) : "out of memory");
    return -1;
}

static void sqlite_close(void *impl)
{
    sqlite_store_t *st = impl;
    if (!st)
        return;
    sqlite3_finalize(st->insert);
    sqlite3_finalize(st->select);
    sqlite3_finalize(st->list);
    sqlite3_finalize(st->history_insert);
    sqlite3_finalize(st->history_list);
    sqlite3_finalize(st->archive);
    sqlite3_finalize(st->delete);
    sqlite3_finalize(st->count_user);
    sqlite3_finalize(st->count_all);
    if (st->holds)
        release_file();
    sqlite3_finalize(st->room_insert);
    sqlite3_finalize(st->room_select);
    sqlite3_finalize(st->cursor_select);
    sqlite3_finalize(st->cursor_upsert);
    sqlite3_close(st->db);
    free(st);
}

/* Creates the folder the file goes in (data/ on a first run), one level. */
static void make_parent(const char *path)
{
    char dir[1024];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path || (size_t)(slash - path) >= sizeof(dir))
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    mkdir(dir, 0750); /* an error shows when the file cannot be opened */
}

static void *sqlite_open(const char *uri, const char *db, int timeout_ms, char *errstr,
                         size_t size)
{
    (void)db;
    const char *path = uri + strlen("sqlite:");
    if (strncmp(path, "//", 2) == 0) /* sqlite:///abs/path as URLs spell it */
        path += 2;
    if (!*path) {
        snprintf(errstr, size, "sqlite: needs a file path, e.g. sqlite:data/notifications.db");
        return NULL;
    }
    make_parent(path);
    if (hold_file(path, errstr, size) != 0)
        return NULL;
    /* Only the gateway's user reads what users were sent; SQLite gives its
     * journal files the database's mode. An existing file keeps its own. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    sqlite_store_t *st = xcalloc(1, sizeof(*st));
    st->holds = 1;
    /* FULLMUTEX: the store worker is the only user, but cheap insurance. */
    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        char what[300];
        snprintf(what, sizeof(what), "cannot open %s (does its folder exist?)", path);
        fail(st, errstr, size, what);
        sqlite_close(st);
        return NULL;
    }
    sqlite3_busy_timeout(st->db, timeout_ms);
    return st;
}

static int exec(sqlite_store_t *st, const char *sql, char *errstr, size_t size)
{
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail(st, errstr, size, sql);
    return 0;
}

static int64_t query_int(sqlite_store_t *st, const char *sql)
{
    sqlite3_stmt *stmt;
    int64_t v = -1;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* Each step takes the file from version i + 1 to i + 2, in one
 * transaction with the new user_version. */
static const char *const migrations[] = {
    /* 1 -> 2: keyed by (user_id, id); SQLite changes a key by a rebuild. */
    CREATE_TABLE("notifications_v2") ";"
    "INSERT INTO notifications_v2 (user_id, id, seq, notification, stored_at)"
    " SELECT user_id, id, seq, notification, stored_at FROM notifications;"
    "DROP TABLE notifications;"
    "ALTER TABLE notifications_v2 RENAME TO notifications;"
    "CREATE INDEX notifications_user_seq ON notifications (user_id, seq);",
    /* 2 -> 3: the history of acknowledged notifications. */
    "CREATE TABLE history (user_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " notification TEXT NOT NULL, acked_at INTEGER NOT NULL, PRIMARY KEY (user_id, id));"
    "CREATE INDEX history_user_seq ON history (user_id, seq);"
    "CREATE INDEX history_acked_at ON history (acked_at);",
    /* 3 -> 4: expiry ("ttl", "expiresAt"). */
    "ALTER TABLE notifications ADD COLUMN expires_at INTEGER;"
    "CREATE INDEX notifications_expires_at ON notifications (expires_at)"
    " WHERE expires_at IS NOT NULL;",
    /* 4 -> 5: rooms and broadcast, stored once, a cursor per user. */
    "CREATE TABLE room_notifications (stream TEXT NOT NULL, id TEXT NOT NULL,"
    " seq INTEGER NOT NULL, notification TEXT NOT NULL, type TEXT NOT NULL,"
    " stored_at INTEGER NOT NULL, expires_at INTEGER, PRIMARY KEY (stream, id));"
    "CREATE INDEX room_notifications_stream_seq ON room_notifications (stream, seq);"
    "CREATE INDEX room_notifications_stored_at ON room_notifications (stored_at);"
    "CREATE TABLE room_cursors (user_id TEXT NOT NULL, stream TEXT NOT NULL,"
    " acked_seq INTEGER NOT NULL, acked TEXT NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, stream));",
    /* 5 -> 6: seq is the record's place in Kafka from here on (the same on
     * every gateway; record_seq), above every seq before; an ack of all
     * asks by stored_at instead. A gateway of version 5 would write seqs
     * below the new ones: it refuses this file. */
    "CREATE INDEX notifications_user_stored_at ON notifications (user_id, stored_at);",
};

/* Brings the file to SCHEMA_VERSION: creates it, or migrates it forward. */
static int migrate(sqlite_store_t *st, char *errstr, size_t size)
{
    char sql[64];
    int64_t version = query_int(st, "PRAGMA user_version");
    int fresh = version == 0 &&
                query_int(st, "SELECT count(*) FROM sqlite_master WHERE name = 'notifications'") == 0;
    if (version == 0 && !fresh)
        version = 1; /* version 1 did not set user_version */
    if (version > SCHEMA_VERSION) {
        snprintf(errstr, size, "the store's schema is version %lld, newer than this gateway's "
                 "(%d): run a newer gateway", (long long)version, SCHEMA_VERSION);
        return -1;
    }
    if (version == SCHEMA_VERSION)
        return 0;
    if (exec(st, "BEGIN IMMEDIATE", errstr, size))
        return -1;
    /* A new file starts as version 2, then takes the later steps. */
    int rc = fresh ? exec(st, CREATE_TABLE("notifications") "; CREATE INDEX notifications_user_seq"
                              " ON notifications (user_id, seq)", errstr, size)
                   : 0;
    if (fresh)
        version = 2;
    for (int64_t v = version; rc == 0 && v < SCHEMA_VERSION; v++) {
        if (!fresh)
            log_info("migrating the SQLite store from schema version %lld to %lld",
                     (long long)v, (long long)v + 1);
        rc = exec(st, migrations[v - 1], errstr, size);
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
    if (rc || exec(st, sql, errstr, size) || exec(st, "COMMIT", errstr, size)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

static int sqlite_prepare(void *impl, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    if (st->insert)
        return 0;
    if (exec(st, "PRAGMA journal_mode=WAL", errstr, size) ||
        exec(st, "PRAGMA synchronous=FULL", errstr, size) || migrate(st, errstr, size))
        return -1;
    const struct {
        sqlite3_stmt **stmt;
        const char *sql;
    } stmts[] = {
        {&st->insert, "INSERT OR IGNORE INTO notifications (id, user_id, seq, notification, "
                      "stored_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"},
        {&st->select, "SELECT id, seq, notification, expires_at FROM notifications WHERE "
                      "user_id = ? AND seq > ? AND (expires_at IS NULL OR expires_at > ?4) "
                      "ORDER BY seq LIMIT ?3"},
        {&st->list, "SELECT id, seq, notification, expires_at FROM notifications WHERE "
                    "user_id = ? AND seq < ? AND (expires_at IS NULL OR expires_at > ?4) "
                    "ORDER BY seq DESC LIMIT ?3"},
        {&st->delete, "DELETE FROM notifications WHERE id = ? AND user_id = ?"},
        {&st->history_insert, "INSERT OR IGNORE INTO history (id, user_id, seq, notification, "
                              "acked_at) VALUES (?, ?, ?, ?, ?)"},
        {&st->history_list, "SELECT id, seq, notification, acked_at FROM history WHERE "
                            "user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"},
        {&st->archive, "INSERT OR IGNORE INTO history (id, user_id, seq, notification, acked_at)"
                       " SELECT id, user_id, seq, notification, ? FROM notifications"
                       " WHERE id = ? AND user_id = ?"},
        {&st->count_user, "SELECT count(*) FROM notifications WHERE user_id = ?"},
        {&st->count_all, "SELECT count(*) FROM notifications"},
        {&st->room_insert, "INSERT OR IGNORE INTO room_notifications (stream, id, seq, "
                           "notification, type, stored_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)"},
        {&st->room_select, "SELECT id, seq, notification, type, stored_at, expires_at FROM "
                           "room_notifications WHERE stream = ?1 AND seq > ?2 AND stored_at >= ?3"
                           " AND (expires_at IS NULL OR expires_at > ?4) ORDER BY seq LIMIT ?5"},
        {&st->cursor_select, "SELECT acked_seq, acked FROM room_cursors WHERE user_id = ? AND "
                             "stream = ?"},
        /* A cursor never moves back: a late write of an older one keeps the newer seq. */
        {&st->cursor_upsert, "INSERT INTO room_cursors (user_id, stream, acked_seq, acked, "
                             "updated_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id, stream)"
                             " DO UPDATE SET acked = CASE WHEN excluded.acked_seq >= acked_seq "
                             "THEN excluded.acked ELSE acked END, acked_seq = max(acked_seq, "
                             "excluded.acked_seq), updated_at = excluded.updated_at"},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        if (sqlite3_prepare_v2(st->db, stmts[i].sql, -1, stmts[i].stmt, NULL) != SQLITE_OK)
            return fail(st, errstr, size, "cannot prepare a statement");
    }
    return 0;
}

/* Runs step(i) for i < n inside one transaction: one fsync per batch.
 * Returns the rows changed, or -1. */
static int64_t in_transaction(sqlite_store_t *st, size_t n, sqlite3_stmt *stmt,
                              void (*bind)(sqlite3_stmt *, const void *, size_t), const void *arg,
                              const char *what, char *errstr, size_t size)
{
    int64_t changed = 0;
    if (exec(st, "BEGIN IMMEDIATE", errstr, size))
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        bind(stmt, arg, i);
        if (sqlite3_step(stmt) != SQLITE_DONE) {
            fail(st, errstr, size, what);
            sqlite3_reset(stmt);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        changed += sqlite3_changes(st->db);
    }
    sqlite3_reset(stmt);
    if (exec(st, "COMMIT", errstr, size)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return changed;
}

/* An expiry (wall-clock ms), NULL for never (0). */
static void bind_expiry(sqlite3_stmt *stmt, int col, int64_t expires_at)
{
    if (expires_at)
        sqlite3_bind_int64(stmt, col, expires_at);
    else
        sqlite3_bind_null(stmt, col);
}

/* The fifth column: when it was stored, or (history) acknowledged. */
static void bind_doc(sqlite3_stmt *stmt, const void *arg, size_t i)
{
    const store_doc_t *d = (const store_doc_t *)arg + i;
    sqlite3_bind_text(stmt, 1, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, d->user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, d->seq);
    sqlite3_bind_text(stmt, 4, d->frame, (int)d->frame_len, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, d->acked_at    ? d->acked_at
                                : d->stored_at ? d->stored_at
                                               : now_wall_ms());
    if (sqlite3_bind_parameter_count(stmt) >= 6) /* notifications, not the history */
        bind_expiry(stmt, 6, d->expires_at);
}

static int sqlite_history_put(void *impl, const store_doc_t *docs, size_t n, char *errstr,
                              size_t size)
{
    sqlite_store_t *st = impl;
    return in_transaction(st, n, st->history_insert, bind_doc, docs,
                          "cannot keep acknowledged notifications", errstr, size) < 0 ? -1 : 0;
}

static void sqlite_keep_history(void *impl, int64_t retention_ms)
{
    ((sqlite_store_t *)impl)->history_ms = retention_ms;
}

static int sqlite_put(void *impl, const store_doc_t *docs, size_t n, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    return in_transaction(st, n, st->insert, bind_doc, docs, "cannot store notifications", errstr,
                          size) < 0 ? -1 : 0;
}

struct removal {
    const char *const *users, *const *ids;
    int64_t now;
};

static void bind_removal(sqlite3_stmt *stmt, const void *arg, size_t i)
{
    const struct removal *r = arg;
    sqlite3_bind_text(stmt, 1, r->ids[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, r->users[i], -1, SQLITE_STATIC);
}

static void bind_archive(sqlite3_stmt *stmt, const void *arg, size_t i)
{
    const struct removal *r = arg;
    sqlite3_bind_int64(stmt, 1, r->now);
    sqlite3_bind_text(stmt, 2, r->ids[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, r->users[i], -1, SQLITE_STATIC);
}

/* With a history, what is deleted is first copied there: two
 * transactions, the copy idempotent, so a failure between them is mended
 * by the retry. */
static int64_t sqlite_remove(void *impl, const char *const *users, const char *const *ids,
                             size_t n, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    struct removal r = {users, ids, now_wall_ms()};
    if (st->history_ms && in_transaction(st, n, st->archive, bind_archive, &r,
                                         "cannot keep acknowledged notifications", errstr,
                                         size) < 0)
        return -1;
    return in_transaction(st, n, st->delete, bind_removal, &r,
                          "cannot delete acknowledged notifications", errstr, size);
}

/* The {user, seq} index makes each user's read cheap: one query each. */
static int sqlite_fetch(void *impl, store_read_t *reads, size_t n, store_fetch_cb cb, void *arg,
                        char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    int count = 0, rc = SQLITE_DONE;
    int64_t now = now_wall_ms();

    for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
        store_read_t *r = &reads[i];
        size_t found = 0;
        sqlite3_reset(st->select);
        sqlite3_bind_text(st->select, 1, r->user, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st->select, 2, r->after_seq);
        sqlite3_bind_int64(st->select, 3, (sqlite3_int64)r->limit);
        sqlite3_bind_int64(st->select, 4, now);
        while ((rc = sqlite3_step(st->select)) == SQLITE_ROW) {
            store_doc_t d = {
                .id = (const char *)sqlite3_column_text(st->select, 0),
                .user = r->user,
                .seq = sqlite3_column_int64(st->select, 1),
                .frame = (const char *)sqlite3_column_text(st->select, 2),
                .frame_len = (size_t)sqlite3_column_bytes(st->select, 2),
                .expires_at = sqlite3_column_int64(st->select, 3),
            };
            found++;
            if (d.id && d.frame) {
                cb(arg, i, &d);
                count++;
            }
        }
        r->more = found == r->limit;
    }
    if (rc != SQLITE_DONE)
        count = fail(st, errstr, size, "cannot read stored notifications");
    sqlite3_reset(st->select);
    return count;
}

/* The same index, read backwards. */
static int sqlite_list(void *impl, store_table_t table, const char *user, int64_t before_seq,
                       size_t limit, store_fetch_cb cb, void *arg, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    sqlite3_stmt *q = table == STORE_HISTORY ? st->history_list : st->list;
    int count = 0, rc;
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, before_seq);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)limit);
    if (table == STORE_PENDING)
        sqlite3_bind_int64(q, 4, now_wall_ms());
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        store_doc_t d = {
            .id = (const char *)sqlite3_column_text(q, 0),
            .user = user,
            .seq = sqlite3_column_int64(q, 1),
            .frame = (const char *)sqlite3_column_text(q, 2),
            .frame_len = (size_t)sqlite3_column_bytes(q, 2),
            .acked_at = table == STORE_HISTORY ? sqlite3_column_int64(q, 3) : 0,
            .expires_at = table == STORE_PENDING ? sqlite3_column_int64(q, 3) : 0,
        };
        if (d.id && d.frame) {
            cb(arg, 0, &d);
            count++;
        }
    }
    if (rc != SQLITE_DONE)
        count = fail(st, errstr, size, "cannot list stored notifications");
    sqlite3_reset(q);
    return count;
}

static int64_t sqlite_count(void *impl, const char *user, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    sqlite3_stmt *stmt = user ? st->count_user : st->count_all;
    int64_t n = -1;

    sqlite3_reset(stmt);
    if (user)
        sqlite3_bind_text(stmt, 1, user, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        n = sqlite3_column_int64(stmt, 0);
    else
        fail(st, errstr, size, "cannot count stored notifications");
    sqlite3_reset(stmt);
    return n;
}

/* Runs a DELETE with its parameters bound in order (text first, when
 * given, then num), returning the rows it removed, or -1 (errstr: what,
 * and SQLite's reason). */
static int64_t change(sqlite_store_t *st, const char *sql, const char *text, int64_t num,
                      const char *what, char *errstr, size_t size)
{
    sqlite3_stmt *stmt;
    int64_t n = -1;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) == SQLITE_OK) {
        if (text)
            sqlite3_bind_text(stmt, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, text ? 2 : 1, num);
        if (sqlite3_step(stmt) == SQLITE_DONE)
            n = sqlite3_changes(st->db);
    }
    if (n < 0)
        fail(st, errstr, size, what);
    sqlite3_finalize(stmt);
    return n;
}

static int64_t sqlite_expire(void *impl, size_t max_per_user, int64_t stored_before_ms,
                             char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    int64_t total = 0;

    if (max_per_user) {
        sqlite3_stmt *over;
        if (sqlite3_prepare_v2(st->db,
                               "SELECT user_id FROM notifications GROUP BY user_id"
                               " HAVING count(*) > ?",
                               -1, &over, NULL) != SQLITE_OK)
            return fail(st, errstr, size, "cannot count pending notifications per user");
        sqlite3_bind_int64(over, 1, (int64_t)max_per_user);
        while (total >= 0 && sqlite3_step(over) == SQLITE_ROW) {
            char user[NOTIF_USER_MAX + 1];
            snprintf(user, sizeof(user), "%s", (const char *)sqlite3_column_text(over, 0));
            /* Everything up to the newest one beyond the limit. */
            int64_t n = change(st,
                               "DELETE FROM notifications WHERE user_id = ?1 AND seq <= (SELECT seq"
                               " FROM notifications WHERE user_id = ?1 ORDER BY seq DESC LIMIT 1"
                               " OFFSET ?2)",
                               user, (int64_t)max_per_user, "cannot expire pending notifications",
                               errstr, size);
            if (n > 0)
                log_warn("expired the %lld oldest pending notifications of user %s: over the "
                         "limit of %zu (--max-pending-per-user)",
                         (long long)n, user, max_per_user);
            total = n < 0 ? -1 : total + n;
        }
        sqlite3_finalize(over);
    }
    if (total >= 0 && stored_before_ms) {
        int64_t n = change(st, "DELETE FROM notifications WHERE stored_at < ?", NULL,
                           stored_before_ms, "cannot expire pending notifications", errstr, size);
        total = n < 0 ? -1 : total + n;
    }
    return total;
}

static int64_t sqlite_expire_due(void *impl, int64_t now_ms, char *errstr, size_t size)
{
    return change(impl, "DELETE FROM notifications WHERE expires_at <= ?", NULL, now_ms,
                  "cannot delete expired notifications", errstr, size);
}

static int64_t sqlite_remove_through(void *impl, const char *user, int64_t before_ms,
                                     char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    char archive[256];
    snprintf(archive, sizeof(archive),
             "INSERT OR IGNORE INTO history (id, user_id, seq, notification, acked_at) SELECT id,"
             " user_id, seq, notification, %lld FROM notifications WHERE user_id = ? AND "
             "stored_at < ?",
             (long long)now_wall_ms());
    if (st->history_ms && change(st, archive, user, before_ms,
                                 "cannot keep acknowledged notifications", errstr, size) < 0)
        return -1;
    return change(st, "DELETE FROM notifications WHERE user_id = ? AND stored_at < ?", user,
                  before_ms, "cannot delete acknowledged notifications", errstr, size);
}

static int64_t sqlite_history_expire(void *impl, int64_t acked_before_ms, char *errstr,
                                     size_t size)
{
    return change(impl, "DELETE FROM history WHERE acked_at < ?", NULL, acked_before_ms,
                  "cannot delete the history past its retention", errstr, size);
}

static void bind_room_doc(sqlite3_stmt *stmt, const void *arg, size_t i)
{
    const room_doc_t *d = (const room_doc_t *)arg + i;
    sqlite3_bind_text(stmt, 1, d->stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, d->seq);
    sqlite3_bind_text(stmt, 4, d->frame, (int)d->frame_len, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, d->type ? d->type : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 6, d->stored_at);
    bind_expiry(stmt, 7, d->expires_at);
}

static int sqlite_room_put(void *impl, const room_doc_t *docs, size_t n, char *errstr,
                           size_t size)
{
    sqlite_store_t *st = impl;
    return in_transaction(st, n, st->room_insert, bind_room_doc, docs,
                          "cannot store room notifications", errstr, size) < 0 ? -1 : 0;
}

static int sqlite_room_fetch(void *impl, const char *stream, int64_t after_seq,
                             int64_t stored_since_ms, int64_t now_ms, size_t limit, room_doc_cb cb,
                             void *arg, int *more, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    sqlite3_stmt *q = st->room_select;
    int count = 0, rc;
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, after_seq);
    sqlite3_bind_int64(q, 3, stored_since_ms);
    sqlite3_bind_int64(q, 4, now_ms);
    sqlite3_bind_int64(q, 5, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        room_doc_t d = {
            .stream = stream,
            .id = (const char *)sqlite3_column_text(q, 0),
            .seq = sqlite3_column_int64(q, 1),
            .frame = (const char *)sqlite3_column_text(q, 2),
            .frame_len = (size_t)sqlite3_column_bytes(q, 2),
            .type = (const char *)sqlite3_column_text(q, 3),
            .stored_at = sqlite3_column_int64(q, 4),
            .expires_at = sqlite3_column_int64(q, 5),
        };
        if (d.id && d.frame) {
            cb(arg, &d);
            count++;
        }
    }
    if (rc != SQLITE_DONE)
        count = fail(st, errstr, size, "cannot read room notifications");
    *more = count >= 0 && (size_t)count == limit;
    sqlite3_reset(q);
    return count;
}

/* One indexed lookup per user and stream: local, cheap. */
static int sqlite_cursor_get(void *impl, const char *const *users, size_t nusers,
                             const char *const *streams, size_t nstreams, room_cursor_cb cb,
                             void *arg, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    sqlite3_stmt *q = st->cursor_select;
    int count = 0;
    for (size_t u = 0; u < nusers && count >= 0; u++) {
        for (size_t i = 0; i < nstreams; i++) {
            sqlite3_reset(q);
            sqlite3_bind_text(q, 1, users[u], -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, streams[i], -1, SQLITE_STATIC);
            int rc = sqlite3_step(q);
            if (rc == SQLITE_ROW) {
                const char *acked = (const char *)sqlite3_column_text(q, 1);
                room_cursor_t c = {users[u], streams[i], sqlite3_column_int64(q, 0),
                                   acked ? acked : ""};
                cb(arg, &c);
                count++;
            } else if (rc != SQLITE_DONE) {
                count = fail(st, errstr, size, "cannot read cursors");
                break;
            }
        }
    }
    sqlite3_reset(q);
    return count;
}

static void bind_cursor(sqlite3_stmt *stmt, const void *arg, size_t i)
{
    const room_cursor_t *c = (const room_cursor_t *)arg + i;
    sqlite3_bind_text(stmt, 1, c->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, c->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, c->acked_seq);
    sqlite3_bind_text(stmt, 4, c->acked ? c->acked : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, now_wall_ms());
}

static int sqlite_cursor_put(void *impl, const room_cursor_t *cursors, size_t n, char *errstr,
                             size_t size)
{
    sqlite_store_t *st = impl;
    return in_transaction(st, n, st->cursor_upsert, bind_cursor, cursors, "cannot write cursors",
                          errstr, size) < 0 ? -1 : 0;
}

static int64_t sqlite_room_expire(void *impl, int64_t stored_before_ms, int64_t now_ms,
                                  char *errstr, size_t size)
{
    int64_t old = change(impl, "DELETE FROM room_notifications WHERE stored_at < ?", NULL,
                         stored_before_ms, "cannot delete room notifications past retention",
                         errstr, size);
    int64_t due = old < 0 ? -1
                          : change(impl, "DELETE FROM room_notifications WHERE expires_at <= ?",
                                   NULL, now_ms, "cannot delete expired room notifications",
                                   errstr, size);
    return due < 0 ? -1 : old + due;
}

static int sqlite_ping(void *impl, char *errstr, size_t size)
{
    sqlite_store_t *st = impl;
    return query_int(st, "SELECT count(*) FROM sqlite_master") < 0
               ? fail(st, errstr, size, "cannot read the store")
               : 0;
}

const struct store_backend store_sqlite_backend = {
    .name = "SQLite",
    .open = sqlite_open,
    .prepare = sqlite_prepare,
    .put = sqlite_put,
    .fetch = sqlite_fetch,
    .list = sqlite_list,
    .keep_history = sqlite_keep_history,
    .history_put = sqlite_history_put,
    .history_expire = sqlite_history_expire,
    .remove = sqlite_remove,
    .remove_through = sqlite_remove_through,
    .count = sqlite_count,
    .ping = sqlite_ping,
    .expire = sqlite_expire,
    .expire_due = sqlite_expire_due,
    .room_put = sqlite_room_put,
    .room_fetch = sqlite_room_fetch,
    .cursor_get = sqlite_cursor_get,
    .cursor_put = sqlite_cursor_put,
    .room_expire = sqlite_room_expire,
    .close = sqlite_close,
};
