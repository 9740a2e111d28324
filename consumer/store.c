/* The offline store's front: picks a backend by the URI's scheme. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_backend.h"
#include "timeutil.h"
#include "xalloc.h"

struct store {
    const struct store_backend *backend;
    void *impl;
    int64_t history_ms; /* store_keep_history's retention; 0: none */
};

store_t *store_open(const char *uri, const char *db, int timeout_ms, char *errstr, size_t size)
{
    const struct store_backend *backend;

    if (strncmp(uri, "sqlite:", 7) == 0)
        backend = &store_sqlite_backend;
    else if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0)
        backend = &store_mongo_backend;
    else {
        snprintf(errstr, size,
                 "unknown store \"%s\": use mongodb://HOST:PORT/ or sqlite:PATH", uri);
        return NULL;
    }
    store_t *st = xcalloc(1, sizeof(*st));
    st->backend = backend;
    st->impl = backend->open(uri, db, timeout_ms, errstr, size);
    if (!st->impl) {
        free(st);
        return NULL;
    }
    return st;
}

const char *store_name(const store_t *st)
{
    return st->backend->name;
}

int store_prepare(store_t *st, char *errstr, size_t size)
{
    return st->backend->prepare(st->impl, errstr, size);
}

int store_put(store_t *st, const store_doc_t *docs, size_t n, char *errstr, size_t size)
{
    return n ? st->backend->put(st->impl, docs, n, errstr, size) : 0;
}

int store_fetch(store_t *st, store_read_t *reads, size_t n, store_fetch_cb cb, void *arg,
                char *errstr, size_t size)
{
    return n ? st->backend->fetch(st->impl, reads, n, cb, arg, errstr, size) : 0;
}

int store_list(store_t *st, store_table_t table, const char *user, int64_t before_seq,
               size_t limit, store_fetch_cb cb, void *arg, char *errstr, size_t size)
{
    if (!limit)
        return 0;
    return st->backend->list(st->impl, table, user, before_seq, limit, cb, arg, errstr, size);
}

void store_keep_history(store_t *st, int64_t retention_ms)
{
    st->history_ms = retention_ms;
    st->backend->keep_history(st->impl, retention_ms);
}

int store_history_put(store_t *st, const store_doc_t *docs, size_t n, char *errstr, size_t size)
{
    return n ? st->backend->history_put(st->impl, docs, n, errstr, size) : 0;
}

int64_t store_remove(store_t *st, const char *const *users, const char *const *ids, size_t n,
                     char *errstr, size_t size)
{
    return n ? st->backend->remove(st->impl, users, ids, n, errstr, size) : 0;
}

int64_t store_remove_through(store_t *st, const char *user, int64_t before_ms, char *errstr,
                             size_t size)
{
    return st->backend->remove_through(st->impl, user, before_ms, errstr, size);
}

int store_ping(store_t *st, char *errstr, size_t size)
{
    return st->backend->ping(st->impl, errstr, size);
}

int64_t store_count(store_t *st, const char *user, char *errstr, size_t size)
{
    return st->backend->count(st->impl, user, errstr, size);
}

int64_t store_expire(store_t *st, size_t max_per_user, int64_t stored_before_ms, char *errstr,
                     size_t size)
{
    int64_t n = max_per_user || stored_before_ms
                    ? st->backend->expire(st->impl, max_per_user, stored_before_ms, errstr, size)
                    : 0;
    if (n >= 0 && st->history_ms &&
        st->backend->history_expire(st->impl, now_wall_ms() - st->history_ms, errstr, size) < 0)
        return -1;
    return n;
}

int64_t store_expire_due(store_t *st, int64_t now_ms, char *errstr, size_t size)
{
    return st->backend->expire_due(st->impl, now_ms, errstr, size);
}

int store_room_put(store_t *st, const room_doc_t *docs, size_t n, char *errstr, size_t size)
{
    return n ? st->backend->room_put(st->impl, docs, n, errstr, size) : 0;
}

int store_room_fetch(store_t *st, const char *stream, int64_t after_seq, int64_t stored_since_ms,
                     int64_t now_ms, size_t limit, room_doc_cb cb, void *arg, int *more,
                     char *errstr, size_t size)
{
    return st->backend->room_fetch(st->impl, stream, after_seq, stored_since_ms, now_ms, limit,
                                   cb, arg, more, errstr, size);
}

int store_cursor_get(store_t *st, const char *const *users, size_t nusers,
                     const char *const *streams, size_t nstreams, room_cursor_cb cb, void *arg,
                     char *errstr, size_t size)
{
    return nusers && nstreams ? st->backend->cursor_get(st->impl, users, nusers, streams,
                                                        nstreams, cb, arg, errstr, size)
                              : 0;
}

int store_cursor_put(store_t *st, const room_cursor_t *cursors, size_t n, char *errstr,
                     size_t size)
{
    return n ? st->backend->cursor_put(st->impl, cursors, n, errstr, size) : 0;
}

int64_t store_room_expire(store_t *st, int64_t stored_before_ms, int64_t now_ms, char *errstr,
                          size_t size)
{
    return st->backend->room_expire(st->impl, stored_before_ms, now_ms, errstr, size);
}

void store_close(store_t *st)
{
    if (!st)
        return;
    st->backend->close(st->impl);
    free(st);
}
