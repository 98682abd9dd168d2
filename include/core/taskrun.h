#ifndef CORE_TASKRUN_H
#define CORE_TASKRUN_H

#include <cjson/cJSON.h>

#include "core/agent_req.h"
#include "core/spec.h"

/*
 * Turning a parsed task into what an instance's agent runs: the submission
 * JSON of core_agent_submit (include/core/agent.h) with the workdir, the
 * file mounts mapped to host paths, and the environment.
 *
 * Storage on the local cloud: a file_mounts entry with `name:` is a bucket,
 * the directory $SKY_HOME/buckets/<name>, which outlives every instance.
 * MOUNT binds it at the mount path inside the instance; COPY copies it
 * there at launch. A bucket with a local `source` is filled from it once,
 * when it is created. A plain `dst: local/path` entry is copied at launch.
 */

/* $SKY_HOME/buckets/<name>, created 0755 if missing. Caller frees.
 * -EINVAL for names that are not a single path component. */
int core_bucket_path(const char *name, char **out);

/*
 * <path> as the task's author meant it: absolute and ~ paths as given (~
 * expanded), a relative one under <cwd> (the directory the CLI ran in; NULL:
 * "/"), "." as <cwd> itself. Caller frees; NULL for a NULL path.
 */
char *core_resolve_path(const char *path, const char *cwd);

typedef struct core_task_req_opts {
    const char *name;        /* NULL: the task's name, else "task" */
    const char *cwd;         /* relative workdir and sources resolve here; NULL: as at parse time */
    const cJSON *extra_envs; /* SKYPILOT_* variables, added last: they win on conflicts, as the
                                reference's do (may be NULL) */
    int check_sources;       /* refuse a missing workdir or copied source now, rather than
                                letting the agent fail the task's setup */
} core_task_req_opts_t;

/*
 * The one builder of what an instance's agent runs (include/core/agent_req.h),
 * for the CLI and both controllers: name, setup, run, the task's envs and
 * secrets then <extra_envs>, the workdir and the file mounts as host paths.
 * A bucket's directory is created, and filled from its local source the
 * first time. An env or secret without a value, a bucket URL as a plain
 * mount's source, or (check_sources) a missing path is an error: CORE_ESPEC
 * with a sentence in *err (caller frees); nothing is ever left out silently.
 * Blocking (the bucket fill): controllers call it off their loop.
 */
int core_task_request(const core_task_t *t, const core_task_req_opts_t *o, core_agent_req_t *out,
                      char **err);
/* core_task_request as JSON, or NULL with *err. */
cJSON *core_task_agent_json(const core_task_t *t, const core_task_req_opts_t *o, char **err);

#endif
