/* The project's producers (the producer CLI; the gateway's HTTP publisher,
 * dead-letter writer and receipts) start from one set of settings, so
 * that every one of them puts a user on the same partition (murmur2, as
 * the Java and KafkaJS clients do: a user's notifications stay in order
 * whichever sent them) and none writes a message twice (idempotence). */
#ifndef COMMON_KAFKA_PRODUCER_H
#define COMMON_KAFKA_PRODUCER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* A producer's configuration with those settings and brokers; who names
 * it in errors. NULL with errstr when librdkafka refuses one. */
rd_kafka_conf_t *kafka_producer_conf(const char *brokers, const char *who, char *errstr,
                                     size_t size);

/* One of the gateway's producers. */
struct kafka_producer_spec {
    const char *who;          /* "publisher": in errors */
    const char *brokers;
    const char *const *props; /* the consumer's "key=value" (NULL-ended; credentials and
                               * network ones apply), or NULL */
    const char *const (*own)[2]; /* its own settings, applied last */
    size_t nown;
    void (*on_delivery)(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
    void (*on_log)(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
    void *opaque;
};

/* The producer, or NULL with errstr. */
rd_kafka_t *kafka_producer_new(const struct kafka_producer_spec *spec, char *errstr, size_t size);

#endif
