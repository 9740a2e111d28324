/* Delivery receipts (--events-topic): what happened to each notification,
 * as {"id","userId","event","at"} keyed by the user, for systems that
 * watch delivery. Handing an event over never waits: it goes into
 * librdkafka's bounded queue, which sends in batches; when the queue is
 * full or Kafka does not take it in time, the event is dropped and
 * counted. Receipts never slow or hold back a notification.
 *
 * events_emit may be called from any thread; events_poll (delivery
 * reports) from one. A NULL events_t (receipts off) takes every call and
 * does nothing. */
#ifndef CONSUMER_EVENTS_H
#define CONSUMER_EVENTS_H

#include <stddef.h>

typedef struct events events_t;

enum event_kind {
    EVENT_DELIVERED,     /* written to a tab */
    EVENT_ACKED,         /* acknowledged by a tab or over HTTP */
    EVENT_STORED,        /* durable in the offline store */
    EVENT_DEAD_LETTERED, /* not a notification: written to the dead-letter topic */
};

/* props: the consumer's (credentials and network ones apply). NULL with
 * errstr on a configuration error. */
events_t *events_new(const char *brokers, const char *const *props, const char *topic,
                     char *errstr, size_t size);
void events_emit(events_t *e, const char *user, const char *id, enum event_kind kind);
void events_poll(events_t *e);
/* Events Kafka has, and events dropped, since start (any thread). */
unsigned long events_sent(const events_t *e);
unsigned long events_dropped(const events_t *e);
/* Gives what is queued up to timeout_ms to go out, then frees. */
void events_free(events_t *e, int timeout_ms);

#endif
