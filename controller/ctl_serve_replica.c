/*
 * A replica's life on the loop thread: what the fleet decides (ctl_fleet.c)
 * turned into thread-pool jobs (ctl_serve_work.c), and their results fed
 * back: launches and their outcomes, terminations, the provider poll and the
 * agent's task status that detect preemptions and failed apps, autoscaler
 * decisions, and each replica's share of the tick.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_serve.h"
#include "ctl_serve_replica.h"
#include "ctl_serve_store.h"
#include "ctl_serve_work.h"
#include "ctl_service.h"

static void after_launch(ctl_job_t *j);
static void after_terminate(ctl_job_t *j);
static void after_list(ctl_job_t *j);
static void after_describe(ctl_job_t *j);
static void after_task_status(ctl_job_t *j);

static int resolve_candidates(ctl_serve_t *s, ctl_replica_t *r, ctl_version_t *v,
                              core_candidate_t **c, size_t *n, char **err)
{
    core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;

    if (!s->catalog) {
        if (err)
            *err = core_xstrdup("no catalog loaded");
        return CORE_EINFEASIBLE;
    }
    o.use_spot = r->fr.row.use_spot;
    if (r->fr.row.has_location) {
        o.cloud = r->fr.row.loc.cloud;
        o.region = r->fr.row.loc.region;
        o.zone = r->fr.row.loc.zone[0] ? r->fr.row.loc.zone : NULL;
    }
    return core_catalog_resolve_ex(s->catalog, &v->task->resources, &o, c, n, err);
}

static void launch_failed(ctl_replica_t *r, bool no_capacity)
{
    /* An attempt that ended before reaching the provider. */
    r->svc->counters.launches++;
    r->svc->counters.launch_failures++;
    ctl_fleet_launch_failed(&r->svc->fleet, &r->fr, no_capacity, core_now());
    ctl_service_save_fleet(r->svc);
}

static void queue_launch(ctl_replica_t *r)
{
    ctl_service_t *svc = r->svc;
    ctl_serve_t *s = svc->s;
    ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);
    ctl_job_t *j;
    char *err = NULL;
    int rc;

    if (r->fr.busy)
        return;
    if (!v || !v->task) {
        ctl_serve_replica_log(s, svc->row.name, r->fr.row.id, "version %d has no usable task",
                              r->fr.row.version);
        launch_failed(r, false);
        return;
    }
    j = ctl_job_new(s, CTL_JOB_LAUNCH, svc->row.name, r->fr.row.id, after_launch);
    rc = resolve_candidates(s, r, v, &j->cands, &j->n_cands, &err);
    if (rc == 0 && r->fr.row.use_spot && !r->fr.row.has_location)
        ctl_fleet_order_candidates(&svc->fleet, j->cands, j->n_cands, core_now());
    if (rc < 0) {
        ctl_serve_replica_log(s, svc->row.name, r->fr.row.id, "no launchable resources: %s",
                              err ? err : core_strerror(rc));
        CORE_WARN("%s replica %d: no launchable resources: %s", svc->row.name, r->fr.row.id,
                  err ? err : core_strerror(rc));
        free(err);
        ctl_job_free(j);
        launch_failed(r, r->fr.row.has_location);
        return;
    }
    j->task = v->task;
    j->cwd = v->row.cwd ? core_xstrdup(v->row.cwd) : NULL;
    /* A new replica's first line, written by the job: a burst of new replicas
     * must not create their log files on the loop. */
    if (r->fr.row.launch_attempts == 0)
        j->note = core_xasprintf("replica %d of version %d: %s%s%s", r->fr.row.id,
                                 r->fr.row.version, r->fr.row.is_spot ? "spot" : "on-demand",
                                 r->fr.row.has_location ? ", placed in " : "",
                                 r->fr.row.has_location ? r->fr.row.loc.zone : "");
    snprintf(j->task_name, sizeof(j->task_name), "serve-%s-%d", svc->row.name, r->fr.row.id);
    j->boot_timeout = s->cfg.instance_boot_timeout;
    ctl_fleet_launch_started(&svc->fleet, &r->fr);
    svc->counters.launches++;
    ctl_replica_save(r);
    CORE_INFO("%s replica %d: launching (version %d, %s%s%s)", svc->row.name, r->fr.row.id,
              r->fr.row.version, r->fr.row.is_spot ? "spot" : "on-demand",
              r->fr.row.has_location ? " in " : "",
              r->fr.row.has_location ? r->fr.row.loc.zone : "");
    ctl_job_queue(j);
}

static void fill_instance(ctl_replica_t *r, const core_instance_t *in)
{
    core_candidate_t c;

    snprintf(r->fr.row.instance_id, sizeof(r->fr.row.instance_id), "%s", in->id);
    snprintf(r->fr.row.ip, sizeof(r->fr.row.ip), "%s", in->ip);
    snprintf(r->fr.row.cloud, sizeof(r->fr.row.cloud), "%s", in->cloud);
    snprintf(r->fr.row.region, sizeof(r->fr.row.region), "%s", in->region);
    snprintf(r->fr.row.zone, sizeof(r->fr.row.zone), "%s", in->zone);
    snprintf(r->fr.row.instance_type, sizeof(r->fr.row.instance_type), "%s", in->instance_type);
    r->fr.row.agent_port = in->agent_port;
    r->fr.row.port_offset = in->port_offset;
    r->fr.row.price = in->price;
    r->fr.row.is_spot = in->spot;
    memset(&c, 0, sizeof(c));
    snprintf(c.cloud, sizeof(c.cloud), "%s", in->cloud);
    snprintf(c.region, sizeof(c.region), "%s", in->region);
    snprintf(c.zone, sizeof(c.zone), "%s", in->zone);
    snprintf(c.instance_type, sizeof(c.instance_type), "%s", in->instance_type);
    c.spot = in->spot;
    c.price = in->price;
    /* vCPUs for the label come from the catalog's view of the type. */
    if (r->svc->s->catalog) {
        core_candidate_t *cands = NULL;
        size_t n = 0;
        ctl_version_t *v = ctl_service_version(r->svc, r->fr.row.version);
        core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;

        o.use_spot = in->spot;
        o.cloud = in->cloud;
        o.region = in->region;
        o.zone = in->zone;
        if (v && v->task &&
            core_catalog_resolve_ex(r->svc->s->catalog, &v->task->resources, &o, &cands, &n,
                                    NULL) == 0) {
            for (size_t i = 0; i < n; i++)
                if (strcmp(cands[i].instance_type, in->instance_type) == 0)
                    c = cands[i];
        }
        free(cands);
    }
    core_candidate_label(&c, r->fr.row.resources, sizeof(r->fr.row.resources));
}

static void orphan_terminate(ctl_serve_t *s, const char *svc, int id, const char *cloud,
                             const char *instance_id)
{
    /* No done callback: there is no record to update. */
    ctl_job_t *j = ctl_job_new(s, CTL_JOB_TERMINATE, svc, id, NULL);

    snprintf(j->cloud, sizeof(j->cloud), "%s", cloud);
    snprintf(j->instance_id, sizeof(j->instance_id), "%s", instance_id);
    j->max_retry = s->cfg.terminate_max_retry;
    j->retry_initial = s->cfg.terminate_retry_initial;
    ctl_job_queue(j);
}

static void after_launch(ctl_job_t *j)
{
    ctl_service_t *svc;
    ctl_replica_t *r = ctl_serve_find_replica(j->s, j->svc, j->id, &svc);
    ctl_serve_t *s = j->s;

    if (!r) {
        /* The record went away meanwhile (purge): leak nothing. */
        if (j->have_inst)
            orphan_terminate(s, j->svc, j->id, j->inst.cloud, j->inst.id);
        return;
    }
    if (j->have_inst)
        fill_instance(r, &j->inst);
    if (j->have_inst && j->task_id > 0)
        r->fr.row.agent_task_id = j->task_id;
    switch (ctl_fleet_launch_done(&svc->fleet, &r->fr, j->rc, core_now())) {
    case CTL_FLEET_SUPERSEDED: /* scaled down while launching: the pending down takes over */
        break;
    case CTL_FLEET_LAUNCHED:
        r->launched_mono = core_mono_ms();
        r->next_job_poll = core_now() + s->cfg.job_status_interval;
        CORE_INFO("%s replica %d: STARTING on %s (%s)%s", svc->row.name, r->fr.row.id,
                  r->fr.row.instance_id, r->fr.row.ip, j->adopted ? " (adopted)" : "");
        break;
    case CTL_FLEET_RETRY:
        svc->counters.launch_failures++;
        CORE_WARN("%s replica %d: launch failed: %s", svc->row.name, r->fr.row.id,
                  j->err ? j->err : core_strerror(j->rc));
        ctl_serve_replica_log(s, svc->row.name, r->fr.row.id, "retrying the launch in %.0f s",
                              r->fr.next_launch_at - core_now());
        break;
    case CTL_FLEET_FAILED:
        svc->counters.launch_failures++;
        CORE_WARN("%s replica %d: launch failed: %s", svc->row.name, r->fr.row.id,
                  j->err ? j->err : core_strerror(j->rc));
        break;
    }
    ctl_service_save_fleet(svc);
}

static void queue_terminate(ctl_replica_t *r)
{
    ctl_serve_t *s = r->svc->s;
    ctl_job_t *j =
        ctl_job_new(s, CTL_JOB_TERMINATE, r->svc->row.name, r->fr.row.id, after_terminate);

    snprintf(j->cloud, sizeof(j->cloud), "%s", r->fr.row.cloud);
    snprintf(j->instance_id, sizeof(j->instance_id), "%s", r->fr.row.instance_id);
    snprintf(j->ip, sizeof(j->ip), "%s", r->fr.row.ip);
    j->agent_port = r->fr.row.agent_port;
    j->task_id = r->fr.row.agent_task_id;
    /* Keep the task's output of a replica that failed (reference sync_down_logs). */
    j->sync_logs = !r->fr.row.f.preempted && !r->fr.row.f.is_scale_down && r->fr.row.instance_id[0];
    j->max_retry = s->cfg.terminate_max_retry;
    j->retry_initial = s->cfg.terminate_retry_initial;
    ctl_fleet_down_started(&r->svc->fleet, &r->fr);
    ctl_replica_save(r);
    ctl_job_queue(j);
}

void ctl_replica_remove(ctl_service_t *svc, ctl_replica_t *r)
{
    ctl_store_delete_replica(svc->s->store, svc->row.name, r->fr.row.id);
    ctl_fleet_remove(&svc->fleet, &r->fr);
}

static void after_terminate(ctl_job_t *j)
{
    ctl_service_t *svc;
    ctl_replica_t *r;

    r = ctl_serve_find_replica(j->s, j->svc, j->id, &svc);
    if (!r)
        return;
    CORE_INFO("%s replica %d: terminated (%s)", svc->row.name, r->fr.row.id,
              j->rc == 0 ? "ok" : core_strerror(j->rc));
    if (ctl_fleet_down_done(&svc->fleet, &r->fr, j->rc == 0, ctl_service_going_down(svc)))
        ctl_replica_remove(svc, r);
    else
        ctl_replica_save(r);
    ctl_service_update_status(svc);
    ctl_service_maybe_finish_down(svc);
}

static void handle_gone(ctl_replica_t *r, const char *why)
{
    ctl_service_t *svc = r->svc;

    if (!ctl_fleet_preempted(&svc->fleet, &r->fr, core_now()))
        return;
    svc->counters.preemptions++;
    CORE_WARN("%s replica %d: instance %s %s: PREEMPTED", svc->row.name, r->fr.row.id,
              r->fr.row.instance_id, why);
    ctl_serve_replica_log(svc->s, svc->row.name, r->fr.row.id, "instance %s %s: preempted",
                          r->fr.row.instance_id, why);
    ctl_service_save_fleet(svc);
    ctl_service_update_status(svc);
}

/* A preemption notice: the replacement now, the LB drain before the deadline. */
static void handle_notice(ctl_replica_t *r, double deadline)
{
    ctl_service_t *svc = r->svc;
    double t = core_now();

    if (!ctl_fleet_notice(&svc->fleet, &r->fr, deadline, t))
        return;
    CORE_WARN("%s replica %d: instance %s has a preemption notice (%.0f s): replacing it",
              svc->row.name, r->fr.row.id, r->fr.row.instance_id, deadline - t);
    ctl_serve_replica_log(svc->s, svc->row.name, r->fr.row.id,
                          "instance %s: preemption notice, preempted in %.0f s",
                          r->fr.row.instance_id, deadline - t);
    ctl_service_save_fleet(svc);
    svc->next_decision = t;
}

static void after_list(ctl_job_t *j)
{
    ctl_serve_t *s = j->s;

    s->poll_busy = 0;
    if (j->rc < 0) {
        CORE_DEBUG("provider poll: %s", core_strerror(j->rc));
        return;
    }
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            const core_instance_t *in;
            core_instance_t key;

            if (r->fr.row.f.launch != CTL_PROC_SUCCEEDED || r->fr.row.f.down != CTL_PROC_NONE ||
                !r->fr.row.instance_id[0] || r->fr.busy)
                continue;
            /* A list taken before the launch result arrived knows nothing of it. */
            if (r->launched_mono > j->started_mono)
                continue;
            snprintf(key.id, sizeof(key.id), "%s", r->fr.row.instance_id);
            snprintf(key.cloud, sizeof(key.cloud), "%s", r->fr.row.cloud);
            in = j->n_list ? bsearch(&key, j->list, j->n_list, sizeof(*j->list), ctl_instance_cmp)
                           : NULL;
            if (!in)
                handle_gone(r, "is gone");
            else if (in->state == CORE_INST_RUNNING && in->preempt_at > 0)
                handle_notice(r, in->preempt_at);
            else if (in->state == CORE_INST_PREEMPTED || in->state == CORE_INST_TERMINATED ||
                     in->state == CORE_INST_FAILED)
                handle_gone(r, in->state == CORE_INST_PREEMPTED ? "was preempted"
                                                                : "is no longer running");
        }
    }
}

void ctl_serve_poll(ctl_serve_t *s, double t)
{
    bool any_launched = false;
    ctl_job_t *j;

    if (s->poll_busy || t < s->next_poll)
        return;
    for (ctl_service_t *svc = s->services; svc && !any_launched; svc = svc->next) {
        CTL_FOR_EACH_REPLICA(svc, r)
        any_launched |= r->fr.row.f.launch == CTL_PROC_SUCCEEDED && r->fr.row.instance_id[0];
    }
    if (!any_launched)
        return;
    j = ctl_job_new(s, CTL_JOB_LIST, NULL, 0, after_list);
    s->poll_busy = 1;
    s->next_poll = t + s->cfg.provider_poll_interval;
    ctl_job_queue(j);
}

void ctl_replica_queue_describe(ctl_replica_t *r)
{
    ctl_job_t *j;

    if (r->preempt_check || !r->fr.row.instance_id[0])
        return;
    j = ctl_job_new(r->svc->s, CTL_JOB_DESCRIBE, r->svc->row.name, r->fr.row.id, after_describe);
    snprintf(j->cloud, sizeof(j->cloud), "%s", r->fr.row.cloud);
    snprintf(j->instance_id, sizeof(j->instance_id), "%s", r->fr.row.instance_id);
    r->preempt_check = 1;
    ctl_job_queue(j);
}

static void after_describe(ctl_job_t *j)
{
    ctl_replica_t *r = ctl_serve_find_replica(j->s, j->svc, j->id, NULL);

    if (!r)
        return;
    r->preempt_check = 0;
    if (strcmp(r->fr.row.instance_id, j->instance_id) != 0)
        return;
    if (j->rc == CORE_ENOTFOUND)
        handle_gone(r, "is gone");
    else if (j->rc == 0 && j->inst.state != CORE_INST_RUNNING && j->inst.state != CORE_INST_PENDING)
        handle_gone(r, j->inst.state == CORE_INST_PREEMPTED ? "was preempted"
                                                            : "is no longer running");
}

static void after_task_status(ctl_job_t *j)
{
    ctl_replica_t *r = ctl_serve_find_replica(j->s, j->svc, j->id, NULL);

    if (!r)
        return;
    r->job_polling = 0;
    if (j->rc < 0) {
        /* The agent does not answer: is the instance still there? */
        ctl_replica_queue_describe(r);
        return;
    }
    if ((j->task_status == CORE_AGENT_FAILED || j->task_status == CORE_AGENT_FAILED_SETUP) &&
        ctl_replica_should_track(&r->fr.row.f)) {
        CORE_WARN("%s replica %d: the task %s: FAILED", r->svc->row.name, r->fr.row.id,
                  core_agent_status_name(j->task_status));
        ctl_serve_replica_log(j->s, r->svc->row.name, r->fr.row.id, "task %d ended %s",
                              r->fr.row.agent_task_id, core_agent_status_name(j->task_status));
        ctl_fleet_app_failed(&r->svc->fleet, &r->fr, core_now());
        ctl_replica_save(r);
        ctl_service_update_status(r->svc);
    }
}

/* A replica the autoscaler added: what it asks for, until it runs. */
static void replica_created(ctl_service_t *svc, ctl_replica_t *r)
{
    ctl_serve_t *s = svc->s;
    ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);
    core_candidate_t *c = NULL;
    size_t nc = 0;

    r->svc = svc;
    r->fr.row.replica_port = v ? v->port : 0;
    snprintf(r->fr.row.resources, sizeof(r->fr.row.resources), "%s", svc->row.requested_resources);
    if (v && resolve_candidates(s, r, v, &c, &nc, NULL) == 0 && nc > 0)
        core_candidate_label(&c[0], r->fr.row.resources, sizeof(r->fr.row.resources));
    free(c);
    /* Written by queue_launch, which follows at once. */
}

void ctl_service_autoscale(ctl_service_t *svc)
{
    ctl_fleet_action_t *a = NULL;
    size_t n = 0;
    double t = core_now();

    ctl_fleet_autoscale(&svc->fleet, svc->row.active_versions, svc->row.n_active, t, &a, &n);
    for (size_t i = 0; i < n; i++) {
        ctl_replica_t *r = (ctl_replica_t *)a[i].r;

        if (a[i].kind == CTL_FLEET_LAUNCH)
            replica_created(svc, r);
        else
            CORE_INFO("%s: scaling down replica %d", svc->row.name, r->fr.row.id);
    }
    /* Launched once all are placed, as the fleet's placement assumes. */
    for (size_t i = 0; i < n; i++)
        if (a[i].kind == CTL_FLEET_LAUNCH)
            queue_launch((ctl_replica_t *)a[i].r);
    if (n)
        CORE_INFO("%s: autoscaler: %zu decision(s), target %d (qps %.2f)", svc->row.name, n,
                  ctl_scaler_final_target(&svc->fleet.scaler), svc->fleet.scaler.last_qps);
    free(a);
    ctl_service_save_fleet(svc);
    svc->next_decision = t + ctl_scaler_next_interval(&svc->fleet.scaler);
    ctl_service_update_status(svc);
}

void ctl_replica_tick(ctl_replica_t *r, double t)
{
    ctl_serve_t *s = r->svc->s;

    if (r->fr.busy)
        return;
    if (ctl_fleet_down_due(&r->fr, t)) {
        queue_terminate(r);
        return;
    }
    if (r->fr.row.f.down != CTL_PROC_NONE)
        return;
    if (ctl_fleet_launch_due(&r->fr, t)) {
        queue_launch(r);
        return;
    }
    if (ctl_replica_should_track(&r->fr.row.f) && r->fr.row.agent_task_id > 0 && !r->job_polling &&
        t >= r->next_job_poll) {
        ctl_job_t *j =
            ctl_job_new(s, CTL_JOB_TASK_STATUS, r->svc->row.name, r->fr.row.id, after_task_status);

        snprintf(j->ip, sizeof(j->ip), "%s", r->fr.row.ip);
        j->agent_port = r->fr.row.agent_port;
        j->task_id = r->fr.row.agent_task_id;
        r->job_polling = 1;
        r->next_job_poll = t + s->cfg.job_status_interval;
        ctl_job_queue(j);
    }
}
