/*
 * The serve controller's blocking work, in libuv's thread pool: launching a
 * replica's instance (adopting one it already owns) and submitting its task
 * to the agent, terminating it, listing and describing instances, and asking
 * the agent for the task's status. A job carries its inputs and results by
 * value; its done callback runs on the loop thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/taskrun.h"
#include "core/util.h"
#include "ctl_serve.h"
#include "ctl_serve_work.h"

#define CTL_OWNER_FMT "serve:%s:%d"

void ctl_job_free(ctl_job_t *j)
{
    free(j->cands);
    free(j->cwd);
    free(j->note);
    free(j->err);
    free(j->list);
    free(j);
}

static void jlog(ctl_job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jlog(ctl_job_t *j, const char *fmt, ...)
{
    va_list ap;

    if (!j->logpath[0])
        return;
    va_start(ap, fmt);
    ctl_serve_vlog(j->logpath, fmt, ap);
    va_end(ap);
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* An instance <owner> already owns (a launch interrupted by a controller
 * restart): adopt it instead of launching a duplicate. */
static int find_owned(core_prov_registry_t *p, const char *owner, core_instance_t *out)
{
    core_instance_t *all = NULL;
    size_t n = 0;
    int found = 0, rc = core_prov_registry_list(p, &all, &n);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].owner, owner) != 0)
            continue;
        if (!found && (all[i].state == CORE_INST_RUNNING || all[i].state == CORE_INST_PENDING)) {
            *out = all[i];
            found = 1;
        } else if (all[i].state != CORE_INST_TERMINATED) {
            /* A dead leftover (preempted/failed): make sure nothing stays behind. */
            core_prov_registry_terminate(p, all[i].cloud, all[i].id);
        }
    }
    free(all);
    return found;
}

static int wait_running(core_prov_registry_t *p, double boot_timeout, core_instance_t *inst)
{
    unsigned long long deadline = core_mono_ms() + (unsigned long long)(boot_timeout * 1000);

    while (inst->state == CORE_INST_PENDING) {
        if (core_mono_ms() > deadline)
            return -ETIMEDOUT;
        msleep(500);
        if (core_prov_registry_describe(p, inst->cloud, inst->id, inst) < 0)
            return CORE_ENOTFOUND;
    }
    return inst->state == CORE_INST_RUNNING ? 0 : CORE_EPREEMPTED;
}

/* The agent's request for the replica (core_task_request), named after it. */
static cJSON *task_request(ctl_job_t *j)
{
    cJSON *extra = cJSON_CreateObject(), *req;
    char id[32];
    core_task_req_opts_t o = {
        .name = j->task_name, .cwd = j->cwd ? j->cwd : "/", .extra_envs = extra};

    snprintf(id, sizeof(id), "%d", j->id);
    cJSON_AddStringToObject(extra, "SKYPILOT_SERVE_REPLICA_ID", id);
    cJSON_AddStringToObject(extra, "SKYPILOT_SERVE_SERVICE_NAME", j->svc);
    req = core_task_agent_json(j->task, &o, &j->err);
    cJSON_Delete(extra);
    return req;
}

static int submit_task(ctl_job_t *j, const cJSON *task)
{
    core_agent_task_t *tasks = NULL;
    size_t n = 0;
    int rc, tid = 0;

    /* Up to ~30 s for the agent: the provider says RUNNING once it answered. */
    for (int i = 0; i < 60; i++) {
        if (core_agent_health(j->inst.ip, j->inst.agent_port, NULL, 2000) == 0)
            break;
        msleep(500);
    }
    /* Idempotent across restarts: reuse the task we submitted before. */
    if (core_agent_task_list(j->inst.ip, j->inst.agent_port, NULL, &tasks, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (tasks[i].name && strcmp(tasks[i].name, j->task_name) == 0)
                tid = tasks[i].task_id;
            core_agent_task_free(&tasks[i]);
        }
        free(tasks);
    }
    if (tid > 0) {
        jlog(j, "reusing task %d already submitted to the agent", tid);
        j->task_id = tid;
        return 0;
    }
    rc = core_agent_submit(j->inst.ip, j->inst.agent_port, NULL, task, &j->task_id);
    if (rc < 0) {
        j->err = core_xasprintf("submitting the task to the agent at %s:%d: %s", j->inst.ip,
                                j->inst.agent_port, core_strerror(rc));
        return rc;
    }
    jlog(j, "task %d submitted to the agent at %s:%d", j->task_id, j->inst.ip, j->inst.agent_port);
    return 0;
}

static void plog(const char *logpath, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void plog(const char *logpath, const char *fmt, ...)
{
    va_list ap;

    if (!logpath || !logpath[0])
        return;
    va_start(ap, fmt);
    ctl_serve_vlog(logpath, fmt, ap);
    va_end(ap);
}

int ctl_provision(core_prov_registry_t *p, const char *owner, const core_candidate_t *cands,
                  size_t n, double boot_timeout, const char *logpath, core_instance_t *out,
                  int *adopted, size_t *chosen, char **err)
{
    int rc = find_owned(p, owner, out);

    *adopted = 0;
    if (rc > 0) {
        plog(logpath, "adopting instance %s (%s) already launched for this replica", out->id,
             core_inst_state_name(out->state));
        if ((rc = wait_running(p, boot_timeout, out)) < 0) {
            if (err)
                *err = core_xasprintf("instance %s did not become RUNNING: %s", out->id,
                                      core_strerror(rc));
            core_prov_registry_terminate(p, out->cloud, out->id);
            return -EAGAIN;
        }
        *adopted = 1;
        return 0;
    }
    plog(logpath, "launching (%zu candidate%s, cheapest %s/%s %s%s)", n, n == 1 ? "" : "s",
         n ? cands[0].region : "-", n ? cands[0].zone : "-", n ? cands[0].instance_type : "-",
         n && cands[0].spot ? " spot" : "");
    rc = core_prov_registry_launch(p, cands, n, NULL, owner, out, chosen, err);
    if (rc < 0) {
        plog(logpath, "launch failed: %s", err && *err ? *err : core_strerror(rc));
        return rc;
    }
    plog(logpath, "instance %s RUNNING at %s (%s/%s/%s %s%s)", out->id, out->ip, out->cloud,
         out->region, out->zone, out->instance_type, out->spot ? " spot" : "");
    return 0;
}

int ctl_unprovision(core_prov_registry_t *p, const char *owner, const char *cloud, const char *id)
{
    core_instance_t *all = NULL;
    size_t n = 0;
    int rc = 0;

    if (id && id[0])
        rc = core_prov_registry_terminate(p, cloud, id);
    /* Everything this replica owns, launched or half-launched. */
    if (rc == 0 && (rc = core_prov_registry_list(p, &all, &n)) == 0) {
        for (size_t i = 0; i < n && rc == 0; i++)
            if (strcmp(all[i].owner, owner) == 0 && all[i].state != CORE_INST_TERMINATED)
                rc = core_prov_registry_terminate(p, all[i].cloud, all[i].id);
        free(all);
    }
    return rc;
}

static void work_launch(ctl_job_t *j)
{
    /* Built before any instance exists: a task that cannot run costs nothing. */
    cJSON *task;

    if (j->note)
        jlog(j, "%s", j->note);
    task = task_request(j);
    if (!task) {
        j->rc = CORE_ESPEC;
        jlog(j, "cannot build the task: %s", j->err);
        return;
    }
    j->rc = ctl_provision(j->s->provs, j->owner, j->cands, j->n_cands, j->boot_timeout, j->logpath,
                          &j->inst, &j->adopted, &j->chosen, &j->err);
    if (j->rc == 0) {
        j->have_inst = 1;
        j->rc = submit_task(j, task);
    }
    cJSON_Delete(task);
}

static int sync_log_cb(const char *data, size_t len, void *arg)
{
    int fd = *(int *)arg;
    ssize_t w = write(fd, data, len);

    (void)w;
    return 0;
}

static void work_terminate(ctl_job_t *j)
{
    core_prov_registry_t *p = j->s->provs;
    double gap = j->retry_initial;
    int rc = 0;

    if (j->sync_logs && j->task_id > 0 && j->ip[0]) {
        int fd = open(j->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

        if (fd >= 0) {
            const char *hdr = "---- replica task log (synced at termination) ----\n";
            ssize_t w = write(fd, hdr, strlen(hdr));

            (void)w;
            core_agent_logs(j->ip, j->agent_port, NULL, j->task_id, 0, -1, sync_log_cb, &fd);
            close(fd);
        }
    }
    for (int attempt = 0; attempt < j->max_retry; attempt++) {
        rc = ctl_unprovision(p, j->owner, j->cloud, j->instance_id);
        if (rc == 0)
            break;
        jlog(j, "terminate attempt %d failed: %s", attempt + 1, core_strerror(rc));
        if (attempt + 1 < j->max_retry)
            msleep((long)(gap * 1000));
        gap *= 1.6;
    }
    j->rc = rc;
    if (rc == 0)
        jlog(j, "terminated");
}

int ctl_instance_cmp(const void *a, const void *b)
{
    const core_instance_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    return c ? c : strcmp(x->cloud, y->cloud);
}

static void work_list(ctl_job_t *j)
{
    j->rc = core_prov_registry_list(j->s->provs, &j->list, &j->n_list);
    /* Sorted here, off the loop, which then finds each replica's instance by bsearch. */
    if (j->rc == 0 && j->n_list > 1)
        qsort(j->list, j->n_list, sizeof(*j->list), ctl_instance_cmp);
}

static void work_describe(ctl_job_t *j)
{
    j->rc = core_prov_registry_describe(j->s->provs, j->cloud, j->instance_id, &j->inst);
}

static void work_task_status(ctl_job_t *j)
{
    core_agent_task_t t;

    memset(&t, 0, sizeof(t));
    j->rc = core_agent_task_get(j->ip, j->agent_port, NULL, j->task_id, &t);
    if (j->rc == 0)
        j->task_status = t.status;
    core_agent_task_free(&t);
}

static void on_work(uv_work_t *w)
{
    ctl_job_t *j = w->data;

    switch (j->kind) {
    case CTL_JOB_LAUNCH:
        work_launch(j);
        break;
    case CTL_JOB_TERMINATE:
        work_terminate(j);
        break;
    case CTL_JOB_LIST:
        work_list(j);
        break;
    case CTL_JOB_DESCRIBE:
        work_describe(j);
        break;
    case CTL_JOB_TASK_STATUS:
        work_task_status(j);
        break;
    }
}

static void on_after_work(uv_work_t *w, int status)
{
    ctl_job_t *j = w->data;

    (void)status;
    if (!j->s->stopping && j->done)
        j->done(j);
    ctl_job_free(j);
}

ctl_job_t *ctl_job_new(ctl_serve_t *s, ctl_job_kind_t kind, const char *svc, int id,
                       ctl_job_done_cb done)
{
    ctl_job_t *j = core_xcalloc(1, sizeof(*j));

    j->done = done;
    j->s = s;
    j->kind = kind;
    j->w.data = j;
    j->started_mono = core_mono_ms();
    if (svc) {
        snprintf(j->svc, sizeof(j->svc), "%s", svc);
        snprintf(j->owner, sizeof(j->owner), CTL_OWNER_FMT, svc, id);
        ctl_serve_replica_log_path(s, svc, id, j->logpath, sizeof(j->logpath));
    }
    j->id = id;
    return j;
}

void ctl_job_queue(ctl_job_t *j)
{
    int rc = uv_queue_work(j->s->loop, &j->w, on_work, on_after_work);

    if (rc < 0) {
        CORE_ERROR("uv_queue_work: %s", uv_strerror(rc));
        ctl_job_free(j);
    }
}
