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
    else
        rc = CLIENT_MSG_OTHER;
    json_decref(root);
    return rc;
}
