/* The dead-letter topic: a record that cannot become a notification (no
 * value, not JSON, no or bad userId, ...) is produced there with its key,
 * value and headers, plus dlq.error, dlq.topic, dlq.partition and
 * dlq.offset headers, and its offset completes only once Kafka has it.
 * The producer is idempotent and never gives up (message.timeout.ms 0): a
 * dead-letter outage holds the record's partition, it never drops it.
 *
 * Used by the Kafka thread only: dlq_send, then dlq_poll each turn serves
 * the delivery reports, which call done. */
#ifndef CONSUMER_DLQ_H
#define CONSUMER_DLQ_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dlq dlq_t;

struct dlq_conf {
    const char *brokers;
    const char *const *props; /* the consumer's, NULL-ended: credentials and network ones apply */
    const char *topic;        /* the topic records come from */
    const char *dlq_topic;
    void (*done)(void *arg, int32_t partition, int64_t offset);
    void *arg;
};

/* Creates the producer; NULL with errstr on a configuration error. */
dlq_t *dlq_new(const struct dlq_conf *conf, char *errstr, size_t size);
/* Makes sure the topic exists, creating it with partitions partitions
 * through the Admin API: 0 when it does, 1 when no broker answered within
 * timeout_ms (ask again), -1 with errstr when the broker refused. */
int dlq_ensure_topic(dlq_t *d, int partitions, int timeout_ms, char *errstr, size_t size);
/* Hands rkm (not consumed) to the dead-letter topic with the reason. */
void dlq_send(dlq_t *d, const rd_kafka_message_t *rkm, const char *why);
/* Serves delivery reports (done for each record Kafka has). */
void dlq_poll(dlq_t *d);
/* Records sent, not yet acknowledged by Kafka. */
size_t dlq_pending(const dlq_t *d);
/* Records written to the dead-letter topic since start (any thread). */
unsigned long dlq_written(const dlq_t *d);
/* Waits for the pending ones until deadline_ms (monotonic), then frees.
 * What is not acknowledged by then stays uncommitted: read again later. */
void dlq_close(dlq_t *d, int64_t deadline_ms);

#endif
