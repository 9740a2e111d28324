/* The online-user map and the delivery rules, with no sockets and no I/O.
 *
 * The hub decides, for every notification, whether it goes to the user's
 * live connections or to the offline store, replays what is stored when a
 * user connects (oldest first, in batches, before newer live ones), and
 * tracks each pushed notification until a connection acknowledges it. It
 * acts on the world only through struct hub_ops, so the WebSocket adapter,
 * the store worker and the Kafka consumer stay thin and the rules can be
 * unit-tested.
 *
 * Delivery rules:
 * - online user, nothing waiting in the store, room in some connection's
 *   window: pushed to each of the user's connections that has room (a tab
 *   that stopped reading or acknowledging holds back only itself);
 * - online user replaying, or every window full: held in memory, in
 *   order, and pushed once the replay ends and windows have room; past
 *   held_per_user, or while the memory budget is spent, what is held and
 *   what comes next is stored instead, and the user replays it;
 * - offline user: stored;
 * - acknowledged by any of the user's connections (or over HTTP): done (a
 *   live one's Kafka offset completes, a replayed one is removed from the
 *   store), and every other connection lets go of it at once, those it
 *   was written to told by ops->acked: an ack is the user's read mark;
 * - released unacknowledged by every connection it was pushed to (closed,
 *   ack timeout, shutdown): a live one is stored, a replayed one stays stored.
 *
 * Single-threaded: the event loop owns the hub. */
#ifndef CONSUMER_HUB_H
#define CONSUMER_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "budget.h"
#include "events.h"

typedef struct hub hub_t;
typedef struct hub_conn hub_conn_t;

/* A notification entering the hub or leaving it for the store. */
typedef struct hub_msg {
    const char *id;
    const char *user;
    const char *frame; /* the JSON sent to clients, without "replayed" */
    size_t frame_len;
    int64_t seq;       /* store order; 0 on publish: the hub assigns one */
    int32_t partition; /* the Kafka message it came from, or -1 */
    int64_t offset;
    int64_t kafka_ms;  /* that message's timestamp (wall-clock ms), 0 if none */
    int64_t expires_ms; /* wall-clock ms after which it is not delivered; 0: never */
    int64_t stored_ms;  /* a put's: when it was handed to the store (wall-clock ms) */
    /* A room or broadcast notification: its stream ("room:<name>" or
     * "broadcast"; seq is then the stream's) and type ("" none), and a
     * frame without "userId" (each receiver's is added). NULL: personal. */
    const char *stream;
    const char *type;
} hub_msg_t;

/* A user's cursor of one stream (store.h's room_cursor_t). */
typedef struct hub_cursor {
    const char *stream;
    int64_t acked_seq;
    const char *acked; /* ids above it, separated by spaces */
} hub_cursor_t;

struct hub_ops {
    void *ctx;
    /* The connection has a frame to send (see hub_next_frame). */
    void (*want_write)(void *ctx, void *transport);
    /* Keep m durably; a message with a partition completes its offset once
     * stored. m is only valid during the call. */
    void (*store)(void *ctx, const hub_msg_t *m);
    /* Ask for up to limit of the user's stored notifications with seq above
     * after_seq, oldest first; answer with hub_fetch_done(.., gen, ..). */
    void (*fetch)(void *ctx, const char *user, int64_t after_seq, size_t limit, uint64_t gen);
    /* A stored notification was acknowledged: delete it. */
    void (*remove)(void *ctx, const char *user, const char *id);
    /* A live notification was acknowledged: its offset is complete. */
    void (*offset_done)(void *ctx, int32_t partition, int64_t offset);
    /* The hub dropped the connection (hub_disconnect_all): close it. */
    void (*closed)(void *ctx, void *transport);
    /* m was first written to a tab (EVENT_DELIVERED), or acknowledged
     * (EVENT_ACKED): for receipts (events.h) and the history. m is only
     * valid during the call. May be NULL. */
    void (*event)(void *ctx, enum event_kind kind, const hub_msg_t *m);
    /* Another connection of the user acknowledged id, which was written to
     * this one: tell it (the read mark, docs/protocol.md). May be NULL. */
    void (*acked)(void *ctx, void *transport, const char *id);
    /* Rooms and broadcast. Ask for user's cursors of n streams; answer
     * with hub_cursors_loaded. */
    void (*cursor_load)(void *ctx, const char *user, const char *const *streams, size_t n);
    /* Ask for up to limit of stream's notifications above after_seq (within
     * retention), oldest first; answer with hub_stream_fetch_done. */
    void (*stream_fetch)(void *ctx, const char *user, const char *stream, int64_t after_seq,
                         size_t limit, uint64_t gen);
    /* Keep user's cursor of a stream (batched: at most one a second, and
     * one when the user goes offline). */
    void (*cursor_save)(void *ctx, const char *user, const hub_cursor_t *cursor);
    /* user's first connection opened (online 1), or its last closed (0).
     * May be NULL. */
    void (*presence)(void *ctx, const char *user, int online);
};

struct hub_limits {
    size_t window;          /* frames queued or unacknowledged per connection */
    size_t window_bytes;    /* bytes of those frames per connection */
    int64_t ack_timeout_ms; /* after this an unacknowledged frame is released */
    size_t conns_per_user;
    size_t fetch_batch;     /* most notifications asked of the store at once */
    size_t frame_headroom;  /* bytes kept free before each frame (LWS_PRE) */
    /* Live notifications held in memory for one user whose replay or
     * windows are not ready; past it they go through the store. */
    size_t held_per_user;
    /* Shared with the rest of the gateway (NULL: no limit): while it is
     * spent, what the hub would keep in memory goes to the store. */
    budget_t *budget;
};

hub_t *hub_new(const struct hub_ops *ops, const struct hub_limits *limits);
void hub_free(hub_t *hub);

/* A connection for user opened. Returns NULL when the user already has
 * conns_per_user connections. */
hub_conn_t *hub_connect(hub_t *hub, const char *user, void *transport);
/* The transport of user's oldest connection when the user is at the
 * per-user cap, else NULL: the one a newer authenticated connection
 * replaces. */
void *hub_oldest_transport(hub_t *hub, const char *user);
/* The connection closed: what it held unacknowledged is released. */
void hub_disconnect(hub_t *hub, hub_conn_t *conn);
/* The user a connection belongs to (its hub-owned id). */
const char *hub_conn_user(const hub_conn_t *conn);
/* Calls fn with the transport of each of user's connections (fn may
 * disconnect that connection); returns how many. */
size_t hub_each_user_transport(hub_t *hub, const char *user,
                               void (*fn)(void *arg, void *transport), void *arg);
/* Calls fn with every connection's transport. fn must not connect or
 * disconnect. */
void hub_each_transport(hub_t *hub, void (*fn)(void *arg, void *transport), void *arg);
/* Releases and drops every connection (shutdown), calling ops->closed. */
void hub_disconnect_all(hub_t *hub);

/* A live notification from Kafka. */
void hub_publish(hub_t *hub, const hub_msg_t *m);
/* The store's answer to ops->fetch; more: the user may have more stored
 * than was found (store_read_t's). */
void hub_fetch_done(hub_t *hub, const char *user, uint64_t gen, const hub_msg_t *msgs, size_t n,
                    int more);

/* Rooms and broadcast (hub_stream.c). A connection takes broadcast, the
 * rooms it subscribed to, and of those only the types listed (types NULL:
 * every type). Replaces what c took before; the user's cursors of streams
 * new to it are asked of the store, then what the user has not read is
 * replayed. */
void hub_subscribe(hub_t *hub, hub_conn_t *c, const char *const *rooms, size_t nrooms,
                   const char *const *types, size_t ntypes);
/* A room or broadcast notification, durable in the store now: to every
 * online user with a connection that takes it, unless the user's replay
 * of the stream will reach it. */
void hub_publish_stream(hub_t *hub, const hub_msg_t *m);
/* The store's answers to ops->cursor_load (the streams asked, and the
 * cursors found: a stream asked without one starts at its oldest
 * notification) and to ops->stream_fetch. */
void hub_cursors_loaded(hub_t *hub, const char *user, const char *const *asked, size_t nasked,
                        const hub_cursor_t *cursors, size_t n);
void hub_stream_fetch_done(hub_t *hub, const char *user, const char *stream, uint64_t gen,
                           const hub_msg_t *msgs, size_t n, int more);
/* The seq a stream notification arriving now gets (the same clock as
 * personal ones). */
int64_t hub_next_seq(hub_t *hub);

/* The next frame to send on conn, or NULL. Its frame_headroom bytes before
 * the returned pointer may be written (lws_write does). */
char *hub_next_frame(hub_conn_t *conn, size_t *len);
/* The frame hub_next_frame returned was written at now_ms. */
void hub_frame_sent(hub_t *hub, hub_conn_t *conn, int64_t now_ms);
/* The connection acknowledged id. Returns 0, or -1 when it holds no such
 * notification (unknown, another user's, or already released). */
int hub_ack(hub_t *hub, hub_conn_t *conn, const char *id);

/* Outside a connection (the inbox over HTTP): */
/* calls fn with each of user's notifications pending on this node (pushed
 * and unacknowledged, or held), with seq below before_seq; */
void hub_each_pending(hub_t *hub, const char *user, int64_t before_seq,
                      void (*fn)(void *arg, const hub_msg_t *m), void *arg);
/* acknowledges user's id if it is pending on this node, as a tab's ack
 * would (1), else 0 (the store may hold it); */
int hub_ack_user(hub_t *hub, const char *user, const char *id);
/* acknowledges every one of user's pending on this node with seq up to
 * through_seq; returns how many; */
size_t hub_ack_user_through(hub_t *hub, const char *user, int64_t through_seq);

/* Releases frames unacknowledged for longer than ack_timeout_ms. */
void hub_tick(hub_t *hub, int64_t now_ms);

/* From a live notification's Kafka timestamp to each write of it to a
 * tab, as a histogram (seconds): writes at or under each bound,
 * cumulative; for /metrics. */
#define HUB_LATENCY_BUCKETS 12
extern const double hub_latency_bounds[HUB_LATENCY_BUCKETS];
struct hub_latency {
    unsigned long le[HUB_LATENCY_BUCKETS];
    unsigned long count;
    double sum_s;
};
void hub_e2e_latency(const hub_t *hub, struct hub_latency *out);

size_t hub_user_count(const hub_t *hub);
size_t hub_conn_count(const hub_t *hub);
/* Notifications pushed or queued and not yet acknowledged or released. */
size_t hub_inflight_count(const hub_t *hub);
/* Whether the user has a connection here. */
int hub_user_online(const hub_t *hub, const char *user);
/* The store may hold more of user's notifications than the replay saw
 * (another node wrote them): read it again from the start, sending
 * nothing twice. Nothing if the user is not online. */
void hub_replay(hub_t *hub, const char *user);
/* Whether the user is online and draining the store before live delivery. */
int hub_user_replaying(const hub_t *hub, const char *user);

#endif
