#ifndef CTL_SERVE_WORK_H
#define CTL_SERVE_WORK_H

#include <stddef.h>
#include <uv.h>

#include "core/agent.h"
#include "core/catalog.h"
#include "core/prov.h"
#include "core/spec.h"
#include "ctl_serve.h"

/*
 * The serve controller's blocking calls, run in libuv's thread pool
 * (ctl_serve_work.c). A job holds its inputs and results by value: nothing
 * it touches in the thread is shared with the loop.
 */

typedef enum ctl_job_kind {
    CTL_JOB_LAUNCH = 0,
    CTL_JOB_TERMINATE,
    CTL_JOB_LIST,
    CTL_JOB_DESCRIBE,
    CTL_JOB_TASK_STATUS,
} ctl_job_kind_t;

typedef struct ctl_job ctl_job_t;
/* Runs on the loop thread when the job is done (not when the daemon stops). */
typedef void (*ctl_job_done_cb)(ctl_job_t *j);

struct ctl_job {
    uv_work_t w;
    ctl_job_done_cb done;
    ctl_serve_t *s;
    ctl_job_kind_t kind;
    char svc[CTL_SVC_NAME_MAX];
    int id;
    char owner[128];
    char logpath[1024];
    double boot_timeout;
    /* launch */
    core_candidate_t *cands;
    size_t n_cands;
    /* The replica's version's task: read in the thread, never freed while one
     * of its replicas launches (versions are pruned once nobody runs them). */
    const core_task_t *task;
    char *cwd;  /* the CLI's directory, where relative paths resolve */
    char *note; /* a line for the replica's log, written first */
    char task_name[128];
    /* terminate / describe / status */
    char cloud[24]; /* where instance_id lives: picks its provider */
    char instance_id[64];
    char ip[64];
    int agent_port;
    int task_id;
    int sync_logs;
    int max_retry;
    double retry_initial;
    /* results */
    int rc;
    char *err;
    core_instance_t inst;
    int have_inst;
    size_t chosen;
    int adopted;
    core_instance_t *list; /* sorted (ctl_instance_cmp) */
    size_t n_list;
    core_agent_status_t task_status;
    unsigned long long started_mono;
};

/*
 * A launch's provider step, blocking: adopts the instance <owner> already
 * holds (a launch a controller restart interrupted), waiting up to
 * <boot_timeout> s for a PENDING one and terminating dead leftovers; else
 * launches with failover over <cands>. *adopted says which, *chosen the
 * candidate. Logs to <logpath> (NULL: none). *err (may be NULL) a sentence.
 */
int ctl_provision(core_prov_registry_t *p, const char *owner, const core_candidate_t *cands,
                  size_t n, double boot_timeout, const char *logpath, core_instance_t *out,
                  int *adopted, size_t *chosen, char **err);

/* A termination's provider step: <id> in <cloud>'s provider, then anything
 * else <owner> holds (half-launched leftovers). One attempt. */
int ctl_unprovision(core_prov_registry_t *p, const char *owner, const char *cloud, const char *id);

/* Orders instances by (id, cloud): a LIST job's result is sorted so. */
int ctl_instance_cmp(const void *a, const void *b);

/* A job for replica <id> of <svc> (svc NULL: none); <done> runs on the loop. */
ctl_job_t *ctl_job_new(ctl_serve_t *s, ctl_job_kind_t kind, const char *svc, int id,
                       ctl_job_done_cb done);
void ctl_job_queue(ctl_job_t *j);
void ctl_job_free(ctl_job_t *j);

#endif
