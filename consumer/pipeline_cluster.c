/* The pipeline among several gateways (docs/adr/0001): a notification
 * consumed here goes to this node's tabs and, through Kafka, to the inbox
 * of every other live node holding its user; what other nodes send here
 * is delivered as if consumed here. A record's offset completes once its
 * copy here is done and Kafka has every copy sent. Without other nodes
 * (or without the link) everything stays local. */
#include <stdlib.h>

#include "log.h"
#include "pipeline.h"
#include "record.h"
#include "timeutil.h"
#include "xalloc.h"

#define HOLDERS_MAX 64

/* Sends m to each node as kind; the record (partition, offset; -1: none)
 * waits for one completion per send queued. Returns how many. */
static size_t send_to(struct pipeline *p, const char *const *nodes, size_t n,
                      enum inbox_kind kind, const char *key, const hub_msg_t *m,
                      int32_t partition, int64_t offset)
{
    size_t sent = 0;
    for (size_t i = 0; i < n; i++)
        sent += cluster_link_send(p->link, nodes[i], kind, key, m, partition, offset) == 0;
    return sent;
}

void pipeline_route(struct pipeline *p, const hub_msg_t *m)
{
    const char *nodes[HOLDERS_MAX];
    size_t n = 0;
    /* What came through the inbox was sent to every holder already. */
    if (p->cluster && m->partition >= 0 && m->partition < KAFKA_INBOX_PARTITION_BASE)
        n = cluster_holders(p->cluster, m->user, now_wall_ms(), nodes, HOLDERS_MAX);
    if (n == 0) {
        hub_publish(p->hub, m);
        return;
    }
    int here = hub_user_online(p->hub, m->user);
    /* It now waits for n sends and the copy here, if any (one completion
     * is expected already). */
    kafka_expect_more(p->kafka, m->partition, m->offset, (uint32_t)(n - !here));
    size_t sent = send_to(p, nodes, n, INBOX_NOTIFY, m->user, m, m->partition, m->offset);
    /* With nothing sent, it is kept here (stored, with no tab here); and
     * what librdkafka refused now completes now. */
    int publish = here || sent == 0;
    for (size_t i = sent + publish; i < n + (size_t)here; i++)
        pipeline_offset_done(p, m->partition, m->offset);
    if (publish)
        hub_publish(p->hub, m);
}

void pipeline_stream_durable(struct pipeline *p, const hub_msg_t *m)
{
    const char *nodes[HOLDERS_MAX];
    size_t n = 0;
    if (p->cluster && m->partition >= 0 && m->partition < KAFKA_INBOX_PARTITION_BASE)
        n = cluster_peers(p->cluster, now_wall_ms(), nodes, HOLDERS_MAX);
    if (n) {
        kafka_expect_more(p->kafka, m->partition, m->offset, (uint32_t)n);
        size_t sent = send_to(p, nodes, n, INBOX_STREAM, m->stream, m, m->partition, m->offset);
        for (size_t i = sent; i < n; i++)
            pipeline_offset_done(p, m->partition, m->offset);
    }
    if (m->partition >= 0)
        pipeline_offset_done(p, m->partition, m->offset);
    hub_publish_stream(p->hub, m);
}

void pipeline_presence(void *ctx, const char *user, int online)
{
    struct pipeline *p = ctx;
    if (p->link)
        cluster_link_presence(p->link, user, online);
}

void pipeline_acked_elsewhere(struct pipeline *p, const hub_msg_t *m)
{
    const char *nodes[HOLDERS_MAX];
    if (!p->cluster || p->remote_ack)
        return;
    size_t n = cluster_holders(p->cluster, m->user, now_wall_ms(), nodes, HOLDERS_MAX);
    send_to(p, nodes, n, INBOX_ACK, m->user, m, -1, -1);
}

size_t pipeline_disconnect_elsewhere(const struct pipeline *p, const char *user)
{
    const char *nodes[HOLDERS_MAX];
    size_t n = p->cluster ? cluster_peers(p->cluster, now_wall_ms(), nodes, HOLDERS_MAX) : 0;
    hub_msg_t m = {.user = user, .id = ""};
    size_t told = 0;
    for (size_t i = 0; i < n; i++)
        told += cluster_link_send(p->link, nodes[i], INBOX_DISCONNECT, user, &m, -1, -1) == 0;
    return told;
}

/* One record of this node's inbox. */
static void take_inbox_msg(struct pipeline *p, const hub_msg_t *m, enum inbox_kind kind)
{
    switch (kind) {
    case INBOX_NOTIFY:
        hub_publish(p->hub, m); /* completes as a live one does */
        return;
    case INBOX_STREAM:
        hub_publish_stream(p->hub, m);
        break;
    case INBOX_ACK:
        /* As a tab's ack here: the copy here is done, the tabs told; one
         * already released to the store is removed there. */
        p->remote_ack = 1;
        if (!hub_ack_user(p->hub, m->user, m->id))
            store_worker_remove(p->store, m->user, m->id, NULL, NULL);
        p->remote_ack = 0;
        break;
    case INBOX_DISCONNECT:
        if (p->disconnect_user)
            p->disconnect_user(p->disconnect_arg, m->user);
        break;
    case INBOX_WAKE:
        hub_replay(p->hub, m->user);
        break;
    }
    pipeline_offset_done(p, m->partition, m->offset);
}

/* A send that failed for good: a notification is kept here instead (the
 * user's other node reads it at the next wake or connect); the rest only
 * completes. */
static void send_failed(struct pipeline *p, const struct cluster_event *e)
{
    hub_msg_t m;
    enum inbox_kind kind;
    char err[128];
    if (e->inbox_kind == INBOX_NOTIFY &&
        inbox_decode(e->key, e->klen, e->value, e->vlen, &m, &kind, err, sizeof(err)) == 0) {
        m.partition = e->partition;
        m.offset = e->offset;
        hub_publish(p->hub, &m);
        record_msg_clear(&m);
        return;
    }
    if (e->partition >= 0)
        pipeline_offset_done(p, e->partition, e->offset);
}

void pipeline_take_cluster(struct pipeline *p)
{
    cluster_batch_t *cb;
    while (p->link && (cb = cluster_link_take(p->link))) {
        for (size_t i = 0; i < cb->n; i++) {
            const struct cluster_event *e = &cb->ev[i];
            if (e->kind == CLUSTER_PRESENCE)
                cluster_apply(p->cluster, e->key, e->klen, e->value, e->vlen, e->ts_ms);
            else if (e->kind == CLUSTER_SENT && e->partition >= 0)
                pipeline_offset_done(p, e->partition, e->offset);
            else if (e->kind == CLUSTER_FAILED)
                send_failed(p, e);
        }
        cluster_batch_free(cb);
    }
    kafka_batch_t *b;
    while (p->inbox && !p->stopping && !budget_full(&p->budget) && (b = kafka_take(p->inbox))) {
        for (size_t i = 0; i < b->n; i++)
            take_inbox_msg(p, &b->msgs[i], (enum inbox_kind)b->kinds[i]);
        kafka_batch_free(b);
    }
}
