/* Who holds which user among the gateways on one topic: the map every
 * node keeps from the compacted <topic>.presence, without I/O
 * (cluster_kafka.c reads and writes the topic). docs/adr/0001.
 *
 * Presence records, key and value:
 *   "n NODE"         "up INCARNATION" every second while NODE runs, "down
 *                    INCARNATION" when it stops cleanly: a heartbeat
 *   "u NODE USER"    NODE's incarnation while NODE holds a tab of USER; a
 *                    tombstone (no value) once it holds none
 * A node is live while its last heartbeat says up and is less than live_ms
 * older than the newest heartbeat read (the records' log-append times: the
 * broker's one clock; an outage, in which none is read, kills no one).
 * Loop thread only. */
#ifndef CONSUMER_CLUSTER_H
#define CONSUMER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct cluster cluster_t;

cluster_t *cluster_new(const char *self, int64_t live_ms);
void cluster_free(cluster_t *c);

/* The presence key of node's heartbeat, or of node holding user, into
 * buf (NUL-ended); its length, or 0 when it does not fit. */
size_t cluster_node_key(char *buf, size_t size, const char *node);
size_t cluster_user_key(char *buf, size_t size, const char *node, const char *user);

/* One presence record (val NULL: a tombstone) written at ts_ms. 0, or -1
 * for a record that is none of the above (ignored). */
int cluster_apply(cluster_t *c, const char *key, size_t klen, const char *val, size_t vlen,
                  int64_t ts_ms);

/* Whether a presence key is a user's ("u NODE USER"): 1 with the node
 * and user copied out (NUL-ended, cut to their sizes), else 0. */
int cluster_record_user(const char *key, size_t klen, char *node, size_t nsize, char *user,
                        size_t usize);

/* The live nodes other than this one that hold user: up to max ids into
 * out (valid until the next cluster_apply); how many. */
size_t cluster_holders(const cluster_t *c, const char *user, const char **out, size_t max);
/* Every live node other than this one, likewise. */
size_t cluster_peers(const cluster_t *c, const char **out, size_t max);

const char *cluster_self(const cluster_t *c);
/* Users some node other than this one is recorded as holding. */
size_t cluster_remote_users(const cluster_t *c);

/* Nodes other than this one that beat within within_ms of the newest
 * heartbeat and are not live (killed ones first, then stopped ones): up
 * to max ids into out; how many. */
size_t cluster_dead(const cluster_t *c, int64_t within_ms, const char **out, size_t max);
/* Whether node's last heartbeat said up (a crash, if it is not live). */
int cluster_node_up(const cluster_t *c, const char *node);
/* Whether this node has the lowest id among the live ones: the one that
 * drains dead nodes' inboxes. */
int cluster_lowest(const cluster_t *c);

/* What the heartbeats said of node: 0 and *out filled, or -1 if none. */
struct cluster_node_state {
    const char *incarnation;
    int64_t last_ms; /* the last heartbeat's time */
    int up;
};
int cluster_node_state(const cluster_t *c, const char *node, struct cluster_node_state *out);

/* Calls fn with each user the presence says node holds. fn must not apply
 * records. */
void cluster_each_user_of(const cluster_t *c, const char *node,
                          void (*fn)(void *arg, const char *user), void *arg);

#endif
