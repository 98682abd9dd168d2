#ifndef REPLICA_AGENT_AGENT_H
#define REPLICA_AGENT_AGENT_H

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "core/agent.h"
#include "core/agent_req.h"
#include "core/http.h"

/*
 * sky-agent: one per instance. Receives tasks over HTTP, runs them one at a
 * time (workdir/file_mounts sync, setup, run) in their own process groups,
 * keeps their status in <home>/.sky_agent/agent.db and their logs under
 * <home>/.sky_agent/tasks/<id>/ so that a restarted agent still reports them.
 */

/* Printed by --version: `sky ssh up` runs it on a host to see the binary start. */
#define AGENT_VERSION "1"

#define AGENT_MAX_BODY (1u << 20)
/* SIGTERM -> SIGKILL grace on cancel, as skylet gives a job before killing it. */
#define AGENT_KILL_GRACE_MS 3000

/* agent_spec.c: pure parts (env building, status transitions, log tail).
 * The task request itself is core's: include/core/agent_req.h. */

/*
 * The task's environment: <base> (the agent's environ), then HOME=<home>, then
 * the per-node SKYPILOT_* variables the skylet job runner sets (single node at
 * <node_ip>; the SETUP_ variants when <setup>), then the task's envs, later
 * entries replacing earlier ones with the same key. NULL-terminated; free
 * with agent_env_free.
 */
char **agent_env_build(char *const *base, const char *home, const char *node_ip, int setup,
                       const core_agent_req_t *spec);
void agent_env_free(char **env);
/* Value of <key> in a NULL-terminated env, or NULL. */
const char *agent_env_get(char *const *env, const char *key);

/* Legal moves of the task state machine. */
int agent_status_transition_ok(core_agent_status_t from, core_agent_status_t to);

/*
 * Offset in a file of <size> bytes where its last *lines lines start.
 * Decrements *lines by the number of lines found, so a caller can continue
 * in the previous file of a concatenated stream when *lines > 0 on return
 * (then the offset is 0). Returns 0 or a negative errno.
 */
int agent_tail_offset(int fd, off_t size, long *lines, off_t *out);

/* Runtime. */

typedef enum agent_phase {
    AGENT_PHASE_NONE = 0,
    AGENT_PHASE_SYNC, /* workdir + COPY file mounts */
    AGENT_PHASE_SETUP,
    AGENT_PHASE_RUN,
} agent_phase_t;

typedef struct agent agent_t;
typedef struct agent_proc agent_proc_t;

typedef struct agent_task {
    int id;
    core_agent_req_t spec;
    core_agent_status_t status;
    int has_exit_code;
    int exit_code;
    double submitted_at, started_at, ended_at; /* 0 = null */
    char *failure_reason;
    /* Live execution (only for the active task). */
    agent_phase_t phase;
    agent_proc_t *proc;
    int cancel_requested;
    /* Recorded so a restarted agent can find and stop a task it lost. */
    pid_t pgid;
    unsigned long long pid_start; /* /proc/<pid>/stat starttime */
} agent_task_t;

typedef struct agent_logstream agent_logstream_t;

struct agent {
    uv_loop_t *loop;
    char *home;      /* absolute */
    char *state_dir; /* <home>/.sky_agent/tasks */
    char *node_ip;
    const char *metadata_dir; /* the cloud's metadata for this instance (GET /notice), or NULL */
    char *bash;      /* absolute path, resolved once: a task's PATH must not hide it */
    char **base_env; /* borrowed (environ) */
    int can_mount;   /* root with a private mount namespace */
    core_http_server_t *server;
    agent_task_t **tasks; /* tasks[id - 1], NULL for holes */
    int n_tasks;          /* highest id */
    agent_task_t *active;
    uv_timer_t kick; /* schedules the next task outside the exit callback */
    agent_logstream_t *streams;
    int kill_grace_ms;
    int stopping;
    struct core_store *store; /* <home>/.sky_agent/agent.db */
};

/* agent_store.c */
/* Opens <home>/.sky_agent/agent.db, importing an older agent's task files. */
int agent_store_init(agent_t *a);
void agent_store_close(agent_t *a);
/* Loads persisted tasks; tasks that were live are stopped and marked FAILED. */
int agent_store_load(agent_t *a);
/* A new task (its spec and status) / the status of a known one. */
int agent_store_add(agent_t *a, const agent_task_t *t);
int agent_store_save_status(agent_t *a, const agent_task_t *t);
char *agent_task_dir(const agent_t *a, int id);
char *agent_task_file(const agent_t *a, int id, const char *name);
cJSON *agent_task_to_json(const agent_task_t *t);
void agent_task_free(agent_task_t *t);
unsigned long long agent_proc_starttime(pid_t pid);

/* agent_proc.c */
int agent_init(agent_t *a, uv_loop_t *loop, const char *home, const char *node_ip);
void agent_mountns_init(agent_t *a);
agent_task_t *agent_task_find(const agent_t *a, int id);
/* Takes ownership of <spec>. */
int agent_task_submit(agent_t *a, core_agent_req_t *spec, int *id);
/* Sets *was_live when a kill was started or a pending task dropped. */
/* SIGTERM now, SIGKILL after <grace_ms> (a->kill_grace_ms when < 0). */
int agent_task_cancel(agent_t *a, agent_task_t *t, long grace_ms, int *cancelled);
void agent_schedule(agent_t *a);
void agent_set_status(agent_t *a, agent_task_t *t, core_agent_status_t st);
void agent_close(agent_t *a);
void agent_free(agent_t *a);

/* agent_logs.c */
void agent_logs_serve(agent_t *a, core_http_conn_t *c, agent_task_t *t, int follow, long tail);
void agent_logs_close_all(agent_t *a);

/* agent_api.c */
void agent_api_handle(core_http_conn_t *c, const core_http_req_t *req, void *ud);

#endif
