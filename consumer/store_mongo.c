/* The MongoDB backend of the offline store.
 *
 * Collection "notifications", one document per stored notification:
 *   {_id: "<userId>/<id>", id, userId, seq: <int64>, notification: <JSON text>,
 *    storedAt: <date>, expiresAt: <date>?}
 * _id is the (user, id) pair ('/' is in neither), so puts are idempotent
 * per user and two users' notifications with the same id are two
 * documents; the index {userId: 1, seq: 1} serves "this user's pending,
 * oldest first".
 *
 * The schema's version is the document {_id: "schema", version: N} in the
 * collection "meta"; start-up runs the forward migrations to
 * SCHEMA_VERSION:
 *   1  (no meta document) _id = id alone;
 *   2  _id = "<userId>/<id>", with the id in its own field. _id cannot
 *      change in place: each document is copied under its new _id, then
 *      the old one deleted, in batches (a crash in between repeats a batch
 *      harmlessly: copies are idempotent);
 *   3  the collection "history" of acknowledged notifications: the same
 *      documents with ackedAt (a date: its TTL index expires them), an
 *      index {userId: 1, seq: 1};
 *   4  expiresAt, set on notifications that expire ("ttl", "expiresAt"):
 *      reads skip what has expired, a TTL index deletes it where the
 *      server has one, and the gateway's sweep everywhere. Documents of
 *      version 3 have none: nothing to change;
 *   5  rooms and broadcast: "room_notifications", one document per stream
 *      notification {_id: "<stream>/<id>", stream, id, seq, notification,
 *      type, storedAt, expiresAt?}, index {stream: 1, seq: 1}; and
 *      "room_cursors" {_id: "<userId>/<stream>", userId, stream, ackedSeq,
 *      acked, updatedAt}, written with $max on ackedSeq;
 *   6  seq is the record's place in Kafka (record_seq: 2^62 and over, the
 *      same on every gateway), so documents of version 5 and before (a
 *      clock's µs) come first; an ack of all deletes by storedAt, with an
 *      index {userId: 1, storedAt: 1}. Nothing to rewrite.
 * Migrations and expiry are store_mongo_upkeep.c's. */
#include "store_backend.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_mongo_internal.h"
#include "timeutil.h"
#include "xalloc.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The driver's own lines join ours; its warnings are mostly about servers
 * that lack an optional command (FerretDB has no endSessions), so they
 * only show at debug level. */
static void on_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message,
                          void *arg)
{
    (void)arg;
    if (level <= MONGOC_LOG_LEVEL_ERROR)
        log_error("mongoc %s: %s", domain, message);
    else
        log_debug("mongoc %s: %s", domain, message);
}

static void mongo_init(void)
{
    mongoc_init();
    mongoc_log_set_handler(on_mongoc_log, NULL);
}

int mongo_set_err(char *errstr, size_t size, const char *what, const bson_error_t *err)
{
    snprintf(errstr, size, "%s: %s", what, err->message);
    return -1;
}

static void mongo_close(void *impl);

static void *mongo_open(const char *uri_string, const char *db, int timeout_ms, char *errstr,
                        size_t size)
{
    bson_error_t err;
    mongo_store_t *st = NULL;

    pthread_once(&init_once, mongo_init);
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_string, &err);
    if (!uri) {
        mongo_set_err(errstr, size, "invalid MongoDB URI", &err);
        return NULL;
    }
    /* Fail a write in seconds rather than the driver's 30 s when the server
     * is down, so the worker can report it and retry. */
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    /* A call that hangs (a frozen server) fails after the store timeout
     * and is retried: writes are idempotent. */
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, timeout_ms);
    /* A put must be durable before its Kafka offset is committed: journaled,
     * unless the URI asks for a write concern of its own (w=majority…). */
    if (mongoc_write_concern_is_default(mongoc_uri_get_write_concern(uri))) {
        mongoc_write_concern_t *wc = mongoc_write_concern_new();
        mongoc_write_concern_set_journal(wc, true);
        mongoc_uri_set_write_concern(uri, wc);
        mongoc_write_concern_destroy(wc);
    }

    st = xcalloc(1, sizeof(*st));
    st->client = mongoc_client_new_from_uri_with_error(uri, &err);
    if (!st->client) {
        mongo_set_err(errstr, size, "cannot create a MongoDB client", &err);
        goto fail;
    }
    mongoc_client_set_appname(st->client, "notification-gateway");
    mongoc_client_set_error_api(st->client, MONGOC_ERROR_API_VERSION_2);
    st->coll = mongoc_client_get_collection(st->client, db, COLLECTION);
    st->meta = mongoc_client_get_collection(st->client, db, META_COLLECTION);
    st->history = mongoc_client_get_collection(st->client, db, HISTORY_COLLECTION);
    st->rooms = mongoc_client_get_collection(st->client, db, ROOMS_COLLECTION);
    st->cursors = mongoc_client_get_collection(st->client, db, CURSORS_COLLECTION);
    mongoc_uri_destroy(uri);
    return st;

fail:
    mongoc_uri_destroy(uri);
    mongo_close(st);
    return NULL;
}

static void mongo_close(void *impl)
{
    mongo_store_t *st = impl;
    if (!st)
        return;
    if (st->coll)
        mongoc_collection_destroy(st->coll);
    if (st->meta)
        mongoc_collection_destroy(st->meta);
    if (st->history)
        mongoc_collection_destroy(st->history);
    if (st->rooms)
        mongoc_collection_destroy(st->rooms);
    if (st->cursors)
        mongoc_collection_destroy(st->cursors);
    if (st->client)
        mongoc_client_destroy(st->client);
    free(st);
}

/* Whether every write error in an insert reply is a duplicate key: those
 * notifications were stored before, which is what a put asks for. */
static int only_duplicates(const bson_t *reply)
{
    bson_iter_t it, errs;
    int seen = 0;

    if (bson_iter_init_find(&it, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_iter_t wce;
        if (bson_iter_recurse(&it, &wce) && bson_iter_next(&wce))
            return 0;
    }
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &errs))
        return 0;
    while (bson_iter_next(&errs)) {
        bson_iter_t e;
        if (!BSON_ITER_HOLDS_DOCUMENT(&errs) || !bson_iter_recurse(&errs, &e) ||
            !bson_iter_find(&e, "code") || bson_iter_as_int64(&e) != MONGO_DUPLICATE_KEY)
            return 0;
        seen++;
    }
    return seen > 0;
}

/* The _id of user's notification id. */
const char *mongo_key_of(const char *user, const char *id, char key[KEY_MAX])
{
    snprintf(key, KEY_MAX, "%s/%s", user, id);
    return key;
}

/* A document of schema version 2. */
bson_t *mongo_new_doc(const char *id, const char *user, int64_t seq, const char *frame,
                       size_t frame_len, int64_t stored_at)
{
    char key[KEY_MAX];
    bson_t *b = bson_new();
    BSON_APPEND_UTF8(b, "_id", mongo_key_of(user, id, key));
    BSON_APPEND_UTF8(b, "id", id);
    BSON_APPEND_UTF8(b, "userId", user);
    BSON_APPEND_INT64(b, "seq", seq);
    bson_append_utf8(b, "notification", -1, frame, (int)frame_len);
    BSON_APPEND_DATE_TIME(b, "storedAt", stored_at);
    return b;
}

/* Inserts docs, unordered: one duplicate does not stop the rest, and a
 * duplicate is a document stored before, which is what a put asks for. */
int mongo_insert_docs(mongoc_collection_t *coll, bson_t **docs, size_t n, const char *what,
                      char *errstr, size_t size)
{
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t err;
    int rc = 0;

    BSON_APPEND_BOOL(&opts, "ordered", false);
    if (!mongoc_collection_insert_many(coll, (const bson_t **)docs, n, &opts, &reply, &err) &&
        !only_duplicates(&reply))
        rc = mongo_set_err(errstr, size, what, &err);
    bson_destroy(&reply);
    bson_destroy(&opts);
    for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
    return rc;
}

static int mongo_put(void *impl, const store_doc_t *docs, size_t n, char *errstr, size_t size)
{
    if (n == 0)
        return 0;
    bson_t **bdocs = xcalloc(n, sizeof(*bdocs));
    int64_t now = now_wall_ms();
    for (size_t i = 0; i < n; i++) {
        bdocs[i] = mongo_new_doc(docs[i].id, docs[i].user, docs[i].seq, docs[i].frame,
                                 docs[i].frame_len, docs[i].stored_at ? docs[i].stored_at : now);
        if (docs[i].expires_at)
            BSON_APPEND_DATE_TIME(bdocs[i], "expiresAt", docs[i].expires_at);
    }
    int rc = mongo_insert_docs(((mongo_store_t *)impl)->coll, bdocs, n,
                               "cannot store notifications", errstr, size);
    free(bdocs);
    return rc;
}

/* A stored document's fields into d, pointing into doc; one that is
 * missing or of another type stays NULL (or 0). Returns whether id,
 * userId, seq and notification are all there. */
static int doc_read(const bson_t *doc, store_doc_t *d)
{
    bson_iter_t it;
    uint32_t len = 0;
    int has_seq = 0;
    *d = (store_doc_t){0};
    if (bson_iter_init_find(&it, doc, "id") && BSON_ITER_HOLDS_UTF8(&it))
        d->id = bson_iter_utf8(&it, NULL);
    if (bson_iter_init_find(&it, doc, "userId") && BSON_ITER_HOLDS_UTF8(&it))
        d->user = bson_iter_utf8(&it, NULL);
    if (bson_iter_init_find(&it, doc, "seq")) {
        d->seq = bson_iter_as_int64(&it);
        has_seq = 1;
    }
    if (bson_iter_init_find(&it, doc, "notification") && BSON_ITER_HOLDS_UTF8(&it))
        d->frame = bson_iter_utf8(&it, &len);
    d->frame_len = len;
    if (bson_iter_init_find(&it, doc, "ackedAt") && BSON_ITER_HOLDS_DATE_TIME(&it))
        d->acked_at = bson_iter_date_time(&it);
    if (bson_iter_init_find(&it, doc, "expiresAt") && BSON_ITER_HOLDS_DATE_TIME(&it))
        d->expires_at = bson_iter_date_time(&it);
    return d->id && d->user && has_seq && d->frame;
}

static bson_t *history_doc(const store_doc_t *d)
{
    bson_t *b = mongo_new_doc(d->id, d->user, d->seq, d->frame, d->frame_len, 0);
    BSON_APPEND_DATE_TIME(b, "ackedAt", d->acked_at);
    return b;
}

static int mongo_history_put(void *impl, const store_doc_t *docs, size_t n, char *errstr,
                             size_t size)
{
    bson_t **bdocs = xcalloc(n, sizeof(*bdocs));
    for (size_t i = 0; i < n; i++)
        bdocs[i] = history_doc(&docs[i]);
    int rc = mongo_insert_docs(((mongo_store_t *)impl)->history, bdocs, n,
                               "cannot keep acknowledged notifications", errstr, size);
    free(bdocs);
    return rc;
}

static void mongo_keep_history(void *impl, int64_t retention_ms)
{
    ((mongo_store_t *)impl)->history_ms = retention_ms;
}

/* Copies the pending notifications of filter into the history,
 * acknowledged now, before they are deleted: idempotent, so a failure
 * between the two is mended by the retry. */
static int archive(mongo_store_t *st, const bson_t *filter, char *errstr, size_t size)
{
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->coll, filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t err;
    bson_t **copies = NULL;
    size_t n = 0, cap = 0;
    int64_t now = now_wall_ms();
    int rc = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        store_doc_t d;
        if (!doc_read(doc, &d))
            continue;
        d.acked_at = now;
        if (n == cap)
            copies = xrealloc(copies, (cap = cap ? 2 * cap : 64) * sizeof(*copies));
        copies[n++] = history_doc(&d);
    }
    if (mongoc_cursor_error(cur, &err))
        rc = mongo_set_err(errstr, size, "cannot read what is acknowledged", &err);
    mongoc_cursor_destroy(cur);
    if (rc == 0 && n)
        rc = mongo_insert_docs(st->history, copies, n, "cannot keep acknowledged notifications",
                               errstr, size);
    else
        for (size_t i = 0; i < n; i++)
            bson_destroy(copies[i]);
    free(copies);
    return rc;
}


/* createIndexes on coll: keys, named by them; ttl_s >= 0: a TTL index. */
static int create_index(mongoc_collection_t *coll, const bson_t *keys, int64_t ttl_s,
                        bson_error_t *err)
{
    char *name = mongoc_collection_keys_to_index_string(keys);
    bson_t *index = BCON_NEW("key", BCON_DOCUMENT(keys), "name", BCON_UTF8(name));
    if (ttl_s >= 0)
        BSON_APPEND_INT64(index, "expireAfterSeconds", ttl_s);
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(mongoc_collection_get_name(coll)),
                           "indexes", "[", BCON_DOCUMENT(index), "]");
    bson_t reply;
    int ok = mongoc_collection_write_command_with_opts(coll, cmd, NULL, &reply, err);
    bson_destroy(&reply);
    bson_destroy(cmd);
    bson_destroy(index);
    bson_free(name);
    return ok ? 0 : -1;
}

/* FerretDB 1.24 on SQLite stops answering, every connection, when two
 * clients each send an update command of several upserts to one
 * collection at once (two gateways writing room cursors); one upsert per
 * command does not. Its buildInfo names it. 1, 0, or -1: no answer. */
static int is_ferretdb(mongo_store_t *st, bson_error_t *err)
{
    bson_t *cmd = BCON_NEW("buildInfo", BCON_INT32(1)), reply;
    int rc = mongoc_client_command_simple(st->client, "admin", cmd, NULL, &reply, err)
                 ? bson_has_field(&reply, "ferretdbVersion")
                 : -1;
    bson_destroy(&reply);
    bson_destroy(cmd);
    return rc;
}

static int mongo_prepare(void *impl, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_error_t err;

    if (mongo_migrate(st, errstr, size) != 0)
        return -1;
    st->one_update_per_command = is_ferretdb(st, &err);
    if (st->one_update_per_command < 0)
        return mongo_set_err(errstr, size, "cannot ask the server what it is (buildInfo)", &err);
    bson_t *by_user = BCON_NEW("userId", BCON_INT32(1), "seq", BCON_INT32(1));
    bson_t *by_stream = BCON_NEW("stream", BCON_INT32(1), "seq", BCON_INT32(1));
    int rc = 0;
    if (create_index(st->coll, by_user, -1, &err) != 0 ||
        create_index(st->history, by_user, -1, &err) != 0)
        rc = mongo_set_err(errstr, size, "cannot create the index on userId and seq", &err);
    else if (create_index(st->rooms, by_stream, -1, &err) != 0)
        rc = mongo_set_err(errstr, size, "cannot create the index on stream and seq", &err);
    bson_t *by_stored = BCON_NEW("userId", BCON_INT32(1), "storedAt", BCON_INT32(1));
    if (rc == 0 && create_index(st->coll, by_stored, -1, &err) != 0)
        rc = mongo_set_err(errstr, size, "cannot create the index on userId and storedAt", &err);
    bson_destroy(by_stored);
    bson_destroy(by_stream);
    bson_destroy(by_user);
    /* Expired notifications: deleted at their expiresAt by the server's TTL
     * monitor where it has one, by the gateway's sweep everywhere (reads
     * skip them meanwhile). FerretDB 1.24 refuses the option: not fatal. */
    bson_t *expires = BCON_NEW("expiresAt", BCON_INT32(1));
    if (rc == 0 && (create_index(st->coll, expires, 0, &err) != 0 ||
                    create_index(st->rooms, expires, 0, &err) != 0))
        log_info("no TTL index on expiresAt (%s): the gateway deletes expired notifications "
                 "itself, every minute", err.message);
    bson_destroy(expires);
    if (rc == 0 && st->history_ms) {
        /* The gateway sweeps the history too: a server without TTL indexes,
         * or one made for another retention, still keeps it bounded. */
        bson_t *acked = BCON_NEW("ackedAt", BCON_INT32(1));
        if (create_index(st->history, acked, (st->history_ms + 999) / 1000, &err) != 0)
            log_warn("no TTL index on the history (%s): the gateway deletes what is past "
                     "--history-retention itself",
                     err.message);
        bson_destroy(acked);
    }
    return rc;
}

/* Appends to filter: not expired at now (no expiresAt, or a later one). */
static void append_unexpired(bson_t *filter, int64_t now)
{
    bson_t or, none, later, exists, gt;
    BSON_APPEND_ARRAY_BEGIN(filter, "$or", &or);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &none);
    BSON_APPEND_DOCUMENT_BEGIN(&none, "expiresAt", &exists);
    BSON_APPEND_BOOL(&exists, "$exists", false);
    bson_append_document_end(&none, &exists);
    bson_append_document_end(&or, &none);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &later);
    BSON_APPEND_DOCUMENT_BEGIN(&later, "expiresAt", &gt);
    BSON_APPEND_DATE_TIME(&gt, "$gt", now);
    bson_append_document_end(&later, &gt);
    bson_append_document_end(&or, &later);
    bson_append_array_end(filter, &or);
}

/* The most notifications one read asks for over all its users: the answer
 * is held in memory whole. */
#define FETCH_MAX_DOCS 16384

struct user_read {
    const char *user;
    size_t read;
};

static int by_reader(const void *a, const void *b)
{
    return strcmp(((const struct user_read *)a)->user, ((const struct user_read *)b)->user);
}

/* One find for all the reads: {userId: {$in: [users]}, seq: {$gt: the
 * smallest after_seq}}, sorted by seq; each user's part is then cut to
 * what is above its own after_seq and to its own limit here. A server
 * that scans the collection for every filter (no usable index: FerretDB
 * on SQLite) then scans once, not once a user ({$or: [per-user filters]}
 * was ten times slower there than one $in). The answer is limited to
 * twice the sum of the limits, leaving room for what a user was sent and
 * has not acknowledged yet (still stored, below its after_seq); sorted by
 * seq, a cut answer holds the oldest of all, so a user given fewer than
 * asked is told there may be more. */
static int mongo_fetch(void *impl, store_read_t *reads, size_t n, store_fetch_cb cb, void *arg,
                       char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    struct user_read *by_user = xmalloc(n * sizeof(*by_user));
    size_t *seen = xcalloc(n, sizeof(*seen));
    size_t asked = 0, returned = 0;
    int64_t after = INT64_MAX;
    bson_t filter = BSON_INITIALIZER, in, list, seq;
    char index[16];
    const char *k;
    bson_error_t err;
    const bson_t *doc;
    int count = 0;

    BSON_APPEND_DOCUMENT_BEGIN(&filter, "userId", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
    for (size_t i = 0; i < n; i++) {
        by_user[i] = (struct user_read){reads[i].user, i};
        asked += reads[i].limit * 2;
        if (reads[i].after_seq < after)
            after = reads[i].after_seq;
        bson_uint32_to_string((uint32_t)i, &k, index, sizeof(index));
        BSON_APPEND_UTF8(&list, k, reads[i].user);
    }
    bson_append_array_end(&in, &list);
    bson_append_document_end(&filter, &in);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "seq", &seq);
    BSON_APPEND_INT64(&seq, "$gt", after);
    bson_append_document_end(&filter, &seq);
    append_unexpired(&filter, now_wall_ms());
    if (asked > FETCH_MAX_DOCS)
        asked = FETCH_MAX_DOCS;
    qsort(by_user, n, sizeof(*by_user), by_reader);
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(1), "}", "limit",
                            BCON_INT64((int64_t)asked), "projection", "{", "id", BCON_INT32(1),
                            "userId", BCON_INT32(1), "seq", BCON_INT32(1), "notification",
                            BCON_INT32(1), "expiresAt", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->coll, &filter, opts, NULL);

    while (mongoc_cursor_next(cur, &doc)) {
        store_doc_t d;
        returned++;
        doc_read(doc, &d);
        struct user_read key = {d.user, 0};
        const struct user_read *who =
            d.user ? bsearch(&key, by_user, n, sizeof(*by_user), by_reader) : NULL;
        if (!who || d.seq <= reads[who->read].after_seq)
            continue; /* sent already, not acknowledged yet */
        if (seen[who->read]++ >= reads[who->read].limit)
            continue; /* past the user's limit: asked again later */
        if (!d.id || !d.frame) {
            log_warn("skipping a malformed stored document for user %s (no id or notification)",
                     d.user);
            continue;
        }
        cb(arg, who->read, &d);
        count++;
    }
    for (size_t i = 0; i < n; i++)
        reads[i].more = seen[i] >= reads[i].limit || returned >= asked;
    if (mongoc_cursor_error(cur, &err))
        count = mongo_set_err(errstr, size, "cannot read stored notifications", &err);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    free(seen);
    free(by_user);
    return count;
}

int64_t mongo_delete_counted(mongo_store_t *st, const bson_t *filter, const char *what,
                             char *errstr, size_t size)
{
    bson_error_t err;
    bson_t reply;
    bson_iter_t it;
    int64_t n = -1;
    if (!mongoc_collection_delete_many(st->coll, filter, NULL, &reply, &err))
        mongo_set_err(errstr, size, what, &err);
    else
        n = bson_iter_init_find(&it, &reply, "deletedCount") ? bson_iter_as_int64(&it) : 0;
    bson_destroy(&reply);
    return n;
}

/* Newest first: {userId, seq: {$lt}} sorted by seq descending, on the
 * {userId, seq} index. */
static int mongo_list(void *impl, store_table_t table, const char *user, int64_t before_seq,
                      size_t limit, store_fetch_cb cb, void *arg, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    mongoc_collection_t *coll = table == STORE_HISTORY ? st->history : st->coll;
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user), "seq", "{", "$lt",
                              BCON_INT64(before_seq), "}");
    if (table == STORE_PENDING)
        append_unexpired(filter, now_wall_ms());
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "limit",
                            BCON_INT64((int64_t)limit));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t err;
    int count = 0;

    while (mongoc_cursor_next(cur, &doc)) {
        store_doc_t d;
        doc_read(doc, &d);
        d.user = user;
        if (d.id && d.frame) {
            cb(arg, 0, &d);
            count++;
        }
    }
    if (mongoc_cursor_error(cur, &err))
        count = mongo_set_err(errstr, size, "cannot list stored notifications", &err);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return count;
}

/* One delete for the whole batch, {_id: {$in: [keys]}}: a server that
 * scans for every filter (FerretDB on SQLite) scans once. The key holds
 * the user, so an ack can delete only its owner's notification. */
static int64_t mongo_remove(void *impl, const char *const *users, const char *const *ids,
                            size_t n, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_t sel, in, list;
    char index[16], key[KEY_MAX];
    const char *k;

    if (n == 0)
        return 0;
    bson_init(&sel);
    BSON_APPEND_DOCUMENT_BEGIN(&sel, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
    for (size_t i = 0; i < n; i++) {
        bson_uint32_to_string((uint32_t)i, &k, index, sizeof(index));
        BSON_APPEND_UTF8(&list, k, mongo_key_of(users[i], ids[i], key));
    }
    bson_append_array_end(&in, &list);
    bson_append_document_end(&sel, &in);
    int64_t removed = st->history_ms && archive(st, &sel, errstr, size) != 0
                          ? -1
                          : mongo_delete_counted(st, &sel, "cannot delete acknowledged notifications",
                                                 errstr, size);
    bson_destroy(&sel);
    return removed;
}

static int64_t mongo_remove_through(void *impl, const char *user, int64_t before_ms,
                                    char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user), "storedAt", "{", "$lt",
                              BCON_DATE_TIME(before_ms), "}");
    int64_t removed = st->history_ms && archive(st, filter, errstr, size) != 0
                          ? -1
                          : mongo_delete_counted(st, filter,
                                                 "cannot delete acknowledged notifications", errstr,
                                                 size);
    bson_destroy(filter);
    return removed;
}

/* Also where the server's TTL monitor does it (every minute, on MongoDB),
 * or cannot (a server without one). */
static int64_t mongo_history_expire(void *impl, int64_t acked_before_ms, char *errstr,
                                    size_t size)
{
    mongo_store_t *st = impl;
    bson_t *filter = BCON_NEW("ackedAt", "{", "$lt", BCON_DATE_TIME(acked_before_ms), "}");
    bson_error_t err;
    int64_t n = mongoc_collection_delete_many(st->history, filter, NULL, NULL, &err)
                    ? 0
                    : mongo_set_err(errstr, size, "cannot delete the history past its retention",
                                    &err);
    bson_destroy(filter);
    return n;
}

static int64_t mongo_expire_due(void *impl, int64_t now_ms, char *errstr, size_t size)
{
    bson_t *due = BCON_NEW("expiresAt", "{", "$lte", BCON_DATE_TIME(now_ms), "}");
    int64_t n = mongo_delete_counted(impl, due, "cannot delete expired notifications", errstr,
                                     size);
    bson_destroy(due);
    return n;
}

static int mongo_room_put(void *impl, const room_doc_t *docs, size_t n, char *errstr,
                          size_t size)
{
    bson_t **bdocs = xcalloc(n, sizeof(*bdocs));
    for (size_t i = 0; i < n; i++) {
        char key[NOTIF_ROOM_MAX + 16 + NOTIF_ID_MAX];
        snprintf(key, sizeof(key), "%s/%s", docs[i].stream, docs[i].id);
        bdocs[i] = BCON_NEW("_id", BCON_UTF8(key), "stream", BCON_UTF8(docs[i].stream), "id",
                            BCON_UTF8(docs[i].id), "seq", BCON_INT64(docs[i].seq), "type",
                            BCON_UTF8(docs[i].type ? docs[i].type : ""), "storedAt",
                            BCON_DATE_TIME(docs[i].stored_at));
        bson_append_utf8(bdocs[i], "notification", -1, docs[i].frame, (int)docs[i].frame_len);
        if (docs[i].expires_at)
            BSON_APPEND_DATE_TIME(bdocs[i], "expiresAt", docs[i].expires_at);
    }
    int rc = mongo_insert_docs(((mongo_store_t *)impl)->rooms, bdocs, n,
                               "cannot store room notifications", errstr, size);
    free(bdocs);
    return rc;
}

static int mongo_room_fetch(void *impl, const char *stream, int64_t after_seq,
                            int64_t stored_since_ms, int64_t now_ms, size_t limit, room_doc_cb cb,
                            void *arg, int *more, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_t *filter = BCON_NEW("stream", BCON_UTF8(stream), "seq", "{", "$gt",
                              BCON_INT64(after_seq), "}", "storedAt", "{", "$gte",
                              BCON_DATE_TIME(stored_since_ms), "}");
    append_unexpired(filter, now_ms);
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(1), "}", "limit",
                            BCON_INT64((int64_t)limit));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->rooms, filter, opts, NULL);
    const bson_t *doc;
    bson_error_t err;
    int count = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        uint32_t len = 0;
        room_doc_t d = {.stream = stream, .type = ""};
        if (bson_iter_init_find(&it, doc, "id") && BSON_ITER_HOLDS_UTF8(&it))
            d.id = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, doc, "seq"))
            d.seq = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "notification") && BSON_ITER_HOLDS_UTF8(&it))
            d.frame = bson_iter_utf8(&it, &len);
        d.frame_len = len;
        if (bson_iter_init_find(&it, doc, "type") && BSON_ITER_HOLDS_UTF8(&it))
            d.type = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, doc, "storedAt") && BSON_ITER_HOLDS_DATE_TIME(&it))
            d.stored_at = bson_iter_date_time(&it);
        if (bson_iter_init_find(&it, doc, "expiresAt") && BSON_ITER_HOLDS_DATE_TIME(&it))
            d.expires_at = bson_iter_date_time(&it);
        if (d.id && d.frame) {
            cb(arg, &d);
            count++;
        }
    }
    if (mongoc_cursor_error(cur, &err))
        count = mongo_set_err(errstr, size, "cannot read room notifications", &err);
    *more = count >= 0 && (size_t)count == limit;
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return count;
}

/* Appends {"$in": list} under name to filter. */
static void append_in(bson_t *filter, const char *name, const char *const *list, size_t n)
{
    bson_t in, arr;
    char index[16];
    const char *k;
    BSON_APPEND_DOCUMENT_BEGIN(filter, name, &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (size_t i = 0; i < n; i++) {
        bson_uint32_to_string((uint32_t)i, &k, index, sizeof(index));
        BSON_APPEND_UTF8(&arr, k, list[i]);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(filter, &in);
}

/* One find for every user and stream asked: {userId: {$in}, stream: {$in}}. */
static int mongo_cursor_get(void *impl, const char *const *users, size_t nusers,
                            const char *const *streams, size_t nstreams, room_cursor_cb cb,
                            void *arg, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_t filter = BSON_INITIALIZER;
    append_in(&filter, "userId", users, nusers);
    append_in(&filter, "stream", streams, nstreams);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->cursors, &filter, NULL, NULL);
    const bson_t *doc;
    bson_error_t err;
    int count = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        room_cursor_t c = {.acked = ""};
        if (bson_iter_init_find(&it, doc, "userId") && BSON_ITER_HOLDS_UTF8(&it))
            c.user = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, doc, "stream") && BSON_ITER_HOLDS_UTF8(&it))
            c.stream = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, doc, "ackedSeq"))
            c.acked_seq = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "acked") && BSON_ITER_HOLDS_UTF8(&it))
            c.acked = bson_iter_utf8(&it, NULL);
        if (c.user && c.stream) {
            cb(arg, &c);
            count++;
        }
    }
    if (mongoc_cursor_error(cur, &err))
        count = mongo_set_err(errstr, size, "cannot read cursors", &err);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    return count;
}

/* One upsert each of {_id, ackedSeq <= the new one}: a stored cursor
 * that is further on does not match, the upsert then collides with its
 * _id, and that duplicate is the answer "a newer one is there" (so a
 * cursor never moves back, and its acked set stays with it). No update
 * pipelines: neither test server has them. */
static void cursor_upsert(const room_cursor_t *c, int64_t now, bson_t **sel, bson_t **update)
{
    char key[NOTIF_USER_MAX + NOTIF_ROOM_MAX + 16];
    snprintf(key, sizeof(key), "%s/%s", c->user, c->stream);
    *sel = BCON_NEW("_id", BCON_UTF8(key), "ackedSeq", "{", "$lte", BCON_INT64(c->acked_seq),
                    "}");
    *update = BCON_NEW("$set", "{", "userId", BCON_UTF8(c->user), "stream", BCON_UTF8(c->stream),
                       "ackedSeq", BCON_INT64(c->acked_seq), "acked",
                       BCON_UTF8(c->acked ? c->acked : ""), "updatedAt", BCON_DATE_TIME(now), "}");
}

/* In one bulk write, or one command each on FerretDB (is_ferretdb). */
static int mongo_cursor_put(void *impl, const room_cursor_t *cursors, size_t n, char *errstr,
                            size_t size)
{
    mongo_store_t *st = impl;
    bson_t opts = BSON_INITIALIZER, reply = BSON_INITIALIZER;
    bson_error_t err;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    mongoc_bulk_operation_t *bulk = NULL;
    bson_t *uopts = BCON_NEW("upsert", BCON_BOOL(true));
    int64_t now = now_wall_ms();
    int rc = 0;
    if (!st->one_update_per_command)
        bulk = mongoc_collection_create_bulk_operation_with_opts(st->cursors, &opts);
    for (size_t i = 0; i < n && rc == 0; i++) {
        bson_t *sel, *update;
        cursor_upsert(&cursors[i], now, &sel, &update);
        if (bulk) {
            mongoc_bulk_operation_update_one_with_opts(bulk, sel, update, uopts, NULL);
        } else {
            bson_destroy(&reply);
            if (!mongoc_collection_update_one(st->cursors, sel, update, uopts, &reply, &err) &&
                err.code != MONGO_DUPLICATE_KEY && !only_duplicates(&reply))
                rc = mongo_set_err(errstr, size, "cannot write cursors", &err);
        }
        bson_destroy(update);
        bson_destroy(sel);
    }
    if (bulk) {
        bson_destroy(&reply);
        rc = mongoc_bulk_operation_execute(bulk, &reply, &err) || only_duplicates(&reply)
                 ? 0
                 : mongo_set_err(errstr, size, "cannot write cursors", &err);
        mongoc_bulk_operation_destroy(bulk);
    }
    bson_destroy(&reply);
    bson_destroy(uopts);
    bson_destroy(&opts);
    return rc;
}

static int64_t mongo_room_expire(void *impl, int64_t stored_before_ms, int64_t now_ms,
                                 char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_t *filter = BCON_NEW("$or", "[", "{", "storedAt", "{", "$lt",
                              BCON_DATE_TIME(stored_before_ms), "}", "}", "{", "expiresAt", "{",
                              "$lte", BCON_DATE_TIME(now_ms), "}", "}", "]");
    bson_t reply;
    bson_iter_t it;
    bson_error_t err;
    int64_t n = -1;
    if (!mongoc_collection_delete_many(st->rooms, filter, NULL, &reply, &err))
        mongo_set_err(errstr, size, "cannot delete room notifications past retention", &err);
    else
        n = bson_iter_init_find(&it, &reply, "deletedCount") ? bson_iter_as_int64(&it) : 0;
    bson_destroy(&reply);
    bson_destroy(filter);
    return n;
}

static int64_t mongo_count(void *impl, const char *user, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_error_t err;
    bson_t *filter = user ? BCON_NEW("userId", BCON_UTF8(user)) : bson_new();
    int64_t n = mongoc_collection_count_documents(st->coll, filter, NULL, NULL, NULL, &err);
    if (n < 0)
        mongo_set_err(errstr, size, "cannot count stored notifications", &err);
    bson_destroy(filter);
    return n;
}


static int mongo_ping(void *impl, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t err;
    int rc = mongoc_client_command_simple(st->client, "admin", cmd, NULL, NULL, &err)
                 ? 0
                 : mongo_set_err(errstr, size, "the MongoDB server does not answer", &err);
    bson_destroy(cmd);
    return rc;
}

const struct store_backend store_mongo_backend = {
    .name = "MongoDB",
    .open = mongo_open,
    .prepare = mongo_prepare,
    .put = mongo_put,
    .fetch = mongo_fetch,
    .list = mongo_list,
    .keep_history = mongo_keep_history,
    .history_put = mongo_history_put,
    .history_expire = mongo_history_expire,
    .remove = mongo_remove,
    .remove_through = mongo_remove_through,
    .count = mongo_count,
    .ping = mongo_ping,
    .expire = mongo_expire,
    .expire_due = mongo_expire_due,
    .room_put = mongo_room_put,
    .room_fetch = mongo_room_fetch,
    .cursor_get = mongo_cursor_get,
    .cursor_put = mongo_cursor_put,
    .room_expire = mongo_room_expire,
    .close = mongo_close,
};
