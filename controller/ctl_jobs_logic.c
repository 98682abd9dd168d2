#include "ctl_jobs_logic.h"

#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

static const char *const job_names[] = {
#define XX(name) #name,
    CTL_JOB_STATUS_MAP(XX)
#undef XX
};

const char *ctl_job_status_name(ctl_job_status_t s)
{
    return core_enum_name(job_names, CORE_ARRAY_SIZE(job_names), (int)s, "?");
}

int ctl_job_status_parse(const char *name, ctl_job_status_t *out)
{
    int v = core_enum_value(job_names, CORE_ARRAY_SIZE(job_names), name);
    /* HEAD's name for the never-written SUBMITTED. */
    if (v < 0 && name && strcmp(name, "DEPRECATED_SUBMITTED") == 0)
        v = CTL_JOB_SUBMITTED;
    if (v < 0)
        return CORE_ENOTFOUND;
    *out = (ctl_job_status_t)v;
    return 0;
}

bool ctl_job_status_is_failed(ctl_job_status_t s)
{
    return s >= CTL_JOB_FAILED && s < CTL_JOB_STATUS_COUNT;
}

bool ctl_job_status_is_terminal(ctl_job_status_t s)
{
    return s == CTL_JOB_SUCCEEDED || s == CTL_JOB_CANCELLED || ctl_job_status_is_failed(s);
}

bool ctl_job_status_is_processing(ctl_job_status_t s)
{
    return s <= CTL_JOB_RECOVERING;
}

int ctl_job_status_exit_code(ctl_job_status_t s)
{
    if (s == CTL_JOB_SUCCEEDED)
        return 0;
    if (s == CTL_JOB_CANCELLED)
        return 103;
    if (ctl_job_status_is_failed(s))
        return 100;
    return 101;
}

ctl_job_status_t ctl_job_status_of_tasks(const ctl_job_status_t *tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tasks[i] != CTL_JOB_SUCCEEDED)
            return tasks[i];
    return CTL_JOB_SUCCEEDED;
}

void ctl_job_times_init(ctl_job_times_t *t)
{
    t->status = CTL_JOB_PENDING;
    t->submitted_at = CTL_TIME_UNSET;
    t->start_at = CTL_TIME_UNSET;
    t->end_at = CTL_TIME_UNSET;
    t->last_recovered_at = CTL_TIME_UNSET;
    t->job_duration = 0;
    t->recovery_count = 0;
}

static bool ended(const ctl_job_times_t *t)
{
    return t->end_at >= 0;
}

int ctl_job_set_starting(ctl_job_times_t *t, double submitted_at)
{
    if (t->status != CTL_JOB_PENDING || ended(t))
        return CORE_ECONFLICT;
    t->status = CTL_JOB_STARTING;
    t->submitted_at = submitted_at;
    return 0;
}

int ctl_job_set_backoff_pending(ctl_job_times_t *t)
{
    if ((t->status != CTL_JOB_STARTING && t->status != CTL_JOB_RECOVERING) || ended(t))
        return CORE_ECONFLICT;
    t->status = CTL_JOB_PENDING;
    return 0;
}

int ctl_job_set_restarting(ctl_job_times_t *t, bool recovering)
{
    /* Guarded on end_at only upstream; a cancel in between must still win. */
    if (ended(t) || !ctl_job_status_is_processing(t->status))
        return CORE_ECONFLICT;
    t->status = recovering ? CTL_JOB_RECOVERING : CTL_JOB_STARTING;
    return 0;
}

int ctl_job_set_started(ctl_job_times_t *t, double t_submit)
{
    if (t->status != CTL_JOB_STARTING && t->status != CTL_JOB_PENDING)
        return CORE_ECONFLICT;
    t->status = CTL_JOB_RUNNING;
    t->start_at = t_submit;
    t->last_recovered_at = t_submit;
    return 0;
}

int ctl_job_set_recovering(ctl_job_times_t *t, double now, bool force)
{
    if (force ? !ctl_job_status_is_processing(t->status) : t->status != CTL_JOB_RUNNING)
        return CORE_ECONFLICT;
    t->status = CTL_JOB_RECOVERING;
    if (t->last_recovered_at >= 0)
        t->job_duration += now - t->last_recovered_at;
    else
        t->last_recovered_at = now;
    return 0;
}

int ctl_job_set_recovered(ctl_job_times_t *t, double t_submit)
{
    if (t->status != CTL_JOB_RECOVERING)
        return CORE_ECONFLICT;
    t->status = CTL_JOB_RUNNING;
    t->last_recovered_at = t_submit;
    t->recovery_count++;
    return 0;
}

int ctl_job_set_succeeded(ctl_job_times_t *t, double end_time)
{
    if (t->status != CTL_JOB_RUNNING || ended(t))
        return CORE_ECONFLICT;
    t->status = CTL_JOB_SUCCEEDED;
    t->end_at = end_time;
    return 0;
}

int ctl_job_set_failed(ctl_job_times_t *t, ctl_job_status_t failed, double end_time,
                       bool override_terminal)
{
    if (!ctl_job_status_is_failed(failed))
        return CORE_EINVALREQ;
    if (ended(t) && !override_terminal)
        return CORE_ECONFLICT;
    /* Time spent recovering is not running time: close the span at the end. */
    if (t->status == CTL_JOB_RECOVERING)
        t->last_recovered_at = end_time;
    t->status = failed;
    if (!ended(t))
        t->end_at = end_time;
    return 0;
}

int ctl_job_set_cancelling(ctl_job_times_t *t)
{
    if (ended(t))
        return CORE_ECONFLICT;
    t->status = CTL_JOB_CANCELLING;
    return 0;
}

int ctl_job_set_cancelled(ctl_job_times_t *t, double now)
{
    if (t->status != CTL_JOB_CANCELLING)
        return CORE_ECONFLICT;
    t->status = CTL_JOB_CANCELLED;
    t->end_at = now;
    return 0;
}

int ctl_job_set_pending_cancelled(ctl_job_times_t *t)
{
    if (t->status != CTL_JOB_PENDING)
        return CORE_ECONFLICT;
    t->status = CTL_JOB_CANCELLED;
    return 0;
}

static double job_duration_of(const ctl_job_times_t *t, double now)
{
    double end = ended(t) ? t->end_at : now;
    double base = t->last_recovered_at - t->job_duration;

    if (t->status == CTL_JOB_RECOVERING)
        return t->job_duration;
    return base > 0 ? end - base : 0;
}

void ctl_job_display(const ctl_job_times_t *t, double now, ctl_job_display_t *out)
{
    double end = ended(t) ? t->end_at : now;

    out->job_duration = job_duration_of(t, now);
    /* readable_time_duration(0, d): '-' exactly when d == 0. */
    out->job_duration_dash = out->job_duration == 0;
    out->total_dash = t->submitted_at < 0 || (t->submitted_at == 0 && end == 0);
    out->total_duration = out->total_dash ? 0 : end - t->submitted_at;
    out->recoveries = t->recovery_count;
}

void ctl_job_display_pipeline(const ctl_job_times_t *tasks, size_t n, double now,
                              ctl_job_display_t *out)
{
    double sub = -1, end = -1;
    bool open = false;

    out->job_duration = 0;
    out->recoveries = 0;
    for (size_t i = 0; i < n; i++) {
        out->job_duration += job_duration_of(&tasks[i], now);
        out->recoveries += tasks[i].recovery_count;
        if (tasks[i].submitted_at >= 0 && (sub < 0 || tasks[i].submitted_at < sub))
            sub = tasks[i].submitted_at;
        if (!ended(&tasks[i]))
            open = true;
        else if (tasks[i].end_at > end)
            end = tasks[i].end_at;
    }
    if (open || end < 0)
        end = now;
    out->job_duration_dash = out->job_duration == 0;
    out->total_dash = sub < 0 || (sub == 0 && end == 0);
    out->total_duration = out->total_dash ? 0 : end - sub;
}

bool ctl_job_should_restart_on_failure(const ctl_restart_policy_t *p, const int *exit_codes,
                                       size_t n_codes, int *restart_count)
{
    for (size_t i = 0; i < n_codes; i++)
        for (size_t j = 0; j < p->n_recover_codes; j++)
            if (exit_codes[i] == p->recover_on_exit_codes[j])
                return true; /* declared transient by the user: free restart */
    (*restart_count)++;
    return *restart_count <= p->max_restarts_on_errors;
}

bool ctl_job_needs_instance_check(bool known, core_agent_status_t js, int num_nodes)
{
    if (known && js == CORE_AGENT_SUCCEEDED)
        return false;
    if (known && !core_agent_status_is_terminal(js) && num_nodes <= 1)
        return false;
    return true;
}

ctl_job_outcome_t ctl_job_classify(bool known, core_agent_status_t js, enum core_inst_state inst,
                                   double unknown_for_s, ctl_job_status_t *fail_status)
{
    if (known && js == CORE_AGENT_SUCCEEDED)
        return CTL_JOB_OUT_SUCCEEDED;
    /* The cloud is the judge: a failed job on a vanished instance is a preemption. */
    if (inst != CORE_INST_RUNNING)
        return CTL_JOB_RECOVER;
    /* Instance up but the agent does not answer: give it the fetch timeout. */
    if (!known)
        return unknown_for_s < CTL_JOB_STATUS_FETCH_TIMEOUT_S ? CTL_JOB_KEEP_MONITORING
                                                              : CTL_JOB_RECOVER;
    switch (js) {
    case CORE_AGENT_PENDING:
    case CORE_AGENT_SETTING_UP:
    case CORE_AGENT_RUNNING:
        return CTL_JOB_KEEP_MONITORING;
    case CORE_AGENT_FAILED:
        *fail_status = CTL_JOB_FAILED;
        return CTL_JOB_USER_FAILURE;
    case CORE_AGENT_FAILED_SETUP:
        *fail_status = CTL_JOB_FAILED_SETUP;
        return CTL_JOB_USER_FAILURE;
    default:
        *fail_status = CTL_JOB_FAILED_CONTROLLER;
        return CTL_JOB_CONTROLLER_FAILURE;
    }
}

static bool same_region(const core_candidate_t *a, const core_candidate_t *b)
{
    return strcmp(a->cloud, b->cloud) == 0 && strcmp(a->region, b->region) == 0;
}

size_t ctl_jobs_recovery_skip(core_recovery_strategy_t strategy, const core_candidate_t *cands,
                              size_t n, const core_candidate_t *preempted, bool location_pinned,
                              int sweep, unsigned char *skip)
{
    size_t left = 0;

    memset(skip, 0, n);
    if (sweep > 0 || preempted == NULL)
        return n;
    if (strategy == CORE_RECOVERY_EAGER_NEXT_REGION && location_pinned)
        return n; /* the user asked for that region: nowhere else to go */
    for (size_t i = 0; i < n; i++) {
        bool try;

        if (strategy == CORE_RECOVERY_EAGER_NEXT_REGION)
            try = !same_region(&cands[i], preempted);
        else
            try = same_region(&cands[i], preempted) &&
                  strcmp(cands[i].instance_type, preempted->instance_type) == 0 &&
                  cands[i].spot == preempted->spot;
        skip[i] = !try;
        left += try;
    }
    if (left == 0) {
        /* An empty first sweep would only cost a backoff round. */
        memset(skip, 0, n);
        return n;
    }
    return left;
}
