#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "core/log.h"
#include "core/mem.h"
#include "lb.h"

/*
 * sky-lb: zero-copy HTTP/1.1 reverse proxy in front of a service's ready
 * replicas. The main thread owns startup, signals and shutdown; the data
 * path runs on --workers loops, the admin listener and the controller sync
 * on their own threads.
 */

typedef struct lb_main {
    lb_ctx_t *ctx;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int stopping;
} lb_main_t;

static void on_signal(uv_signal_t *h, int signum)
{
    lb_main_t *m = h->data;
    if (m->stopping)
        return;
    m->stopping = 1;
    CORE_INFO("signal %d: draining (up to %.0fs)", signum, m->ctx->cfg->drain_timeout);
    atomic_store(&m->ctx->stopping, 1);
    for (int i = 0; i < m->ctx->nworkers; i++)
        lb_worker_stop(m->ctx->workers[i]);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
}

int main(int argc, char **argv)
{
    lb_config_t cfg;
    char *err = NULL;
    int rc = lb_config_parse(&cfg, argc, argv, &err);
    if (rc == 1) {
        fputs(err, stdout);
        free(err);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "sky-lb: %s\n", err);
        free(err);
        return 2;
    }
    core_log_init("sky-lb", cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    lb_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = &cfg;
    ctx.nworkers = cfg.workers;
    pthread_mutex_init(&ctx.snap_mu, NULL);
    int exit_code = 1;
    int *fds = core_xcalloc((size_t)cfg.workers, sizeof(int));
    for (int i = 0; i < cfg.workers; i++)
        fds[i] = -1;
    lb_admin_t *admin = NULL;
    lb_sync_t *sync = NULL;
    uv_loop_t loop;
    uv_loop_init(&loop);

    if (cfg.tls_cert) {
        if (lb_tls_ctx_new(cfg.tls_cert, cfg.tls_key, &ctx.tls, &err) < 0) {
            fprintf(stderr, "sky-lb: %s\n", err);
            free(err);
            exit_code = 2;
            goto out;
        }
    }
    lb_stats_init(&ctx.stats, cfg.workers, 1u << 18);
    ctx.workers = core_xcalloc((size_t)cfg.workers, sizeof(lb_worker_t *));

    int port = cfg.listen_port;
    for (int i = 0; i < cfg.workers; i++) {
        fds[i] = lb_listen_socket(cfg.listen_host, &port, 1024);
        if (fds[i] < 0) {
            CORE_ERROR("cannot listen on %s:%d: %s", cfg.listen_host, port, uv_strerror(fds[i]));
            goto out;
        }
    }
    if (!cfg.controller) {
        lb_snapshot_t *s =
            lb_snapshot_from_urls(&ctx, (const char *const *)cfg.replicas, cfg.n_replicas);
        lb_ctx_publish(&ctx, s);
    }
    for (int i = 0; i < cfg.workers; i++) {
        rc = lb_worker_create(&ctx, i, fds[i], &ctx.workers[i]);
        if (rc < 0) {
            CORE_ERROR("worker %d: %s", i, uv_strerror(rc));
            goto out;
        }
        fds[i] = -1; /* owned by the worker's loop now */
    }
    if (cfg.admin_port >= 0) {
        rc = lb_admin_start(&ctx, cfg.admin_host, cfg.admin_port, &admin);
        if (rc < 0) {
            CORE_ERROR("cannot listen on admin %s:%d: %s", cfg.admin_host, cfg.admin_port,
                       uv_strerror(rc));
            goto out;
        }
    }
    lb_main_t m = {.ctx = &ctx};
    uv_signal_init(&loop, &m.sigterm);
    uv_signal_init(&loop, &m.sigint);
    m.sigterm.data = m.sigint.data = &m;
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    int started = 0;
    for (; started < cfg.workers; started++) {
        if ((rc = lb_worker_start(ctx.workers[started])) < 0) {
            CORE_ERROR("cannot start worker thread: %s", strerror(-rc));
            break;
        }
    }
    if (started == cfg.workers && cfg.controller)
        if ((rc = lb_sync_start(&ctx, &sync)) < 0)
            CORE_ERROR("cannot start the sync thread: %s", strerror(-rc));
    if (started == cfg.workers && (!cfg.controller || sync)) {
        CORE_INFO("policy=%s workers=%d replicas=%zu controller=%s tls=%s", cfg.policy, cfg.workers,
                  cfg.n_replicas, cfg.controller ? cfg.controller : "none", ctx.tls ? "on" : "off");
        int v6 = strchr(cfg.listen_host, ':') != NULL;
        fprintf(stderr, "sky-lb listening on %s%s%s:%d\n", v6 ? "[" : "", cfg.listen_host,
                v6 ? "]" : "", port);
        if (admin)
            fprintf(stderr, "sky-lb admin listening on %s:%d\n", cfg.admin_host, cfg.admin_port);
        fflush(stderr);
        uv_run(&loop, UV_RUN_DEFAULT);
        exit_code = 0;
    } else {
        for (int i = 0; i < cfg.workers; i++)
            lb_worker_stop(ctx.workers[i]);
        if (!uv_is_closing((uv_handle_t *)&m.sigterm)) {
            uv_close((uv_handle_t *)&m.sigterm, NULL);
            uv_close((uv_handle_t *)&m.sigint, NULL);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    for (int i = 0; i < started; i++)
        lb_worker_join(ctx.workers[i]);
    CORE_INFO("stopped");
out:
    lb_sync_stop(sync);
    lb_admin_stop(admin);
    if (ctx.workers) {
        for (int i = 0; i < cfg.workers; i++)
            lb_worker_destroy(ctx.workers[i]);
        free(ctx.workers);
        lb_stats_destroy(&ctx.stats);
    }
    for (int i = 0; i < cfg.workers; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    lb_snapshot_unref(ctx.snap);
    if (ctx.tls)
        lb_tls_ctx_free(ctx.tls);
    uv_loop_close(&loop);
    pthread_mutex_destroy(&ctx.snap_mu);
    lb_config_free(&cfg);
    return exit_code;
}
