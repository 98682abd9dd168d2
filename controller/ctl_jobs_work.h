#ifndef CTL_JOBS_WORK_H
#define CTL_JOBS_WORK_H

#include <stddef.h>
#include <cjson/cJSON.h>

#include "core/agent.h"
#include "core/catalog.h"
#include "core/prov_registry.h"
#include "core/spec.h"

/*
 * The blocking half of the jobs controller: one call to the provider and/or
 * the instance's agent, as a real cloud's calls block. The recovery loop
 * (ctl_jobs_run.c) fills a call on the loop thread, runs it in the thread
 * pool (uv_queue_work) and applies the outputs on the loop thread again. A
 * call touches nothing but its own fields, the job's providers (one call per
 * job at a time) and the job's controller.log.
 */
typedef enum ctl_jobs_op {
    CTL_JOBS_OP_CONNECT = 0, /* open the provider of the task's cloud */
    CTL_JOBS_OP_LAUNCH,      /* failover launch over the candidates not skipped */
    CTL_JOBS_OP_SUBMIT,      /* the task to the instance's agent */
    CTL_JOBS_OP_TASK_GET,    /* the task's status on the agent */
    CTL_JOBS_OP_POLL,        /* the instance's state, then (if RUNNING) the task's status */
    CTL_JOBS_OP_DESCRIBE,    /* the instance's state */
    CTL_JOBS_OP_CLEANUP,     /* cancel the task, terminate the instance, reap, drop buckets */
    CTL_JOBS_OP_NOTICE,      /* a preemption notice: the task gets SIGTERM, SIGKILL after grace_s */
    CTL_JOBS_OP_TERMINATE,   /* the instance only (one under notice, replaced already) */
} ctl_jobs_op_t;

typedef struct ctl_jobs_call {
    ctl_jobs_op_t op;
    /* in */
    const char *jobs_dir; /* for the job's controller.log */
    long job_id;
    core_prov_registry_t **provs; /* the job's providers, made on first use */
    const char *cloud;    /* the task's cloud (NULL: the default): CONNECT opens its provider */
    core_instance_t inst; /* the job's instance (id "" = none) */
    int task_id;          /* on the agent of <inst>; SUBMIT's output */
    const core_candidate_t *cands; /* LAUNCH's; their clouds' providers are reaped */
    size_t n_cands;
    const unsigned char *skip;   /* LAUNCH */
    cJSON *task_json;            /* SUBMIT: the agent's request; the call deletes it */
    int cancel_task;             /* CLEANUP: ask the agent to cancel task_id first */
    const core_task_t *buckets;  /* CLEANUP: delete this task's `persistent: false` buckets */
    double grace_s;              /* NOTICE: until the deadline */
    /* out */
    int rc;
    char *err;                   /* LAUNCH: why it failed, or NULL */
    core_instance_t launched;    /* LAUNCH */
    enum core_inst_state state;  /* POLL, DESCRIBE: a vanished instance is TERMINATED; when
                                  * the provider cannot be reached, RUNNING (the agent decides) */
    double preempt_at;           /* POLL, DESCRIBE: a preemption notice's deadline, 0 = none */
    int task_rc;                 /* POLL, TASK_GET: 0 when <task> was read */
    core_agent_task_t task;
    double task_secs;            /* TASK_GET: how long the agent took to answer */
} ctl_jobs_call_t;

/* The owner tag of the job's instances: "job:<id>". */
void ctl_jobs_owner(long job_id, char *out, size_t outlen);

/* Runs the call (blocking). */
void ctl_jobs_call_run(ctl_jobs_call_t *c);
/* Frees the outputs; the call can be filled again. */
void ctl_jobs_call_clear(ctl_jobs_call_t *c);

#endif
