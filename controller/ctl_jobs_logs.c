/*
 * A managed job's log files: the controller's lines and the copy of each
 * attempt's output (see ctl_jobs_logs.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/agent.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_jobs_logs.h"

/* A broken stream (agent restarting, network hiccup) is reopened after this. */
#define RETRY_MS 300

char *ctl_jobs_path(const char *jobs_dir, long id, const char *file)
{
    return core_xasprintf("%s/%ld/%s", jobs_dir, id, file);
}

void ctl_jobs_log(const char *jobs_dir, long id, const char *fmt, ...)
{
    char msg[1024], ts[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    CORE_INFO("job %ld: %s", id, msg);
    char *p = ctl_jobs_path(jobs_dir, id, "controller.log");
    FILE *f = fopen(p, "a");
    free(p);
    if (f == NULL)
        return;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(f, "%s %s\n", ts, msg);
    fclose(f);
}

struct ctl_logsync {
    uv_timer_t timer; /* the next reconnection, or the end of a drain */
    core_http_async_t *http;
    core_http_xfer_t *xfer; /* NULL between connections */
    char *url;
    char *bearer; /* the agent's token, if it wants one */
    FILE *f;
    long long skip; /* bytes of this connection's replay the file already has */
    int finished;   /* the agent ended the stream: the task's output is all here */
    int draining;
    unsigned long long drain_deadline; /* core_mono_ms() */
    void (*done)(void *arg);
    void *arg;
};

static int on_data(void *arg, const char *data, size_t len)
{
    ctl_logsync_t *ls = arg;
    if (ls->skip > 0) {
        size_t s = (long long)len < ls->skip ? len : (size_t)ls->skip;
        ls->skip -= (long long)s;
        data += s;
        len -= s;
    }
    if (len) {
        fwrite(data, 1, len, ls->f);
        fflush(ls->f);
    }
    return 0;
}

static void on_done(void *arg, int rc, long status, const char *err);
static void on_timer(uv_timer_t *t);

/* Opens the stream, or arms the timer to try again. */
static void connect_stream(ctl_logsync_t *ls)
{
    struct stat st;
    ls->skip = fstat(fileno(ls->f), &st) == 0 ? (long long)st.st_size : 0;
    core_http_xfer_opts_t o = {
        .url = ls->url, .bearer = ls->bearer, .on_data = on_data, .on_done = on_done, .arg = ls};
    if (core_http_async_start(ls->http, &o, &ls->xfer) < 0) {
        ls->xfer = NULL;
        uv_timer_start(&ls->timer, on_timer, RETRY_MS, 0);
    }
}

static void on_closed(uv_handle_t *h)
{
    ctl_logsync_t *ls = h->data;
    if (ls->done)
        ls->done(ls->arg);
    free(ls->url);
    free(ls->bearer);
    free(ls);
}

/* Stops copying and frees <ls> once its timer has closed; <done> then runs. */
static void finish(ctl_logsync_t *ls)
{
    if (ls->xfer)
        core_http_xfer_cancel(ls->xfer);
    ls->xfer = NULL;
    if (ls->f)
        fclose(ls->f);
    ls->f = NULL;
    uv_timer_stop(&ls->timer);
    uv_close((uv_handle_t *)&ls->timer, on_closed);
}

static void on_timer(uv_timer_t *t)
{
    ctl_logsync_t *ls = t->data;
    if (ls->draining && (ls->finished || core_mono_ms() >= ls->drain_deadline)) {
        finish(ls);
        return;
    }
    if (ls->xfer == NULL && !ls->finished)
        connect_stream(ls);
    if (ls->draining && ls->xfer) {
        unsigned long long now = core_mono_ms();
        uv_timer_start(&ls->timer, on_timer,
                       ls->drain_deadline > now ? ls->drain_deadline - now : 0, 0);
    }
}

static void on_done(void *arg, int rc, long status, const char *err)
{
    ctl_logsync_t *ls = arg;
    (void)err;
    ls->xfer = NULL;
    /* 2xx: the agent ended the stream because the task ended. 404: it does not
     * know the task (nothing to copy). Anything else: reconnect. */
    if (rc == 0 && ((status >= 200 && status < 300) || status == 404))
        ls->finished = 1;
    if (ls->finished && ls->draining)
        finish(ls);
    else if (!ls->finished)
        uv_timer_start(&ls->timer, on_timer, RETRY_MS, 0);
}

ctl_logsync_t *ctl_logsync_start(uv_loop_t *loop, core_http_async_t *http, const char *jobs_dir,
                                 long job, int attempt, const char *ip, int port, int task)
{
    char name[32], path[64];
    snprintf(name, sizeof(name), "run-%d.log", attempt);
    char *file = ctl_jobs_path(jobs_dir, job, name);
    ctl_logsync_t *ls = core_xcalloc(1, sizeof(*ls));
    ls->http = http;
    ls->f = fopen(file, "a");
    if (ls->f == NULL)
        ctl_jobs_log(jobs_dir, job, "cannot write %s: the output of attempt %d is not kept",
                     file, attempt);
    free(file);
    snprintf(path, sizeof(path), "/tasks/%d/logs?follow=1", task);
    ls->url = core_agent_url(ip, port, NULL, path, &ls->bearer);
    uv_timer_init(loop, &ls->timer);
    ls->timer.data = ls;
    if (ls->f)
        connect_stream(ls);
    else
        ls->finished = 1;
    return ls;
}

void ctl_logsync_stop(ctl_logsync_t *ls)
{
    if (ls == NULL)
        return;
    ls->done = NULL;
    finish(ls);
}

void ctl_logsync_drain(ctl_logsync_t *ls, double timeout_s, void (*done)(void *arg), void *arg)
{
    ls->draining = 1;
    ls->done = done;
    ls->arg = arg;
    ls->drain_deadline = core_mono_ms() + (unsigned long long)(timeout_s * 1000);
    /* Through the timer, so that <done> never runs from inside this call. */
    uv_timer_start(&ls->timer, on_timer, 0, 0);
}
