/* What clients send, one JSON object per WebSocket message:
 *   {"type":"ack","id":"<id>"}          acknowledges a notification; from the
 *       original design's clients "messageId" or "contentId" in place of
 *       "id" (other fields such as "userId" are ignored: a connection can
 *       only acknowledge its own notifications);
 *   {"type":"auth","token":"<JWT>"}     the first message, when the token is
 *       not in the URL or an Authorization header;
 *   {"type":"refresh","token":"<JWT>"}  a newer token for the same user,
 *       before the current one expires;
 *   {"type":"send","toUser":"<user>" | "toRoom":"<room>","message":"…",
 *    "data":<any>?,"ref":"<id>"?}
 *       a notification to publish (client_send.h decides who may);
 *   {"type":"subscribe","rooms":[...],"types":[...]?}
 *       the rooms this connection takes (replacing what it took), and of
 *       rooms and broadcast only these types (absent: every type). */
#ifndef CONSUMER_CLIENT_MSG_H
#define CONSUMER_CLIENT_MSG_H

#include <stddef.h>

#include "notification.h"

#define CLIENT_MSG_MAX 4096 /* bytes in one client message */

enum client_msg_type {
    CLIENT_MSG_INVALID = -1, /* not a JSON object, or a known type without what it needs */
    CLIENT_MSG_OTHER = 0,    /* a JSON object of another type: ignored */
    CLIENT_MSG_ACK,
    CLIENT_MSG_AUTH,
    CLIENT_MSG_REFRESH,
    CLIENT_MSG_SEND, /* answered, never closes: body NULL and errstr say what is wrong */
    CLIENT_MSG_SUBSCRIBE, /* invalid: rooms NULL and errstr say what is wrong */
};

struct client_msg {
    char id[NOTIF_ID_MAX + 1]; /* ack */
    char token[CLIENT_MSG_MAX]; /* auth, refresh */
    /* send: the client's reference, echoed in the answer ("" when none),
     * and the notification it asks for as JSON notification_parse takes
     * ({"userId"|"room", "message", "data"?}), malloc'd; NULL when the
     * send is invalid. The caller frees it. */
    char ref[NOTIF_ID_MAX + 1];
    char *body;
    int to_room; /* send: "toRoom" rather than "toUser" (its name in rooms_buf) */
    /* subscribe: comma-separated (names have no comma); types NULL: every
     * type. Point into buffers of m. */
    const char *rooms, *types;
    char rooms_buf[CLIENT_MSG_MAX], types_buf[CLIENT_MSG_MAX];
};

/* Parses one client message into m; on CLIENT_MSG_INVALID errstr says why. */
enum client_msg_type client_msg_parse(const char *frame, size_t len, struct client_msg *m,
                                      char *errstr, size_t errstr_size);

#endif
