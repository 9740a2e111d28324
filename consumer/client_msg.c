/* Parsing what clients send (client_msg.h has the forms). */
#include "client_msg.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static enum client_msg_type parse_ack(json_t *root, struct client_msg *m, char *errstr,
                                      size_t size)
{
    static const char *const id_fields[] = {"id", "messageId", "contentId"};
    for (size_t i = 0; i < sizeof(id_fields) / sizeof(id_fields[0]); i++) {
        json_t *v = json_object_get(root, id_fields[i]);
        if (!json_is_string(v))
            continue;
        size_t n = json_string_length(v);
        if (!notification_id_valid(json_string_value(v), n))
            break;
        memcpy(m->id, json_string_value(v), n + 1);
        return CLIENT_MSG_ACK;
    }
    snprintf(errstr, size, "an ack needs \"id\": the id of the notification it acknowledges");
    return CLIENT_MSG_INVALID;
}

static enum client_msg_type parse_token(json_t *root, enum client_msg_type type,
                                        struct client_msg *m, char *errstr, size_t size)
{
    json_t *v = json_object_get(root, "token");
    size_t n = json_string_length(v);
    if (!json_is_string(v) || n == 0 || n >= sizeof(m->token) ||
        memchr(json_string_value(v), '\0', n)) {
        snprintf(errstr, size, "\"%s\" needs \"token\": a signed JWT",
                 type == CLIENT_MSG_AUTH ? "auth" : "refresh");
        return CLIENT_MSG_INVALID;
    }
    memcpy(m->token, json_string_value(v), n + 1);
    return type;
}

/* A send: ref first, so that an invalid one is still answered by it. */
static enum client_msg_type parse_send(json_t *root, struct client_msg *m, char *errstr,
                                       size_t size)
{
    json_t *ref = json_object_get(root, "ref");
    json_t *to_user = json_object_get(root, "toUser"), *to_room = json_object_get(root, "toRoom");
    json_t *message = json_object_get(root, "message"), *data = json_object_get(root, "data");
    m->ref[0] = '\0';
    m->body = NULL;
    m->to_room = to_room != NULL;
    if (ref && (!json_is_string(ref) ||
                !notification_id_valid(json_string_value(ref), json_string_length(ref)))) {
        snprintf(errstr, size, "\"ref\" must be 1 to %d letters, digits or . _ - @ : + ~",
                 NOTIF_ID_MAX);
        return CLIENT_MSG_SEND;
    }
    if (ref)
        memcpy(m->ref, json_string_value(ref), json_string_length(ref) + 1);
    if (!!to_user == !!to_room || !json_is_string(to_user ? to_user : to_room)) {
        snprintf(errstr, size, "a send names \"toUser\" or \"toRoom\" (one of them, a string)");
        return CLIENT_MSG_SEND;
    }
    if (!json_is_string(message)) {
        snprintf(errstr, size, "a send needs \"message\": a string");
        return CLIENT_MSG_SEND;
    }
    if (to_room)
        snprintf(m->rooms_buf, sizeof(m->rooms_buf), "%s", json_string_value(to_room));
    /* Only these: "from", "id" and the time are the gateway's to set. */
    json_t *body = json_pack("{s:O, s:O}", to_user ? "userId" : "room", to_user ? to_user : to_room,
                             "message", message);
    if (data)
        json_object_set(body, "data", data);
    m->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return CLIENT_MSG_SEND;
}

/* An array of strings into a comma-separated list; valid(name) for each.
 * -1 when it is not such an array. */
static int join_names(json_t *list, int (*valid)(const char *, size_t), char *out, size_t size)
{
    size_t i, used = 0;
    json_t *v;
    out[0] = '\0';
    if (!json_is_array(list))
        return -1;
    json_array_foreach(list, i, v) {
        size_t len = json_string_length(v);
        if (!json_is_string(v) || !valid(json_string_value(v), len) || strchr(json_string_value(v), ',') ||
            used + len + 2 > size)
            return -1;
        used += (size_t)snprintf(out + used, size - used, "%s%s", used ? "," : "",
                                 json_string_value(v));
    }
    return 0;
}

static int type_valid(const char *s, size_t len)
{
    return len > 0 && len <= NOTIF_TYPE_MAX && strlen(s) == len;
}

static enum client_msg_type parse_subscribe(json_t *root, struct client_msg *m, char *errstr,
                                            size_t size)
{
    json_t *rooms = json_object_get(root, "rooms"), *types = json_object_get(root, "types");
    m->rooms = m->types = NULL;
    m->rooms_buf[0] = '\0';
    if (rooms && join_names(rooms, notification_room_valid, m->rooms_buf,
                            sizeof(m->rooms_buf)) != 0) {
        snprintf(errstr, size, "\"rooms\" must be an array of room names (1 to %d letters, "
                 "digits or . _ -)", NOTIF_ROOM_MAX);
        return CLIENT_MSG_SUBSCRIBE;
    }
    if (types && join_names(types, type_valid, m->types_buf, sizeof(m->types_buf)) != 0) {
        snprintf(errstr, size, "\"types\" must be an array of types (1 to %d bytes, no comma)",
                 NOTIF_TYPE_MAX);
        return CLIENT_MSG_SUBSCRIBE;
    }
    m->rooms = m->rooms_buf;
    m->types = types ? m->types_buf : NULL;
    return CLIENT_MSG_SUBSCRIBE;
}

/* Every notification is acknowledged, so the ack is the one message that
 * comes at the rate of deliveries: its exact shape as test.html and the
 * client library write it, {"type":"ack","id":"<id>"}, is read without
 * building a JSON tree. An id cannot hold a quote or a backslash, so the
 * first quote after it ends it. Any other spelling (spaces, other key
 * order or names, escapes) takes the full parser, with the same answer. */
static int parse_plain_ack(const char *frame, size_t len, struct client_msg *m)
{
    static const char prefix[] = "{\"type\":\"ack\",\"id\":\"";
    const size_t plen = sizeof(prefix) - 1;
    if (len < plen + 2 || memcmp(frame, prefix, plen) != 0 || frame[len - 1] != '}' ||
        frame[len - 2] != '"')
        return 0;
    const char *id = frame + plen;
    size_t n = len - plen - 2;
    if (!notification_id_valid(id, n))
        return 0;
    memcpy(m->id, id, n);
    m->id[n] = '\0';
    return 1;
}

enum client_msg_type client_msg_parse(const char *frame, size_t len, struct client_msg *m,
                                      char *errstr, size_t size)
{
    enum client_msg_type rc = CLIENT_MSG_INVALID;
    json_error_t jerr;

    if (len > CLIENT_MSG_MAX) {
        snprintf(errstr, size, "message of %zu bytes is over the limit of %d", len,
                 CLIENT_MSG_MAX);
        return CLIENT_MSG_INVALID;
    }
    if (parse_plain_ack(frame, len, m))
        return CLIENT_MSG_ACK;
    json_t *root = json_loadb(frame, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!root || !json_is_object(root))
        snprintf(errstr, size, "expected a JSON object such as {\"type\":\"ack\",\"id\":\"…\"}");
    else if (!type)
        rc = CLIENT_MSG_OTHER;
    else if (strcmp(type, "ack") == 0)
        rc = parse_ack(root, m, errstr, size);
    else if (strcmp(type, "auth") == 0)
        rc = parse_token(root, CLIENT_MSG_AUTH, m, errstr, size);
    else if (strcmp(type, "refresh") == 0)
        rc = parse_token(root, CLIENT_MSG_REFRESH, m, errstr, size);
    else if (strcmp(type, "send") == 0)
        rc = parse_send(root, m, errstr, size);
    else if (strcmp(type, "subscribe") == 0)
        rc = parse_subscribe(root, m, errstr, size);
    else
        rc = CLIENT_MSG_OTHER;
    json_decref(root);
    return rc;
}
