/* Balancing policies: pure code, no sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lb_algo.h"

static const char *U3[] = {"http://10.0.0.1:80", "http://10.0.0.2:80", "http://10.0.0.3:80"};

static void test_unknown_policy(void **st)
{
    lb_algo_t a;
    assert_int_equal(lb_algo_init(&a, "random", 1), -EINVAL);
    assert_int_equal(lb_algo_init(&a, "least_load", 1), 0);
    assert_string_equal(a.ops->name, "least_load");
}

static void test_empty_is_enoent(void **st)
{
    const char *names[] = {"round_robin", "least_load", "power_of_two"};
    for (int i = 0; i < 3; i++) {
        lb_algo_t a;
        assert_int_equal(lb_algo_init(&a, names[i], 1), 0);
        assert_int_equal(lb_algo_pick(&a, NULL), -ENOENT);
        lb_algo_set_ready(&a, NULL, 0, NULL);
        assert_int_equal(lb_algo_pick(&a, NULL), -ENOENT);
    }
}

static void test_rr_cycles_in_order(void **st)
{
    lb_algo_t a;
    int slots[3];
    lb_algo_init(&a, "round_robin", 1);
    lb_algo_set_ready(&a, U3, 3, slots);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 3; i++)
            assert_int_equal(lb_algo_pick(&a, NULL), slots[i]);
}

static void test_tried_bitmap_excludes(void **st)
{
    const char *names[] = {"round_robin", "least_load", "power_of_two"};
    for (int p = 0; p < 3; p++) {
        lb_algo_t a;
        int slots[3];
        uint8_t tried[LB_ALGO_MAX_SLOTS / 8] = {0};
        lb_algo_init(&a, names[p], 42);
        lb_algo_set_ready(&a, U3, 3, slots);
        int seen = 0;
        for (int i = 0; i < 3; i++) {
            int s = lb_algo_pick(&a, tried);
            assert_true(s >= 0);
            assert_false(lb_tried_get(tried, s));
            lb_tried_set(tried, s);
            seen |= 1 << s;
        }
        assert_int_equal(seen, (1 << slots[0]) | (1 << slots[1]) | (1 << slots[2]));
        assert_int_equal(lb_algo_pick(&a, tried), -EAGAIN);
    }
}

static void test_ll_picks_least_and_rotates_ties(void **st)
{
    lb_algo_t a;
    int slots[3];
    lb_algo_init(&a, "least_load", 1);
    lb_algo_set_ready(&a, U3, 3, slots);
    /* All idle: ties rotate over the three instead of always the first. */
    int counts[LB_ALGO_MAX_SLOTS] = {0};
    for (int i = 0; i < 30; i++)
        counts[lb_algo_pick(&a, NULL)]++;
    for (int i = 0; i < 3; i++)
        assert_int_equal(counts[slots[i]], 10);
    /* Load two of them: the idle one wins every time. */
    lb_algo_begin(&a, slots[0]);
    lb_algo_begin(&a, slots[2]);
    for (int i = 0; i < 5; i++)
        assert_int_equal(lb_algo_pick(&a, NULL), slots[1]);
    lb_algo_begin(&a, slots[1]);
    lb_algo_begin(&a, slots[1]);
    int s = lb_algo_pick(&a, NULL);
    assert_true(s == slots[0] || s == slots[2]);
}

static void test_ll_counters_never_negative(void **st)
{
    lb_algo_t a;
    int slots[3];
    lb_algo_init(&a, "least_load", 1);
    lb_algo_set_ready(&a, U3, 3, slots);
    lb_algo_end(&a, slots[0]); /* an unmatched end must not underflow */
    assert_int_equal(a.in_flight[slots[0]], 0);
    lb_algo_begin(&a, slots[0]);
    lb_algo_end(&a, slots[0]);
    lb_algo_end(&a, slots[0]);
    assert_int_equal(a.in_flight[slots[0]], 0);
    lb_algo_end(&a, -1);
    lb_algo_end(&a, LB_ALGO_MAX_SLOTS);
}

static void test_retired_keeps_counter_until_zero(void **st)
{
    lb_algo_t a;
    int slots[3], s2[2];
    lb_algo_init(&a, "least_load", 1);
    lb_algo_set_ready(&a, U3, 3, slots);
    int gone = slots[0];
    lb_algo_begin(&a, gone);
    lb_algo_begin(&a, gone);
    const char *two[] = {U3[1], U3[2]};
    lb_algo_set_ready(&a, two, 2, s2);
    assert_int_equal(s2[0], slots[1]);
    assert_int_equal(s2[1], slots[2]);
    assert_int_equal(a.state[gone], LB_SLOT_RETIRED);
    assert_int_equal(a.in_flight[gone], 2);
    /* Never picked while retired. */
    for (int i = 0; i < 20; i++)
        assert_int_not_equal(lb_algo_pick(&a, NULL), gone);
    /* A new URL must not take the retired slot while requests run on it. */
    const char *three[] = {U3[1], U3[2], "http://10.0.0.9:80"};
    int s3[3];
    lb_algo_set_ready(&a, three, 3, s3);
    assert_int_not_equal(s3[2], gone);
    assert_int_equal(lb_algo_end(&a, gone), 0);
    assert_int_equal(lb_algo_end(&a, gone), 1); /* freed at zero */
    assert_int_equal(a.state[gone], LB_SLOT_FREE);
    lb_algo_end(&a, gone); /* late duplicate end: harmless */
    assert_int_equal(a.in_flight[gone], 0);
}

static void test_replica_comes_back_with_its_counter(void **st)
{
    lb_algo_t a;
    int slots[3], s1[1], s3[3];
    lb_algo_init(&a, "least_load", 1);
    lb_algo_set_ready(&a, U3, 3, slots);
    lb_algo_begin(&a, slots[2]);
    lb_algo_set_ready(&a, U3, 1, s1);
    assert_int_equal(a.state[slots[2]], LB_SLOT_RETIRED);
    lb_algo_set_ready(&a, U3, 3, s3);
    assert_int_equal(s3[2], slots[2]);
    assert_int_equal(a.state[slots[2]], LB_SLOT_READY);
    assert_int_equal(a.in_flight[slots[2]], 1);
    assert_int_equal(a.state[slots[1]], LB_SLOT_READY);
}

static void test_duplicate_urls(void **st)
{
    lb_algo_t a;
    const char *d[] = {U3[0], U3[0], U3[1]};
    int s[3];
    lb_algo_init(&a, "round_robin", 1);
    lb_algo_set_ready(&a, d, 3, s);
    assert_true(s[0] >= 0);
    assert_int_equal(s[1], -1);
    assert_int_equal(a.n_ready, 2);
}

static void test_p2c_prefers_less_loaded_and_is_seeded(void **st)
{
    lb_algo_t a, b;
    int slots[3];
    lb_algo_init(&a, "power_of_two", 7);
    lb_algo_init(&b, "power_of_two", 7);
    lb_algo_set_ready(&a, U3, 3, slots);
    lb_algo_set_ready(&b, U3, 3, NULL);
    for (int i = 0; i < 50; i++)
        assert_int_equal(lb_algo_pick(&a, NULL), lb_algo_pick(&b, NULL));
    /* With one replica heavily loaded it is never chosen: the other
     * candidate of any pair is lighter. */
    for (int i = 0; i < 10; i++)
        lb_algo_begin(&a, slots[0]);
    int counts[LB_ALGO_MAX_SLOTS] = {0};
    for (int i = 0; i < 300; i++)
        counts[lb_algo_pick(&a, NULL)]++;
    assert_int_equal(counts[slots[0]], 0);
    assert_true(counts[slots[1]] > 50 && counts[slots[2]] > 50);
}

static void test_p2c_single_candidate(void **st)
{
    lb_algo_t a;
    int s[1];
    lb_algo_init(&a, "power_of_two", 3);
    lb_algo_set_ready(&a, U3, 1, s);
    for (int i = 0; i < 10; i++)
        assert_int_equal(lb_algo_pick(&a, NULL), s[0]);
}

static void test_table_full(void **st)
{
    lb_algo_t a;
    static char urls[LB_ALGO_MAX_SLOTS + 5][64];
    const char *p[LB_ALGO_MAX_SLOTS + 5];
    int s[LB_ALGO_MAX_SLOTS + 5];
    for (int i = 0; i < LB_ALGO_MAX_SLOTS + 5; i++) {
        snprintf(urls[i], sizeof(urls[i]), "http://10.1.%d.%d:80", i / 200, i % 200);
        p[i] = urls[i];
    }
    lb_algo_init(&a, "round_robin", 1);
    lb_algo_set_ready(&a, p, LB_ALGO_MAX_SLOTS + 5, s);
    assert_int_equal(a.n_ready, LB_ALGO_MAX_SLOTS);
    assert_int_equal(s[LB_ALGO_MAX_SLOTS], -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_policy),
        cmocka_unit_test(test_empty_is_enoent),
        cmocka_unit_test(test_rr_cycles_in_order),
        cmocka_unit_test(test_tried_bitmap_excludes),
        cmocka_unit_test(test_ll_picks_least_and_rotates_ties),
        cmocka_unit_test(test_ll_counters_never_negative),
        cmocka_unit_test(test_retired_keeps_counter_until_zero),
        cmocka_unit_test(test_replica_comes_back_with_its_counter),
        cmocka_unit_test(test_duplicate_urls),
        cmocka_unit_test(test_p2c_prefers_less_loaded_and_is_seeded),
        cmocka_unit_test(test_p2c_single_candidate),
        cmocka_unit_test(test_table_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
