/* The notification codec: parses a notification from the JSON that
 * applications publish and renders the JSON frame that clients receive.
 *
 * Accepted input (the original design's forms included):
 *   {"id":"…", <audience>, "message":"…","timestamp":"ISO-8601" | epoch-ms,
 *    "type":"…"?, "data":<any JSON>?, "from":"…"?, "ttl":seconds? | "expiresAt":…?}
 * where the audience is exactly one of "userId" (or "user_id"), "userIds"
 * (an array), "room" or "broadcast": true. Other fields are ignored
 * (docs/protocol.md). */
#ifndef COMMON_NOTIFICATION_H
#define COMMON_NOTIFICATION_H

#include <stddef.h>
#include <stdint.h>

#include "timeutil.h"

#define NOTIF_ID_MAX 128       /* bytes in an id */
#define NOTIF_USER_MAX 128     /* bytes in a user id */
#define NOTIF_TYPE_MAX 64      /* bytes in a type */
#define NOTIF_JSON_MAX 65536   /* bytes in one notification's JSON, in and out */
#define NOTIF_ROOM_MAX 64      /* bytes in a room name */

/* Who a notification is for. */
enum notif_audience {
    NOTIF_TO_USER,      /* "userId" */
    NOTIF_TO_USERS,     /* "userIds": one personal copy each */
    NOTIF_TO_ROOM,      /* "room": the room's members */
    NOTIF_TO_BROADCAST, /* "broadcast": true: everyone */
};

typedef struct notification {
    char id[NOTIF_ID_MAX + 1];
    enum notif_audience audience;
    /* NOTIF_TO_USER: the user. Otherwise "" as parsed; the gateway sets
     * the receiving user before rendering a frame. */
    char user[NOTIF_USER_MAX + 1];
    char **user_ids;  /* NOTIF_TO_USERS: nuser_ids distinct ids, one owned allocation */
    size_t nuser_ids;
    char room[NOTIF_ROOM_MAX + 1]; /* NOTIF_TO_ROOM */
    char from[NOTIF_USER_MAX + 1]; /* "" when absent */
    char timestamp[ISO8601_LEN]; /* normalised to "YYYY-MM-DDTHH:MM:SS.mmmZ" */
    int64_t time_ms;             /* the same instant */
    int64_t ttl_ms;              /* "ttl", kept to follow a later notification_set_time; else 0 */
    int64_t expires_ms;          /* when it expires (wall-clock ms), 0: never */
    char type[NOTIF_TYPE_MAX + 1]; /* "" when absent */
    char *message;   /* owned, NUL-terminated UTF-8 */
    char *data_json; /* owned compact JSON of "data", or NULL */
    int filled;      /* the NOTIF_FILL_* fields that were missing and made up */
} notification_t;

/* What notification_parse may fill in when the input lacks it. */
enum {
    NOTIF_FILL_ID = 1,        /* a new UUIDv7 */
    NOTIF_FILL_TIMESTAMP = 2, /* the current time */
};

/* Parses one notification. On error returns -1 with a sentence in errstr
 * saying what was wrong; *n is then left empty. */
int notification_parse(const char *json, size_t len, int fill, notification_t *n, char *errstr,
                       size_t errstr_size);
/* Its two readers, for the tests that hold them to the same answers:
 * the flat reader takes a flat object of plain strings and integers in
 * place, or returns -1 ("not sure", n left empty); the tree reader is
 * jansson, with an error for everything it refuses. */
int notification_parse_flat(const char *json, size_t len, int fill, notification_t *n);
int notification_parse_tree(const char *json, size_t len, int fill, notification_t *n,
                            char *errstr, size_t errstr_size);

/* Sets the notification's time (its timestamp, and its expiry when that
 * was given as "ttl"). Returns -1 when either falls outside 1970-9999. */
int notification_set_time(notification_t *n, int64_t ms);

/* The Kafka key that keeps an audience's notifications in one partition,
 * in order: the user id, "room:<name>", "broadcast", or for "userIds" the
 * notification's id (each copy's order is its own). Written to key. */
void notification_kafka_key(const notification_t *n, char key[NOTIF_ID_MAX + 1]);

/* Frames. A frame is the text clients receive for one notification: a
 * compact JSON object (no whitespace outside strings) made by this codec,
 *   {"id":…,"userId":…,"message":…,"timestamp":…[,"type":…][,"data":…]
 *    [,"userIds":[…]][,"room":…|,"broadcast":true][,"from":…][,"expiresAt":…]
 *    [,"replayed":true]}
 * in that order; "userId" when user is set; "userIds" only in the form
 * published to Kafka (a frame is one user's copy); "type" only when not
 * empty, "data" only when present. It
 * is valid UTF-8 (strings must be: the parser guarantees it) with only
 * quote, backslash and control characters escaped, exactly as jansson's
 * json_dumps(JSON_COMPACT) writes it. Code outside the codec treats a
 * frame as opaque text and goes through the functions below to change it. */

/* Renders n's frame, with "replayed":true when it comes from the offline
 * store. Returns a malloc'd NUL-terminated string, its length in *len when
 * len is not NULL; never NULL (out of memory aborts). */
char *notification_to_json(const notification_t *n, int replayed, size_t *len);

/* Bytes notification_frame_replayed adds at most: ,"replayed":true */
#define NOTIF_REPLAYED_EXTRA 16

/* Writes to out the frame of len bytes (rendered without "replayed") with
 * "replayed":true added, the same bytes as notification_to_json(n, 1, ..)
 * gives, and a NUL. out holds len + NOTIF_REPLAYED_EXTRA + 1 bytes and may
 * be frame itself. Returns the new length, or 0 (out untouched) when frame
 * is not a JSON object's text: it must begin with '{' and end with '}'. */
size_t notification_frame_replayed(const char *frame, size_t len, char *out);

/* Frees what a parsed notification owns and empties it. */
void notification_clear(notification_t *n);

/* Whether s is an acceptable user id: 1..NOTIF_USER_MAX bytes of letters,
 * digits and . _ - @ : + ~ (nothing a URL, a log line or a query could
 * misread). The same rule holds for ids given by the producer. */
int notification_user_valid(const char *s, size_t len);
/* An id that is there twice among n (the smallest such), or NULL. */
const char *notification_repeated(char *const *ids, size_t n);
/* Whether s is an acceptable room name: 1..NOTIF_ROOM_MAX letters, digits
 * or . _ - */
int notification_room_valid(const char *s, size_t len);
/* Whether type names a control frame (docs/protocol.md): a notification
 * may not have it, or clients could take it for one. */
int notification_type_reserved(const char *type);
int notification_id_valid(const char *s, size_t len);

#endif
