#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/taskrun.h"
#include "core/util.h"

int core_bucket_path(const char *name, char **out)
{
    if (name == NULL || *name == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0 || strlen(name) > 200)
        return -EINVAL;
    char *rel = core_xasprintf("buckets/%s", name);
    char *p = core_home_path(rel);
    free(rel);
    int r = core_mkdir_p(p, 0755);
    if (r < 0) {
        free(p);
        return r;
    }
    *out = p;
    return 0;
}

/* <path> as given in the YAML, made absolute against <base> when relative. */
static char *resolve(const char *given, const char *resolved, const char *base)
{
    if (given == NULL)
        return NULL;
    if (base == NULL || given[0] == '/' || given[0] == '~')
        return core_xstrdup(resolved ? resolved : given);
    return core_xasprintf("%s/%s", base, given);
}

/* cp -a <from> <to>/ without a shell, so no path is ever interpreted. */
static int copy_tree(const char *from, const char *to)
{
    pid_t pid = fork();
    if (pid == -1)
        return -errno;
    if (pid == 0) {
        execlp("cp", "cp", "-a", from, to, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int add_mount(cJSON *mounts, const core_file_mount_t *m, const char *base, char **err)
{
    char *src = NULL;
    const char *mode = m->mode == CORE_MOUNT_MOUNT ? "MOUNT" : "COPY";
    if (m->is_storage) {
        int r = core_bucket_path(m->name, &src);
        if (r < 0) {
            *err = core_xasprintf("file_mounts.%s: invalid bucket name '%s'", m->dst,
                                  m->name ? m->name : "");
            return r;
        }
        /* A bucket with a local source is filled from it on creation. */
        char *local = resolve(m->src, m->src_resolved, base);
        if (local && strstr(local, "://") == NULL) {
            char *marker = core_xasprintf("%s/.sky_bucket_initialized", src);
            if (access(marker, F_OK) != 0) {
                struct stat st;
                char *from = stat(local, &st) == 0 && S_ISDIR(st.st_mode)
                                 ? core_xasprintf("%s/.", local)
                                 : core_xstrdup(local);
                if (copy_tree(from, src) == 0)
                    core_write_file(marker, "", 0, 0644);
                free(from);
            }
            free(marker);
        }
        free(local);
    } else {
        src = resolve(m->src, m->src_resolved, base);
        mode = "COPY";
        if (src == NULL || access(src, R_OK) != 0) {
            *err = core_xasprintf("file_mounts.%s: source '%s' is not readable", m->dst,
                                  src ? src : "");
            free(src);
            return -ENOENT;
        }
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dst", m->dst);
    cJSON_AddStringToObject(e, "src", src);
    cJSON_AddStringToObject(e, "mode", mode);
    cJSON_AddItemToArray(mounts, e);
    free(src);
    return 0;
}

cJSON *core_task_agent_json(const core_task_t *t, const cJSON *extra_envs,
                            const char *workdir_base, char **err)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", t->name ? t->name : "task");
    if (t->setup)
        cJSON_AddStringToObject(j, "setup", t->setup);
    else
        cJSON_AddNullToObject(j, "setup");
    if (t->run)
        cJSON_AddStringToObject(j, "run", t->run);
    else
        cJSON_AddNullToObject(j, "run");
    cJSON *envs = cJSON_AddObjectToObject(j, "envs");
    for (size_t i = 0; i < t->n_envs; i++) {
        if (t->envs[i].value == NULL) {
            *err = core_xasprintf("env %s has no value: pass it with --env %s=VALUE",
                                  t->envs[i].key, t->envs[i].key);
            goto fail;
        }
        cJSON_AddStringToObject(envs, t->envs[i].key, t->envs[i].value);
    }
    for (size_t i = 0; i < t->n_secrets; i++) {
        if (t->secrets[i].value)
            cJSON_AddStringToObject(envs, t->secrets[i].key, t->secrets[i].value);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, extra_envs)
    {
        if (!cJSON_IsString(e))
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(envs, e->string);
        cJSON_AddStringToObject(envs, e->string, e->valuestring);
    }
    char *wd = resolve(t->workdir, t->workdir_resolved, workdir_base);
    if (wd) {
        struct stat st;
        if (stat(wd, &st) == -1 || !S_ISDIR(st.st_mode)) {
            *err = core_xasprintf("workdir '%s' is not a directory", wd);
            free(wd);
            goto fail;
        }
        cJSON_AddStringToObject(j, "workdir", wd);
        free(wd);
    } else {
        cJSON_AddNullToObject(j, "workdir");
    }
    cJSON *mounts = cJSON_AddArrayToObject(j, "file_mounts");
    for (size_t i = 0; i < t->n_file_mounts; i++) {
        if (add_mount(mounts, &t->file_mounts[i], workdir_base, err) < 0)
            goto fail;
    }
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}
