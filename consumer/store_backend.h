/* What an offline-store backend provides; store.c picks one by the URI's
 * scheme and forwards store.h's calls to it. Each function has the meaning
 * of its store.h counterpart. */
#ifndef CONSUMER_STORE_BACKEND_H
#define CONSUMER_STORE_BACKEND_H

#include "store.h"

struct store_backend {
    const char *name;
    void *(*open)(const char *uri, const char *db, int timeout_ms, char *errstr,
                  size_t errstr_size);
    int (*prepare)(void *impl, char *errstr, size_t errstr_size);
    int (*put)(void *impl, const store_doc_t *docs, size_t n, char *errstr, size_t errstr_size);
    int (*fetch)(void *impl, store_read_t *reads, size_t n, store_fetch_cb cb, void *arg,
                 char *errstr, size_t errstr_size);
    int (*list)(void *impl, store_table_t table, const char *user, int64_t before_seq,
                size_t limit, store_fetch_cb cb, void *arg, char *errstr, size_t errstr_size);
    /* retention_ms > 0: removals move what they delete into the history,
     * and prepare makes it expire where the server can. */
    void (*keep_history)(void *impl, int64_t retention_ms);
    int (*history_put)(void *impl, const store_doc_t *docs, size_t n, char *errstr,
                       size_t errstr_size);
    /* Deletes the history acknowledged before acked_before_ms. */
    int64_t (*history_expire)(void *impl, int64_t acked_before_ms, char *errstr,
                              size_t errstr_size);
    int64_t (*remove)(void *impl, const char *const *users, const char *const *ids, size_t n,
                      char *errstr, size_t errstr_size);
    int64_t (*remove_through)(void *impl, const char *user, int64_t before_ms, char *errstr,
                              size_t errstr_size);
    int64_t (*count)(void *impl, const char *user, char *errstr, size_t errstr_size);
    int (*ping)(void *impl, char *errstr, size_t errstr_size);
    int64_t (*expire)(void *impl, size_t max_per_user, int64_t stored_before_ms, char *errstr,
                      size_t errstr_size);
    int64_t (*expire_due)(void *impl, int64_t now_ms, char *errstr, size_t errstr_size);
    int (*room_put)(void *impl, const room_doc_t *docs, size_t n, char *errstr,
                    size_t errstr_size);
    int (*room_fetch)(void *impl, const char *stream, int64_t after_seq, int64_t stored_since_ms,
                      int64_t now_ms, size_t limit, room_doc_cb cb, void *arg, int *more,
                      char *errstr, size_t errstr_size);
    int (*cursor_get)(void *impl, const char *const *users, size_t nusers,
                      const char *const *streams, size_t nstreams, room_cursor_cb cb, void *arg,
                      char *errstr, size_t errstr_size);
    int (*cursor_put)(void *impl, const room_cursor_t *cursors, size_t n, char *errstr,
                      size_t errstr_size);
    int64_t (*room_expire)(void *impl, int64_t stored_before_ms, int64_t now_ms, char *errstr,
                           size_t errstr_size);
    void (*close)(void *impl);
};

extern const struct store_backend store_mongo_backend;
extern const struct store_backend store_sqlite_backend;

#endif
