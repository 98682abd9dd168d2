#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dotenv.h"
#include "core/err.h"
#include "core/mem.h"

/* Entries as "K=V;" pairs, so that a whole parse compares as one string. */
static int collect(const char *key, const char *value, void *arg)
{
    char **acc = arg;
    char *next = core_xasprintf("%s%s=%s;", *acc, key, value);
    free(*acc);
    *acc = next;
    return 0;
}

static char *parse(const char *text)
{
    char *acc = core_xstrdup(""), *err = NULL;
    int rc = core_dotenv_parse(text, strlen(text), "t.env", collect, &acc, &err);
    if (rc < 0)
        fail_msg("unexpected error: %s", err);
    return acc;
}

static void expect(const char *text, const char *want)
{
    char *got = parse(text);
    assert_string_equal(got, want);
    free(got);
}

static void expect_err(const char *text, const char *want)
{
    char *acc = core_xstrdup(""), *err = NULL;
    assert_int_equal(core_dotenv_parse(text, strlen(text), "t.env", collect, &acc, &err),
                     CORE_ESPEC);
    assert_string_equal(err, want);
    free(err);
    free(acc);
}

static void test_forms(void **state)
{
    (void)state;
    expect("", "");
    expect("\n  \n# only a comment\n", "");
    expect("A=1\nB = two words \nexport C=3\r\n", "A=1;B=two words;C=3;");
    expect("A=x # comment\nB=x#not-a-comment\nC= #starts\n", "A=x;B=x#not-a-comment;C=#starts;");
    expect("A=\nB=''\nC=\"\"\n", "A=;B=;C=;");
    expect("A='a \\n b' # c\nB=\"a\\n\\t\\\"b\\\\ \\q\"\n", "A=a \\n b;B=a\n\t\"b\\ \\q;");
    expect("A=\"line1\nline2\"\nB=2\n", "A=line1\nline2;B=2;");
    expect("A=1\nA=2", "A=1;A=2;"); /* the caller decides: the last one wins in the CLI */
    expect("export=1\n", "export=1;");
    expect("a_B9=ok", "a_B9=ok;");
}

static void test_errors(void **state)
{
    (void)state;
    expect_err("A=1\nJUSTAKEY\n", "t.env:2: expected KEY=VALUE (a key is letters, digits and _)");
    expect_err("9A=1\n", "t.env:1: expected KEY=VALUE (a key is letters, digits and _)");
    expect_err("A-B=1\n", "t.env:1: expected KEY=VALUE (a key is letters, digits and _)");
    expect_err("A=1\n\nB=\"open\nstill\n", "t.env:3: the quoted value is never closed");
    expect_err("A=\"x\"\nB='a'b\n", "t.env:2: unexpected text after the closing quote");
    expect_err("A=\"1\n2\" junk\n", "t.env:2: unexpected text after the closing quote");
    char *acc = core_xstrdup(""), *err = NULL;
    assert_int_equal(core_dotenv_parse("A=1\0B=2", 7, "t.env", collect, &acc, &err), CORE_ESPEC);
    assert_string_equal(err, "t.env:1: the file contains a NUL byte");
    free(err);
    free(acc);
}

static int stop_at_b(const char *key, const char *value, void *arg)
{
    (void)value;
    ++*(int *)arg;
    return strcmp(key, "B") == 0 ? -E2BIG : 0;
}

static void test_callback_stops_and_load(void **state)
{
    (void)state;
    int seen = 0;
    char *err = NULL;
    assert_int_equal(core_dotenv_parse("A=1\nB=2\nC=3\n", 12, "t.env", stop_at_b, &seen, &err),
                     -E2BIG);
    assert_int_equal(seen, 2);
    assert_null(err);

    char path[] = "/tmp/sky-dotenv-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("K=v\n", f);
    fclose(f);
    char *acc = core_xstrdup("");
    assert_int_equal(core_dotenv_load(path, collect, &acc, &err), 0);
    assert_string_equal(acc, "K=v;");
    free(acc);
    remove(path);
    assert_int_equal(core_dotenv_load(path, collect, &acc, &err), -ENOENT);
    assert_non_null(strstr(err, "cannot read /tmp/sky-dotenv-"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_callback_stops_and_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
