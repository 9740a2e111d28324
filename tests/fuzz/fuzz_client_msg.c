/* What a client sends: ack, auth, refresh, anything else. An ack read by
 * the parser's shortcut must be the one jansson reads from the same bytes. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "client_msg.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct client_msg m;
    char err[160];
    if (client_msg_parse((const char *)data, size, &m, err, sizeof(err)) != CLIENT_MSG_ACK)
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
