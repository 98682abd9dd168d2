#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ctl_backoff.h"

/* A scripted RNG: returns the listed values in turn. */
typedef struct script {
    const double *v;
    size_t n, i;
} script_t;

static double scripted(void *arg)
{
    script_t *s = arg;
    double v = s->v[s->i % s->n];

    s->i++;
    return v;
}

static void test_no_jitter_sequence(void **state)
{
    ctl_backoff_t b;
    /* initial 60, cap 300: 60, 96, 153.6, 245.76, 300, 300 */
    const double want[] = {60, 96, 153.6, 245.76, 300, 300};

    ctl_backoff_init(&b, 60, 5, NULL, NULL);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_float_equal(ctl_backoff_next(&b), want[i], 1e-9);
}

static void test_first_value_capped(void **state)
{
    ctl_backoff_t b;

    /* max_factor < 1: the cap initial*max_factor applies to the first value too. */
    ctl_backoff_init(&b, 10, 0.5, NULL, NULL);
    assert_float_equal(ctl_backoff_next(&b), 5, 1e-9);
    assert_float_equal(ctl_backoff_next(&b), 5, 1e-9);
}

static void test_jitter_is_cumulative(void **state)
{
    /* u = 1.0 gives +40%, u = 0 gives -40%, u = 0.5 gives none. */
    const double us[] = {1.0, 0.0, 0.5};
    script_t s = {us, 3, 0};
    ctl_backoff_t b;
    double v1, v2, v3;

    ctl_backoff_init(&b, 60, 5, scripted, &s);
    v1 = ctl_backoff_next(&b);
    assert_float_equal(v1, 84, 1e-9); /* 60 * 1.4 */
    v2 = ctl_backoff_next(&b);
    /* base is the jittered 84: 84*1.6 = 134.4, then -40% */
    assert_float_equal(v2, 134.4 * 0.6, 1e-9);
    v3 = ctl_backoff_next(&b);
    assert_float_equal(v3, v2 * 1.6, 1e-9);
}

static void test_jitter_can_exceed_cap(void **state)
{
    const double us[] = {1.0};
    script_t s = {us, 1, 0};
    ctl_backoff_t b;
    double v = 0;

    ctl_backoff_init(&b, 60, 5, scripted, &s);
    for (int i = 0; i < 10; i++)
        v = ctl_backoff_next(&b);
    assert_float_equal(v, 420, 1e-9); /* min(.., 300) * 1.4 */
}

static void test_seeded_rng_bounds_and_determinism(void **state)
{
    ctl_rng_t r1, r2;
    ctl_backoff_t a, b;

    ctl_rng_seed(&r1, 42);
    ctl_rng_seed(&r2, 42);
    ctl_backoff_init(&a, 1, 5, ctl_rng_uniform, &r1);
    ctl_backoff_init(&b, 1, 5, ctl_rng_uniform, &r2);
    for (int i = 0; i < 1000; i++) {
        double x = ctl_backoff_next(&a);

        assert_float_equal(x, ctl_backoff_next(&b), 0);
        assert_true(x > 0);
        assert_true(x <= 5 * 1.4 + 1e-9);
    }
    for (int i = 0; i < 10000; i++) {
        double u = ctl_rng_uniform(&r1);

        assert_true(u >= 0 && u < 1);
    }
}

static void test_reset(void **state)
{
    ctl_backoff_t b;

    ctl_backoff_init(&b, 1, 5, NULL, NULL);
    ctl_backoff_next(&b);
    ctl_backoff_next(&b);
    ctl_backoff_reset(&b);
    assert_float_equal(ctl_backoff_next(&b), 1, 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_jitter_sequence),
        cmocka_unit_test(test_first_value_capped),
        cmocka_unit_test(test_jitter_is_cumulative),
        cmocka_unit_test(test_jitter_can_exceed_cap),
        cmocka_unit_test(test_seeded_rng_bounds_and_determinism),
        cmocka_unit_test(test_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
