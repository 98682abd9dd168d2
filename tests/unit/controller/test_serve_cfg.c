/* Serve controller settings (defaults, config.yaml `serve:`, SKY_SERVE_*
 * environment overrides) and the pure helpers of ctl_serve. */
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

#include "core/util.h"
#include "ctl_serve_cfg.h"
#include "ctl_service.h"

static void test_defaults_are_the_reference(void **state)
{
    ctl_serve_cfg_t c;

    (void)state;
    ctl_serve_cfg_default(&c);
    assert_true(c.probe_interval == 10);
    assert_true(c.decision_interval == 20);
    assert_true(c.no_replica_decision_interval == 5);
    assert_true(c.consecutive_failure_threshold == 180);
    assert_true(c.drain_seconds == 120);
    assert_true(c.job_status_interval == 30);
    assert_true(c.launch_retry_initial == 60);
    assert_int_equal(c.launch_max_retry, 3);
    assert_true(c.qps_window == 60);
    assert_int_equal(c.lb_port_start, 30001);
    assert_true(c.provider_poll_interval == 1);
    assert_true(c.lb_sync_interval == 1);
}

static void test_set(void **state)
{
    ctl_serve_cfg_t c;

    (void)state;
    ctl_serve_cfg_default(&c);
    assert_int_equal(ctl_serve_cfg_set(&c, "probe_interval", "0.5"), 0);
    assert_true(c.probe_interval == 0.5);
    assert_int_equal(ctl_serve_cfg_set(&c, "lb_port_start", "31000"), 0);
    assert_int_equal(c.lb_port_start, 31000);
    assert_int_equal(ctl_serve_cfg_set(&c, "lb_port_start", "31000.5"), -EINVAL);
    assert_int_equal(ctl_serve_cfg_set(&c, "lb_port_start", "70000"), -EINVAL);
    assert_int_equal(ctl_serve_cfg_set(&c, "probe_interval", "abc"), -EINVAL);
    assert_int_equal(ctl_serve_cfg_set(&c, "probe_interval", "0.25 \n"), 0); /* from an env */
    assert_true(c.probe_interval == 0.25);
    assert_int_equal(ctl_serve_cfg_set(&c, "probe_interval", " "), -EINVAL);
    assert_int_equal(ctl_serve_cfg_set(&c, "probe_interval", "0"), -EINVAL);
    assert_int_equal(ctl_serve_cfg_set(&c, "drain_seconds", "0"), 0);
    assert_int_equal(ctl_serve_cfg_set(&c, "no_such_thing", "1"), -ENOENT);
    /* Every documented name is settable. */
    for (const ctl_serve_cfg_doc_t *d = ctl_serve_cfg_docs; d->name; d++)
        assert_int_equal(ctl_serve_cfg_set(&c, d->name, d->def), 0);
}

static void test_yaml_then_env(void **state)
{
    char dir[] = "/tmp/test-serve-cfg-XXXXXX", path[64];
    const char *yaml = "other:\n  probe_interval: 99\n"
                       "serve:\n  probe_interval: 2\n  drain_seconds: 7\n  future_key: x\n";
    ctl_serve_cfg_t c;
    char *err = NULL;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    assert_int_equal(core_write_file(path, yaml, strlen(yaml), 0644), 0);
    ctl_serve_cfg_default(&c);
    setenv("SKY_SERVE_DRAIN_SECONDS", "3", 1);
    assert_int_equal(ctl_serve_cfg_load(&c, path, &err), 0);
    assert_null(err);
    assert_true(c.probe_interval == 2);
    assert_true(c.drain_seconds == 3); /* env wins */
    unsetenv("SKY_SERVE_DRAIN_SECONDS");

    setenv("SKY_SERVE_PROBE_INTERVAL", "-1", 1);
    assert_int_equal(ctl_serve_cfg_load(&c, path, &err), -EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, "SKY_SERVE_PROBE_INTERVAL"));
    free(err);
    unsetenv("SKY_SERVE_PROBE_INTERVAL");

    yaml = "serve:\n  decision_interval: soon\n";
    assert_int_equal(core_write_file(path, yaml, strlen(yaml), 0644), 0);
    assert_int_equal(ctl_serve_cfg_load(&c, path, &err), -EINVAL);
    assert_non_null(strstr(err, "config.yaml:2:22:"));
    free(err);

    /* A missing file is fine. */
    snprintf(path, sizeof(path), "%s/none.yaml", dir);
    assert_int_equal(ctl_serve_cfg_load(&c, path, &err), 0);
    core_rm_rf(dir);
}

static void test_endpoint_host(void **state)
{
    ctl_serve_cfg_t c;
    char big[300];

    (void)state;
    ctl_serve_cfg_default(&c);
    assert_string_equal(c.endpoint_host, "");
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", "127.0.0.1"), 0);
    assert_string_equal(c.endpoint_host, "127.0.0.1");
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", "serve.example.com\n"), 0);
    assert_string_equal(c.endpoint_host, "serve.example.com");
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", "::1"), 0);
    assert_string_equal(c.endpoint_host, "[::1]");
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", "[2001:db8::1]"), 0);
    assert_string_equal(c.endpoint_host, "[2001:db8::1]");
    /* Nothing that would change the URL's shape. */
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", "a/b"), -EINVAL);
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", "a b"), -EINVAL);
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", "user@host"), -EINVAL);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", big), -EINVAL);
    assert_string_equal(c.endpoint_host, "[2001:db8::1]");
    assert_int_equal(ctl_serve_cfg_set(&c, "endpoint_host", ""), 0);
    assert_string_equal(c.endpoint_host, "");
}

static void test_names(void **state)
{
    (void)state;
    assert_true(ctl_serve_valid_name("http-server"));
    assert_true(ctl_serve_valid_name("a1"));
    assert_false(ctl_serve_valid_name(""));
    assert_false(ctl_serve_valid_name("1abc"));
    assert_false(ctl_serve_valid_name("abc-"));
    assert_false(ctl_serve_valid_name("Abc"));
    assert_false(ctl_serve_valid_name("a_b"));
    assert_false(ctl_serve_valid_name("a/b"));
    assert_false(
        ctl_serve_valid_name("a123456789012345678901234567890123456789012345678901234567890123"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_the_reference),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_yaml_then_env),
        cmocka_unit_test(test_endpoint_host),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
