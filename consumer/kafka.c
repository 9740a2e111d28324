#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "notification.h"
#include "timeutil.h"
#include "xalloc.h"

struct kafka {
    rd_kafka_t *rk;
    char *topic;
    size_t batch_max, queue_max;
    void (*notify)(void *);
    void *notify_arg;
    pthread_t thread;
    int started;

    pthread_mutex_t lock; /* guards the queue, the tracker and running */
    pthread_cond_t room;
    kafka_batch_t *head, *tail;
    size_t queued;
    int running;
    int assigned; /* partitions assigned to this member */
    tracker_t *tracker;
};

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 errors, 4 warnings, the rest is chatter. */
    if (level <= 3)
        log_error("kafka: %s: %s", fac, buf);
    else if (level == 4)
        log_warn("kafka: %s: %s", fac, buf);
    else
        log_debug("kafka: %s: %s", fac, buf);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_t *k = opaque;
    char list[512] = "";
    size_t used = 0;

    for (int i = 0; i < parts->cnt && used < sizeof(list); i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%d", i ? "," : "",
                                 parts->elems[i].partition);

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info("assigned partitions [%s] of %s", list, k->topic);
        rd_kafka_assign(rk, parts);
        pthread_mutex_lock(&k->lock);
        k->assigned = parts->cnt;
        pthread_mutex_unlock(&k->lock);
        return;
    }
    /* Revoked: completions still to come for these partitions are
     * someone else's to redo; librdkafka commits what was stored so far. */
    log_info("revoked partitions [%s] of %s", list, k->topic);
    pthread_mutex_lock(&k->lock);
    for (int i = 0; i < parts->cnt; i++)
        tracker_forget(k->tracker, parts->elems[i].partition);
    k->assigned = 0;
    pthread_mutex_unlock(&k->lock);
    rd_kafka_assign(rk, NULL);
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

size_t kafka_pending(kafka_t *k)
{
    pthread_mutex_lock(&k->lock);
    size_t n = tracker_pending(k->tracker);
    pthread_mutex_unlock(&k->lock);
    return n;
}

int kafka_assigned(kafka_t *k)
{
    pthread_mutex_lock(&k->lock);
    int n = k->assigned;
    pthread_mutex_unlock(&k->lock);
    return n;
}

void kafka_batch_free(kafka_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free((char *)b->msgs[i].id);
        free((char *)b->msgs[i].user);
        free((char *)b->msgs[i].frame);
    }
    free(b->msgs);
    free(b);
}

kafka_batch_t *kafka_take(kafka_t *k)
{
    pthread_mutex_lock(&k->lock);
    kafka_batch_t *b = k->head;
    if (b) {
        k->head = b->next;
        if (!k->head)
            k->tail = NULL;
        k->queued--;
        b->next = NULL;
        pthread_cond_signal(&k->room);
    }
    pthread_mutex_unlock(&k->lock);
    return b;
}

/* Parses one message into msgs[*n]; an invalid one is logged, skipped and
 * counted done at once so it never holds back its partition. */
static void take_message(kafka_t *k, const rd_kafka_message_t *rkm, kafka_batch_t *b,
                         struct part_offset *skipped, size_t *nskipped)
{
    notification_t n;
    char err[256];
    hub_msg_t *m = &b->msgs[b->n];

    pthread_mutex_lock(&k->lock);
    tracker_add(k->tracker, rkm->partition, rkm->offset);
    pthread_mutex_unlock(&k->lock);

    if (!rkm->payload ||
        notification_parse(rkm->payload, rkm->len, NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n, err,
                           sizeof(err)) != 0) {
        log_warn("skipping the message at %s partition %d offset %lld: %s", k->topic,
                 (int)rkm->partition, (long long)rkm->offset,
                 rkm->payload ? err : "it has no value");
        skipped[(*nskipped)++] = (struct part_offset){rkm->partition, rkm->offset};
        return;
    }
    /* An id made from the message's place, so a redelivered copy keeps it
     * and clients can drop the duplicate. */
    if (n.filled & NOTIF_FILL_ID)
        snprintf(n.id, sizeof(n.id), "%s-%d-%lld", k->topic, (int)rkm->partition,
                 (long long)rkm->offset);
    if (n.filled & NOTIF_FILL_TIMESTAMP) {
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = rd_kafka_message_timestamp(rkm, &tstype);
        if (ts >= 0)
            iso8601_from_ms(ts, n.timestamp);
    }
    size_t len = 0;
    char *frame = notification_to_json(&n, 0, &len);
    if (frame && len > NOTIF_JSON_MAX) {
        log_warn("skipping the message at %s partition %d offset %lld: it is %zu bytes once "
                 "normalised, over the limit of %d",
                 k->topic, (int)rkm->partition, (long long)rkm->offset, len, NOTIF_JSON_MAX);
        free(frame);
        notification_clear(&n);
        skipped[(*nskipped)++] = (struct part_offset){rkm->partition, rkm->offset};
        return;
    }
    m->id = xstrdup(n.id);
    m->user = xstrdup(n.user);
    m->frame = frame;
    m->frame_len = len;
    m->seq = 0;
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    b->n++;
    notification_clear(&n);
}

/* Queues b for the loop, waiting while the queue is full. Returns -1 when
 * stopped meanwhile (b is then freed: its offsets stay uncommitted). */
static int hand_off(kafka_t *k, kafka_batch_t *b)
{
    pthread_mutex_lock(&k->lock);
    while (k->queued >= k->queue_max && k->running) {
        struct timespec ts = wall_in_ms(100);
        pthread_cond_timedwait(&k->room, &k->lock, &ts);
    }
    if (!k->running) {
        pthread_mutex_unlock(&k->lock);
        kafka_batch_free(b);
        return -1;
    }
    if (k->tail)
        k->tail->next = b;
    else
        k->head = b;
    k->tail = b;
    k->queued++;
    pthread_mutex_unlock(&k->lock);
    k->notify(k->notify_arg);
    return 0;
}

static int is_running(kafka_t *k)
{
    pthread_mutex_lock(&k->lock);
    int r = k->running;
    pthread_mutex_unlock(&k->lock);
    return r;
}

static void *consume_loop(void *arg)
{
    kafka_t *k = arg;
    struct part_offset *skipped = xcalloc(k->batch_max, sizeof(*skipped));

    while (is_running(k)) {
        kafka_batch_t *b = xcalloc(1, sizeof(*b));
        b->msgs = xcalloc(k->batch_max, sizeof(*b->msgs));
        size_t nskipped = 0;
        /* Wait for the first message, then take what is already there. */
        int timeout = 100;
        size_t polled = 0;
        while (polled < k->batch_max) {
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(k->rk, timeout);
            if (!rkm)
                break;
            timeout = 0;
            if (rkm->err) {
                if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    log_warn("kafka: %s", rd_kafka_message_errstr(rkm));
            } else {
                take_message(k, rkm, b, skipped, &nskipped);
                polled++;
            }
            rd_kafka_message_destroy(rkm);
        }
        if (nskipped)
            kafka_offsets_done(k, skipped, nskipped);
        if (b->n == 0)
            kafka_batch_free(b);
        else if (hand_off(k, b) != 0)
            break;
    }
    free(skipped);
    return NULL;
}

kafka_t *kafka_start(const struct kafka_conf *conf, void (*notify)(void *arg), void *arg,
                     char *errstr, size_t size)
{
    char err[512];
    kafka_t *k = xcalloc(1, sizeof(*k));
    rd_kafka_conf_t *rconf = rd_kafka_conf_new();

    k->topic = xstrdup(conf->topic);
    k->tracker = tracker_new();
    k->batch_max = conf->batch_max ? conf->batch_max : 512;
    k->queue_max = conf->queue_batches ? conf->queue_batches : 8;
    k->notify = notify;
    k->notify_arg = arg;
    k->running = 1;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->room, NULL);

    /* Our defaults first, so -X can override any of them. */
    const char *defaults[][2] = {
        {"bootstrap.servers", conf->brokers},
        {"group.id", conf->group},
        {"client.id", "notification-gateway"},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "1000"},
        /* A group's first start must not skip what was published before it. */
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "false"},
        /* After a crash the group waits this long before handing the dead
         * member's partitions to a live one: notifications wait too. */
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "2000"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (rd_kafka_conf_set(rconf, defaults[i][0], defaults[i][1], err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "%s", err);
            goto fail;
        }
    }
    for (const char *const *p = conf->props; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        char key[256];
        if (!eq || eq == *p || (size_t)(eq - *p) >= sizeof(key)) {
            snprintf(errstr, size, "-X %s: expected key=value", *p);
            goto fail;
        }
        memcpy(key, *p, (size_t)(eq - *p));
        key[eq - *p] = '\0';
        if (!strcmp(key, "enable.auto.offset.store") || !strcmp(key, "enable.auto.commit") ||
            !strcmp(key, "group.id") || !strcmp(key, "bootstrap.servers")) {
            snprintf(errstr, size,
                     "-X %s: the gateway sets %s itself (%s); use its own option instead",
                     *p, key,
                     strncmp(key, "enable.", 7) == 0
                         ? "offsets are stored only once a notification is delivered or stored"
                         : "--group / --brokers");
            goto fail;
        }
        if (rd_kafka_conf_set(rconf, key, eq + 1, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "-X %s: %s", *p, err);
            goto fail;
        }
    }
    rd_kafka_conf_set_log_cb(rconf, on_log);
    rd_kafka_conf_set_rebalance_cb(rconf, on_rebalance);
    rd_kafka_conf_set_opaque(rconf, k);

    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rconf, err, sizeof(err));
    if (!k->rk) {
        snprintf(errstr, size, "cannot create the Kafka consumer: %s", err);
        goto fail;
    }
    rconf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(k->rk);

    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, conf->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(k->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (rerr) {
        snprintf(errstr, size, "cannot subscribe to %s: %s", conf->topic, rd_kafka_err2str(rerr));
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

void kafka_stop(kafka_t *k)
{
    if (!k || !k->started)
        return;
    pthread_mutex_lock(&k->lock);
    k->running = 0;
    pthread_cond_broadcast(&k->room);
    pthread_mutex_unlock(&k->lock);
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
    if (k->rk)
        close_consumer(k, deadline_ms);
    kafka_batch_t *b;
    while ((b = k->head)) {
        k->head = b->next;
        kafka_batch_free(b);
    }
    tracker_free(k->tracker);
    free(k->topic);
    free(k);
}
