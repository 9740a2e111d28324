/* One memory budget for the notifications passing through the gateway:
 * those handed from Kafka to the loop, those in connections' windows,
 * those held for a user whose replay or window is not ready, and those
 * waiting to be stored. Each part says what it takes and gives back; the
 * loop stops taking from Kafka while the sum is at the limit, and the hub
 * sends to the store what it would otherwise keep in memory.
 *
 * Parts change on the Kafka thread (the hand-off) and the loop thread;
 * the counters are atomic, and reading them is only an estimate while
 * they move. A part counts what it allocates, budget_cost of the
 * notification's bytes. */
#ifndef CONSUMER_BUDGET_H
#define CONSUMER_BUDGET_H

#include <stdatomic.h>
#include <stddef.h>

/* About what one notification costs beside its bytes: the structures
 * holding it and the allocator's overhead. */
#define BUDGET_PER_NOTIFICATION 128

/* What a notification of this many bytes costs the budget. */
static inline size_t budget_cost(size_t bytes)
{
    return bytes + BUDGET_PER_NOTIFICATION;
}

enum budget_part { BUDGET_HANDOFF, BUDGET_WINDOWS, BUDGET_HELD, BUDGET_STORE, BUDGET_PARTS };

typedef struct budget {
    size_t limit; /* 0: no limit */
    atomic_size_t used[BUDGET_PARTS];
} budget_t;

static inline void budget_take(budget_t *b, enum budget_part part, size_t bytes)
{
    if (b)
        atomic_fetch_add_explicit(&b->used[part], bytes, memory_order_relaxed);
}

static inline void budget_give(budget_t *b, enum budget_part part, size_t bytes)
{
    if (b)
        atomic_fetch_sub_explicit(&b->used[part], bytes, memory_order_relaxed);
}

static inline size_t budget_part(const budget_t *b, enum budget_part part)
{
    return b ? atomic_load_explicit(&b->used[part], memory_order_relaxed) : 0;
}

static inline size_t budget_used(const budget_t *b)
{
    size_t sum = 0;
    for (int i = 0; i < BUDGET_PARTS; i++)
        sum += budget_part(b, (enum budget_part)i);
    return sum;
}

/* Whether the budget is spent: take nothing more into memory. */
static inline int budget_full(const budget_t *b)
{
    return b && b->limit && budget_used(b) >= b->limit;
}

#endif
