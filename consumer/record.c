/* One Kafka record into one notification for the hub, without librdkafka. */
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notification.h"
#include "xalloc.h"

int notification_from_record(const void *payload, size_t len, const char *topic,
                             int32_t partition, int64_t offset, int64_t timestamp_ms,
                             hub_msg_t *out, char *errstr, size_t size)
{
    notification_t n;

    memset(out, 0, sizeof(*out));
    if (!payload) {
        snprintf(errstr, size, "it has no value");
        return -1;
    }
    if (notification_parse(payload, len, NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n, errstr, size) !=
        0)
        return -1;
    if (n.filled & NOTIF_FILL_ID)
        snprintf(n.id, sizeof(n.id), "%s-%d-%lld", topic, (int)partition, (long long)offset);
    if ((n.filled & NOTIF_FILL_TIMESTAMP) && timestamp_ms >= 0)
        iso8601_from_ms(timestamp_ms, n.timestamp);

    size_t frame_len = 0;
    char *frame = notification_to_json(&n, 0, &frame_len);
    if (frame_len > NOTIF_JSON_MAX) {
        snprintf(errstr, size, "it is %zu bytes once normalised, over the limit of %d", frame_len,
                 NOTIF_JSON_MAX);
        free(frame);
        notification_clear(&n);
        return -1;
    }
    *out = (hub_msg_t){xstrdup(n.id), xstrdup(n.user), frame,          frame_len, 0, partition,
                       offset,         timestamp_ms > 0 ? timestamp_ms : 0};
    notification_clear(&n);
    return 0;
}

void record_msg_clear(hub_msg_t *m)
{
    free((char *)m->id);
    free((char *)m->user);
    free((char *)m->frame);
    memset(m, 0, sizeof(*m));
}
