/* The dead-letter producer. */
#include "dlq.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_producer.h"
#include "kafka_topic.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"


struct letter;

struct dlq {
    rd_kafka_t *rk;
    char *dlq_topic;
    char *topic;
    void (*done)(void *arg, int32_t partition, int64_t offset);
    void *arg;
    size_t pending;          /* letters not yet acknowledged, retries included */
    struct letter *retries;  /* failed, to send again at their time */
    int closing;             /* purged at close: nothing is sent again */
    atomic_ulong written;
};

/* One record on its way to the dead-letter topic, kept until Kafka has it
 * so that a failure is sent again, never dropped. */
struct letter {
    int32_t partition; /* where it came from */
    int64_t offset;
    void *key, *value;
    size_t key_len, len;
    rd_kafka_headers_t *hdrs;
    int64_t retry_at;
    struct letter *next;
};

#define RETRY_MS 1000

static void letter_free(struct letter *l)
{
    rd_kafka_headers_destroy(l->hdrs);
    free(l->key);
    free(l->value);
    free(l);
}

static void send_letter(struct dlq *d, struct letter *l);

/* l goes again in RETRY_MS (dlq_poll sends it). */
static void retry_later(struct dlq *d, struct letter *l)
{
    l->retry_at = now_mono_ms() + RETRY_MS;
    l->next = d->retries;
    d->retries = l;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct dlq *d = opaque;
    struct letter *l = m->_private;
    if (m->err && d->closing) {
        letter_free(l); /* its offset never completed: read again on restart */
        return;
    }
    if (m->err) {
        /* The topic is gone or refuses (an outage): again in a second; the
         * record's partition waits for it. */
        log_warn("dead-letter topic %s: the record from partition %d offset %lld was not "
                 "written (%s); trying again", d->dlq_topic, (int)l->partition,
                 (long long)l->offset, rd_kafka_err2str(m->err));
        retry_later(d, l);
        return;
    }
    d->pending--;
    atomic_fetch_add(&d->written, 1);
    d->done(d->arg, l->partition, l->offset);
    letter_free(l);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (strcmp(fac, "FAIL") == 0)
        return; /* a broker connection failing: the consumer says so already */
    if (level <= 3)
        log_error("kafka (dead-letter producer) %s: %s", fac, buf);
    else if (level <= 4)
        log_warn("kafka (dead-letter producer) %s: %s", fac, buf);
}

int dlq_ensure_topic(dlq_t *d, int partitions, int timeout_ms, char *errstr, size_t size)
{
    return kafka_topic_ensure(d->rk, d->dlq_topic, partitions, NULL, timeout_ms, "dead-letter",
                              "--dlq-topic", errstr, size);
}

dlq_t *dlq_new(const struct dlq_conf *conf, char *errstr, size_t size)
{
    struct dlq *d = xcalloc(1, sizeof(*d));
    d->done = conf->done;
    d->arg = conf->arg;
    d->dlq_topic = xstrdup(conf->dlq_topic);
    d->topic = xstrdup(conf->topic);
    const char *const own[][2] = {{"message.timeout.ms", "0"}}; /* never give up */
    struct kafka_producer_spec spec = {"dead-letter producer", conf->brokers, conf->props, own, 1,
                                       on_delivery, on_log, d};
    d->rk = kafka_producer_new(&spec, errstr, size);
    if (!d->rk) {
        dlq_close(d, 0);
        return NULL;
    }
    return d;
}

static void send_letter(struct dlq *d, struct letter *l)
{
    for (;;) {
        rd_kafka_headers_t *hdrs = rd_kafka_headers_copy(l->hdrs);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            d->rk, RD_KAFKA_V_TOPIC(d->dlq_topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(l->key, l->key_len), RD_KAFKA_V_VALUE(l->value, l->len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(l), RD_KAFKA_V_END);
        if (!err)
            return; /* hdrs are the message's now */
        rd_kafka_headers_destroy(hdrs);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            retry_later(d, l);
            return;
        }
        /* Full: the dead-letter topic is behind; the partition waits. */
        rd_kafka_poll(d->rk, 100);
    }
}

static void *copy(const void *p, size_t len)
{
    void *c = xmalloc(len ? len : 1);
    if (len)
        memcpy(c, p, len);
    return c;
}

void dlq_send(dlq_t *d, const rd_kafka_message_t *rkm, const char *why)
{
    struct letter *l = xcalloc(1, sizeof(*l));
    rd_kafka_headers_t *from = NULL;
    *l = (struct letter){.partition = rkm->partition, .offset = rkm->offset,
                         .key = rkm->key ? copy(rkm->key, rkm->key_len) : NULL,
                         .key_len = rkm->key_len, .value = copy(rkm->payload, rkm->len),
                         .len = rkm->len};
    if (rd_kafka_message_headers(rkm, &from) == RD_KAFKA_RESP_ERR_NO_ERROR && from)
        l->hdrs = rd_kafka_headers_copy(from);
    else
        l->hdrs = rd_kafka_headers_new(4);
    char partition[16], offset[24];
    snprintf(partition, sizeof(partition), "%d", (int)rkm->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)rkm->offset);
    rd_kafka_header_add(l->hdrs, "dlq.error", -1, why, -1);
    rd_kafka_header_add(l->hdrs, "dlq.topic", -1, d->topic, -1);
    rd_kafka_header_add(l->hdrs, "dlq.partition", -1, partition, -1);
    rd_kafka_header_add(l->hdrs, "dlq.offset", -1, offset, -1);
    d->pending++;
    send_letter(d, l);
}

void dlq_poll(dlq_t *d)
{
    if (!d || !d->pending)
        return;
    rd_kafka_poll(d->rk, 0);
    int64_t now = now_mono_ms();
    struct letter **p = &d->retries;
    while (*p) {
        struct letter *l = *p;
        if (l->retry_at > now) {
            p = &l->next;
            continue;
        }
        *p = l->next;
        send_letter(d, l);
    }
}

size_t dlq_pending(const dlq_t *d)
{
    return d->pending;
}

unsigned long dlq_written(const dlq_t *d)
{
    return d ? atomic_load(&d->written) : 0;
}

void dlq_close(dlq_t *d, int64_t deadline_ms)
{
    if (!d)
        return;
    if (d->rk) {
        while (d->pending && now_mono_ms() < deadline_ms) {
            dlq_poll(d);
            rd_kafka_poll(d->rk, 100);
        }
        if (d->pending)
            log_warn("%zu records were not written to the dead-letter topic before the "
                     "shutdown deadline: they stay uncommitted", d->pending);
        /* The rest is dropped with the handle; their offsets never
         * completed, so they are read again on restart. */
        d->closing = 1;
        rd_kafka_purge(d->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(d->rk, 0);
        rd_kafka_destroy(d->rk);
    }
    while (d->retries) {
        struct letter *l = d->retries;
        d->retries = l->next;
        letter_free(l);
    }
    free(d->dlq_topic);
    free(d->topic);
    free(d);
}
