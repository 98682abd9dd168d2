#ifndef CTL_JOBS_RUN_H
#define CTL_JOBS_RUN_H

#include <stdbool.h>

#include "ctl_jobs.h"

/*
 * The recovery loop: one state machine per unfinished job, on the loop
 * thread. It launches the job (failover across the candidates, with backoff
 * while nothing has capacity), monitors it (instance state, then the agent's
 * task status, every poll interval), recovers it after a preemption (same
 * SKYPILOT_RUN_ID, another region first under EAGER_NEXT_REGION), and ends
 * it (cancel, success, failure), cleaning up every instance it owns. Its
 * blocking calls run in the thread pool (ctl_jobs_work.h); timers space its
 * steps.
 */

/* Starts job <id>'s state machine where its row says it is, unless one runs
 * already or the job has ended. */
void ctl_jobs_run_start(ctl_jobs_t *d, long id);
/* A cancel of <id> was saved: tells its state machine now, starting one if
 * none runs (e.g. one that gave up). */
void ctl_jobs_run_cancel(ctl_jobs_t *d, long id);
/* Whether <id> has a state machine, i.e. its output may still grow. */
bool ctl_jobs_run_active(ctl_jobs_t *d, long id);
/* The daemon stops: every state machine stops at its next step (a call in
 * flight completes first); the jobs keep running on their instances. */
void ctl_jobs_run_stop_all(ctl_jobs_t *d);

#endif
