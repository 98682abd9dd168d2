/*
 * The provider and agent calls of the jobs controller, run off the loop
 * (see ctl_jobs_work.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/prov_registry.h"
#include "core/taskrun.h"
#include "core/util.h"
#include "ctl_jobs_logs.h"
#include "ctl_jobs_work.h"

#define TERMINATE_TRIES    5
#define TERMINATE_RETRY_MS 300

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

void ctl_jobs_owner(long job_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "job:%ld", job_id);
}

static int transport_error(int rc)
{
    return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -EIO ||
           rc == -EHOSTUNREACH;
}

/*
 * The job's provider handle (the registry's driver for the task's cloud),
 * opened on first use. After a transport error the provider's daemon may
 * have died or restarted on another port: reopening finds it again
 * (starting the local cloud if needed), as opening did.
 */
static int prov_open(ctl_jobs_call_t *c)
{
    core_prov_t *p = NULL;
    int rc = core_prov_open(c->cloud, &p, NULL);
    if (rc < 0)
        return rc;
    core_prov_destroy(*c->prov);
    *c->prov = p;
    return 0;
}

static int ensure_prov(ctl_jobs_call_t *c)
{
    return *c->prov ? 0 : prov_open(c);
}

/* Terminates <id>, retrying transport errors a few times: a leaked instance costs money. */
static int terminate_id(ctl_jobs_call_t *c, const char *id)
{
    int rc = 0;
    for (int tries = 0; tries < TERMINATE_TRIES; tries++) {
        if ((rc = ensure_prov(c)) == 0)
            rc = core_prov_terminate(*c->prov, id);
        if (!transport_error(rc))
            break;
        msleep(TERMINATE_RETRY_MS);
        prov_open(c);
    }
    return rc;
}

/* Terminates every instance the job owns besides <keep>: leftovers of a launch
 * the daemon was killed in the middle of, or one a timed-out launch made. */
static void reap(ctl_jobs_call_t *c, const char *keep)
{
    core_instance_t *list = NULL;
    size_t n = 0;
    char owner[64];
    ctl_jobs_owner(c->job_id, owner, sizeof(owner));
    int rc = ensure_prov(c);
    if (rc == 0)
        rc = core_prov_list(*c->prov, &list, &n);
    if (transport_error(rc) && prov_open(c) == 0)
        rc = core_prov_list(*c->prov, &list, &n);
    if (rc < 0) {
        ctl_jobs_log(c->jobs_dir, c->job_id, "cannot list instances to reap leftovers: %s",
                     core_strerror(rc));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].owner, owner) == 0 && strcmp(list[i].id, keep) != 0) {
            ctl_jobs_log(c->jobs_dir, c->job_id, "terminating leftover instance %s", list[i].id);
            terminate_id(c, list[i].id);
        }
    }
    free(list);
}

/* Buckets the job declared `persistent: false` are its own: removed at its end. */
static void drop_buckets(ctl_jobs_call_t *c)
{
    for (size_t i = 0; i < c->buckets->n_file_mounts; i++) {
        const core_file_mount_t *m = &c->buckets->file_mounts[i];
        if (!m->is_storage || m->persistent || m->name == NULL)
            continue;
        char *p = NULL;
        if (core_bucket_path(m->name, &p) == 0) {
            core_rm_rf(p);
            ctl_jobs_log(c->jobs_dir, c->job_id, "removed ephemeral bucket %s", m->name);
        }
        free(p);
    }
}

/*
 * The instance as the provider sees it: a forgotten instance is TERMINATED;
 * when the provider cannot be reached the state is unknown this round, so it
 * counts as RUNNING and the agent's answer decides.
 */
static enum core_inst_state instance_state(ctl_jobs_call_t *c)
{
    core_instance_t now;
    int rc = ensure_prov(c);
    if (rc == 0)
        rc = core_prov_describe(*c->prov, c->inst.id, &now);
    if (transport_error(rc))
        prov_open(c);
    return rc == 0 ? now.state : rc == CORE_ENOTFOUND ? CORE_INST_TERMINATED : CORE_INST_RUNNING;
}

static void task_get(ctl_jobs_call_t *c)
{
    double t0 = core_now();
    c->task_rc = core_agent_task_get(c->inst.ip, c->inst.agent_port, NULL, c->task_id, &c->task);
    c->task_secs = core_now() - t0;
}

static void launch(ctl_jobs_call_t *c)
{
    char owner[64];
    size_t chosen = 0;
    ctl_jobs_owner(c->job_id, owner, sizeof(owner));
    c->rc = ensure_prov(c);
    if (c->rc == 0)
        c->rc = core_prov_launch_failover(*c->prov, c->cands, c->n_cands, c->skip, owner,
                                          &c->launched, &chosen, &c->err);
    if (transport_error(c->rc)) {
        /* The local cloud may still make the instance it timed out on, or it
         * restarted: reconnect and remove whatever this job left there. */
        prov_open(c);
        reap(c, "");
    }
}

static void cleanup(ctl_jobs_call_t *c)
{
    c->rc = 0;
    if (c->cancel_task && c->inst.id[0] && c->task_id)
        core_agent_cancel(c->inst.ip, c->inst.agent_port, NULL, c->task_id);
    if (c->inst.id[0]) {
        c->rc = terminate_id(c, c->inst.id);
        if (c->rc < 0)
            ctl_jobs_log(c->jobs_dir, c->job_id, "terminating %s failed: %s", c->inst.id,
                         core_strerror(c->rc));
        else
            ctl_jobs_log(c->jobs_dir, c->job_id, "terminated %s", c->inst.id);
    }
    reap(c, c->inst.id);
    if (c->buckets)
        drop_buckets(c);
}

void ctl_jobs_call_run(ctl_jobs_call_t *c)
{
    switch (c->op) {
    case CTL_JOBS_OP_CONNECT:
        c->rc = ensure_prov(c);
        break;
    case CTL_JOBS_OP_LAUNCH:
        launch(c);
        break;
    case CTL_JOBS_OP_SUBMIT:
        c->rc = core_agent_submit(c->inst.ip, c->inst.agent_port, NULL, c->task_json,
                                  &c->task_id);
        cJSON_Delete(c->task_json);
        c->task_json = NULL;
        break;
    case CTL_JOBS_OP_TASK_GET:
        task_get(c);
        break;
    case CTL_JOBS_OP_POLL:
        c->state = instance_state(c);
        if (c->state == CORE_INST_RUNNING)
            task_get(c);
        else
            c->task_rc = -ECONNREFUSED;
        break;
    case CTL_JOBS_OP_DESCRIBE:
        c->state = instance_state(c);
        break;
    case CTL_JOBS_OP_CLEANUP:
        cleanup(c);
        break;
    }
}

void ctl_jobs_call_clear(ctl_jobs_call_t *c)
{
    free(c->err);
    cJSON_Delete(c->task_json);
    core_agent_task_free(&c->task);
    memset(c, 0, sizeof(*c));
}
