#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The CLI's helpers are not part of skyctl (they build into `sky` only), so
 * the test compiles them in, as h2o's unit tests include the .c they test.
 */
#include "../../../controller/cli_opt.c"
#include "../../../controller/cli_util.c"

static void test_seed_services_table(void **state)
{
    (void)state;
    static const char *hdr[] = {"NAME", "VERSION", "UPTIME", "STATUS", "REPLICAS", "ENDPOINT"};
    ctl_table_t *t = ctl_table_new(6, hdr);
    const char *row[] = {"http-server", "1", "1m 17s", "NO_REPLICA", "0/4", "54.227.229.217:30001"};
    ctl_table_add_row(t, row);
    assert_int_equal(ctl_table_nrows(t), 1);
    char *s = ctl_table_render(t);
    /* Exactly the seed's (serve_spot_policy.rst) first table, trailing blanks dropped. */
    assert_string_equal(
        s, "NAME         VERSION  UPTIME  STATUS      REPLICAS  ENDPOINT\n"
           "http-server  1        1m 17s  NO_REPLICA  0/4       54.227.229.217:30001\n");
    free(s);
    ctl_table_free(t);
}

static void test_seed_replica_table(void **state)
{
    (void)state;
    static const char *hdr[] = {"SERVICE_NAME", "ID",        "VERSION", "ENDPOINT",
                                "LAUNCHED",     "RESOURCES", "STATUS",  "REGION"};
    ctl_table_t *t = ctl_table_new(8, hdr);
    const char *r1[] = {
        "http-server",          "1",     "1",       "http://34.23.22.160:8081", "3 min ago",
        "1x GCP([Spot]vCPU=2)", "READY", "us-east1"};
    const char *r2[] = {
        "http-server",          "2",     "1",          "http://34.68.226.193:8081", "3 min ago",
        "1x GCP([Spot]vCPU=2)", "READY", "us-central1"};
    const char *r3[] = {"http-server",   "3",       "1", NULL, "3 mins ago", "1x GCP(vCPU=2)",
                        "SHUTTING_DOWN", "us-east1"};
    ctl_table_add_row(t, r1);
    ctl_table_add_row(t, r2);
    ctl_table_add_row(t, r3);
    char *s = ctl_table_render(t);
    assert_string_equal(
        s,
        "SERVICE_NAME  ID  VERSION  ENDPOINT                   LAUNCHED    RESOURCES             "
        "STATUS         REGION\n"
        "http-server   1   1        http://34.23.22.160:8081   3 min ago   1x GCP([Spot]vCPU=2)  "
        "READY          us-east1\n"
        "http-server   2   1        http://34.68.226.193:8081  3 min ago   1x GCP([Spot]vCPU=2)  "
        "READY          us-central1\n"
        "http-server   3   1        -                          3 mins ago  1x GCP(vCPU=2)        "
        "SHUTTING_DOWN  us-east1\n");
    free(s);
    ctl_table_free(t);
}

static void test_header_only_and_widths(void **state)
{
    (void)state;
    static const char *hdr[] = {"A", "LONGHEADER", "C"};
    ctl_table_t *t = ctl_table_new(3, hdr);
    assert_int_equal(ctl_table_nrows(t), 0);
    char *s = ctl_table_render(t);
    assert_string_equal(s, "A  LONGHEADER  C\n");
    free(s);
    /* A wide cell widens its column for every row; NULL and empty cells print "-". */
    const char *row[] = {"wide-cell", "x", ""};
    ctl_table_add_row(t, row);
    const char *row2[] = {NULL, "yy", "z"};
    ctl_table_add_row(t, row2);
    s = ctl_table_render(t);
    assert_string_equal(s, "A          LONGHEADER  C\n"
                           "wide-cell  x           -\n"
                           "-          yy          z\n");
    free(s);
    ctl_table_free(t);
}

static void test_utf8_width(void **state)
{
    (void)state;
    assert_int_equal(ctl_utf8_width(""), 0);
    assert_int_equal(ctl_utf8_width("abc"), 3);
    assert_int_equal(ctl_utf8_width("\xc3\xa9t\xc3\xa9"), 3); /* "été" */
    static const char *hdr[] = {"N", "X"};
    ctl_table_t *t = ctl_table_new(2, hdr);
    const char *row[] = {"\xc3\xa9t\xc3\xa9", "1"};
    ctl_table_add_row(t, row);
    char *s = ctl_table_render(t);
    assert_string_equal(s, "N    X\n\xc3\xa9t\xc3\xa9  1\n");
    free(s);
    ctl_table_free(t);
}

static void test_many_rows(void **state)
{
    (void)state;
    static const char *hdr[] = {"ID", "V"};
    ctl_table_t *t = ctl_table_new(2, hdr);
    char id[16];
    for (int i = 1; i <= 100; i++) {
        snprintf(id, sizeof(id), "%d", i);
        const char *row[] = {id, "v"};
        ctl_table_add_row(t, row);
    }
    assert_int_equal(ctl_table_nrows(t), 100);
    char *s = ctl_table_render(t);
    assert_true(strncmp(s, "ID   V\n1    v\n", 14) == 0);
    assert_non_null(strstr(s, "\n100  v\n"));
    size_t lines = 0;
    for (const char *p = s; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 101);
    free(s);
    ctl_table_free(t);
}

static void test_small_utils(void **state)
{
    (void)state;
    char *e = ctl_url_escape("a b,c/d-e_f.g~");
    assert_string_equal(e, "a%20b%2Cc%2Fd-e_f.g~");
    free(e);
    char hex[5];
    ctl_random_hex(hex, 4);
    assert_int_equal(strlen(hex), 4);
    for (int i = 0; i < 4; i++)
        assert_non_null(strchr("0123456789abcdef", hex[i]));
}


/* --------------------------------------------------------- task flags */

/* ctl_cli_task_overrides() on <t>: CTL_CLI_RUN with the JSON text, or the exit
 * code with what it printed. */
static int overrides(const ctl_cli_task_t *t, char **text)
{
    char *errbuf = NULL;
    size_t errlen = 0;
    ctl_cli_t cli = {.prog = "sky launch", .err = open_memstream(&errbuf, &errlen)};
    cli.out = cli.err;
    cJSON *ov = NULL;
    int rc = ctl_cli_task_overrides(&cli, t, &ov);
    fclose(cli.err);
    if (rc == CTL_CLI_RUN) {
        *text = cJSON_PrintUnformatted(ov);
        cJSON_Delete(ov);
        free(errbuf);
    } else {
        assert_null(ov);
        *text = errbuf;
    }
    return rc;
}

static void test_task_flags(void **state)
{
    (void)state;
    char *text = NULL;
    char dir[] = "/tmp/sky-test-workdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    ctl_cli_task_t t = CTL_CLI_TASK_INIT;
    /* Nothing given: nothing overridden. */
    assert_int_equal(overrides(&t, &text), CTL_CLI_RUN);
    assert_string_equal(text, "{}");
    free(text);

    t.infra = "gcp/us-east1";
    t.cpus = "4+";
    t.memory = "none";
    t.gpus = "V100:1";
    t.instance_type = "n2-standard-4";
    t.use_spot = 0;
    t.num_nodes = 1;
    t.workdir = dir;
    t.ports[t.n_ports++] = "8080";
    t.ports[t.n_ports++] = "9000-9001";
    t.secrets[t.n_secrets++] = "A=1";
    t.secrets[t.n_secrets++] = "SKY_TEST_SECRET";
    t.secrets[t.n_secrets++] = "A=2"; /* the last one wins */
    t.disk_size = 100;
    t.disk_tier = "best";
    setenv("SKY_TEST_SECRET", "from here", 1);
    assert_int_equal(overrides(&t, &text), CTL_CLI_RUN);
    char *want = NULL;
    assert_true(asprintf(&want,
                         "{\"workdir\":\"%s\",\"num_nodes\":1,\"secrets\":{\"SKY_TEST_SECRET\":"
                         "\"from here\",\"A\":\"2\"},\"resources\":{\"infra\":\"gcp/us-east1\","
                         "\"cpus\":\"4+\",\"memory\":null,\"accelerators\":\"V100:1\","
                         "\"instance_type\":\"n2-standard-4\",\"disk_tier\":\"best\","
                         "\"use_spot\":false,\"disk_size\":100,\"ports\":[\"8080\","
                         "\"9000-9001\"]}}",
                         dir) > 0);
    assert_string_equal(text, want);
    free(want);
    free(text);

    /* --cloud/--region/--zone: deprecated, '*' and 'none' reset. */
    ctl_cli_task_t l = CTL_CLI_TASK_INIT;
    l.cloud = "aws";
    l.region = "*";
    l.zone = "none";
    assert_int_equal(overrides(&l, &text), CTL_CLI_RUN);
    assert_string_equal(text, "{\"resources\":{\"cloud\":\"aws\",\"region\":null,\"zone\":null}}");
    free(text);

    /* Usage errors, as the reference words them. */
    l.infra = "aws";
    assert_int_equal(overrides(&l, &text), 2);
    assert_non_null(strstr(text, "Cannot specify both --infra and --cloud, --region, or --zone."));
    free(text);
    ctl_cli_task_t w = CTL_CLI_TASK_INIT;
    w.workdir = "/nonexistent/dir";
    assert_int_equal(overrides(&w, &text), 2);
    assert_non_null(strstr(text, "Invalid value for '--workdir': Directory '/nonexistent/dir' "
                                 "does not exist."));
    free(text);
    ctl_cli_task_t s = CTL_CLI_TASK_INIT;
    s.secrets[s.n_secrets++] = "SKY_TEST_UNSET_SECRET";
    unsetenv("SKY_TEST_UNSET_SECRET");
    assert_int_equal(overrides(&s, &text), 2);
    assert_non_null(strstr(text, "SKY_TEST_UNSET_SECRET is not set in local environment."));
    free(text);
    ctl_cli_task_t p = CTL_CLI_TASK_INIT;
    p.ports[p.n_ports++] = "none";
    assert_int_equal(overrides(&p, &text), CTL_CLI_RUN);
    assert_string_equal(text, "{\"resources\":{\"ports\":null}}");
    free(text);
    p.ports[p.n_ports++] = "80";
    assert_int_equal(overrides(&p, &text), 2);
    assert_non_null(strstr(text, "Cannot specify both \"none\" and other ports."));
    free(text);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_services_table),
        cmocka_unit_test(test_seed_replica_table),
        cmocka_unit_test(test_header_only_and_widths),
        cmocka_unit_test(test_utf8_width),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_small_utils),
        cmocka_unit_test(test_task_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
