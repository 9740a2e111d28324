/* The store worker's thread: it runs the store's blocking calls, writes
 * before reads, in bulk, retrying failures, and expires what waited too
 * long. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "store_worker_internal.h"
#include "timeutil.h"
#include "xalloc.h"

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000


/* Whether a failed call should be tried again: yes, after a pause, until
 * a stop is asked for and either the deadline has passed or the call was
 * a read (which nobody waits for then). At a stop, `lost` says what giving
 * up costs. Logs the first failure and then every 30 s. */
static int retry(store_worker_t *w, const char *what, const char *errstr, int attempt,
                 int64_t *delay, const char *lost)
{
    if (attempt == 1 || attempt % (int)(30000 / RETRY_MAX_MS) == 0)
        log_warn("%s failed, retrying (attempt %d): %s", what, attempt, errstr);
    atomic_store(&w->failing, 1);
    atomic_fetch_add(&w->failures, 1);

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

/* Sorts what the loop submitted into the worker's queues, one per kind of
 * call, each in submission order. */
static void enqueue(struct req_list *by_op, handoff_msg_t *batches)
{
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
}

/* One store call: a chunk of puts if any wait, else of removes, else one
 * fetch. Writes commit offsets and free memory, so they never wait behind
 * reads, which can be slow (a store without a usable index scans per
 * read): new writes are taken between any two reads. A fetch still sees
 * every put submitted before it. Past a stop's deadline each call is tried
 * once, and what fails is dropped (a put's offset then stays
 * uncommitted). */
static void run_one(store_worker_t *w, struct req_list *by_op)
{
    int op = by_op[OP_PUT].head ? OP_PUT : by_op[OP_REMOVE].head ? OP_REMOVE : OP_FETCH;
    struct req_list *l = chunk(&by_op[op].head, op == OP_FETCH ? 1 : CHUNK);
    if (!by_op[op].head)
        by_op[op].tail = &by_op[op].head;
    if (op == OP_FETCH ? run_fetch(w, l->head) == 0 : run_chunk(w, l) == 0) {
        atomic_store(&w->failing, 0);
        post(w, l);
    }
    else if (op == OP_FETCH)
        list_free(&l->link);
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

void *store_worker_thread(void *arg)
{
    store_worker_t *w = arg;
    char err[512];
    int64_t delay = RETRY_MIN_MS;

    for (int attempt = 1; store_prepare(w->st, err, sizeof(err)) != 0; attempt++) {
        if (!retry(w, "preparing the offline store", err, attempt, &delay, NULL))
            return NULL;
    }
    atomic_store(&w->failing, 0);
    log_info("offline store ready (%s)", store_name(w->st));

    struct req_list by_op[3];
    for (int i = 0; i < 3; i++)
        by_op[i] = (struct req_list){.tail = &by_op[i].head};
    int expires = w->expiry.max_per_user || w->expiry.retention_ms;
    int64_t next_expiry = now_mono_ms();
    for (;;) {
        if (expires && now_mono_ms() >= next_expiry) {
            expire(w);
            next_expiry = now_mono_ms() + w->expiry.interval_ms;
        }
        int idle = !by_op[OP_PUT].head && !by_op[OP_REMOVE].head && !by_op[OP_FETCH].head;
        /* Wait only when there is nothing to do; else take what came. */
        handoff_msg_t *batches =
            idle ? handoff_wait(w->requests, expires ? next_expiry - now_mono_ms() : -1)
                 : handoff_take(w->requests, (size_t)-1);
        enqueue(by_op, batches);
        if (by_op[OP_PUT].head || by_op[OP_REMOVE].head || by_op[OP_FETCH].head)
            run_one(w, by_op);
        else if (handoff_closed(w->requests))
            return NULL;
    }
}
