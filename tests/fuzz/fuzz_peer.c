/* What the upgrade request brings: origins, proxy lists, X-Forwarded-For,
 * user ids. The input is split at NUL bytes into the strings. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "notification.h"
#include "origin.h"
#include "peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_string(data, size), *part[4] = {s, "", "", ""};
    size_t n = 1;
    for (char *p = s; n < 4 && p < s + size; p++)
        if (!*p)
            part[n++] = p + 1;
    char err[200], out[PEER_ADDR_MAX];
    struct origins o;
    if (origins_parse(&o, part[0], err, sizeof(err)) == 0) {
        origin_allowed(&o, part[1], part[2]);
        origins_free(&o);
    }
    struct origins none = {0};
    origin_allowed(&none, part[1], part[2]);
    struct proxies px;
    if (proxies_parse(&px, part[0], err, sizeof(err)) == 0)
        peer_client_address(&px, part[1], part[2], out);
    notification_user_valid(part[3], strlen(part[3]));
    free(s);
    return 0;
}
