/* The MongoDB backend's insides, shared by store_mongo.c (the client and
 * the calls of store.h) and store_mongo_upkeep.c (schema migrations and
 * expiry). */
#ifndef CONSUMER_STORE_MONGO_INTERNAL_H
#define CONSUMER_STORE_MONGO_INTERNAL_H

#include <mongoc/mongoc.h>
#include <stddef.h>
#include <stdint.h>

#include "notification.h"

#define COLLECTION "notifications"
#define META_COLLECTION "meta"
#define HISTORY_COLLECTION "history"
#define ROOMS_COLLECTION "room_notifications"
#define CURSORS_COLLECTION "room_cursors"
#define MONGO_DUPLICATE_KEY 11000
#define SCHEMA_VERSION 6
#define MIGRATE_BATCH 1000
#define KEY_MAX (NOTIF_USER_MAX + 1 + NOTIF_ID_MAX + 1)

struct mongo_store {
    mongoc_client_t *client;
    mongoc_collection_t *coll, *meta, *history, *rooms, *cursors;
    int64_t history_ms; /* 0: removals delete; else they move into history */
    int one_update_per_command; /* FerretDB: see is_ferretdb() */
};

typedef struct mongo_store mongo_store_t;

int mongo_set_err(char *errstr, size_t size, const char *what, const bson_error_t *err);
/* The _id of user's notification id: "<user>/<id>". */
const char *mongo_key_of(const char *user, const char *id, char key[KEY_MAX]);
/* A document of the current schema. */
bson_t *mongo_new_doc(const char *id, const char *user, int64_t seq, const char *frame,
                      size_t frame_len, int64_t stored_at);
/* Deletes the documents of filter: how many, or -1 (errstr: what, and
 * the server's reason). */
int64_t mongo_delete_counted(mongo_store_t *st, const bson_t *filter, const char *what,
                             char *errstr, size_t size);
/* Inserts docs into coll (and destroys them), unordered; a duplicate is
 * success. */
int mongo_insert_docs(mongoc_collection_t *coll, bson_t **docs, size_t n, const char *what,
                      char *errstr, size_t size);

/* store_mongo_upkeep.c */
/* Brings the data to SCHEMA_VERSION, refusing a newer one. */
int mongo_migrate(mongo_store_t *st, char *errstr, size_t size);
int64_t mongo_expire(void *impl, size_t max_per_user, int64_t stored_before_ms, char *errstr,
                     size_t size);

#endif
