/* A node's Kafka side of running with others (docs/adr/0001): a thread
 * that makes the presence topic and this node's inbox exist, reads
 * presence from its start, refuses a node id another live gateway holds,
 * writes this node's heartbeat every second, and a producer for presence
 * and for what this node sends other nodes' inboxes.
 *
 * The loop takes what happened (presence records, sends acknowledged or
 * failed) with cluster_link_take; the thread wakes it with notify. */
#ifndef CONSUMER_CLUSTER_LINK_H
#define CONSUMER_CLUSTER_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "handoff.h"
#include "hub.h"
#include "inbox.h"

typedef struct cluster_link cluster_link_t;

struct cluster_link_conf {
    const char *brokers;
    const char *const *props; /* the consumer's -X "key=value", NULL-ended */
    const char *topic;        /* the notifications topic: names the others */
    const char *group;
    const char *node_id;
    int embedded; /* the in-process broker made the topics (and has no Admin API) */
};

/* The names of the topics, for whoever creates them (embedded mode). */
void cluster_presence_topic(char *buf, size_t size, const char *topic);
void cluster_inbox_topic(char *buf, size_t size, const char *topic, const char *node);

cluster_link_t *cluster_link_start(const struct cluster_link_conf *conf,
                                   void (*notify)(void *arg), void *arg, char *errstr,
                                   size_t size);

/* Set once presence was read to its end at start and the id is this
 * node's: until then the node consumes nothing. Any thread. */
int cluster_link_ready(cluster_link_t *cl);
/* Why the node cannot go on (its id is in use, a topic refused), or NULL. */
const char *cluster_link_failed(cluster_link_t *cl);

/* What the thread hands the loop. */
enum cluster_event_kind {
    CLUSTER_PRESENCE, /* a presence record: key, value (NULL: tombstone), ts_ms */
    CLUSTER_SENT,     /* a send was acknowledged: its partition and offset */
    CLUSTER_FAILED,   /* a send failed for good: its partition, offset and the record */
    CLUSTER_PRESENCE_LOST, /* a presence record of this node Kafka refused: its key */
};
struct cluster_event {
    enum cluster_event_kind kind;
    char *key, *value; /* owned */
    size_t klen, vlen;
    int64_t ts_ms;
    enum inbox_kind inbox_kind;
    int32_t partition; /* of the notifications record the send completes, or -1 */
    int64_t offset;
};
typedef struct cluster_batch {
    handoff_msg_t link;
    size_t n;
    struct cluster_event *ev;
} cluster_batch_t;

/* The oldest batch, or NULL. Loop thread. */
cluster_batch_t *cluster_link_take(cluster_link_t *cl);
void cluster_batch_free(cluster_batch_t *b);

/* Loop thread. Presence: this node holds user (holds 1) or no longer (0). */
void cluster_link_presence(cluster_link_t *cl, const char *user, int holds);
/* A dead node's presence of user is cleared (a tombstone). */
void cluster_link_clear(cluster_link_t *cl, const char *node, const char *user);
/* Sends m to node's inbox as kind, keyed by key; a CLUSTER_SENT (or
 * FAILED) with partition and offset follows. 0, or -1 when librdkafka's
 * queue refused it now (no event follows). */
int cluster_link_send(cluster_link_t *cl, const char *node, enum inbox_kind kind,
                      const char *key, const hub_msg_t *m, int32_t partition, int64_t offset);

/* Waits, up to timeout_ms, until everything queued is written (any thread;
 * it serves no delivery report itself). */
void cluster_link_drain(cluster_link_t *cl, int timeout_ms);

/* Stops: tombstones were sent by the loop; a "down" heartbeat, then what
 * is queued goes out until deadline_ms (monotonic). Frees everything. */
void cluster_link_close(cluster_link_t *cl, int64_t deadline_ms);

#endif
