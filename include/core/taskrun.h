#ifndef CORE_TASKRUN_H
#define CORE_TASKRUN_H

#include <cjson/cJSON.h>

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
 * The submission JSON for <t>: {"name","setup","run","envs","workdir","file_mounts"}.
 * <extra_envs> (may be NULL) is an object of SKYPILOT_* variables added after
 * the task's envs (they win on conflicts, as the reference's do).
 * <workdir_base>: directory that a relative `workdir:`/source is resolved
 * against (the CLI's cwd; NULL = already resolved at parse time).
 * On error *err gets a sentence (caller frees) and NULL is returned.
 */
cJSON *core_task_agent_json(const core_task_t *t, const cJSON *extra_envs,
                            const char *workdir_base, char **err);

#endif
