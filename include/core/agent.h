#ifndef CORE_AGENT_H
#define CORE_AGENT_H

#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * Client of sky-agent, the daemon on every instance (replica_agent/). Used by
 * the controllers and the CLI. Blocking (libcurl through core/http.h): call it
 * from the CLI or from uv_queue_work, never on an event loop thread.
 *
 * Every function takes the agent's address (<ip>, <port>) and its bearer
 * <token> (NULL when the agent runs without --token-file), and returns 0 or a
 * negative errno. An SSH pool host's agent (`sky ssh up` recorded <ip> in
 * $SKY_HOME/ssh/agents/) is reached over TLS, trusting only the product's CA
 * (core/tls.h), with the token derived for it from its pool's when <token> is
 * NULL; -EPROTO when its
 * certificate is not one we issued for <ip>. Errors:
 *   -ECONNREFUSED / -ETIMEDOUT / -EIO  transport errors (agent down, instance gone)
 *   CORE_ENOTFOUND                     unknown task id (HTTP 404)
 *   -EACCES                            missing or wrong token (HTTP 401)
 *   CORE_EINVALREQ                     the agent rejected the request (HTTP 400/413)
 *   CORE_EHTTP                         any other non-2xx status
 *   CORE_EJSON                         a 2xx reply that is not the expected JSON
 *
 * HTTP API (JSON unless stated; errors are {"error": "..."}):
 *   GET  /health               200 {"status":"ok","tasks":N,"running":N}
 *   POST /tasks                body: see core_agent_submit; 200 {"task_id":N}
 *   GET  /tasks                200 {"tasks":[<task>...]} in id order
 *   GET  /tasks/N              200 <task> = {"task_id","name","status","exit_code",
 *                              "submitted_at","started_at","ended_at","failure_reason"}
 *                              (exit_code, *_at, failure_reason are null until known)
 *   GET  /tasks/N/logs?follow=0|1&tail=K
 *                              200 chunked text/plain: setup output then run output;
 *                              follow=1 streams until the task ends
 *   POST /tasks/N/cancel[?grace=S]
 *                              200 {"task_id":N,"cancelled":bool,"status":"..."};
 *                              SIGTERM, SIGKILL S seconds later (default 3)
 *   GET  /notice               the instance's preemption notice, as EC2's metadata
 *                              server serves spot/instance-action (the same document
 *                              also at /latest/meta-data/spot/instance-action):
 *                              404 without one; 200 {"action":"terminate","time":ISO 8601,
 *                              "deadline":epoch s,"seconds_left":s}
 */

/* Cluster-job statuses (reference managed_jobs.md §2.1, job_lib.JobStatus). */
/*
 * PENDING       queued behind another task
 * SETTING_UP    workdir/file_mounts sync and setup
 * RUNNING
 * SUCCEEDED
 * FAILED        run exited != 0 (or the agent lost it, see failure_reason)
 * FAILED_SETUP  setup or workdir/file_mounts sync failed
 * CANCELLED
 * The reference's INIT and FAILED_DRIVER have no counterpart here: a task is
 * PENDING from its submission, and there is no driver process to fail.
 */
#define CORE_AGENT_STATUS_MAP(XX)                                                                  \
    XX(PENDING) XX(SETTING_UP) XX(RUNNING) XX(SUCCEEDED) XX(FAILED) XX(FAILED_SETUP) XX(CANCELLED)

typedef enum core_agent_status {
#define XX(name) CORE_AGENT_##name,
    CORE_AGENT_STATUS_MAP(XX)
#undef XX
    CORE_AGENT_STATUS_COUNT,
} core_agent_status_t;

/* "PENDING", ...; "UNKNOWN" for out-of-range values. */
const char *core_agent_status_name(core_agent_status_t s);
/* Exact (case-sensitive) name; -EINVAL otherwise. */
int core_agent_status_parse(const char *s, core_agent_status_t *out);
int core_agent_status_is_terminal(core_agent_status_t s);

#define CORE_AGENT_TIMEOUT_MS 10000L

typedef struct core_agent_task {
    int task_id;
    char *name; /* owned */
    core_agent_status_t status;
    int has_exit_code;   /* exit_code is meaningful only when set */
    int exit_code;       /* 128+signal when the process was killed by a signal */
    double submitted_at; /* epoch seconds; 0 when null */
    double started_at;
    double ended_at;
    char *failure_reason; /* owned, NULL when none */
} core_agent_task_t;

void core_agent_task_free(core_agent_task_t *t);
/* Fills <out> from one task object of the API; CORE_EJSON if malformed. */
int core_agent_task_from_json(const cJSON *j, core_agent_task_t *out);

/*
 * The URL of <path> on the agent at <ip>:<port> (https for an SSH pool host,
 * brackets for IPv6) and in *bearer the token to send it (the host's own for
 * a pool host, else a copy of <token>; NULL for none), for clients that make
 * their own requests (core_http_async). Caller frees both.
 */
char *core_agent_url(const char *ip, int port, const char *token, const char *path,
                     char **bearer);

/* 0 when the agent answers /health with status "ok" within <timeout_ms>. */
int core_agent_health(const char *ip, int port, const char *token, long timeout_ms);

/*
 * Queues a task. <task> is a request (include/core/agent_req.h), as
 * core_task_agent_json builds it. Tasks run one at a time in submission order. *task_id gets the new id (1, 2, ...).
 */
int core_agent_submit(const char *ip, int port, const char *token, const cJSON *task, int *task_id);

/* One task's state; free <out> with core_agent_task_free. */
int core_agent_task_get(const char *ip, int port, const char *token, int task_id,
                        core_agent_task_t *out);

/* All tasks in id order; caller frees each element and the array. */
int core_agent_task_list(const char *ip, int port, const char *token, core_agent_task_t **out,
                         size_t *n);

/*
 * Streams a task's logs (setup then run output) to <cb> as they arrive.
 * <tail> < 0 means everything, otherwise only the last <tail> lines.
 * With <follow> it returns when the task ends (no overall timeout) or when
 * <cb> returns non-zero (then it returns 0).
 */
int core_agent_logs(const char *ip, int port, const char *token, int task_id, int follow, int tail,
                    int (*cb)(const char *data, size_t len, void *arg), void *arg);

/*
 * Cancels a task: a pending one is dropped, a live one's process group gets
 * SIGTERM, then SIGKILL after a grace period; it then reports CANCELLED.
 * Cancelling a finished task is a no-op that succeeds.
 */
int core_agent_cancel(const char *ip, int port, const char *token, int task_id);
/* The same with SIGKILL <grace_s> seconds after the SIGTERM (a preemption notice's deadline). */
int core_agent_cancel_grace(const char *ip, int port, const char *token, int task_id,
                            double grace_s);

#endif
