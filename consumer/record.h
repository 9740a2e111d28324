/* One Kafka record into one notification for the hub: the pure part of
 * consuming, driven by unit tests without librdkafka. */
#ifndef CONSUMER_RECORD_H
#define CONSUMER_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "hub.h"

/* Parses the record's value into *out (id, user and frame owned by out,
 * freed with record_msg_clear; seq 0, partition and offset the record's).
 * A notification without an id gets one made from the record's place
 * (topic-partition-offset), so a redelivered copy keeps it; one without a
 * timestamp gets the record's (timestamp_ms < 0: now). Returns 0, or -1
 * with errstr saying why the record must be skipped. */
int notification_from_record(const void *payload, size_t len, const char *topic,
                             int32_t partition, int64_t offset, int64_t timestamp_ms,
                             hub_msg_t *out, char *errstr, size_t errstr_size);

void record_msg_clear(hub_msg_t *m);

#endif
