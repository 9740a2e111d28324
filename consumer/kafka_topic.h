/* Making sure a topic the gateway writes to (dead letters, receipts)
 * exists: created through the Admin API when missing. */
#ifndef CONSUMER_KAFKA_TOPIC_H
#define CONSUMER_KAFKA_TOPIC_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* 0 when topic exists or was created with partitions partitions and
 * configs ("name", "value", ..., NULL; NULL: the broker's defaults); 1 when no
 * broker answered within timeout_ms (ask again); -1 with errstr when the
 * broker refused, naming the topic as what ("dead-letter") and the flag
 * that names another ("--dlq-topic"). Blocks: not on the event loop. */
int kafka_topic_ensure(rd_kafka_t *rk, const char *topic, int partitions,
                       const char *const *configs, int timeout_ms,
                       const char *what, const char *flag, char *errstr, size_t size);

#endif
