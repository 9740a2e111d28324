/* The cross-thread hand-off: order, the limit that makes senders wait,
 * close, and the wake callback. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "handoff.h"

struct item {
    handoff_msg_t link;
    int n;
};

static int wakes;

static void wake(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&wakes, 1, __ATOMIC_SEQ_CST);
}

static struct item *item(int n)
{
    struct item *it = calloc(1, sizeof(*it));
    it->n = n;
    return it;
}

static void free_item(handoff_msg_t *m)
{
    free(m);
}

static void messages_come_out_in_order(void **state)
{
    (void)state;
    handoff_t *h = handoff_new(0, wake, NULL);
    wakes = 0;
    for (int i = 0; i < 5; i++)
        assert_int_equal(handoff_send(h, &item(i)->link), 0);
    assert_int_equal(wakes, 5);
    assert_int_equal(handoff_len(h), 5);
    handoff_msg_t *m = handoff_take(h, 2);
    assert_int_equal(((struct item *)m)->n, 0);
    assert_int_equal(((struct item *)m->next)->n, 1);
    assert_null(m->next->next);
    free_item(m->next);
    free_item(m);
    m = handoff_wait(h, 0);
    int n = 2;
    while (m) {
        handoff_msg_t *next = m->next;
        assert_int_equal(((struct item *)m)->n, n++);
        free_item(m);
        m = next;
    }
    assert_int_equal(n, 5);
    assert_null(handoff_take(h, 1));
    handoff_free(h, free_item);
}

struct sender {
    handoff_t *h;
    int count, sent, refused;
};

static void *send_all(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < s->count; i++) {
        struct item *it = item(i);
        if (handoff_send(s->h, &it->link) != 0) {
            free(it);
            s->refused++;
            break;
        }
        __atomic_add_fetch(&s->sent, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void a_full_queue_makes_the_sender_wait(void **state)
{
    (void)state;
    struct sender s = {handoff_new(3, NULL, NULL), 1000, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, send_all, &s);
    int got = 0;
    while (got < 1000) {
        assert_true(handoff_len(s.h) <= 3);
        handoff_msg_t *m = handoff_wait(s.h, 1000);
        assert_non_null(m);
        while (m) {
            handoff_msg_t *next = m->next;
            assert_int_equal(((struct item *)m)->n, got++);
            free_item(m);
            m = next;
        }
    }
    pthread_join(t, NULL);
    assert_int_equal(s.sent, 1000);
    handoff_free(s.h, free_item);
}

static void close_releases_a_waiting_sender_and_keeps_what_was_queued(void **state)
{
    (void)state;
    struct sender s = {handoff_new(2, NULL, NULL), 10, 0, 0};
    pthread_t t;
    pthread_create(&t, NULL, send_all, &s);
    while (__atomic_load_n(&s.sent, __ATOMIC_SEQ_CST) < 2)
        ;
    handoff_close(s.h);
    pthread_join(t, NULL);
    assert_int_equal(s.refused, 1);
    assert_true(handoff_closed(s.h));
    assert_int_equal(handoff_pause(s.h, 10000), 1); /* returns at once */
    handoff_msg_t *m = handoff_wait(s.h, -1);       /* what was queued */
    assert_non_null(m);
    assert_non_null(m->next);
    free_item(m->next);
    free_item(m);
    assert_null(handoff_wait(s.h, -1)); /* closed and empty: no wait */
    handoff_free(s.h, free_item);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_come_out_in_order),
        cmocka_unit_test(a_full_queue_makes_the_sender_wait),
        cmocka_unit_test(close_releases_a_waiting_sender_and_keeps_what_was_queued),
    };
    return cmocka_run_group_tests_name("handoff", tests, NULL, NULL);
}
