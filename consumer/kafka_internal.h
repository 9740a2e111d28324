/* The Kafka consumer's insides, shared by kafka.c (the consume thread,
 * offsets, start and close) and kafka_rebalance.c. */
#ifndef CONSUMER_KAFKA_INTERNAL_H
#define CONSUMER_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "dlq.h"
#include "kafka.h"

#define RESETS_MAX 64

struct kafka {
    rd_kafka_t *rk;
    char *topic;
    embedded_t *embedded; /* the in-process broker, paced by what is read */
    char *events_topic;   /* receipts' topic to make sure of, or NULL */
    events_t *events;
    budget_t *budget;
    size_t max_user_ids;
    int inbox; /* the records are an inbox's (inbox.h) */
    int source; /* kafka_conf's */
    int subscribed;
    int ever_assigned; /* the group gave it an assignment once (none counts) */
    int (*gate)(void *arg);
    void *gate_arg;
    void (*before_revoke)(void *arg); /* called with gate_arg */
    atomic_ulong expired; /* notifications expired when consumed */
    handoff_t *batches; /* to the loop; closed when consuming stops */
    pthread_t thread;
    int started;
    dlq_t *dlq; /* the Kafka thread's, then kafka_close's */
    int topics_ready; /* the dead-letter and receipts topics exist (Kafka thread) */
    atomic_int failed; /* consuming cannot go on: failure says why (written first) */
    char failure[512];

    atomic_int unreachable; /* every broker is down, as librdkafka last said */
    atomic_int joined;      /* a member of the group: assigned (none counts), not lost */
    pthread_mutex_t lock; /* guards the tracker, assigned and resets */
    int assigned;         /* partitions assigned to this member */
    tracker_t *tracker;
    /* Offset resets whose new offset librdkafka's log did not say: the
     * partition's next message tells how many were lost. */
    struct pending_reset {
        int32_t partition;
        int64_t from;
    } resets[RESETS_MAX];
    size_t nresets;
};

/* librdkafka's rebalance callback, on the consume thread (inside
 * rd_kafka_consumer_poll); opaque is the kafka_t. */
void kafka_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque);

#endif
