/* The offline store: notifications kept for users who are not connected.
 *
 * Semantics every backend keeps: idempotent by (user, notification id): a
 * second put of the same id for the same user is a no-op, while two users
 * may have notifications with the same id; ordered per user by seq; the
 * data's schema is versioned and store_prepare migrates it forward; a
 * notification leaves through store_remove, which the gateway calls after
 * a client acknowledged it, or by expiring (store_expire, store_expire_due). Calls block: they run on the store
 * worker thread, never on the event loop. */
#ifndef CONSUMER_STORE_H
#define CONSUMER_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

typedef struct store_doc {
    const char *id;
    const char *user;
    const char *frame; /* the notification's JSON, as sent to clients */
    size_t frame_len;
    int64_t seq;
    int64_t acked_at; /* history: when it was acknowledged (wall-clock ms) */
    int64_t expires_at; /* pending: when it expires (wall-clock ms), 0: never */
    int64_t stored_at;  /* pending: when it was handed to the store (wall-clock ms), 0: now */
} store_doc_t;

/* Which notifications: pending (stored for delivery), or acknowledged and
 * kept in the history (store_keep_history). */
typedef enum { STORE_PENDING, STORE_HISTORY } store_table_t;

/* One user's part of a read (store_fetch). */
typedef struct store_read {
    const char *user;
    int64_t after_seq;
    size_t limit;
    /* Set by store_fetch: what was passed may not be all the user has
     * above after_seq (the limit was reached, or the answer was cut). */
    int more;
} store_read_t;

/* Called for each fetched notification of reads[read], oldest first; doc
 * is valid only during the call. */
typedef void (*store_fetch_cb)(void *arg, size_t read, const store_doc_t *doc);

/* Opens the store named by uri: mongodb://… or mongodb+srv://… (database
 * db, collection "notifications"), or sqlite:PATH (a file, created if
 * missing). A bad URI fails here; an unreachable server in store_prepare.
 * Each call then fails after timeout_ms rather than hang (MongoDB: the
 * socket timeout unless the URI sets its own; SQLite: a locked file), and
 * the store worker retries it. */
store_t *store_open(const char *uri, const char *db, int timeout_ms, char *errstr,
                    size_t errstr_size);
/* "MongoDB" or "SQLite", for logs. */
const char *store_name(const store_t *st);
/* Reaches the server, migrates the data to the current schema version
 * (refusing a newer one) and makes sure the indexes exist. Returns 0 or
 * -1 with errstr. */
int store_prepare(store_t *st, char *errstr, size_t errstr_size);
void store_close(store_t *st);

/* Makes every doc durable. Returns 0 when all are stored (or were already),
 * -1 with errstr otherwise; the caller retries the whole batch. */
int store_put(store_t *st, const store_doc_t *docs, size_t n, char *errstr, size_t errstr_size);

/* For each of n reads of distinct users, up to its limit of the user's
 * notifications with seq above its after_seq, oldest first, and its
 * `more`. One call for many users: a store that scans its collection for
 * every filter (no usable index) then scans once, not once per user.
 * Returns how many were passed to cb, or -1 with errstr. */
int store_fetch(store_t *st, store_read_t *reads, size_t n, store_fetch_cb cb, void *arg,
                char *errstr, size_t errstr_size);

/* Up to limit of user's notifications in table with seq below before_seq,
 * newest first (the inbox), each passed to cb with read 0. Returns how
 * many, or -1 with errstr. */
int store_list(store_t *st, store_table_t table, const char *user, int64_t before_seq,
               size_t limit, store_fetch_cb cb, void *arg, char *errstr, size_t errstr_size);

/* The history of acknowledged notifications, kept retention_ms (0, the
 * default: none). With it, store_remove and store_remove_through move what
 * they delete into the history, acknowledged now; store_expire also
 * deletes what was acknowledged longer ago than that (and a MongoDB server
 * does so by itself, by a TTL index). Before store_prepare. */
void store_keep_history(store_t *st, int64_t retention_ms);
/* Adds docs (acked_at set) to the history: acknowledged ones that were
 * never stored. Idempotent by (user, id). Returns 0 or -1. */
int store_history_put(store_t *st, const store_doc_t *docs, size_t n, char *errstr,
                      size_t errstr_size);

/* Deletes the notifications ids[i] of users[i]. Returns how many there
 * were, or -1. */
int64_t store_remove(store_t *st, const char *const *users, const char *const *ids, size_t n,
                     char *errstr, size_t errstr_size);
/* Deletes every notification of user handed to the store before
 * before_ms (wall-clock ms: an acknowledgement of all that were there when
 * it was asked; seq cannot say, it orders by place in Kafka, not by time).
 * Returns how many, or -1. */
int64_t store_remove_through(store_t *st, const char *user, int64_t before_ms, char *errstr,
                             size_t errstr_size);

/* Deletes the pending notifications whose expires_at is at or before
 * now_ms (their "ttl" or "expiresAt"); store_fetch and store_list already
 * skip them. Returns how many, or -1 with errstr. */
int64_t store_expire_due(store_t *st, int64_t now_ms, char *errstr, size_t errstr_size);

/* ---- Rooms and broadcast: stored once, a cursor per user ----
 *
 * A room or broadcast notification is kept once, in its stream ("room:<name>"
 * or "broadcast"), idempotent by (stream, id), ordered by a per-stream seq;
 * it leaves by retention or expiry, never by an ack. What a user has read
 * of a stream is a cursor: every seq up to acked_seq, and the ids in acked
 * above it (acks come out of order). */

typedef struct room_doc {
    const char *stream;
    const char *id;
    const char *frame; /* the frame without "userId": each receiver's is added */
    size_t frame_len;
    const char *type;  /* "" when none: the type filters read it */
    int64_t seq;
    int64_t stored_at;  /* wall-clock ms: retention counts from it */
    int64_t expires_at; /* 0: never */
} room_doc_t;

typedef struct room_cursor {
    const char *user;
    const char *stream;
    int64_t acked_seq;
    const char *acked; /* ids above acked_seq, separated by spaces; "" when none */
} room_cursor_t;

typedef void (*room_doc_cb)(void *arg, const room_doc_t *doc);
typedef void (*room_cursor_cb)(void *arg, const room_cursor_t *cursor);

/* Makes every doc durable; a second put of (stream, id) is a no-op.
 * Returns 0 or -1 with errstr; the caller retries the whole batch. */
int store_room_put(store_t *st, const room_doc_t *docs, size_t n, char *errstr,
                   size_t errstr_size);
/* Up to limit of stream's notifications with seq above after_seq, stored
 * at or after stored_since_ms and not expired at now_ms, oldest first, each
 * passed to cb; *more: there may be more. Returns how many, or -1. */
int store_room_fetch(store_t *st, const char *stream, int64_t after_seq, int64_t stored_since_ms,
                     int64_t now_ms, size_t limit, room_doc_cb cb, void *arg, int *more,
                     char *errstr, size_t errstr_size);
/* The cursors of nusers users of nstreams streams that have one, each
 * passed to cb: one read for many users (a connect storm). Returns how
 * many, or -1. */
int store_cursor_get(store_t *st, const char *const *users, size_t nusers,
                     const char *const *streams, size_t nstreams, room_cursor_cb cb, void *arg,
                     char *errstr, size_t errstr_size);
/* Writes each cursor (one per user and stream); a write never moves
 * acked_seq back. Returns 0 or -1. */
int store_cursor_put(store_t *st, const room_cursor_t *cursors, size_t n, char *errstr,
                     size_t errstr_size);
/* Deletes the stream notifications stored before stored_before_ms
 * (retention) or expired at now_ms. Returns how many, or -1. */
int64_t store_room_expire(store_t *st, int64_t stored_before_ms, int64_t now_ms, char *errstr,
                          size_t errstr_size);

/* Whether the server answers: a cheap round trip. 0 or -1 with errstr. */
int store_ping(store_t *st, char *errstr, size_t errstr_size);

/* Stored notifications for user, or for everyone when user is NULL; -1 on error. */
int64_t store_count(store_t *st, const char *user, char *errstr, size_t errstr_size);

/* Expires pending notifications nobody will read in time: of each user,
 * all but the newest max_per_user (0: no limit), and every one stored
 * before stored_before_ms (wall clock; 0: none). Logs each user's expiry;
 * returns how many were expired, or -1 with errstr. Also deletes the
 * history past its retention (not counted). */
int64_t store_expire(store_t *st, size_t max_per_user, int64_t stored_before_ms, char *errstr,
                     size_t errstr_size);

#endif
