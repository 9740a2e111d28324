/* Offset completion per partition, for at-least-once commits. */
#include "tracker.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* One partition: a ring of the offsets still tracked, oldest first. Offsets
 * are increasing but need not be contiguous (compaction, transaction
 * markers), so a completion finds its slot by binary search. */
struct partition {
    int64_t *offsets;
    unsigned char *done;
    size_t cap, head, len;
};

struct tracker {
    struct partition *parts;
    int32_t nparts;
    size_t pending;
};

tracker_t *tracker_new(void)
{
    return xcalloc(1, sizeof(tracker_t));
}

static void partition_reset(struct partition *p)
{
    free(p->offsets);
    free(p->done);
    memset(p, 0, sizeof(*p));
}

void tracker_free(tracker_t *t)
{
    if (!t)
        return;
    for (int32_t i = 0; i < t->nparts; i++)
        partition_reset(&t->parts[i]);
    free(t->parts);
    free(t);
}

static struct partition *get_partition(tracker_t *t, int32_t partition, int create)
{
    if (partition < 0)
        return NULL;
    if (partition >= t->nparts) {
        if (!create)
            return NULL;
        int32_t n = partition + 1;
        struct partition *parts = xrealloc(t->parts, (size_t)n * sizeof(*parts));
        memset(parts + t->nparts, 0, (size_t)(n - t->nparts) * sizeof(*parts));
        t->parts = parts;
        t->nparts = n;
    }
    return &t->parts[partition];
}

#define AT(p, i) (((p)->head + (i)) % (p)->cap)

static void grow(struct partition *p)
{
    size_t cap = p->cap ? p->cap * 2 : 64;
    int64_t *offsets = xmalloc(cap * sizeof(*offsets));
    unsigned char *done = xmalloc(cap);
    for (size_t i = 0; i < p->len; i++) {
        offsets[i] = p->offsets[AT(p, i)];
        done[i] = p->done[AT(p, i)];
    }
    free(p->offsets);
    free(p->done);
    p->offsets = offsets;
    p->done = done;
    p->cap = cap;
    p->head = 0;
}

int tracker_add(tracker_t *t, int32_t partition, int64_t offset)
{
    struct partition *p = get_partition(t, partition, 1);
    if (!p)
        return -1;
    if (p->len > 0 && offset <= p->offsets[AT(p, p->len - 1)]) {
        t->pending -= p->len;
        p->len = 0;
        p->head = 0;
    }
    if (p->len == p->cap)
        grow(p);
    size_t slot = AT(p, p->len);
    p->offsets[slot] = offset;
    p->done[slot] = 0;
    p->len++;
    t->pending++;
    return 0;
}

int64_t tracker_done(tracker_t *t, int32_t partition, int64_t offset)
{
    struct partition *p = get_partition(t, partition, 0);
    if (!p || p->len == 0)
        return -1;

    size_t lo = 0, hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->offsets[AT(p, mid)] < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == p->len || p->offsets[AT(p, lo)] != offset || p->done[AT(p, lo)])
        return -1;
    p->done[AT(p, lo)] = 1;

    int64_t committable = -1;
    while (p->len > 0 && p->done[p->head]) {
        committable = p->offsets[p->head] + 1;
        p->head = (p->head + 1) % p->cap;
        p->len--;
        t->pending--;
    }
    return committable;
}

void tracker_forget(tracker_t *t, int32_t partition)
{
    struct partition *p = get_partition(t, partition, 0);
    if (!p)
        return;
    t->pending -= p->len;
    partition_reset(p);
}

size_t tracker_pending(const tracker_t *t)
{
    return t->pending;
}
