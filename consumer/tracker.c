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
    uint32_t *left; /* completions each still waits for; 0: done */
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
    free(p->left);
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
    uint32_t *left = xmalloc(cap * sizeof(*left));
    for (size_t i = 0; i < p->len; i++) {
        offsets[i] = p->offsets[AT(p, i)];
        left[i] = p->left[AT(p, i)];
    }
    free(p->offsets);
    free(p->left);
    p->offsets = offsets;
    p->left = left;
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
    p->left[slot] = 1;
    p->len++;
    t->pending++;
    return 0;
}

/* Pops the done run at the head: the new committable offset, or -1. */
static int64_t advance(tracker_t *t, struct partition *p)
{
    int64_t committable = -1;
    while (p->len > 0 && p->left[p->head] == 0) {
        committable = p->offsets[p->head] + 1;
        p->head = (p->head + 1) % p->cap;
        p->len--;
        t->pending--;
    }
    return committable;
}

/* The slot of offset in the partition, or -1. */
static long find(const struct partition *p, int64_t offset)
{
    size_t lo = 0, hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->offsets[AT(p, mid)] < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == p->len || p->offsets[AT(p, lo)] != offset)
        return -1;
    return (long)AT(p, lo);
}

int64_t tracker_expect(tracker_t *t, int32_t partition, int64_t offset, uint32_t copies)
{
    struct partition *p = get_partition(t, partition, 0);
    long slot = p && p->len ? find(p, offset) : -1;
    if (slot < 0 || p->left[slot] == 0)
        return -1;
    p->left[slot] = copies;
    return advance(t, p);
}

void tracker_expect_more(tracker_t *t, int32_t partition, int64_t offset, uint32_t more)
{
    struct partition *p = get_partition(t, partition, 0);
    long slot = p && p->len ? find(p, offset) : -1;
    if (slot >= 0 && p->left[slot] > 0)
        p->left[slot] += more;
}

int64_t tracker_done(tracker_t *t, int32_t partition, int64_t offset)
{
    struct partition *p = get_partition(t, partition, 0);
    long slot = p && p->len ? find(p, offset) : -1;
    if (slot < 0 || p->left[slot] == 0)
        return -1;
    if (--p->left[slot] > 0)
        return -1;
    return advance(t, p);
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
