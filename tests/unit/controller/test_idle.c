/* The idle-stop rule of the controllers (ctl_idle.h), with the clock passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl_idle.h"

static void test_stops_after_idle_period_once(void **state)
{
    (void)state;
    ctl_idle_t i = {.idle_s = 10, .since = -1};
    assert_false(ctl_idle_tick(&i, true, 0));
    assert_false(ctl_idle_tick(&i, false, 1)); /* idle from t=1 */
    assert_false(ctl_idle_tick(&i, false, 10.9));
    assert_true(ctl_idle_tick(&i, false, 11));
    assert_false(ctl_idle_tick(&i, false, 30)); /* once */
}

static void test_work_restarts_the_count(void **state)
{
    (void)state;
    ctl_idle_t i = {.idle_s = 10, .since = -1};
    assert_false(ctl_idle_tick(&i, false, 0));
    assert_false(ctl_idle_tick(&i, true, 9)); /* a job arrived */
    assert_false(ctl_idle_tick(&i, false, 12));
    assert_false(ctl_idle_tick(&i, false, 21.5));
    assert_true(ctl_idle_tick(&i, false, 22));
}

static void test_zero_disables(void **state)
{
    (void)state;
    ctl_idle_t i = {.idle_s = 0, .since = -1};
    for (double t = 0; t < 1e6; t += 1e5)
        assert_false(ctl_idle_tick(&i, false, t));
}

static void test_stopped_mark(void **state)
{
    (void)state;
    char dir[] = "/tmp/sky-idle-XXXXXX";
    struct stat st;
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/controller.stopped", dir);
    ctl_stopped_mark(dir, true);
    assert_int_equal(stat(path, &st), 0);
    ctl_stopped_mark(dir, false);
    assert_int_not_equal(stat(path, &st), 0);
    ctl_stopped_mark(dir, false); /* absent already: fine */
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stops_after_idle_period_once),
        cmocka_unit_test(test_work_restarts_the_count),
        cmocka_unit_test(test_zero_disables),
        cmocka_unit_test(test_stopped_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
