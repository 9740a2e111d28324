#include "hub.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "log.h"
#include "notification.h"
#include "xalloc.h"

enum source { FROM_KAFKA, FROM_STORE };

/* One notification pushed to a user's connections. Shared by all of them;
 * freed when the last one releases it. */
typedef struct delivery {
    UT_hash_handle hh; /* in user->inflight, by id */
    const char *id;    /* points into buf */
    enum source source;
    int32_t partition;
    int64_t offset;
    int64_t seq;
    int holders; /* connections that have it queued or unacknowledged */
    int acked;
    char *frame; /* points into buf, after the headroom */
    size_t frame_len;
    char buf[];  /* id, NUL, headroom, frame, NUL */
} delivery_t;

struct slot {
    delivery_t *d; /* NULL once released out of order */
    int64_t sent_at;
};

struct hub_conn {
    struct user *user;
    void *transport;
    /* Window slots from head: [0, nsent) sent, [nsent, len) queued. The
     * ring starts empty and grows to the window, so an idle connection
     * costs a few bytes, not a window's worth. */
    struct slot *ring;
    size_t cap, head, len, nsent;
    size_t bytes;
    hub_conn_t *next;
};

typedef struct user {
    UT_hash_handle hh;
    char id[NOTIF_USER_MAX + 1];
    hub_conn_t *conns;
    size_t nconns;
    delivery_t *inflight;
    /* Replay from the store: while replaying, live notifications for this
     * user are stored too, so that they come out after older stored ones. */
    int replaying;
    int fetching;   /* a fetch is outstanding */
    int dirty;      /* something was stored since the outstanding fetch was asked */
    uint64_t gen;   /* bumped when a connection joins: replay restarts */
    int64_t cursor; /* seq of the last stored notification replayed */
} user_t;

struct hub {
    struct hub_ops ops;
    struct hub_limits lim;
    user_t *users;
    size_t nconns;
    size_t ninflight;
    int64_t last_seq;
};

hub_t *hub_new(const struct hub_ops *ops, const struct hub_limits *limits)
{
    hub_t *hub = xcalloc(1, sizeof(*hub));
    hub->ops = *ops;
    hub->lim = *limits;
    if (hub->lim.window == 0)
        hub->lim.window = 1;
    if (hub->lim.fetch_batch == 0)
        hub->lim.fetch_batch = 1;
    return hub;
}

/* Store order: wall-clock microseconds, strictly increasing in a process,
 * so that notifications keep the order they arrived in. */
static int64_t next_seq(hub_t *hub)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    hub->last_seq = us > hub->last_seq ? us : hub->last_seq + 1;
    return hub->last_seq;
}

static user_t *find_user(const hub_t *hub, const char *id)
{
    user_t *u = NULL;
    HASH_FIND_STR(hub->users, id, u);
    return u;
}

#define SLOT(c, i) (&(c)->ring[((c)->head + (i)) % (c)->cap])

/* ---- deliveries ---- */

static delivery_t *delivery_new(hub_t *hub, const hub_msg_t *m, enum source source)
{
    static const char replayed[] = ",\"replayed\":true}";
    size_t idlen = strlen(m->id);
    size_t frame_len = m->frame_len;

    /* A replayed frame says so: the stored JSON with "replayed":true added. */
    if (source == FROM_STORE) {
        if (frame_len < 2 || m->frame[frame_len - 1] != '}')
            return NULL;
        frame_len += sizeof(replayed) - 2;
    }
    delivery_t *d = xmalloc(sizeof(*d) + idlen + 1 + hub->lim.frame_headroom + frame_len + 1);
    memset(d, 0, sizeof(*d));
    memcpy(d->buf, m->id, idlen + 1);
    d->id = d->buf;
    d->frame = d->buf + idlen + 1 + hub->lim.frame_headroom;
    if (source == FROM_STORE) {
        memcpy(d->frame, m->frame, m->frame_len - 1);
        memcpy(d->frame + m->frame_len - 1, replayed, sizeof(replayed));
    } else {
        memcpy(d->frame, m->frame, frame_len);
        d->frame[frame_len] = '\0';
    }
    d->frame_len = frame_len;
    d->source = source;
    d->partition = m->partition;
    d->offset = m->offset;
    d->seq = m->seq;
    return d;
}

static void delivery_as_msg(const delivery_t *d, const user_t *u, hub_msg_t *m)
{
    m->id = d->id;
    m->user = u->id;
    m->frame = d->frame;
    m->frame_len = d->frame_len;
    m->seq = d->seq;
    m->partition = d->partition;
    m->offset = d->offset;
}

/* One connection lets go of d. The last one to do so without an ack sends
 * a live notification to the store, so it is delivered on a later connect. */
static void delivery_release(hub_t *hub, user_t *u, delivery_t *d)
{
    if (--d->holders > 0)
        return;
    if (!d->acked && d->source == FROM_KAFKA) {
        hub_msg_t m;
        delivery_as_msg(d, u, &m);
        hub->ops.store(hub->ops.ctx, &m);
    }
    HASH_DEL(u->inflight, d);
    hub->ninflight--;
    free(d);
}

/* ---- connection windows ---- */

static size_t room(const hub_t *hub, const hub_conn_t *c, size_t frame_len)
{
    if (c->len >= hub->lim.window || c->bytes + frame_len > hub->lim.window_bytes)
        return 0;
    return hub->lim.window - c->len;
}

static size_t user_room(const hub_t *hub, const user_t *u, size_t frame_len)
{
    size_t min = (size_t)-1;
    for (const hub_conn_t *c = u->conns; c; c = c->next) {
        size_t r = room(hub, c, frame_len);
        if (r < min)
            min = r;
    }
    return u->conns ? min : 0;
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

static void push(hub_t *hub, user_t *u, delivery_t *d)
{
    HASH_ADD_KEYPTR(hh, u->inflight, d->id, strlen(d->id), d);
    hub->ninflight++;
    d->holders++; /* held by the push itself until every connection has it */
    for (hub_conn_t *c = u->conns; c; c = c->next) {
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
static void compact(hub_conn_t *c)
{
    while (c->len > 0 && SLOT(c, 0)->d == NULL) {
        c->head = (c->head + 1) % c->cap;
        c->len--;
        if (c->nsent > 0)
            c->nsent--;
    }
}

static void release_slot(hub_t *hub, hub_conn_t *c, struct slot *s)
{
    delivery_t *d = s->d;
    s->d = NULL;
    c->bytes -= d->frame_len;
    delivery_release(hub, c->user, d);
}

/* ---- replay ---- */

static void pump(hub_t *hub, user_t *u)
{
    if (!u->replaying || u->fetching)
        return;
    size_t limit = user_room(hub, u, 0);
    if (limit == 0)
        return; /* an ack will make room */
    if (limit > hub->lim.fetch_batch)
        limit = hub->lim.fetch_batch;
    u->fetching = 1;
    u->dirty = 0;
    hub->ops.fetch(hub->ops.ctx, u->id, u->cursor, limit, u->gen);
}

void hub_replayed(hub_t *hub, const char *user, uint64_t gen, const hub_msg_t *msgs, size_t n,
                  size_t limit)
{
    user_t *u = find_user(hub, user);
    if (!u)
        return; /* gone offline: what was fetched stays stored */
    u->fetching = 0;

    size_t i;
    for (i = 0; i < n; i++) {
        const hub_msg_t *m = &msgs[i];
        delivery_t *d = NULL;
        HASH_FIND_STR(u->inflight, m->id, d);
        if (!d) {
            if (user_room(hub, u, m->frame_len) == 0)
                break; /* fetched again once acks make room */
            d = delivery_new(hub, m, FROM_STORE);
            if (!d)
                log_error("stored notification %s of user %s is not a JSON object: skipped, "
                          "left in the store", m->id, user);
            else
                push(hub, u, d);
        }
        if (gen == u->gen)
            u->cursor = m->seq;
    }
    /* Caught up: the store had no more than was asked, and nothing was
     * stored for this user since the question was asked. */
    if (gen == u->gen && i == n && n < limit && !u->dirty)
        u->replaying = 0;
    pump(hub, u);
}

/* Replays everything stored for u, oldest first, before live delivery
 * resumes; what is in flight to u is not sent twice. */
static void replay_from_start(hub_t *hub, user_t *u)
{
    u->gen++;
    u->cursor = 0;
    u->replaying = 1;
    u->dirty = 1;
    pump(hub, u);
}

static void store_for(hub_t *hub, user_t *u, const hub_msg_t *m)
{
    hub->ops.store(hub->ops.ctx, m);
    if (!u)
        return;
    u->dirty = 1;
    u->replaying = 1;
    pump(hub, u);
}

/* ---- publish ---- */

void hub_publish(hub_t *hub, const hub_msg_t *in)
{
    hub_msg_t m = *in;
    user_t *u = find_user(hub, m.user);
    delivery_t *d = NULL;

    m.seq = next_seq(hub);
    if (!u) {
        store_for(hub, NULL, &m);
        return;
    }
    HASH_FIND_STR(u->inflight, m.id, d);
    /* A second copy of an id still in flight (Kafka redelivery) is stored:
     * the store is idempotent by id, and the copy's offset completes. */
    if (d || u->replaying || user_room(hub, u, m.frame_len) == 0) {
        store_for(hub, u, &m);
        return;
    }
    push(hub, u, delivery_new(hub, &m, FROM_KAFKA));
}

/* ---- connections ---- */

hub_conn_t *hub_connect(hub_t *hub, const char *user, void *transport)
{
    user_t *u = find_user(hub, user);
    size_t ulen = strlen(user);

    if (ulen > NOTIF_USER_MAX)
        return NULL;
    if (u && u->nconns >= hub->lim.conns_per_user)
        return NULL;
    hub_conn_t *c = xcalloc(1, sizeof(*c));
    if (!u) {
        u = xcalloc(1, sizeof(*u));
        memcpy(u->id, user, ulen + 1);
        HASH_ADD_STR(hub->users, id, u);
    }
    c->user = u;
    c->transport = transport;
    c->next = u->conns;
    u->conns = c;
    u->nconns++;
    hub->nconns++;

    /* Whatever is stored for the user goes out first, to every connection. */
    replay_from_start(hub, u);
    return c;
}

void hub_disconnect(hub_t *hub, hub_conn_t *c)
{
    user_t *u = c->user;

    for (size_t i = 0; i < c->len; i++) {
        struct slot *s = SLOT(c, i);
        if (s->d)
            release_slot(hub, c, s);
    }
    for (hub_conn_t **p = &u->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    u->nconns--;
    hub->nconns--;
    free(c->ring);
    free(c);

    if (u->nconns == 0) {
        /* Every delivery was held by this user's connections only. */
        HASH_DEL(hub->users, u);
        free(u);
    } else {
        pump(hub, u);
    }
}

void hub_disconnect_all(hub_t *hub)
{
    user_t *u, *tmp;
    HASH_ITER(hh, hub->users, u, tmp) {
        while (u->conns) {
            hub_conn_t *c = u->conns;
            void *transport = c->transport;
            int last = u->nconns == 1;
            hub_disconnect(hub, c);
            hub->ops.closed(hub->ops.ctx, transport);
            if (last)
                break; /* u was freed */
        }
    }
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

void hub_frame_sent(hub_t *hub, hub_conn_t *c, int64_t now_ms)
{
    if (c->nsent >= c->len)
        return;
    SLOT(c, c->nsent)->sent_at = now_ms;
    c->nsent++;
    if (c->nsent < c->len)
        hub->ops.want_write(hub->ops.ctx, c->transport);
}

int hub_ack(hub_t *hub, hub_conn_t *c, const char *id)
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

    if (!d->acked) {
        d->acked = 1;
        if (d->source == FROM_KAFKA)
            hub->ops.offset_done(hub->ops.ctx, d->partition, d->offset);
        else
            hub->ops.remove(hub->ops.ctx, u->id, d->id);
    }
    release_slot(hub, c, s);
    compact(c);
    pump(hub, u);
    return 0;
}

void hub_tick(hub_t *hub, int64_t now_ms)
{
    user_t *u, *tmp;
    HASH_ITER(hh, hub->users, u, tmp) {
        int timed_out = 0;
        for (hub_conn_t *c = u->conns; c; c = c->next) {
            size_t released = 0;
            for (size_t i = 0; i < c->nsent; i++) {
                struct slot *s = SLOT(c, i);
                if (!s->d)
                    continue;
                if (now_ms - s->sent_at < hub->lim.ack_timeout_ms)
                    break; /* sent in order: the rest are younger */
                release_slot(hub, c, s);
                released++;
            }
            if (released) {
                log_debug("user %s: %zu notifications unacknowledged after %lld ms, released",
                          u->id, released, (long long)hub->lim.ack_timeout_ms);
                compact(c);
                timed_out = 1;
            }
        }
        /* What timed out is in the store now: send it again, in order,
         * ahead of newer notifications. */
        if (timed_out)
            replay_from_start(hub, u);
        else
            pump(hub, u);
    }
}

size_t hub_user_count(const hub_t *hub)
{
    return HASH_COUNT(hub->users);
}

size_t hub_conn_count(const hub_t *hub)
{
    return hub->nconns;
}

size_t hub_inflight_count(const hub_t *hub)
{
    return hub->ninflight;
}

int hub_user_replaying(const hub_t *hub, const char *user)
{
    const user_t *u = find_user(hub, user);
    return u ? u->replaying : 0;
}

void hub_free(hub_t *hub)
{
    if (!hub)
        return;
    user_t *u, *tmp;
    HASH_ITER(hh, hub->users, u, tmp) {
        while (u->conns) {
            hub_conn_t *c = u->conns;
            u->conns = c->next;
            free(c->ring);
            free(c);
        }
        delivery_t *d, *dtmp;
        HASH_ITER(hh, u->inflight, d, dtmp) {
            HASH_DEL(u->inflight, d);
            free(d);
        }
        HASH_DEL(hub->users, u);
        free(u);
    }
    free(hub);
}
