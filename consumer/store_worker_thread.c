/* The store worker's threads, one a lane: puts in bulk; removes in bulk,
 * and expiry; fetches, many users in one read, each after the writes
 * submitted before it. Each retries its failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static int retry(struct lane *lane, const char *what, const char *errstr, int attempt,
                 int64_t *delay, const char *lost)
{
    store_worker_t *w = lane->w;
    if (attempt == 1 || attempt % (int)(30000 / RETRY_MAX_MS) == 0)
        log_warn("%s failed, retrying (attempt %d): %s", what, attempt, errstr);
    atomic_store(&lane->failing, 1);
    atomic_fetch_add(&w->failures, 1);

    if (handoff_pause(lane->requests, *delay)) {
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

/* Moves up to max requests of one kind from the front of q into a new
 * list; a counted remove goes alone. */
static struct req_list *chunk(struct req_list *q, size_t max)
{
    struct req_list *l = list_new();
    while (q->head && l->n < max && !(l->n && (q->head->counted || q->head->op != l->head->op))) {
        store_req_t *r = q->head;
        if (r->counted)
            max = 1;
        q->head = r->next;
        list_push(l, r);
    }
    if (!q->head)
        q->tail = &q->head;
    return l;
}

/* Runs one chunk's store call until it succeeds (0) or is given up (-1;
 * the chunk is then freed). */
static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* A chunk of room puts or cursor writes: one call. */
static int64_t stream_write(struct lane *lane, struct req_list *l, char *err, size_t size)
{
    room_doc_t docs[CHUNK]; /* each lane's own thread: not static */
    room_cursor_t cursors[CHUNK];
    size_t n = 0;
    int64_t now = now_wall_ms();
    for (store_req_t *r = l->head; r; r = r->next, n++) {
        const hub_msg_t *m = &r->msg;
        if (r->op == OP_ROOM_PUT)
            docs[n] = (room_doc_t){m->stream, m->id, m->frame, m->frame_len, m->type, m->seq,
                                   now, m->expires_ms};
        else
            cursors[n] = (room_cursor_t){m->user, m->id, r->seq, m->frame};
    }
    return l->head->op == OP_ROOM_PUT ? store_room_put(lane->st, docs, n, err, size)
                                      : store_cursor_put(lane->st, cursors, n, err, size);
}

static int run_chunk(struct lane *lane, struct req_list *l)
{
    const char *users[CHUNK], *ids[CHUNK];
    store_doc_t docs[CHUNK];
    char err[512];
    size_t n = 0;
    enum op op = l->head->op;

    for (store_req_t *r = l->head; r; r = r->next, n++) {
        const hub_msg_t *m = &r->msg;
        docs[n] = (store_doc_t){m->id,  m->user,      m->frame,        m->frame_len,
                                m->seq, r->acked_at, m->expires_ms, m->stored_ms};
        users[n] = m->user;
        ids[n] = m->id;
    }
    int64_t delay = RETRY_MIN_MS;
    store_req_t *one = l->head;
    for (int attempt = 1;; attempt++) {
        int64_t t0 = now_us();
        int64_t rc = op == OP_PUT       ? store_put(lane->st, docs, n, err, sizeof(err))
                     : op == OP_HISTORY ? store_history_put(lane->st, docs, n, err, sizeof(err))
                     : op == OP_ROOM_PUT || op == OP_CURSOR_PUT
                         ? stream_write(lane, l, err, sizeof(err))
                     : one->through     ? store_remove_through(lane->st, one->msg.user, one->seq,
                                                               err, sizeof(err))
                                        : store_remove(lane->st, users, ids, n, err, sizeof(err));
        lane_timed(lane, now_us() - t0);
        if (rc >= 0) {
            one->removed = rc; /* what a counted remove, alone, answers */
            return 0;
        }
        if (op == OP_PUT || op == OP_ROOM_PUT
                ? !retry(lane, "storing notifications", err, attempt, &delay,
                         "nothing is lost: their Kafka offsets stay uncommitted, "
                         "so they are consumed again on restart")
            : op == OP_CURSOR_PUT ? !retry(lane, "keeping what users read of rooms", err, attempt,
                                           &delay, "those users may see some again")
            : op == OP_HISTORY ? !retry(lane, "keeping acknowledged notifications in the history",
                                        err, attempt, &delay,
                                        "they are missing from the users' history")
                               : !retry(lane, "deleting acknowledged notifications", err, attempt,
                                        &delay,
                                        "they stay stored and are delivered again on the next "
                                        "connect")) {
            list_free(&l->link);
            return -1;
        }
    }
}

static void on_found(void *arg, size_t read, const store_doc_t *doc)
{
    store_req_t *r = ((store_req_t **)arg)[read];
    if (r->nfound == r->found_cap) {
        r->found_cap = r->found_cap ? r->found_cap * 2 : 16;
        r->found = xrealloc(r->found, r->found_cap * sizeof(*r->found));
        r->found_acked = xrealloc(r->found_acked, r->found_cap * sizeof(*r->found_acked));
    }
    r->found_acked[r->nfound] = doc->acked_at;
    r->found[r->nfound++] = (hub_msg_t){.id = xstrdup(doc->id),
                                        .user = xstrdup(doc->user),
                                        .frame = xstrndup(doc->frame, doc->frame_len),
                                        .frame_len = doc->frame_len,
                                        .seq = doc->seq,
                                        .partition = -1,
                                        .offset = -1,
                                        .expires_ms = doc->expires_at};
}

/* Moves up to FETCH_CHUNK fetches of distinct users from the front of q
 * into a new list (a user's second fetch waits for the next read); or the
 * list at its front, alone. */
static struct req_list *fetch_chunk(struct req_list *q)
{
    struct req_list *l = list_new();
    store_req_t **p = &q->head;
    enum op op = q->head->op;
    const char *stream = q->head->msg.stream;
    int alone = op == OP_LIST;
    while (*p && l->n < (alone ? 1 : FETCH_CHUNK)) {
        /* Together: fetches of distinct users; cursor reads; room reads of
         * one stream (of distinct users). */
        store_req_t *r = *p, *o = op == OP_CURSOR_GET ? NULL : l->head;
        while (o && strcmp(o->msg.user, r->msg.user) != 0)
            o = o->next;
        if (o || r->op != op || (op == OP_ROOM_FETCH && strcmp(r->msg.stream, stream) != 0)) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        list_push(l, r);
    }
    q->tail = &q->head;
    while (*q->tail)
        q->tail = &(*q->tail)->next;
    return l;
}

/* One read for every fetch in l. Returns 0, or -1 when given up at a
 * stop. */
static int run_fetch(struct lane *lane, struct req_list *l)
{
    store_read_t reads[FETCH_CHUNK];
    store_req_t *reqs[FETCH_CHUNK];
    char err[512];
    int64_t delay = RETRY_MIN_MS;
    size_t n = 0;

    for (store_req_t *r = l->head; r; r = r->next, n++) {
        reads[n] = (store_read_t){r->msg.user, r->seq, r->limit, 0};
        reqs[n] = r;
    }
    for (int attempt = 1;; attempt++) {
        int64_t t0 = now_us();
        int rc = store_fetch(lane->st, reads, n, on_found, reqs, err, sizeof(err));
        lane_timed(lane, now_us() - t0);
        if (rc >= 0) {
            for (size_t i = 0; i < n; i++)
                reqs[i]->more = reads[i].more;
            return 0;
        }
        for (size_t i = 0; i < n; i++)
            forget_found(reqs[i]);
        if (!retry(lane, "reading stored notifications", err, attempt, &delay, NULL))
            return -1;
    }
}

/* The inbox's read of one user. Returns 0, or -1 when given up at a stop. */
static int run_list(struct lane *lane, store_req_t *r)
{
    char err[512];
    int64_t delay = RETRY_MIN_MS;
    store_req_t *reqs[1] = {r};
    for (int attempt = 1;; attempt++) {
        int64_t t0 = now_us();
        int rc = store_list(lane->st, STORE_PENDING, r->msg.user, r->seq, r->limit, on_found,
                            reqs, err, sizeof(err));
        if (rc >= 0 && r->with_history)
            rc = store_list(lane->st, STORE_HISTORY, r->msg.user, r->seq, r->limit, on_found,
                            reqs, err, sizeof(err));
        lane_timed(lane, now_us() - t0);
        if (rc >= 0)
            return 0;
        forget_found(r);
        if (!retry(lane, "listing stored notifications", err, attempt, &delay, NULL))
            return -1;
    }
}

static void found_push(store_req_t *r, hub_msg_t m)
{
    if (r->nfound == r->found_cap) {
        r->found_cap = r->found_cap ? r->found_cap * 2 : 16;
        r->found = xrealloc(r->found, r->found_cap * sizeof(*r->found));
    }
    r->found[r->nfound++] = m;
}

/* A batch of room reads of one stream: each request takes what is above
 * its own position, up to its own limit. */
struct room_read {
    store_req_t **reqs;
    size_t n;
};

static void on_room_found(void *arg, const room_doc_t *doc)
{
    struct room_read *rr = arg;
    for (size_t i = 0; i < rr->n; i++) {
        store_req_t *r = rr->reqs[i];
        if (doc->seq <= r->seq || r->nfound >= r->limit)
            continue;
        found_push(r, (hub_msg_t){.id = xstrdup(doc->id),
                                  .frame = xstrndup(doc->frame, doc->frame_len),
                                  .frame_len = doc->frame_len,
                                  .seq = doc->seq,
                                  .partition = -1,
                                  .offset = -1,
                                  .expires_ms = doc->expires_at,
                                  .stream = xstrdup(doc->stream),
                                  .type = xstrdup(doc->type ? doc->type : "")});
    }
}

/* A batch of cursor reads: each request takes its user's. */
static void on_cursor_found(void *arg, const room_cursor_t *c)
{
    struct room_read *rr = arg;
    for (size_t i = 0; i < rr->n; i++) {
        store_req_t *r = rr->reqs[i];
        if (strcmp(r->msg.user, c->user) != 0)
            continue;
        r->cursors = xrealloc(r->cursors, (r->ncursors + 1) * sizeof(*r->cursors));
        r->cursors[r->ncursors++] = (hub_cursor_t){xstrdup(c->stream), c->acked_seq,
                                                   xstrdup(c->acked ? c->acked : "")};
    }
}

#define ROOM_READ_MAX 16384 /* notifications one batched room read holds */

/* One read for a batch of room reads of one stream (from the lowest
 * position, every limit's worth), or of cursor reads (every user and
 * stream asked). Returns 0, or -1 when given up at a stop. */
static int run_stream_reads(struct lane *lane, struct req_list *l)
{
    store_req_t *reqs[FETCH_CHUNK];
    const char *users[FETCH_CHUNK], *streams[FETCH_CHUNK * 4];
    struct room_read rr = {reqs, 0};
    size_t nstreams = 0, limit = 0;
    int64_t after = INT64_MAX, since = INT64_MAX;
    char err[512];
    int64_t delay = RETRY_MIN_MS;
    enum op op = l->head->op;

    for (store_req_t *r = l->head; r; r = r->next) {
        reqs[rr.n] = r;
        users[rr.n++] = r->msg.user;
        after = r->seq < after ? r->seq : after;
        since = r->acked_at < since ? r->acked_at : since;
        limit += r->limit;
        for (size_t i = 0; i < r->nstreams; i++) {
            size_t j = 0;
            while (j < nstreams && strcmp(streams[j], r->streams[i]) != 0)
                j++;
            if (j == nstreams && nstreams < sizeof(streams) / sizeof(streams[0]))
                streams[nstreams++] = r->streams[i];
        }
    }
    /* Room for what each one reads past the others' positions, bounded. */
    limit = limit * 2 > ROOM_READ_MAX ? ROOM_READ_MAX : limit * 2;
    for (int attempt = 1;; attempt++) {
        int more = 0;
        int64_t t0 = now_us();
        int rc = op == OP_ROOM_FETCH
                     ? store_room_fetch(lane->st, l->head->msg.stream, after, since,
                                        now_wall_ms(), limit, on_room_found, &rr, &more, err,
                                        sizeof(err))
                     : store_cursor_get(lane->st, users, rr.n, streams, nstreams,
                                        on_cursor_found, &rr, err, sizeof(err));
        lane_timed(lane, now_us() - t0);
        if (rc >= 0) {
            /* Cut short (more), a read that got less than its limit may
             * have more too. */
            for (size_t i = 0; i < rr.n; i++)
                reqs[i]->more = reqs[i]->nfound >= reqs[i]->limit || more;
            return 0;
        }
        for (size_t i = 0; i < rr.n; i++) {
            forget_found(reqs[i]);
            forget_cursors(reqs[i]);
        }
        if (!retry(lane, op == OP_ROOM_FETCH ? "reading room notifications"
                                             : "reading what users read of rooms",
                   err, attempt, &delay, NULL))
            return -1;
    }
}

/* Appends what the loop submitted to q, in submission order. */
static void enqueue(struct req_list *q, handoff_msg_t *batches)
{
    while (batches) {
        handoff_msg_t *next = batches->next;
        struct req_list *l = (struct req_list *)batches;
        if (l->head) {
            *q->tail = l->head;
            q->tail = l->tail;
        }
        free(l);
        batches = next;
    }
}

/* The writers' progress, for the reads' barrier. */
static void written(store_worker_t *w, enum op op, size_t n)
{
    pthread_mutex_lock(&w->lock);
    if (op == OP_PUT)
        w->puts_done += n;
    else
        w->removes_done += n;
    pthread_cond_broadcast(&w->progress);
    pthread_mutex_unlock(&w->lock);
}

static void expire(store_worker_t *w)
{
    char err[512];
    const struct store_expiry *e = &w->expiry;
    int64_t now = now_wall_ms();
    int64_t due = store_expire_due(w->lanes[OP_REMOVE].st, now, err, sizeof(err));
    int64_t rooms = due < 0 ? -1
                            : store_room_expire(w->lanes[OP_REMOVE].st, now - e->room_retention_ms,
                                                now, err, sizeof(err));
    if (due < 0 || rooms < 0)
        log_warn("deleting expired notifications failed (tried again in %lld s): %s",
                 (long long)(e->interval_ms / 1000), err);
    else
        atomic_fetch_add(&w->expired, (unsigned long)(due + rooms));
    if (!e->max_per_user && !e->retention_ms && !e->history_ms)
        return;
    int64_t n = store_expire(w->lanes[OP_REMOVE].st, e->max_per_user,
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

/* Prepares the lane's connection. Returns 0, or -1 when stopped first. */
static int prepare(struct lane *lane)
{
    char err[512];
    int64_t delay = RETRY_MIN_MS;

    for (int attempt = 1; store_prepare(lane->st, err, sizeof(err)) != 0; attempt++) {
        if (!retry(lane, "preparing the offline store", err, attempt, &delay, NULL))
            return -1;
    }
    atomic_store(&lane->failing, 0);
    return 0;
}

/* Waits until the store is prepared and the writer lanes have done at
 * least puts and removes. Returns 0, or -1 when the store never will be
 * ready or the lane is stopping. */
static int wait_for_writers(struct lane *lane, size_t puts, size_t removes)
{
    store_worker_t *w = lane->w;
    pthread_mutex_lock(&w->lock);
    while ((!w->ready || w->puts_done < puts || w->removes_done < removes) && w->ready >= 0 &&
           !handoff_closed(lane->requests)) {
        struct timespec until = wall_in_ms(100); /* and look at the stop again */
        pthread_cond_timedwait(&w->progress, &w->lock, &until);
    }
    int ok = w->ready > 0 && w->puts_done >= puts && w->removes_done >= removes;
    pthread_mutex_unlock(&w->lock);
    return ok ? 0 : -1;
}

/* The puts lane prepares the store (migrations run once); the other lanes
 * then prepare their own connections. Returns 0, or -1 when stopped
 * first. */
static int become_ready(struct lane *lane)
{
    store_worker_t *w = lane->w;

    if (lane->op != OP_PUT)
        return wait_for_writers(lane, 0, 0) == 0 ? prepare(lane) : -1;
    int rc = prepare(lane);
    pthread_mutex_lock(&w->lock);
    w->ready = rc == 0 ? 1 : -1;
    pthread_cond_broadcast(&w->progress);
    pthread_mutex_unlock(&w->lock);
    if (rc == 0)
        log_info("offline store ready (%s)", store_name(lane->st));
    return rc;
}

/* Waits until the puts and removes submitted before the fetches in l are
 * done, so a read sees what was stored or deleted before it was asked. */
static int after_writes(struct lane *lane, const struct req_list *l)
{
    size_t puts = 0, removes = 0;
    for (const store_req_t *r = l->head; r; r = r->next) {
        puts = r->puts_before > puts ? r->puts_before : puts;
        removes = r->removes_before > removes ? r->removes_before : removes;
    }
    return wait_for_writers(lane, puts, removes);
}

/* Runs the next call of the lane: a chunk of puts or removes, or a read of
 * up to FETCH_CHUNK users. */
static void run_next(struct lane *lane, struct req_list *q)
{
    store_worker_t *w = lane->w;
    struct req_list *l = lane->op == OP_FETCH ? fetch_chunk(q) : chunk(q, CHUNK);
    size_t n = l->n;
    enum op op = l->head->op;
    /* An acknowledgement from outside a connection also covers what was
     * on its way to the store when it came (stopping: tried all the same). */
    if (l->head->counted)
        wait_for_writers(lane, l->head->puts_before, 0);
    int ok = lane->op != OP_FETCH ? run_chunk(lane, l) == 0
             : after_writes(lane, l) != 0 ? 0
             : l->head->op == OP_LIST     ? run_list(lane, l->head) == 0
             : l->head->op != OP_FETCH    ? run_stream_reads(lane, l) == 0
                                          : run_fetch(lane, l) == 0;
    if (ok) {
        atomic_store(&lane->failing, 0);
        post(w, l);
    } else if (lane->op == OP_FETCH) {
        list_free(&l->link); /* stopping: nobody waits for a read */
    }
    if (WRITE_KIND(op) >= 0) /* given up at a stop too: nobody reads after it */
        written(w, WRITE_KIND(op) == 0 ? OP_PUT : OP_REMOVE, n);
}

/* The reads' lane asks an idle store every PROBE_MS whether it answers:
 * a store that nothing called must not count as answering (/readyz). */
#define PROBE_MS 3000

static void probe(struct lane *lane)
{
    char err[512];
    if (store_ping(lane->st, err, sizeof(err)) == 0) {
        if (atomic_exchange(&lane->failing, 0))
            log_info("the offline store answers again");
        return;
    }
    atomic_fetch_add(&lane->w->failures, 1);
    if (!atomic_exchange(&lane->failing, 1))
        log_warn("the offline store does not answer: %s", err);
}

/* Milliseconds until the sooner of two deadlines (-1: none), at least 0. */
static int64_t until(int64_t a, int64_t b)
{
    int64_t at = a < 0 ? b : b < 0 ? a : a < b ? a : b;
    if (at < 0)
        return -1;
    int64_t left = at - now_mono_ms();
    return left > 0 ? left : 0;
}

void *store_worker_lane(void *arg)
{
    struct lane *lane = arg;
    store_worker_t *w = lane->w;
    struct req_list q = {.tail = &q.head};

    if (become_ready(lane) != 0)
        return NULL; /* stopped: what was queued is freed with the worker */
    int expires = lane->op == OP_REMOVE; /* "ttl" and "expiresAt" at least */
    int probes = lane->op == OP_FETCH;
    int64_t next_expiry = expires ? now_mono_ms() : -1;
    int64_t next_probe = probes ? now_mono_ms() + PROBE_MS : -1;
    for (;;) {
        if (expires && now_mono_ms() >= next_expiry) {
            expire(w);
            next_expiry = now_mono_ms() + w->expiry.interval_ms;
        }
        if (probes && now_mono_ms() >= next_probe) {
            probe(lane);
            next_probe = now_mono_ms() + PROBE_MS;
        }
        /* Wait only when there is nothing to do; else take what came. */
        handoff_msg_t *batches = q.head ? handoff_take(lane->requests, (size_t)-1)
                                        : handoff_wait(lane->requests,
                                                       until(next_expiry, next_probe));
        enqueue(&q, batches);
        if (q.head) {
            run_next(lane, &q);
            if (probes) /* a read answered, or failed: as good as a probe */
                next_probe = now_mono_ms() + PROBE_MS;
        } else if (handoff_closed(lane->requests)) {
            return NULL;
        }
    }
}
