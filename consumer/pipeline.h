/* The pipeline: how notifications and completions move between the Kafka
 * thread, the hub and the store worker, on the loop thread. Each turn of
 * the loop takes the store's completions, then Kafka's batches while the
 * memory budget allows, and hands on what the turn produced in one step: the
 * offsets that became complete, and the store requests.
 *
 * The gateway owns one, sets its parts once they exist, and gives the hub
 * the operations pipeline_hub_ops fills in. */
#ifndef CONSUMER_PIPELINE_H
#define CONSUMER_PIPELINE_H

#include <stddef.h>

#include "events.h"
#include "hub.h"
#include "kafka.h"
#include "store_worker.h"
#include "tracker.h"

struct pipeline {
    hub_t *hub;
    store_worker_t *store;
    kafka_t *kafka;
    events_t *events; /* receipts; NULL when off */
    int history;      /* acknowledged ones are kept (--history-retention) */
    int64_t room_retention_ms; /* rooms and broadcast are read back this far */
    int stopping; /* no more intake from Kafka */
    /* Every notification in memory counts against it (budget.h). */
    budget_t budget;
    /* Since start, for /metrics (loop thread). */
    struct {
        unsigned long consumed; /* notifications taken from Kafka */
        unsigned long stored;   /* durable in the offline store */
        unsigned long replayed; /* read back from the store for a replay */
    } count;
    /* Offsets completed during this turn (acks, durable puts). */
    struct part_offset *done;
    size_t ndone, done_cap;
};

/* Sets ops' store, fetch, remove, offset_done and the streams' (and ctx)
 * to p's. */
void pipeline_hub_ops(struct pipeline *p, struct hub_ops *ops);

/* Completions from the store worker, then new notifications from Kafka
 * while the memory budget is not spent, then pipeline_hand_on. */
void pipeline_take_work(struct pipeline *p);

/* Stores the offsets completed this turn and sends the store requests. */
void pipeline_hand_on(struct pipeline *p);

void pipeline_clear(struct pipeline *p);

#endif
