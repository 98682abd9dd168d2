#ifndef CTL_JOBS_STORE_H
#define CTL_JOBS_STORE_H

#include <stddef.h>

#include "core/prov.h"
#include "core/store.h"
#include "ctl_jobs_logic.h"

/*
 * The managed jobs' rows in $SKY_HOME/jobs/jobs.db (core_store: WAL, schema
 * versions). One row per job; every change of a job is saved before the
 * controller acts on it, so a restarted controller resumes each job where it
 * was. Loop thread only.
 */

typedef struct ctl_job_row {
    long id;
    char *name, *yaml, *yaml_path, *cwd, *envs, *resources, *failure_reason, *run_id;
    char *overrides; /* the task flags' JSON (core_task_parse_with), or NULL */
    char *user;      /* who submitted it, or NULL (jobs from before users were kept) */
    ctl_job_times_t t;
    int restart_count;
    int cancel_requested;
    int attempt;          /* log file index (run-<attempt>.log) of the current attempt */
    core_instance_t inst; /* id[0] == 0: none */
    int agent_task;
    core_candidate_t prev; /* where the last attempt ran (cloud[0] == 0: none) */
} ctl_job_row_t;

void ctl_job_row_free(ctl_job_row_t *r);

/* A submission; NULL strings are stored as NULL. */
typedef struct ctl_job_new {
    const char *name, *yaml, *yaml_path, *cwd, *envs, *resources, *overrides, *user;
} ctl_job_new_t;

int ctl_jobs_store_open(const char *path, core_store_t **out, char **err);

/*
 * Adds a PENDING job and its SKYPILOT_RUN_ID (fixed at submission, so it
 * survives recoveries and controller restarts alike; the reference
 * regenerates it on restart: #1399), in one transaction.
 */
int ctl_jobs_store_add(core_store_t *st, const ctl_job_new_t *n, long *id, char *run_id,
                       size_t run_id_len);
/* CORE_ENOTFOUND for an unknown id. Free with ctl_job_row_free. */
int ctl_jobs_store_get(core_store_t *st, long id, ctl_job_row_t *out);
/* Writes every mutable column of <r>. */
int ctl_jobs_store_save(core_store_t *st, const ctl_job_row_t *r);
int ctl_jobs_store_request_cancel(core_store_t *st, long id);
/* Newest first. Free each row, then the array. */
int ctl_jobs_store_list(core_store_t *st, ctl_job_row_t **out, size_t *n);

#endif
