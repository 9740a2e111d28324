/* The presence reader, heartbeat and inbox producer of a node. */
#include "cluster_link.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "cluster.h"
#include "kafka_producer.h"
#include "kafka_props.h"
#include "kafka_topic.h"
#include "log.h"
#include "timeutil.h"
#include "uuid7.h"
#include "xalloc.h"

#define HEARTBEAT_MS 1000
/* A node id whose last heartbeat said up is watched this long at start:
 * one more heartbeat from that incarnation means it is alive. */
#define DUPLICATE_WATCH_MS 3000
#define KEY_MAX 256

/* Users an earlier incarnation of this node left in presence. */
struct leftover {
    UT_hash_handle hh;
    char *user;
};

/* What a send carries to its delivery report. */
struct token {
    enum inbox_kind kind;
    int32_t partition;
    int64_t offset;
};

struct cluster_link {
    char *node, *presence_topic, *inbox_prefix;
    char incarnation[UUID7_LEN];
    int embedded;
    rd_kafka_t *prod;
    rd_kafka_t *cons; /* presence, assigned from the start, never committed */
    handoff_t *events;
    cluster_batch_t *building; /* events of this turn of the thread */
    pthread_t thread;
    int started;
    atomic_int stop, ready, failed;
    char failure[512];
    /* At start only (the thread): */
    int topics_ready, assigned;
    int64_t *high; /* per presence partition: its end when reading began */
    int npartitions;
    struct leftover *leftovers;
    char other[65];          /* the incarnation of this id's last heartbeat, not ours */
    int other_up;
    int64_t watch_until;     /* monotonic: watching a possibly live twin until then */
    int other_beat;          /* that incarnation wrote again while watched */
};

void cluster_presence_topic(char *buf, size_t size, const char *topic)
{
    snprintf(buf, size, "%s.presence", topic);
}

void cluster_inbox_topic(char *buf, size_t size, const char *topic, const char *node)
{
    snprintf(buf, size, "%s.inbox.%s", topic, node);
}

int cluster_link_ready(cluster_link_t *cl)
{
    return atomic_load(&cl->ready);
}

const char *cluster_link_failed(cluster_link_t *cl)
{
    return atomic_load(&cl->failed) ? cl->failure : NULL;
}

/* ---- events for the loop ---- */

static struct cluster_event *event_add(cluster_link_t *cl, enum cluster_event_kind kind)
{
    cluster_batch_t *b = cl->building;
    if (!b) {
        b = cl->building = xcalloc(1, sizeof(*b));
        b->ev = xmalloc(64 * sizeof(*b->ev));
    } else if (b->n % 64 == 0) {
        b->ev = xrealloc(b->ev, (b->n + 64) * sizeof(*b->ev));
    }
    struct cluster_event *e = &b->ev[b->n++];
    *e = (struct cluster_event){.kind = kind, .partition = -1, .offset = -1};
    return e;
}

static void events_flush(cluster_link_t *cl)
{
    cluster_batch_t *b = cl->building;
    cl->building = NULL;
    if (b && handoff_send(cl->events, &b->link) != 0)
        cluster_batch_free(b);
}

void cluster_batch_free(cluster_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->ev[i].key);
        free(b->ev[i].value);
    }
    free(b->ev);
    free(b);
}

static void free_batch_msg(handoff_msg_t *m)
{
    cluster_batch_free((cluster_batch_t *)m);
}

cluster_batch_t *cluster_link_take(cluster_link_t *cl)
{
    return (cluster_batch_t *)handoff_take(cl->events, 1);
}

/* ---- producing ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    cluster_link_t *cl = opaque;
    struct token *t = m->_private;
    if (!t) { /* presence and heartbeats: a heartbeat is written again in a second */
        if (m->err && m->key_len > 0 && ((const char *)m->key)[0] == 'u') {
            log_warn("cluster: a presence record was not written (%s): writing it again",
                     rd_kafka_err2str(m->err));
            struct cluster_event *e = event_add(cl, CLUSTER_PRESENCE_LOST);
            e->key = xstrndup(m->key, m->key_len);
            e->klen = m->key_len;
        }
        return;
    }
    struct cluster_event *e = event_add(cl, m->err ? CLUSTER_FAILED : CLUSTER_SENT);
    e->inbox_kind = t->kind;
    e->partition = t->partition;
    e->offset = t->offset;
    if (m->err) {
        log_error("cluster: a %s record to %s was not written (%s): kept here instead",
                  t->kind == INBOX_NOTIFY || t->kind == INBOX_RELAY ? "notification" : "control",
                  rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        e->key = xstrndup(m->key ? m->key : "", m->key_len);
        e->klen = m->key_len;
        e->value = xmalloc(m->len + 1);
        memcpy(e->value, m->payload, m->len);
        e->vlen = m->len;
    }
    free(t);
}

static int produce(cluster_link_t *cl, const char *topic, const char *key, size_t klen,
                   char *value, size_t vlen, struct token *t)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        cl->prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
        RD_KAFKA_V_VALUE(value, vlen), RD_KAFKA_V_MSGFLAGS(value ? RD_KAFKA_MSG_F_FREE : 0),
        RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
    if (err) {
        log_error("cluster: cannot queue a record for %s: %s", topic, rd_kafka_err2str(err));
        free(value);
        return -1;
    }
    return 0;
}

static void heartbeat(cluster_link_t *cl, const char *state)
{
    char key[KEY_MAX], val[64];
    size_t klen = cluster_node_key(key, sizeof(key), cl->node);
    int vlen = snprintf(val, sizeof(val), "%s %s", state, cl->incarnation);
    produce(cl, cl->presence_topic, key, klen, xstrndup(val, (size_t)vlen), (size_t)vlen, NULL);
}

void cluster_link_presence(cluster_link_t *cl, const char *user, int holds)
{
    char key[KEY_MAX];
    size_t klen = cluster_user_key(key, sizeof(key), cl->node, user);
    if (klen)
        produce(cl, cl->presence_topic, key, klen, holds ? xstrdup(cl->incarnation) : NULL,
                holds ? strlen(cl->incarnation) : 0, NULL);
}

void cluster_link_clear(cluster_link_t *cl, const char *node, const char *user)
{
    char key[KEY_MAX];
    size_t klen = cluster_user_key(key, sizeof(key), node, user);
    if (klen)
        produce(cl, cl->presence_topic, key, klen, NULL, 0, NULL);
}

int cluster_link_send(cluster_link_t *cl, const char *node, enum inbox_kind kind,
                      const char *key, const hub_msg_t *m, int32_t partition, int64_t offset)
{
    char topic[512];
    size_t vlen;
    snprintf(topic, sizeof(topic), "%s%s", cl->inbox_prefix, node);
    char *value = inbox_encode(kind, m, &vlen);
    struct token *t = xmalloc(sizeof(*t));
    *t = (struct token){kind, partition, offset};
    if (produce(cl, topic, key, strlen(key), value, vlen, t) != 0) {
        free(t);
        return -1;
    }
    return 0;
}

/* ---- the thread ---- */

static int ensure_topics(cluster_link_t *cl)
{
    if (cl->embedded)
        return 0;
    char inbox[512];
    snprintf(inbox, sizeof(inbox), "%s%s", cl->inbox_prefix, cl->node);
    static const char *const presence_conf[] = {
        "cleanup.policy", "compact",
        "delete.retention.ms", "86400000",
        "segment.ms", "3600000",
        "min.cleanable.dirty.ratio", "0.1",
        "message.timestamp.type", "LogAppendTime",
        NULL};
    int rc = kafka_topic_ensure(cl->prod, cl->presence_topic, 1, presence_conf, 2000,
                                "presence", "--topic", cl->failure, sizeof(cl->failure));
    if (rc == 0)
        rc = kafka_topic_ensure(cl->prod, inbox, 1, NULL, 2000, "inbox", "--node-id",
                                cl->failure, sizeof(cl->failure));
    return rc;
}

/* Assigns every presence partition from its start and notes where each
 * ends now: read to there, presence is caught up. */
static int assign_presence(cluster_link_t *cl)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(cl->cons, cl->presence_topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(cl->cons, 0, t, &md, 2000);
    rd_kafka_topic_destroy(t);
    if (err)
        return -1;
    int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(md);
    if (n <= 0)
        return -1;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    cl->high = xcalloc((size_t)n, sizeof(*cl->high));
    for (int p = 0; p < n; p++) {
        int64_t low;
        if (rd_kafka_query_watermark_offsets(cl->cons, cl->presence_topic, p, &low,
                                             &cl->high[p], 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_topic_partition_list_destroy(parts);
            free(cl->high);
            cl->high = NULL;
            return -1;
        }
        rd_kafka_topic_partition_list_add(parts, cl->presence_topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    err = rd_kafka_assign(cl->cons, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        free(cl->high);
        cl->high = NULL;
        return -1;
    }
    cl->npartitions = n;
    return 0;
}

static int caught_up(cluster_link_t *cl)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(cl->npartitions);
    for (int p = 0; p < cl->npartitions; p++)
        rd_kafka_topic_partition_list_add(parts, cl->presence_topic, p);
    int all = rd_kafka_position(cl->cons, parts) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int p = 0; all && p < cl->npartitions; p++)
        all = cl->high[p] == 0 || parts->elems[p].offset >= cl->high[p];
    rd_kafka_topic_partition_list_destroy(parts);
    return all;
}

/* What other incarnations of this node's id wrote: before the node is
 * ready, the users they left and whether one may be alive; after, a live
 * twin that started first. */
static void refuse_duplicate(cluster_link_t *cl)
{
    snprintf(cl->failure, sizeof(cl->failure),
             "node id %s is in use by another live gateway: give this one another "
             "--node-id (NODE_ID)", cl->node);
    atomic_store(&cl->failed, 1);
}

static void note_own(cluster_link_t *cl, const rd_kafka_message_t *m)
{
    char own[KEY_MAX], node[KEY_MAX], user[KEY_MAX];
    size_t olen = cluster_node_key(own, sizeof(own), cl->node);
    if (!m->key)
        return;
    if (m->key_len == olen && !memcmp(m->key, own, olen) && m->payload) {
        /* "up INCARNATION" or "down INCARNATION" of this id */
        const char *v = m->payload, *sp = memchr(v, ' ', m->len);
        size_t ilen = sp ? (size_t)(v + m->len - sp - 1) : 0;
        int up = sp && sp - v == 2 && !memcmp(v, "up", 2);
        if (!sp || ilen >= sizeof(cl->other) ||
            (ilen == strlen(cl->incarnation) && !memcmp(sp + 1, cl->incarnation, ilen)))
            return; /* this incarnation's own */
        if (atomic_load(&cl->ready)) {
            /* Written since this one started: two live gateways with one id
             * (both read presence before either beat). The newer gives way:
             * incarnations are UUIDv7, ordered by when they were made. */
            if (up && memcmp(sp + 1, cl->incarnation, ilen) < 0)
                refuse_duplicate(cl);
            return;
        }
        if (cl->watch_until && ilen == strlen(cl->other) && !memcmp(sp + 1, cl->other, ilen))
            cl->other_beat = 1;
        snprintf(cl->other, sizeof(cl->other), "%.*s", (int)ilen, sp + 1);
        cl->other_up = up;
    } else if (!atomic_load(&cl->ready) &&
               cluster_record_user(m->key, m->key_len, node, sizeof(node), user, sizeof(user)) &&
               !strcmp(node, cl->node)) {
        struct leftover *l = NULL;
        HASH_FIND_STR(cl->leftovers, user, l);
        /* This incarnation's own (a tab came before presence was read). */
        int ours = m->payload && m->len == strlen(cl->incarnation) &&
                   !memcmp(m->payload, cl->incarnation, m->len);
        if (m->payload && !ours && !l) {
            l = xcalloc(1, sizeof(*l));
            l->user = xstrdup(user);
            HASH_ADD_KEYPTR(hh, cl->leftovers, l->user, strlen(l->user), l);
        } else if ((!m->payload || ours) && l) {
            HASH_DEL(cl->leftovers, l);
            free(l->user);
            free(l);
        }
    }
}

static void poll_presence(cluster_link_t *cl, int timeout_ms)
{
    for (int i = 0; i < 1000; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cl->cons, i ? 0 : timeout_ms);
        if (!m)
            return;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn("cluster: reading presence: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        note_own(cl, m);
        struct cluster_event *e = event_add(cl, CLUSTER_PRESENCE);
        e->key = xstrndup(m->key ? m->key : "", m->key_len);
        e->klen = m->key_len;
        if (m->payload) {
            e->value = xstrndup(m->payload, m->len);
            e->vlen = m->len;
        }
        e->ts_ms = rd_kafka_message_timestamp(m, NULL);
        rd_kafka_message_destroy(m);
    }
}

/* Caught up: refuse an id a live gateway holds, clear what an earlier
 * incarnation left, and start beating. Returns 1 once ready. */
static int become_ready(cluster_link_t *cl)
{
    if (cl->other[0] && cl->other_up && !cl->watch_until) {
        log_info("cluster: node id %s was up until recently: watching %d ms for another "
                 "gateway with it", cl->node, DUPLICATE_WATCH_MS);
        cl->watch_until = now_mono_ms() + DUPLICATE_WATCH_MS;
    }
    if (cl->other_beat) {
        refuse_duplicate(cl);
        return 0;
    }
    if (cl->watch_until && now_mono_ms() < cl->watch_until)
        return 0;
    struct leftover *l, *tmp;
    HASH_ITER(hh, cl->leftovers, l, tmp) {
        cluster_link_presence(cl, l->user, 0);
        HASH_DEL(cl->leftovers, l);
        free(l->user);
        free(l);
    }
    heartbeat(cl, "up");
    atomic_store(&cl->ready, 1);
    log_info("cluster: node %s is up (presence read, incarnation %s)", cl->node,
             cl->incarnation);
    return 1;
}

static void *link_loop(void *arg)
{
    cluster_link_t *cl = arg;
    int64_t next_beat = 0;
    while (!atomic_load(&cl->stop)) {
        rd_kafka_poll(cl->prod, 0);
        if (!cl->topics_ready) {
            int rc = ensure_topics(cl);
            if (rc < 0) {
                atomic_store(&cl->failed, 1);
                break;
            }
            cl->topics_ready = rc == 0;
            if (rc == 1)
                handoff_pause(cl->events, 1000);
            continue;
        }
        if (!cl->assigned) {
            cl->assigned = assign_presence(cl) == 0;
            if (!cl->assigned)
                handoff_pause(cl->events, 1000);
            continue;
        }
        poll_presence(cl, 50);
        if (!atomic_load(&cl->ready)) {
            if (caught_up(cl) && become_ready(cl))
                next_beat = now_mono_ms() + HEARTBEAT_MS;
            if (atomic_load(&cl->failed))
                break;
        } else if (now_mono_ms() >= next_beat && !atomic_load(&cl->failed)) {
            heartbeat(cl, "up");
            next_beat = now_mono_ms() + HEARTBEAT_MS;
        }
        rd_kafka_poll(cl->prod, 0);
        events_flush(cl);
    }
    events_flush(cl);
    return NULL;
}

static rd_kafka_t *presence_consumer(const struct cluster_link_conf *conf, char *errstr,
                                     size_t size)
{
    char group[512], err[512];
    snprintf(group, sizeof(group), "%s.%s", conf->group, conf->node_id);
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    /* Of -X, what reaches and logs in to the brokers: it reads one topic
     * by hand, none of the group consumer's settings apply. */
    if (kafka_props_for_producer(rc, conf->props, "presence consumer", errstr, size) != 0) {
        rd_kafka_conf_destroy(rc);
        return NULL;
    }
    const char *fixed[][2] = {
        {"bootstrap.servers", conf->brokers}, {"group.id", group},
        {"enable.auto.commit", "false"},      {"enable.partition.eof", "false"},
        {"client.id", "notification-gateway-presence"},
        {"fetch.wait.max.ms", "50"},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (rd_kafka_conf_set(rc, fixed[i][0], fixed[i][1], err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "the presence consumer: %s", err);
            rd_kafka_conf_destroy(rc);
            return NULL;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, err, sizeof(err));
    if (!rk) {
        snprintf(errstr, size, "cannot create the presence consumer: %s", err);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

cluster_link_t *cluster_link_start(const struct cluster_link_conf *conf,
                                   void (*notify)(void *arg), void *arg, char *errstr,
                                   size_t size)
{
    cluster_link_t *cl = xcalloc(1, sizeof(*cl));
    char buf[512];
    cl->node = xstrdup(conf->node_id);
    cluster_presence_topic(buf, sizeof(buf), conf->topic);
    cl->presence_topic = xstrdup(buf);
    cluster_inbox_topic(buf, sizeof(buf), conf->topic, "");
    cl->inbox_prefix = xstrdup(buf);
    cl->embedded = conf->embedded;
    uuid7_generate(cl->incarnation);
    cl->events = handoff_new(0, notify, arg);

    /* Forwards wait for a broker outage (nothing is lost: the offset holds)
     * but not for ever for a missing inbox: then the record is kept here. */
    static const char *const own[][2] = {
        {"linger.ms", "2"},
        {"message.timeout.ms", "30000"},
    };
    struct kafka_producer_spec spec = {"cluster producer", conf->brokers, conf->props, own, 2,
                                       on_delivery, NULL, cl};
    cl->prod = kafka_producer_new(&spec, errstr, size);
    if (!cl->prod || !(cl->cons = presence_consumer(conf, errstr, size))) {
        cluster_link_close(cl, 0);
        return NULL;
    }
    if (pthread_create(&cl->thread, NULL, link_loop, cl) != 0) {
        snprintf(errstr, size, "cannot start the cluster thread");
        cluster_link_close(cl, 0);
        return NULL;
    }
    cl->started = 1;
    return cl;
}

void cluster_link_drain(cluster_link_t *cl, int timeout_ms)
{
    int64_t until = now_mono_ms() + timeout_ms;
    while (rd_kafka_outq_len(cl->prod) > 0 && now_mono_ms() < until) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

void cluster_link_close(cluster_link_t *cl, int64_t deadline_ms)
{
    if (!cl)
        return;
    if (cl->started) {
        atomic_store(&cl->stop, 1);
        pthread_join(cl->thread, NULL);
    }
    if (cl->prod) {
        if (atomic_load(&cl->ready) && !atomic_load(&cl->failed)) /* a twin's says nothing */
            heartbeat(cl, "down");
        int64_t left = deadline_ms - now_mono_ms();
        rd_kafka_flush(cl->prod, left > 0 ? (int)left : 0);
        rd_kafka_destroy(cl->prod);
    }
    if (cl->cons) {
        rd_kafka_consumer_close(cl->cons);
        rd_kafka_destroy(cl->cons);
    }
    cluster_batch_free(cl->building);
    handoff_free(cl->events, free_batch_msg);
    struct leftover *l, *tmp;
    HASH_ITER(hh, cl->leftovers, l, tmp) {
        HASH_DEL(cl->leftovers, l);
        free(l->user);
        free(l);
    }
    free(cl->high);
    free(cl->node);
    free(cl->presence_topic);
    free(cl->inbox_prefix);
    free(cl);
}
