/* Deliveries and connection windows: what each connection has queued and
 * unacknowledged, the frames it writes, its acks and ack timeouts. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub_internal.h"
#include "log.h"
#include "xalloc.h"

/* ---- deliveries ---- */

delivery_t *delivery_new(hub_t *hub, const hub_msg_t *m, enum source source)
{
    size_t idlen = strlen(m->id);
    size_t room = m->frame_len + (source == FROM_STORE ? NOTIF_REPLAYED_EXTRA : 0);
    delivery_t *d = xmalloc(sizeof(*d) + idlen + 1 + hub->lim.frame_headroom + room + 1);

    memset(d, 0, sizeof(*d));
    memcpy(d->buf, m->id, idlen + 1);
    d->id = d->buf;
    d->frame = d->buf + idlen + 1 + hub->lim.frame_headroom;
    if (source == FROM_STORE) {
        /* A replayed frame says so. */
        d->frame_len = notification_frame_replayed(m->frame, m->frame_len, d->frame);
        if (d->frame_len == 0) {
            free(d);
            return NULL;
        }
    } else {
        memcpy(d->frame, m->frame, m->frame_len);
        d->frame[m->frame_len] = '\0';
        d->frame_len = m->frame_len;
    }
    d->source = source;
    d->partition = m->partition;
    d->offset = m->offset;
    d->seq = m->seq;
    d->kafka_ms = source == FROM_KAFKA ? m->kafka_ms : 0;
    d->expires_ms = m->expires_ms;
    return d;
}

size_t delivery_cost(const delivery_t *d)
{
    return budget_cost(d->frame_len + (size_t)(d->frame - d->buf));
}

void delivery_event(hub_t *hub, const user_t *u, const delivery_t *d, enum event_kind kind)
{
    if (!hub->ops.event)
        return;
    hub_msg_t m;
    delivery_as_msg(d, u, &m);
    hub->ops.event(hub->ops.ctx, kind, &m);
}

void delivery_as_msg(const delivery_t *d, const user_t *u, hub_msg_t *m)
{
    *m = (hub_msg_t){0};
    m->id = d->id;
    m->user = u->id;
    m->frame = d->frame;
    m->frame_len = d->frame_len;
    m->seq = d->seq;
    m->partition = d->partition;
    m->offset = d->offset;
    m->kafka_ms = d->kafka_ms;
    m->expires_ms = d->expires_ms;
}

/* One connection lets go of d. The last one to do so without an ack sends
 * a live notification to the store, so it is delivered on a later connect. */
static int delivery_release(hub_t *hub, user_t *u, delivery_t *d)
{
    if (--d->holders > 0)
        return 0;
    int unacked = !d->acked;
    if (unacked && d->source == FROM_KAFKA) {
        hub_msg_t m;
        delivery_as_msg(d, u, &m);
        hub->ops.store(hub->ops.ctx, &m);
    }
    HASH_DEL(u->inflight, d);
    if (unacked && d->source == FROM_STREAM)
        stream_released(hub, u, d); /* not inflight any more: it can be read again */
    hub->ninflight--;
    budget_give(hub->lim.budget, BUDGET_WINDOWS, delivery_cost(d));
    free(d);
    return unacked;
}

/* ---- connection windows ---- */

size_t conn_room(const hub_t *hub, const hub_conn_t *c, size_t frame_len)
{
    if (c->len >= hub->lim.window || c->bytes + frame_len > hub->lim.window_bytes)
        return 0;
    return hub->lim.window - c->len;
}

size_t window_room(const hub_t *hub, const user_t *u, size_t frame_len)
{
    size_t max = 0;
    for (const hub_conn_t *c = u->conns; c; c = c->next) {
        size_t r = conn_room(hub, c, frame_len);
        if (r > max)
            max = r;
    }
    return max;
}

static void grow_ring(const hub_t *hub, hub_conn_t *c)
{
    size_t cap = c->cap ? c->cap * 2 : 4;
    if (cap > hub->lim.window)
        cap = hub->lim.window;
    struct slot *ring = xmalloc(cap * sizeof(*ring));
    for (size_t i = 0; i < c->len; i++)
        ring[i] = *SLOT(c, i);
    free(c->ring);
    c->ring = ring;
    c->cap = cap;
    c->head = 0;
}

void window_push(hub_t *hub, user_t *u, delivery_t *d)
{
    window_push_typed(hub, u, d, NULL);
}

void window_push_typed(hub_t *hub, user_t *u, delivery_t *d, const char *type)
{
    HASH_ADD_KEYPTR(hh, u->inflight, d->id, strlen(d->id), d);
    hub->ninflight++;
    budget_take(hub->lim.budget, BUDGET_WINDOWS, delivery_cost(d));
    d->holders++; /* held by the push itself until every connection has it */
    for (hub_conn_t *c = u->conns; c; c = c->next) {
        /* A full window (a tab that stopped reading or acking) is passed
         * over: the user's other tabs get it, and once one acknowledges
         * it, it is done for the user. */
        if (conn_room(hub, c, d->frame_len) == 0 || !conn_takes(c, d->stream, type))
            continue;
        if (c->len == c->cap)
            grow_ring(hub, c);
        struct slot *s = SLOT(c, c->len);
        s->d = d;
        s->sent_at = 0;
        c->len++;
        c->bytes += d->frame_len;
        d->holders++;
        /* Ask for a write only when this is the first frame waiting. */
        if (c->len - c->nsent == 1)
            hub->ops.want_write(hub->ops.ctx, c->transport);
    }
    delivery_release(hub, u, d); /* stored at once if no connection could take it */
}

/* Drops released slots from the front of the window. */
static void window_compact(hub_conn_t *c)
{
    while (c->len > 0 && SLOT(c, 0)->d == NULL) {
        c->head = (c->head + 1) % c->cap;
        c->len--;
        if (c->nsent > 0)
            c->nsent--;
    }
}

int window_release_slot(hub_t *hub, hub_conn_t *c, struct slot *s)
{
    delivery_t *d = s->d;
    s->d = NULL;
    c->bytes -= d->frame_len;
    return delivery_release(hub, c->user, d);
}


/* ---- writes and acks ---- */

char *hub_next_frame(hub_conn_t *c, size_t *len)
{
    /* Slots acknowledged before they were sent are skipped. */
    while (c->nsent < c->len) {
        struct slot *s = SLOT(c, c->nsent);
        if (s->d) {
            *len = s->d->frame_len;
            return s->d->frame;
        }
        c->nsent++;
    }
    return NULL;
}

const double hub_latency_bounds[HUB_LATENCY_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                        0.1,   0.25,   0.5,   1,    2.5,   10};

/* A live notification reached a tab: how long since Kafka took it. */
static void observe_e2e(hub_t *hub, const delivery_t *d)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double s = ((double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6 - (double)d->kafka_ms) / 1000;
    if (s < 0)
        s = 0; /* the producer's clock ahead of ours */
    int b = 0;
    while (b < HUB_LATENCY_BUCKETS && s > hub_latency_bounds[b])
        b++;
    hub->e2e[b]++;
    hub->e2e_count++;
    hub->e2e_sum_s += s;
}

void hub_e2e_latency(const hub_t *hub, struct hub_latency *out)
{
    unsigned long acc = 0;
    for (int b = 0; b < HUB_LATENCY_BUCKETS; b++)
        out->le[b] = acc += hub->e2e[b];
    out->count = hub->e2e_count;
    out->sum_s = hub->e2e_sum_s;
}

void hub_frame_sent(hub_t *hub, hub_conn_t *c, int64_t now_ms)
{
    if (c->nsent >= c->len)
        return;
    delivery_t *d = SLOT(c, c->nsent)->d;
    if (d && d->kafka_ms)
        observe_e2e(hub, d);
    if (d && !d->delivered) {
        d->delivered = 1;
        delivery_event(hub, c->user, d, EVENT_DELIVERED);
    }
    SLOT(c, c->nsent)->sent_at = now_ms;
    c->nsent++;
    if (c->nsent < c->len)
        hub->ops.want_write(hub->ops.ctx, c->transport);
}

void delivery_ack(hub_t *hub, user_t *u, delivery_t *d)
{
    if (d->acked)
        return;
    d->acked = 1;
    delivery_event(hub, u, d, EVENT_ACKED);
    if (d->source == FROM_KAFKA)
        hub->ops.offset_done(hub->ops.ctx, d->partition, d->offset);
    else if (d->source == FROM_STORE)
        hub->ops.remove(hub->ops.ctx, u->id, d->id);
    else
        stream_acked(hub, d);
}

int window_ack(hub_t *hub, hub_conn_t *c, const char *id)
{
    user_t *u = c->user;
    delivery_t *d = NULL;

    HASH_FIND_STR(u->inflight, id, d);
    if (!d)
        return -1;
    /* Acks come mostly in order, so the slot is near the front. */
    struct slot *s = NULL;
    for (size_t i = 0; i < c->len; i++) {
        if (SLOT(c, i)->d == d) {
            s = SLOT(c, i);
            break;
        }
    }
    if (!s)
        return -1; /* another connection's, already released here */

    delivery_ack(hub, u, d);
    /* The others first: c's slot, found already, keeps d alive meanwhile. */
    window_release_acked(hub, u, d, c);
    window_release_slot(hub, c, s);
    window_compact(c);
    return 0;
}

void window_release_acked(hub_t *hub, user_t *u, delivery_t *d, const hub_conn_t *by)
{
    d->holders++; /* d outlives the loop, whoever lets go last */
    for (hub_conn_t *c = u->conns; c; c = c->next) {
        if (c == by)
            continue; /* its slot is the caller's to release */
        for (size_t i = 0; i < c->len; i++) {
            struct slot *s = SLOT(c, i);
            if (s->d != d)
                continue;
            int written = i < c->nsent;
            window_release_slot(hub, c, s);
            window_compact(c);
            if (written && hub->ops.acked)
                hub->ops.acked(hub->ops.ctx, c->transport, d->id);
            break;
        }
    }
    delivery_release(hub, u, d);
}

size_t window_expire(hub_t *hub, hub_conn_t *c, int64_t now_ms)
{
    size_t released = 0, personal = 0;
    for (size_t i = 0; i < c->nsent; i++) {
        struct slot *s = SLOT(c, i);
        if (!s->d)
            continue;
        if (now_ms - s->sent_at < hub->lim.ack_timeout_ms)
            break; /* sent in order: the rest are younger */
        personal += s->d->source != FROM_STREAM; /* a stream's own replay reads it again */
        window_release_slot(hub, c, s);
        released++;
    }
    if (released) {
        log_debug("user %s: %zu notifications unacknowledged after %lld ms, released",
                  c->user->id, released, (long long)hub->lim.ack_timeout_ms);
        window_compact(c);
    }
    return personal;
}
