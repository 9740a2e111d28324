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
    atomic_int failing;       /* the last store call failed */
    atomic_ulong failures;    /* failed calls since start */

    /* loop thread only */
    struct req_list *open;
    size_t backlog, backlog_bytes;
};

/* Request lists (store_worker.c). */
struct req_list *list_new(void);
void list_push(struct req_list *l, store_req_t *r);
/* Frees r and every request after it. */
void free_reqs(store_req_t *r);
void list_free(handoff_msg_t *m);
void forget_found(store_req_t *r);

/* The thread's body (store_worker_thread.c); arg is the store_worker_t. */
void *store_worker_thread(void *arg);

#endif
