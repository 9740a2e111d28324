/* One Kafka record into the hub's notifications, without librdkafka. */
#include "record.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errstr.h"
#include "notification.h"
#include "xalloc.h"

static hub_msg_t *append(struct record_msgs *out)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 16;
        out->msgs = xrealloc(out->msgs, out->cap * sizeof(*out->msgs));
    }
    return &out->msgs[out->n++];
}

/* n's frame for its user, appended; -1 when too big. */
static int add_copy(const notification_t *n, const struct record *rec, struct record_msgs *out,
                    char *errstr, size_t size)
{
    size_t frame_len = 0;
    char *frame = notification_to_json(n, 0, &frame_len);
    if (frame_len > NOTIF_JSON_MAX) {
        free(frame);
        return errstr_set(errstr, size, "it is %zu bytes once normalised, over the limit of %d",
                          frame_len, NOTIF_JSON_MAX);
    }
    *append(out) = (hub_msg_t){
        .id = xstrdup(n->id),
        .user = xstrdup(n->user),
        .frame = frame,
        .frame_len = frame_len,
        .seq = record_seq(rec->partition, rec->offset),
        .partition = rec->partition,
        .offset = rec->offset,
        .kafka_ms = rec->timestamp_ms > 0 ? rec->timestamp_ms : 0,
        .expires_ms = n->expires_ms,
    };
    return 0;
}

static int decode(notification_t *n, const struct record *rec, const struct record_rules *rules,
                  struct record_msgs *out, char *errstr, size_t size)
{
    if (n->filled & NOTIF_FILL_ID)
        snprintf(n->id, sizeof(n->id), "%s-%d-%lld", rec->topic, (int)rec->partition,
                 (long long)rec->offset);
    if ((n->filled & NOTIF_FILL_TIMESTAMP) && rec->timestamp_ms >= 0 &&
        notification_set_time(n, rec->timestamp_ms) != 0)
        return errstr_set(errstr, size, "\"ttl\" runs past the year 9999");
    switch (n->audience) {
    case NOTIF_TO_USER:
        break;
    case NOTIF_TO_USERS:
        if (n->nuser_ids > rules->max_user_ids)
            return errstr_set(errstr, size,
                              "\"userIds\" names %zu users, more than --max-user-ids (%zu): "
                              "split it",
                              n->nuser_ids, rules->max_user_ids);
        break;
    case NOTIF_TO_ROOM:
    case NOTIF_TO_BROADCAST:
        break;
    }
    if (n->expires_ms && n->expires_ms <= rules->now_ms)
        return RECORD_EXPIRED;
    if (n->audience == NOTIF_TO_USER)
        return add_copy(n, rec, out, errstr, size) == 0 ? 1 : RECORD_SKIP;
    if (n->audience != NOTIF_TO_USERS) {
        /* Stored once for its stream; each receiver's userId is added on
         * delivery, so the frame has none. */
        if (add_copy(n, rec, out, errstr, size) != 0)
            return RECORD_SKIP;
        hub_msg_t *m = &out->msgs[out->n - 1];
        char stream[NOTIF_ROOM_MAX + 8];
        snprintf(stream, sizeof(stream), "%s%s", n->audience == NOTIF_TO_ROOM ? "room:" : "",
                 n->audience == NOTIF_TO_ROOM ? n->room : "broadcast");
        m->stream = xstrdup(stream);
        m->type = xstrdup(n->type);
        return 1;
    }

    size_t first = out->n;
    for (size_t i = 0; i < n->nuser_ids; i++) {
        snprintf(n->user, sizeof(n->user), "%s", n->user_ids[i]);
        /* One copy is a user's alone: its frame has no list of the others. */
        n->audience = NOTIF_TO_USER;
        int rc = add_copy(n, rec, out, errstr, size);
        n->audience = NOTIF_TO_USERS;
        if (rc != 0) {
            while (out->n > first)
                record_msg_clear(&out->msgs[--out->n]);
            return RECORD_SKIP;
        }
    }
    return (int)n->nuser_ids;
}

int record_decode(const struct record *rec, const struct record_rules *rules,
                  struct record_msgs *out, char *errstr, size_t size)
{
    notification_t n;

    if (!rec->payload)
        return errstr_set(errstr, size, "it has no value");
    if (notification_parse(rec->payload, rec->len, NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n,
                           errstr, size) != 0)
        return RECORD_SKIP;
    int rc = decode(&n, rec, rules, out, errstr, size);
    notification_clear(&n);
    return rc;
}

int64_t record_seq(int32_t partition, int64_t offset)
{
    if (partition < 0 || partition >= (1 << 16) || offset < 0 || offset >= (INT64_C(1) << 46))
        return 0;
    return (INT64_C(1) << 62) + ((int64_t)partition << 46) + offset;
}

void record_msg_clear(hub_msg_t *m)
{
    free((char *)m->id);
    free((char *)m->user);
    free((char *)m->frame);
    free((char *)m->stream);
    free((char *)m->type);
    memset(m, 0, sizeof(*m));
}
