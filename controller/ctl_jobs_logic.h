#ifndef CTL_JOBS_LOGIC_H
#define CTL_JOBS_LOGIC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/agent.h"
#include "core/catalog.h"
#include "core/prov.h"
#include "core/spec.h"

/*
 * Managed-jobs decision logic (reference sky/jobs/{state,controller,
 * recovery_strategy,utils}.py): statuses and guarded transitions, duration
 * accounting and display, restart-on-error policy, monitor classification,
 * and which candidates each recovery strategy tries first. Pure; the clock
 * is passed in.
 */

/*
 * ManagedJobStatus, in the reference's order (the order is used: every
 * status from FAILED on is a failure). SUBMITTED is parsed only, never
 * written (as at HEAD, which names it DEPRECATED_SUBMITTED).
 */
#define CTL_JOB_STATUS_MAP(XX)                                                                     \
    XX(PENDING) XX(SUBMITTED) XX(STARTING) XX(RUNNING) XX(RECOVERING) XX(CANCELLING)              \
    XX(SUCCEEDED) XX(CANCELLED) XX(FAILED) XX(FAILED_SETUP) XX(FAILED_PRECHECKS)                  \
    XX(FAILED_NO_RESOURCE) XX(FAILED_CONTROLLER)

typedef enum ctl_job_status {
#define XX(name) CTL_JOB_##name,
    CTL_JOB_STATUS_MAP(XX)
#undef XX
    CTL_JOB_STATUS_COUNT,
} ctl_job_status_t;

/* "PENDING", ...; "?" out of range. */
const char *ctl_job_status_name(ctl_job_status_t s);
/* Also takes DEPRECATED_SUBMITTED. CORE_ENOTFOUND for an unknown name. */
int ctl_job_status_parse(const char *name, ctl_job_status_t *out);
/* HEAD semantics: SUCCEEDED, CANCELLED and FAILED*; CANCELLING is not terminal. */
bool ctl_job_status_is_terminal(ctl_job_status_t s);
bool ctl_job_status_is_failed(ctl_job_status_t s);
/* Non-terminal and not CANCELLING: PENDING, SUBMITTED, STARTING, RUNNING, RECOVERING. */
bool ctl_job_status_is_processing(ctl_job_status_t s);
/* exceptions.JobExitCode: 0 SUCCEEDED, 100 any failure, 101 not finished, 103 CANCELLED. */
int ctl_job_status_exit_code(ctl_job_status_t s);
/* Queue-table job status over a pipeline: the first task not SUCCEEDED, else SUCCEEDED. */
ctl_job_status_t ctl_job_status_of_tasks(const ctl_job_status_t *tasks, size_t n);

#define CTL_TIME_UNSET (-1.0)

/* One task row: its status and the §6 duration columns (-1 = NULL). */
typedef struct ctl_job_times {
    ctl_job_status_t status;
    double submitted_at;
    double start_at;
    double end_at;
    double last_recovered_at; /* default -1 */
    double job_duration;      /* running seconds accumulated before the last recovery */
    int recovery_count;
} ctl_job_times_t;

void ctl_job_times_init(ctl_job_times_t *t); /* PENDING, all times unset, 0 duration */

/*
 * The guarded transitions of state.py. Each returns 0, or CORE_ECONFLICT when
 * the guard (the reference's WHERE clause) does not match; t is then unchanged.
 */
/* PENDING, end unset -> STARTING; submitted_at = the controller's run timestamp */
int ctl_job_set_starting(ctl_job_times_t *t, double submitted_at);
/* STARTING/RECOVERING, end unset -> PENDING (launch backoff) */
int ctl_job_set_backoff_pending(ctl_job_times_t *t);
/* end unset -> STARTING or RECOVERING (the next attempt after backoff) */
int ctl_job_set_restarting(ctl_job_times_t *t, bool recovering);
/* STARTING/PENDING -> RUNNING; start_at = last_recovered_at = cluster-job submit time */
int ctl_job_set_started(ctl_job_times_t *t, double t_submit);
/* RUNNING (any processing status if force) -> RECOVERING; banks the running time */
int ctl_job_set_recovering(ctl_job_times_t *t, double now, bool force);
/* RECOVERING -> RUNNING; last_recovered_at = new submit time, recovery_count++ */
int ctl_job_set_recovered(ctl_job_times_t *t, double t_submit);
/* RUNNING, end unset -> SUCCEEDED; end_at = cluster-job end time */
int ctl_job_set_succeeded(ctl_job_times_t *t, double end_time);
/* end unset (or override_terminal) -> a FAILED* status; RECOVERING: last_recovered_at = end */
int ctl_job_set_failed(ctl_job_times_t *t, ctl_job_status_t failed, double end_time,
                       bool override_terminal);
/* end unset -> CANCELLING */
int ctl_job_set_cancelling(ctl_job_times_t *t);
/* CANCELLING -> CANCELLED; end_at = now */
int ctl_job_set_cancelled(ctl_job_times_t *t, double now);
/* PENDING -> CANCELLED before a controller claimed the job (end_at stays unset) */
int ctl_job_set_pending_cancelled(ctl_job_times_t *t);

/*
 * Display values in seconds. A *_dash flag means the reference prints '-'
 * (readable_time_duration: start unset/negative, or start == end == 0);
 * values in (0, 1) print "< 1 second".
 */
typedef struct ctl_job_display {
    double job_duration; /* JOB DURATION */
    bool job_duration_dash;
    double total_duration; /* TOT. DURATION: submitted_at -> end_at (or now) */
    bool total_dash;
    int recoveries; /* #RECOVERIES */
} ctl_job_display_t;

void ctl_job_display(const ctl_job_times_t *t, double now, ctl_job_display_t *out);
/* Pipeline row: sum of JOB DURATIONs, min submitted_at -> max end_at (now if any
 * task has none), sum of recoveries. */
void ctl_job_display_pipeline(const ctl_job_times_t *tasks, size_t n, double now,
                              ctl_job_display_t *out);

/* ---- restarts on user failure ---- */

typedef struct ctl_restart_policy {
    int max_restarts_on_errors;       /* default 0 */
    const int *recover_on_exit_codes; /* may be NULL */
    size_t n_recover_codes;
} ctl_restart_policy_t;

/*
 * should_restart_on_failure: true without counting when any exit code is in
 * recover_on_exit_codes; otherwise ++*restart_count and true iff it is still
 * <= max_restarts_on_errors. The caller persists *restart_count.
 */
bool ctl_job_should_restart_on_failure(const ctl_restart_policy_t *p, const int *exit_codes,
                                       size_t n_codes, int *restart_count);

/*
 * ---- monitor classification (§3.3) ----
 * The cluster job's status is the agent's (core_agent_status_t, the
 * reference's job_lib.JobStatus without INIT and FAILED_DRIVER); <known> is
 * false when the agent did not answer (the reference's None).
 */

#define CTL_JOB_STATUS_CHECK_GAP_S     15.0
#define CTL_JOB_FAILURE_GRACE_S        5.0 /* before the preemption check of a failed job */
#define CTL_JOB_STATUS_FETCH_TIMEOUT_S 60.0

/*
 * Whether this poll must ask the provider for the instance state: not for
 * SUCCEEDED, nor for a healthy single-node job (multi-node jobs every poll,
 * since a partial preemption may not fail the job).
 */
bool ctl_job_needs_instance_check(bool known, core_agent_status_t js, int num_nodes);

typedef enum ctl_job_outcome {
    CTL_JOB_KEEP_MONITORING = 0,
    CTL_JOB_OUT_SUCCEEDED,
    CTL_JOB_USER_FAILURE,       /* then ctl_job_should_restart_on_failure -> RECOVER or fail */
    CTL_JOB_RECOVER,            /* preempted, or status unknown for too long */
    CTL_JOB_CONTROLLER_FAILURE, /* CANCELLED or unexpected cluster-job status */
} ctl_job_outcome_t;

/*
 * One monitor step. <inst> is the freshly described instance state (pass
 * CORE_INST_RUNNING when no check was needed; a vanished instance is
 * TERMINATED). Any non-RUNNING instance means preemption, whatever the job
 * status says (SUCCEEDED excepted, as in the reference). <unknown_for_s> is how
 * long the job status has been unknown (0 if it is known). For USER_FAILURE,
 * *fail_status is FAILED or FAILED_SETUP.
 */
ctl_job_outcome_t ctl_job_classify(bool known, core_agent_status_t js, enum core_inst_state inst,
                                   double unknown_for_s, ctl_job_status_t *fail_status);

/* ---- recovery strategies (§4; core_recovery_strategy_t, from the task's job_recovery) ---- */

/*
 * The skip mask for core_prov_launch_failover() on recovery sweep <sweep>
 * (0 = the first attempt after a preemption). <cands> is the task's candidate
 * list (cheapest first); <preempted> is the candidate the job ran on (NULL
 * if unknown); <location_pinned> is true when the user's requested resources
 * set a region or zone.
 *  - EAGER_NEXT_REGION, sweep 0, not pinned: skip every candidate in the
 *    preempted (cloud, region) - the intended behaviour of PR #2234, dead
 *    upstream since #2498 (issue #10021). Later sweeps: the full list.
 *  - FAILOVER, sweep 0: only the same cloud, region, instance type and spot
 *    flag (any zone). Later sweeps: the full list.
 * When sweep 0 would skip everything, nothing is skipped. skip[i] is 1 to
 * skip. Returns the number of candidates left to try.
 */
size_t ctl_jobs_recovery_skip(core_recovery_strategy_t strategy, const core_candidate_t *cands,
                              size_t n, const core_candidate_t *preempted, bool location_pinned,
                              int sweep, unsigned char *skip);

#endif
