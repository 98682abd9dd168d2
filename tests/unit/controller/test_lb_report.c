/* sky-lb's sync body as the serve controller reads it: the parser's bounds
 * (the body is network input) and the per-replica sums ctl_serve_lb_sync
 * keeps for /metrics, with and without the status classes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_lb_report.h"
#include "ctl_serve.h"
#include "ctl_serve_lb.h"

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);

    assert_non_null(j);
    return j;
}

static void test_parse_full_body(void **state)
{
    cJSON *j = parse("{\"request_aggregator\":{\"timestamps\":[1.5,\"x\",2.5]},"
                     "\"replica_stats\":{\"http://10.0.0.1:8080\":{\"requests\":7,\"failures\":1,"
                     "\"responses\":{\"1xx\":1,\"2xx\":4,\"3xx\":0,\"4xx\":2,\"5xx\":3}}}}");
    ctl_lb_report_t r;

    (void)state;
    ctl_lb_report_parse(j, &r);
    assert_true(r.has_ts);
    assert_int_equal(r.n_ts, 2); /* the string skipped */
    assert_true(r.ts[0] == 1.5 && r.ts[1] == 2.5);
    assert_int_equal(r.n_reps, 1);
    assert_string_equal(r.reps[0].url, "http://10.0.0.1:8080");
    assert_true(r.reps[0].has_counts);
    assert_int_equal(r.reps[0].requests, 7);
    assert_int_equal(r.reps[0].failures, 1);
    assert_int_equal(r.reps[0].responses[0], 1);
    assert_int_equal(r.reps[0].responses[1], 4);
    assert_int_equal(r.reps[0].responses[2], 0);
    assert_int_equal(r.reps[0].responses[3], 2);
    assert_int_equal(r.reps[0].responses[4], 3);
    ctl_lb_report_free(&r);
    cJSON_Delete(j);
}

/* The reference Python LB's body, and the one of a sky-lb before the classes. */
static void test_parse_without_classes(void **state)
{
    cJSON *j = parse("{\"request_aggregator\":{\"timestamps\":[]}}");
    ctl_lb_report_t r;

    (void)state;
    ctl_lb_report_parse(j, &r);
    assert_true(r.has_ts);
    assert_int_equal(r.n_ts, 0);
    assert_int_equal(r.n_reps, 0);
    ctl_lb_report_free(&r);
    cJSON_Delete(j);
    j = parse("{\"replica_stats\":{\"u\":{\"requests\":3,\"failures\":0}}}");
    ctl_lb_report_parse(j, &r);
    assert_false(r.has_ts);
    assert_int_equal(r.n_reps, 1);
    assert_true(r.reps[0].has_counts);
    assert_int_equal(r.reps[0].requests, 3);
    for (int c = 0; c < CTL_LB_CLASSES; c++)
        assert_int_equal(r.reps[0].responses[c], 0);
    ctl_lb_report_free(&r);
    cJSON_Delete(j);
}

/* Out of range, not numbers, not objects: each bad value is ignored alone. */
static void test_parse_rejects_bad_values(void **state)
{
    cJSON *j = parse("{\"request_aggregator\":{\"timestamps\":{}},\"replica_stats\":{"
                     "\"a\":{\"requests\":-1,\"failures\":0,\"responses\":{\"1xx\":-1,\"2xx\":1e15,"
                     "\"3xx\":\"5\",\"4xx\":999999999999999,\"5xx\":1e999}},"
                     "\"b\":{\"requests\":2,\"failures\":null,\"responses\":[1,2,3,4,5]},"
                     "\"c\":{\"requests\":1e300,\"failures\":1,\"responses\":7},"
                     "\"d\":5}}");
    ctl_lb_report_t r;

    (void)state;
    ctl_lb_report_parse(j, &r);
    assert_false(r.has_ts);
    assert_int_equal(r.n_reps, 4);
    assert_false(r.reps[0].has_counts);
    assert_int_equal(r.reps[0].requests, 0);
    assert_int_equal(r.reps[0].responses[0], 0);
    assert_int_equal(r.reps[0].responses[1], 0);
    assert_int_equal(r.reps[0].responses[2], 0);
    assert_true(r.reps[0].responses[3] == 999999999999999ULL);
    assert_int_equal(r.reps[0].responses[4], 0);
    for (size_t i = 1; i < 4; i++) {
        assert_false(r.reps[i].has_counts);
        for (int c = 0; c < CTL_LB_CLASSES; c++)
            assert_int_equal(r.reps[i].responses[c], 0);
    }
    ctl_lb_report_free(&r);
    cJSON_Delete(j);
    /* Not an object at all. */
    ctl_lb_report_parse(NULL, &r);
    assert_false(r.has_ts);
    assert_int_equal(r.n_reps, 0);
    ctl_lb_report_free(&r);
    j = parse("[1,{\"replica_stats\":{}}]");
    ctl_lb_report_parse(j, &r);
    assert_int_equal(r.n_reps, 0);
    ctl_lb_report_free(&r);
    cJSON_Delete(j);
}

static int alloc_id(void *arg, int *out)
{
    (void)arg;
    (void)out;
    return -1;
}

static ctl_replica_t *add(ctl_service_t *svc, int id, const char *ip)
{
    ctl_replica_row_t row;
    ctl_replica_t *r;

    ctl_replica_row_init(&row, id, 1);
    snprintf(row.ip, sizeof(row.ip), "%s", ip);
    row.replica_port = 8080;
    r = (ctl_replica_t *)ctl_fleet_add(&svc->fleet, &row);
    r->svc = svc;
    return r;
}

static void sync_body(ctl_service_t *svc, const char *text)
{
    cJSON *j = parse(text);

    cJSON_Delete(ctl_serve_lb_sync(svc->s, svc, j));
    cJSON_Delete(j);
}

/* The deltas of successive syncs add up per replica, matched by URL. */
static void test_sync_sums_per_replica(void **state)
{
    ctl_serve_t s;
    ctl_service_t svc;
    ctl_serve_cfg_t cfg;
    ctl_replica_t *a, *b;

    (void)state;
    memset(&s, 0, sizeof(s));
    memset(&svc, 0, sizeof(svc));
    ctl_serve_cfg_default(&cfg);
    svc.s = &s;
    snprintf(svc.row.name, sizeof(svc.row.name), "web");
    ctl_fleet_init(&svc.fleet, "web", &cfg, sizeof(ctl_replica_t), alloc_id, NULL, NULL, NULL);
    a = add(&svc, 1, "10.0.0.1");
    b = add(&svc, 2, "10.0.0.2");
    sync_body(&svc, "{\"request_aggregator\":{\"timestamps\":[]},\"replica_stats\":{"
                    "\"http://10.0.0.1:8080\":{\"requests\":5,\"failures\":1,\"responses\":"
                    "{\"1xx\":0,\"2xx\":3,\"3xx\":0,\"4xx\":1,\"5xx\":0}},"
                    "\"http://10.0.0.9:8080\":{\"requests\":9,\"failures\":0,\"responses\":"
                    "{\"1xx\":0,\"2xx\":9,\"3xx\":0,\"4xx\":0,\"5xx\":0}}}}");
    /* An older LB: counts, no classes. */
    sync_body(&svc, "{\"request_aggregator\":{\"timestamps\":[]},\"replica_stats\":{"
                    "\"http://10.0.0.1:8080\":{\"requests\":2,\"failures\":0}}}");
    /* Outcomes of requests counted in the sync before: classes, and a
     * failure with no attempt of its own in this sync. */
    sync_body(&svc, "{\"request_aggregator\":{\"timestamps\":[]},\"replica_stats\":{"
                    "\"http://10.0.0.1:8080\":{\"requests\":0,\"failures\":1,\"responses\":"
                    "{\"2xx\":2,\"5xx\":1}},"
                    "\"http://10.0.0.2:8080\":{\"requests\":-3,\"failures\":0,\"responses\":"
                    "{\"4xx\":1e16,\"5xx\":4}}}}");
    sync_body(&svc, "{\"request_aggregator\":{\"timestamps\":[]}}");
    assert_int_equal(a->lb_requests, 7);
    assert_int_equal(a->lb_failures, 2);
    assert_int_equal(a->lb_responses[0], 0);
    assert_int_equal(a->lb_responses[1], 5);
    assert_int_equal(a->lb_responses[3], 1);
    assert_int_equal(a->lb_responses[4], 1);
    assert_int_equal(b->lb_requests, 0);
    assert_int_equal(b->lb_responses[3], 0);
    assert_int_equal(b->lb_responses[4], 4);
    ctl_fleet_destroy(&svc.fleet);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full_body),
        cmocka_unit_test(test_parse_without_classes),
        cmocka_unit_test(test_parse_rejects_bad_values),
        cmocka_unit_test(test_sync_sums_per_replica),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
