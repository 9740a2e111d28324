/* Offset completion per partition, for at-least-once consumption.
 *
 * Messages are added in the order they are consumed and marked done when
 * they are acknowledged by a client, durably stored, or skipped as invalid.
 * A partition's committable offset is one past the longest run of done
 * messages from the oldest one still tracked: an offset is never committed
 * while an earlier message in its partition is unfinished.
 *
 * Not thread-safe: the owner serialises calls. */
#ifndef CONSUMER_TRACKER_H
#define CONSUMER_TRACKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tracker tracker_t;

/* A Kafka message's place: completions travel between threads as these. */
struct part_offset {
    int32_t partition;
    int64_t offset;
};

tracker_t *tracker_new(void);
void tracker_free(tracker_t *t);

/* Registers a consumed message. An offset not above the last one added for
 * the partition means the partition was rewound (a rebalance or a seek): its
 * tracking restarts from that offset. Returns 0, or -1 for a negative
 * partition (not a message of the topic). */
int tracker_add(tracker_t *t, int32_t partition, int64_t offset);

/* A message added and not yet done is done only after copies completions
 * (one record fanned out to several users); 0 marks it done now. Returns
 * what tracker_done would. */
int64_t tracker_expect(tracker_t *t, int32_t partition, int64_t offset, uint32_t copies);

/* A message added and not yet done needs more completions than it did. */
void tracker_expect_more(tracker_t *t, int32_t partition, int64_t offset, uint32_t more);

/* Marks a message (or one of its copies) done. Returns the partition's new
 * committable offset when it advanced, or -1 (not tracked, already done,
 * copies or earlier ones pending). */
int64_t tracker_done(tracker_t *t, int32_t partition, int64_t offset);

/* Stops tracking a partition that was revoked; later completions for it
 * are ignored until it is added to again. */
void tracker_forget(tracker_t *t, int32_t partition);

/* Messages added and not yet committable, over all partitions. */
size_t tracker_pending(const tracker_t *t);

#endif
