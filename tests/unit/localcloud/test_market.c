/* Spot market logic: capacities, victim choice, trace arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lc.h"

static void test_capacity_default_unlimited(void **state)
{
    lc_market_t m;
    lc_market_init(&m, 1);
    assert_true(lc_market_capacity(&m, "us-east-1a") < 0);
    assert_true(lc_market_can_launch(&m, "us-east-1a", 1000));
    assert_int_equal(lc_market_set(&m, "us-east-1a", 2), 0);
    assert_int_equal(lc_market_capacity(&m, "us-east-1a"), 2);
    assert_true(lc_market_can_launch(&m, "us-east-1a", 1));
    assert_false(lc_market_can_launch(&m, "us-east-1a", 2));
    assert_true(lc_market_can_launch(&m, "us-east-1b", 2));
    assert_int_equal(lc_market_set(&m, "us-east-1a", 0), 0);
    assert_false(lc_market_can_launch(&m, "us-east-1a", 0));
    /* null/negative = unlimited again */
    assert_int_equal(lc_market_set(&m, "us-east-1a", -5), 0);
    assert_true(lc_market_capacity(&m, "us-east-1a") < 0);
}

static void test_capacity_all(void **state)
{
    lc_market_t m;
    lc_market_init(&m, 1);
    lc_market_set(&m, "a", 3);
    lc_market_set_all(&m, 1);
    assert_int_equal(lc_market_capacity(&m, "a"), 1);
    assert_int_equal(lc_market_capacity(&m, "zzz"), 1);
    lc_market_set(&m, "b", 5);
    assert_int_equal(lc_market_capacity(&m, "b"), 5);
    lc_market_set_all(&m, -1);
    assert_true(lc_market_capacity(&m, "b") < 0);
}

static void test_victims_count_and_distinct(void **state)
{
    lc_market_t m;
    lc_market_init(&m, 42);
    const char *ids[] = {"i-000003", "i-000001", "i-000005", "i-000002", "i-000004"};
    size_t out[5];
    assert_int_equal(lc_market_pick_victims(&m, ids, 5, -1, out), 0);
    assert_int_equal(lc_market_pick_victims(&m, ids, 5, 5, out), 0);
    assert_int_equal(lc_market_pick_victims(&m, ids, 5, 7, out), 0);
    size_t n = lc_market_pick_victims(&m, ids, 5, 2, out);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_true(out[i] < 5);
        for (size_t j = 0; j < i; j++)
            assert_true(out[i] != out[j]);
    }
    assert_int_equal(lc_market_pick_victims(&m, ids, 5, 0, out), 5);
}

/* Same seed and same set (in any order) -> same victims; another seed differs somewhere. */
static void test_victims_deterministic(void **state)
{
    const char *a[] = {"i-1", "i-2", "i-3", "i-4", "i-5", "i-6", "i-7", "i-8"};
    const char *b[] = {"i-8", "i-3", "i-1", "i-6", "i-2", "i-7", "i-4", "i-5"};
    int differs = 0;
    for (uint64_t seed = 1; seed < 20; seed++) {
        lc_market_t m1, m2, m3;
        lc_market_init(&m1, seed);
        lc_market_init(&m2, seed);
        lc_market_init(&m3, seed + 1000);
        size_t o1[8], o2[8], o3[8];
        size_t n1 = lc_market_pick_victims(&m1, a, 8, 5, o1);
        size_t n2 = lc_market_pick_victims(&m2, b, 8, 5, o2);
        size_t n3 = lc_market_pick_victims(&m3, a, 8, 5, o3);
        assert_int_equal(n1, 3);
        assert_int_equal(n2, 3);
        assert_int_equal(n3, 3);
        for (size_t i = 0; i < 3; i++) {
            assert_string_equal(a[o1[i]], b[o2[i]]);
            if (strcmp(a[o1[i]], a[o3[i]]) != 0)
                differs = 1;
        }
    }
    assert_true(differs);
}

/* Over many draws every instance gets picked sometimes: no fixed bias. */
static void test_victims_spread(void **state)
{
    lc_market_t m;
    lc_market_init(&m, 7);
    const char *ids[] = {"a", "b", "c", "d"};
    int hits[4] = {0};
    for (int k = 0; k < 400; k++) {
        size_t out[4];
        size_t n = lc_market_pick_victims(&m, ids, 4, 3, out);
        assert_int_equal(n, 1);
        hits[out[0]]++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(hits[i] > 50);
}

static void test_trace_parse(void **state)
{
    lc_trace_t t;
    char *err = NULL;
    assert_int_equal(
        lc_trace_parse("{\"metadata\": {\"gap_seconds\": 300}, \"data\": [4, 4, 1, 0]}", &t, &err),
        0);
    assert_int_equal(t.n, 4);
    assert_true(t.gap_seconds == 300);
    assert_int_equal(t.data[2], 1);
    assert_int_equal(t.data[3], 0);
    lc_trace_free(&t);
    assert_true(lc_trace_parse("{\"data\": [1]}", &t, &err) < 0);
    assert_non_null(err);
    free(err);
    err = NULL;
    assert_true(lc_trace_parse("{\"metadata\": {\"gap_seconds\": 1}, \"data\": []}", &t, &err) < 0);
    free(err);
    err = NULL;
    assert_true(
        lc_trace_parse("{\"metadata\": {\"gap_seconds\": 1}, \"data\": [1, -1]}", &t, &err) < 0);
    free(err);
    err = NULL;
    assert_true(lc_trace_parse("[1,2]", &t, &err) < 0);
    free(err);
}

static void test_trace_file_zone(void **state)
{
    char z[40];
    lc_trace_file_zone("us-east-1f_v100_1.json", z, sizeof(z));
    assert_string_equal(z, "us-east-1f");
    lc_trace_file_zone("/x/y/asia-northeast1-a_a100_40gb_8.json", z, sizeof(z));
    assert_string_equal(z, "asia-northeast1-a");
    lc_trace_file_zone("plain.json", z, sizeof(z));
    assert_string_equal(z, "plain");
}

static void test_trace_tick_speed(void **state)
{
    double next;
    /* gap 300 s at speed 1000: each tick lasts 0.3 s. */
    assert_int_equal(lc_trace_tick(100.0, 100.0, 300, 1000, &next), 0);
    assert_true(next > 100.299 && next < 100.301);
    assert_int_equal(lc_trace_tick(100.0, 100.29, 300, 1000, &next), 0);
    assert_int_equal(lc_trace_tick(100.0, 100.3, 300, 1000, &next), 1);
    assert_true(next > 100.599 && next < 100.601);
    assert_int_equal(lc_trace_tick(100.0, 101.0, 300, 1000, &next), 3);
    /* speed 1: real time */
    assert_int_equal(lc_trace_tick(0, 599.9, 300, 1, &next), 1);
    assert_int_equal(lc_trace_tick(0, 600, 300, 1, &next), 2);
    /* before start: tick 0 */
    assert_int_equal(lc_trace_tick(50, 10, 300, 1, &next), 0);
    assert_true(next == 350);
    /* fractional speeds slow it down */
    assert_int_equal(lc_trace_tick(0, 5, 1, 0.5, &next), 2);
    /* exact boundaries despite floating point: tick k starts at k * 0.1 */
    for (int k = 0; k < 1000; k++) {
        double t0 = 1e9 + k * (3.0 / 30.0);
        long tick = lc_trace_tick(1e9, t0 + 1e-6, 3, 30, NULL);
        assert_int_equal(tick, k);
    }
}

static void test_trace_map(void **state)
{
    char *files[] = {"us-east-1f_v100_1.json", "us-east-2a_v100_1.json", "us-west-2c_v100_1.json"};
    char *cat[] = {"us-east-1a", "us-east-1f", "us-west-2c"};
    char out[3][40];
    /* by name */
    assert_int_equal(lc_trace_map(files, 3, NULL, 0, cat, 3, out), 2);
    assert_string_equal(out[0], "us-east-1f");
    assert_string_equal(out[1], "");
    assert_string_equal(out[2], "us-west-2c");
    /* explicit zones, in sorted file order; extra files ignored */
    char *zones[] = {"z1", "z2"};
    assert_int_equal(lc_trace_map(files, 3, zones, 2, cat, 3, out), 2);
    assert_string_equal(out[0], "z1");
    assert_string_equal(out[1], "z2");
    assert_string_equal(out[2], "");
    /* duplicate zone names: the first file wins */
    char *dup[] = {"us-east-1f_k80_1.json", "us-east-1f_v100_1.json"};
    assert_int_equal(lc_trace_map(dup, 2, NULL, 0, cat, 3, out), 1);
    assert_string_equal(out[0], "us-east-1f");
    assert_string_equal(out[1], "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_default_unlimited),
        cmocka_unit_test(test_capacity_all),
        cmocka_unit_test(test_victims_count_and_distinct),
        cmocka_unit_test(test_victims_deterministic),
        cmocka_unit_test(test_victims_spread),
        cmocka_unit_test(test_trace_parse),
        cmocka_unit_test(test_trace_file_zone),
        cmocka_unit_test(test_trace_tick_speed),
        cmocka_unit_test(test_trace_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
