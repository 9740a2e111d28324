/* The Kafka side of the producer: an idempotent librdkafka producer that
 * queues rendered notifications, never drops one when its queue is full,
 * prints the id of each one the broker confirms, and keeps the tally that
 * decides the exit status. */
#ifndef PRODUCER_SENDER_H
#define PRODUCER_SENDER_H

#include <signal.h>
#include <stddef.h>

typedef struct sender sender_t;

typedef struct sender_config {
    const char *brokers;
    const char *topic;
    int timeout_ms;            /* message.timeout.ms, unless -X sets it */
    const char *const *props;  /* "key=value" pairs, applied last */
    size_t nprops;
    size_t nquiet;             /* the first nquiet (--kafka-config, KAFKA_PROP_*): errors
                                  name their key only, as the value may be a password */
    int quiet;                 /* do not print delivered ids */
    int verbose;               /* let librdkafka log at info level */
    volatile sig_atomic_t *interrupted; /* bumped by each SIGINT/SIGTERM */
} sender_config_t;

/* Creates the producer. NULL with errstr set when a property is unknown or
 * invalid (the message names it) or librdkafka refuses the configuration. */
sender_t *sender_new(const sender_config_t *cfg, char *errstr, size_t errstr_size);

enum sender_result {
    SEND_OK = 0,       /* queued; its delivery report will follow */
    SEND_FAILED = -1,  /* refused for this notification; counted as not delivered */
    SEND_STOPPED = -2, /* interrupted while the queue was full: not sent */
    SEND_FATAL = -3,   /* the producer cannot send any more: stop */
};

/* Queues one notification: `payload` (taken over: freed by the sender in
 * every case) keyed by `user`. `id` and `line` (0 when not from a file)
 * identify it in output. While librdkafka's queue is full it waits for
 * deliveries to make room. */
enum sender_result sender_send(sender_t *s, char *payload, size_t len, const char *user,
                               const char *id, long line);

/* Serves delivery reports and errors, waiting up to wait_ms for one. */
void sender_poll(sender_t *s, int wait_ms);

/* Waits until every queued notification is delivered or has failed: at
 * most the delivery timeout and a little more. A new signal stops the wait.
 * Whatever is still unconfirmed then is withdrawn and counted as not
 * delivered. */
void sender_flush(sender_t *s);

struct sender_stats {
    unsigned long sent;      /* queued */
    unsigned long delivered; /* confirmed by the broker */
    unsigned long failed;    /* sent but not delivered, or refused */
    int fatal;               /* the producer hit a fatal error and sends no more */
};

void sender_get_stats(const sender_t *s, struct sender_stats *st);

/* Says on stderr, in one sentence, how many notifications were not
 * delivered and why, with a hint at the likely cause. Nothing if none. */
void sender_report(sender_t *s);

void sender_destroy(sender_t *s);

#endif
