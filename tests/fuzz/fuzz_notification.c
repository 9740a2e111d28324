/* The notification parser and the frame codec: whatever Kafka carries. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "notification.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    notification_t n;
    char err[256];
    if (notification_parse((const char *)data, size, NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n, err,
                           sizeof(err)) != 0)
        return 0;
    size_t len;
    char *frame = notification_to_json(&n, 0, &len);
    char *replayed = malloc(len + NOTIF_REPLAYED_EXTRA + 1);
    size_t rlen = notification_frame_replayed(frame, len, replayed);
    size_t expect;
    char *direct = notification_to_json(&n, 1, &expect);
    /* The splice and the direct rendering agree byte for byte. */
    if (rlen != expect || memcmp(replayed, direct, expect) != 0)
        abort();
    free(direct);
    free(replayed);
    free(frame);
    notification_clear(&n);
    return 0;
}
