#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/http.h"
#include "core/mem.h"
#include "lb.h"
#include "lb_conn.h"

/* ---- snapshots ---- */

lb_snapshot_t *lb_snapshot_new(size_t n)
{
    lb_snapshot_t *s = core_xcalloc(1, sizeof(*s) + n * sizeof(lb_snap_rep_t));
    atomic_init(&s->refs, 1);
    s->n = n;
    return s;
}

void lb_snapshot_unref(lb_snapshot_t *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        free(s);
}

lb_snapshot_t *lb_snapshot_from_urls(lb_ctx_t *ctx, const char *const *urls, size_t n)
{
    lb_snapshot_t *s = lb_snapshot_new(n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        lb_snap_rep_t *r = &s->reps[k];
        if (lb_parse_url(urls[i], &r->addr, r->url, sizeof(r->url)) < 0) {
            CORE_WARN("ignoring replica with an invalid URL: %s", urls[i]);
            continue;
        }
        int dup = 0;
        for (size_t j = 0; j < k; j++)
            dup |= strcmp(s->reps[j].url, r->url) == 0;
        if (dup)
            continue;
        r->stat_id = lb_stats_url_id(&ctx->stats, r->url);
        k++;
    }
    s->n = k;
    return s;
}

void lb_ctx_publish(lb_ctx_t *ctx, lb_snapshot_t *snap)
{
    pthread_mutex_lock(&ctx->snap_mu);
    lb_snapshot_t *old = ctx->snap;
    snap->version = old ? old->version + 1 : 1;
    ctx->snap = snap;
    pthread_mutex_unlock(&ctx->snap_mu);
    lb_snapshot_unref(old);
    for (int i = 0; i < ctx->nworkers; i++)
        if (ctx->workers[i])
            lb_worker_notify(ctx->workers[i]);
}

lb_snapshot_t *lb_ctx_snapshot(lb_ctx_t *ctx)
{
    pthread_mutex_lock(&ctx->snap_mu);
    lb_snapshot_t *s = ctx->snap;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&ctx->snap_mu);
    return s;
}

/* ---- wire format ---- */

char *lb_sync_build_body(const double *ts, size_t n_ts, const char *const *urls,
                         const uint64_t *requests, const uint64_t *failures,
                         const uint64_t (*responses)[LB_RESP_CLASSES], size_t n_urls)
{
    /* Built by hand: a million timestamps as cJSON nodes would cost ~100 MB.
     * Per replica: the URL, then seven counts of 20 digits at most. */
    size_t cap = 128 + n_ts * 24 + n_urls * (LB_URL_MAX + 96 + LB_RESP_CLASSES * 32);
    char *out = core_xmalloc(cap);
    size_t len = 0;
    len += (size_t)snprintf(out + len, cap - len, "{\"request_aggregator\":{\"timestamps\":[");
    for (size_t i = 0; i < n_ts; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%.6f", i ? "," : "", ts[i]);
    len += (size_t)snprintf(out + len, cap - len, "]},\"replica_stats\":{");
    for (size_t i = 0; i < n_urls; i++) {
        len += (size_t)snprintf(
            out + len, cap - len, "%s\"%s\":{\"requests\":%llu,\"failures\":%llu", i ? "," : "",
            urls[i], (unsigned long long)requests[i], (unsigned long long)failures[i]);
        if (responses) {
            len += (size_t)snprintf(out + len, cap - len, ",\"responses\":{");
            for (int k = 0; k < LB_RESP_CLASSES; k++)
                len += (size_t)snprintf(out + len, cap - len, "%s\"%dxx\":%llu", k ? "," : "",
                                        k + 1, (unsigned long long)responses[i][k]);
            len += (size_t)snprintf(out + len, cap - len, "}");
        }
        len += (size_t)snprintf(out + len, cap - len, "}");
    }
    snprintf(out + len, cap - len, "}}");
    return out;
}

int lb_sync_parse_reply(const char *body, char ***urls, size_t *n)
{
    *urls = NULL;
    *n = 0;
    cJSON *root = cJSON_Parse(body);
    if (!root)
        return CORE_EJSON;
    cJSON *info = cJSON_GetObjectItemCaseSensitive(root, "replica_info");
    if (!cJSON_IsObject(info)) {
        cJSON_Delete(root);
        return CORE_EJSON;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(info);
    char **u = core_xcalloc(cnt + 1, sizeof(char *));
    size_t k = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, info)
    {
        if (it->string && k < cnt)
            u[k++] = core_xstrdup(it->string);
    }
    cJSON_Delete(root);
    *urls = u;
    *n = k;
    return 0;
}

/* ---- sync thread ---- */

#define LB_SYNC_MAX_TS (1u << 20)

struct lb_sync {
    lb_ctx_t *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    double *ts;
    size_t n_ts, alloc_ts;
    uint64_t acked_req[LB_STATS_MAX];
    uint64_t acked_fail[LB_STATS_MAX];
    uint64_t acked_resp[LB_STATS_MAX][LB_RESP_CLASSES];
    int failing;
};

static int same_set(lb_snapshot_t *cur, lb_snapshot_t *next)
{
    if (!cur || cur->n != next->n)
        return 0;
    for (size_t i = 0; i < cur->n; i++)
        if (strcmp(cur->reps[i].url, next->reps[i].url) != 0)
            return 0;
    return 1;
}

static void sync_once(lb_sync_t *s)
{
    lb_ctx_t *ctx = s->ctx;
    lb_stats_t *st = &ctx->stats;
    lb_stats_drain_ts(st, &s->ts, &s->n_ts, &s->alloc_ts, LB_SYNC_MAX_TS);
    uint32_t nu = atomic_load(&st->n_urls);
    const char **urls = core_xcalloc(nu + 1, sizeof(char *));
    uint64_t *cur_req = core_xcalloc(nu + 1, sizeof(uint64_t));
    uint64_t *cur_fail = core_xcalloc(nu + 1, sizeof(uint64_t));
    uint64_t *d_req = core_xcalloc(nu + 1, sizeof(uint64_t));
    uint64_t *d_fail = core_xcalloc(nu + 1, sizeof(uint64_t));
    uint64_t(*cur_resp)[LB_RESP_CLASSES] = core_xcalloc(nu + 1, sizeof(*cur_resp));
    uint64_t(*d_resp)[LB_RESP_CLASSES] = core_xcalloc(nu + 1, sizeof(*d_resp));
    size_t k = 0;
    for (uint32_t i = 0; i < nu; i++) {
        for (int w = 0; w < st->nw; w++) {
            cur_req[i] += lb_ctr_get(&st->w[w].rep_requests[i]);
            cur_fail[i] += lb_ctr_get(&st->w[w].rep_failures[i]);
            for (int c = 0; c < LB_RESP_CLASSES; c++)
                cur_resp[i][c] += lb_ctr_get(&st->w[w].rep_responses[i][c]);
        }
        /* A response can come a sync after its request was counted. */
        if (cur_req[i] == s->acked_req[i] && cur_fail[i] == s->acked_fail[i] &&
            memcmp(cur_resp[i], s->acked_resp[i], sizeof(cur_resp[i])) == 0)
            continue;
        urls[k] = st->urls[i];
        d_req[k] = cur_req[i] - s->acked_req[i];
        d_fail[k] = cur_fail[i] - s->acked_fail[i];
        for (int c = 0; c < LB_RESP_CLASSES; c++)
            d_resp[k][c] = cur_resp[i][c] - s->acked_resp[i][c];
        k++;
    }
    char *body = lb_sync_build_body(s->ts, s->n_ts, urls, d_req, d_fail, d_resp, k);
    char *url = core_xasprintf("%s/controller/load_balancer_sync", ctx->cfg->controller);
    core_http_resp_t resp = {0};
    int rc = core_http_call("POST", url, ctx->cfg->token, body, 5000, &resp);
    if (rc == 0 && resp.status == 200) {
        char **ready;
        size_t n;
        if (lb_sync_parse_reply(resp.body ? resp.body : "", &ready, &n) == 0) {
            /* Delivered: the timestamps and counts are the controller's now. */
            s->n_ts = 0;
            memcpy(s->acked_req, cur_req, nu * sizeof(uint64_t));
            memcpy(s->acked_fail, cur_fail, nu * sizeof(uint64_t));
            memcpy(s->acked_resp, cur_resp, nu * sizeof(*cur_resp));
            lb_snapshot_t *next = lb_snapshot_from_urls(ctx, (const char *const *)ready, n);
            lb_snapshot_t *cur = lb_ctx_snapshot(ctx);
            if (same_set(cur, next)) {
                lb_snapshot_unref(next);
            } else {
                CORE_INFO("ready set updated: %zu replica(s)", next->n);
                lb_ctx_publish(ctx, next);
            }
            lb_snapshot_unref(cur);
            for (size_t i = 0; i < n; i++)
                free(ready[i]);
            free(ready);
            if (s->failing)
                CORE_INFO("controller sync recovered");
            s->failing = 0;
        } else if (!s->failing++) {
            CORE_WARN("controller sync: malformed reply from %s", url);
        }
    } else if (!s->failing++) {
        if (rc == 0)
            CORE_WARN("controller sync: %s answered HTTP %ld; keeping the last ready set", url,
                      resp.status);
        else
            CORE_WARN("controller sync: %s unreachable (%s); keeping the last ready set", url,
                      core_strerror(rc));
    }
    core_http_resp_free(&resp);
    free(url);
    free(body);
    free(urls);
    free(cur_req);
    free(cur_fail);
    free(d_req);
    free(d_fail);
    free(cur_resp);
    free(d_resp);
}

static void *sync_main(void *arg)
{
    lb_sync_t *s = arg;
    double iv = s->ctx->cfg->sync_interval;
    /* A first sync right away: until it answers nothing can be routed. */
    sync_once(s);
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long ns = ts.tv_nsec + (long)((iv - (long)iv) * 1e9);
        ts.tv_sec += (time_t)iv + ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT)
            ;
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->mu);
        sync_once(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int lb_sync_start(lb_ctx_t *ctx, lb_sync_t **out)
{
    lb_sync_t *s = core_xcalloc(1, sizeof(*s));
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&s->thread, NULL, sync_main, s);
    if (rc != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -rc;
    }
    *out = s;
    return 0;
}

void lb_sync_stop(lb_sync_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->ts);
    free(s);
}
