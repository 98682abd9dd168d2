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
 * The provider of <cloud> (NULL: the default) from the job's registry, made
 * on first use: a job whose candidates span clouds (an any_of of the local
 * cloud and an SSH Node Pool) launches, checks and terminates each instance
 * with the provider of its own cloud. A provider whose daemon died or moved
 * finds it again by itself (core/prov_local.c); a failed open is retried by
 * the next call.
 */
static int provs_ensure(ctl_jobs_call_t *c)
{
    return *c->provs ? 0 : core_prov_registry_new(NULL, 0, c->provs);
}

static int prov_get(ctl_jobs_call_t *c, const char *cloud, core_prov_t **out)
{
    int rc = provs_ensure(c);

    return rc < 0 ? rc : core_prov_registry_get(*c->provs, cloud, out, NULL);
}

/* Terminates <id>, retrying transport errors a few times: a leaked instance costs money. */
static int terminate_id(ctl_jobs_call_t *c, const char *cloud, const char *id)
{
    int rc = 0;
    for (int tries = 0; tries < TERMINATE_TRIES; tries++) {
        core_prov_t *p;
        if ((rc = prov_get(c, cloud, &p)) == 0)
            rc = core_prov_terminate(p, id);
        if (!transport_error(rc))
            break;
        msleep(TERMINATE_RETRY_MS);
    }
    return rc;
}

/* Terminates every instance the job owns besides <keep>, in every provider
 * its candidates use: leftovers of a launch the daemon was killed in the
 * middle of, or one a timed-out launch made. */
static void reap(ctl_jobs_call_t *c, const char *keep)
{
    size_t n_clouds = c->n_cands ? c->n_cands : 1, n_seen = 0;
    core_prov_t **seen = core_xcalloc(n_clouds, sizeof(*seen));
    char owner[64];
    ctl_jobs_owner(c->job_id, owner, sizeof(owner));
    for (size_t k = 0; k < n_clouds; k++) {
        const char *cloud = c->n_cands ? c->cands[k].cloud : c->cloud;
        core_instance_t *list = NULL;
        core_prov_t *p = NULL;
        size_t n = 0, s;
        int rc = prov_get(c, cloud, &p);
        for (s = 0; rc == 0 && s < n_seen && seen[s] != p; s++)
            ;
        if (rc == 0 && s < n_seen)
            continue; /* another cloud of the same provider */
        if (rc == 0)
            seen[n_seen++] = p;
        if (rc == 0 && (rc = core_prov_list(p, &list, &n)) < 0 && transport_error(rc))
            rc = core_prov_list(p, &list, &n);
        if (rc < 0) {
            ctl_jobs_log(c->jobs_dir, c->job_id, "cannot list instances to reap leftovers: %s",
                         core_strerror(rc));
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(list[i].owner, owner) == 0 && strcmp(list[i].id, keep) != 0) {
                ctl_jobs_log(c->jobs_dir, c->job_id, "terminating leftover instance %s",
                             list[i].id);
                terminate_id(c, list[i].cloud, list[i].id);
            }
        }
        free(list);
    }
    free(seen);
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
    core_prov_t *p;
    int rc = prov_get(c, c->inst.cloud[0] ? c->inst.cloud : c->cloud, &p);
    if (rc == 0)
        rc = core_prov_describe(p, c->inst.id, &now);
    c->preempt_at = rc == 0 ? now.preempt_at : 0;
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
    c->rc = provs_ensure(c);
    if (c->rc == 0)
        c->rc = core_prov_registry_launch(*c->provs, c->cands, c->n_cands, c->skip, owner,
                                          &c->launched, &chosen, &c->err);
    /* The local cloud may still make the instance it timed out on, or it
     * restarted: remove whatever this job left there. */
    if (transport_error(c->rc))
        reap(c, "");
}

static void cleanup(ctl_jobs_call_t *c)
{
    c->rc = 0;
    if (c->cancel_task && c->inst.id[0] && c->task_id)
        core_agent_cancel(c->inst.ip, c->inst.agent_port, NULL, c->task_id);
    if (c->inst.id[0]) {
        c->rc = terminate_id(c, c->inst.cloud[0] ? c->inst.cloud : c->cloud, c->inst.id);
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
    case CTL_JOBS_OP_CONNECT: {
        core_prov_t *p;
        c->rc = prov_get(c, c->cloud, &p);
        break;
    }
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
    case CTL_JOBS_OP_NOTICE:
        c->rc =
            core_agent_cancel_grace(c->inst.ip, c->inst.agent_port, NULL, c->task_id, c->grace_s);
        break;
    case CTL_JOBS_OP_TERMINATE:
        c->rc = terminate_id(c, c->inst.cloud[0] ? c->inst.cloud : c->cloud, c->inst.id);
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
