/*
 * sky-lb's sync body to plain numbers (see ctl_lb_report.h). Bounds first:
 * a count becomes an unsigned long long only once it is known to be a
 * number in [0, CTL_LB_COUNT_MAX), which also keeps NaN and infinities out.
 */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "ctl_lb_report.h"

static const char *const class_keys[CTL_LB_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static bool count_of(const cJSON *v, unsigned long long *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < CTL_LB_COUNT_MAX))
        return false;
    *out = (unsigned long long)v->valuedouble;
    return true;
}

static void parse_rep(const cJSON *it, ctl_lb_rep_report_t *r)
{
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(it, "responses");
    unsigned long long req, fail;

    memset(r, 0, sizeof(*r));
    r->url = it->string;
    if (count_of(cJSON_GetObjectItemCaseSensitive(it, "requests"), &req) &&
        count_of(cJSON_GetObjectItemCaseSensitive(it, "failures"), &fail)) {
        r->has_counts = true;
        r->requests = req;
        r->failures = fail;
    }
    /* Optional (an older sky-lb does not send it); cJSON_GetObjectItem on a
     * non-object finds nothing. */
    if (!cJSON_IsObject(resp))
        return;
    for (int c = 0; c < CTL_LB_CLASSES; c++)
        if (!count_of(cJSON_GetObjectItemCaseSensitive(resp, class_keys[c]), &r->responses[c]))
            r->responses[c] = 0;
}

void ctl_lb_report_parse(const cJSON *body, ctl_lb_report_t *out)
{
    const cJSON *agg = cJSON_GetObjectItemCaseSensitive(body, "request_aggregator");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(agg, "timestamps");
    const cJSON *stats = cJSON_GetObjectItemCaseSensitive(body, "replica_stats");
    const cJSON *it;

    memset(out, 0, sizeof(*out));
    if (cJSON_IsArray(ts)) {
        int n = cJSON_GetArraySize(ts);

        out->has_ts = true;
        out->ts = core_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(*out->ts));
        cJSON_ArrayForEach(it, ts)
        {
            if (cJSON_IsNumber(it))
                out->ts[out->n_ts++] = it->valuedouble;
        }
    }
    if (!cJSON_IsObject(stats))
        return;
    out->reps = core_xcalloc((size_t)cJSON_GetArraySize(stats) + 1, sizeof(*out->reps));
    cJSON_ArrayForEach(it, stats)
    {
        if (it->string)
            parse_rep(it, &out->reps[out->n_reps++]);
    }
}

void ctl_lb_report_free(ctl_lb_report_t *r)
{
    free(r->ts);
    free(r->reps);
    memset(r, 0, sizeof(*r));
}
