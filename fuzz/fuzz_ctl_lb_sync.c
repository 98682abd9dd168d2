/*
 * The serve controller's reading of sky-lb's sync body (POST
 * /controller/load_balancer_sync): the bytes through core_http_body_json as
 * the API handler takes them, then ctl_lb_report_parse, the part of
 * ctl_serve_lb_sync that reads the body. Any sender that has the token can
 * post it, so no input may crash or leak, and what reaches the replicas'
 * counters must be in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "ctl_lb_report.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = 0;
    core_http_req_t req = {.method = "POST",
                           .path = "/controller/load_balancer_sync",
                           .query = "",
                           .body = body,
                           .body_len = size};
    cJSON *doc = core_http_body_json(&req);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "request_aggregator"), "timestamps");
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(doc, "replica_stats");
    ctl_lb_report_t r;

    ctl_lb_report_parse(doc, &r);
    FUZZ_CHECK(r.has_ts == (cJSON_IsArray(ts) != 0));
    FUZZ_CHECK(r.has_ts || (r.ts == NULL && r.n_ts == 0));
    FUZZ_CHECK(r.n_ts <= (size_t)(r.has_ts ? cJSON_GetArraySize(ts) : 0));
    FUZZ_CHECK(r.n_reps <= (size_t)(cJSON_IsObject(stats) ? cJSON_GetArraySize(stats) : 0));
    for (size_t i = 0; i < r.n_reps; i++) {
        const ctl_lb_rep_report_t *p = &r.reps[i];
        FUZZ_CHECK(p->url != NULL);
        /* The URL is a member of replica_stats (matched by string later). */
        FUZZ_CHECK(cJSON_GetObjectItemCaseSensitive(stats, p->url) != NULL);
        FUZZ_CHECK(p->has_counts || (p->requests == 0 && p->failures == 0));
        FUZZ_CHECK(p->requests < (unsigned long long)CTL_LB_COUNT_MAX);
        FUZZ_CHECK(p->failures < (unsigned long long)CTL_LB_COUNT_MAX);
        for (int c = 0; c < CTL_LB_CLASSES; c++)
            FUZZ_CHECK(p->responses[c] < (unsigned long long)CTL_LB_COUNT_MAX);
    }
    ctl_lb_report_free(&r);
    cJSON_Delete(doc);
    free(body);
    return 0;
}
