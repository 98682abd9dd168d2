#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CLI is not part of skyctl (it builds into `sky` only): compile it in. */
#include "../../../controller/cli_opt.c"
#include "core/mem.h"

/* A ctl_cli_t whose help and usage errors land in memory. */
typedef struct {
    ctl_cli_t cli;
    char *out, *err;
    size_t out_len, err_len;
} cap_t;

static void cap_open(cap_t *c, const char *prog)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->cli.prog, sizeof(c->cli.prog), "%s", prog);
    c->cli.out = open_memstream(&c->out, &c->out_len);
    c->cli.err = open_memstream(&c->err, &c->err_len);
    assert_non_null(c->cli.out);
    assert_non_null(c->cli.err);
}

static void cap_flush(cap_t *c)
{
    fflush(c->cli.out);
    fflush(c->cli.err);
}

static void cap_close(cap_t *c)
{
    fclose(c->cli.out);
    fclose(c->cli.err);
    free(c->out);
    free(c->err);
}

/* argv from a NULL-terminated list; argv[0] is the command's name. */
#define ARGV(...) ((char *[]){"cmd", __VA_ARGS__, NULL})
static int argc_of(char **argv)
{
    int n = 0;
    while (argv[n])
        n++;
    return n;
}

/* The values of a command shaped like `sky serve up` plus every other type. */
typedef struct {
    const char *name, *file, *mode;
    bool yes, verbose;
    int follow;
    long tail;
    double speed;
    ctl_cli_env_t env;
} vals_t;

static int parse_up(cap_t *c, vals_t *v, char **argv)
{
    static const char *const modes[] = {"rolling", "blue_green", NULL};
    memset(v, 0, sizeof(*v));
    v->mode = "rolling";
    v->follow = -1;
    v->tail = -1;
    v->speed = 1;
    const ctl_opt_t opts[] = {
        CTL_OPT_STR('n', "service-name", "NAME", "the service's name", &v->name),
        CTL_OPT_YES(&v->yes),
        CTL_OPT_FLAG('v', "verbose", "more", &v->verbose),
        CTL_OPT_BOOL(0, "follow", "keep streaming", &v->follow),
        CTL_OPT_INT(0, "tail", "N", "last N lines", &v->tail, 0, 100),
        CTL_OPT_NUM(0, "speed", "X", "speed", &v->speed, 0, 10),
        CTL_OPT_CHOICE(0, "mode", "update mode", &v->mode, modes),
        CTL_OPTS_ENV(&v->env),
        CTL_ARG_STR("SERVICE_YAML", "the task YAML", &v->file),
        CTL_OPT_END,
    };
    int rc = ctl_cli_parse(&c->cli, opts, argc_of(argv), argv);
    cap_flush(c);
    return rc;
}

static void test_values_in_any_order(void **state)
{
    (void)state;
    cap_t c;
    vals_t v;
    cap_open(&c, "sky serve up");
    char **argv = ARGV("--env", "A=1", "svc.yaml", "-n", "web", "--tail=7", "--env-file", "f.env",
                       "-yv", "--speed", "2.5", "--mode", "blue_green", "--env", "B",
                       "--no-follow");
    assert_int_equal(parse_up(&c, &v, argv), CTL_CLI_RUN);
    assert_string_equal(v.name, "web");
    assert_string_equal(v.file, "svc.yaml");
    assert_true(v.yes && v.verbose);
    assert_int_equal(v.follow, 0);
    assert_int_equal(v.tail, 7);
    assert_true(v.speed == 2.5);
    assert_string_equal(v.mode, "blue_green");
    assert_string_equal(v.env.file, "f.env");
    assert_int_equal(v.env.n, 2);
    assert_string_equal(v.env.kv[0], "A=1");
    assert_string_equal(v.env.kv[1], "B");
    /* The positional argument was moved to argv[1]. */
    assert_string_equal(argv[1], "svc.yaml");
    assert_int_equal(c.out_len + c.err_len, 0);
    cap_close(&c);
}

static void test_short_forms_and_double_dash(void **state)
{
    (void)state;
    cap_t c;
    vals_t v;
    cap_open(&c, "sky serve up");
    /* -nNAME, the last value wins, --follow, and "--" makes "-y" a file name. */
    assert_int_equal(parse_up(&c, &v, ARGV("-nfirst", "--service-name=second", "--follow", "--",
                                           "-y")),
                     CTL_CLI_RUN);
    assert_string_equal(v.name, "second");
    assert_string_equal(v.file, "-y");
    assert_false(v.yes);
    assert_int_equal(v.follow, 1);
    /* A value may start with '-'; an absent BOOL keeps the caller's value. */
    assert_int_equal(parse_up(&c, &v, ARGV("-n", "-x", "-")), CTL_CLI_RUN);
    assert_string_equal(v.name, "-x");
    assert_string_equal(v.file, "-");
    assert_int_equal(v.follow, -1);
    cap_close(&c);
}

static void test_help_exits_zero_before_anything_else(void **state)
{
    (void)state;
    /* With the positional argument missing too, as in `sky down --help`. */
    static char *const forms[][4] = {
        {"cmd", "--help", NULL},
        {"cmd", "-h", NULL},
        {"cmd", "a.yaml", "-h", NULL},
        {"cmd", "-yh", NULL},
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(forms); i++) {
        cap_t c;
        vals_t v;
        cap_open(&c, "sky serve up");
        char *argv[4];
        memcpy(argv, forms[i], sizeof(argv));
        assert_int_equal(parse_up(&c, &v, argv), 0);
        assert_int_equal(c.err_len, 0);
        assert_true(strncmp(c.out, "usage: sky serve up [OPTIONS] SERVICE_YAML\n", 43) == 0);
        cap_close(&c);
    }
}

static void test_help_text(void **state)
{
    (void)state;
    cap_t c;
    vals_t v;
    ctl_cli_cmd_t cmd = {"up", "Launch a service", NULL, NULL};
    cap_open(&c, "sky serve up");
    c.cli.cmd = &cmd;
    assert_int_equal(parse_up(&c, &v, ARGV("--help")), 0);
    assert_string_equal(
        c.out, "usage: sky serve up [OPTIONS] SERVICE_YAML\n"
               "\n"
               "Launch a service.\n"
               "\n"
               "Arguments:\n"
               "  SERVICE_YAML                the task YAML\n"
               "\n"
               "Options:\n"
               "  -n, --service-name NAME     the service's name\n"
               "  -y, --yes                   do not ask for confirmation\n"
               "  -v, --verbose               more\n"
               "      --follow / --no-follow  keep streaming\n"
               "      --tail N                last N lines\n"
               "      --speed X               speed\n"
               "      --mode [rolling|blue_green]\n"
               "                              update mode\n"
               "  -h, --help                  show this help and exit\n"
               "\n"
               "Task environment:\n"
               "      --env-file FILE         task environment from a dotenv file\n"
               "      --env KEY[=VALUE]       one variable (KEY alone: its value here); "
               "overrides --env-file; repeatable\n");
    cap_close(&c);
}

/* Each case: the arguments, then a piece of the error line. */
static void test_usage_errors(void **state)
{
    (void)state;
    static const struct {
        char *argv[6];
        const char *says;
    } cases[] = {
        {{"cmd", NULL}, "missing SERVICE_YAML"},
        {{"cmd", "a", "b", NULL}, "unexpected argument 'b'"},
        {{"cmd", "a", "--bogus", NULL}, "unknown option '--bogus'"},
        {{"cmd", "a", "-x", NULL}, "unknown option '-x'"},
        {{"cmd", "a", "-yx", NULL}, "unknown option '-x'"},
        {{"cmd", "a", "-n", NULL}, "option '-n' needs a value"},
        {{"cmd", "a", "--service-name", NULL}, "option '--service-name' needs a value"},
        {{"cmd", "a", "--yes=1", NULL}, "option '--yes' takes no value"},
        {{"cmd", "a", "--help=1", NULL}, "option '--help' takes no value"},
        {{"cmd", "a", "--no-yes", NULL}, "unknown option '--no-yes'"},
        /* No abbreviations, unlike getopt_long. */
        {{"cmd", "a", "--serv", "x", NULL}, "unknown option '--serv'"},
        {{"cmd", "a", "--tail", "x", NULL}, "invalid --tail 'x': expected a whole number"},
        {{"cmd", "a", "--tail", "-3", NULL}, "invalid --tail '-3'"},
        {{"cmd", "a", "--tail", "101", NULL}, "from 0 to 100"},
        {{"cmd", "a", "--tail", "1.5", NULL}, "invalid --tail '1.5'"},
        {{"cmd", "a", "--tail=", NULL}, "invalid --tail ''"},
        {{"cmd", "a", "--tail", "7 ", NULL}, "invalid --tail '7 '"},
        {{"cmd", "a", "--speed", "inf", NULL}, "invalid --speed 'inf': expected a number"},
        {{"cmd", "a", "--speed", "nan", NULL}, "invalid --speed 'nan'"},
        {{"cmd", "a", "--mode", "sideways", NULL},
         "invalid --mode 'sideways' (choose from 'rolling', 'blue_green')"},
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cases); i++) {
        cap_t c;
        vals_t v;
        cap_open(&c, "sky serve up");
        char *argv[6];
        memcpy(argv, cases[i].argv, sizeof(argv));
        assert_int_equal(parse_up(&c, &v, argv), 2);
        assert_int_equal(c.out_len, 0);
        assert_true(strncmp(c.err, "sky serve up: ", 14) == 0);
        if (strstr(c.err, cases[i].says) == NULL)
            fail_msg("case %zu: '%s' not in:\n%s", i, cases[i].says, c.err);
        assert_non_null(strstr(c.err, "\nusage: sky serve up [OPTIONS] SERVICE_YAML\n"
                                      "Try 'sky serve up --help' for more information.\n"));
        cap_close(&c);
    }
}

static void test_list_room(void **state)
{
    (void)state;
    cap_t c;
    const char *kv[2];
    size_t n = 0;
    const ctl_opt_t opts[] = {
        CTL_OPT_LIST(0, "env", "K=V", "an env", kv, &n, 2),
        CTL_OPT_END,
    };
    cap_open(&c, "t");
    char **ok = ARGV("--env", "a", "--env", "b");
    assert_int_equal(ctl_cli_parse(&c.cli, opts, argc_of(ok), ok), CTL_CLI_RUN);
    assert_int_equal(n, 2);
    n = 0;
    char **over = ARGV("--env", "a", "--env", "b", "--env", "c");
    assert_int_equal(ctl_cli_parse(&c.cli, opts, argc_of(over), over), 2);
    cap_flush(&c);
    assert_non_null(strstr(c.err, "too many --env options (at most 2)"));
    cap_close(&c);
}

/* `sky cloud capacity [ZONE] CAPACITY` and `sky serve logs NAME [REPLICA_ID]`. */
static void test_optional_positionals(void **state)
{
    (void)state;
    const char *zone, *cap;
    const ctl_opt_t opts[] = {
        CTL_ARG_STR_OPT("ZONE", "the zone", &zone),
        CTL_ARG_STR("CAPACITY", "N or unlimited", &cap),
        CTL_OPT_END,
    };
    cap_t c;
    cap_open(&c, "sky cloud capacity");
    zone = cap = NULL;
    char **one = ARGV("5");
    assert_int_equal(ctl_cli_parse(&c.cli, opts, argc_of(one), one), CTL_CLI_RUN);
    assert_null(zone);
    assert_string_equal(cap, "5");
    char **two = ARGV("z", "6");
    assert_int_equal(ctl_cli_parse(&c.cli, opts, argc_of(two), two), CTL_CLI_RUN);
    assert_string_equal(zone, "z");
    assert_string_equal(cap, "6");
    char *none[] = {"cmd", NULL};
    assert_int_equal(ctl_cli_parse(&c.cli, opts, 1, none), 2);
    cap_flush(&c);
    assert_non_null(strstr(c.err, "missing CAPACITY"));
    assert_non_null(strstr(c.err, "usage: sky cloud capacity [OPTIONS] [ZONE] CAPACITY\n"));
    cap_close(&c);

    const char *name = NULL;
    long id = -1;
    const ctl_opt_t logs[] = {
        CTL_ARG_STR("SERVICE_NAME", "the service", &name),
        CTL_ARG_INT_OPT("REPLICA_ID", "the replica", &id, 1, INT_MAX),
        CTL_OPT_END,
    };
    cap_open(&c, "sky serve logs");
    char **a = ARGV("svc");
    assert_int_equal(ctl_cli_parse(&c.cli, logs, argc_of(a), a), CTL_CLI_RUN);
    assert_string_equal(name, "svc");
    assert_int_equal(id, -1);
    char **b = ARGV("svc", "3");
    assert_int_equal(ctl_cli_parse(&c.cli, logs, argc_of(b), b), CTL_CLI_RUN);
    assert_int_equal(id, 3);
    char **zero = ARGV("svc", "0");
    assert_int_equal(ctl_cli_parse(&c.cli, logs, argc_of(zero), zero), 2);
    cap_flush(&c);
    assert_non_null(strstr(c.err, "invalid REPLICA_ID '0'"));
    cap_close(&c);
}

static void test_rest(void **state)
{
    (void)state;
    char **names = NULL;
    int n = -1;
    bool yes = false;
    const ctl_opt_t required[] = {
        CTL_OPT_YES(&yes),
        CTL_ARG_REST("CLUSTERS", "the clusters", &names, &n),
        CTL_OPT_END,
    };
    cap_t c;
    cap_open(&c, "sky down");
    char **argv = ARGV("a", "-y", "b", "--", "--c");
    assert_int_equal(ctl_cli_parse(&c.cli, required, argc_of(argv), argv), CTL_CLI_RUN);
    assert_true(yes);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    assert_string_equal(names[2], "--c");
    char **none = ARGV("-y");
    assert_int_equal(ctl_cli_parse(&c.cli, required, argc_of(none), none), 2);
    cap_flush(&c);
    assert_non_null(strstr(c.err, "missing CLUSTERS\nusage: sky down [OPTIONS] CLUSTERS...\n"));
    cap_close(&c);

    const ctl_opt_t optional[] = {
        CTL_ARG_REST_OPT("NAMES", "the services", &names, &n),
        CTL_OPT_END,
    };
    cap_open(&c, "sky serve status");
    char *empty[] = {"cmd", NULL};
    assert_int_equal(ctl_cli_parse(&c.cli, optional, 1, empty), CTL_CLI_RUN);
    assert_int_equal(n, 0);
    assert_int_equal(ctl_cli_parse(&c.cli, optional, 2, ARGV("--help")), 0);
    cap_flush(&c);
    assert_true(strncmp(c.out, "usage: sky serve status [OPTIONS] [NAMES]...\n", 45) == 0);
    cap_close(&c);
}

/* The cases of the CLI's former ctl_parse_long, and core_parse_num's strictness. */
static void test_int(void **state)
{
    (void)state;
    cap_t c;
    cap_open(&c, "t");
    long v = 0;
    assert_int_equal(ctl_cli_int(&c.cli, "ID", "42", 1, 100, &v), CTL_CLI_RUN);
    assert_int_equal(v, 42);
    const char *bad[] = {"0", "12x", "", "101", "1.5", "inf", "nan", "-1", "1 ", "x"};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(bad); i++)
        assert_int_equal(ctl_cli_int(&c.cli, "ID", bad[i], 1, 100, &v), 2);
    assert_int_equal(v, 42);
    cap_flush(&c);
    assert_non_null(strstr(c.err, "t: invalid ID '12x': expected a whole number from 1 to 100\n"));
    cap_close(&c);
}

static void test_table_checks(void **state)
{
    (void)state;
    bool a = false, b = false;
    int t = -1;
    const char *s = NULL;
    char **rest = NULL;
    int n = 0;
    ctl_cli_env_t env = {0};
    const char *why = NULL;

    const ctl_opt_t ok[] = {CTL_OPT_FLAG('a', "all", "x", &a), CTL_OPTS_ENV(&env),
                            CTL_ARG_REST("X", "x", &rest, &n), CTL_OPT_END};
    assert_int_equal(ctl_opt_check(ok, &why), 0);

    const ctl_opt_t dup_long[] = {CTL_OPT_FLAG('a', "all", "x", &a),
                                  CTL_OPT_FLAG(0, "all", "y", &b), CTL_OPT_END};
    const ctl_opt_t dup_short[] = {CTL_OPT_FLAG('a', "all", "x", &a),
                                   CTL_OPT_FLAG('a', "any", "y", &b), CTL_OPT_END};
    /* A group included twice, or an option that a group also declares. */
    const ctl_opt_t dup_group[] = {CTL_OPTS_ENV(&env), CTL_OPT_STR(0, "env", "K", "x", &s),
                                   CTL_OPT_END};
    const ctl_opt_t help[] = {CTL_OPT_FLAG('h', "host", "x", &a), CTL_OPT_END};
    const ctl_opt_t help2[] = {CTL_OPT_FLAG(0, "help", "x", &a), CTL_OPT_END};
    const ctl_opt_t shadow[] = {CTL_OPT_BOOL(0, "follow", "x", &t),
                                CTL_OPT_FLAG(0, "no-follow", "y", &a), CTL_OPT_END};
    const ctl_opt_t rest_first[] = {CTL_ARG_REST("X", "x", &rest, &n),
                                    CTL_ARG_STR("Y", "y", &s), CTL_OPT_END};
    const ctl_opt_t no_metavar[] = {CTL_OPT_STR(0, "name", NULL, "x", &s), CTL_OPT_END};
    const ctl_opt_t no_dest[] = {CTL_OPT_FLAG(0, "all", "x", NULL), CTL_OPT_END};
    const ctl_opt_t dashes[] = {CTL_OPT_FLAG(0, "--all", "x", &a), CTL_OPT_END};
    const ctl_opt_t *bad[] = {dup_long, dup_short, dup_group, help,     help2,
                              shadow,   rest_first, no_metavar, no_dest, dashes};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(bad); i++) {
        why = NULL;
        assert_int_equal(ctl_opt_check(bad[i], &why), -EINVAL);
        assert_non_null(why);
    }
    /* The parser refuses such a table instead of guessing. */
    cap_t c;
    cap_open(&c, "sky x");
    char *argv[] = {"cmd", NULL};
    assert_int_equal(ctl_cli_parse(&c.cli, dup_long, 1, argv), 1);
    cap_flush(&c);
    assert_string_equal(c.err, "sky x: internal error in the option table: an option declared "
                               "twice\n");
    cap_close(&c);
}

/* ------------------------------------------------------------ the tree */

/* Reports its call on cli->out, where the test reads it. */
static int leaf(ctl_cli_t *cli, int argc, char **argv)
{
    fprintf(cli->out, "ran '%s' argc %d argv[0] '%s'", cli->prog, argc, argv[0]);
    return 42;
}

static const ctl_cli_cmd_t serve_cmds[] = {
    {"up", "Launch a service", leaf, NULL},
    {"status", "Show services", leaf, NULL},
    {NULL, NULL, NULL, NULL},
};
static const ctl_cli_cmd_t top_cmds[] = {
    {"launch", "Launch a task", leaf, NULL},
    {"serve", "Serve things", NULL, serve_cmds},
    {"spot", "The same group under another name", NULL, serve_cmds},
    {NULL, NULL, NULL, NULL},
};
static const ctl_cli_cmd_t root = {"sky", "The CLI", NULL, top_cmds};

static int run_main(cap_t *c, char **argv)
{
    cap_open(c, "unused");
    int rc = ctl_cli_main(&root, argc_of(argv), argv, c->cli.out, c->cli.err);
    cap_flush(c);
    return rc;
}

static void test_tree(void **state)
{
    (void)state;
    cap_t c;

    assert_int_equal(run_main(&c, ((char *[]){"sky", "serve", "up", "a", "-y", NULL})), 42);
    assert_string_equal(c.out, "ran 'sky serve up' argc 3 argv[0] 'up'");
    cap_close(&c);
    assert_int_equal(run_main(&c, ((char *[]){"sky", "spot", "status", NULL})), 42);
    assert_string_equal(c.out, "ran 'sky spot status' argc 1 argv[0] 'status'");
    cap_close(&c);
    assert_int_equal(run_main(&c, ((char *[]){"sky", "launch", "--help", NULL})), 42);
    assert_string_equal(c.out, "ran 'sky launch' argc 2 argv[0] 'launch'");
    cap_close(&c);

    /* A group's help: exit 0, on stdout, every command listed. */
    assert_int_equal(run_main(&c, ((char *[]){"sky", "serve", "--help", NULL})), 0);
    assert_int_equal(c.err_len, 0);
    assert_string_equal(c.out, "usage: sky serve COMMAND [ARGS]...\n"
                               "\n"
                               "Serve things.\n"
                               "\n"
                               "Commands:\n"
                               "  up      Launch a service\n"
                               "  status  Show services\n"
                               "\n"
                               "Run 'sky serve COMMAND --help' for a command's options.\n");
    cap_close(&c);
    assert_int_equal(run_main(&c, ((char *[]){"sky", "-h", NULL})), 0);
    assert_true(strncmp(c.out, "usage: sky COMMAND [ARGS]...\n\nThe CLI.\n", 39) == 0);
    cap_close(&c);

    /* Missing or unknown commands: exit 2, the group's usage on stderr, nothing run. */
    static char *const bad[][4] = {
        {"sky", NULL},
        {"sky", "serve", NULL},
        {"sky", "serve", "nope", NULL},
        {"sky", "--bogus", NULL},
    };
    static const char *const says[] = {"sky: missing command\n", "sky serve: missing command\n",
                                       "sky serve: unknown command 'nope'\n",
                                       "sky: unknown command '--bogus'\n"};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(bad); i++) {
        char *argv[4];
        memcpy(argv, bad[i], sizeof(argv));
        assert_int_equal(run_main(&c, argv), 2);
        assert_int_equal(c.out_len, 0);
        assert_true(strncmp(c.err, says[i], strlen(says[i])) == 0);
        assert_non_null(strstr(c.err, "COMMAND [ARGS]...\n"));
        cap_close(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_in_any_order),
        cmocka_unit_test(test_short_forms_and_double_dash),
        cmocka_unit_test(test_help_exits_zero_before_anything_else),
        cmocka_unit_test(test_help_text),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_list_room),
        cmocka_unit_test(test_optional_positionals),
        cmocka_unit_test(test_rest),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_table_checks),
        cmocka_unit_test(test_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
