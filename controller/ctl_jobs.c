/*
 * The managed-jobs controller daemon (see ctl_jobs.h for the API and the
 * model): its settings, its loop, and resuming every unfinished job when it
 * starts.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_jobs.h"
#include "ctl_jobs_api.h"
#include "ctl_jobs_run.h"
#include "ctl_jobs_store.h"

static double env_double(const char *name, double def)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return def;
    double d;
    if (core_parse_num(v, 0, 1e9, &d) < 0) {
        CORE_WARN("ignoring %s=%s: not a non-negative number", name, v);
        return def;
    }
    return d;
}

void ctl_jobs_cfg_load(ctl_jobs_cfg_t *c)
{
    c->poll_s = env_double("SKY_JOBS_POLL_INTERVAL", 0.5);
    c->retry_init_s = env_double("SKY_JOBS_RETRY_INIT_GAP", 60);
    c->retry_max_factor = env_double("SKY_JOBS_RETRY_MAX_FACTOR", 5);
    c->failure_grace_s = env_double("SKY_JOBS_FAILURE_GRACE", CTL_JOB_FAILURE_GRACE_S);
    c->unknown_timeout_s = env_double("SKY_JOBS_STATUS_TIMEOUT", 10);
    c->start_timeout_s = env_double("SKY_JOBS_START_TIMEOUT", 50);
    c->idle_s = env_double("SKY_JOBS_IDLE_TIMEOUT", 600);
}

typedef struct daemon {
    ctl_jobs_t d;
    uv_signal_t sigterm, sigint;
} daemon_t;

/* The clean stop, on a signal or when idle. Jobs keep running on their instances. */
static void stop(void *arg)
{
    daemon_t *dm = arg;
    /* Nothing left to run: questions are answered without starting this daemon again. */
    ctl_stopped_mark(dm->d.jobs_dir, dm->d.jobs == NULL);
    ctl_idle_close(&dm->d.idle);
    ctl_jobs_run_stop_all(&dm->d);
    core_http_server_close(dm->d.http);
    dm->d.http = NULL;
    core_http_async_close(dm->d.agents);
    dm->d.agents = NULL;
    uv_close((uv_handle_t *)&dm->sigterm, NULL);
    uv_close((uv_handle_t *)&dm->sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    CORE_INFO("signal %d: stopping (jobs keep running on their instances)", signum);
    stop(s->data);
}

static bool busy(void *arg)
{
    const daemon_t *dm = arg;
    return dm->d.jobs != NULL;
}

static int write_port_file(const char *jobs_dir, int port)
{
    char *p = core_xasprintf("%s/controller.port", jobs_dir);
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d\n", port);
    int r = core_write_file(p, buf, (size_t)n, 0600);
    free(p);
    return r;
}

/* Every job that had not ended when the previous daemon stopped. */
static void resume_jobs(ctl_jobs_t *d)
{
    ctl_job_row_t *rows = NULL;
    size_t n = 0;
    if (ctl_jobs_store_list(d->store, &rows, &n) < 0)
        return;
    for (size_t i = n; i-- > 0;) { /* oldest first */
        if (!ctl_job_status_is_terminal(rows[i].t.status)) {
            CORE_INFO("resuming job %ld (%s)", rows[i].id, ctl_job_status_name(rows[i].t.status));
            ctl_jobs_run_start(d, rows[i].id);
        }
    }
    for (size_t i = 0; i < n; i++)
        ctl_job_row_free(&rows[i]);
    free(rows);
}

int ctl_jobs_main(const ctl_jobs_opts_t *opts)
{
    daemon_t dm;
    ctl_jobs_t *d = &dm.d;
    char *home = core_home_dir(), *token = NULL, *err = NULL;
    int code = 1, r;

    memset(&dm, 0, sizeof(dm));
    ctl_jobs_cfg_load(&d->cfg);
    d->jobs_dir = core_xasprintf("%s/jobs", home);
    core_mkdir_p(d->jobs_dir, 0700);
    char *tokpath = core_xasprintf("%s/token", home);
    r = core_token_load(tokpath, &token);
    free(tokpath);
    if (r < 0) {
        CORE_ERROR("cannot read or create the token: %s", core_strerror(r));
        goto out;
    }
    char *db_path = core_xasprintf("%s/jobs.db", d->jobs_dir);
    r = ctl_jobs_store_open(db_path, &d->store, &err);
    free(db_path);
    if (r < 0) {
        CORE_ERROR("%s", err ? err : "cannot open the jobs store");
        goto out;
    }
    d->loop = uv_default_loop();
    if ((r = core_http_async_new(d->loop, &d->agents)) < 0) {
        CORE_ERROR("cannot set up the log streams: %s", core_strerror(r));
        goto out;
    }
    core_http_server_opts_t ho = {.token = token, .max_body = 4u << 20};
    r = core_http_server_start(d->loop, opts->listen_host ? opts->listen_host : "127.0.0.1",
                               opts->port, &ho, ctl_jobs_api_handle, d, &d->http);
    if (r < 0) {
        CORE_ERROR("cannot listen on port %d: %s", opts->port, core_strerror(r));
        goto out;
    }
    int port = core_http_server_port(d->http);
    ctl_metrics_proc_start(&d->proc, d->jobs_dir);
    write_port_file(d->jobs_dir, port);
    uv_signal_init(d->loop, &dm.sigterm);
    uv_signal_init(d->loop, &dm.sigint);
    dm.sigterm.data = dm.sigint.data = &dm;
    uv_signal_start(&dm.sigterm, on_signal, SIGTERM);
    uv_signal_start(&dm.sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    ctl_stopped_mark(d->jobs_dir, false);
    resume_jobs(d);
    ctl_idle_start(&d->idle, d->loop, d->cfg.idle_s, busy, stop, &dm);
    CORE_INFO("jobs controller listening on 127.0.0.1:%d (pid %d)", port, (int)getpid());
    uv_run(d->loop, UV_RUN_DEFAULT);
    code = 0;
out:
    if (d->loop) {
        /* A start that failed half way: close what was opened. */
        ctl_jobs_run_stop_all(d);
        if (d->http)
            core_http_server_close(d->http);
        core_http_async_close(d->agents);
        uv_run(d->loop, UV_RUN_DEFAULT);
        uv_loop_close(d->loop);
    }
    core_store_close(d->store);
    free(err);
    free(token);
    free(d->jobs_dir);
    free(home);
    return code;
}
