#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "storeq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

#define PUT_CHUNK 1000      /* documents per bulk insert */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

struct put {
    char *id, *user, *frame;
    size_t frame_len;
    int64_t seq;
    int32_t partition;
    int64_t offset;
};

struct removal {
    char *user, *id;
};

struct fetch {
    char *user;
    int64_t after;
    size_t limit;
    uint64_t gen;
};

#define VEC(T) struct { T *v; size_t n, cap; }

typedef struct batch {
    VEC(struct put) puts;
    VEC(struct removal) removals;
    VEC(struct fetch) fetches;
    struct batch *next;
} batch_t;

struct storeq {
    store_t *st;
    void (*notify)(void *);
    void *notify_arg;
    pthread_t thread;
    int started;
    int abandoned; /* the worker outlived the stop deadline: never free what it uses */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    batch_t *head, *tail;      /* handed to the worker, oldest first */
    int stopping;
    int64_t deadline_ms;
    struct storeq_results out; /* posted by the worker */

    /* loop thread only */
    batch_t *open;
    size_t backlog, backlog_bytes;
};

static void grow(void **v, size_t *cap, size_t size)
{
    *cap = *cap ? *cap * 2 : 16;
    *v = xrealloc(*v, *cap * size);
}

#define PUSH(vec) ((vec).n == (vec).cap ? grow((void **)&(vec).v, &(vec).cap, sizeof(*(vec).v)) : (void)0, &(vec).v[(vec).n++])

static batch_t *open_batch(storeq_t *q)
{
    if (!q->open)
        q->open = xcalloc(1, sizeof(batch_t));
    return q->open;
}

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->puts.n; i++) {
        free(b->puts.v[i].id);
        free(b->puts.v[i].user);
        free(b->puts.v[i].frame);
    }
    for (size_t i = 0; i < b->removals.n; i++) {
        free(b->removals.v[i].user);
        free(b->removals.v[i].id);
    }
    for (size_t i = 0; i < b->fetches.n; i++)
        free(b->fetches.v[i].user);
    free(b->puts.v);
    free(b->removals.v);
    free(b->fetches.v);
    free(b);
}

void storeq_put(storeq_t *q, const hub_msg_t *m)
{
    struct put *p = PUSH(open_batch(q)->puts);
    p->id = xstrdup(m->id);
    p->user = xstrdup(m->user);
    p->frame = xstrndup(m->frame, m->frame_len);
    p->frame_len = m->frame_len;
    p->seq = m->seq;
    p->partition = m->partition;
    p->offset = m->offset;
    q->backlog++;
    q->backlog_bytes += m->frame_len;
}

void storeq_remove(storeq_t *q, const char *user, const char *id)
{
    struct removal *r = PUSH(open_batch(q)->removals);
    r->user = xstrdup(user);
    r->id = xstrdup(id);
}

void storeq_fetch(storeq_t *q, const char *user, int64_t after_seq, size_t limit, uint64_t gen)
{
    struct fetch *f = PUSH(open_batch(q)->fetches);
    f->user = xstrdup(user);
    f->after = after_seq;
    f->limit = limit;
    f->gen = gen;
}

void storeq_flush(storeq_t *q)
{
    batch_t *b = q->open;
    if (!b)
        return;
    q->open = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

size_t storeq_backlog(const storeq_t *q)
{
    return q->backlog;
}

size_t storeq_backlog_bytes(const storeq_t *q)
{
    return q->backlog_bytes;
}

/* ---- worker ---- */

/* Whether a failed call should be tried again: yes, after a pause, until
 * a stop is asked for and either the deadline has passed or the call was
 * not carrying queued work. Logs the first failure and then every 30 s. */
static int retry(storeq_t *q, const char *what, const char *errstr, int attempt, int64_t *delay,
                 int carrying_work)
{
    if (attempt == 1 || attempt % (int)(30000 / RETRY_MAX_MS) == 0)
        log_warn("%s failed, retrying (attempt %d): %s", what, attempt, errstr);

    pthread_mutex_lock(&q->lock);
    int64_t until = now_mono_ms() + *delay;
    /* A stop cuts the pause short only for a call with nothing to finish. */
    while (!(q->stopping && !carrying_work) && now_mono_ms() < until) {
        struct timespec ts = wall_in_ms(50);
        pthread_cond_timedwait(&q->cond, &q->lock, &ts);
    }
    int give_up = q->stopping && (!carrying_work || now_mono_ms() >= q->deadline_ms);
    pthread_mutex_unlock(&q->lock);

    if (give_up) {
        if (carrying_work)
            log_error("giving up on %s at shutdown: %s (nothing is lost: the Kafka offsets of "
                      "these notifications stay uncommitted, so they are consumed again on restart)",
                      what, errstr);
        return 0;
    }
    *delay = *delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : *delay * 2;
    return 1;
}

struct fetch_acc {
    VEC(hub_msg_t) msgs;
};

static void on_fetched(void *arg, const store_doc_t *doc)
{
    struct fetch_acc *acc = arg;
    hub_msg_t *m = PUSH(acc->msgs);
    m->id = xstrdup(doc->id);
    m->user = xstrdup(doc->user);
    m->frame = xstrndup(doc->frame, doc->frame_len);
    m->frame_len = doc->frame_len;
    m->seq = doc->seq;
    m->partition = -1;
    m->offset = -1;
}

static void free_msgs(hub_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)msgs[i].id);
        free((char *)msgs[i].user);
        free((char *)msgs[i].frame);
    }
    free(msgs);
}

/* What one worker round produced, before it is posted. */
struct round {
    VEC(struct part_offset) stored;
    VEC(struct storeq_fetched) fetched;
    size_t puts_done, put_bytes_done;
};

static void run_puts(storeq_t *q, batch_t *list, struct round *r)
{
    store_doc_t docs[PUT_CHUNK];
    struct put *src[PUT_CHUNK];
    size_t n = 0;
    char err[512];

    for (batch_t *b = list; b; b = b->next) {
        for (size_t i = 0; i <= b->puts.n; i++) {
            if (i < b->puts.n) {
                struct put *p = &b->puts.v[i];
                docs[n] = (store_doc_t){p->id, p->user, p->frame, p->frame_len, p->seq};
                src[n++] = p;
            }
            /* Write a full chunk, or what is left after the last batch. */
            int end = i == b->puts.n && !b->next;
            if (n == 0 || (n < PUT_CHUNK && !end))
                continue;
            int64_t delay = RETRY_MIN_MS;
            for (int attempt = 1; store_put(q->st, docs, n, err, sizeof(err)) != 0; attempt++) {
                if (!retry(q, "storing notifications", err, attempt, &delay, 1))
                    return;
            }
            for (size_t k = 0; k < n; k++) {
                r->puts_done++;
                r->put_bytes_done += src[k]->frame_len;
                if (src[k]->partition >= 0)
                    *PUSH(r->stored) = (struct part_offset){src[k]->partition, src[k]->offset};
            }
            n = 0;
        }
    }
}

static void run_removals(storeq_t *q, batch_t *list)
{
    const char *users[PUT_CHUNK], *ids[PUT_CHUNK];
    size_t n = 0;
    char err[512];

    for (batch_t *b = list; b; b = b->next) {
        for (size_t i = 0; i <= b->removals.n; i++) {
            if (i < b->removals.n) {
                users[n] = b->removals.v[i].user;
                ids[n++] = b->removals.v[i].id;
            }
            int end = i == b->removals.n && !b->next;
            if (n == 0 || (n < PUT_CHUNK && !end))
                continue;
            int64_t delay = RETRY_MIN_MS;
            for (int attempt = 1; store_remove(q->st, users, ids, n, err, sizeof(err)) != 0;
                 attempt++) {
                if (!retry(q, "deleting acknowledged notifications", err, attempt, &delay, 1))
                    return;
            }
            n = 0;
        }
    }
}

static void run_fetches(storeq_t *q, batch_t *list, struct round *r)
{
    char err[512];

    for (batch_t *b = list; b; b = b->next) {
        for (size_t i = 0; i < b->fetches.n; i++) {
            struct fetch *f = &b->fetches.v[i];
            struct fetch_acc acc = {0};
            int64_t delay = RETRY_MIN_MS;
            int attempt = 1;

            for (;;) {
                int rc = store_fetch(q->st, f->user, f->after, f->limit, on_fetched, &acc, err,
                                     sizeof(err));
                if (rc >= 0)
                    break;
                free_msgs(acc.msgs.v, acc.msgs.n);
                memset(&acc, 0, sizeof(acc));
                if (!retry(q, "reading stored notifications", err, attempt++, &delay, 0))
                    return;
            }
            /* Ownership of the user string moves to the result. */
            *PUSH(r->fetched) = (struct storeq_fetched){f->user, f->gen, f->limit, acc.msgs.v, acc.msgs.n};
            f->user = NULL;
        }
    }
}

#define APPEND(dst, ndst, src, nsrc)                                                           \
    do {                                                                                       \
        if ((nsrc) == 0)                                                                       \
            break;                                                                             \
        (dst) = xrealloc((dst), ((ndst) + (nsrc)) * sizeof(*(dst)));                           \
        memcpy((dst) + (ndst), (src), (nsrc) * sizeof(*(dst)));                                \
        (ndst) += (nsrc);                                                                      \
    } while (0)

static void post(storeq_t *q, struct round *r)
{
    pthread_mutex_lock(&q->lock);
    APPEND(q->out.stored, q->out.nstored, r->stored.v, r->stored.n);
    APPEND(q->out.fetched, q->out.nfetched, r->fetched.v, r->fetched.n);
    q->out.puts_done += r->puts_done;
    q->out.put_bytes_done += r->put_bytes_done;
    pthread_mutex_unlock(&q->lock);
    free(r->stored.v);
    free(r->fetched.v);
    q->notify(q->notify_arg);
}

static void *worker(void *arg)
{
    storeq_t *q = arg;
    char err[512];
    int64_t delay = RETRY_MIN_MS;

    for (int attempt = 1; store_prepare(q->st, err, sizeof(err)) != 0; attempt++) {
        if (!retry(q, "preparing the offline store", err, attempt, &delay, 0))
            return NULL;
    }
    log_info("offline store ready (%s)", store_name(q->st));

    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cond, &q->lock);
        batch_t *list = q->head;
        q->head = q->tail = NULL;
        int stopping = q->stopping;
        pthread_mutex_unlock(&q->lock);

        if (!list && stopping)
            return NULL;

        struct round r = {0};
        run_puts(q, list, &r);
        run_removals(q, list);
        run_fetches(q, list, &r);
        post(q, &r);
        while (list) {
            batch_t *next = list->next;
            batch_free(list);
            list = next;
        }
    }
}

storeq_t *storeq_start(store_t *st, void (*notify)(void *arg), void *arg)
{
    storeq_t *q = xcalloc(1, sizeof(*q));
    q->st = st;
    q->notify = notify;
    q->notify_arg = arg;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    if (pthread_create(&q->thread, NULL, worker, q) != 0) {
        free(q);
        return NULL;
    }
    q->started = 1;
    return q;
}

int storeq_poll(storeq_t *q, struct storeq_results *out)
{
    pthread_mutex_lock(&q->lock);
    *out = q->out;
    memset(&q->out, 0, sizeof(q->out));
    pthread_mutex_unlock(&q->lock);

    q->backlog -= out->puts_done < q->backlog ? out->puts_done : q->backlog;
    q->backlog_bytes -= out->put_bytes_done < q->backlog_bytes ? out->put_bytes_done : q->backlog_bytes;
    return out->nstored || out->nfetched || out->puts_done;
}

void storeq_results_free(struct storeq_results *r)
{
    for (size_t i = 0; i < r->nfetched; i++) {
        free(r->fetched[i].user);
        free_msgs(r->fetched[i].msgs, r->fetched[i].n);
    }
    free(r->fetched);
    free(r->stored);
    memset(r, 0, sizeof(*r));
}

void storeq_stop(storeq_t *q, int64_t deadline_ms)
{
    if (!q || !q->started || q->abandoned)
        return;
    storeq_flush(q);
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    q->deadline_ms = deadline_ms;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);

    /* A call to an unreachable server can block for the driver's server
     * selection timeout: past the deadline, leave the worker to the
     * process exit rather than hold the shutdown. */
    int64_t wait_ms = deadline_ms - now_mono_ms();
    wait_ms = (wait_ms > 0 ? wait_ms : 0) + 500;
    struct timespec until = wall_in_ms(wait_ms);
    if (pthread_timedjoin_np(q->thread, NULL, &until) != 0) {
        log_warn("the store did not answer before the shutdown deadline; leaving it");
        q->abandoned = 1;
        return;
    }
    q->started = 0;
    store_close(q->st);
    q->st = NULL;
}

void storeq_free(storeq_t *q)
{
    if (!q)
        return;
    storeq_stop(q, 0);
    if (q->abandoned)
        return;
    struct storeq_results r;
    storeq_poll(q, &r);
    storeq_results_free(&r);
    for (batch_t *b = q->head; b;) {
        batch_t *next = b->next;
        batch_free(b);
        b = next;
    }
    if (q->open)
        batch_free(q->open);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q);
}
