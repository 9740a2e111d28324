/* Client frames: the acknowledgement a client sends for each notification.
 *   {"type":"ack","id":"<id>"}
 * and, from the original design's clients, "messageId" or "contentId" in
 * place of "id" (other fields such as "userId" are ignored: a connection
 * can only acknowledge its own notifications). */
#ifndef CONSUMER_ACK_H
#define CONSUMER_ACK_H

#include <stddef.h>

#include "notification.h"

#define ACK_FRAME_MAX 4096 /* bytes in one client frame */

enum ack_result {
    ACK_INVALID = -1, /* not a JSON object, or an ack without a usable id */
    ACK_OTHER = 0,    /* a JSON object of another type: ignored */
    ACK_OK = 1,
};

/* Parses one client frame; on ACK_OK the acknowledged id is in id. On
 * ACK_INVALID errstr says why. */
enum ack_result ack_parse(const char *frame, size_t len, char id[NOTIF_ID_MAX + 1], char *errstr,
                          size_t errstr_size);

#endif
