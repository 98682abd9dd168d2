#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

static void test_fmt_duration(void **state)
{
    (void)state;
    char b[64];
    core_fmt_duration(77, b, sizeof(b));
    assert_string_equal(b, "1m 17s");
    core_fmt_duration(2 * 3600 + 47 * 60 + 18, b, sizeof(b));
    assert_string_equal(b, "2h 47m 18s");
    core_fmt_duration(0.4, b, sizeof(b));
    assert_string_equal(b, "< 1 second");
    core_fmt_duration(-1, b, sizeof(b));
    assert_string_equal(b, "-");
    core_fmt_duration(86400 + 5, b, sizeof(b));
    assert_string_equal(b, "1d 5s");
    core_fmt_duration(3600, b, sizeof(b));
    assert_string_equal(b, "1h");
}

static void test_fmt_ago(void **state)
{
    (void)state;
    char b[64];
    core_fmt_ago(13, b, sizeof(b));
    assert_string_equal(b, "13 secs ago");
    core_fmt_ago(60, b, sizeof(b));
    assert_string_equal(b, "1 min ago");
    core_fmt_ago(4 * 60 + 5, b, sizeof(b));
    assert_string_equal(b, "4 mins ago");
    core_fmt_ago(2 * 3600, b, sizeof(b));
    assert_string_equal(b, "2 hrs ago");
}

static void test_files_and_token(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/sky-util-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char *deep = core_xasprintf("%s/a/b/c", tmpl);
    assert_int_equal(core_mkdir_p(deep, 0700), 0);
    assert_int_equal(core_mkdir_p(deep, 0700), 0);
    char *file = core_xasprintf("%s/f.txt", deep);
    assert_int_equal(core_write_file(file, "hello", 5, 0600), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(core_read_file(file, 100, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    assert_int_equal(core_read_file(file, 3, &data, &len), -EFBIG);

    char *tok = core_xasprintf("%s/token", tmpl), *t1 = NULL, *t2 = NULL;
    assert_int_equal(core_token_load(tok, &t1), 0);
    assert_int_equal(strlen(t1), 64);
    assert_int_equal(core_token_load(tok, &t2), 0);
    assert_string_equal(t1, t2);
    struct stat st;
    assert_int_equal(stat(tok, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(core_rm_rf(tmpl), 0);
    assert_int_equal(access(tmpl, F_OK), -1);
    assert_int_equal(core_rm_rf(tmpl), 0);
    free(t1);
    free(t2);
    free(tok);
    free(file);
    free(deep);
}

static void test_home(void **state)
{
    (void)state;
    setenv("SKY_HOME", "/tmp/sky-util-home-test", 1);
    char *p = core_home_path("x/y");
    assert_string_equal(p, "/tmp/sky-util-home-test/x/y");
    assert_int_equal(access("/tmp/sky-util-home-test", F_OK), 0);
    free(p);
    core_rm_rf("/tmp/sky-util-home-test");
}

static void test_errors(void **state)
{
    (void)state;
    assert_string_equal(core_err_name(CORE_ENOCAPACITY), "CORE_ENOCAPACITY");
    assert_string_equal(core_strerror(CORE_ENOCAPACITY), "no capacity for the requested resources");
    assert_string_equal(core_err_name(-ECONNREFUSED), "ECONNREFUSED");
}

static void test_parse_num(void **state)
{
    (void)state;
    double d = -1;
    assert_int_equal(core_parse_num("2.5", 0, 10, &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(core_parse_num(" 1e1", 0, 10, &d), 0);
    assert_true(d == 10);
    d = 7;
    const char *bad[] = {"", " ", "x", "1x", "1 2", "1 ", "inf", "nan", "1e999", "-0.5", "10.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(core_parse_num(bad[i], 0, 10, &d), -EINVAL);
    assert_true(d == 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_duration),
        cmocka_unit_test(test_fmt_ago),
        cmocka_unit_test(test_files_and_token),
        cmocka_unit_test(test_home),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_parse_num),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
