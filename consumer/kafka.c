/* The Kafka consume thread, offset storing and the consumer's start and
 * close (rebalances are kafka_rebalance.c's). */
#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka_internal.h"
#include "kafka_topic.h"
#include "inbox.h"
#include "log.h"
#include "notification.h"
#include "record.h"
#include "timeutil.h"
#include "xalloc.h"

#define BATCH_MAX 512   /* records per poll, and per hand-off batch */
#define QUEUE_BATCHES 8 /* batches waiting for the loop before the thread waits */

/* From offset `from` consuming went on at `next`: what lay between was lost. */
static void report_lost(const char *what, long long from, long long next)
{
    if (next > from)
        log_error("kafka: %lld messages were deleted by the broker before this gateway read "
                  "them, and are lost: %s (a broker's retention, or the embedded broker's limit "
                  "of 5 MB or 100,000 messages per partition, was exceeded)",
                  next - from, what);
    else
        log_info("kafka: %s", what);
}

/* Called with k->lock held for each message polled while a reset waits
 * for its partition's next message. */
static void lost_since(kafka_t *k, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < k->nresets; i++) {
        if (k->resets[i].partition != partition)
            continue;
        char what[96];
        snprintf(what, sizeof(what), "partition %d reset from offset %lld to %lld",
                 (int)partition, (long long)k->resets[i].from, (long long)offset);
        report_lost(what, k->resets[i].from, offset);
        k->resets[i] = k->resets[--k->nresets];
        return;
    }
}

/* librdkafka tells of an offset reset only in its log (librdkafka 2.0.2):
 *   "t [1]: offset reset (at offset 40, broker 1) to cached BEGINNING
 *    offset 615: fetch failed ..."     (the embedded mock: the new offset)
 *   "t [0]: offset reset (at offset 10, broker 1) to BEGINNING: fetch
 *    failed ..."                       (a real broker: the offset unsaid)
 * From a real offset to a later one, the messages between were deleted
 * before this gateway read them: data lost, so an error with the count,
 * never a warning. When the line does not say where consuming goes on, the
 * partition's next message does (lost_since). Returns whether line was
 * such a reset. Runs on a librdkafka thread: no calls back into it. */
static int offset_reset(kafka_t *k, const char *line)
{
    const char *at = strstr(line, "]: offset reset (at offset ");
    const char *part = at;
    long long from, next;
    int partition;
    if (!at || sscanf(at + strlen("]: offset reset (at offset "), "%lld", &from) != 1)
        return 0;
    while (part > line && part[-1] != '[')
        part--;
    const char *to = strstr(at, ") to ");
    const char *off = to ? strstr(to, " offset ") : NULL;
    if (off && sscanf(off + strlen(" offset "), "%lld", &next) == 1) {
        report_lost(line, from, next);
        return 1;
    }
    if (part > line && sscanf(part, "%d", &partition) == 1) {
        pthread_mutex_lock(&k->lock);
        if (k->nresets < RESETS_MAX)
            k->resets[k->nresets++] = (struct pending_reset){partition, from};
        pthread_mutex_unlock(&k->lock);
    }
    log_info("kafka: %s", line);
    return 1;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (!strcmp(fac, "OFFSET") && offset_reset(rd_kafka_opaque(rk), buf))
        return;
    /* syslog levels: 0-3 errors, 4 warnings, the rest is chatter. */
    if (level <= 3)
        log_error("kafka: %s: %s", fac, buf);
    else if (level == 4)
        log_warn("kafka: %s: %s", fac, buf);
    else
        log_debug("kafka: %s: %s", fac, buf);
}

void kafka_offsets_done(kafka_t *k, const struct part_offset *done, size_t n)
{
    rd_kafka_topic_partition_list_t *commit = NULL;

    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < n; i++) {
        int64_t next = tracker_done(k->tracker, done[i].partition, done[i].offset);
        if (next < 0)
            continue;
        if (!commit)
            commit = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_t *tp = NULL;
        for (int j = 0; j < commit->cnt; j++) {
            if (commit->elems[j].partition == done[i].partition)
                tp = &commit->elems[j];
        }
        if (!tp)
            tp = rd_kafka_topic_partition_list_add(commit, k->topic, done[i].partition);
        tp->offset = next;
    }
    pthread_mutex_unlock(&k->lock);

    if (!commit)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(k->rk, commit);
    /* __STATE: the partition was revoked meanwhile; its new owner redoes it. */
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
        log_warn("cannot store offsets for commit: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(commit);
}

void kafka_expect_more(kafka_t *k, int32_t partition, int64_t offset, uint32_t more)
{
    pthread_mutex_lock(&k->lock);
    tracker_expect_more(k->tracker, partition, offset, more);
    pthread_mutex_unlock(&k->lock);
}

struct kafka_status kafka_status(kafka_t *k)
{
    pthread_mutex_lock(&k->lock);
    struct kafka_status st = {tracker_pending(k->tracker), k->assigned,
                              atomic_load(&k->unreachable), atomic_load(&k->joined),
                              dlq_written(k->dlq), atomic_load(&k->expired),
                              atomic_load(&k->failed) ? k->failure : NULL};
    pthread_mutex_unlock(&k->lock);
    return st;
}

/* librdkafka's errors that are not about one message: all brokers down is
 * what /healthz reports; the rest are logged. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    kafka_t *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !atomic_exchange(&k->unreachable, 1))
        log_error("kafka: no broker answers (%s): consuming waits until one does", reason);
    else if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        log_warn("kafka: %s: %s", rd_kafka_err2str(err), reason);
}

/* Asks a broker for metadata, at most once a second: while none answered
 * (librdkafka says when brokers go down, not when they come back), and
 * while gated (nothing polls the consumer, so its errors are not served).
 * An inbox's consumer keeps quiet: the topic's says the same. */
static void check_reachable(kafka_t *k, int64_t *next_ms, int gated)
{
    const struct rd_kafka_metadata *md;
    if ((!gated && !atomic_load(&k->unreachable)) || now_mono_ms() < *next_ms)
        return;
    *next_ms = now_mono_ms() + 1000;
    if (rd_kafka_metadata(k->rk, 0, NULL, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        if (atomic_exchange(&k->unreachable, 0) && !k->inbox)
            log_info("kafka: a broker answers again");
    } else if (gated && !atomic_exchange(&k->unreachable, 1) && !k->inbox) {
        log_error("kafka: no broker answers: consuming waits until one does");
    }
}

void kafka_batch_free(kafka_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        record_msg_clear(&b->msgs[i]);
    budget_give(b->budget, BUDGET_HANDOFF, b->cost);
    free(b->msgs);
    free(b->kinds);
    free(b);
}

static void dlq_done(void *arg, int32_t partition, int64_t offset)
{
    struct part_offset done = {partition, offset};
    kafka_offsets_done(arg, &done, 1);
}

/* The topic's partition count, for a dead-letter topic made to match; 1
 * if the broker does not say. */
static int partitions_of(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int n = 1;
    if (rd_kafka_metadata(rk, 0, t, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return n;
}

static void free_batch_msg(handoff_msg_t *m)
{
    kafka_batch_free((kafka_batch_t *)m);
}

kafka_batch_t *kafka_take(kafka_t *k)
{
    return (kafka_batch_t *)handoff_take(k->batches, 1);
}

/* Wait for the first record, then take what is already there. Each is
 * tracked as soon as it is polled: before anything else, so no later
 * offset of its partition can be committed past it, and before the next
 * poll, which may run a rebalance that forgets its partition. */
static size_t poll_records(kafka_t *k, rd_kafka_message_t **rkms)
{
    size_t n = 0;
    int timeout = 100;
    while (n < BATCH_MAX) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(k->rk, timeout);
        if (!rkm)
            break;
        timeout = 0;
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn("kafka: %s", rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        pthread_mutex_lock(&k->lock);
        tracker_add(k->tracker, rkm->partition, rkm->offset);
        if (k->nresets)
            lost_since(k, rkm->partition, rkm->offset);
        pthread_mutex_unlock(&k->lock);
        rkms[n++] = rkm;
    }
    return n;
}

/* Whether every assigned partition is read to the end the broker has.
 * Asks the broker: for the embedded one only, in process. */
static int read_to_end(kafka_t *k)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(k->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    int all = parts->cnt > 0 && rd_kafka_position(k->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; all && i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t low, high;
        all = rd_kafka_query_watermark_offsets(k->rk, p->topic, p->partition, &low, &high,
                                               1000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
              (p->offset >= 0 ? p->offset : low) >= high; /* none read yet: from the oldest */
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return all;
}

/* The embedded broker lets producers on by what this poll read; after one
 * that read nothing while they are held back, by whether everything sent
 * is read (what was sent is not what is read: headers, batches). */
static void pace_embedded(kafka_t *k, rd_kafka_message_t **rkms, size_t polled)
{
    if (polled) {
        size_t bytes = 0;
        for (size_t i = 0; i < polled; i++)
            bytes += rkms[i]->len;
        embedded_consumed(k->embedded, bytes);
        return;
    }
    long long mark = embedded_settled(k->embedded);
    if (mark >= 0 && read_to_end(k))
        embedded_read_to(k->embedded, mark);
}

/* A dead letter's receipt: its id is the one the gateway gives a record
 * without one, its user the record's key when that is a user id. */
static void dead_letter_receipt(kafka_t *k, const rd_kafka_message_t *rkm)
{
    char id[320], user[NOTIF_USER_MAX + 1] = ""; /* id: a topic name (249 at most) and numbers */
    if (!k->events)
        return;
    snprintf(id, sizeof(id), "%s-%d-%lld", k->topic, (int)rkm->partition, (long long)rkm->offset);
    /* Keys of rooms (room:NAME) and broadcast name no user. */
    if (rkm->key && rkm->key_len < sizeof(user) &&
        notification_user_valid(rkm->key, rkm->key_len) &&
        !(rkm->key_len >= 5 && memcmp(rkm->key, "room:", 5) == 0) &&
        !(rkm->key_len == 9 && memcmp(rkm->key, "broadcast", 9) == 0)) {
        memcpy(user, rkm->key, rkm->key_len);
        user[rkm->key_len] = '\0';
    }
    events_emit(k->events, user, id, EVENT_DEAD_LETTERED);
}

/* An inbox's records: one message each, its kind beside it; one that is
 * not an inbox record is logged and done (no dead-letter topic: only
 * gateways write there). */
static void decode_inbox(kafka_t *k, rd_kafka_message_t **rkms, size_t polled,
                         struct record_msgs *out, unsigned char *kinds)
{
    char err[256];
    for (size_t i = 0; i < polled; i++) {
        const rd_kafka_message_t *rkm = rkms[i];
        enum inbox_kind kind;
        hub_msg_t *m = &out->msgs[out->n];
        if (inbox_decode(rkm->key, rkm->key_len, rkm->payload, rkm->len, m, &kind, err,
                         sizeof(err)) != 0) {
            log_warn("skipping the record at %s partition %d offset %lld: %s", k->topic,
                     (int)rkm->partition, (long long)rkm->offset, err);
            kafka_offsets_done(k, &(struct part_offset){rkm->partition, rkm->offset}, 1);
        } else {
            m->partition = rkm->partition + k->source * KAFKA_SOURCE_SPAN;
            m->offset = rkm->offset;
            kinds[out->n++] = (unsigned char)kind;
        }
        rd_kafka_message_destroy(rkms[i]);
    }
}

static int subscribe(kafka_t *k, char *errstr, size_t size);

static void *consume_loop(void *arg)
{
    kafka_t *k = arg;
    rd_kafka_message_t **rkms = xcalloc(BATCH_MAX, sizeof(*rkms));
    char err[256];
    int64_t next_check = 0;

    while (!handoff_closed(k->batches)) {
        if (k->gate && !k->gate(k->gate_arg)) {
            check_reachable(k, &next_check, 1);
            handoff_pause(k->batches, 20);
            continue;
        }
        if (!k->subscribed && subscribe(k, k->failure, sizeof(k->failure)) != 0) {
            atomic_store(&k->failed, 1);
            break;
        }
        check_reachable(k, &next_check, 0);
        /* First the topics it writes to: the dead-letter topic (nothing is
         * consumed that could not go there) and the receipts'. Asked here,
         * not at start, so that a broker that is down does not hold the
         * gateway's start. */
        if (!k->topics_ready) {
            int parts = partitions_of(k->rk, k->topic);
            int rc = dlq_ensure_topic(k->dlq, parts, 2000, k->failure, sizeof(k->failure));
            if (rc == 0 && k->events_topic)
                rc = kafka_topic_ensure(k->rk, k->events_topic, parts, NULL, 2000, "receipts",
                                        "--events-topic", k->failure, sizeof(k->failure));
            if (rc < 0) {
                atomic_store(&k->failed, 1);
                break;
            }
            k->topics_ready = rc == 0;
            if (rc == 1 && !atomic_exchange(&k->unreachable, 1))
                log_error("kafka: no broker answers: consuming waits until one does");
            continue;
        }
        /* What is handed to the loop counts against the budget: while it
         * is spent, poll nothing (librdkafka's own queue fills and it
         * stops fetching), or the hand-off would overshoot it. */
        if (budget_full(k->budget)) {
            dlq_poll(k->dlq);
            handoff_pause(k->batches, 10);
            continue;
        }
        dlq_poll(k->dlq);
        size_t polled = poll_records(k, rkms);
        if (k->embedded)
            pace_embedded(k, rkms, polled);
        if (!polled)
            continue;
        struct record_msgs out = {xmalloc(polled * sizeof(hub_msg_t)), 0, polled};
        unsigned char *kinds = k->inbox ? xmalloc(polled) : NULL;
        if (k->inbox)
            decode_inbox(k, rkms, polled, &out, kinds);
        struct record_rules rules = {k->max_user_ids, now_wall_ms()};
        for (size_t i = 0; i < polled && !k->inbox; i++) {
            const rd_kafka_message_t *rkm = rkms[i];
            struct record rec = {rkm->payload, rkm->len, k->topic, rkm->partition, rkm->offset,
                                 rd_kafka_message_timestamp(rkm, NULL)};
            int copies = record_decode(&rec, &rules, &out, err, sizeof(err));
            if (copies > 1) {
                pthread_mutex_lock(&k->lock);
                tracker_expect(k->tracker, rkm->partition, rkm->offset, (uint32_t)copies);
                pthread_mutex_unlock(&k->lock);
            } else if (copies == RECORD_EXPIRED) {
                atomic_fetch_add(&k->expired, 1);
                kafka_offsets_done(k, &(struct part_offset){rkm->partition, rkm->offset}, 1);
            } else if (copies == RECORD_SKIP) {
                /* Not a notification: to the dead-letter topic; its offset
                 * completes once Kafka has it there. */
                log_warn("dead-lettering the message at %s partition %d offset %lld: %s",
                         k->topic, (int)rkm->partition, (long long)rkm->offset, err);
                dlq_send(k->dlq, rkm, err);
                dead_letter_receipt(k, rkm);
            }
            rd_kafka_message_destroy(rkms[i]);
        }
        kafka_batch_t *b = xmalloc(sizeof(*b));
        b->n = out.n;
        b->msgs = out.msgs;
        b->kinds = kinds;
        b->budget = k->budget;
        b->cost = 0;
        for (size_t i = 0; i < b->n; i++)
            b->cost += budget_cost(b->msgs[i].frame_len);
        budget_take(b->budget, BUDGET_HANDOFF, b->cost);
        if (b->n == 0) {
            kafka_batch_free(b);
        } else if (handoff_send(k->batches, &b->link) != 0) {
            /* Stopped meanwhile: its offsets stay uncommitted. */
            kafka_batch_free(b);
            break;
        }
    }
    free(rkms);
    return NULL;
}

static int subscribe(kafka_t *k, char *errstr, size_t size)
{
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, k->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(k->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (rerr) {
        snprintf(errstr, size, "cannot subscribe to %s: %s", k->topic, rd_kafka_err2str(rerr));
        return -1;
    }
    k->subscribed = 1;
    return 0;
}

static int set_props(rd_kafka_conf_t *rconf, const char *props[][2], size_t n, char *errstr,
                     size_t size)
{
    for (size_t i = 0; i < n; i++) {
        if (rd_kafka_conf_set(rconf, props[i][0], props[i][1], errstr, size) != RD_KAFKA_CONF_OK)
            return -1;
    }
    return 0;
}

kafka_t *kafka_start(const struct kafka_conf *conf, void (*notify)(void *arg), void *arg,
                     char *errstr, size_t size)
{
    char err[512];
    kafka_t *k = xcalloc(1, sizeof(*k));
    rd_kafka_conf_t *rconf = rd_kafka_conf_new();

    k->topic = xstrdup(conf->topic);
    k->tracker = tracker_new();
    k->embedded = conf->embedded;
    k->events = conf->events;
    k->events_topic = conf->events_topic && *conf->events_topic && !conf->embedded
                          ? xstrdup(conf->events_topic)
                          : NULL; /* the embedded broker made it */
    k->budget = conf->budget;
    k->max_user_ids = conf->max_user_ids;
    k->inbox = conf->inbox;
    k->source = conf->source;
    k->gate = conf->gate;
    k->gate_arg = conf->gate_arg;
    k->before_revoke = conf->before_revoke;
    k->batches = handoff_new(QUEUE_BATCHES, notify, arg);
    pthread_mutex_init(&k->lock, NULL);

    char queue_kb[32];
    snprintf(queue_kb, sizeof(queue_kb), "%zu", conf->budget->limit / 8 / 1024);
    /* Our defaults first, so -X can override any of them... */
    const char *defaults[][2] = {
        {"client.id", "notification-gateway"},
        {"auto.commit.interval.ms", "1000"},
        /* A group's first start must not skip what was published before
         * it, and a partition whose offset the broker deleted goes on from
         * the oldest it has (on_log says how many were lost). */
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        /* After a crash the group waits this long before handing the dead
         * member's partitions to a live one: notifications wait too. */
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "2000"},
        /* Several gateways in one group: a joining or leaving one moves
         * only the partitions that change hands, the others never stop. */
        {"partition.assignment.strategy", "cooperative-sticky"},
        /* A change of assignment drops the fetch in flight, which then
         * comes again after these (500 ms each by default): a partition
         * that did not move would wait a second at each join. */
        {"fetch.wait.max.ms", "100"},
        {"fetch.error.backoff.ms", "100"},
        /* What librdkafka fetches ahead of the loop, beside the budget. */
        {"queued.max.messages.kbytes", queue_kb},
    };
    /* ...and these last, so nothing (an alias such as metadata.broker.list
     * included) undoes them: offsets are stored only once a notification
     * is delivered or stored. config.c refuses them in -X with a reason. */
    const char *fixed[][2] = {
        {"bootstrap.servers", conf->brokers},
        {"group.id", conf->group},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
    };
    /* The mock answers a fetch at once, empty or not, and drops what is
     * over its limit: fetch again at once rather than after the defaults'
     * 500 ms, or a burst is trimmed before it is read. */
    const char *embedded[][2] = {
        {"fetch.wait.max.ms", "10"},
        {"fetch.error.backoff.ms", "10"},
    };
    if (set_props(rconf, defaults, sizeof(defaults) / sizeof(defaults[0]), errstr, size) != 0 ||
        (conf->embedded &&
         set_props(rconf, embedded, sizeof(embedded) / sizeof(embedded[0]), errstr, size) != 0))
        goto fail;
    for (const char *const *p = conf->props; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        char key[256];
        if (!eq || eq == *p || (size_t)(eq - *p) >= sizeof(key)) {
            snprintf(errstr, size, "-X %s: expected key=value", *p);
            goto fail;
        }
        memcpy(key, *p, (size_t)(eq - *p));
        key[eq - *p] = '\0';
        if (rd_kafka_conf_set(rconf, key, eq + 1, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "-X %s: %s", *p, err);
            goto fail;
        }
    }
    if (set_props(rconf, fixed, sizeof(fixed) / sizeof(fixed[0]), errstr, size) != 0)
        goto fail;
    rd_kafka_conf_set_log_cb(rconf, on_log);
    rd_kafka_conf_set_error_cb(rconf, on_error);
    rd_kafka_conf_set_rebalance_cb(rconf, kafka_on_rebalance);
    rd_kafka_conf_set_opaque(rconf, k);

    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rconf, err, sizeof(err));
    if (!k->rk) {
        snprintf(errstr, size, "cannot create the Kafka consumer: %s", err);
        goto fail;
    }
    rconf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(k->rk);

    /* A gated consumer subscribes once the gate opens: its topic may be
     * made meanwhile (an inbox), and librdkafka looks again for a topic
     * missing at subscription only at its next metadata refresh. */
    if (!conf->gate && subscribe(k, errstr, size) != 0)
        goto fail;
    /* The embedded broker made them with the main topic; an inbox writes to none. */
    k->topics_ready = conf->embedded != NULL || conf->inbox;
    if (!conf->inbox) {
        struct dlq_conf dc = {conf->brokers, conf->props, conf->topic, conf->dlq_topic,
                              dlq_done, k};
        if (!(k->dlq = dlq_new(&dc, errstr, size)))
            goto fail;
    }
    if (pthread_create(&k->thread, NULL, consume_loop, k) != 0) {
        snprintf(errstr, size, "cannot start the Kafka thread");
        goto fail;
    }
    k->started = 1;
    return k;

fail:
    if (rconf)
        rd_kafka_conf_destroy(rconf);
    k->started = 0;
    kafka_close(k, 0);
    return NULL;
}

size_t kafka_lag(kafka_t *k, struct partition_lag *out, size_t max)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    size_t n = 0;
    if (!k->rk || rd_kafka_assignment(k->rk, &parts) || !parts)
        return 0;
    rd_kafka_position(k->rk, parts);
    for (int i = 0; i < parts->cnt && n < max; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t low = -1, high = -1;
        int64_t lag = -1;
        if (rd_kafka_get_watermark_offsets(k->rk, p->topic, p->partition, &low, &high) ==
                RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0) {
            /* No position yet: nothing read, so all of it is behind. */
            int64_t at = p->offset >= 0 ? p->offset : low;
            lag = at >= 0 && high >= at ? high - at : -1;
        }
        out[n++] = (struct partition_lag){p->partition, lag};
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return n;
}

void kafka_stop(kafka_t *k)
{
    if (!k || !k->started)
        return;
    handoff_close(k->batches);
    pthread_join(k->thread, NULL);
    k->started = 0;
}

/* Commits the offsets stored so far and leaves the group, waiting for the
 * broker no later than deadline_ms (monotonic): with the broker gone, a
 * plain rd_kafka_consumer_close() would wait for ever. Uncommitted offsets
 * are consumed again on restart, so giving up loses nothing. */
static void close_consumer(kafka_t *k, int64_t deadline_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(k->rk, q);
    int closed = 0;

    if (error) {
        log_warn("closing the Kafka consumer: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else {
        while (!(closed = rd_kafka_consumer_closed(k->rk)) && now_mono_ms() < deadline_ms) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
                /* The last revoke: hand the partitions back. */
                rd_kafka_assign(k->rk, NULL);
            }
            if (ev)
                rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_queue_destroy(q);
    if (closed) {
        rd_kafka_destroy(k->rk);
    } else {
        log_warn("the Kafka broker did not answer before the shutdown deadline: leaving without "
                 "a final commit (what was not committed is consumed again on restart)");
        rd_kafka_destroy_flags(k->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
}

void kafka_close(kafka_t *k, int64_t deadline_ms)
{
    if (!k)
        return;
    kafka_stop(k);
    /* Before the last commit: what reaches the dead-letter topic by the
     * deadline completes its offset. */
    dlq_close(k->dlq, deadline_ms);
    handoff_free(k->batches, free_batch_msg); /* what they took of the budget is back */
    if (k->rk && k->subscribed && !k->ever_assigned) {
        /* librdkafka 2.0.2 aborts when a cooperative-sticky consumer that
         * never had an assignment is closed or destroyed (its issue #4312,
         * fixed in 2.3.0): the handle, and k that its threads use, are left
         * to the process's exit. Nothing was consumed: nothing to commit. */
        log_info("kafka: leaving %s before the group gave this gateway its share", k->topic);
        return;
    }
    if (k->rk)
        close_consumer(k, deadline_ms);
    tracker_free(k->tracker);
    free(k->topic);
    free(k->events_topic);
    free(k);
}

struct detached_close {
    kafka_t *k;
    int64_t deadline_ms;
};

/* Closes still running on their threads: the budget they give back must
 * outlive them (kafka_wait_detached). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int running;
} detached = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void *close_thread(void *arg)
{
    struct detached_close *c = arg;
    kafka_close(c->k, c->deadline_ms);
    free(c);
    pthread_mutex_lock(&detached.lock);
    detached.running--;
    pthread_cond_broadcast(&detached.done);
    pthread_mutex_unlock(&detached.lock);
    return NULL;
}

void kafka_close_detached(kafka_t *k, int64_t deadline_ms)
{
    pthread_t t;
    pthread_attr_t attr;
    struct detached_close *c = xmalloc(sizeof(*c));
    *c = (struct detached_close){k, deadline_ms};
    pthread_mutex_lock(&detached.lock);
    detached.running++;
    pthread_mutex_unlock(&detached.lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, close_thread, c) != 0)
        close_thread(c); /* no thread: wait here rather than leak */
    pthread_attr_destroy(&attr);
}

void kafka_wait_detached(void)
{
    pthread_mutex_lock(&detached.lock);
    while (detached.running > 0)
        pthread_cond_wait(&detached.done, &detached.lock);
    pthread_mutex_unlock(&detached.lock);
}
