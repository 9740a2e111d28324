/* The store worker's insides, shared by store_worker.c (the loop's side:
 * submitting, completions, start and stop) and store_worker_thread.c (the
 * thread: batching, retries, expiry). */
#ifndef CONSUMER_STORE_WORKER_INTERNAL_H
#define CONSUMER_STORE_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "handoff.h"
#include "store_worker.h"

#define CHUNK 1000 /* puts per bulk insert, removes per bulk delete */
#define FETCH_CHUNK 256 /* users per read */

/* The first three are also the lanes' order; a list runs on the fetches'
 * lane. */
enum op {
    OP_PUT, OP_REMOVE, OP_FETCH, OP_LIST, OP_HISTORY,
    OP_ROOM_PUT,    /* puts' lane, counted as puts: a read after it sees it */
    OP_CURSOR_PUT,  /* removes' lane, counted as removes: likewise */
    OP_ROOM_FETCH,  /* reads' lane, alone */
    OP_CURSOR_GET,  /* reads' lane, alone */
};
#define LANE_OF(op)                                                                           \
    ((op) == OP_ROOM_PUT                                       ? OP_PUT                      \
     : (op) == OP_HISTORY || (op) == OP_CURSOR_PUT             ? OP_REMOVE                   \
     : (op) == OP_LIST || (op) == OP_ROOM_FETCH || (op) == OP_CURSOR_GET ? OP_FETCH          \
                                                               : (op))
/* Counted with the puts (0), the removes (1), or neither (-1). */
#define WRITE_KIND(op)                                                                        \
    ((op) == OP_PUT || (op) == OP_ROOM_PUT ? 0 : (op) == OP_REMOVE || (op) == OP_CURSOR_PUT ? 1 : -1)
#define HISTORY_QUEUE_BYTES (16u << 20) /* frames waiting for the history */

struct store_req {
    store_req_t *next;
    enum op op;
    store_done_fn done;
    void *arg;
    /* put: all of it; remove: id and user; fetch: user; room put: all of
     * it, stream and type included; room fetch: user and stream; cursor
     * put: user, the stream in id and the acked ids in frame; cursor get:
     * user */
    hub_msg_t msg;
    char **streams;       /* cursor get: which, owned */
    size_t nstreams;
    hub_cursor_t *cursors; /* cursor get: the answer, strings owned */
    size_t ncursors;
    int64_t seq; /* fetch: after it; list: below it; remove through: up to it */
    size_t limit;
    uint64_t tag;
    size_t puts_before, removes_before; /* fetch: writes submitted before it */
    int more;         /* fetch: store_read_t's */
    /* remove: run alone, and how many it deleted; through: every one of
     * the user's with seq up to after_seq, not the id */
    int counted, through;
    int64_t removed;
    int64_t acked_at;  /* history: when; room fetch: stored since (retention) */
    int with_history;  /* list: the history's too */
    hub_msg_t *found; /* fetch, list: the answer, each string owned */
    int64_t *found_acked; /* list: each one's acked_at (0: pending) */
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

/* One thread and one store connection for each kind of call, so that no
 * call waits behind another kind that is slow (a store scanning its
 * collection for every read or delete); each fetch runs after the puts and
 * removes submitted before it. */
struct lane {
    store_worker_t *w;
    enum op op;
    store_t *st;
    handoff_t *requests;   /* loop -> this lane */
    struct req_list *open; /* loop thread: submitted since the last flush */
    pthread_t thread;
    int started;
    atomic_int failing; /* the lane's last store call failed */
    /* Its calls' durations: counts per bucket (not cumulative), total. */
    atomic_ulong buckets[STORE_LATENCY_BUCKETS + 1]; /* the last: over every bound */
    atomic_ulong calls;
    atomic_ullong total_us;
};

/* Records one call of the lane that took us microseconds. */
void lane_timed(struct lane *lane, int64_t us);

struct store_worker {
    struct lane lanes[STORE_LANES]; /* by enum op */
    struct store_expiry expiry;
    handoff_t *completions; /* every lane -> loop */
    int started;
    int abandoned; /* outlived the stop deadline: never free what it uses */
    int64_t deadline_ms; /* written before requests is closed */
    atomic_ulong failures;    /* failed calls since start, all lanes */
    atomic_ulong expired;     /* deleted past their "ttl" or "expiresAt" */

    /* The writers' progress (requests done, each kind in its order), and
     * whether the store is prepared (1) or never will be (-1). */
    pthread_mutex_t lock;
    pthread_cond_t progress;
    size_t puts_done, removes_done;
    int ready;

    /* loop thread only */
    size_t puts_submitted, removes_submitted;
    size_t backlog;
    size_t history_bytes;          /* frames waiting for the history */
    unsigned long history_dropped; /* past HISTORY_QUEUE_BYTES */
    budget_t *budget; /* puts count against it until they complete */
};

/* Request lists (store_worker.c). */
struct req_list *list_new(void);
void list_push(struct req_list *l, store_req_t *r);
/* Frees r and every request after it. */
void free_reqs(store_req_t *r);
void list_free(handoff_msg_t *m);
void forget_found(store_req_t *r);
/* Frees what a cursor read found (on a retry, or with the request). */
void forget_cursors(store_req_t *r);

/* A lane's thread (store_worker_thread.c); arg is its struct lane. */
void *store_worker_lane(void *arg);

#endif
