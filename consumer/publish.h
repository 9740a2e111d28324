/* Publishing over HTTP: notifications produced to the gateway's topic,
 * keyed by user, by an idempotent producer; a batch's completion is told
 * once Kafka has acknowledged every one of them, or one failed. Loop
 * thread only: publish_poll serves the delivery reports. */
#ifndef CONSUMER_PUBLISH_H
#define CONSUMER_PUBLISH_H

#include <stddef.h>

typedef struct publisher publisher_t;

struct publish_item {
    const char *key; /* the user */
    const char *value;
    size_t len;
};

/* error: NULL when Kafka has all of them, else why one is not there. */
typedef void publish_done_fn(void *arg, const char *error);

/* props: the consumer's (credentials and network ones apply). NULL with
 * errstr on a configuration error. */
publisher_t *publisher_new(const char *brokers, const char *const *props, const char *topic,
                           int timeout_ms, char *errstr, size_t size);
void publisher_free(publisher_t *p);
/* Produces every item (n > 0); done(arg, ...) once: from publish_poll, or
 * inside this call when every one is refused at once (a full queue). */
void publish(publisher_t *p, const struct publish_item *items, size_t n, publish_done_fn *done,
             void *arg);
void publish_poll(publisher_t *p);
size_t publish_pending(const publisher_t *p);

#endif
