/*
 * The recovery loop of the jobs controller (see ctl_jobs_run.h).
 *
 * Each step is a function of the job. A step that needs the provider or an
 * agent fills the job's call and queues it (call_queue): the call runs in
 * the thread pool and names the step that applies its result on the loop.
 * A step that waits arms the job's timer with the next step (wait_then);
 * a cancel cuts such a wait short. Every step that changes the job saves its
 * row before it acts, which is what a restarted controller resumes from
 * (ctl_jobs_run_start).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/catalog.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/taskrun.h"
#include "core/util.h"
#include "ctl_backoff.h"
#include "ctl_jobs_logs.h"
#include "ctl_jobs_run.h"
#include "ctl_jobs_store.h"
#include "ctl_jobs_work.h"

/* How long a job's end waits for the rest of its output (see ctl_logsync_drain). */
#define LOG_DRAIN_S 10.0
/* Between two checks of an agent that has not started the task yet. */
#define START_POLL_S 0.2
/* Between two attempts to reach the local cloud. */
#define CONNECT_RETRY_S 2.0

typedef void (*step_fn)(ctl_job_t *j);

struct ctl_job {
    ctl_jobs_t *d;
    long id;
    ctl_job_row_t r;
    core_task_t *task;
    core_candidate_t *cands;
    size_t n_cands;
    core_prov_registry_t *provs; /* used by the call in flight only */
    ctl_rng_t rng;
    bool cancel;
    /* launching */
    bool recovering;
    int sweep;
    ctl_backoff_t bo;
    unsigned char *skip;
    double start_deadline;
    int start_last_rc;
    /* monitoring: the poll being judged */
    double unknown_since;
    bool known;
    core_agent_status_t js;
    enum core_inst_state inst;
    double ended;
    int exit_code;
    /* ending */
    bool between; /* cancelled between two instances */
    ctl_job_status_t end_status;
    double end_time;
    char *end_why;
    /* a preemption notice: the instance being replaced and its task, kept until
     * the task has stopped (checkpointed) or the deadline passed */
    core_instance_t doomed;
    int doomed_task;
    ctl_logsync_t *logs;  /* copying the current attempt's output */
    ctl_logsync_t *drain; /* finishing that copy before the job's end */
    /* machinery */
    uv_timer_t timer;
    step_fn wake; /* what the timer runs */
    uv_work_t work;
    ctl_jobs_call_t call;
    step_fn after; /* what runs once the call is back */
    int busy;      /* a call in flight, a drain under way */
    bool released; /* off the list: freed once nothing is in flight */
    bool closing;
    ctl_job_t *next;
};

static void jlog(ctl_job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jlog(ctl_job_t *j, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctl_jobs_log(j->d->jobs_dir, j->id, "%s", msg);
}

static void save(ctl_job_t *j)
{
    if (ctl_jobs_store_save(j->d->store, &j->r) < 0)
        jlog(j, "cannot save the job's state");
}

static void set_reason(ctl_job_row_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(ctl_job_row_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    free(r->failure_reason);
    r->failure_reason = s;
}

/* ------------------------------------------------------------ machinery */

static void on_job_closed(uv_handle_t *h)
{
    ctl_job_t *j = h->data;
    ctl_jobs_call_clear(&j->call);
    core_prov_registry_free(j->provs);
    core_task_free(j->task);
    free(j->cands);
    free(j->skip);
    free(j->end_why);
    ctl_job_row_free(&j->r);
    free(j);
}

static void maybe_free(ctl_job_t *j)
{
    if (j->busy || j->closing)
        return;
    j->closing = true;
    uv_close((uv_handle_t *)&j->timer, on_job_closed);
}

/* The state machine ends (the job ended, gave up, or the daemon stops); the
 * job is freed once what is in flight is back. */
static void job_release(ctl_job_t *j)
{
    if (!j->released) {
        j->released = true;
        for (ctl_job_t **p = &j->d->jobs; *p; p = &(*p)->next) {
            if (*p == j) {
                *p = j->next;
                break;
            }
        }
        ctl_logsync_stop(j->logs);
        j->logs = NULL;
        if (j->drain) {
            ctl_logsync_stop(j->drain);
            j->drain = NULL;
            j->busy--;
        }
        uv_timer_stop(&j->timer);
    }
    maybe_free(j);
}

/* Whether a step that was pending may run: not once the job or the daemon stopped. */
static bool alive(ctl_job_t *j)
{
    if (j->released || j->d->stopping) {
        job_release(j);
        return false;
    }
    return true;
}

static void on_timer(uv_timer_t *t)
{
    ctl_job_t *j = t->data;
    step_fn fn = j->wake;
    j->wake = NULL;
    if (fn && alive(j))
        fn(j);
}

static void connect_cloud(ctl_job_t *j);

/* Whether a cancel cuts the wait for <fn> short: every wait but the one for
 * the cloud to come back (nothing can be cleaned up without it). */
static bool cancel_cuts(step_fn fn)
{
    return fn != connect_cloud;
}

static void wait_then(ctl_job_t *j, double seconds, step_fn fn)
{
    j->wake = fn;
    if (j->cancel && cancel_cuts(fn))
        seconds = 0; /* asked while a call was in flight */
    uv_timer_start(&j->timer, on_timer, seconds > 0 ? (uint64_t)(seconds * 1000) : 0, 0);
}

/* The job's call, emptied, with what every call needs. */
static ctl_jobs_call_t *call_prep(ctl_job_t *j, ctl_jobs_op_t op)
{
    ctl_jobs_call_t *c = &j->call;
    ctl_jobs_call_clear(c);
    c->op = op;
    c->jobs_dir = j->d->jobs_dir;
    c->job_id = j->id;
    c->provs = &j->provs;
    c->cloud = j->task ? j->task->resources.cloud : NULL;
    c->cands = j->cands;
    c->n_cands = j->n_cands;
    c->inst = j->r.inst;
    c->task_id = j->r.agent_task;
    return c;
}

static void on_work(uv_work_t *w)
{
    ctl_job_t *j = w->data;
    ctl_jobs_call_run(&j->call);
}

static void on_after_work(uv_work_t *w, int status)
{
    ctl_job_t *j = w->data;
    (void)status;
    j->busy--;
    if (alive(j))
        j->after(j);
}

static void call_queue(ctl_job_t *j, step_fn after)
{
    j->after = after;
    j->busy++;
    int rc = uv_queue_work(j->d->loop, &j->work, on_work, on_after_work);
    if (rc < 0) {
        j->busy--;
        jlog(j, "cannot queue a provider call: %s", uv_strerror(rc));
        job_release(j);
    }
}

/* ------------------------------------------------------------ the steps */

static void dispatch(ctl_job_t *j);
static void launch_begin(ctl_job_t *j, bool recovering);
static void launch_sweep(ctl_job_t *j);
static void backoff(ctl_job_t *j, int rc);
static void monitor_start(ctl_job_t *j);
static void recover(ctl_job_t *j);
static void do_cancel(ctl_job_t *j);
static void finish(ctl_job_t *j, ctl_job_status_t st, double end, const char *why);

/* Where the job last ran: kept for the status (CLOUD/REGION/ZONE) and the recovery strategy. */
static void remember_location(ctl_job_row_t *r)
{
    if (r->inst.id[0] == '\0')
        return;
    snprintf(r->prev.cloud, sizeof(r->prev.cloud), "%s", r->inst.cloud);
    snprintf(r->prev.region, sizeof(r->prev.region), "%s", r->inst.region);
    snprintf(r->prev.zone, sizeof(r->prev.zone), "%s", r->inst.zone);
    snprintf(r->prev.instance_type, sizeof(r->prev.instance_type), "%s", r->inst.instance_type);
    r->prev.spot = r->inst.spot;
}

/* After a CLEANUP call: the job has no instance any more. */
static void forget_instance(ctl_job_t *j)
{
    remember_location(&j->r);
    memset(&j->r.inst, 0, sizeof(j->r.inst));
    j->r.agent_task = 0;
    save(j);
}

static void cleanup_call(ctl_job_t *j, bool cancel_task, bool buckets, step_fn after)
{
    ctl_jobs_call_t *c = call_prep(j, CTL_JOBS_OP_CLEANUP);
    c->cancel_task = cancel_task;
    c->buckets = buckets ? j->task : NULL;
    call_queue(j, after);
}

/* ---- start */

static void after_connect(ctl_job_t *j)
{
    /* Without the cloud nothing can be launched, checked or cleaned up: wait for it. */
    if (j->call.rc < 0) {
        jlog(j, "cannot reach the local cloud: %s; retrying", core_strerror(j->call.rc));
        wait_then(j, CONNECT_RETRY_S, connect_cloud);
        return;
    }
    dispatch(j);
}

static void connect_cloud(ctl_job_t *j)
{
    call_prep(j, CTL_JOBS_OP_CONNECT);
    call_queue(j, after_connect);
}

static void after_fresh_cleanup(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    forget_instance(j);
    if (r->t.status == CTL_JOB_PENDING && r->t.start_at < 0 && r->t.submitted_at < 0)
        ctl_job_set_starting(&r->t, core_now());
    else if (r->t.status == CTL_JOB_PENDING)
        ctl_job_set_restarting(&r->t, false);
    save(j);
    jlog(j, "STARTING (%zu candidates, cheapest %s/%s %s)", j->n_cands, j->cands[0].region,
         j->cands[0].zone, j->cands[0].instance_type);
    launch_begin(j, false);
}

/* Resumes the job where its row says it is. */
static void dispatch(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    switch (r->t.status) {
    case CTL_JOB_CANCELLING:
        do_cancel(j);
        return;
    case CTL_JOB_RUNNING:
        /* Resume monitoring the instance it already runs on. */
        jlog(j, "resuming the monitor of %s", r->inst.id);
        monitor_start(j);
        return;
    case CTL_JOB_RECOVERING:
        jlog(j, "resuming recovery");
        recover(j);
        return;
    case CTL_JOB_PENDING:
        if (r->t.start_at < 0)
            break;
        /* It has run before: this PENDING is a recovery's launch backoff. */
        jlog(j, "resuming recovery (was waiting for capacity)");
        ctl_job_set_restarting(&r->t, true);
        save(j);
        recover(j);
        return;
    default:
        break;
    }
    /* PENDING or STARTING: a fresh start, or one the daemon died in. Whatever
     * an interrupted launch left goes first. */
    if (j->cancel) {
        do_cancel(j);
        return;
    }
    cleanup_call(j, false, false, after_fresh_cleanup);
}

/* ---- launch */

static void launch_begin(ctl_job_t *j, bool recovering)
{
    j->recovering = recovering;
    j->sweep = 0;
    ctl_backoff_init(&j->bo, j->d->cfg.retry_init_s, j->d->cfg.retry_max_factor,
                     ctl_rng_uniform, &j->rng);
    launch_sweep(j);
}

/* The job runs: on to monitoring. */
static void launched(ctl_job_t *j, double t_submit)
{
    ctl_job_row_t *r = &j->r;
    if (r->t.status == CTL_JOB_PENDING)
        ctl_job_set_restarting(&r->t, j->recovering);
    if (j->recovering) {
        ctl_job_set_recovered(&r->t, t_submit);
        save(j);
        jlog(j, "RUNNING again on %s (recovery %d)", r->inst.id, r->t.recovery_count);
    } else {
        ctl_job_set_started(&r->t, t_submit);
        save(j);
        jlog(j, "RUNNING on %s", r->inst.id);
    }
    monitor_start(j);
}

static void after_start_failed_cleanup(ctl_job_t *j)
{
    forget_instance(j);
    if (j->cancel)
        do_cancel(j);
    else
        backoff(j, 0);
}

/* The instance did not start the task: it counts as a failed launch. */
static void start_failed(ctl_job_t *j)
{
    cleanup_call(j, false, false, after_start_failed_cleanup);
}

static void start_wait(ctl_job_t *j);

static void after_task_get(ctl_job_t *j)
{
    ctl_jobs_call_t *c = &j->call;
    ctl_job_row_t *r = &j->r;
    if (c->task_rc == 0 && c->task.status != CORE_AGENT_PENDING) {
        launched(j, c->task.submitted_at > 0 ? c->task.submitted_at : core_now());
        return;
    }
    if (c->task_rc < 0 && (c->task_rc != j->start_last_rc || c->task_secs > 1))
        jlog(j, "asking %s for task %d: %s (%.1f s)", r->inst.id, r->agent_task,
             core_strerror(c->task_rc), c->task_secs);
    j->start_last_rc = c->task_rc;
    if (core_now() >= j->start_deadline) {
        jlog(j, "%s did not start the task within %.0f s", r->inst.id, j->d->cfg.start_timeout_s);
        start_failed(j);
        return;
    }
    wait_then(j, START_POLL_S, start_wait);
}

/* Until the agent has started the task (it may be syncing the workdir first). */
static void start_wait(ctl_job_t *j)
{
    if (j->cancel) {
        start_failed(j);
        return;
    }
    call_prep(j, CTL_JOBS_OP_TASK_GET);
    call_queue(j, after_task_get);
}

static void after_submit(ctl_job_t *j)
{
    ctl_jobs_call_t *c = &j->call;
    ctl_job_row_t *r = &j->r;
    if (c->rc < 0) {
        jlog(j, "submitting to %s failed: %s", r->inst.id, core_strerror(c->rc));
        start_failed(j);
        return;
    }
    r->agent_task = c->task_id;
    r->attempt++;
    save(j);
    j->start_deadline = core_now() + j->d->cfg.start_timeout_s;
    j->start_last_rc = 0;
    start_wait(j);
}

/* SKYPILOT_* as a managed job sees them, then the --env values given at launch. */
static cJSON *task_envs(const ctl_job_row_t *r)
{
    cJSON *envs = cJSON_CreateObject();
    cJSON_AddStringToObject(envs, "SKYPILOT_RUN_ID", r->run_id);
    cJSON_AddStringToObject(envs, "SKYPILOT_TASK_ID", r->run_id);
    cJSON_AddStringToObject(envs, "SKYPILOT_TASK_IDS", r->run_id);
    char id[32];
    snprintf(id, sizeof(id), "%ld", r->id);
    cJSON_AddStringToObject(envs, "SKYPILOT_JOB_ID", id);
    cJSON_AddStringToObject(envs, "SKYPILOT_NODE_RANK", "0");
    cJSON_AddStringToObject(envs, "SKYPILOT_NUM_NODES", "1");
    cJSON_AddStringToObject(envs, "SKYPILOT_NODE_IPS", r->inst.ip);
    cJSON_AddStringToObject(envs, "SKYPILOT_NUM_GPUS_PER_NODE", "0");
    char *info = core_xasprintf(
        "{\"cluster_name\":\"%s-%ld\",\"cloud\":\"%s\",\"region\":\"%s\",\"zone\":\"%s\"}", r->name,
        r->id, r->inst.cloud, r->inst.region, r->inst.zone);
    cJSON_AddStringToObject(envs, "SKYPILOT_CLUSTER_INFO", info);
    free(info);
    /* --env values given at launch win over the YAML's. */
    cJSON *user = r->envs ? cJSON_Parse(r->envs) : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, user)
    {
        if (cJSON_IsString(e)) {
            cJSON_DeleteItemFromObjectCaseSensitive(envs, e->string);
            cJSON_AddStringToObject(envs, e->string, e->valuestring);
        }
    }
    cJSON_Delete(user);
    return envs;
}

/* Submits the task on the freshly launched instance. */
static void submit(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    cJSON *envs = task_envs(r);
    char *err = NULL;
    core_task_req_opts_t o = {.cwd = r->cwd, .extra_envs = envs, .check_sources = 1};
    cJSON *req = core_task_agent_json(j->task, &o, &err);
    cJSON_Delete(envs);
    if (req == NULL) {
        jlog(j, "cannot build the task: %s", err);
        free(err);
        start_failed(j);
        return;
    }
    ctl_jobs_call_t *c = call_prep(j, CTL_JOBS_OP_SUBMIT);
    c->task_json = req;
    call_queue(j, after_submit);
}

/* ---- a preemption notice's replacement: submitted once the doomed task has stopped */

static void doomed_wait(ctl_job_t *j);

static void after_doomed_terminate(ctl_job_t *j)
{
    if (j->call.rc < 0)
        jlog(j, "terminating %s failed: %s", j->doomed.id, core_strerror(j->call.rc));
    else
        jlog(j, "terminated %s", j->doomed.id);
    memset(&j->doomed, 0, sizeof(j->doomed));
    j->doomed_task = 0;
    submit(j);
}

static void doomed_logs_drained(void *arg)
{
    ctl_job_t *j = arg;
    j->drain = NULL;
    j->busy--;
    if (!alive(j))
        return;
    ctl_jobs_call_t *c = call_prep(j, CTL_JOBS_OP_TERMINATE);
    c->inst = j->doomed;
    call_queue(j, after_doomed_terminate);
}

/* The doomed task stopped (or its instance went): its last output, then the instance. */
static void doomed_done(ctl_job_t *j)
{
    j->drain = j->logs;
    j->logs = NULL;
    j->busy++;
    if (j->drain)
        ctl_logsync_drain(j->drain, 3.0, doomed_logs_drained, j);
    else
        doomed_logs_drained(j);
}

static void after_doomed_get(ctl_job_t *j)
{
    ctl_jobs_call_t *c = &j->call;
    ctl_job_row_t *r = &j->r;
    if (c->task_rc == 0 && c->task.status == CORE_AGENT_SUCCEEDED) {
        /* It ended before the SIGTERM reached it: the job is done, the new instance unused. */
        jlog(j, "the task on %s succeeded before its preemption", j->doomed.id);
        ctl_job_set_recovered(&r->t, c->task.submitted_at > 0 ? c->task.submitted_at : core_now());
        memset(&j->doomed, 0, sizeof(j->doomed));
        finish(j, CTL_JOB_SUCCEEDED, c->task.ended_at > 0 ? c->task.ended_at : core_now(), NULL);
        return;
    }
    if (c->task_rc < 0 || core_agent_status_is_terminal(c->task.status)) {
        jlog(j, "the task on %s %s", j->doomed.id,
             c->task_rc < 0 ? "is unreachable" : core_agent_status_name(c->task.status));
        doomed_done(j);
        return;
    }
    wait_then(j, START_POLL_S, doomed_wait);
}

static void doomed_wait(ctl_job_t *j)
{
    if (j->cancel) {
        do_cancel(j);
        return;
    }
    if (core_now() >= j->doomed.preempt_at) {
        doomed_done(j);
        return;
    }
    ctl_jobs_call_t *c = call_prep(j, CTL_JOBS_OP_TASK_GET);
    c->inst = j->doomed;
    c->task_id = j->doomed_task;
    call_queue(j, after_doomed_get);
}

static void after_launch(ctl_job_t *j)
{
    ctl_jobs_call_t *c = &j->call;
    ctl_job_row_t *r = &j->r;
    if (c->rc == 0) {
        r->inst = c->launched;
        jlog(j, "launched %s in %s/%s/%s (%s%s)", r->inst.id, r->inst.cloud, r->inst.region,
             r->inst.zone, r->inst.instance_type, r->inst.spot ? ", spot" : "");
        save(j);
        /* Two copies of the job must never run: the new one starts from the checkpoint
         * the doomed one writes on its SIGTERM. */
        if (j->doomed.id[0])
            doomed_wait(j);
        else
            submit(j);
        return;
    }
    if (c->rc == CORE_EINVALREQ && !j->recovering && j->sweep == 0) {
        set_reason(r, "Resources are invalid for every candidate: %s",
                   c->err ? c->err : core_strerror(c->rc));
        ctl_job_set_failed(&r->t, CTL_JOB_FAILED_PRECHECKS, core_now(), false);
        save(j);
        job_release(j);
        return;
    }
    jlog(j, "launch attempt %d failed: %s", j->sweep + 1, c->err ? c->err : core_strerror(c->rc));
    backoff(j, c->rc);
}

static void launch_sweep(ctl_job_t *j)
{
    if (j->cancel) {
        do_cancel(j);
        return;
    }
    ctl_job_row_t *r = &j->r;
    memset(j->skip, 0, j->n_cands);
    if (j->recovering && r->prev.cloud[0]) {
        const core_resources_t *rs = &j->task->resources;
        ctl_jobs_recovery_skip(core_task_job_recovery(j->task)->strategy, j->cands, j->n_cands,
                               &r->prev, rs->region || rs->zone, j->sweep, j->skip);
    }
    ctl_jobs_call_t *c = call_prep(j, CTL_JOBS_OP_LAUNCH);
    c->skip = j->skip;
    call_queue(j, after_launch);
}

static void after_backoff(ctl_job_t *j)
{
    if (j->cancel) {
        do_cancel(j);
        return;
    }
    if (ctl_job_set_restarting(&j->r.t, j->recovering) == 0)
        save(j);
    j->sweep++;
    launch_sweep(j);
}

/* Nothing could be launched: wait in PENDING, as the reference shows it. */
static void backoff(ctl_job_t *j, int rc)
{
    if (ctl_job_set_backoff_pending(&j->r.t) == 0)
        save(j);
    double gap = ctl_backoff_next(&j->bo);
    jlog(j, "%s; retrying in %.1f s", rc == CORE_ENOCAPACITY ? "no capacity" : "launch failed",
         gap);
    wait_then(j, gap, after_backoff);
}

/* ---- monitor (§3.3) */

static void monitor_tick(ctl_job_t *j);

static void judge(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    ctl_job_status_t fail_status = CTL_JOB_FAILED;
    double unknown_for = j->unknown_since < 0 ? 0 : core_now() - j->unknown_since;
    /* The classifier's own threshold is the reference's 60 s; ours is configurable. */
    if (!j->known && j->inst == CORE_INST_RUNNING && unknown_for < j->d->cfg.unknown_timeout_s)
        unknown_for = 0;
    else if (!j->known && j->inst == CORE_INST_RUNNING)
        unknown_for = CTL_JOB_STATUS_FETCH_TIMEOUT_S + 1;
    switch (ctl_job_classify(j->known, j->js, j->inst, unknown_for, &fail_status)) {
    case CTL_JOB_KEEP_MONITORING:
        wait_then(j, j->d->cfg.poll_s, monitor_tick);
        return;
    case CTL_JOB_OUT_SUCCEEDED:
        finish(j, CTL_JOB_SUCCEEDED, j->ended, NULL);
        return;
    case CTL_JOB_USER_FAILURE: {
        const core_job_recovery_t *jr = core_task_job_recovery(j->task);
        ctl_restart_policy_t pol = {jr->max_restarts_on_errors, jr->recover_on_exit_codes,
                                    jr->n_recover_on_exit_codes};
        int codes[1] = {j->exit_code};
        if (ctl_job_should_restart_on_failure(&pol, codes, j->exit_code >= 0 ? 1 : 0,
                                              &r->restart_count)) {
            jlog(j, "user program failed (exit %d); restart %d of %d", j->exit_code,
                 r->restart_count, jr->max_restarts_on_errors);
            save(j);
            recover(j);
            return;
        }
        char why[256];
        snprintf(why, sizeof(why),
                 "The user program failed (exit code %d). To see the details, run: sky spot "
                 "logs %ld",
                 j->exit_code, r->id);
        finish(j, fail_status, j->ended, why);
        return;
    }
    case CTL_JOB_RECOVER:
        jlog(j, "instance %s is %s: recovering", r->inst.id, core_inst_state_name(j->inst));
        recover(j);
        return;
    case CTL_JOB_CONTROLLER_FAILURE:
        finish(j, CTL_JOB_FAILED_CONTROLLER, j->ended, "Unexpected job status on the instance");
        return;
    }
}

static void after_grace_describe(ctl_job_t *j)
{
    j->inst = j->call.state;
    judge(j);
}

static void grace_check(ctl_job_t *j)
{
    call_prep(j, CTL_JOBS_OP_DESCRIBE);
    call_queue(j, after_grace_describe);
}

static void after_notice_signal(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    if (j->call.rc < 0)
        jlog(j, "SIGTERM to task %d on %s failed: %s", r->agent_task, r->inst.id,
             core_strerror(j->call.rc));
    if (r->t.status != CTL_JOB_RECOVERING && ctl_job_set_recovering(&r->t, core_now(), true) < 0) {
        jlog(j, "cannot recover from %s", ctl_job_status_name(r->t.status));
        job_release(j);
        return;
    }
    /* The doomed instance stays ours until its task stopped: the output keeps coming. */
    remember_location(r);
    j->doomed = r->inst;
    j->doomed_task = r->agent_task;
    memset(&r->inst, 0, sizeof(r->inst));
    r->agent_task = 0;
    save(j);
    launch_begin(j, true);
}

/*
 * A preemption notice (the provider reports the deadline, as clouds announce
 * spot interruptions): the task gets SIGTERM now and SIGKILL at the deadline,
 * so it can checkpoint, and the recovery launch starts at once instead of
 * after the preemption.
 */
static void notice(ctl_job_t *j, double deadline)
{
    double grace = deadline - core_now();
    jlog(j,
         "preemption notice: %s goes in %.0f s; SIGTERM to the task (SIGKILL at the "
         "deadline), recovering now",
         j->r.inst.id, grace > 0 ? grace : 0);
    j->r.inst.preempt_at = deadline;
    ctl_jobs_call_t *c = call_prep(j, CTL_JOBS_OP_NOTICE);
    c->grace_s = grace > 0 ? grace : 0;
    call_queue(j, after_notice_signal);
}

static void after_poll(ctl_job_t *j)
{
    ctl_jobs_call_t *c = &j->call;
    if (c->state == CORE_INST_RUNNING && c->preempt_at > 0 && c->task_rc == 0 &&
        !core_agent_status_is_terminal(c->task.status)) {
        notice(j, c->preempt_at);
        return;
    }
    j->inst = c->state;
    j->known = c->task_rc == 0;
    j->js = c->task.status;
    j->ended = c->task.ended_at > 0 ? c->task.ended_at : core_now();
    j->exit_code = c->task.has_exit_code ? c->task.exit_code : -1;
    if (!j->known && j->unknown_since < 0)
        j->unknown_since = core_now();
    else if (j->known)
        j->unknown_since = -1;
    /* A failed program is a user failure only if its instance is still up after a grace
     * period: a preemption may kill the program first (reference §3.3). */
    if (j->inst == CORE_INST_RUNNING && j->known &&
        (j->js == CORE_AGENT_FAILED || j->js == CORE_AGENT_FAILED_SETUP)) {
        wait_then(j, j->d->cfg.failure_grace_s, grace_check);
        return;
    }
    judge(j);
}

/*
 * The provider first: asking the local cloud is cheap, and a vanished
 * instance is seen at once instead of after an agent connect timeout.
 */
static void monitor_tick(ctl_job_t *j)
{
    if (j->cancel) {
        do_cancel(j);
        return;
    }
    call_prep(j, CTL_JOBS_OP_POLL);
    call_queue(j, after_poll);
}

static void monitor_start(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    j->unknown_since = -1;
    if (j->logs == NULL)
        j->logs = ctl_logsync_start(j->d->loop, j->d->agents, j->d->jobs_dir, r->id, r->attempt,
                                    r->inst.ip, r->inst.agent_port, r->agent_task);
    monitor_tick(j);
}

/* ---- recovery */

static void after_recover_cleanup(ctl_job_t *j)
{
    forget_instance(j);
    launch_begin(j, true);
}

static void recover(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    ctl_logsync_stop(j->logs);
    j->logs = NULL;
    if (r->t.status != CTL_JOB_RECOVERING &&
        ctl_job_set_recovering(&r->t, core_now(), true) < 0) {
        jlog(j, "cannot recover from %s", ctl_job_status_name(r->t.status));
        job_release(j);
        return;
    }
    /* Remember where it ran, for the recovery strategy, before dropping it. */
    remember_location(r);
    save(j);
    cleanup_call(j, false, false, after_recover_cleanup);
}

/* ---- the end */

static void after_cancel_cleanup(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    forget_instance(j);
    if (ctl_job_set_cancelled(&r->t, core_now()) == 0) {
        if (j->between)
            r->t.last_recovered_at = r->t.end_at;
        save(j);
    }
    jlog(j, "CANCELLED");
    job_release(j);
}

static void do_cancel(ctl_job_t *j)
{
    ctl_job_row_t *r = &j->r;
    /* Cancelled between two instances (recovering, or its backoff in PENDING): the running
     * time was banked when the recovery began, and the wait since is not running time. */
    j->between = r->t.status != CTL_JOB_RUNNING && r->t.status != CTL_JOB_CANCELLING &&
                 r->t.last_recovered_at >= 0;
    if (ctl_job_set_cancelling(&r->t) == 0)
        save(j);
    jlog(j, "cancelling");
    ctl_logsync_stop(j->logs);
    j->logs = NULL;
    cleanup_call(j, true, true, after_cancel_cleanup);
}

static void after_finish_cleanup(ctl_job_t *j)
{
    forget_instance(j);
    jlog(j, "%s", ctl_job_status_name(j->r.t.status));
    job_release(j);
}

static void finish_drained(void *arg)
{
    ctl_job_t *j = arg;
    ctl_job_row_t *r = &j->r;
    j->drain = NULL;
    j->busy--;
    if (!alive(j))
        return;
    if (j->end_status == CTL_JOB_SUCCEEDED) {
        if (ctl_job_set_succeeded(&r->t, j->end_time) < 0)
            ctl_job_set_failed(&r->t, CTL_JOB_FAILED_CONTROLLER, j->end_time, false);
    } else {
        if (j->end_why)
            set_reason(r, "%s", j->end_why);
        ctl_job_set_failed(&r->t, j->end_status, j->end_time, false);
    }
    save(j);
    cleanup_call(j, false, true, after_finish_cleanup);
}

/* The task ended on its instance: its output first, then the row, then the instances. */
static void finish(ctl_job_t *j, ctl_job_status_t st, double end, const char *why)
{
    j->end_status = st;
    j->end_time = end;
    free(j->end_why);
    j->end_why = why ? core_xstrdup(why) : NULL;
    j->drain = j->logs;
    j->logs = NULL;
    j->busy++;
    if (j->drain)
        ctl_logsync_drain(j->drain, LOG_DRAIN_S, finish_drained, j);
    else
        finish_drained(j);
}

/* ------------------------------------------------------------ the API side */

static ctl_job_t *find(ctl_jobs_t *d, long id)
{
    for (ctl_job_t *j = d->jobs; j; j = j->next)
        if (j->id == id)
            return j;
    return NULL;
}

bool ctl_jobs_run_active(ctl_jobs_t *d, long id)
{
    return find(d, id) != NULL;
}

void ctl_jobs_run_start(ctl_jobs_t *d, long id)
{
    if (d->stopping || find(d, id))
        return;
    ctl_job_t *j = core_xcalloc(1, sizeof(*j));
    j->d = d;
    j->id = id;
    if (ctl_jobs_store_get(d->store, id, &j->r) < 0 || ctl_job_status_is_terminal(j->r.t.status)) {
        ctl_job_row_free(&j->r);
        free(j);
        return;
    }
    char *dir = core_xasprintf("%s/%ld", d->jobs_dir, id);
    core_mkdir_p(dir, 0700);
    free(dir);
    uv_timer_init(d->loop, &j->timer);
    j->timer.data = j;
    j->work.data = j;
    j->cancel = j->r.cancel_requested;
    ctl_rng_seed(&j->rng, (uint64_t)id * 7919u + (uint64_t)time(NULL));
    j->next = d->jobs;
    d->jobs = j;

    ctl_job_row_t *r = &j->r;
    char *err = NULL;
    core_catalog_t *cat = NULL;
    cJSON *envs = r->envs ? cJSON_Parse(r->envs) : NULL;
    cJSON *over = r->overrides ? cJSON_Parse(r->overrides) : NULL;
    int parsed = core_task_parse_with(r->yaml, strlen(r->yaml), r->yaml_path, envs, over,
                                      &j->task, &err);
    cJSON_Delete(envs);
    cJSON_Delete(over);
    if (parsed < 0 ||
        core_catalog_load(NULL, &cat, &err) < 0 ||
        core_catalog_resolve(cat, &j->task->resources, &j->cands, &j->n_cands, &err) < 0) {
        set_reason(r, "%s", err ? err : "invalid task");
        ctl_job_set_failed(&r->t, CTL_JOB_FAILED_PRECHECKS, core_now(), false);
        save(j);
        jlog(j, "FAILED_PRECHECKS: %s", r->failure_reason);
        free(err);
        core_catalog_free(cat);
        job_release(j);
        return;
    }
    core_catalog_free(cat);
    j->skip = core_xcalloc(j->n_cands, 1);
    connect_cloud(j);
}

void ctl_jobs_run_cancel(ctl_jobs_t *d, long id)
{
    ctl_job_t *j = find(d, id);
    if (j == NULL) {
        ctl_jobs_run_start(d, id);
        return;
    }
    j->cancel = true;
    /* A wait (backoff, the next poll) ends now; a call in flight is seen
     * through first, and the wait after it is cut (wait_then). */
    if (j->wake && cancel_cuts(j->wake) && !j->busy)
        uv_timer_start(&j->timer, on_timer, 0, 0);
}

void ctl_jobs_run_stop_all(ctl_jobs_t *d)
{
    d->stopping = 1;
    while (d->jobs)
        job_release(d->jobs);
}
