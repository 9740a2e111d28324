/* What a client sends: ack, auth, refresh, anything else. */
#include "client_msg.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct client_msg m;
    char err[160];
    client_msg_parse((const char *)data, size, &m, err, sizeof(err));
    return 0;
}
