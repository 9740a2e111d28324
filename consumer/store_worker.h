/* The store worker: two threads that run the offline store's blocking
 * calls off the event loop, each request answered by its own completion.
 *
 * The loop submits puts, removes and fetches as they arise, each with a
 * completion callback; store_worker_flush hands everything submitted so
 * far to the worker in one step. Each kind of call has its own thread and
 * store connection: puts in bulk, removes in bulk, fetches up to 256 users
 * in one read. So a write never waits behind a slow read or delete, and a
 * fetch still runs only after every put and remove submitted before it. Each thread retries a failed
 * call until it succeeds or the stop deadline passes, and posts each
 * finished request back as soon as its call returns. store_worker_poll, on
 * the loop thread, calls the completions (never on the worker) and frees
 * the requests.
 *
 * Every function here is for the loop thread only. */
#ifndef CONSUMER_STORE_WORKER_H
#define CONSUMER_STORE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "hub.h"
#include "store.h"

typedef struct store_worker store_worker_t;
typedef struct store_req store_req_t;

/* What a completion sees of its finished request. */
struct store_result {
    const hub_msg_t *msg; /* put: the notification stored */
    const char *user;     /* fetch: whose notifications */
    uint64_t tag;         /* fetch: the caller's, as submitted */
    int more;             /* fetch: the user may have more than was found */
    const hub_msg_t *msgs; /* fetch: what was found, oldest first; list: newest first */
    size_t n;
    int64_t removed;       /* counted remove: how many were deleted */
    const int64_t *acked_at; /* list: per msg, when it was acknowledged (0: pending) */
    const hub_cursor_t *cursors; /* cursor get: those found */
    size_t ncursors;
    const char *const *asked; /* cursor get: the streams asked */
    size_t nasked;
};

typedef void (*store_done_fn)(void *arg, const struct store_result *r);

/* What the worker expires, once after the store is ready and then every
 * interval_ms (store_expire): so one user who never returns, or a runaway
 * producer, cannot grow the store without bound. */
struct store_expiry {
    size_t max_per_user;  /* 0: no limit */
    int64_t retention_ms; /* 0: kept until delivered */
    int64_t history_ms;   /* the history's retention (store_keep_history); 0: none */
    int64_t room_retention_ms; /* how long room and broadcast notifications are kept */
    int64_t interval_ms;
};

/* Connections the worker uses to one store: puts, removes, fetches. */
#define STORE_LANES 3

/* Starts the worker on STORE_LANES connections to one store (store_open
 * each time); it owns them from then on, even when it fails (NULL). Puts
 * count against budget (may be NULL) until they complete. wake(arg) is
 * called from the worker's threads when completions are waiting. */
store_worker_t *store_worker_start(store_t *const conns[STORE_LANES],
                                   const struct store_expiry *expiry, budget_t *budget,
                                   void (*wake)(void *arg), void *arg);

/* done may be NULL. Strings and frames are copied. */
void store_worker_put(store_worker_t *w, const hub_msg_t *m, store_done_fn done, void *arg);
void store_worker_remove(store_worker_t *w, const char *user, const char *id, store_done_fn done,
                         void *arg);
void store_worker_fetch(store_worker_t *w, const char *user, int64_t after_seq, size_t limit,
                        uint64_t tag, store_done_fn done, void *arg);
/* Rooms and broadcast (store.h): m (stream, type, seq set) stored once;
 * counted as a put, against the budget, until it completes. */
void store_worker_room_put(store_worker_t *w, const hub_msg_t *m, store_done_fn done, void *arg);
/* stream's notifications above after_seq stored since stored_since_ms:
 * r->msgs (stream and type set) and r->more; r->user and r->tag. */
void store_worker_room_fetch(store_worker_t *w, const char *user, const char *stream,
                             int64_t after_seq, int64_t stored_since_ms, size_t limit,
                             uint64_t tag, store_done_fn done, void *arg);
/* user's cursors of n streams: r->cursors. */
void store_worker_cursor_get(store_worker_t *w, const char *user, const char *const *streams,
                             size_t n, store_done_fn done, void *arg);
void store_worker_cursor_put(store_worker_t *w, const char *user, const hub_cursor_t *c);
/* The inbox: up to limit of user's stored notifications with seq below
 * before_seq, newest first, read after the writes submitted before it;
 * with_history: then up to limit of the history's, newest first. */
void store_worker_list(store_worker_t *w, const char *user, int64_t before_seq, size_t limit,
                       int with_history, store_done_fn done, void *arg);
/* Keeps an acknowledged notification that was never stored in the
 * history (store_keep_history): written in batches on the removes' lane,
 * never on the way of a delivery. Past HISTORY_QUEUE_BYTES of frames
 * waiting, dropped and counted. */
void store_worker_history(store_worker_t *w, const hub_msg_t *m, int64_t acked_at);
unsigned long store_worker_history_dropped(const store_worker_t *w);
/* An acknowledgement from outside a connection: deletes user's id, or with
 * id NULL every one of user's handed to the store before before_ms (puts
 * record when: store_remove_through), in a call of its own, so done learns
 * how many were deleted. */
void store_worker_remove_counted(store_worker_t *w, const char *user, const char *id,
                                 int64_t before_ms, store_done_fn done, void *arg);
/* Hands what was submitted to the worker. */
void store_worker_flush(store_worker_t *w);

/* Calls the completions posted so far. */
void store_worker_poll(store_worker_t *w);

/* Whether the last store call of any lane failed (it is retrying), and how
 * many calls failed since start. Any thread. */
struct store_health {
    int failing;
    unsigned long failures;
    unsigned long expired; /* deleted past their "ttl" or "expiresAt" */
};
struct store_health store_worker_health(store_worker_t *w);

/* How long each kind of store call took (every attempt, failed ones too),
 * as a histogram: calls at or under each bound, cumulative; for /metrics.
 * Any thread. */
#define STORE_LATENCY_BUCKETS 10
extern const double store_latency_bounds[STORE_LATENCY_BUCKETS]; /* seconds */
struct store_latency {
    unsigned long le[STORE_LATENCY_BUCKETS];
    unsigned long count;
    double sum_s;
};
/* kind: 0 puts, 1 removes, 2 fetches (the lanes' order). */
void store_worker_latency(store_worker_t *w, int kind, struct store_latency *out);

/* Puts submitted and not yet completed. */
size_t store_worker_backlog(const store_worker_t *w);
/* Puts submitted so far, and puts durable so far: once the second reaches
 * a value the first had, every put submitted before then is durable. */
size_t store_worker_puts_submitted(const store_worker_t *w);
size_t store_worker_puts_durable(store_worker_t *w);

/* Lets the worker finish what it holds, retrying failed writes until
 * deadline_ms (monotonic; reads are dropped), then joins its threads.
 * Completions posted before it stopped can still be polled;
 * store_worker_free closes the store. */
void store_worker_stop(store_worker_t *w, int64_t deadline_ms);
void store_worker_free(store_worker_t *w);

#endif
