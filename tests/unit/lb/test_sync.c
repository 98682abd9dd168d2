/* Controller sync wire format and the request-timestamp buffers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "lb.h"

static void test_build_body(void **st)
{
    double ts[] = {1700000000.25, 1700000001.5};
    const char *urls[] = {"http://10.0.0.1:8080", "http://10.0.0.2:8080"};
    uint64_t req[] = {5, 0}, fail[] = {1, 0};
    uint64_t resp[][LB_RESP_CLASSES] = {{1, 2, 0, 3, 4}, {0, 0, 0, 0, 7}};
    char *b = lb_sync_build_body(ts, 2, urls, req, fail, resp, 2);
    cJSON *j = cJSON_Parse(b);
    assert_non_null(j);
    cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "request_aggregator"), "timestamps");
    assert_int_equal(cJSON_GetArraySize(t), 2);
    assert_true(cJSON_GetArrayItem(t, 1)->valuedouble == 1700000001.5);
    cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "replica_stats"), urls[0]);
    assert_int_equal(cJSON_GetObjectItem(r, "requests")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(r, "failures")->valueint, 1);
    cJSON *c = cJSON_GetObjectItem(r, "responses");
    assert_int_equal(cJSON_GetArraySize(c), 5);
    assert_int_equal(cJSON_GetObjectItem(c, "1xx")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(c, "2xx")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(c, "3xx")->valueint, 0);
    assert_int_equal(cJSON_GetObjectItem(c, "4xx")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(c, "5xx")->valueint, 4);
    /* A replica whose responses came a sync after its requests. */
    r = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "replica_stats"), urls[1]);
    assert_int_equal(cJSON_GetObjectItem(r, "requests")->valueint, 0);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "responses"), "5xx")->valueint, 7);
    cJSON_Delete(j);
    free(b);
    /* Without the classes: the body the controller has always accepted. */
    b = lb_sync_build_body(NULL, 0, urls, req, fail, NULL, 1);
    assert_string_equal(b, "{\"request_aggregator\":{\"timestamps\":[]},\"replica_stats\":{"
                           "\"http://10.0.0.1:8080\":{\"requests\":5,\"failures\":1}}}");
    free(b);
    b = lb_sync_build_body(NULL, 0, NULL, NULL, NULL, NULL, 0);
    assert_string_equal(b, "{\"request_aggregator\":{\"timestamps\":[]},\"replica_stats\":{}}");
    free(b);
}

/* The longest URLs and counts fit the buffer the builder sizes (ASan
 * catches an overrun, the end check a truncation). */
static void test_build_body_max(void **st)
{
    enum { N = 64 };
    char url[LB_URL_MAX];
    memset(url, 'a', sizeof(url) - 1);
    url[sizeof(url) - 1] = 0;
    const char *urls[N];
    uint64_t big[N];
    uint64_t resp[N][LB_RESP_CLASSES];
    for (int i = 0; i < N; i++) {
        urls[i] = url;
        big[i] = UINT64_MAX;
    }
    memset(resp, 0xff, sizeof(resp));
    char *b = lb_sync_build_body(NULL, 0, urls, big, big, resp, N);
    size_t len = strlen(b);
    assert_true(len > N * (LB_URL_MAX + 7 * 20));
    assert_string_equal(b + len - 4, "}}}}");
    free(b);
}

static void test_parse_reply(void **st)
{
    char **u;
    size_t n;
    assert_int_equal(lb_sync_parse_reply("{\"replica_info\":{\"http://1.1.1.1:1\":{\"gpu_type\":"
                                         "\"A100\"},\"http://2.2.2.2:2\":{}}}",
                                         &u, &n),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(u[0], "http://1.1.1.1:1");
    assert_string_equal(u[1], "http://2.2.2.2:2");
    for (size_t i = 0; i < n; i++)
        free(u[i]);
    free(u);
    assert_int_equal(lb_sync_parse_reply("{\"replica_info\":{}}", &u, &n), 0);
    assert_int_equal(n, 0);
    free(u);
    assert_true(lb_sync_parse_reply("not json", &u, &n) < 0);
    assert_true(lb_sync_parse_reply("{\"other\":1}", &u, &n) < 0);
}

static void test_timestamps_bounded(void **st)
{
    lb_stats_t s;
    lb_stats_init(&s, 2, 8);
    for (int i = 0; i < 20; i++)
        lb_stats_push_ts(&s.w[0], (double)i); /* 12 dropped: ring of 8 */
    lb_stats_push_ts(&s.w[1], 100.0);
    assert_int_equal(lb_ctr_get(&s.w[0].ts_dropped), 12);
    double *out = NULL;
    size_t n = 0, alloc = 0;
    lb_stats_drain_ts(&s, &out, &n, &alloc, 4);
    /* Cap 4: the oldest are dropped, the newest kept. */
    assert_true(n <= 4);
    assert_true(out[n - 1] == 100.0);
    lb_stats_drain_ts(&s, &out, &n, &alloc, 4); /* nothing new */
    assert_true(n <= 4);
    free(out);
    lb_stats_destroy(&s);
}

static void test_url_ids_and_metrics(void **st)
{
    lb_stats_t s;
    lb_stats_init(&s, 2, 16);
    int a = lb_stats_url_id(&s, "http://1.1.1.1:1");
    int b = lb_stats_url_id(&s, "http://2.2.2.2:2");
    assert_int_equal(lb_stats_url_id(&s, "http://1.1.1.1:1"), a);
    assert_int_not_equal(a, b);
    lb_ctr_add(&s.w[0].codes[200], 3);
    lb_ctr_add(&s.w[1].codes[200], 4);
    lb_ctr_add(&s.w[1].rep_requests[b], 2);
    lb_ctr_add(&s.w[0].rep_responses[b][1], 1);
    lb_ctr_add(&s.w[1].rep_responses[b][1], 1);
    lb_ctr_add(&s.w[1].rep_responses[b][3], 5);
    lb_stats_observe_latency(&s.w[0], 0.003);
    size_t len;
    char *m = lb_metrics_render(&s, &len);
    assert_non_null(strstr(m, "sky_lb_requests_total{code=\"200\"} 7\n"));
    assert_non_null(strstr(m, "sky_lb_replica_requests_total{replica=\"http://2.2.2.2:2\"} 2\n"));
    assert_non_null(strstr(m, "sky_lb_replica_responses_total{replica=\"http://2.2.2.2:2\","
                              "code=\"2xx\"} 2\n"));
    assert_non_null(strstr(m, "sky_lb_replica_responses_total{replica=\"http://2.2.2.2:2\","
                              "code=\"4xx\"} 5\n"));
    assert_non_null(strstr(m, "sky_lb_replica_responses_total{replica=\"http://1.1.1.1:1\","
                              "code=\"5xx\"} 0\n"));
    assert_non_null(strstr(m, "# TYPE sky_lb_replica_responses_total counter\n"));
    assert_non_null(strstr(m, "sky_lb_upstream_latency_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(m, "sky_lb_upstream_latency_seconds_count 1\n"));
    free(m);
    lb_stats_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_body),
        cmocka_unit_test(test_build_body_max),
        cmocka_unit_test(test_parse_reply),
        cmocka_unit_test(test_timestamps_bounded),
        cmocka_unit_test(test_url_ids_and_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
