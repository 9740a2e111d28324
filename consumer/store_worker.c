/* The store worker thread and its requests (store_worker.h). */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "store_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handoff.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

#define CHUNK 1000 /* puts per bulk insert, removes per bulk delete */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

enum op { OP_PUT, OP_REMOVE, OP_FETCH };

struct store_req {
    store_req_t *next;
    enum op op;
    store_done_fn done;
    void *arg;
    hub_msg_t msg; /* put: all of it; remove: id and user; fetch: user */
    int64_t after_seq;
    size_t limit;
    uint64_t tag;
    hub_msg_t *found; /* fetch: the answer, each string owned */
    size_t nfound, found_cap;
    char buf[];       /* msg's strings: id, user, frame */
};

/* Requests travelling together: what the loop submitted in one turn, or
 * what one store call completed. */
struct req_list {
    handoff_msg_t link;
    store_req_t *head, **tail;
    size_t n;
};

struct store_worker {
    store_t *st;
    struct store_expiry expiry;
    handoff_t *requests;    /* loop -> worker */
    handoff_t *completions; /* worker -> loop */
    pthread_t thread;
    int started;
    int abandoned; /* outlived the stop deadline: never free what it uses */
    int64_t deadline_ms; /* written before requests is closed */

    /* loop thread only */
    struct req_list *open;
    size_t backlog, backlog_bytes;
};

static struct req_list *list_new(void)
{
    struct req_list *l = xcalloc(1, sizeof(*l));
    l->tail = &l->head;
    return l;
}

static void list_push(struct req_list *l, store_req_t *r)
{
    r->next = NULL;
    *l->tail = r;
    l->tail = &r->next;
    l->n++;
}

static void forget_found(store_req_t *r)
{
    for (size_t i = 0; i < r->nfound; i++) {
        free((char *)r->found[i].id);
        free((char *)r->found[i].user);
        free((char *)r->found[i].frame);
    }
    r->nfound = 0;
}

/* Frees r and every request after it. */
static void free_reqs(store_req_t *r)
{
    while (r) {
        store_req_t *next = r->next;
        forget_found(r);
        free(r->found);
        free(r);
        r = next;
    }
}

static void list_free(handoff_msg_t *m)
{
    free_reqs(((struct req_list *)m)->head);
    free(m);
}

/* ---- the loop's side ---- */

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
    if (!w->open)
        w->open = list_new();
    list_push(w->open, r);
    return r;
}

void store_worker_put(store_worker_t *w, const hub_msg_t *m, store_done_fn done, void *arg)
{
    store_req_t *r = submit(w, OP_PUT, m->user, m->id, m->frame, m->frame_len, done, arg);
    r->msg.seq = m->seq;
    r->msg.partition = m->partition;
    r->msg.offset = m->offset;
    w->backlog++;
    w->backlog_bytes += m->frame_len;
}

void store_worker_remove(store_worker_t *w, const char *user, const char *id, store_done_fn done,
                         void *arg)
{
    submit(w, OP_REMOVE, user, id, NULL, 0, done, arg);
}

void store_worker_fetch(store_worker_t *w, const char *user, int64_t after_seq, size_t limit,
                        uint64_t tag, store_done_fn done, void *arg)
{
    store_req_t *r = submit(w, OP_FETCH, user, NULL, NULL, 0, done, arg);
    r->after_seq = after_seq;
    r->limit = limit;
    r->tag = tag;
}

void store_worker_flush(store_worker_t *w)
{
    if (!w->open)
        return;
    /* The request queue has no limit: the loop bounds its backlog itself. */
    if (handoff_send(w->requests, &w->open->link) != 0)
        return; /* stopped: kept, freed with the worker */
    w->open = NULL;
}

size_t store_worker_poll(store_worker_t *w)
{
    size_t n = 0;
    handoff_msg_t *m = handoff_take(w->completions, (size_t)-1);

    while (m) {
        handoff_msg_t *next = m->next;
        struct req_list *l = (struct req_list *)m;
        for (store_req_t *r = l->head; r; r = r->next, n++) {
            if (r->op == OP_PUT) {
                w->backlog--;
                w->backlog_bytes -= r->msg.frame_len;
            }
            if (r->done) {
                struct store_result res = {&r->msg, r->msg.user, r->tag, r->limit, r->found,
                                           r->nfound};
                r->done(r->arg, &res);
            }
        }
        list_free(m);
        m = next;
    }
    return n;
}

size_t store_worker_backlog(const store_worker_t *w)
{
    return w->backlog;
}

size_t store_worker_backlog_bytes(const store_worker_t *w)
{
    return w->backlog_bytes;
}

/* ---- the worker's side ---- */

/* Whether a failed call should be tried again: yes, after a pause, until
 * a stop is asked for and either the deadline has passed or the call was
 * a read (which nobody waits for then). At a stop, `lost` says what giving
 * up costs. Logs the first failure and then every 30 s. */
static int retry(store_worker_t *w, const char *what, const char *errstr, int attempt,
                 int64_t *delay, const char *lost)
{
    if (attempt == 1 || attempt % (int)(30000 / RETRY_MAX_MS) == 0)
        log_warn("%s failed, retrying (attempt %d): %s", what, attempt, errstr);

    if (handoff_pause(w->requests, *delay)) {
        int64_t left = w->deadline_ms - now_mono_ms();
        if (!lost || left <= 0) {
            if (lost)
                log_error("giving up on %s at shutdown: %s (%s)", what, errstr, lost);
            return 0;
        }
        /* Stopping: the pause no longer waits, so wait here. */
        int64_t ms = *delay < left ? *delay : left;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    *delay = *delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : *delay * 2;
    return 1;
}

/* Hands finished requests to the loop. */
static void post(store_worker_t *w, struct req_list *done)
{
    if (handoff_send(w->completions, &done->link) != 0)
        list_free(&done->link); /* abandoned at a stop: nobody polls */
}

/* Moves up to max requests from the front of *from into a new list. */
static struct req_list *chunk(store_req_t **from, size_t max)
{
    struct req_list *l = list_new();
    while (*from && l->n < max) {
        store_req_t *r = *from;
        *from = r->next;
        list_push(l, r);
    }
    return l;
}

/* Runs one chunk's store call until it succeeds (0) or is given up (-1;
 * the chunk is then freed). */
static int run_chunk(store_worker_t *w, struct req_list *l)
{
    const char *users[CHUNK], *ids[CHUNK];
    store_doc_t docs[CHUNK];
    char err[512];
    size_t n = 0;
    enum op op = l->head->op;

    for (store_req_t *r = l->head; r; r = r->next, n++) {
        const hub_msg_t *m = &r->msg;
        docs[n] = (store_doc_t){m->id, m->user, m->frame, m->frame_len, m->seq};
        users[n] = m->user;
        ids[n] = m->id;
    }
    int64_t delay = RETRY_MIN_MS;
    for (int attempt = 1;; attempt++) {
        int rc = op == OP_PUT ? store_put(w->st, docs, n, err, sizeof(err))
                              : store_remove(w->st, users, ids, n, err, sizeof(err));
        if (rc == 0)
            return 0;
        if (op == OP_PUT ? !retry(w, "storing notifications", err, attempt, &delay,
                                  "nothing is lost: their Kafka offsets stay uncommitted, so "
                                  "they are consumed again on restart")
                         : !retry(w, "deleting acknowledged notifications", err, attempt, &delay,
                                  "they stay stored and are delivered again on the next "
                                  "connect")) {
            list_free(&l->link);
            return -1;
        }
    }
}

static void on_found(void *arg, const store_doc_t *doc)
{
    store_req_t *r = arg;
    if (r->nfound == r->found_cap) {
        r->found_cap = r->found_cap ? r->found_cap * 2 : 16;
        r->found = xrealloc(r->found, r->found_cap * sizeof(*r->found));
    }
    r->found[r->nfound++] = (hub_msg_t){xstrdup(doc->id), xstrdup(doc->user),
                                        xstrndup(doc->frame, doc->frame_len), doc->frame_len,
                                        doc->seq, -1, -1};
}

/* Returns 0, or -1 when given up at a stop. */
static int run_fetch(store_worker_t *w, store_req_t *r)
{
    char err[512];
    int64_t delay = RETRY_MIN_MS;

    for (int attempt = 1;; attempt++) {
        if (store_fetch(w->st, r->msg.user, r->after_seq, r->limit, on_found, r, err,
                        sizeof(err)) >= 0)
            return 0;
        forget_found(r);
        if (!retry(w, "reading stored notifications", err, attempt, &delay, NULL))
            return -1;
    }
}

/* One round: everything submitted since the last, puts before removes
 * before fetches. Past a stop's deadline each call is tried once, and what
 * fails is dropped (a put's offset then stays uncommitted). */
static void run_round(store_worker_t *w, handoff_msg_t *batches)
{
    struct req_list by_op[3];
    for (int i = 0; i < 3; i++)
        by_op[i] = (struct req_list){.tail = &by_op[i].head};
    while (batches) {
        handoff_msg_t *next = batches->next;
        struct req_list *l = (struct req_list *)batches;
        for (store_req_t *r = l->head, *rn; r; r = rn) {
            rn = r->next;
            list_push(&by_op[r->op], r);
        }
        free(l);
        batches = next;
    }
    for (int op = OP_PUT; op <= OP_FETCH; op++) {
        while (by_op[op].head) {
            struct req_list *l = chunk(&by_op[op].head, op == OP_FETCH ? 1 : CHUNK);
            if (op == OP_FETCH ? run_fetch(w, l->head) == 0 : run_chunk(w, l) == 0)
                post(w, l);
            else if (op == OP_FETCH)
                list_free(&l->link);
        }
    }
}

static void expire(store_worker_t *w)
{
    char err[512];
    const struct store_expiry *e = &w->expiry;
    int64_t n = store_expire(w->st, e->max_per_user,
                             e->retention_ms ? now_wall_ms() - e->retention_ms : 0, err,
                             sizeof(err));
    if (n < 0)
        log_warn("expiring pending notifications failed (tried again in %lld s): %s",
                 (long long)(e->interval_ms / 1000), err);
    else if (n > 0)
        log_warn("expired %lld pending notifications in all (--max-pending-per-user %zu, "
                 "--pending-retention %lld s)",
                 (long long)n, e->max_per_user, (long long)(e->retention_ms / 1000));
}

static void *worker(void *arg)
{
    store_worker_t *w = arg;
    char err[512];
    int64_t delay = RETRY_MIN_MS;

    for (int attempt = 1; store_prepare(w->st, err, sizeof(err)) != 0; attempt++) {
        if (!retry(w, "preparing the offline store", err, attempt, &delay, NULL))
            return NULL;
    }
    log_info("offline store ready (%s)", store_name(w->st));

    int expires = w->expiry.max_per_user || w->expiry.retention_ms;
    int64_t next_expiry = now_mono_ms();
    for (;;) {
        if (expires && now_mono_ms() >= next_expiry) {
            expire(w);
            next_expiry = now_mono_ms() + w->expiry.interval_ms;
        }
        handoff_msg_t *batches =
            handoff_wait(w->requests, expires ? next_expiry - now_mono_ms() : -1);
        if (batches)
            run_round(w, batches);
        else if (handoff_closed(w->requests))
            return NULL;
    }
}

store_worker_t *store_worker_start(store_t *st, const struct store_expiry *expiry,
                                   void (*wake)(void *arg), void *arg)
{
    store_worker_t *w = xcalloc(1, sizeof(*w));
    w->st = st;
    w->expiry = *expiry;
    w->requests = handoff_new(0, NULL, NULL);
    w->completions = handoff_new(0, wake, arg);
    if (pthread_create(&w->thread, NULL, worker, w) != 0) {
        handoff_free(w->requests, list_free);
        handoff_free(w->completions, list_free);
        free(w);
        return NULL;
    }
    w->started = 1;
    return w;
}

void store_worker_stop(store_worker_t *w, int64_t deadline_ms)
{
    if (!w || !w->started || w->abandoned)
        return;
    store_worker_flush(w);
    w->deadline_ms = deadline_ms;
    handoff_close(w->requests);

    /* A call to an unreachable server can block for the driver's server
     * selection timeout: past the deadline, leave the worker to the
     * process exit rather than hold the shutdown. */
    int64_t wait_ms = deadline_ms - now_mono_ms();
    wait_ms = (wait_ms > 0 ? wait_ms : 0) + 500;
    struct timespec until = wall_in_ms(wait_ms);
    if (pthread_timedjoin_np(w->thread, NULL, &until) != 0) {
        log_warn("the store did not answer before the shutdown deadline; leaving it");
        /* It may still finish a call: its completions must not reach a
         * loop that is gone. */
        handoff_close(w->completions);
        w->abandoned = 1;
        return;
    }
    w->started = 0;
    store_close(w->st);
    w->st = NULL;
}

void store_worker_free(store_worker_t *w)
{
    if (!w)
        return;
    store_worker_stop(w, 0);
    if (w->abandoned)
        return;
    handoff_free(w->requests, list_free);
    handoff_free(w->completions, list_free);
    if (w->open)
        list_free(&w->open->link);
    free(w);
}
