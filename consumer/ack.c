/* Parsing the acknowledgements clients send (ack.h has the forms). */
#include "ack.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

enum ack_result ack_parse(const char *frame, size_t len, char id[NOTIF_ID_MAX + 1], char *errstr,
                          size_t size)
{
    static const char *const id_fields[] = {"id", "messageId", "contentId"};
    enum ack_result rc = ACK_INVALID;
    json_error_t jerr;

    if (len > ACK_FRAME_MAX) {
        snprintf(errstr, size, "frame of %zu bytes is over the limit of %d", len, ACK_FRAME_MAX);
        return ACK_INVALID;
    }
    json_t *root = json_loadb(frame, len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        snprintf(errstr, size, "expected a JSON object such as {\"type\":\"ack\",\"id\":\"…\"}");
        goto out;
    }
    json_t *type = json_object_get(root, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "ack") != 0) {
        rc = ACK_OTHER;
        goto out;
    }
    for (size_t i = 0; i < sizeof(id_fields) / sizeof(id_fields[0]); i++) {
        json_t *v = json_object_get(root, id_fields[i]);
        if (!json_is_string(v))
            continue;
        size_t n = json_string_length(v);
        if (!notification_id_valid(json_string_value(v), n))
            break;
        memcpy(id, json_string_value(v), n + 1);
        rc = ACK_OK;
        goto out;
    }
    snprintf(errstr, size, "an ack needs \"id\": the id of the notification it acknowledges");
out:
    json_decref(root);
    return rc;
}
