/* The Kafka side of the gateway: a thread that consumes the topic in a
 * consumer group, turns each record into a notification (record.h) and
 * hands them to the event loop in batches, and the at-least-once
 * bookkeeping.
 *
 * Offsets are stored for commit (auto commit, enable.auto.offset.store=false)
 * only through kafka_offsets_done, which the loop calls when notifications
 * are acknowledged or durably stored; the tracker holds back an offset until
 * everything before it in its partition is done. */
#ifndef CONSUMER_KAFKA_H
#define CONSUMER_KAFKA_H

#include <stddef.h>

#include "budget.h"
#include "embedded.h"
#include "events.h"
#include "handoff.h"
#include "hub.h"
#include "tracker.h"

typedef struct kafka kafka_t;

struct kafka_conf {
    const char *brokers;
    const char *topic;
    const char *group;
    const char *const *props; /* "key=value" for librdkafka, NULL-ended; config.c
                               * has refused the keys set here */
    /* Set: the broker is the in-process mock, whose producers are paced by
     * what this consumer reads. */
    embedded_t *embedded;
    const char *dlq_topic;    /* where records that are no notification go (dlq.h) */
    /* Receipts (events.h): made sure to exist at start (NULL or empty:
     * none), and told of every dead letter. */
    const char *events_topic;
    events_t *events;
    /* Batches handed to the loop count against it; librdkafka's own fetch
     * queue is sized from its limit (an eighth), outside it. Required. */
    budget_t *budget;
    size_t max_user_ids; /* --max-user-ids */
    /* Set: the topic is this node's inbox (inbox.h), not notifications:
     * no dead-letter topic, and each batch says each record's kind. */
    int inbox;
    /* Set: nothing is consumed until gate(gate_arg) returns nonzero (the
     * node knows who holds which user). */
    int (*gate)(void *arg);
    void *gate_arg;
    /* Called on the consumer's thread before partitions are given back:
     * the copies sent to other nodes go out first, so that the new owner's
     * follow them (order) and their offsets complete (fewer repeats). */
    void (*before_revoke)(void *arg);
    /* An inbox's messages carry their record's partition plus source ×
     * KAFKA_SOURCE_SPAN (source > 0), so that one (partition, offset) says
     * which consumer it completes. */
    int source;
};

#define KAFKA_SOURCE_SPAN (1 << 24)

/* Notifications handed to the loop; each msgs[i] owns its strings. */
typedef struct kafka_batch {
    handoff_msg_t link;
    budget_t *budget;
    size_t cost; /* what it takes of the budget */
    size_t n;
    hub_msg_t *msgs; /* owned */
    unsigned char *kinds; /* an inbox's: each message's enum inbox_kind; else NULL */
} kafka_batch_t;

/* Creates the consumer, subscribes and starts the thread; notify(arg) is
 * called (from that thread) when a batch is ready. NULL with errstr on a
 * configuration error. */
kafka_t *kafka_start(const struct kafka_conf *conf, void (*notify)(void *arg), void *arg,
                     char *errstr, size_t errstr_size);

/* Takes the oldest waiting batch, or NULL. Loop thread. */
kafka_batch_t *kafka_take(kafka_t *k);
void kafka_batch_free(kafka_batch_t *b);

/* Notifications that are done; stores the offsets that became committable.
 * Any thread. */
void kafka_offsets_done(kafka_t *k, const struct part_offset *done, size_t n);
/* A consumed record, not yet done, needs more completions (copies sent to
 * other nodes). Any thread. */
void kafka_expect_more(kafka_t *k, int32_t partition, int64_t offset, uint32_t more);

struct kafka_status {
    size_t pending;  /* messages consumed and not yet committable */
    int assigned;    /* partitions the consumer group assigns to this gateway */
    int unreachable; /* no broker answers */
    int joined;      /* a member of its consumer group (with or without partitions) */
    unsigned long dead_lettered; /* records written to the dead-letter topic */
    unsigned long expired;       /* notifications that had expired when consumed */
    const char *failed; /* why consuming stopped for good (the broker refused to create
                           the dead-letter topic), or NULL */
};
struct kafka_status kafka_status(kafka_t *k);

/* Per assigned partition: records behind the partition's end, from the
 * consumer's position and librdkafka's last known end (no broker call). */
struct partition_lag {
    int32_t partition;
    int64_t lag; /* -1 while unknown */
};
/* Up to max of them into out; how many. Any thread. */
size_t kafka_lag(kafka_t *k, struct partition_lag *out, size_t max);

/* Stops consuming: the thread exits; nothing is committed yet. */
void kafka_stop(kafka_t *k);
/* kafka_close on a thread of its own, so the caller does not wait for the
 * broker (a drained inbox given back from the loop). */
void kafka_close_detached(kafka_t *k, int64_t deadline_ms);
/* Until every kafka_close_detached is done (each has its deadline). */
void kafka_wait_detached(void);
/* Commits the stored offsets, leaves the group (waiting for the broker no
 * later than deadline_ms, monotonic) and frees everything, including
 * batches never taken (their offsets stay uncommitted). */
void kafka_close(kafka_t *k, int64_t deadline_ms);

#endif
