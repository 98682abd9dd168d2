#ifndef CTL_JOBS_H
#define CTL_JOBS_H

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
 * JOB = {"job_id","name","status","resources","submitted_at","start_at","end_at",
 *        "job_duration","total_duration","job_duration_dash","recovery_count",
 *        "failure_reason","run_id","cloud","region","zone","instance_id"}
 *
 * Each job runs on a thread of its own: launching and monitoring block on
 * the provider and the agent, as a real cloud's calls do, and every state
 * change is written to SQLite ($SKY_HOME/jobs/jobs.db) before it is acted
 * on, so a kill -9 of the daemon and a restart resumes every job where it
 * was. The job's output is copied from the instance's agent into
 * $SKY_HOME/jobs/<id>/run-<attempt>.log as it is produced, so it outlives
 * the instances.
 */
typedef struct ctl_jobs_opts {
    const char *listen_host; /* default 127.0.0.1 */
    int port;                /* 0: any */
} ctl_jobs_opts_t;

/* Runs the daemon until SIGTERM/SIGINT. Returns the exit code. */
int ctl_jobs_main(const ctl_jobs_opts_t *opts);

#endif
