/* The notification parser and the frame codec: whatever Kafka carries.
 * Whatever the flat reader takes, the tree reader (jansson) must read the
 * same; and the replayed-frame splice must equal a direct rendering. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "notification.h"

static void same_as_tree(const char *data, size_t size, int fill, const notification_t *flat)
{
    notification_t tree;
    char err[256];
    if (notification_parse_tree(data, size, fill, &tree, err, sizeof(err)) != 0)
        abort(); /* the flat reader took what jansson refuses */
    if (flat->filled != tree.filled || strcmp(flat->user, tree.user) != 0 ||
        strcmp(flat->type, tree.type) != 0 || strcmp(flat->message, tree.message) != 0 ||
        (tree.data_json != NULL) != (flat->data_json != NULL) ||
        (!(flat->filled & NOTIF_FILL_ID) && strcmp(flat->id, tree.id) != 0) ||
        (!(flat->filled & NOTIF_FILL_TIMESTAMP) && strcmp(flat->timestamp, tree.timestamp) != 0))
        abort();
    notification_clear(&tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    notification_t n;
    char err[256];
    const int fill = NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP;
    if (size <= NOTIF_JSON_MAX) {
        for (int f = 0; f <= fill; f += fill) {
            if (notification_parse_flat((const char *)data, size, f, &n) == 0) {
                same_as_tree((const char *)data, size, f, &n);
                notification_clear(&n);
            }
        }
    }
    if (notification_parse((const char *)data, size, fill, &n, err, sizeof(err)) != 0)
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
