/* The offset-completion tracker: an offset becomes committable only when it
 * and everything before it in its partition are done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tracker.h"

static void in_order_completion_advances_each_time(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    for (int64_t o = 10; o < 13; o++)
        assert_int_equal(tracker_add(t, 0, o), 0);
    assert_int_equal(tracker_done(t, 0, 10), 11);
    assert_int_equal(tracker_done(t, 0, 11), 12);
    assert_int_equal(tracker_done(t, 0, 12), 13);
    assert_int_equal(tracker_pending(t), 0);
    tracker_free(t);
}

static void a_gap_holds_back_later_offsets(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    for (int64_t o = 0; o < 5; o++)
        tracker_add(t, 0, o);
    assert_int_equal(tracker_done(t, 0, 3), -1);
    assert_int_equal(tracker_done(t, 0, 4), -1);
    assert_int_equal(tracker_done(t, 0, 1), -1);
    assert_int_equal(tracker_pending(t), 5);
    /* The oldest completes: everything up to 4 is done. */
    assert_int_equal(tracker_done(t, 0, 0), 2);
    assert_int_equal(tracker_done(t, 0, 2), 5);
    assert_int_equal(tracker_pending(t), 0);
    tracker_free(t);
}

static void partitions_are_independent(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    tracker_add(t, 0, 100);
    tracker_add(t, 2, 7);
    tracker_add(t, 0, 101);
    assert_int_equal(tracker_done(t, 2, 7), 8);
    assert_int_equal(tracker_done(t, 0, 101), -1);
    assert_int_equal(tracker_done(t, 0, 100), 102);
    tracker_free(t);
}

static void sparse_offsets_are_found(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    /* Compacted topics and transaction markers leave holes. */
    tracker_add(t, 1, 5);
    tracker_add(t, 1, 9);
    tracker_add(t, 1, 20);
    assert_int_equal(tracker_done(t, 1, 10), -1); /* never added */
    assert_int_equal(tracker_done(t, 1, 9), -1);
    assert_int_equal(tracker_done(t, 1, 5), 10);
    assert_int_equal(tracker_done(t, 1, 20), 21);
    tracker_free(t);
}

static void unknown_and_repeated_completions_are_ignored(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    assert_int_equal(tracker_done(t, 3, 1), -1);
    assert_int_equal(tracker_done(t, -1, 1), -1);
    tracker_add(t, 0, 1);
    tracker_add(t, 0, 2);
    assert_int_equal(tracker_done(t, 0, 2), -1);
    assert_int_equal(tracker_done(t, 0, 2), -1);
    assert_int_equal(tracker_pending(t), 2);
    tracker_free(t);
}

static void rewind_restarts_the_partition(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    tracker_add(t, 0, 50);
    tracker_add(t, 0, 51);
    /* After a rebalance the partition is consumed again from 40. */
    tracker_add(t, 0, 40);
    assert_int_equal(tracker_pending(t), 1);
    assert_int_equal(tracker_done(t, 0, 50), -1);
    assert_int_equal(tracker_done(t, 0, 40), 41);
    tracker_free(t);
}

static void forget_drops_a_revoked_partition(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    tracker_add(t, 4, 1);
    tracker_add(t, 4, 2);
    tracker_forget(t, 4);
    assert_int_equal(tracker_pending(t), 0);
    assert_int_equal(tracker_done(t, 4, 1), -1);
    tracker_add(t, 4, 3);
    assert_int_equal(tracker_done(t, 4, 3), 4);
    tracker_free(t);
}

/* A record fanned out to three users completes with its third copy; one
 * that expired (no copies) completes at once. */
static void copies_complete_a_record_together(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    tracker_add(t, 0, 10);
    tracker_add(t, 0, 11);
    tracker_add(t, 0, 12);
    assert_int_equal(tracker_expect(t, 0, 10, 3), -1);
    assert_int_equal(tracker_done(t, 0, 11), -1);
    assert_int_equal(tracker_done(t, 0, 10), -1);
    assert_int_equal(tracker_done(t, 0, 10), -1);
    assert_int_equal(tracker_pending(t), 3);
    assert_int_equal(tracker_done(t, 0, 10), 12);
    assert_int_equal(tracker_done(t, 0, 10), -1); /* a fourth: ignored */
    assert_int_equal(tracker_expect(t, 0, 12, 0), 13);
    assert_int_equal(tracker_pending(t), 0);
    tracker_free(t);
}

static void many_offsets_grow_the_ring(void **state)
{
    (void)state;
    tracker_t *t = tracker_new();
    /* Complete every other one first, wrapping the ring as it grows. */
    for (int64_t o = 0; o < 1000; o++) {
        assert_int_equal(tracker_add(t, 0, o), 0);
        if (o >= 100 && o % 2 == 0)
            tracker_done(t, 0, o);
    }
    for (int64_t o = 0; o < 100; o++)
        tracker_done(t, 0, o);
    int64_t last = -1;
    for (int64_t o = 101; o < 1000; o += 2)
        last = tracker_done(t, 0, o);
    assert_int_equal(last, 1000);
    assert_int_equal(tracker_pending(t), 0);
    tracker_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_completion_advances_each_time),
        cmocka_unit_test(a_gap_holds_back_later_offsets),
        cmocka_unit_test(partitions_are_independent),
        cmocka_unit_test(sparse_offsets_are_found),
        cmocka_unit_test(unknown_and_repeated_completions_are_ignored),
        cmocka_unit_test(rewind_restarts_the_partition),
        cmocka_unit_test(forget_drops_a_revoked_partition),
        cmocka_unit_test(many_offsets_grow_the_ring),
        cmocka_unit_test(copies_complete_a_record_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
