/* Rooms and broadcast in the hub: which connections take which stream,
 * each online user's cursor of each stream it reads, live delivery of
 * stream notifications and the replay of what a user has not read
 * (hub.h has the API, hub_internal.h the state). A stream notification is
 * stored once, before it is published here, so a user who cannot take one
 * now (offline, replaying, windows full) reads it from the store later:
 * nothing is held for a stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub_internal.h"
#include "log.h"
#include "xalloc.h"

#define BROADCAST "broadcast"

/* ---- which connections take what ---- */

static int listed(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static int conn_in(const hub_conn_t *c, const char *stream)
{
    if (strcmp(stream, BROADCAST) == 0)
        return 1;
    return c->filter && strncmp(stream, "room:", 5) == 0 &&
           listed(c->filter->rooms, c->filter->nrooms, stream + 5);
}

int conn_takes(const hub_conn_t *c, const ustream_t *stream, const char *type)
{
    if (!stream)
        return 1; /* personal: every connection */
    if (!conn_in(c, stream->name))
        return 0;
    return !c->filter || !c->filter->types || !type ||
           listed(c->filter->types, c->filter->ntypes, type);
}

/* Whether some connection of u is in the stream; *takes: one takes type. */
static int user_in(const user_t *u, const ustream_t *st, const char *type, int *takes)
{
    int in = 0;
    *takes = 0;
    for (const hub_conn_t *c = u->conns; c; c = c->next) {
        if (conn_in(c, st->name)) {
            in = 1;
            *takes |= conn_takes(c, st, type);
        }
    }
    return in;
}

/* Frames of len bytes the roomiest connection that takes the stream (of
 * type; NULL: any type) can still take. */
static size_t stream_room(const hub_t *hub, const user_t *u, const ustream_t *st,
                          const char *type, size_t len)
{
    size_t max = 0;
    for (const hub_conn_t *c = u->conns; c; c = c->next) {
        size_t r = (type ? conn_takes(c, st, type) : conn_in(c, st->name)) ? conn_room(hub, c, len)
                                                                          : 0;
        if (r > max)
            max = r;
    }
    return max;
}

static char **copy_list(const char *const *src, size_t n)
{
    char **out = xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(src[i]);
    return out;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

void conn_filter_free(hub_conn_t *c)
{
    if (!c->filter)
        return;
    free_list(c->filter->rooms, c->filter->nrooms);
    free_list(c->filter->types, c->filter->ntypes);
    free(c->filter);
    c->filter = NULL;
}

/* ---- a user's streams and cursors ---- */

static ustream_t *find_stream(const user_t *u, const char *name)
{
    for (ustream_t *st = u->streams; st; st = st->next)
        if (strcmp(st->name, name) == 0)
            return st;
    return NULL;
}

static ustream_t *add_stream(user_t *u, const char *name)
{
    size_t len = strlen(name);
    ustream_t *st = xcalloc(1, sizeof(*st) + len + 1);
    memcpy(st->name, name, len + 1);
    st->next = u->streams;
    u->streams = st;
    return st;
}

static void free_stream(ustream_t *st)
{
    for (size_t i = 0; i < st->nacked; i++)
        free(st->acked[i].id);
    free(st->acked);
    free(st->pending);
    free(st);
}

static void drop_stream(user_t *u, ustream_t *st)
{
    for (ustream_t **at = &u->streams; *at; at = &(*at)->next) {
        if (*at == st) {
            *at = st->next;
            free_stream(st);
            return;
        }
    }
}

static int is_acked(const ustream_t *st, int64_t seq, const char *id)
{
    if (seq <= st->acked_seq)
        return 1;
    for (size_t i = 0; i < st->nacked; i++)
        if (st->acked[i].seq == seq && strcmp(st->acked[i].id, id) == 0)
            return 1;
    return 0;
}

static void pending_add(ustream_t *st, int64_t seq)
{
    size_t i = st->npending;
    while (i > 0 && st->pending[i - 1] >= seq) {
        if (st->pending[i - 1] == seq)
            return; /* handed again (replayed): once is enough */
        i--;
    }
    if (st->npending == st->pending_cap) {
        st->pending_cap = st->pending_cap ? st->pending_cap * 2 : 8;
        st->pending = xrealloc(st->pending, st->pending_cap * sizeof(*st->pending));
    }
    memmove(st->pending + i + 1, st->pending + i, (st->npending - i) * sizeof(*st->pending));
    st->pending[i] = seq;
    st->npending++;
}

static void pending_remove(ustream_t *st, int64_t seq)
{
    for (size_t i = 0; i < st->npending; i++) {
        if (st->pending[i] == seq) {
            memmove(st->pending + i, st->pending + i + 1,
                    (st->npending - i - 1) * sizeof(*st->pending));
            st->npending--;
            return;
        }
    }
}

static void acked_add(hub_t *hub, ustream_t *st, int64_t seq, const char *id)
{
    if (is_acked(st, seq, id))
        return;
    /* Bounded: past twice the window the oldest is forgotten, and may
     * come again after a reconnect (a repeat, never a loss). */
    size_t max = 2 * hub->lim.window;
    if (st->nacked >= max) {
        size_t oldest = 0;
        for (size_t i = 1; i < st->nacked; i++)
            if (st->acked[i].seq < st->acked[oldest].seq)
                oldest = i;
        free(st->acked[oldest].id);
        st->acked[oldest] = st->acked[--st->nacked];
    }
    if (st->nacked == st->acked_cap) {
        st->acked_cap = st->acked_cap ? st->acked_cap * 2 : 8;
        st->acked = xrealloc(st->acked, st->acked_cap * sizeof(*st->acked));
    }
    st->acked[st->nacked++] = (struct acked_id){seq, xstrdup(id)};
}

/* Moves the cursor as far as everything handed is acknowledged. */
static void advance(ustream_t *st)
{
    int64_t to = st->handed_to;
    if (st->npending && st->pending[0] - 1 < to)
        to = st->pending[0] - 1;
    if (to <= st->acked_seq)
        return;
    st->acked_seq = to;
    st->unsaved = 1;
    size_t kept = 0;
    for (size_t i = 0; i < st->nacked; i++) {
        if (st->acked[i].seq <= to)
            free(st->acked[i].id);
        else
            st->acked[kept++] = st->acked[i];
    }
    st->nacked = kept;
}

/* Read: acknowledged, or one no connection of the user takes (type
 * filters): kept above the cursor until advance() passes it. */
static void mark_read(hub_t *hub, ustream_t *st, int64_t seq, const char *id)
{
    acked_add(hub, st, seq, id);
    st->unsaved = 1;
}

/* u's own frame of m: "userId" after the id (the codec's frames begin
 * {"id":"<id>", and ids need no escaping), with "replayed" when read from
 * the store. */
static delivery_t *stream_delivery(hub_t *hub, user_t *u, ustream_t *st, const hub_msg_t *m,
                                   int replayed)
{
    size_t idlen = strlen(m->id), ulen = strlen(u->id);
    size_t head = sizeof("{\"id\":\"") - 1 + idlen + 1;
    if (m->frame_len <= head || memcmp(m->frame, "{\"id\":\"", 7) != 0 ||
        memcmp(m->frame + 7, m->id, idlen) != 0 || m->frame[head - 1] != '"')
        return NULL;
    size_t len = m->frame_len + sizeof(",\"userId\":\"\"") - 1 + ulen;
    char *frame = xmalloc(len + 1);
    char *p = frame;
    memcpy(p, m->frame, head);
    p += head;
    p += sprintf(p, ",\"userId\":\"%s\"", u->id);
    memcpy(p, m->frame + head, m->frame_len - head);
    frame[len] = '\0';
    hub_msg_t own = *m;
    own.frame = frame;
    own.frame_len = len;
    delivery_t *d = delivery_new(hub, &own, replayed ? FROM_STORE : FROM_KAFKA);
    free(frame);
    if (d) {
        d->source = FROM_STREAM;
        d->stream = st;
        d->partition = -1;
    }
    return d;
}

enum hand_result {
    HANDED,      /* to the connections that take it, or read (filtered, on its way already) */
    NO_ROOM,     /* none of them has room: read from the store later */
    NOT_IN,      /* no connection of the user is in the stream now */
};

/* Hands m to the connections of u that take it. */
static enum hand_result hand(hub_t *hub, user_t *u, ustream_t *st, const hub_msg_t *m,
                             int replayed)
{
    delivery_t *dup = NULL;
    int takes;
    if (!user_in(u, st, m->type, &takes))
        return NOT_IN;
    HASH_FIND_STR(u->inflight, m->id, dup);
    if (dup)
        return HANDED; /* on its way already */
    if (!takes) {
        mark_read(hub, st, m->seq, m->id);
        return HANDED;
    }
    if (budget_full(hub->lim.budget))
        return NO_ROOM;
    delivery_t *d = stream_delivery(hub, u, st, m, replayed);
    if (!d) {
        log_warn("stream %s: notification %s is not a frame of this gateway; skipped", st->name,
                 m->id);
        mark_read(hub, st, m->seq, m->id);
        return HANDED;
    }
    /* Room for this frame (its user's own, maybe replayed) in a tab that
     * takes its type: otherwise no tab gets it, and it is read later. */
    if (stream_room(hub, u, st, m->type, d->frame_len) == 0) {
        free(d);
        return NO_ROOM;
    }
    pending_add(st, m->seq);
    window_push_typed(hub, u, d, m->type);
    return HANDED;
}

/* ---- replay of what a user has not read ---- */

static void stream_pump(hub_t *hub, user_t *u, ustream_t *st)
{
    if (!st->loaded || !st->replaying || st->fetching || st->stalled ||
        budget_full(hub->lim.budget))
        return;
    size_t limit = stream_room(hub, u, st, NULL, 0);
    if (limit == 0)
        return; /* an ack makes room */
    if (limit > hub->lim.fetch_batch)
        limit = hub->lim.fetch_batch;
    st->fetching = 1;
    st->fetch_gen = st->gen;
    st->dirty = 0;
    st->broadcasts_at_fetch = hub->broadcasts;
    hub->ops.stream_fetch(hub->ops.ctx, u->id, st->name, st->read_to, limit, st->gen);
}

static void replay(hub_t *hub, user_t *u, ustream_t *st, int64_t from)
{
    st->gen = ++hub->replays;
    st->replaying = 1;
    st->stalled = 0;
    st->read_to = from;
    st->dirty = 1;
    stream_pump(hub, u, st);
}

void hub_stream_fetch_done(hub_t *hub, const char *user, const char *stream, uint64_t gen,
                           const hub_msg_t *msgs, size_t n, int more)
{
    user_t *u = NULL;
    HASH_FIND_STR(hub->users, user, u);
    ustream_t *st = u ? find_stream(u, stream) : NULL;
    if (!st || !st->fetching || gen != st->fetch_gen)
        return;
    st->fetching = 0;
    if (gen != st->gen) {
        stream_pump(hub, u, st); /* restarted meanwhile: from its new start */
        return;
    }
    /* Nothing stored for broadcast at all, and none published since the
     * read was asked: later users need not read it. */
    if (!n && !more && st->read_to == 0 && strcmp(st->name, BROADCAST) == 0 &&
        st->broadcasts_at_fetch == hub->broadcasts)
        hub->no_broadcast = 1;
    int stalled = 0;
    for (size_t i = 0; i < n && !stalled; i++) {
        const hub_msg_t *m = &msgs[i];
        if (m->seq <= st->read_to)
            continue;
        enum hand_result r = is_acked(st, m->seq, m->id) ? HANDED : hand(hub, u, st, m, 1);
        if (r == NOT_IN) {
            st->replaying = 0; /* no tab reads it now: the cursor stays, for the next */
            return;
        }
        stalled = r == NO_ROOM; /* read on from here once an ack makes room */
        if (!stalled) {
            st->read_to = m->seq;
            if (m->seq > st->handed_to)
                st->handed_to = m->seq;
        }
    }
    if (!more && !st->dirty && !stalled)
        st->replaying = 0; /* read to the end: live ones come as they are stored */
    /* No room for what it read (a window's bytes, or the only tabs taking
     * its type are full): read again after an ack or a tick, not at once. */
    st->stalled = stalled;
    advance(st);
    stream_pump(hub, u, st);
    /* No broadcast stored: this user's state of it would only hold a
     * cursor at the start; the first broadcast reads it again. Idle tabs
     * cost no stream state then. */
    if (hub->no_broadcast && !st->replaying && !st->fetching && !st->npending && !st->nacked &&
        !st->unsaved && strcmp(st->name, BROADCAST) == 0)
        drop_stream(u, st);
}

void streams_pump(hub_t *hub, user_t *u)
{
    for (ustream_t *st = u->streams; st; st = st->next) {
        st->stalled = 0;
        stream_pump(hub, u, st);
    }
}

void hub_cursors_loaded(hub_t *hub, const char *user, const char *const *asked, size_t nasked,
                        const hub_cursor_t *cursors, size_t n)
{
    user_t *u = NULL;
    HASH_FIND_STR(hub->users, user, u);
    if (!u)
        return;
    for (size_t i = 0; i < n; i++) {
        ustream_t *st = find_stream(u, cursors[i].stream);
        if (!st || !st->loading)
            continue;
        st->acked_seq = st->handed_to = cursors[i].acked_seq;
        /* What was read above it: "<seq>/<id>" words ('/' is in no id). */
        const char *p = cursors[i].acked;
        while (p && *p) {
            const char *end = strchr(p, ' ');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            char word[32 + NOTIF_ID_MAX];
            long long seq;
            int at = 0;
            if (len < sizeof(word)) {
                memcpy(word, p, len);
                word[len] = '\0';
                if (sscanf(word, "%lld/%n", &seq, &at) == 1 && at > 0 && word[at] &&
                    notification_id_valid(word + at, strlen(word + at)))
                    acked_add(hub, st, (int64_t)seq, word + at);
            }
            p = end ? end + 1 : NULL;
        }
    }
    /* Each stream this answer was asked for: loaded now, with or without a
     * cursor (none: from its oldest notification within retention). Those
     * of another load still out wait for theirs. */
    for (size_t i = 0; i < nasked; i++) {
        ustream_t *st = find_stream(u, asked[i]);
        if (!st || !st->loading)
            continue;
        st->loading = 0;
        st->loaded = 1;
        replay(hub, u, st, st->acked_seq);
    }
}

/* ---- subscribing ---- */

static void load_new_streams(hub_t *hub, user_t *u)
{
    const char *names[64];
    size_t n = 0;
    for (ustream_t *st = u->streams; st; st = st->next) {
        if (!st->loaded && !st->loading) {
            st->loading = 1;
            names[n++] = st->name;
        }
        if (n == 64 || (!st->next && n)) { /* in loads of 64 */
            hub->ops.cursor_load(hub->ops.ctx, u->id, names, n);
            n = 0;
        }
    }
}

void hub_subscribe(hub_t *hub, hub_conn_t *c, const char *const *rooms, size_t nrooms,
                   const char *const *types, size_t ntypes)
{
    user_t *u = c->user;
    conn_filter_free(c);
    if (nrooms || types) { /* broadcast only, every type: no filter at all */
        c->filter = xcalloc(1, sizeof(*c->filter));
        c->filter->rooms = copy_list(rooms, nrooms);
        c->filter->nrooms = nrooms;
        if (types) {
            c->filter->types = copy_list(types, ntypes);
            c->filter->ntypes = ntypes;
        }
    }
    if (!hub->ops.cursor_load)
        return;
    if (!find_stream(u, BROADCAST) && !hub->no_broadcast)
        add_stream(u, BROADCAST); /* else read when the first one comes */
    for (size_t i = 0; i < nrooms; i++) {
        char name[NOTIF_ROOM_MAX + 8];
        snprintf(name, sizeof(name), "room:%s", rooms[i]);
        ustream_t *st = find_stream(u, name);
        if (!st)
            add_stream(u, name);
        else if (st->loaded && !st->replaying)
            replay(hub, u, st, st->acked_seq); /* this connection reads it from the cursor */
    }
    load_new_streams(hub, u);
}

/* ---- live ---- */

void hub_publish_stream(hub_t *hub, const hub_msg_t *m)
{
    int broadcast = strcmp(m->stream, BROADCAST) == 0;
    if (broadcast) {
        hub->broadcasts++;
        hub->no_broadcast = 0;
    }
    user_t *u, *tmp;
    HASH_ITER(hh, hub->users, u, tmp) {
        ustream_t *st = find_stream(u, m->stream);
        if (!st) {
            /* Never read (broadcast, for a connection that never
             * subscribed): read from the cursor, if a tab takes the stream;
             * the read reaches this one. */
            int in = broadcast;
            for (const hub_conn_t *c = u->conns; c && !in; c = c->next)
                in = conn_in(c, m->stream);
            if (!in || !hub->ops.cursor_load)
                continue;
            st = add_stream(u, m->stream);
            load_new_streams(hub, u);
        }
        if (!st->loaded || st->replaying) {
            st->dirty = 1; /* the read under way, or to come, reaches it */
            continue;
        }
        if (m->seq <= st->handed_to)
            continue;
        enum hand_result r = hand(hub, u, st, m, 0);
        if (r == NOT_IN)
            continue; /* the cursor stays: read when a tab is in the room again */
        if (r == NO_ROOM) {
            replay(hub, u, st, st->handed_to); /* windows full: read from the store */
            continue;
        }
        st->handed_to = m->seq;
        st->read_to = m->seq;
        advance(st);
    }
}

/* ---- acks, releases, saving ---- */

void stream_acked(hub_t *hub, delivery_t *d)
{
    ustream_t *st = d->stream;
    pending_remove(st, d->seq);
    mark_read(hub, st, d->seq, d->id);
    advance(st);
}

void stream_released(hub_t *hub, user_t *u, delivery_t *d)
{
    ustream_t *st = d->stream;
    pending_remove(st, d->seq);
    /* It stays above the cursor: read again from there, for the tabs left. */
    if (st->handed_to >= d->seq)
        st->handed_to = d->seq - 1;
    if (!u->leaving && st->loaded)
        replay(hub, u, st, st->acked_seq);
}

static void save(hub_t *hub, user_t *u, ustream_t *st, int64_t now_ms)
{
    char acked[16384];
    size_t used = 0;
    acked[0] = '\0';
    for (size_t i = 0; i < st->nacked; i++) {
        char word[32 + NOTIF_ID_MAX];
        int len = snprintf(word, sizeof(word), "%s%lld/%s", used ? " " : "",
                           (long long)st->acked[i].seq, st->acked[i].id);
        if (used + (size_t)len + 1 > sizeof(acked))
            break; /* the rest may come again: a repeat, never a loss */
        memcpy(acked + used, word, (size_t)len + 1);
        used += (size_t)len;
    }
    hub_cursor_t c = {st->name, st->acked_seq, acked};
    hub->ops.cursor_save(hub->ops.ctx, u->id, &c);
    st->unsaved = 0;
    st->saved_ms = now_ms;
}

void streams_save(hub_t *hub, user_t *u, int64_t now_ms, int all)
{
    if (!hub->ops.cursor_save)
        return;
    for (ustream_t *st = u->streams, *next; st; st = next) {
        next = st->next;
        if (st->loaded && st->unsaved && (all || now_ms - st->saved_ms >= 1000))
            save(hub, u, st, now_ms);
    }
}

void streams_free(user_t *u)
{
    while (u->streams) {
        ustream_t *st = u->streams;
        u->streams = st->next;
        free_stream(st);
    }
}
