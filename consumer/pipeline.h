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

#include "cluster.h"
#include "cluster_link.h"
#include "config.h"
#include "events.h"
#include "hub.h"
#include "kafka.h"
#include "store_worker.h"
#include "tracker.h"

/* Sources of notifications: the topic (0), this node's inbox (1) and up
 * to PIPELINE_DRAINS inboxes of dead nodes at once, numbered 2 to
 * PIPELINE_SOURCES - 1 in turn, so that a completion still on its way for
 * a drain that ended never reaches the next one. */
#define PIPELINE_DRAINS 8
#define PIPELINE_SOURCES (INT32_MAX / KAFKA_SOURCE_SPAN + 1)
#define PIPELINE_DRAINED 32 /* stopped nodes whose inboxes were read to their end */

struct pipeline {
    hub_t *hub;
    store_worker_t *store;
    kafka_t *kafka;
    /* Several gateways (pipeline_cluster.c, docs/adr/0001): who holds
     * which user, the link that reads and writes presence and sends to
     * other nodes' inboxes, and this node's inbox. */
    cluster_t *cluster;
    cluster_link_t *link;
    kafka_t *inbox;
    int remote_ack; /* applying another node's ack: not sent back */
    /* Users whose notifications were stored here because no node held
     * them, lately; and wakes owed to nodes that took such a user since,
     * sent once those puts are durable (pipeline_cluster.c). */
    struct stored_for *stored_for;
    struct owed_wake *wakes;
    int64_t stored_for_swept_ms;
    /* Closes user's connections here (an admin disconnect from another
     * node); set by the gateway. */
    void (*disconnect_user)(void *arg, const char *user);
    void *disconnect_arg;
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
    /* Inboxes of dead nodes this node drains (the lowest live id does):
     * source 2 + i, a free slot has none. */
    struct drain {
        char node[NODE_ID_MAX + 1];
        kafka_t *kafka;
        int source;
        int64_t idle_since; /* monotonic ms its inbox was last seen read to its end, or 0 */
    } drains[PIPELINE_DRAINS];
    int next_source;
    /* Stopped nodes drained to the end, and their last heartbeat then: not
     * drained again until they beat again. */
    struct drained {
        char node[NODE_ID_MAX + 1];
        int64_t last_ms;
    } drained[PIPELINE_DRAINED];
    size_t ndrained, drained_next; /* the oldest is written over */
    int64_t drains_checked_ms;
    const char *clearing; /* the dead node whose presence is being cleared */
    /* Starts draining node's inbox as source (set by the gateway). */
    kafka_t *(*start_drain)(void *arg, const char *node, int source);
    void *drain_arg;
    /* Offsets completed during this turn (acks, durable puts), per source:
     * the notifications topic, this node's inbox, the drained ones. */
    struct source_done {
        struct part_offset *done;
        size_t n, cap;
    } done[PIPELINE_SOURCES];
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

/* pipeline_cluster.c: */
/* A notification from Kafka: to this node's tabs and, copied, to every
 * other live node holding its user; a stream's once it is durable. */
void pipeline_route(struct pipeline *p, const hub_msg_t *m);
void pipeline_stream_durable(struct pipeline *p, const hub_msg_t *m);
/* What the inbox and the link brought this turn. */
void pipeline_take_cluster(struct pipeline *p);
/* For the hub: a user's first tab here, or last; an ack to tell the other
 * nodes of. */
void pipeline_presence(void *ctx, const char *user, int online);
void pipeline_acked_elsewhere(struct pipeline *p, const hub_msg_t *m);
/* Asks every other live node to close user's tabs; how many were asked. */
size_t pipeline_disconnect_elsewhere(const struct pipeline *p, const char *user);
/* Closes the drains (at shutdown), waiting for the broker until deadline. */
void pipeline_drains_close(struct pipeline *p, int64_t deadline_ms);
/* Frees what pipeline_cluster.c keeps (pipeline_clear calls it). */
void pipeline_cluster_clear(struct pipeline *p);
/* The consumer of a source (0: the topic, 1: this node's inbox, 2...: the
 * drained ones), or NULL. */
kafka_t *pipeline_source(const struct pipeline *p, int source);
/* The offset completion every path ends in. */
void pipeline_offset_done(void *ctx, int32_t partition, int64_t offset);

#endif
