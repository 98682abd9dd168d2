/*
 * The task request of sky-agent (POST /tasks): the one definition of its
 * JSON. Controllers and the CLI build it (core_task_request, taskrun.c);
 * the agent parses and stores it with the functions below.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent_req.h"
#include "core/err.h"
#include "core/mem.h"

void core_agent_req_free(core_agent_req_t *s)
{
    free(s->name);
    free(s->setup);
    free(s->run);
    free(s->workdir);
    for (size_t i = 0; i < s->n_envs; i++) {
        free(s->env_keys[i]);
        free(s->env_vals[i]);
    }
    free(s->env_keys);
    free(s->env_vals);
    for (size_t i = 0; i < s->n_mounts; i++) {
        free(s->mounts[i].src);
        free(s->mounts[i].dst);
    }
    free(s->mounts);
    memset(s, 0, sizeof(*s));
}

int core_agent_env_key_valid(const char *k)
{
    if (k == NULL || *k == '\0')
        return 0;
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
        return 0;
    for (const char *p = k + 1; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    }
    return 1;
}

/* Absolute, no NUL tricks (cJSON strings stop at NUL anyway), bounded. */
static int abs_path_ok(const char *p)
{
    return p != NULL && p[0] == '/' && strlen(p) < CORE_AGENT_MAX_PATH;
}

/* NULL or missing -> *out NULL; string -> copy; anything else -> error. */
static int opt_string(const cJSON *doc, const char *key, char **out, char **err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v)) {
        *err = core_xasprintf("'%s' must be a string or null", key);
        return CORE_EINVALREQ;
    }
    *out = core_xstrdup(v->valuestring);
    return 0;
}

static char *env_value(const cJSON *v)
{
    if (cJSON_IsString(v))
        return core_xstrdup(v->valuestring);
    if (cJSON_IsBool(v))
        return core_xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(long long)d && d > -9e15 && d < 9e15)
            return core_xasprintf("%lld", (long long)d);
        return core_xasprintf("%.17g", d);
    }
    return NULL;
}

int core_agent_req_parse(const cJSON *doc, core_agent_req_t *out, char **err)
{
    static const char *const known[] = {"name", "setup", "run", "envs", "workdir", "file_mounts"};
    core_agent_req_t s = {0};
    int rc = CORE_EINVALREQ;
    *err = NULL;

    if (!cJSON_IsObject(doc)) {
        *err = core_xstrdup("the task must be a JSON object");
        goto fail;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        size_t k = 0;
        while (k < CORE_ARRAY_SIZE(known) && strcmp(it->string, known[k]) != 0)
            k++;
        if (k == CORE_ARRAY_SIZE(known)) {
            *err = core_xasprintf("unknown field '%s'", it->string);
            goto fail;
        }
    }
    if (opt_string(doc, "name", &s.name, err) < 0 || opt_string(doc, "setup", &s.setup, err) < 0 ||
        opt_string(doc, "run", &s.run, err) < 0 || opt_string(doc, "workdir", &s.workdir, err) < 0)
        goto fail;
    if (s.name == NULL)
        s.name = core_xstrdup("task");
    if (strlen(s.name) > CORE_AGENT_MAX_NAME) {
        *err = core_xasprintf("'name' is longer than %d bytes", CORE_AGENT_MAX_NAME);
        goto fail;
    }
    if (s.workdir != NULL && !abs_path_ok(s.workdir)) {
        *err = core_xasprintf("'workdir' must be an absolute path, got '%s'", s.workdir);
        goto fail;
    }

    const cJSON *envs = cJSON_GetObjectItemCaseSensitive(doc, "envs");
    if (envs != NULL && !cJSON_IsNull(envs)) {
        if (!cJSON_IsObject(envs)) {
            *err = core_xstrdup("'envs' must be an object of strings");
            goto fail;
        }
        int n = cJSON_GetArraySize(envs);
        if (n > CORE_AGENT_MAX_ENVS) {
            *err = core_xasprintf("too many envs (%d > %d)", n, CORE_AGENT_MAX_ENVS);
            goto fail;
        }
        s.env_keys = core_xcalloc((size_t)n + 1, sizeof(char *));
        s.env_vals = core_xcalloc((size_t)n + 1, sizeof(char *));
        cJSON_ArrayForEach(it, envs)
        {
            if (!core_agent_env_key_valid(it->string)) {
                *err = core_xasprintf("invalid env name '%s'", it->string);
                goto fail;
            }
            char *val = env_value(it);
            if (val == NULL) {
                *err = core_xasprintf("env '%s' must be a string", it->string);
                goto fail;
            }
            s.env_keys[s.n_envs] = core_xstrdup(it->string);
            s.env_vals[s.n_envs] = val;
            s.n_envs++;
        }
    }

    const cJSON *fms = cJSON_GetObjectItemCaseSensitive(doc, "file_mounts");
    if (fms != NULL && !cJSON_IsNull(fms)) {
        if (!cJSON_IsArray(fms)) {
            *err = core_xstrdup("'file_mounts' must be a list of {dst, src, mode}");
            goto fail;
        }
        int n = cJSON_GetArraySize(fms);
        if (n > CORE_AGENT_MAX_MOUNTS) {
            *err = core_xasprintf("too many file_mounts (%d > %d)", n, CORE_AGENT_MAX_MOUNTS);
            goto fail;
        }
        s.mounts = core_xcalloc((size_t)n + 1, sizeof(*s.mounts));
        int idx = 0;
        cJSON_ArrayForEach(it, fms)
        {
            const cJSON *src = cJSON_GetObjectItemCaseSensitive(it, "src");
            const cJSON *dst = cJSON_GetObjectItemCaseSensitive(it, "dst");
            const cJSON *mode = cJSON_GetObjectItemCaseSensitive(it, "mode");
            if (!cJSON_IsObject(it) || !cJSON_IsString(src) || !cJSON_IsString(dst)) {
                *err = core_xasprintf("file_mounts[%d] needs string 'src' and 'dst'", idx);
                goto fail;
            }
            if (!abs_path_ok(src->valuestring) || !abs_path_ok(dst->valuestring)) {
                *err =
                    core_xasprintf("file_mounts[%d]: 'src' and 'dst' must be absolute paths", idx);
                goto fail;
            }
            if (strcmp(dst->valuestring, "/") == 0) {
                *err = core_xasprintf("file_mounts[%d]: 'dst' cannot be /", idx);
                goto fail;
            }
            core_agent_mount_mode_t m = CORE_AGENT_COPY;
            if (mode != NULL && !cJSON_IsNull(mode)) {
                if (cJSON_IsString(mode) && strcmp(mode->valuestring, "MOUNT") == 0) {
                    m = CORE_AGENT_MOUNT;
                } else if (!cJSON_IsString(mode) || strcmp(mode->valuestring, "COPY") != 0) {
                    *err = core_xasprintf("file_mounts[%d]: 'mode' must be MOUNT or COPY", idx);
                    goto fail;
                }
            }
            s.mounts[s.n_mounts].src = core_xstrdup(src->valuestring);
            s.mounts[s.n_mounts].dst = core_xstrdup(dst->valuestring);
            s.mounts[s.n_mounts].mode = m;
            s.n_mounts++;
            idx++;
        }
    }
    *out = s;
    return 0;
fail:
    core_agent_req_free(&s);
    return rc;
}

cJSON *core_agent_req_json(const core_agent_req_t *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name ? s->name : "task");
    if (s->setup)
        cJSON_AddStringToObject(o, "setup", s->setup);
    else
        cJSON_AddNullToObject(o, "setup");
    if (s->run)
        cJSON_AddStringToObject(o, "run", s->run);
    else
        cJSON_AddNullToObject(o, "run");
    cJSON *envs = cJSON_AddObjectToObject(o, "envs");
    for (size_t i = 0; i < s->n_envs; i++)
        cJSON_AddStringToObject(envs, s->env_keys[i], s->env_vals[i]);
    if (s->workdir)
        cJSON_AddStringToObject(o, "workdir", s->workdir);
    else
        cJSON_AddNullToObject(o, "workdir");
    cJSON *fms = cJSON_AddArrayToObject(o, "file_mounts");
    for (size_t i = 0; i < s->n_mounts; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "dst", s->mounts[i].dst);
        cJSON_AddStringToObject(m, "src", s->mounts[i].src);
        cJSON_AddStringToObject(m, "mode",
                                s->mounts[i].mode == CORE_AGENT_MOUNT ? "MOUNT" : "COPY");
        cJSON_AddItemToArray(fms, m);
    }
    return o;
}
