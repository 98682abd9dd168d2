#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "core/mem.h"
#include "lb.h"

/*
 * The admin listener: its own thread and loop, so that scrapes never touch
 * a worker loop. It only reads the per-worker counters (relaxed atomics)
 * and the current snapshot.
 */
struct lb_admin {
    lb_ctx_t *ctx;
    uv_loop_t loop;
    uv_async_t stop;
    core_http_server_t *srv;
    pthread_t thread;
};

static char *replicas_json(lb_ctx_t *ctx, size_t *len)
{
    lb_stats_t *s = &ctx->stats;
    lb_snapshot_t *snap = lb_ctx_snapshot(ctx);
    size_t n = snap ? snap->n : 0;
    size_t cap = 64 + n * (LB_URL_MAX + 128);
    char *out = core_xmalloc(cap);
    size_t l = (size_t)snprintf(out, cap, "{\"replicas\":[");
    for (size_t i = 0; i < n; i++) {
        int id = snap->reps[i].stat_id;
        long long inflight = 0;
        unsigned long long req = 0, fail = 0;
        for (int w = 0; id >= 0 && w < s->nw; w++) {
            inflight += atomic_load_explicit(&s->w[w].rep_inflight[id], memory_order_relaxed);
            req += lb_ctr_get(&s->w[w].rep_requests[id]);
            fail += lb_ctr_get(&s->w[w].rep_failures[id]);
        }
        l += (size_t)snprintf(out + l, cap - l,
                              "%s{\"url\":\"%s\",\"in_flight\":%lld,\"requests\":%llu,"
                              "\"failures\":%llu}",
                              i ? "," : "", snap->reps[i].url, inflight, req, fail);
    }
    l += (size_t)snprintf(out + l, cap - l, "]}");
    lb_snapshot_unref(snap);
    *len = l;
    return out;
}

static void on_request(core_http_conn_t *conn, const core_http_req_t *req, void *ud)
{
    lb_admin_t *a = ud;
    size_t len;
    char *body;
    if (strcmp(req->method, "GET") != 0) {
        core_http_respond_error(conn, 405, "method not allowed");
        return;
    }
    if (strcmp(req->path, "/metrics") == 0) {
        body = lb_metrics_render(&a->ctx->stats, &len);
        core_http_respond(conn, 200, "text/plain; version=0.0.4", body, len);
        free(body);
    } else if (strcmp(req->path, "/-/replicas") == 0) {
        body = replicas_json(a->ctx, &len);
        core_http_respond(conn, 200, "application/json", body, len);
        free(body);
    } else if (strcmp(req->path, "/-/healthy") == 0) {
        core_http_respond(conn, 200, "text/plain", "ok\n", 3);
    } else {
        core_http_respond_error(conn, 404, "not found: %s", req->path);
    }
}

static void on_stop(uv_async_t *h)
{
    lb_admin_t *a = h->data;
    core_http_server_close(a->srv);
    a->srv = NULL;
    uv_close((uv_handle_t *)&a->stop, NULL);
}

static void *admin_main(void *arg)
{
    lb_admin_t *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
    return NULL;
}

int lb_admin_start(lb_ctx_t *ctx, const char *host, int port, lb_admin_t **out)
{
    lb_admin_t *a = core_xcalloc(1, sizeof(*a));
    a->ctx = ctx;
    int rc = uv_loop_init(&a->loop);
    if (rc < 0) {
        free(a);
        return rc;
    }
    /* The same bearer token as the other control APIs (401 with a JSON body
     * otherwise); lb_config_parse refuses --admin without one. */
    core_http_server_opts_t opts = {
        .max_body = 65536, .max_head = 16384, .token = ctx->cfg->admin_token};
    rc = core_http_server_start(&a->loop, host, port, &opts, on_request, a, &a->srv);
    if (rc < 0) {
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        free(a);
        return rc;
    }
    uv_async_init(&a->loop, &a->stop, on_stop);
    a->stop.data = a;
    rc = pthread_create(&a->thread, NULL, admin_main, a);
    if (rc != 0) {
        core_http_server_close(a->srv);
        uv_close((uv_handle_t *)&a->stop, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        free(a);
        return -rc;
    }
    *out = a;
    return 0;
}

void lb_admin_stop(lb_admin_t *a)
{
    if (!a)
        return;
    uv_async_send(&a->stop);
    pthread_join(a->thread, NULL);
    if (uv_loop_close(&a->loop) != 0)
        CORE_WARN("admin loop did not close cleanly");
    free(a);
}
