/* The store worker, the loop's side: requests submitted and handed over,
 * completions called, start and stop (the thread is
 * store_worker_thread.c's). */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store_worker_internal.h"
#include "timeutil.h"
#include "xalloc.h"

struct req_list *list_new(void)
{
    struct req_list *l = xcalloc(1, sizeof(*l));
    l->tail = &l->head;
    return l;
}

void list_push(struct req_list *l, store_req_t *r)
{
    r->next = NULL;
    *l->tail = r;
    l->tail = &r->next;
    l->n++;
}

void forget_found(store_req_t *r)
{
    for (size_t i = 0; i < r->nfound; i++) {
        free((char *)r->found[i].id);
        free((char *)r->found[i].user);
        free((char *)r->found[i].frame);
        free((char *)r->found[i].stream);
        free((char *)r->found[i].type);
    }
    r->nfound = 0;
}

void forget_cursors(store_req_t *r)
{
    for (size_t i = 0; i < r->ncursors; i++) {
        free((char *)r->cursors[i].stream);
        free((char *)r->cursors[i].acked);
    }
    r->ncursors = 0;
}

void free_reqs(store_req_t *r)
{
    while (r) {
        store_req_t *next = r->next;
        forget_found(r);
        free(r->found);
        free(r->found_acked);
        free((char *)r->msg.stream);
        free((char *)r->msg.type);
        for (size_t i = 0; i < r->nstreams; i++)
            free(r->streams[i]);
        free(r->streams);
        forget_cursors(r);
        free(r->cursors);
        free(r);
        r = next;
    }
}

void list_free(handoff_msg_t *m)
{
    free_reqs(((struct req_list *)m)->head);
    free(m);
}

static store_req_t *submit(store_worker_t *w, enum op op, const char *user, const char *id,
                           const char *frame, size_t frame_len, store_done_fn done, void *arg)
{
    size_t ulen = strlen(user), idlen = id ? strlen(id) : 0;
    store_req_t *r = xcalloc(1, sizeof(*r) + ulen + idlen + frame_len + 3);
    char *p = r->buf;

    r->op = op;
    r->done = done;
    r->arg = arg;
    r->msg.user = memcpy(p, user, ulen + 1);
    p += ulen + 1;
    r->msg.id = memcpy(p, id ? id : "", idlen + 1);
    p += idlen + 1;
    if (frame)
        memcpy(p, frame, frame_len);
    p[frame_len] = '\0';
    r->msg.frame = p;
    r->msg.frame_len = frame_len;
    r->msg.partition = -1;
    r->msg.offset = -1;
    struct lane *lane = &w->lanes[LANE_OF(op)];
    if (!lane->open)
        lane->open = list_new();
    list_push(lane->open, r);
    return r;
}

/* A put of m (personal, or a stream's): counted as a put, against the
 * budget until it completes. */
static store_req_t *submit_put(store_worker_t *w, enum op op, const char *user, const hub_msg_t *m,
                               store_done_fn done, void *arg)
{
    store_req_t *r = submit(w, op, user, m->id, m->frame, m->frame_len, done, arg);
    r->msg.seq = m->seq;
    r->msg.partition = m->partition;
    r->msg.offset = m->offset;
    r->msg.expires_ms = m->expires_ms;
    r->msg.stored_ms = now_wall_ms(); /* an ack-all before it leaves it (store_remove_through) */
    w->backlog++;
    w->puts_submitted++;
    budget_take(w->budget, BUDGET_STORE, budget_cost(m->frame_len));
    return r;
}

void store_worker_put(store_worker_t *w, const hub_msg_t *m, store_done_fn done, void *arg)
{
    submit_put(w, OP_PUT, m->user, m, done, arg);
}

void store_worker_room_put(store_worker_t *w, const hub_msg_t *m, store_done_fn done, void *arg)
{
    store_req_t *r = submit_put(w, OP_ROOM_PUT, "", m, done, arg);
    r->msg.stream = xstrdup(m->stream);
    r->msg.type = xstrdup(m->type ? m->type : "");
}

void store_worker_cursor_put(store_worker_t *w, const char *user, const hub_cursor_t *c)
{
    store_req_t *r = submit(w, OP_CURSOR_PUT, user, c->stream, c->acked, strlen(c->acked), NULL,
                            NULL);
    r->seq = c->acked_seq;
    w->removes_submitted++;
}

void store_worker_remove(store_worker_t *w, const char *user, const char *id, store_done_fn done,
                         void *arg)
{
    submit(w, OP_REMOVE, user, id, NULL, 0, done, arg);
    w->removes_submitted++;
}

/* A read: after every put and remove submitted before it. */
static store_req_t *submit_read(store_worker_t *w, enum op op, const char *user, int64_t seq,
                                size_t limit, store_done_fn done, void *arg)
{
    store_req_t *r = submit(w, op, user, NULL, NULL, 0, done, arg);
    r->seq = seq;
    r->limit = limit;
    r->puts_before = w->puts_submitted;
    r->removes_before = w->removes_submitted;
    return r;
}

void store_worker_fetch(store_worker_t *w, const char *user, int64_t after_seq, size_t limit,
                        uint64_t tag, store_done_fn done, void *arg)
{
    submit_read(w, OP_FETCH, user, after_seq, limit, done, arg)->tag = tag;
}

void store_worker_room_fetch(store_worker_t *w, const char *user, const char *stream,
                             int64_t after_seq, int64_t stored_since_ms, size_t limit,
                             uint64_t tag, store_done_fn done, void *arg)
{
    store_req_t *r = submit_read(w, OP_ROOM_FETCH, user, after_seq, limit, done, arg);
    r->tag = tag;
    r->msg.stream = xstrdup(stream);
    r->acked_at = stored_since_ms;
}

void store_worker_cursor_get(store_worker_t *w, const char *user, const char *const *streams,
                             size_t n, store_done_fn done, void *arg)
{
    store_req_t *r = submit_read(w, OP_CURSOR_GET, user, 0, 0, done, arg);
    r->streams = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        r->streams[i] = xstrdup(streams[i]);
    r->nstreams = n;
}

void store_worker_list(store_worker_t *w, const char *user, int64_t before_seq, size_t limit,
                       int with_history, store_done_fn done, void *arg)
{
    submit_read(w, OP_LIST, user, before_seq, limit, done, arg)->with_history = with_history;
}

void store_worker_remove_counted(store_worker_t *w, const char *user, const char *id,
                                 int64_t before_ms, store_done_fn done, void *arg)
{
    store_req_t *r = submit(w, OP_REMOVE, user, id, NULL, 0, done, arg);
    r->counted = 1;
    r->through = id == NULL;
    r->seq = before_ms;
    r->puts_before = w->puts_submitted;
    w->removes_submitted++;
}

void store_worker_history(store_worker_t *w, const hub_msg_t *m, int64_t acked_at)
{
    if (w->history_bytes + m->frame_len > HISTORY_QUEUE_BYTES) {
        w->history_dropped++;
        return;
    }
    store_req_t *r = submit(w, OP_HISTORY, m->user, m->id, m->frame, m->frame_len, NULL, NULL);
    r->msg.seq = m->seq;
    r->acked_at = acked_at;
    w->history_bytes += m->frame_len;
}

unsigned long store_worker_history_dropped(const store_worker_t *w)
{
    return w->history_dropped;
}

void store_worker_flush(store_worker_t *w)
{
    for (int i = 0; i < STORE_LANES; i++) {
        struct lane *l = &w->lanes[i];
        /* No limit on the queues: the memory budget bounds what is pending. */
        if (l->open && handoff_send(l->requests, &l->open->link) == 0)
            l->open = NULL; /* else stopped: kept, freed with the worker */
    }
}

void store_worker_poll(store_worker_t *w)
{
    handoff_msg_t *m = handoff_take(w->completions, (size_t)-1);

    while (m) {
        handoff_msg_t *next = m->next;
        struct req_list *l = (struct req_list *)m;
        for (store_req_t *r = l->head; r; r = r->next) {
            if (r->op == OP_HISTORY)
                w->history_bytes -= r->msg.frame_len;
            if (r->op == OP_PUT || r->op == OP_ROOM_PUT) {
                w->backlog--;
                budget_give(w->budget, BUDGET_STORE, budget_cost(r->msg.frame_len));
            }
            if (r->done) {
                struct store_result res = {&r->msg,  r->msg.user, r->tag,       r->more,
                                           r->found, r->nfound,   r->removed,   r->found_acked,
                                           r->cursors, r->ncursors,
                                           (const char *const *)r->streams, r->nstreams};
                r->done(r->arg, &res);
            }
        }
        list_free(m);
        m = next;
    }
}

const double store_latency_bounds[STORE_LATENCY_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,   0.25,  0.5,  1,     5};

void lane_timed(struct lane *lane, int64_t us)
{
    int b = 0;
    while (b < STORE_LATENCY_BUCKETS && (double)us > store_latency_bounds[b] * 1e6)
        b++;
    atomic_fetch_add(&lane->buckets[b], 1);
    atomic_fetch_add(&lane->calls, 1);
    atomic_fetch_add(&lane->total_us, (unsigned long long)(us > 0 ? us : 0));
}

void store_worker_latency(store_worker_t *w, int kind, struct store_latency *out)
{
    const struct lane *l = &w->lanes[kind];
    unsigned long acc = 0;
    for (int b = 0; b < STORE_LATENCY_BUCKETS; b++) {
        acc += atomic_load(&l->buckets[b]);
        out->le[b] = acc;
    }
    out->count = atomic_load(&l->calls);
    out->sum_s = (double)atomic_load(&l->total_us) / 1e6;
}

struct store_health store_worker_health(store_worker_t *w)
{
    int failing = 0;
    for (int i = 0; i < STORE_LANES; i++)
        failing |= atomic_load(&w->lanes[i].failing);
    return (struct store_health){failing, atomic_load(&w->failures), atomic_load(&w->expired)};
}

size_t store_worker_backlog(const store_worker_t *w)
{
    return w->backlog;
}

size_t store_worker_puts_submitted(const store_worker_t *w)
{
    return w->puts_submitted;
}

size_t store_worker_puts_durable(store_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->puts_done;
    pthread_mutex_unlock(&w->lock);
    return n;
}

store_worker_t *store_worker_start(store_t *const conns[STORE_LANES],
                                   const struct store_expiry *expiry, budget_t *budget,
                                   void (*wake)(void *arg), void *arg)
{
    store_worker_t *w = xcalloc(1, sizeof(*w));
    w->budget = budget;
    w->expiry = *expiry;
    w->completions = handoff_new(0, wake, arg);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->progress, NULL);
    for (int i = 0; i < STORE_LANES; i++)
        w->lanes[i] = (struct lane){
            .w = w, .op = (enum op)i, .st = conns[i], .requests = handoff_new(0, NULL, NULL)};
    w->started = 1;
    for (int i = 0; i < STORE_LANES; i++) {
        struct lane *l = &w->lanes[i];
        l->started = pthread_create(&l->thread, NULL, store_worker_lane, l) == 0;
        if (!l->started) {
            store_worker_free(w);
            return NULL;
        }
    }
    return w;
}

/* Joins t by the deadline (plus a grace); 0, or -1 when it is still in a
 * call. */
static int join_by(pthread_t t, int64_t deadline_ms)
{
    int64_t wait_ms = deadline_ms - now_mono_ms();
    wait_ms = (wait_ms > 0 ? wait_ms : 0) + 500;
    struct timespec until = wall_in_ms(wait_ms);
    return pthread_timedjoin_np(t, NULL, &until) == 0 ? 0 : -1;
}

void store_worker_stop(store_worker_t *w, int64_t deadline_ms)
{
    if (!w || !w->started || w->abandoned)
        return;
    store_worker_flush(w);
    w->deadline_ms = deadline_ms;
    for (int i = 0; i < STORE_LANES; i++)
        handoff_close(w->lanes[i].requests);

    /* A call to an unreachable server can block for the driver's server
     * selection timeout: past the deadline, leave the threads to the
     * process exit rather than hold the shutdown. */
    int stuck = 0;
    for (int i = 0; i < STORE_LANES; i++) {
        struct lane *l = &w->lanes[i];
        if (l->started && join_by(l->thread, deadline_ms) != 0)
            stuck = 1;
        else
            l->started = 0;
    }
    if (stuck) {
        log_warn("the store did not answer before the shutdown deadline; leaving it");
        /* A thread may still finish a call: its completions must not
         * reach a loop that is gone. */
        handoff_close(w->completions);
        w->abandoned = 1;
        return;
    }
    w->started = 0;
}

void store_worker_free(store_worker_t *w)
{
    if (!w)
        return;
    store_worker_stop(w, 0);
    if (w->abandoned)
        return;
    for (int i = 0; i < STORE_LANES; i++) {
        struct lane *l = &w->lanes[i];
        store_close(l->st);
        handoff_free(l->requests, list_free);
        if (l->open)
            list_free(&l->open->link);
    }
    handoff_free(w->completions, list_free);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->progress);
    free(w);
}
