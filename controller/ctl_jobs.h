#ifndef CTL_JOBS_H
#define CTL_JOBS_H

#include <uv.h>

#include "core/http.h"
#include "core/http_async.h"
#include "core/store.h"
#include "ctl_idle.h"
#include "ctl_metrics.h"

/*
 * sky-controller --mode jobs: managed spot jobs that survive preemption.
 *
 * One daemon for every job. Its API (loopback, bearer token from
 * $SKY_HOME/token; port written to $SKY_HOME/jobs/controller.port):
 *   GET  /health                         {"status":"ok","pid":N}
 *   POST /api/jobs                       {"name","yaml","yaml_path","cwd","envs":{K:V}}
 *                                        -> {"job_id":N,"name":...}; 400 spec error
 *   GET  /api/jobs[?all=1]               {"jobs":[JOB...]} newest first
 *   GET  /api/jobs/N                     JOB
 *   POST /api/jobs/N/cancel              {"job_id":N,"status":...}; 409 if already ended
 *   GET  /api/jobs/N/logs?follow=0|1[&offset=B]
 *                                        the job's output across every recovery (the
 *                                        attempts' logs end to end, from byte B)
 *   GET  /api/jobs/N/controller_log?follow=0|1[&offset=B]
 *   GET  /metrics                        Prometheus text (docs/metrics.md)
 * JOB = {"job_id","name","status","resources","submitted_at","start_at","end_at",
 *        "job_duration","total_duration","job_duration_dash","recovery_count",
 *        "failure_reason","run_id","cloud","region","zone","instance_id"}
 *
 * One libuv loop runs everything, as in serve mode: the API, a timer-driven
 * state machine per job (ctl_jobs_run.c), and the copy of each running
 * job's output from its agent (ctl_jobs_logs.c). Provider and agent calls
 * block, as a real cloud's do: they run in the thread pool (uv_queue_work,
 * ctl_jobs_work.c) and their results are applied on the loop thread. Every
 * state change is written to SQLite ($SKY_HOME/jobs/jobs.db,
 * ctl_jobs_store.c) before it is acted on, so a kill -9 of the daemon and a
 * restart resumes every job where it was. The job's output is copied into
 * $SKY_HOME/jobs/<id>/run-<attempt>.log as it is produced, so it outlives
 * the instances.
 */
typedef struct ctl_jobs_opts {
    const char *listen_host; /* default 127.0.0.1 */
    int port;                /* 0: any */
} ctl_jobs_opts_t;

/* Runs the daemon until SIGTERM/SIGINT. Returns the exit code. */
int ctl_jobs_main(const ctl_jobs_opts_t *opts);

/*
 * Timings. The reference polls every 15 s and backs off launches from 60 s;
 * here detection must start recovery within 2 s of a preemption on the local
 * cloud, so the poll is 0.5 s. Each can be set by the environment variable
 * named, for tests and demos.
 */
typedef struct ctl_jobs_cfg {
    double poll_s;            /* SKY_JOBS_POLL_INTERVAL: monitor period (0.5) */
    double retry_init_s;      /* SKY_JOBS_RETRY_INIT_GAP: first launch backoff (ref. 60 s) */
    double retry_max_factor;  /* SKY_JOBS_RETRY_MAX_FACTOR: cap = init * factor (ref. 5) */
    double failure_grace_s;   /* SKY_JOBS_FAILURE_GRACE: before the preemption check (ref. 5 s) */
    double unknown_timeout_s; /* SKY_JOBS_STATUS_TIMEOUT: status unknown -> recover (ref. 60 s) */
    double start_timeout_s;   /* SKY_JOBS_START_TIMEOUT: agent must start the task (ref. 50 s) */
    double idle_s; /* SKY_JOBS_IDLE_TIMEOUT: stop with no job to run (ref. autostop 600 s; 0 never) */
} ctl_jobs_cfg_t;

void ctl_jobs_cfg_load(ctl_jobs_cfg_t *c);

typedef struct ctl_job ctl_job_t;

/* The daemon: what the API and the jobs' state machines share. Loop thread only. */
typedef struct ctl_jobs {
    ctl_jobs_cfg_t cfg;
    uv_loop_t *loop;
    char *jobs_dir;           /* $SKY_HOME/jobs */
    core_store_t *store;      /* jobs.db */
    core_http_async_t *agents; /* the log streams from the agents */
    core_http_server_t *http;
    ctl_job_t *jobs;          /* the jobs with a running state machine */
    int stopping;
    ctl_idle_t idle;
    ctl_metrics_proc_t proc; /* restarts, start time (/metrics) */
} ctl_jobs_t;

#endif
