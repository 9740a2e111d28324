/* The online-user map, publishing and replay from the store (hub.h has the
 * rules); each connection's window is hub_window.c's. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub_internal.h"
#include "log.h"
#include "xalloc.h"

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
 * so that notifications keep the order they arrived in. Invariant: one
 * process writes a user's notifications. Several gateways sharing users
 * would interleave two clocks; seq must then come from elsewhere. */
static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t next_seq(hub_t *hub)
{
    int64_t us = wall_us();
    hub->last_seq = us > hub->last_seq ? us : hub->last_seq + 1;
    return hub->last_seq;
}

int64_t hub_next_seq(hub_t *hub)
{
    return next_seq(hub);
}

static user_t *find_user(const hub_t *hub, const char *id)
{
    user_t *u = NULL;
    HASH_FIND_STR(hub->users, id, u);
    return u;
}


/* ---- held live notifications ---- */

static void store_for(hub_t *hub, user_t *u, const hub_msg_t *m);

static void held_push(hub_t *hub, user_t *u)
{
    while (!u->replaying && u->held && window_room(hub, u, u->held->frame_len) > 0) {
        delivery_t *d = u->held, *dup = NULL;
        u->held = d->next_held;
        if (!u->held)
            u->held_tail = &u->held;
        u->nheld--;
        budget_give(hub->lim.budget, BUDGET_HELD, delivery_cost(d));
        HASH_FIND_STR(u->inflight, d->id, dup);
        if (!dup) {
            window_push(hub, u, d);
            continue;
        }
        /* A second copy (Kafka redelivery) of one in flight: stored, as
         * hub_publish does, and the rest waits for the replay. */
        hub_msg_t m;
        delivery_as_msg(d, u, &m);
        store_for(hub, u, &m);
        free(d);
    }
}

/* Sends what u holds to the store, oldest first. */
static void held_store(hub_t *hub, user_t *u)
{
    while (u->held) {
        delivery_t *d = u->held;
        hub_msg_t m;
        u->held = d->next_held;
        delivery_as_msg(d, u, &m);
        hub->ops.store(hub->ops.ctx, &m);
        budget_give(hub->lim.budget, BUDGET_HELD, delivery_cost(d));
        free(d);
    }
    u->held_tail = &u->held;
    u->nheld = 0;
}

/* ---- replay ---- */

/* Moves u along: while it replays, asks the store for the next batch its
 * windows can take; after, pushes what it holds as windows open. */
static void replay_pump(hub_t *hub, user_t *u)
{
    if (!u->replaying) {
        held_push(hub, u);
        return;
    }
    if (u->fetching || budget_full(hub->lim.budget))
        return; /* an answer, an ack or the next tick moves it on */
    size_t limit = window_room(hub, u, 0);
    if (limit == 0)
        return; /* an ack will make room */
    if (limit > hub->lim.fetch_batch)
        limit = hub->lim.fetch_batch;
    u->fetching = 1;
    u->fetch_gen = u->gen;
    u->dirty = 0;
    hub->ops.fetch(hub->ops.ctx, u->id, u->cursor, limit, u->gen);
}

void hub_fetch_done(hub_t *hub, const char *user, uint64_t gen, const hub_msg_t *msgs, size_t n,
                    int more)
{
    user_t *u = find_user(hub, user);
    /* Gone offline, or the answer to a read asked before the user went
     * offline and came back: what was fetched stays stored, and the
     * current read is still out. */
    if (!u || !u->fetching || gen != u->fetch_gen)
        return;
    u->fetching = 0;
    if (gen != u->gen) {
        /* The replay restarted while this read was out (a tab joined, a
         * tab closed, an ack timed out): ask again from its start. */
        replay_pump(hub, u);
        return;
    }

    size_t i;
    for (i = 0; i < n; i++) {
        const hub_msg_t *m = &msgs[i];
        delivery_t *d = NULL;
        HASH_FIND_STR(u->inflight, m->id, d);
        if (!d) {
            if (window_room(hub, u, m->frame_len) == 0)
                break; /* fetched again once acks make room */
            d = delivery_new(hub, m, FROM_STORE);
            if (!d)
                log_error("stored notification %s of user %s is not a JSON object: skipped, "
                          "left in the store", m->id, user);
            else
                window_push(hub, u, d);
        }
        u->cursor = m->seq;
    }
    /* Caught up: the store had no more than was found, and nothing was
     * stored for this user since the question was asked. */
    if (i == n && !more && !u->dirty)
        u->replaying = 0;
    replay_pump(hub, u);
}

/* Replays everything stored for u, oldest first, before live delivery
 * resumes; what is in flight to u is not sent twice. */
static void replay_from_start(hub_t *hub, user_t *u)
{
    u->gen = ++hub->replays;
    u->cursor = 0;
    u->replaying = 1;
    u->dirty = 1;
    replay_pump(hub, u);
}

static void store_for(hub_t *hub, user_t *u, const hub_msg_t *m)
{
    hub->ops.store(hub->ops.ctx, m);
    if (!u)
        return;
    /* The replay reads above its cursor: one stored below it (from another
     * partition: a "userIds" copy) is read by starting again. */
    if (m->seq <= u->cursor) {
        replay_from_start(hub, u);
        return;
    }
    u->dirty = 1;
    u->replaying = 1;
    replay_pump(hub, u);
}

/* A live notification for u that cannot be pushed now: held, unless u
 * holds its share already or memory is spent; then what u holds and m go
 * to the store, in order, and u replays them. */
static void hold(hub_t *hub, user_t *u, const hub_msg_t *m)
{
    if (u->nheld >= hub->lim.held_per_user || budget_full(hub->lim.budget)) {
        held_store(hub, u);
        store_for(hub, u, m);
        return;
    }
    delivery_t *d = delivery_new(hub, m, FROM_KAFKA);
    d->next_held = NULL;
    *u->held_tail = d;
    u->held_tail = &d->next_held;
    u->nheld++;
    budget_take(hub->lim.budget, BUDGET_HELD, delivery_cost(d));
}

/* ---- publish ---- */

void hub_publish(hub_t *hub, const hub_msg_t *in)
{
    hub_msg_t m = *in;
    user_t *u = find_user(hub, m.user);
    delivery_t *d = NULL;

    if (!m.seq) /* one not from Kafka (tests, a record past record_seq's range) */
        m.seq = next_seq(hub);
    if (!u) {
        store_for(hub, NULL, &m);
        return;
    }
    HASH_FIND_STR(u->inflight, m.id, d);
    /* A second copy of an id still in flight (Kafka redelivery) is stored:
     * the store is idempotent by id, and the copy's offset completes. */
    if (d) {
        store_for(hub, u, &m);
        return;
    }
    if (u->replaying || u->held || window_room(hub, u, m.frame_len) == 0 ||
        budget_full(hub->lim.budget)) {
        hold(hub, u, &m);
        return;
    }
    window_push(hub, u, delivery_new(hub, &m, FROM_KAFKA));
}

/* ---- connections ---- */

const char *hub_conn_user(const hub_conn_t *conn)
{
    return conn->user->id;
}

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
        u = xcalloc(1, sizeof(*u) + ulen + 1);
        memcpy(u->id, user, ulen + 1);
        u->held_tail = &u->held;
        HASH_ADD_STR(hub->users, id, u);
        if (hub->ops.presence)
            hub->ops.presence(hub->ops.ctx, u->id, 1);
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

void *hub_oldest_transport(hub_t *hub, const char *user)
{
    user_t *u = find_user(hub, user);
    if (!u || u->nconns < hub->lim.conns_per_user)
        return NULL;
    hub_conn_t *c = u->conns;
    while (c->next) /* newest first */
        c = c->next;
    return c->transport;
}

void hub_disconnect(hub_t *hub, hub_conn_t *c)
{
    user_t *u = c->user;

    int released = 0; /* something unacknowledged that no other tab holds */
    u->leaving = u->nconns == 1;
    for (size_t i = 0; i < c->len; i++) {
        struct slot *s = SLOT(c, i);
        if (s->d)
            released |= window_release_slot(hub, c, s);
    }
    for (hub_conn_t **p = &u->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    u->nconns--;
    hub->nconns--;
    conn_filter_free(c);
    free(c->ring);
    free(c);

    if (u->nconns == 0) {
        /* Every delivery was held by this user's connections only. */
        held_store(hub, u);
        streams_save(hub, u, 0, 1);
        streams_free(u);
        if (hub->ops.presence)
            hub->ops.presence(hub->ops.ctx, u->id, 0);
        HASH_DEL(hub->users, u);
        free(u);
    } else if (released) {
        /* It is in the store now: the other tabs replay it, in order. */
        replay_from_start(hub, u);
    } else {
        replay_pump(hub, u);
    }
}

size_t hub_each_user_transport(hub_t *hub, const char *user,
                               void (*fn)(void *arg, void *transport), void *arg)
{
    void *transports[64];
    size_t n = 0, total = 0;
    /* Collected first: fn may disconnect, which frees the connection and,
     * with the last one, the user. */
    do {
        user_t *u = find_user(hub, user);
        n = 0;
        for (hub_conn_t *c = u ? u->conns : NULL; c && n < 64; c = c->next)
            transports[n++] = c->transport;
        for (size_t i = 0; i < n; i++)
            fn(arg, transports[i]);
        total += n;
    } while (n == 64);
    return total;
}

void hub_each_transport(hub_t *hub, void (*fn)(void *arg, void *transport), void *arg)
{
    user_t *u, *tmp;
    HASH_ITER(hh, hub->users, u, tmp) {
        for (hub_conn_t *c = u->conns; c; c = c->next)
            fn(arg, c->transport);
    }
}

int hub_user_online(const hub_t *hub, const char *user)
{
    return find_user(hub, user) != NULL;
}

void hub_replay(hub_t *hub, const char *user)
{
    user_t *u = find_user(hub, user);
    if (u)
        replay_from_start(hub, u);
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

int hub_ack(hub_t *hub, hub_conn_t *c, const char *id)
{
    if (window_ack(hub, c, id) != 0)
        return -1;
    replay_pump(hub, c->user); /* the ack made room */
    streams_pump(hub, c->user);
    return 0;
}

/* ---- outside a connection: the inbox ---- */

void hub_each_pending(hub_t *hub, const char *user, int64_t before_seq,
                      void (*fn)(void *arg, const hub_msg_t *m), void *arg)
{
    user_t *u = find_user(hub, user);
    hub_msg_t m;
    for (delivery_t *d = u ? u->inflight : NULL; d; d = d->hh.next) {
        if (!d->acked && d->seq < before_seq) {
            delivery_as_msg(d, u, &m);
            fn(arg, &m);
        }
    }
    for (delivery_t *d = u ? u->held : NULL; d; d = d->next_held) {
        if (d->seq < before_seq) {
            delivery_as_msg(d, u, &m);
            fn(arg, &m);
        }
    }
}

/* A held notification acknowledged before it was pushed: never pushed. */
static void held_ack(hub_t *hub, user_t *u, delivery_t **at)
{
    delivery_t *d = *at;
    *at = d->next_held;
    if (u->held_tail == &d->next_held)
        u->held_tail = at;
    u->nheld--;
    budget_give(hub->lim.budget, BUDGET_HELD, delivery_cost(d));
    hub->ops.offset_done(hub->ops.ctx, d->partition, d->offset);
    delivery_event(hub, u, d, EVENT_ACKED);
    free(d);
}

int hub_ack_user(hub_t *hub, const char *user, const char *id)
{
    user_t *u = find_user(hub, user);
    delivery_t *d = NULL;
    if (!u)
        return 0;
    HASH_FIND_STR(u->inflight, id, d);
    if (d) {
        if (d->acked)
            return 0;
        delivery_ack(hub, u, d);
        window_release_acked(hub, u, d, NULL);
        replay_pump(hub, u); /* room made */
        streams_pump(hub, u);
        return 1;
    }
    for (delivery_t **at = &u->held; *at; at = &(*at)->next_held) {
        if (strcmp((*at)->id, id) == 0) {
            held_ack(hub, u, at);
            return 1;
        }
    }
    return 0;
}

size_t hub_ack_user_through(hub_t *hub, const char *user, int64_t through_seq)
{
    user_t *u = find_user(hub, user);
    size_t n = 0;
    delivery_t *d, *next;
    if (!u)
        return 0;
    HASH_ITER(hh, u->inflight, d, next) { /* d may be freed: it is done everywhere */
        if (!d->acked && d->seq <= through_seq) {
            delivery_ack(hub, u, d);
            window_release_acked(hub, u, d, NULL);
            n++;
        }
    }
    for (delivery_t **at = &u->held; *at;) {
        if ((*at)->seq <= through_seq) {
            held_ack(hub, u, at);
            n++;
        } else {
            at = &(*at)->next_held;
        }
    }
    if (n) {
        replay_pump(hub, u); /* room made */
        streams_pump(hub, u);
    }
    return n;
}

void hub_tick(hub_t *hub, int64_t now_ms)
{
    user_t *u, *tmp;
    HASH_ITER(hh, hub->users, u, tmp) {
        size_t timed_out = 0;
        for (hub_conn_t *c = u->conns; c; c = c->next)
            timed_out += window_expire(hub, c, now_ms);
        /* What timed out is in the store now: send it again, in order,
         * ahead of newer notifications. */
        if (timed_out)
            replay_from_start(hub, u);
        else
            replay_pump(hub, u);
        streams_pump(hub, u);
        streams_save(hub, u, now_ms, 0);
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
            conn_filter_free(c);
            free(c->ring);
            free(c);
        }
        streams_free(u);
        delivery_t *d, *dtmp;
        HASH_ITER(hh, u->inflight, d, dtmp) {
            HASH_DEL(u->inflight, d);
            free(d);
        }
        for (d = u->held; d; d = dtmp) {
            dtmp = d->next_held;
            free(d);
        }
        HASH_DEL(hub->users, u);
        free(u);
    }
    free(hub);
}
