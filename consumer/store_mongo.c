/* The MongoDB backend of the offline store.
 *
 * Collection "notifications", one document per stored notification:
 *   {_id: "<userId>/<id>", id, userId, seq: <int64>, notification: <JSON text>,
 *    storedAt: <date>}
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
 *      harmlessly: copies are idempotent). */
#include "store_backend.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notification.h"
#include "timeutil.h"
#include "xalloc.h"

#define COLLECTION "notifications"
#define META_COLLECTION "meta"
#define MONGO_DUPLICATE_KEY 11000
#define SCHEMA_VERSION 2
#define MIGRATE_BATCH 1000
#define KEY_MAX (NOTIF_USER_MAX + 1 + NOTIF_ID_MAX + 1)

struct mongo_store {
    mongoc_client_t *client;
    mongoc_collection_t *coll, *meta;
};

typedef struct mongo_store mongo_store_t;

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

static int set_err(char *errstr, size_t size, const char *what, const bson_error_t *err)
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
        set_err(errstr, size, "invalid MongoDB URI", &err);
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
        set_err(errstr, size, "cannot create a MongoDB client", &err);
        goto fail;
    }
    mongoc_client_set_appname(st->client, "notification-gateway");
    mongoc_client_set_error_api(st->client, MONGOC_ERROR_API_VERSION_2);
    st->coll = mongoc_client_get_collection(st->client, db, COLLECTION);
    st->meta = mongoc_client_get_collection(st->client, db, META_COLLECTION);
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
static const char *key_of(const char *user, const char *id, char key[KEY_MAX])
{
    snprintf(key, KEY_MAX, "%s/%s", user, id);
    return key;
}

/* A document of schema version 2. */
static bson_t *new_doc(const char *id, const char *user, int64_t seq, const char *frame,
                       size_t frame_len, int64_t stored_at)
{
    char key[KEY_MAX];
    bson_t *b = bson_new();
    BSON_APPEND_UTF8(b, "_id", key_of(user, id, key));
    BSON_APPEND_UTF8(b, "id", id);
    BSON_APPEND_UTF8(b, "userId", user);
    BSON_APPEND_INT64(b, "seq", seq);
    bson_append_utf8(b, "notification", -1, frame, (int)frame_len);
    BSON_APPEND_DATE_TIME(b, "storedAt", stored_at);
    return b;
}

/* Inserts docs, unordered: one duplicate does not stop the rest, and a
 * duplicate is a document stored before, which is what a put asks for. */
static int insert_docs(mongo_store_t *st, bson_t **docs, size_t n, const char *what, char *errstr,
                       size_t size)
{
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t err;
    int rc = 0;

    BSON_APPEND_BOOL(&opts, "ordered", false);
    if (!mongoc_collection_insert_many(st->coll, (const bson_t **)docs, n, &opts, &reply, &err) &&
        !only_duplicates(&reply))
        rc = set_err(errstr, size, what, &err);
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
    for (size_t i = 0; i < n; i++)
        bdocs[i] = new_doc(docs[i].id, docs[i].user, docs[i].seq, docs[i].frame,
                           docs[i].frame_len, now);
    int rc = insert_docs(impl, bdocs, n, "cannot store notifications", errstr, size);
    free(bdocs);
    return rc;
}

/* The version the store's data has: the meta document's, else 1 when
 * documents of version 1 are there, else (an empty store) the current
 * one. -1 with errstr when the server cannot say. */
static int64_t stored_version(mongo_store_t *st, char *errstr, size_t size)
{
    bson_error_t err;
    const bson_t *doc;
    bson_iter_t it;
    int64_t version = -1;

    bson_t *filter = BCON_NEW("_id", "schema");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->meta, filter, NULL, NULL);
    if (mongoc_cursor_next(cur, &doc) && bson_iter_init_find(&it, doc, "version"))
        version = bson_iter_as_int64(&it);
    if (version < 0 && mongoc_cursor_error(cur, &err))
        set_err(errstr, size, "cannot read the store's schema version", &err);
    else if (version < 0) {
        bson_t *old = BCON_NEW("id", "{", "$exists", BCON_BOOL(false), "}");
        bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
        int64_t n = mongoc_collection_count_documents(st->coll, old, opts, NULL, NULL, &err);
        if (n < 0)
            set_err(errstr, size, "cannot look for stored notifications", &err);
        else
            version = n > 0 ? 1 : SCHEMA_VERSION;
        bson_destroy(opts);
        bson_destroy(old);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    return version;
}

static int record_version(mongo_store_t *st, char *errstr, size_t size)
{
    bson_error_t err;
    bson_t *filter = BCON_NEW("_id", "schema");
    bson_t *doc = BCON_NEW("_id", "schema", "version", BCON_INT32(SCHEMA_VERSION));
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    int rc = mongoc_collection_replace_one(st->meta, filter, doc, opts, NULL, &err)
                 ? 0
                 : set_err(errstr, size, "cannot record the store's schema version", &err);
    bson_destroy(opts);
    bson_destroy(doc);
    bson_destroy(filter);
    return rc;
}

/* 1 -> 2: each document keyed by id alone is copied under "<userId>/<id>"
 * with the id in its own field, then deleted, a batch at a time. */
static int migrate_1_to_2(mongo_store_t *st, char *errstr, size_t size)
{
    bson_t *old = BCON_NEW("id", "{", "$exists", BCON_BOOL(false), "}");
    bson_t *opts = BCON_NEW("limit", BCON_INT64(MIGRATE_BATCH));
    bson_t **copies = xcalloc(MIGRATE_BATCH, sizeof(*copies));
    int rc = 0;

    /* Until a read finds less than a batch, or nothing of ours. */
    for (size_t found = MIGRATE_BATCH, n = 1; rc == 0 && found == MIGRATE_BATCH && n;) {
        bson_error_t err;
        const bson_t *doc;
        bson_t ids = BSON_INITIALIZER;
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->coll, old, opts, NULL);
        for (found = n = 0; mongoc_cursor_next(cur, &doc); found++) {
            bson_iter_t id, user, seq, frame, at;
            uint32_t len = 0;
            if (!bson_iter_init_find(&id, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&id) ||
                !bson_iter_init_find(&user, doc, "userId") || !BSON_ITER_HOLDS_UTF8(&user) ||
                !bson_iter_init_find(&seq, doc, "seq") ||
                !bson_iter_init_find(&frame, doc, "notification") || !BSON_ITER_HOLDS_UTF8(&frame))
                continue; /* not one of ours: left as it is */
            const char *f = bson_iter_utf8(&frame, &len);
            int64_t stored_at = bson_iter_init_find(&at, doc, "storedAt") &&
                                BSON_ITER_HOLDS_DATE_TIME(&at) ? bson_iter_date_time(&at) : 0;
            char k[16];
            const char *key;
            bson_uint32_to_string((uint32_t)n, &key, k, sizeof(k));
            BSON_APPEND_UTF8(&ids, key, bson_iter_utf8(&id, NULL));
            copies[n++] = new_doc(bson_iter_utf8(&id, NULL), bson_iter_utf8(&user, NULL),
                                  bson_iter_as_int64(&seq), f, len, stored_at);
        }
        if (mongoc_cursor_error(cur, &err))
            rc = set_err(errstr, size, "cannot read version 1 documents", &err);
        mongoc_cursor_destroy(cur);
        if (rc == 0 && n)
            rc = insert_docs(st, copies, n, "cannot copy version 1 documents", errstr, size);
        else
            for (size_t i = 0; i < n; i++)
                bson_destroy(copies[i]);
        if (rc == 0 && n) {
            bson_t *del = BCON_NEW("_id", "{", "$in", BCON_ARRAY(&ids), "}");
            if (!mongoc_collection_delete_many(st->coll, del, NULL, NULL, &err))
                rc = set_err(errstr, size, "cannot delete migrated version 1 documents", &err);
            bson_destroy(del);
        }
        bson_destroy(&ids);
    }
    free(copies);
    bson_destroy(opts);
    bson_destroy(old);
    return rc;
}

static int migrate(mongo_store_t *st, char *errstr, size_t size)
{
    int64_t version = stored_version(st, errstr, size);
    if (version < 0)
        return -1;
    if (version > SCHEMA_VERSION) {
        snprintf(errstr, size, "the store's schema is version %lld, newer than this gateway's "
                 "(%d): run a newer gateway", (long long)version, SCHEMA_VERSION);
        return -1;
    }
    if (version == 1) {
        log_info("migrating the MongoDB store from schema version 1 to 2");
        if (migrate_1_to_2(st, errstr, size) != 0)
            return -1;
    }
    return record_version(st, errstr, size);
}

static int mongo_prepare(void *impl, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_t keys, *cmd;
    bson_t reply;
    bson_error_t err;
    int rc = 0;

    if (migrate(st, errstr, size) != 0)
        return -1;
    bson_init(&keys);
    BSON_APPEND_INT32(&keys, "userId", 1);
    BSON_APPEND_INT32(&keys, "seq", 1);
    char *name = mongoc_collection_keys_to_index_string(&keys);
    cmd = BCON_NEW("createIndexes", BCON_UTF8(COLLECTION), "indexes", "[", "{", "key",
                   BCON_DOCUMENT(&keys), "name", BCON_UTF8(name), "}", "]");
    if (!mongoc_collection_write_command_with_opts(st->coll, cmd, NULL, &reply, &err))
        rc = set_err(errstr, size, "cannot create the index on userId and seq", &err);
    bson_destroy(&reply);
    bson_destroy(cmd);
    bson_free(name);
    bson_destroy(&keys);
    return rc;
}

static int mongo_fetch(void *impl, const char *user, int64_t after_seq, size_t limit,
                       store_fetch_cb cb, void *arg, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_error_t err;
    const bson_t *doc;
    int count = 0;

    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user), "seq", "{", "$gt", BCON_INT64(after_seq), "}");
    bson_t *opts = BCON_NEW("sort", "{", "userId", BCON_INT32(1), "seq", BCON_INT32(1), "}",
                            "limit", BCON_INT64((int64_t)limit), "projection", "{", "id",
                            BCON_INT32(1), "seq", BCON_INT32(1), "notification", BCON_INT32(1),
                            "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->coll, filter, opts, NULL);

    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        store_doc_t d = {.user = user};
        uint32_t len = 0;
        if (bson_iter_init_find(&it, doc, "id") && BSON_ITER_HOLDS_UTF8(&it))
            d.id = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, doc, "seq"))
            d.seq = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "notification") && BSON_ITER_HOLDS_UTF8(&it))
            d.frame = bson_iter_utf8(&it, &len);
        d.frame_len = len;
        if (!d.id || !d.frame) {
            log_warn("skipping a malformed stored document for user %s (no id or notification)",
                     user);
            continue;
        }
        cb(arg, &d);
        count++;
    }
    if (mongoc_cursor_error(cur, &err))
        count = set_err(errstr, size, "cannot read stored notifications", &err);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return count;
}

struct removal {
    const char *user, *id;
};

static int by_user(const void *a, const void *b)
{
    return strcmp(((const struct removal *)a)->user, ((const struct removal *)b)->user);
}

/* One delete per user in the batch, {userId: U, _id: {$in: [...]}}, rather
 * than one per notification: the user in the filter keeps an ack from
 * deleting anyone else's. */
static int mongo_remove(void *impl, const char *const *users, const char *const *ids, size_t n,
                        char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_error_t err;
    bson_t reply;
    int rc = 0;

    if (n == 0)
        return 0;
    struct removal *order = xmalloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = (struct removal){users[i], ids[i]};
    qsort(order, n, sizeof(*order), by_user);

    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(st->coll, opts);
    for (size_t start = 0; start < n;) {
        const char *user = order[start].user;
        bson_t sel, in, list;
        char index[16], key[KEY_MAX];
        const char *k;
        size_t end = start;

        bson_init(&sel);
        BSON_APPEND_UTF8(&sel, "userId", user);
        BSON_APPEND_DOCUMENT_BEGIN(&sel, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
        for (; end < n && strcmp(order[end].user, user) == 0; end++) {
            bson_uint32_to_string((uint32_t)(end - start), &k, index, sizeof(index));
            BSON_APPEND_UTF8(&list, k, key_of(user, order[end].id, key));
        }
        bson_append_array_end(&in, &list);
        bson_append_document_end(&sel, &in);
        mongoc_bulk_operation_remove_many_with_opts(bulk, &sel, NULL, NULL);
        bson_destroy(&sel);
        start = end;
    }
    if (!mongoc_bulk_operation_execute(bulk, &reply, &err))
        rc = set_err(errstr, size, "cannot delete acknowledged notifications", &err);
    bson_destroy(&reply);
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(opts);
    free(order);
    return rc;
}

static int64_t mongo_count(void *impl, const char *user, char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_error_t err;
    bson_t *filter = user ? BCON_NEW("userId", BCON_UTF8(user)) : bson_new();
    int64_t n = mongoc_collection_count_documents(st->coll, filter, NULL, NULL, NULL, &err);
    if (n < 0)
        set_err(errstr, size, "cannot count stored notifications", &err);
    bson_destroy(filter);
    return n;
}

/* Deletes the documents of filter, counting them. */
static int64_t delete_counted(mongo_store_t *st, const bson_t *filter, char *errstr, size_t size)
{
    bson_error_t err;
    bson_t reply;
    bson_iter_t it;
    int64_t n = -1;
    if (!mongoc_collection_delete_many(st->coll, filter, NULL, &reply, &err))
        set_err(errstr, size, "cannot expire pending notifications", &err);
    else
        n = bson_iter_init_find(&it, &reply, "deletedCount") ? bson_iter_as_int64(&it) : 0;
    bson_destroy(&reply);
    return n;
}

/* user's pending notifications beyond the newest max, deleted. */
static int64_t expire_user(mongo_store_t *st, const char *user, size_t max, char *errstr,
                           size_t size)
{
    bson_error_t err;
    const bson_t *doc;
    bson_t ids = BSON_INITIALIZER;
    uint32_t n = 0;
    int64_t total = 0;

    bson_t *filter = BCON_NEW("userId", BCON_UTF8(user));
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "skip",
                            BCON_INT64((int64_t)max), "projection", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(st->coll, filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        char key[16];
        const char *k;
        if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        bson_uint32_to_string(n++, &k, key, sizeof(key));
        BSON_APPEND_UTF8(&ids, k, bson_iter_utf8(&it, NULL));
    }
    if (mongoc_cursor_error(cur, &err))
        total = set_err(errstr, size, "cannot find pending notifications to expire", &err);
    else if (n) {
        bson_t *del = BCON_NEW("userId", BCON_UTF8(user), "_id", "{", "$in", BCON_ARRAY(&ids), "}");
        total = delete_counted(st, del, errstr, size);
        bson_destroy(del);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    bson_destroy(&ids);
    return total;
}

/* Users over the limit come from one $group over the collection: no
 * server here uses a secondary index, so one pass beats one count per
 * user. */
static int64_t mongo_expire(void *impl, size_t max_per_user, int64_t stored_before_ms,
                            char *errstr, size_t size)
{
    mongo_store_t *st = impl;
    bson_error_t err;
    const bson_t *doc;
    int64_t total = 0;

    if (max_per_user) {
        bson_t *pipeline = BCON_NEW(
            "pipeline", "[", "{", "$group", "{", "_id", BCON_UTF8("$userId"), "n", "{", "$sum",
            BCON_INT32(1), "}", "}", "}", "{", "$match", "{", "n", "{", "$gt",
            BCON_INT64((int64_t)max_per_user), "}", "}", "}", "]");
        mongoc_cursor_t *cur =
            mongoc_collection_aggregate(st->coll, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
        while (total >= 0 && mongoc_cursor_next(cur, &doc)) {
            bson_iter_t it;
            if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
                continue;
            const char *user = bson_iter_utf8(&it, NULL);
            int64_t n = expire_user(st, user, max_per_user, errstr, size);
            if (n > 0)
                log_warn("expired the %lld oldest pending notifications of user %s: over the "
                         "limit of %zu (--max-pending-per-user)",
                         (long long)n, user, max_per_user);
            total = n < 0 ? -1 : total + n;
        }
        if (total >= 0 && mongoc_cursor_error(cur, &err))
            total = set_err(errstr, size, "cannot count pending notifications per user", &err);
        mongoc_cursor_destroy(cur);
        bson_destroy(pipeline);
    }
    if (total >= 0 && stored_before_ms) {
        bson_t *old = BCON_NEW("storedAt", "{", "$lt", BCON_DATE_TIME(stored_before_ms), "}");
        int64_t n = delete_counted(st, old, errstr, size);
        total = n < 0 ? -1 : total + n;
        bson_destroy(old);
    }
    return total;
}

/* In store_backend's order: name, open, prepare, put, fetch, remove, count, expire,
 * close. */
const struct store_backend store_mongo_backend = {
    "MongoDB", mongo_open, mongo_prepare, mongo_put, mongo_fetch, mongo_remove, mongo_count,
    mongo_expire, mongo_close,
};
