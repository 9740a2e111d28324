/* What a client sends: ack, auth, refresh, send, anything else. An ack
 * read by the parser's shortcut must be the one jansson reads from the
 * same bytes; a send's body must be a notification's JSON without "from"
 * or "id" (the gateway sets those). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "client_msg.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct client_msg m;
    char err[160];
    enum client_msg_type t = client_msg_parse((const char *)data, size, &m, err, sizeof(err));
    if (t == CLIENT_MSG_SEND) {
        json_t *body = m.body ? json_loads(m.body, 0, NULL) : NULL;
        if (m.body && (!body || json_object_get(body, "from") || json_object_get(body, "id")))
            abort();
        json_decref(body);
        free(m.body);
        return 0;
    }
    if (t != CLIENT_MSG_ACK)
        return 0;
    json_t *root = json_loadb((const char *)data, size, 0, NULL);
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!type || strcmp(type, "ack") != 0)
        abort();
    const char *names[] = {"id", "messageId", "contentId"};
    const char *id = NULL;
    for (size_t i = 0; i < 3 && !id; i++)
        id = json_string_value(json_object_get(root, names[i]));
    if (!id || strcmp(id, m.id) != 0)
        abort();
    json_decref(root);
    return 0;
}
