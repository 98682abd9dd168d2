#ifndef CORE_AGENT_REQ_H
#define CORE_AGENT_REQ_H

#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * The task request sky-agent runs (POST /tasks, include/core/agent.h): one
 * definition of its JSON for both sides. Controllers and the CLI build it
 * from a task with core_task_request (include/core/taskrun.h); the agent
 * validates it with core_agent_req_parse and stores core_agent_req_json.
 *
 *   {"name": str, "setup": str|null, "run": str|null, "envs": {"K": "V", ...},
 *    "workdir": "/abs/host/path"|null,
 *    "file_mounts": [{"dst": "/abs", "src": "/abs/host/path", "mode": "MOUNT"|"COPY"}]}
 */

#define CORE_AGENT_MAX_NAME   256
#define CORE_AGENT_MAX_ENVS   4096
#define CORE_AGENT_MAX_MOUNTS 256
#define CORE_AGENT_MAX_PATH   4096

typedef enum core_agent_mount_mode {
    CORE_AGENT_COPY = 0, /* copied into place before setup */
    CORE_AGENT_MOUNT,    /* bound (a bucket that outlives the instance) */
} core_agent_mount_mode_t;

typedef struct core_agent_mount {
    char *src;
    char *dst;
    core_agent_mount_mode_t mode;
} core_agent_mount_t;

typedef struct core_agent_req {
    char *name;
    char *setup;   /* NULL: no setup */
    char *run;     /* NULL: nothing to run (succeeds at once) */
    char *workdir; /* absolute host path or NULL */
    size_t n_envs;
    char **env_keys;
    char **env_vals;
    size_t n_mounts;
    core_agent_mount_t *mounts;
} core_agent_req_t;

/*
 * Validates a request: known fields, types, absolute paths, env names,
 * bounded counts. CORE_EINVALREQ with *err an allocated sentence; <out> is
 * the caller's (core_agent_req_free) on success only.
 */
int core_agent_req_parse(const cJSON *doc, core_agent_req_t *out, char **err);
/* The JSON of <r> (normalized: every field present). Caller deletes. */
cJSON *core_agent_req_json(const core_agent_req_t *r);
void core_agent_req_free(core_agent_req_t *r);
/* [A-Za-z_][A-Za-z0-9_]* */
int core_agent_env_key_valid(const char *k);

#endif
