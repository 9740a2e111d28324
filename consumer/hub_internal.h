/* The hub's insides, shared by hub.c (users, publish, connections,
 * replay from the store), hub_window.c (deliveries and each connection's
 * window: writes, acks, timeouts) and hub_stream.c (rooms and broadcast:
 * filters, cursors, their replay). Nothing outside the hub includes it. */
#ifndef CONSUMER_HUB_INTERNAL_H
#define CONSUMER_HUB_INTERNAL_H

#include <uthash.h>

#include "hub.h"
#include "notification.h"

/* Personal ones live (FROM_KAFKA) or from the store; room and broadcast
 * ones (FROM_STREAM) from a stream, live or replayed, acked into the
 * user's cursor rather than the store or Kafka. */
enum source { FROM_KAFKA, FROM_STORE, FROM_STREAM };

struct ustream;

/* One notification pushed to a user's connections. Shared by all of them;
 * freed when the last one releases it. */
typedef struct delivery {
    UT_hash_handle hh; /* in user->inflight, by id, once pushed */
    struct delivery *next_held; /* in user->held, before it is pushed */
    const char *id;    /* points into buf */
    enum source source;
    int32_t partition;
    int64_t offset;
    int64_t seq;
    int64_t kafka_ms; /* FROM_KAFKA: its record's timestamp, 0 if none */
    int64_t expires_ms; /* 0: never */
    struct ustream *stream; /* FROM_STREAM: the user's state of its stream */
    int holders; /* connections that have it queued or unacknowledged */
    int acked;
    int delivered; /* written to a tab once */
    char *frame; /* points into buf, after the headroom */
    size_t frame_len;
    char buf[];  /* id, NUL, headroom, frame, NUL */
} delivery_t;

struct slot {
    delivery_t *d; /* NULL once released out of order */
    int64_t sent_at;
};

/* What a connection takes of rooms and types; none set: broadcast only,
 * every type. */
struct conn_filter {
    char **rooms;
    size_t nrooms;
    char **types; /* NULL: every type */
    size_t ntypes;
};

struct hub_conn {
    struct user *user;
    void *transport;
    struct conn_filter *filter; /* NULL until hub_subscribe: idle connections pay 8 bytes */
    /* Window slots from head: [0, nsent) sent, [nsent, len) queued. The
     * ring starts empty and grows to the window, so an idle connection
     * costs a few bytes, not a window's worth. */
    struct slot *ring;
    size_t cap, head, len, nsent;
    size_t bytes;
    hub_conn_t *next;
};

/* One id acknowledged above a cursor's seq. */
struct acked_id {
    int64_t seq;
    char *id;
};

/* A user's reading of one stream (room or broadcast), while online. The
 * cursor is acked_seq: every notification up to it is read. It moves on
 * to the lower of handed_to (every seq up to it was handed to the user, or
 * skipped by the type filters) and the oldest one handed and not acked
 * yet (pending); acked keeps the ids read above it. */
typedef struct ustream {
    struct ustream *next;
    int loaded;           /* its cursor came from the store */
    int loading;          /* asked for it */
    int replaying;        /* reading from the store: live ones are skipped, the read gets them */
    int fetching;
    int dirty;            /* a live one was skipped while a read was out: read again */
    int stalled;          /* the last read found no room for what it read: wait for some */
    uint64_t gen, fetch_gen;
    int64_t acked_seq, handed_to, read_to;
    struct acked_id *acked;
    size_t nacked, acked_cap;
    int64_t *pending; /* handed and not acked, ascending */
    size_t npending, pending_cap;
    int unsaved; /* the cursor moved since it was last kept */
    uint64_t broadcasts_at_fetch; /* hub->broadcasts when the read out was asked */
    int64_t saved_ms;
    char name[];
} ustream_t;

typedef struct user {
    UT_hash_handle hh;
    hub_conn_t *conns;
    size_t nconns;
    delivery_t *inflight;
    /* Replay from the store: while replaying, live notifications for this
     * user are stored too, so that they come out after older stored ones. */
    int replaying;
    int fetching;   /* a fetch is outstanding */
    uint64_t fetch_gen; /* the replay that asked it */
    int dirty;      /* something was stored since the outstanding fetch was asked */
    uint64_t gen;   /* the current replay's; store answers for others are ignored */
    int64_t cursor; /* seq of the last stored notification replayed */
    /* Live notifications waiting, oldest first, for the replay to end or a
     * window to open: kept in memory, their offsets uncommitted, rather
     * than sent through the store and read back. */
    delivery_t *held, **held_tail;
    size_t nheld;
    ustream_t *streams; /* rooms and broadcast its connections take or took */
    int leaving; /* its last connection is closing: nothing more is read for it */
    char id[]; /* as long as it is: one per online user, most ids are short */
} user_t;

struct hub {
    struct hub_ops ops;
    /* End-to-end latency: writes per bucket (the last: over every bound). */
    unsigned long e2e[HUB_LATENCY_BUCKETS + 1];
    unsigned long e2e_count;
    double e2e_sum_s;
    struct hub_limits lim;
    user_t *users;
    size_t nconns;
    size_t ninflight;
    int64_t last_seq;
    /* Replays started, over all users: a replay's generation. Never
     * restarts, so a late answer to a closed connection's read can never
     * match a new connection's replay. */
    uint64_t replays;
    /* Broadcast: published since start, and whether a read from the start
     * (within retention) found none since the last one: then a connecting
     * user has no broadcast to read, and its cursor is not even asked. */
    uint64_t broadcasts;
    int no_broadcast;
};

#define SLOT(c, i) (&(c)->ring[((c)->head + (i)) % (c)->cap])

/* hub_stream.c */

/* d (FROM_STREAM) was acknowledged: into its stream's cursor. */
void stream_acked(hub_t *hub, delivery_t *d);
/* d (FROM_STREAM) was let go by every connection without an ack while u
 * is online: the stream is read again from the cursor. */
void stream_released(hub_t *hub, user_t *u, delivery_t *d);
/* Whether connection c takes a notification of stream (NULL: personal,
 * always) of type. */
int conn_takes(const hub_conn_t *c, const ustream_t *stream, const char *type);
/* Keeps the cursors that moved: those saved over a second ago, or all
 * (the user goes offline). */
void streams_save(hub_t *hub, user_t *u, int64_t now_ms, int all);
/* Asks for the next reads of u's streams that replay and have room. */
void streams_pump(hub_t *hub, user_t *u);
/* Frees u's streams and c's filter. */
void streams_free(user_t *u);
void conn_filter_free(hub_conn_t *c);

/* hub_window.c */

/* What d costs the memory budget. */
size_t delivery_cost(const delivery_t *d);
void delivery_as_msg(const delivery_t *d, const user_t *u, hub_msg_t *m);
/* Tells ops.event of d, when there is one. */
void delivery_event(hub_t *hub, const user_t *u, const delivery_t *d, enum event_kind kind);

/* A delivery of m, with its frame marked replayed when it comes from the
 * store; NULL when a stored frame is not a JSON object. */
delivery_t *delivery_new(hub_t *hub, const hub_msg_t *m, enum source source);
/* Frames c's window can still take (of frame_len bytes). */
size_t conn_room(const hub_t *hub, const hub_conn_t *c, size_t frame_len);
/* Frames the roomiest connection of u can still take (0: every window is
 * full). Each connection has its own window: one tab that stopped reading
 * or acknowledging holds back only itself. */
size_t window_room(const hub_t *hub, const user_t *u, size_t frame_len);
/* Queues d on every connection of u (that takes d's stream, of type). */
void window_push(hub_t *hub, user_t *u, delivery_t *d);
void window_push_typed(hub_t *hub, user_t *u, delivery_t *d, const char *type);
/* c lets go of s. Returns 1 when that left a personal notification with
 * no holder and unacknowledged (in the store now, or still there). */
int window_release_slot(hub_t *hub, hub_conn_t *c, struct slot *s);
/* d is acknowledged (by a tab or over HTTP): its offset completes, or its
 * stored copy is removed; once. Slots holding it stay until released
 * (window_release_acked). */
void delivery_ack(hub_t *hub, user_t *u, delivery_t *d);
/* d was acknowledged (delivery_ack): every connection of u but by (the
 * one that acked, which releases its own slot after; or NULL) lets go of
 * it, and those it was written to are told through ops.acked. */
void window_release_acked(hub_t *hub, user_t *u, delivery_t *d, const hub_conn_t *by);
/* c acknowledged id: completes it (offset done or removal from the store)
 * and frees its slot in every connection of the user. 0, or -1 when c
 * holds no such notification. */
int window_ack(hub_t *hub, hub_conn_t *c, const char *id);
/* Releases c's frames unacknowledged for longer than the ack timeout;
 * returns how many were personal (those are read again from the store). */
size_t window_expire(hub_t *hub, hub_conn_t *c, int64_t now_ms);

#endif
