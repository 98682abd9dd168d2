/* The controllers' Prometheus text: the writer's escaping and number syntax,
 * the restart counter across starts, and the serve controller's series for
 * a service whose replicas are spread over statuses and capacities, checked
 * by promtool as a scraper would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>

#include <cmocka.h>

#include "core/util.h"
#include "ctl_metrics.h"
#include "ctl_serve_metrics.h"

static void test_writer_escapes_and_numbers(void **state)
{
    ctl_prom_t p = {0};
    size_t len;
    char *text;

    (void)state;
    ctl_prom_family(&p, "sky_x_total", "counter", "A help with \\ and\na newline.");
    ctl_prom_sample(&p, "sky_x_total", 3, "service", "a\"b\\c\nd", "zone", "z1", NULL);
    ctl_prom_sample(&p, "sky_x_total", 0.25, NULL);
    ctl_prom_sample(&p, "sky_x_total", NAN, NULL);
    ctl_prom_sample(&p, "sky_x_total", -INFINITY, NULL);
    ctl_prom_sample(&p, "sky_x_total", 1e20, NULL);
    text = ctl_prom_take(&p, &len);
    assert_string_equal(text, "# HELP sky_x_total A help with \\\\ and\\na newline.\n"
                              "# TYPE sky_x_total counter\n"
                              "sky_x_total{service=\"a\\\"b\\\\c\\nd\",zone=\"z1\"} 3\n"
                              "sky_x_total 0.25\n"
                              "sky_x_total NaN\n"
                              "sky_x_total -Inf\n"
                              "sky_x_total 1e+20\n");
    assert_int_equal(len, strlen(text));
    assert_null(p.buf); /* taken: the writer is empty again */
    free(text);
    text = ctl_prom_take(&p, &len);
    assert_string_equal(text, "");
    free(text);
}

static void test_restarts_counted_across_starts(void **state)
{
    char dir[] = "/tmp/test-metrics-XXXXXX";
    ctl_metrics_proc_t m;

    (void)state;
    assert_non_null(mkdtemp(dir));
    ctl_metrics_proc_start(&m, dir);
    assert_int_equal(m.restarts, 0);
    assert_true(m.started_at > 1e9);
    ctl_metrics_proc_start(&m, dir);
    ctl_metrics_proc_start(&m, dir);
    assert_int_equal(m.restarts, 2);
    core_rm_rf(dir);
}

static int alloc_id(void *arg, int *out)
{
    (void)arg;
    (void)out;
    return -1;
}

static ctl_replica_t *add(ctl_service_t *svc, int id, ctl_proc_status_t launch, bool ready,
                          bool spot, double price)
{
    ctl_replica_row_t row;
    ctl_replica_t *r;

    ctl_replica_row_init(&row, id, 1);
    row.f.launch = launch;
    if (ready) {
        row.f.service_ready_now = true;
        row.f.first_ready_time = 1000;
    }
    row.is_spot = spot;
    row.price = price;
    snprintf(row.instance_id, sizeof(row.instance_id), "i-%d", id);
    r = (ctl_replica_t *)ctl_fleet_add(&svc->fleet, &row);
    r->svc = svc;
    return r;
}

/* The value of <series> in <text>; fails when absent. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    fail_msg("no %s in:\n%s", series, text);
    return -1;
}

static void test_serve_series(void **state)
{
    ctl_serve_t s;
    ctl_service_t svc;
    ctl_serve_cfg_t cfg;
    ctl_replica_t *r;
    size_t len;
    char *text, path[] = "/tmp/test-metrics-XXXXXX", cmd[128];
    int fd;

    (void)state;
    memset(&s, 0, sizeof(s));
    memset(&svc, 0, sizeof(svc));
    ctl_serve_cfg_default(&cfg);
    svc.s = &s;
    snprintf(svc.row.name, sizeof(svc.row.name), "web");
    svc.row.status = CTL_SERVICE_READY;
    ctl_fleet_init(&svc.fleet, "web", &cfg, sizeof(ctl_replica_t), alloc_id, NULL, NULL, NULL);
    s.services = &svc;
    s.proc.restarts = 2;
    s.proc.started_at = 1700000000.5;
    add(&svc, 1, CTL_PROC_SUCCEEDED, true, true, 0.5);
    r = add(&svc, 2, CTL_PROC_SUCCEEDED, true, true, 0.5);
    r->lb_requests = 10;
    r->lb_failures = 3;
    r->lb_responses[1] = 6;
    r->lb_responses[3] = 1;
    r = add(&svc, 3, CTL_PROC_SUCCEEDED, true, false, 1.25);
    r->lb_requests = 1; /* an attempt made before the controller restarted failed since */
    r->lb_failures = 2;
    add(&svc, 4, CTL_PROC_RUNNING, false, false, 1.25);
    r = add(&svc, 5, CTL_PROC_SUCCEEDED, true, true, 0.5);
    r->fr.row.f.preempted = true; /* no longer billed */
    r->fr.row.f.down = CTL_PROC_SUCCEEDED;
    assert_int_equal(ctl_replica_row_status(&r->fr.row), CTL_REPLICA_PREEMPTED);
    svc.counters.launches = 6;
    svc.counters.launch_failures = 1;
    svc.counters.preemptions = 2;

    text = ctl_serve_metrics_render(&s, &len);
    assert_int_equal(len, strlen(text));
    assert_true(value_of(text, "sky_controller_restarts_total") == 2);
    assert_true(value_of(text, "sky_serve_service_status{service=\"web\",status=\"READY\"}") == 1);
    assert_true(value_of(text, "sky_serve_service_status{service=\"web\",status=\"FAILED\"}") == 0);
    assert_true(value_of(text, "sky_serve_replicas{service=\"web\",status=\"READY\","
                               "capacity=\"spot\"}") == 2);
    assert_true(value_of(text, "sky_serve_replicas{service=\"web\",status=\"READY\","
                               "capacity=\"on_demand\"}") == 1);
    assert_true(value_of(text, "sky_serve_replicas{service=\"web\",status=\"PROVISIONING\","
                               "capacity=\"on_demand\"}") == 1);
    assert_true(value_of(text, "sky_serve_replicas{service=\"web\",status=\"PREEMPTED\","
                               "capacity=\"spot\"}") == 1);
    assert_true(value_of(text, "sky_serve_replicas{service=\"web\",status=\"PREEMPTED\","
                               "capacity=\"on_demand\"}") == 0);
    assert_true(value_of(text, "sky_serve_target_replicas{service=\"web\"}") == 0);
    assert_true(value_of(text, "sky_serve_cost_dollars_per_hour{service=\"web\"}") == 3.5);
    assert_true(value_of(text, "sky_serve_replica_requests_total{service=\"web\",replica=\"2\","
                               "outcome=\"ok\"}") == 7);
    assert_true(value_of(text, "sky_serve_replica_requests_total{service=\"web\",replica=\"2\","
                               "outcome=\"failed\"}") == 3);
    assert_true(value_of(text, "sky_serve_replica_requests_total{service=\"web\",replica=\"3\","
                               "outcome=\"ok\"}") == 0);
    assert_true(value_of(text, "sky_serve_replica_responses_total{service=\"web\",replica=\"2\","
                               "code=\"2xx\"}") == 6);
    assert_true(value_of(text, "sky_serve_replica_responses_total{service=\"web\",replica=\"2\","
                               "code=\"4xx\"}") == 1);
    assert_true(value_of(text, "sky_serve_replica_responses_total{service=\"web\",replica=\"2\","
                               "code=\"5xx\"}") == 0);
    assert_true(value_of(text, "sky_serve_replica_responses_total{service=\"web\",replica=\"1\","
                               "code=\"1xx\"}") == 0);
    assert_non_null(strstr(text, "# TYPE sky_serve_replica_responses_total counter\n"));
    assert_true(value_of(text, "sky_serve_launches_total{service=\"web\"}") == 6);
    assert_true(value_of(text, "sky_serve_launch_failures_total{service=\"web\"}") == 1);
    assert_true(value_of(text, "sky_serve_preemptions_total{service=\"web\"}") == 2);

    /* What Prometheus' own linter says (scripts/install-deps installs it). */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    assert_int_equal(system(cmd), 0);
    unlink(path);
    free(text);
    ctl_fleet_destroy(&svc.fleet);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_escapes_and_numbers),
        cmocka_unit_test(test_restarts_counted_across_starts),
        cmocka_unit_test(test_serve_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
