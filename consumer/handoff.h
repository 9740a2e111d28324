/* The one way work crosses threads: a queue of messages from sender
 * threads to one receiver.
 *
 * A message is any struct whose first member is a handoff_msg_t; the
 * receiver owns it once taken. handoff_send appends and wakes the receiver:
 * the event loop through the wake callback given at creation (it calls
 * lws_cancel_service), a worker thread through handoff_wait. A queue with a
 * limit makes senders wait for room, which is how backpressure travels back
 * to the thread that produces work; nothing is ever dropped. After
 * handoff_close sends fail and waits return, so every thread can wind down.
 *
 * Modelled on h2o's multithread.h (message, receiver, send). Thread-safe. */
#ifndef CONSUMER_HANDOFF_H
#define CONSUMER_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

typedef struct handoff_msg {
    struct handoff_msg *next;
} handoff_msg_t;

typedef struct handoff handoff_t;

/* limit: messages queued before senders wait (0: no limit). wake(arg) is
 * called after each send, from the sender's thread; NULL for a receiver
 * that waits in handoff_wait. */
handoff_t *handoff_new(size_t limit, void (*wake)(void *arg), void *arg);

/* Appends m, waiting while the queue is at its limit. Returns 0, or -1
 * when the queue is closed (m is then still the caller's). */
int handoff_send(handoff_t *h, handoff_msg_t *m);

/* Takes up to max of the oldest messages as a list linked by next, or
 * NULL when there are none. Never waits. */
handoff_msg_t *handoff_take(handoff_t *h, size_t max);

/* Takes every message, waiting up to timeout_ms (< 0: for ever) for the
 * first. NULL when none came in time or the queue is closed and empty. */
handoff_msg_t *handoff_wait(handoff_t *h, int64_t timeout_ms);

/* Sleeps for ms, or less when the queue is closed meanwhile. Returns
 * whether it is closed. */
int handoff_pause(handoff_t *h, int64_t ms);

/* Senders fail and waiting threads return from now on. */
void handoff_close(handoff_t *h);
int handoff_closed(handoff_t *h);
size_t handoff_len(handoff_t *h);

/* Frees the queue and, through free_msg, every message still in it. */
void handoff_free(handoff_t *h, void (*free_msg)(handoff_msg_t *m));

#endif
