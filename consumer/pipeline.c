/* Moving work between Kafka, the hub and the store worker each turn. */
#include "pipeline.h"

#include <stdlib.h>

#include "timeutil.h"
#include "xalloc.h"

/* The consumer of a source (pipeline.h), or NULL. */
kafka_t *pipeline_source(const struct pipeline *p, int source)
{
    if (source < 2)
        return source == 0 ? p->kafka : p->inbox;
    for (int i = 0; i < PIPELINE_DRAINS; i++)
        if (p->drains[i].kafka && p->drains[i].source == source)
            return p->drains[i].kafka;
    return NULL;
}

void pipeline_offset_done(void *ctx, int32_t partition, int64_t offset)
{
    struct pipeline *p = ctx;
    int source = partition / KAFKA_SOURCE_SPAN;
    if (partition < 0 || source >= PIPELINE_SOURCES || !pipeline_source(p, source))
        return; /* a drained inbox given back meanwhile: its owner redoes it */
    struct source_done *d = &p->done[source];
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->done = xrealloc(d->done, d->cap * sizeof(*d->done));
    }
    d->done[d->n++] = (struct part_offset){partition % KAFKA_SOURCE_SPAN, offset};
}

static void on_stored(void *ctx, const struct store_result *r)
{
    struct pipeline *p = ctx;
    p->count.stored++;
    if (r->msg->partition >= 0)
        pipeline_offset_done(ctx, r->msg->partition, r->msg->offset);
    events_emit(p->events, r->msg->user, r->msg->id, EVENT_STORED);
}

/* Receipts; and an acknowledged live one, never stored, goes to the
 * history (a stored one moves there as it is deleted). */
static void event(void *ctx, enum event_kind kind, const hub_msg_t *m)
{
    struct pipeline *p = ctx;
    events_emit(p->events, m->user, m->id, kind);
    if (kind == EVENT_ACKED)
        pipeline_acked_elsewhere(p, m);
    if (kind == EVENT_ACKED && p->history && m->partition >= 0)
        store_worker_history(p->store, m, now_wall_ms());
}

static void store(void *ctx, const hub_msg_t *m)
{
    struct pipeline *p = ctx;
    store_worker_put(p->store, m, on_stored, p);
}

static void on_fetched(void *ctx, const struct store_result *r)
{
    struct pipeline *p = ctx;
    p->count.replayed += r->n;
    hub_fetch_done(p->hub, r->user, r->tag, r->msgs, r->n, r->more);
}

static void fetch(void *ctx, const char *user, int64_t after, size_t limit, uint64_t gen)
{
    struct pipeline *p = ctx;
    store_worker_fetch(p->store, user, after, limit, gen, on_fetched, p);
}

static void remove_acked(void *ctx, const char *user, const char *id)
{
    struct pipeline *p = ctx;
    store_worker_remove(p->store, user, id, NULL, NULL);
}

/* ---- rooms and broadcast ---- */

/* Durable: online members here and on other nodes get it now. */
static void on_room_stored(void *ctx, const struct store_result *r)
{
    struct pipeline *p = ctx;
    p->count.stored++;
    pipeline_stream_durable(p, r->msg);
}

static void on_cursors(void *ctx, const struct store_result *r)
{
    struct pipeline *p = ctx;
    hub_cursors_loaded(p->hub, r->user, r->asked, r->nasked, r->cursors, r->ncursors);
}

static void cursor_load(void *ctx, const char *user, const char *const *streams, size_t n)
{
    struct pipeline *p = ctx;
    store_worker_cursor_get(p->store, user, streams, n, on_cursors, p);
}

static void on_stream_fetched(void *ctx, const struct store_result *r)
{
    struct pipeline *p = ctx;
    p->count.replayed += r->n;
    hub_stream_fetch_done(p->hub, r->user, r->msg->stream, r->tag, r->msgs, r->n, r->more);
}

static void stream_fetch(void *ctx, const char *user, const char *stream, int64_t after,
                         size_t limit, uint64_t gen)
{
    struct pipeline *p = ctx;
    store_worker_room_fetch(p->store, user, stream, after, now_wall_ms() - p->room_retention_ms,
                            limit, gen, on_stream_fetched, p);
}

static void cursor_save(void *ctx, const char *user, const hub_cursor_t *c)
{
    struct pipeline *p = ctx;
    store_worker_cursor_put(p->store, user, c);
}

void pipeline_hub_ops(struct pipeline *p, struct hub_ops *ops)
{
    ops->ctx = p;
    ops->store = store;
    ops->fetch = fetch;
    ops->remove = remove_acked;
    ops->event = event;
    ops->offset_done = pipeline_offset_done;
    ops->presence = pipeline_presence;
    ops->cursor_load = cursor_load;
    ops->stream_fetch = stream_fetch;
    ops->cursor_save = cursor_save;
}

void pipeline_hand_on(struct pipeline *p)
{
    for (int i = 0; i < PIPELINE_SOURCES; i++) {
        if (p->done[i].n && pipeline_source(p, i))
            kafka_offsets_done(pipeline_source(p, i), p->done[i].done, p->done[i].n);
        p->done[i].n = 0;
    }
    store_worker_flush(p->store);
}

void pipeline_take_work(struct pipeline *p)
{
    store_worker_poll(p->store);
    pipeline_take_cluster(p);
    /* The one place intake pauses: with the memory budget spent (what the
     * store has not made durable yet counts), Kafka waits. */
    while (!p->stopping && !budget_full(&p->budget)) {
        kafka_batch_t *b = kafka_take(p->kafka);
        if (!b)
            break;
        for (size_t i = 0; i < b->n; i++) {
            if (!b->msgs[i].stream) {
                pipeline_route(p, &b->msgs[i]);
                continue;
            }
            /* A room or broadcast one: stored once, then delivered. */
            hub_msg_t m = b->msgs[i];
            if (!m.seq) /* past record_seq's range */
                m.seq = hub_next_seq(p->hub);
            store_worker_room_put(p->store, &m, on_room_stored, p);
        }
        p->count.consumed += b->n;
        kafka_batch_free(b);
    }
    pipeline_hand_on(p);
}

void pipeline_clear(struct pipeline *p)
{
    pipeline_cluster_clear(p);
    for (int i = 0; i < PIPELINE_SOURCES; i++) {
        free(p->done[i].done);
        p->done[i] = (struct source_done){0};
    }
}
