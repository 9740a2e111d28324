/* The HTTP publishing producer. */
#include "publish.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_producer.h"
#include "log.h"
#include "xalloc.h"

struct publisher {
    rd_kafka_t *rk;
    char *topic;
    size_t pending; /* messages not yet reported */
};

/* One request's notifications: done once all are reported. */
struct batch {
    size_t left;
    char error[256]; /* the first failure, "" if none */
    publish_done_fn *done;
    void *arg;
};

static void finish_one(struct batch *b, const char *error)
{
    if (error && !b->error[0])
        snprintf(b->error, sizeof(b->error), "%s", error);
    if (--b->left == 0) {
        b->done(b->arg, b->error[0] ? b->error : NULL);
        free(b);
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct publisher *p = opaque;
    p->pending--;
    finish_one(m->_private, m->err ? rd_kafka_err2str(m->err) : NULL);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3 && strcmp(fac, "FAIL") != 0)
        log_error("kafka (publisher) %s: %s", fac, buf);
}

publisher_t *publisher_new(const char *brokers, const char *const *props, const char *topic,
                           int timeout_ms, char *errstr, size_t size)
{
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", timeout_ms);
    const char *const own[][2] = {{"message.timeout.ms", timeout}, {"linger.ms", "2"}};
    publisher_t *p = xcalloc(1, sizeof(*p));
    struct kafka_producer_spec spec = {"publishing producer", brokers, props, own, 2,
                                       on_delivery, on_log, p};
    p->rk = kafka_producer_new(&spec, errstr, size);
    if (!p->rk) {
        free(p);
        return NULL;
    }
    p->topic = xstrdup(topic);
    return p;
}

void publish(publisher_t *p, const struct publish_item *items, size_t n, publish_done_fn *done,
             void *arg)
{
    struct batch *b = xcalloc(1, sizeof(*b));
    b->left = n;
    b->done = done;
    b->arg = arg;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(p->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(items[i].key, strlen(items[i].key)),
            RD_KAFKA_V_VALUE((void *)items[i].value, items[i].len), RD_KAFKA_V_OPAQUE(b),
            RD_KAFKA_V_END);
        if (err)
            finish_one(b, rd_kafka_err2str(err)); /* the queue is full: Kafka is behind */
        else
            p->pending++;
    }
}

void publish_poll(publisher_t *p)
{
    if (p->pending)
        rd_kafka_poll(p->rk, 0);
}

size_t publish_pending(const publisher_t *p)
{
    return p->pending;
}

void publisher_free(publisher_t *p)
{
    if (!p)
        return;
    rd_kafka_flush(p->rk, 2000);
    rd_kafka_destroy(p->rk);
    free(p->topic);
    free(p);
}
