/* The cross-thread hand-off queue (handoff.h). */
#include "handoff.h"

#include <pthread.h>
#include <stdlib.h>

#include <time.h>

#include "xalloc.h"

struct handoff {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a message came, room was made, or it closed */
    handoff_msg_t *head, *tail;
    size_t len, limit;
    int closed;
    void (*wake)(void *);
    void *wake_arg;
};

/* A deadline ms from now on the monotonic clock, which the condition
 * variable waits on: a step of the wall clock stretches no wait. */
static struct timespec mono_in_ms(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

handoff_t *handoff_new(size_t limit, void (*wake)(void *arg), void *arg)
{
    handoff_t *h = xcalloc(1, sizeof(*h));
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->changed, &attr);
    pthread_condattr_destroy(&attr);
    h->limit = limit;
    h->wake = wake;
    h->wake_arg = arg;
    return h;
}

int handoff_send(handoff_t *h, handoff_msg_t *m)
{
    pthread_mutex_lock(&h->lock);
    while (h->limit && h->len >= h->limit && !h->closed)
        pthread_cond_wait(&h->changed, &h->lock);
    if (h->closed) {
        pthread_mutex_unlock(&h->lock);
        return -1;
    }
    m->next = NULL;
    if (h->tail)
        h->tail->next = m;
    else
        h->head = m;
    h->tail = m;
    h->len++;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
    if (h->wake)
        h->wake(h->wake_arg);
    return 0;
}

/* Called with the lock held. */
static handoff_msg_t *take_locked(handoff_t *h, size_t max)
{
    handoff_msg_t *first = h->head, *last = NULL;
    size_t n = 0;
    for (handoff_msg_t *m = first; m && n < max; m = m->next, n++)
        last = m;
    if (!last)
        return NULL;
    h->head = last->next;
    if (!h->head)
        h->tail = NULL;
    last->next = NULL;
    h->len -= n;
    pthread_cond_broadcast(&h->changed); /* room for a waiting sender */
    return first;
}

handoff_msg_t *handoff_take(handoff_t *h, size_t max)
{
    pthread_mutex_lock(&h->lock);
    handoff_msg_t *m = take_locked(h, max);
    pthread_mutex_unlock(&h->lock);
    return m;
}

handoff_msg_t *handoff_wait(handoff_t *h, int64_t timeout_ms)
{
    struct timespec until = mono_in_ms(timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&h->lock);
    while (!h->head && !h->closed) {
        if (timeout_ms < 0)
            pthread_cond_wait(&h->changed, &h->lock);
        else if (pthread_cond_timedwait(&h->changed, &h->lock, &until) != 0)
            break;
    }
    handoff_msg_t *m = take_locked(h, (size_t)-1);
    pthread_mutex_unlock(&h->lock);
    return m;
}

int handoff_pause(handoff_t *h, int64_t ms)
{
    struct timespec until = mono_in_ms(ms);
    pthread_mutex_lock(&h->lock);
    while (!h->closed && pthread_cond_timedwait(&h->changed, &h->lock, &until) == 0)
        ;
    int closed = h->closed;
    pthread_mutex_unlock(&h->lock);
    return closed;
}

void handoff_close(handoff_t *h)
{
    pthread_mutex_lock(&h->lock);
    h->closed = 1;
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->lock);
}

int handoff_closed(handoff_t *h)
{
    pthread_mutex_lock(&h->lock);
    int closed = h->closed;
    pthread_mutex_unlock(&h->lock);
    return closed;
}

size_t handoff_len(handoff_t *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->len;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void handoff_free(handoff_t *h, void (*free_msg)(handoff_msg_t *m))
{
    if (!h)
        return;
    handoff_msg_t *m = h->head;
    while (m) {
        handoff_msg_t *next = m->next;
        free_msg(m);
        m = next;
    }
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->changed);
    free(h);
}
