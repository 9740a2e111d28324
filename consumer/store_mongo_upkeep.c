/* Upkeep of the MongoDB store: the schema's version and its forward
 * migrations, and the expiry of what waited too long (store_mongo.c's
 * opening comment has the layout). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_mongo_internal.h"
#include "xalloc.h"

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
        mongo_set_err(errstr, size, "cannot read the store's schema version", &err);
    else if (version < 0) {
        bson_t *old = BCON_NEW("id", "{", "$exists", BCON_BOOL(false), "}");
        bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
        int64_t n = mongoc_collection_count_documents(st->coll, old, opts, NULL, NULL, &err);
        if (n < 0)
            mongo_set_err(errstr, size, "cannot look for stored notifications", &err);
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
                 : mongo_set_err(errstr, size, "cannot record the store's schema version", &err);
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
            copies[n++] = mongo_new_doc(bson_iter_utf8(&id, NULL), bson_iter_utf8(&user, NULL),
                                  bson_iter_as_int64(&seq), f, len, stored_at);
        }
        if (mongoc_cursor_error(cur, &err))
            rc = mongo_set_err(errstr, size, "cannot read version 1 documents", &err);
        mongoc_cursor_destroy(cur);
        if (rc == 0 && n)
            rc = mongo_insert_docs(st->coll, copies, n, "cannot copy version 1 documents", errstr, size);
        else
            for (size_t i = 0; i < n; i++)
                bson_destroy(copies[i]);
        if (rc == 0 && n) {
            bson_t *del = BCON_NEW("_id", "{", "$in", BCON_ARRAY(&ids), "}");
            if (!mongoc_collection_delete_many(st->coll, del, NULL, NULL, &err))
                rc = mongo_set_err(errstr, size, "cannot delete migrated version 1 documents", &err);
            bson_destroy(del);
        }
        bson_destroy(&ids);
    }
    free(copies);
    bson_destroy(opts);
    bson_destroy(old);
    return rc;
}

int mongo_migrate(mongo_store_t *st, char *errstr, size_t size)
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
    /* 2 -> 3: the history collection; 3 -> 4: expiresAt; 4 -> 5: the
     * rooms' collections; 5 -> 6: seq from Kafka, the storedAt index. Each
     * made with its indexes by prepare, on no existing document. */
    for (int64_t v = version > 2 ? version : 2; v < SCHEMA_VERSION; v++)
        log_info("migrating the MongoDB store from schema version %lld to %lld", (long long)v,
                 (long long)v + 1);
    return record_version(st, errstr, size);
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
        total = mongo_set_err(errstr, size, "cannot find pending notifications to expire", &err);
    else if (n) {
        bson_t *del = BCON_NEW("userId", BCON_UTF8(user), "_id", "{", "$in", BCON_ARRAY(&ids), "}");
        total = mongo_delete_counted(st, del, "cannot expire pending notifications", errstr, size);
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
int64_t mongo_expire(void *impl, size_t max_per_user, int64_t stored_before_ms,
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
            total = mongo_set_err(errstr, size, "cannot count pending notifications per user", &err);
        mongoc_cursor_destroy(cur);
        bson_destroy(pipeline);
    }
    if (total >= 0 && stored_before_ms) {
        bson_t *old = BCON_NEW("storedAt", "{", "$lt", BCON_DATE_TIME(stored_before_ms), "}");
        int64_t n = mongo_delete_counted(st, old, "cannot expire pending notifications", errstr, size);
        total = n < 0 ? -1 : total + n;
        bson_destroy(old);
    }
    return total;
}
