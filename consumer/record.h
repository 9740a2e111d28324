/* One Kafka record into the notifications the hub delivers: the pure part
 * of consuming, driven by unit tests without librdkafka. */
#ifndef CONSUMER_RECORD_H
#define CONSUMER_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "hub.h"

/* A consumed record. */
struct record {
    const void *payload;
    size_t len;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* the record's, < 0 when it has none */
};

struct record_rules {
    size_t max_user_ids; /* most users a "userIds" notification may name */
    int64_t now_ms;      /* wall clock: what expired before it is not delivered */
};

/* Where the messages go: a growable array the caller owns. */
struct record_msgs {
    hub_msg_t *msgs;
    size_t n, cap;
};

enum {
    RECORD_SKIP = -1,    /* not a notification: errstr says why (dead-letter it) */
    RECORD_EXPIRED = 0,  /* valid, but expired before it was consumed: nothing to deliver */
};

/* Parses the record's value and appends one message per receiving user to
 * out: one for "userId", one personal copy per user for "userIds" (same
 * id; each message's id, user and frame owned by it, freed with
 * record_msg_clear; seq record_seq's; partition and offset the record's, so the
 * record completes once every copy has). A notification without an id
 * gets one made from the record's place (topic-partition-offset), so a
 * redelivered copy keeps it; one without a timestamp gets the record's
 * (none: now). Returns how many it appended (> 0), RECORD_EXPIRED, or
 * RECORD_SKIP with errstr. */
int record_decode(const struct record *rec, const struct record_rules *rules,
                  struct record_msgs *out, char *errstr, size_t errstr_size);

void record_msg_clear(hub_msg_t *m);

/* The store order of the record at (partition, offset): 2^62 + partition ×
 * 2^46 + offset, the same on every gateway, above any seq of schema 5 and
 * before (one process's clock in µs, below 2^51), and growing with the
 * offset within a partition (one user's, one room's). 0 for a place past
 * its range (partition 65,536 and over, offset 2^46 and over): the hub's
 * clock then orders it. */
int64_t record_seq(int32_t partition, int64_t offset);

#endif
