#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
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

char *core_resolve_path(const char *path, const char *cwd)
{
    if (!path)
        return NULL;
    if (path[0] == '/')
        return core_xstrdup(path);
    if (path[0] == '~' && (path[1] == '\0' || path[1] == '/')) {
        const char *home = getenv("HOME");

        return core_xasprintf("%s%s", home && *home ? home : "", path + 1);
    }
    if (!cwd || !*cwd)
        cwd = "/";
    if (strcmp(path, ".") == 0)
        return core_xstrdup(cwd);
    if (path[0] == '.' && path[1] == '/')
        path += 2;
    return core_xasprintf("%s%s%s", cwd, cwd[strlen(cwd) - 1] == '/' ? "" : "/", path);
}

/* A path of the YAML: against <base>, or as resolved at parse time without one. */
static char *resolve(const char *given, const char *resolved, const char *base)
{
    if (given == NULL)
        return NULL;
    if (base == NULL)
        return core_xstrdup(resolved ? resolved : given);
    return core_resolve_path(given, base);
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

static void set_env(core_agent_req_t *r, const char *key, const char *value)
{
    for (size_t i = 0; i < r->n_envs; i++) {
        if (strcmp(r->env_keys[i], key) == 0) {
            free(r->env_vals[i]);
            r->env_vals[i] = core_xstrdup(value);
            return;
        }
    }
    r->env_keys = core_xrealloc(r->env_keys, (r->n_envs + 1) * sizeof(char *));
    r->env_vals = core_xrealloc(r->env_vals, (r->n_envs + 1) * sizeof(char *));
    r->env_keys[r->n_envs] = core_xstrdup(key);
    r->env_vals[r->n_envs++] = core_xstrdup(value);
}

static int envs(core_agent_req_t *r, const core_kv_t *kv, size_t n, int secret, char **err)
{
    for (size_t i = 0; i < n; i++) {
        if (kv[i].value == NULL) {
            *err = secret ? core_xasprintf("secret %s has no value: set it in the YAML", kv[i].key)
                          : core_xasprintf("env %s has no value: pass it with --env %s=VALUE",
                                           kv[i].key, kv[i].key);
            return CORE_ESPEC;
        }
        set_env(r, kv[i].key, kv[i].value);
    }
    return 0;
}

/* The host path of one file_mounts entry, the bucket created and filled once. */
static int mount_src(const core_file_mount_t *m, const core_task_req_opts_t *o, char **out,
                     char **err)
{
    char *local = resolve(m->src, m->src_resolved, o->cwd);

    *out = NULL;
    if (!m->is_storage) {
        if (local && strstr(local, "://") != NULL) {
            *err = core_xasprintf("file_mounts.%s: source %s is a bucket URL: name a bucket "
                                  "(`name:`) or use a local path",
                                  m->dst, local);
            free(local);
            return CORE_ESPEC;
        }
        if (o->check_sources && (local == NULL || access(local, R_OK) != 0)) {
            *err = core_xasprintf("file_mounts.%s: source '%s' is not readable", m->dst,
                                  local ? local : "");
            free(local);
            return CORE_ESPEC;
        }
        *out = local;
        return 0;
    }
    if (core_bucket_path(m->name, out) < 0) {
        *err = core_xasprintf("file_mounts.%s: invalid bucket name '%s'", m->dst,
                              m->name ? m->name : "");
        free(local);
        return CORE_ESPEC;
    }
    /* A bucket with a local source is filled from it on creation. */
    if (local && strstr(local, "://") == NULL) {
        char *marker = core_xasprintf("%s/.sky_bucket_initialized", *out);

        if (access(marker, F_OK) != 0) {
            struct stat st;
            char *from = stat(local, &st) == 0 && S_ISDIR(st.st_mode)
                             ? core_xasprintf("%s/.", local)
                             : core_xstrdup(local);

            if (copy_tree(from, *out) == 0)
                core_write_file(marker, "", 0, 0644);
            free(from);
        }
        free(marker);
    }
    free(local);
    return 0;
}

int core_task_request(const core_task_t *t, const core_task_req_opts_t *o, core_agent_req_t *out,
                      char **err)
{
    static const core_task_req_opts_t none = {0};
    core_agent_req_t r = {0};
    const cJSON *e;
    int rc;

    if (!o)
        o = &none;
    *err = NULL;
    r.name = core_xstrdup(o->name ? o->name : t->name ? t->name : "task");
    r.setup = t->setup ? core_xstrdup(t->setup) : NULL;
    r.run = t->run ? core_xstrdup(t->run) : NULL;
    if ((rc = envs(&r, t->envs, t->n_envs, 0, err)) < 0 ||
        (rc = envs(&r, t->secrets, t->n_secrets, 1, err)) < 0)
        goto fail;
    cJSON_ArrayForEach(e, o->extra_envs)
    {
        if (cJSON_IsString(e))
            set_env(&r, e->string, e->valuestring);
    }
    r.workdir = resolve(t->workdir, t->workdir_resolved, o->cwd);
    if (r.workdir && o->check_sources) {
        struct stat st;

        if (stat(r.workdir, &st) == -1 || !S_ISDIR(st.st_mode)) {
            *err = core_xasprintf("workdir '%s' is not a directory", r.workdir);
            rc = CORE_ESPEC;
            goto fail;
        }
    }
    r.mounts = core_xcalloc(t->n_file_mounts ? t->n_file_mounts : 1, sizeof(*r.mounts));
    for (size_t i = 0; i < t->n_file_mounts; i++) {
        const core_file_mount_t *m = &t->file_mounts[i];
        core_agent_mount_t *am = &r.mounts[r.n_mounts];

        if ((rc = mount_src(m, o, &am->src, err)) < 0)
            goto fail;
        am->dst = core_xstrdup(m->dst);
        am->mode =
            m->is_storage && m->mode == CORE_MOUNT_MOUNT ? CORE_AGENT_MOUNT : CORE_AGENT_COPY;
        r.n_mounts++;
    }
    *out = r;
    return 0;
fail:
    core_agent_req_free(&r);
    return rc;
}

cJSON *core_task_agent_json(const core_task_t *t, const core_task_req_opts_t *o, char **err)
{
    core_agent_req_t r;
    cJSON *j;

    if (core_task_request(t, o, &r, err) < 0)
        return NULL;
    j = core_agent_req_json(&r);
    core_agent_req_free(&r);
    return j;
}
