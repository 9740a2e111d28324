/* The store worker: a thread that runs the offline store's blocking calls
 * off the event loop, in batches.
 *
 * The loop queues puts, removes and fetches as they arise; storeq_flush
 * hands everything queued so far to the worker in one step. The worker
 * takes all the batches waiting, runs their puts as bulk writes, then their
 * removes, then their fetches (so a fetch always sees every put queued
 * before it), retries a failed call until it succeeds or the stop deadline
 * passes, and posts the results, waking the loop through notify().
 *
 * storeq_put/remove/fetch/flush/poll are for the loop thread only. */
#ifndef CONSUMER_STOREQ_H
#define CONSUMER_STOREQ_H

#include <stddef.h>
#include <stdint.h>

#include "hub.h"
#include "store.h"
#include "tracker.h"

typedef struct storeq storeq_t;

struct storeq_fetched {
    char *user;
    uint64_t gen;
    size_t limit;
    hub_msg_t *msgs; /* strings owned by the result */
    size_t n;
};

/* What the worker finished since the last poll. */
struct storeq_results {
    struct part_offset *stored; /* Kafka offsets of stored notifications */
    size_t nstored;
    size_t puts_done;             /* puts completed, with or without an offset */
    size_t put_bytes_done;
    struct storeq_fetched *fetched;
    size_t nfetched;
};

/* Starts the worker on an opened store; it owns st from then on. */
storeq_t *storeq_start(store_t *st, void (*notify)(void *arg), void *arg);

void storeq_put(storeq_t *q, const hub_msg_t *m);
void storeq_remove(storeq_t *q, const char *user, const char *id);
void storeq_fetch(storeq_t *q, const char *user, int64_t after_seq, size_t limit, uint64_t gen);
/* Hands what was queued to the worker. */
void storeq_flush(storeq_t *q);

/* Puts queued and not yet reported done, and their bytes: the loop stops
 * taking from Kafka while these are over its limits. */
size_t storeq_backlog(const storeq_t *q);
size_t storeq_backlog_bytes(const storeq_t *q);

/* Takes the results posted so far; 0 when there were none. Free them with
 * storeq_results_free. */
int storeq_poll(storeq_t *q, struct storeq_results *out);
void storeq_results_free(struct storeq_results *r);

/* Lets the worker finish what it holds, retrying failures until
 * deadline_ms (monotonic), then joins it and closes the store. Results
 * posted before it stopped can still be polled; free with storeq_free. */
void storeq_stop(storeq_t *q, int64_t deadline_ms);
void storeq_free(storeq_t *q);

#endif
