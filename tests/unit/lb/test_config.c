/* Command-line parsing: defaults, every limit flag, and the errors (exit 2 in main). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lb.h"

static int parse(lb_config_t *c, char **err, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"sky-lb";
    va_list ap;
    va_start(ap, err);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    *err = NULL;
    return lb_config_parse(c, argc, argv, err);
}

static void test_defaults(void **st)
{
    lb_config_t c;
    char *err;
    assert_int_equal(parse(&c, &err, "--listen", "127.0.0.1:8080", NULL), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.workers, 1);
    assert_string_equal(c.policy, "least_load");
    assert_int_equal(c.max_head, 16384);
    assert_true(c.head_timeout == 10);
    assert_true(c.upstream_timeout == 120);
    assert_true(c.drain_timeout == 30);
    assert_true(c.sync_interval == 1);
    assert_int_equal(c.admin_port, -1);
    assert_int_equal(c.max_attempts, 3);
    assert_int_equal(c.n_replicas, 0);
    /* nginx's defaults for the idle timeouts once a request is under way */
    assert_true(c.upstream_read_timeout == 60);
    assert_true(c.client_send_timeout == 60);
    assert_true(c.client_body_timeout == 60);
    assert_int_equal(c.max_uri, 8192);
    assert_int_equal(c.max_headers, 256);
    assert_int_equal(c.max_body, 0);
    lb_config_free(&c);
}

static void test_all_flags(void **st)
{
    lb_config_t c;
    char *err;
    char tok[] = "/tmp/sky-lb-test-token-XXXXXX";
    int fd = mkstemp(tok);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "sekret\n", 7), 7);
    close(fd);
    int r =
        parse(&c, &err, "--listen", "0.0.0.0:0", "--workers", "4", "--policy", "power_of_two",
              "--replica", "http://127.0.0.1:9001", "--replica", "http://10.0.0.2:80/",
              "--controller", "http://127.0.0.1:20001/", "--service", "svc",
              "--controller-token-file", tok, "--sync-interval", "0.5", "--admin", "127.0.0.1:9100",
              "--log-level", "debug", "--max-head-bytes", "8192", "--head-timeout", "2",
              "--upstream-timeout", "3.5", "--connect-timeout", "1", "--keepalive-timeout", "5",
              "--pool-idle-timeout", "6", "--drain-timeout", "7", "--high-watermark", "1048576",
              "--low-watermark", "65536", "--max-conns", "99", "--max-attempts", "2",
              "--retry-buffer", "1024", "--pool-size", "8", "--access-log",
              "--upstream-read-timeout", "1.5", "--client-send-timeout", "2.5",
              "--client-body-timeout", "3", "--max-uri-bytes", "100", "--max-headers", "7",
              "--max-body-bytes", "1000000", NULL);
    unlink(tok);
    assert_int_equal(r, 0);
    assert_int_equal(c.workers, 4);
    assert_string_equal(c.policy, "power_of_two");
    assert_int_equal(c.n_replicas, 2);
    assert_string_equal(c.replicas[1], "http://10.0.0.2:80");
    assert_string_equal(c.controller, "http://127.0.0.1:20001");
    assert_string_equal(c.service, "svc");
    assert_string_equal(c.token, "sekret");
    assert_true(c.sync_interval == 0.5);
    assert_int_equal(c.admin_port, 9100);
    assert_int_equal(c.log_level, CORE_LOG_DEBUG);
    assert_int_equal(c.max_head, 8192);
    assert_true(c.upstream_timeout == 3.5);
    assert_int_equal(c.high_wm, 1048576);
    assert_int_equal(c.low_wm, 65536);
    assert_int_equal(c.max_conns, 99);
    assert_int_equal(c.max_attempts, 2);
    assert_int_equal(c.pool_size, 8);
    assert_int_equal(c.access_log, 1);
    assert_true(c.upstream_read_timeout == 1.5);
    assert_true(c.client_send_timeout == 2.5);
    assert_true(c.client_body_timeout == 3);
    assert_int_equal(c.max_uri, 100);
    assert_int_equal(c.max_headers, 7);
    assert_int_equal(c.max_body, 1000000);
    assert_string_equal(c.admin_token, "sekret"); /* the controller's, by default */
    lb_config_free(&c);
}

static void expect_error(const char *needle, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"sky-lb";
    va_list ap;
    va_start(ap, needle);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    lb_config_t c;
    char *err = NULL;
    assert_int_equal(lb_config_parse(&c, argc, argv, &err), -EINVAL);
    assert_non_null(err);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    free(err);
}

static void test_errors(void **st)
{
    expect_error("--listen", NULL);
    expect_error("--listen", "--listen", "nocolon", NULL);
    expect_error("--listen", "--listen", "127.0.0.1:70000", NULL);
    expect_error("unknown option", "--listen", "127.0.0.1:1", "--bogus", NULL);
    expect_error("policy", "--listen", "127.0.0.1:1", "--policy", "random", NULL);
    expect_error("--replica", "--listen", "127.0.0.1:1", "--replica", "https://1.2.3.4:5", NULL);
    expect_error("--replica", "--listen", "127.0.0.1:1", "--replica", "http://1.2.3.4", NULL);
    expect_error("--workers", "--listen", "127.0.0.1:1", "--workers", "0", NULL);
    expect_error("--head-timeout", "--listen", "127.0.0.1:1", "--head-timeout", "abc", NULL);
    expect_error("--service", "--listen", "127.0.0.1:1", "--controller", "http://x:1", NULL);
    expect_error("/nonexistent", "--listen", "127.0.0.1:1", "--tls-cert", "/nonexistent/c",
                 "--tls-key", "/nonexistent/k", NULL);
    expect_error("--tls-key", "--listen", "127.0.0.1:1", "--tls-cert", "/etc/hostname", NULL);
    expect_error("token", "--listen", "127.0.0.1:1", "--controller", "http://x:1", "--service", "s",
                 "--controller-token-file", "/nonexistent/t", NULL);
    expect_error("low-watermark", "--listen", "127.0.0.1:1", "--high-watermark", "4096",
                 "--low-watermark", "8192", NULL);
    expect_error("requires a value", "--listen", NULL);
    expect_error("max-head-bytes", "--listen", "127.0.0.1:1", "--max-head-bytes", "100000", NULL);
    expect_error("unexpected argument", "--listen", "127.0.0.1:1", "extra", NULL);
    expect_error("bearer token", "--listen", "127.0.0.1:1", "--admin", "127.0.0.1:2", NULL);
    expect_error("admin-token-file", "--listen", "127.0.0.1:1", "--admin", "127.0.0.1:2",
                 "--admin-token-file", "/nonexistent/t", NULL);
    expect_error("empty", "--listen", "127.0.0.1:1", "--admin", "127.0.0.1:2",
                 "--admin-token-file", "/dev/null", NULL);
    expect_error("max-headers", "--listen", "127.0.0.1:1", "--max-headers", "0", NULL);
    expect_error("upstream-read-timeout", "--listen", "127.0.0.1:1", "--upstream-read-timeout",
                 "0", NULL);
}

static void test_parse_url(void **st)
{
    struct sockaddr_storage ss;
    char norm[LB_URL_MAX];
    assert_int_equal(lb_parse_url("http://127.0.0.1:8080", &ss, norm, sizeof(norm)), 0);
    assert_string_equal(norm, "http://127.0.0.1:8080");
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(lb_parse_url("http://[::1]:81/", &ss, norm, sizeof(norm)), 0);
    assert_string_equal(norm, "http://[::1]:81");
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(lb_parse_url("http://1.2.3.4:80/path", &ss, norm, sizeof(norm)), -EINVAL);
    assert_int_equal(lb_parse_url("1.2.3.4:80", &ss, norm, sizeof(norm)), -EINVAL);
    assert_int_equal(lb_parse_url("http://1.2.3.4:0", &ss, norm, sizeof(norm)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_flags),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_parse_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
