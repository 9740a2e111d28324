/* The delivery receipts' producer. */
#include "events.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka_producer.h"
#include "log.h"
#include "xalloc.h"

/* The bound on receipts waiting to go out; past it they are dropped. */
#define EVENTS_QUEUE "100000"

struct events {
    rd_kafka_t *rk;
    char *topic;
    atomic_ulong sent, dropped;
};

static const char *const names[] = {"delivered", "acked", "stored", "dead-lettered"};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    events_t *e = opaque;
    atomic_fetch_add(m->err ? &e->dropped : &e->sent, 1);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3 && strcmp(fac, "FAIL") != 0)
        log_warn("kafka (receipts) %s: %s", fac, buf);
}

events_t *events_new(const char *brokers, const char *const *props, const char *topic,
                     char *errstr, size_t size)
{
    const char *const own[][2] = {{"queue.buffering.max.messages", EVENTS_QUEUE},
                                  {"message.timeout.ms", "60000"},
                                  {"linger.ms", "20"}};
    events_t *e = xcalloc(1, sizeof(*e));
    struct kafka_producer_spec spec = {"receipts producer", brokers, props, own, 3,
                                       on_delivery, on_log, e};
    e->rk = kafka_producer_new(&spec, errstr, size);
    if (!e->rk) {
        free(e);
        return NULL;
    }
    e->topic = xstrdup(topic);
    return e;
}

void events_emit(events_t *e, const char *user, const char *id, enum event_kind kind)
{
    if (!e)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char at[32], value[512];
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
    /* User ids and ids are plain characters (notification.h): no escaping. */
    int len = snprintf(value, sizeof(value),
                       "{\"id\":\"%s\",\"userId\":\"%s\",\"event\":\"%s\",\"at\":\"%s.%03ldZ\"}",
                       id, user, names[kind], at, ts.tv_nsec / 1000000);
    if (len < 0 || (size_t)len >= sizeof(value) ||
        rd_kafka_producev(e->rk, RD_KAFKA_V_TOPIC(e->topic),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(user, strlen(user)), RD_KAFKA_V_VALUE(value, (size_t)len),
                          RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR)
        atomic_fetch_add(&e->dropped, 1);
}

void events_poll(events_t *e)
{
    if (e)
        rd_kafka_poll(e->rk, 0);
}

unsigned long events_sent(const events_t *e)
{
    return e ? atomic_load(&e->sent) : 0;
}

unsigned long events_dropped(const events_t *e)
{
    return e ? atomic_load(&e->dropped) : 0;
}

void events_free(events_t *e, int timeout_ms)
{
    if (!e)
        return;
    rd_kafka_flush(e->rk, timeout_ms);
    rd_kafka_destroy(e->rk);
    free(e->topic);
    free(e);
}
