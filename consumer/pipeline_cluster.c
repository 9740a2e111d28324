/* The pipeline among several gateways (docs/adr/0001): a notification
 * consumed here goes to this node's tabs and, through Kafka, to the inbox
 * of every other live node holding its user; what other nodes send here
 * is delivered as if consumed here. A record's offset completes once its
 * copy here is done and Kafka has every copy sent. Without other nodes
 * (or without the link) everything stays local. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "config.h"
#include "log.h"
#include "notification.h"
#include "pipeline.h"
#include "record.h"
#include "timeutil.h"
#include "xalloc.h"

#define HOLDERS_MAX 64
/* A node that read a user's presence this much later than this node
 * stored for them is not owed a wake: its tab's replay read the store
 * after the write (presence travels in well under a second). */
#define STORED_FOR_MS 30000
/* A node silent for longer than this is not drained any more: whatever
 * its inbox held was routed long ago (presence tombstones live a day). */
#define DRAIN_WITHIN_MS (24 * 3600 * 1000LL)
/* A stopped node's inbox read to its end this long is done with. */
#define DRAINED_AFTER_MS 10000

/* A user stored for here because no node held them, and when. */
struct stored_for {
    UT_hash_handle hh;
    int64_t at_ms;
    char user[];
};

/* A node that took such a user: told to replay once the puts submitted
 * before it learned of that are durable. */
struct owed_wake {
    struct owed_wake *next;
    size_t puts;
    char node[NODE_ID_MAX + 1];
    char user[];
};

static void note_stored_for(struct pipeline *p, const char *user)
{
    struct stored_for *s = NULL;
    HASH_FIND_STR(p->stored_for, user, s);
    if (!s) {
        size_t len = strlen(user);
        s = xmalloc(sizeof(*s) + len + 1);
        memcpy(s->user, user, len + 1);
        HASH_ADD_STR(p->stored_for, user, s);
    }
    s->at_ms = now_mono_ms();
}

/* A node took user: if this node stored for them lately, that node's
 * replay may have read the store before those writes; it is owed a wake. */
static void joined(struct pipeline *p, const char *node, const char *user)
{
    struct stored_for *s = NULL;
    HASH_FIND_STR(p->stored_for, user, s);
    if (!s || now_mono_ms() - s->at_ms > STORED_FOR_MS ||
        !strcmp(node, cluster_self(p->cluster)))
        return;
    size_t len = strlen(user);
    struct owed_wake *w = xmalloc(sizeof(*w) + len + 1);
    w->puts = store_worker_puts_submitted(p->store);
    snprintf(w->node, sizeof(w->node), "%s", node);
    memcpy(w->user, user, len + 1);
    w->next = p->wakes;
    p->wakes = w;
}

static void send_wakes(struct pipeline *p)
{
    size_t durable = p->wakes ? store_worker_puts_durable(p->store) : 0;
    for (struct owed_wake **at = &p->wakes; *at;) {
        struct owed_wake *w = *at;
        if (durable < w->puts) {
            at = &w->next;
            continue;
        }
        hub_msg_t m = {.user = w->user, .id = ""};
        cluster_link_send(p->link, w->node, INBOX_WAKE, w->user, &m, -1, -1);
        *at = w->next;
        free(w);
    }
    int64_t now = now_mono_ms();
    if (now - p->stored_for_swept_ms < 1000)
        return;
    p->stored_for_swept_ms = now;
    struct stored_for *s, *tmp;
    HASH_ITER(hh, p->stored_for, s, tmp) {
        if (now - s->at_ms > STORED_FOR_MS) {
            HASH_DEL(p->stored_for, s);
            free(s);
        }
    }
}

void pipeline_cluster_clear(struct pipeline *p)
{
    struct stored_for *s, *tmp;
    HASH_ITER(hh, p->stored_for, s, tmp) {
        HASH_DEL(p->stored_for, s);
        free(s);
    }
    while (p->wakes) {
        struct owed_wake *w = p->wakes;
        p->wakes = w->next;
        free(w);
    }
}

/* Sends m to each node as kind; the record (partition, offset; -1: none)
 * waits for one completion per send queued. Returns how many. */
static size_t send_to(const struct pipeline *p, const char *const *nodes, size_t n,
                      enum inbox_kind kind, const char *key, const hub_msg_t *m,
                      int32_t partition, int64_t offset)
{
    size_t sent = 0;
    for (size_t i = 0; i < n; i++)
        sent += cluster_link_send(p->link, nodes[i], kind, key, m, partition, offset) == 0;
    return sent;
}

/* Routes m: to this node's tabs and every other live node holding its
 * user, as kind (with no holder anywhere, it is stored here). */
static void route(struct pipeline *p, const hub_msg_t *m, enum inbox_kind kind)
{
    const char *nodes[HOLDERS_MAX];
    size_t n = p->cluster ? cluster_holders(p->cluster, m->user, nodes, HOLDERS_MAX)
                          : 0;
    if (n == 0) {
        if (p->cluster && !hub_user_online(p->hub, m->user))
            note_stored_for(p, m->user);
        hub_publish(p->hub, m);
        return;
    }
    int here = hub_user_online(p->hub, m->user);
    /* It now waits for n sends and the copy here, if any (one completion
     * is expected already). */
    kafka_expect_more(pipeline_source(p, m->partition / KAFKA_SOURCE_SPAN),
                      m->partition % KAFKA_SOURCE_SPAN, m->offset, (uint32_t)(n - !here));
    size_t sent = send_to(p, nodes, n, kind, m->user, m, m->partition, m->offset);
    /* With nothing sent, it is kept here (stored, with no tab here); and
     * what librdkafka refused now completes now. */
    int publish = here || sent == 0;
    for (size_t i = sent + publish; i < n + (size_t)here; i++)
        pipeline_offset_done(p, m->partition, m->offset);
    if (publish)
        hub_publish(p->hub, m);
}

void pipeline_route(struct pipeline *p, const hub_msg_t *m)
{
    route(p, m, INBOX_NOTIFY);
}

void pipeline_stream_durable(struct pipeline *p, const hub_msg_t *m)
{
    const char *nodes[HOLDERS_MAX];
    size_t n = 0;
    if (p->cluster && m->partition >= 0 && m->partition < KAFKA_SOURCE_SPAN)
        n = cluster_peers(p->cluster, nodes, HOLDERS_MAX);
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
    size_t n = cluster_holders(p->cluster, m->user, nodes, HOLDERS_MAX);
    send_to(p, nodes, n, INBOX_ACK, m->user, m, -1, -1);
}

size_t pipeline_disconnect_elsewhere(const struct pipeline *p, const char *user)
{
    const char *nodes[HOLDERS_MAX];
    size_t n = p->cluster ? cluster_peers(p->cluster, nodes, HOLDERS_MAX) : 0;
    hub_msg_t m = {.user = user, .id = ""};
    return send_to(p, nodes, n, INBOX_DISCONNECT, user, &m, -1, -1);
}

/* One inbox record: this node's, or a dead node's this node drains (its
 * notifications go wherever their users are now; what was for its tabs
 * alone, streams and disconnects, is done). */
static void take_inbox_msg(struct pipeline *p, const hub_msg_t *m, enum inbox_kind kind,
                           int drained)
{
    switch (kind) {
    case INBOX_NOTIFY:
    case INBOX_RELAY:
        /* For a tab here: delivered as a live one (the sender sent it to
         * the user's other nodes). No tab here any more (this node came
         * back after a crash, its tabs went elsewhere), or a dead node's:
         * on to wherever the user is now, once (a relay goes no further:
         * presence that is wrong for a while cannot make records loop). */
        if (!drained && (kind == INBOX_RELAY || hub_user_online(p->hub, m->user)))
            hub_publish(p->hub, m);
        else
            route(p, m, INBOX_RELAY);
        return;
    case INBOX_STREAM:
        if (!drained)
            hub_publish_stream(p->hub, m);
        break;
    case INBOX_ACK:
        /* As a tab's ack here: the copy here is done, the tabs told; one
         * already released to the store is removed there. */
        p->remote_ack = 1;
        if (!hub_ack_user(p->hub, m->user, m->id) && !drained)
            store_worker_remove(p->store, m->user, m->id, NULL, NULL);
        p->remote_ack = 0;
        break;
    case INBOX_DISCONNECT:
        if (p->disconnect_user && !drained)
            p->disconnect_user(p->disconnect_arg, m->user);
        break;
    case INBOX_WAKE:
        hub_replay(p->hub, m->user);
        break;
    }
    pipeline_offset_done(p, m->partition, m->offset);
}

/* What an inbox consumer (NULL: none) handed over, while memory allows. */
static void take_inbox(struct pipeline *p, kafka_t *k, int drained)
{
    kafka_batch_t *b;
    while (k && !p->stopping && !budget_full(&p->budget) && (b = kafka_take(k))) {
        for (size_t i = 0; i < b->n; i++)
            take_inbox_msg(p, &b->msgs[i], (enum inbox_kind)b->kinds[i], drained);
        kafka_batch_free(b);
    }
}

/* ---- dead nodes' inboxes ---- */

static int is_dead(const char *const *dead, size_t n, const char *node)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(dead[i], node))
            return 1;
    return 0;
}

static void clear_presence(void *arg, const char *user)
{
    struct pipeline *p = arg;
    cluster_link_clear(p->link, p->clearing, user);
}

static int was_drained(const struct pipeline *p, const char *node)
{
    struct cluster_node_state st;
    if (cluster_node_state(p->cluster, node, &st) != 0)
        return 0;
    for (size_t i = 0; i < p->ndrained; i++)
        if (!strcmp(p->drained[i].node, node) && p->drained[i].last_ms == st.last_ms)
            return 1;
    return 0;
}

/* A stopped node's inbox read to its end for a while: done with it. */
static int drained_to_end(struct pipeline *p, struct drain *d, int64_t now)
{
    struct partition_lag lag[4];
    size_t n = kafka_lag(d->kafka, lag, 4);
    int at_end = kafka_status(d->kafka).joined && n > 0;
    for (size_t i = 0; i < n; i++)
        at_end &= lag[i].lag == 0;
    if (!at_end || cluster_node_up(p->cluster, d->node)) {
        d->idle_since = 0;
        return 0;
    }
    if (!d->idle_since)
        d->idle_since = now;
    if (now - d->idle_since < DRAINED_AFTER_MS)
        return 0;
    struct cluster_node_state st;
    struct drained *x = &p->drained[p->drained_next++ % PIPELINE_DRAINED];
    if (p->ndrained < PIPELINE_DRAINED)
        p->ndrained++;
    snprintf(x->node, sizeof(x->node), "%s", d->node);
    x->last_ms = cluster_node_state(p->cluster, d->node, &st) == 0 ? st.last_ms : 0;
    return 1;
}

/* Once a second: the lowest live node drains every dead node's inbox
 * (what was sent there and not done is routed again: wherever its user is
 * now) and clears its presence; a drain ends when its node is back,
 * another node is the lowest, or (a stopped node) its inbox stays read to
 * its end. Nothing is judged while no heartbeat is read (cluster.h). */
static void check_drains(struct pipeline *p)
{
    int64_t now = now_mono_ms();
    if (!p->cluster || !p->start_drain || p->stopping || now - p->drains_checked_ms < 1000)
        return;
    p->drains_checked_ms = now;
    const char *dead[PIPELINE_DRAINS];
    size_t n = 0;
    if (cluster_link_ready(p->link) && cluster_lowest(p->cluster))
        n = cluster_dead(p->cluster, DRAIN_WITHIN_MS, dead, PIPELINE_DRAINS);
    for (int i = 0; i < PIPELINE_DRAINS; i++) {
        struct drain *d = &p->drains[i];
        if (!d->kafka)
            continue;
        int done = drained_to_end(p, d, now);
        if (!done && is_dead(dead, n, d->node))
            continue;
        log_info("cluster: node %s %s: its inbox is given back", d->node,
                 done ? "stopped and its inbox is read to its end"
                      : "is back or another node drains it");
        kafka_close_detached(d->kafka, now + 5000);
        d->kafka = NULL;
    }
    for (size_t j = 0; j < n; j++) {
        int slot = -1, have = 0;
        for (int i = 0; i < PIPELINE_DRAINS; i++) {
            have |= p->drains[i].kafka && !strcmp(p->drains[i].node, dead[j]);
            if (!p->drains[i].kafka && slot < 0)
                slot = i;
        }
        if (have || slot < 0 || was_drained(p, dead[j]))
            continue;
        struct drain *d = &p->drains[slot];
        snprintf(d->node, sizeof(d->node), "%s", dead[j]);
        /* A number no drain had lately: late completions of an old one are dropped. */
        p->next_source = p->next_source >= 2 && p->next_source < PIPELINE_SOURCES - 1
                             ? p->next_source + 1
                             : 2;
        d->source = p->next_source;
        d->idle_since = 0;
        d->kafka = p->start_drain(p->drain_arg, d->node, d->source);
        if (!d->kafka)
            continue;
        log_warn("cluster: node %s is silent: draining its inbox here, its presence cleared",
                 d->node);
        p->clearing = d->node;
        cluster_each_user_of(p->cluster, d->node, clear_presence, p);
    }
}

void pipeline_drains_close(struct pipeline *p, int64_t deadline_ms)
{
    for (int i = 0; i < PIPELINE_DRAINS; i++) {
        kafka_close(p->drains[i].kafka, deadline_ms);
        p->drains[i].kafka = NULL;
    }
}

/* A send that failed for good: a notification is kept here instead (the
 * user's other node reads it at the next wake or connect); the rest only
 * completes. */
static void send_failed(struct pipeline *p, const struct cluster_event *e)
{
    hub_msg_t m;
    enum inbox_kind kind;
    char err[128];
    if ((e->inbox_kind == INBOX_NOTIFY || e->inbox_kind == INBOX_RELAY) &&
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

/* A presence record read (or one of this node's that Kafka refused). This
 * node's own say what is true here, whatever was written over them: a
 * tombstone from a node that took this one for dead (an outage), or a
 * write that failed, is written right again. */
static void take_presence(struct pipeline *p, const struct cluster_event *e)
{
    char node[NODE_ID_MAX + 1] = "", user[NOTIF_USER_MAX + 1] = "";
    int ours = cluster_record_user(e->key, e->klen, node, sizeof(node), user, sizeof(user)) &&
               !strcmp(node, cluster_self(p->cluster));
    if (e->kind == CLUSTER_PRESENCE_LOST) {
        if (ours)
            cluster_link_presence(p->link, user, hub_user_online(p->hub, user));
        return;
    }
    cluster_apply(p->cluster, e->key, e->klen, e->value, e->vlen, e->ts_ms);
    if (!e->value && ours && hub_user_online(p->hub, user))
        cluster_link_presence(p->link, user, 1);
    else if (e->value && !ours && node[0])
        joined(p, node, user);
}

void pipeline_take_cluster(struct pipeline *p)
{
    cluster_batch_t *cb;
    while (p->link && (cb = cluster_link_take(p->link))) {
        for (size_t i = 0; i < cb->n; i++) {
            const struct cluster_event *e = &cb->ev[i];
            if (e->kind == CLUSTER_PRESENCE || e->kind == CLUSTER_PRESENCE_LOST)
                take_presence(p, e);
            else if (e->kind == CLUSTER_SENT && e->partition >= 0)
                pipeline_offset_done(p, e->partition, e->offset);
            else if (e->kind == CLUSTER_FAILED)
                send_failed(p, e);
        }
        cluster_batch_free(cb);
    }
    send_wakes(p);
    check_drains(p);
    take_inbox(p, p->inbox, 0);
    for (int i = 0; i < PIPELINE_DRAINS; i++)
        take_inbox(p, p->drains[i].kafka, 1);
}
