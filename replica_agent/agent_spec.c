#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "core/err.h"
#include "core/mem.h"

void agent_spec_free(agent_spec_t *s)
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

int agent_env_key_valid(const char *k)
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
    return p != NULL && p[0] == '/' && strlen(p) < AGENT_MAX_PATH;
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

int agent_spec_parse(const cJSON *doc, agent_spec_t *out, char **err)
{
    static const char *const known[] = {"name", "setup", "run", "envs", "workdir", "file_mounts"};
    agent_spec_t s = {0};
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
    if (strlen(s.name) > AGENT_MAX_NAME) {
        *err = core_xasprintf("'name' is longer than %d bytes", AGENT_MAX_NAME);
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
        if (n > AGENT_MAX_ENVS) {
            *err = core_xasprintf("too many envs (%d > %d)", n, AGENT_MAX_ENVS);
            goto fail;
        }
        s.env_keys = core_xcalloc((size_t)n + 1, sizeof(char *));
        s.env_vals = core_xcalloc((size_t)n + 1, sizeof(char *));
        cJSON_ArrayForEach(it, envs)
        {
            if (!agent_env_key_valid(it->string)) {
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
        if (n > AGENT_MAX_MOUNTS) {
            *err = core_xasprintf("too many file_mounts (%d > %d)", n, AGENT_MAX_MOUNTS);
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
            agent_mount_mode_t m = AGENT_MOUNT_COPY;
            if (mode != NULL && !cJSON_IsNull(mode)) {
                if (cJSON_IsString(mode) && strcmp(mode->valuestring, "MOUNT") == 0) {
                    m = AGENT_MOUNT_MOUNT;
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
    agent_spec_free(&s);
    return rc;
}

cJSON *agent_spec_to_json(const agent_spec_t *s)
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
                                s->mounts[i].mode == AGENT_MOUNT_MOUNT ? "MOUNT" : "COPY");
        cJSON_AddItemToArray(fms, m);
    }
    return o;
}

/* Env list under construction: "K=V" strings, replaced in place by key. */
typedef struct envb {
    char **v;
    size_t n, cap;
} envb_t;

static void envb_set(envb_t *b, const char *key, size_t klen, const char *kv)
{
    for (size_t i = 0; i < b->n; i++) {
        if (strncmp(b->v[i], key, klen) == 0 && b->v[i][klen] == '=') {
            free(b->v[i]);
            b->v[i] = core_xstrdup(kv);
            return;
        }
    }
    if (b->n + 2 > b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = core_xrealloc(b->v, b->cap * sizeof(char *));
    }
    b->v[b->n++] = core_xstrdup(kv);
    b->v[b->n] = NULL;
}

static void envb_put(envb_t *b, const char *key, const char *val)
{
    char *kv = core_xasprintf("%s=%s", key, val);
    envb_set(b, key, strlen(key), kv);
    free(kv);
}

char **agent_env_build(char *const *base, const char *home, const char *node_ip, int setup,
                       const agent_spec_t *spec)
{
    envb_t b = {0};
    for (size_t i = 0; base != NULL && base[i] != NULL; i++) {
        const char *eq = strchr(base[i], '=');
        if (eq == NULL || eq == base[i])
            continue;
        envb_set(&b, base[i], (size_t)(eq - base[i]), base[i]);
    }
    envb_put(&b, "HOME", home);
    const char *ip = node_ip != NULL ? node_ip : "127.0.0.1";
    /* A single-node "cluster": what the skylet job runner exports per node. */
    if (setup) {
        envb_put(&b, "SKYPILOT_SETUP_NODE_RANK", "0");
        envb_put(&b, "SKYPILOT_SETUP_NODE_IPS", ip);
        envb_put(&b, "SKYPILOT_SETUP_NUM_GPUS_PER_NODE", "0");
    }
    envb_put(&b, "SKYPILOT_NODE_RANK", "0");
    envb_put(&b, "SKYPILOT_NODE_IPS", ip);
    envb_put(&b, "SKYPILOT_NUM_NODES", "1");
    envb_put(&b, "SKYPILOT_NUM_GPUS_PER_NODE", "0");
    for (size_t i = 0; spec != NULL && i < spec->n_envs; i++)
        envb_put(&b, spec->env_keys[i], spec->env_vals[i]);
    if (b.v == NULL)
        b.v = core_xcalloc(1, sizeof(char *));
    return b.v;
}

void agent_env_free(char **env)
{
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

const char *agent_env_get(char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
            return env[i] + kl + 1;
    }
    return NULL;
}

/*
 * PENDING -> SETTING_UP -> RUNNING -> SUCCEEDED | FAILED, with FAILED_SETUP
 * out of SETTING_UP, CANCELLED out of any live state, and FAILED out of any
 * live state for a task the agent lost (restart). Terminal states are final.
 */
int agent_status_transition_ok(core_agent_status_t from, core_agent_status_t to)
{
    if ((int)from < 0 || from >= CORE_AGENT_STATUS_COUNT || (int)to < 0 ||
        to >= CORE_AGENT_STATUS_COUNT)
        return 0;
    if (core_agent_status_is_terminal(from))
        return 0;
    switch (to) {
    case CORE_AGENT_PENDING:
        return 0;
    case CORE_AGENT_SETTING_UP:
        return from == CORE_AGENT_PENDING;
    case CORE_AGENT_RUNNING:
        return from == CORE_AGENT_SETTING_UP;
    case CORE_AGENT_SUCCEEDED:
        return from == CORE_AGENT_RUNNING;
    case CORE_AGENT_FAILED_SETUP:
        return from == CORE_AGENT_SETTING_UP;
    case CORE_AGENT_FAILED:
    case CORE_AGENT_CANCELLED:
        return 1;
    default:
        return 0;
    }
}

int agent_tail_offset(int fd, off_t size, long *lines, off_t *out)
{
    char buf[65536];
    off_t end = size;
    int skip_last_nl = 1;
    *out = 0;
    if (*lines <= 0) {
        *out = size;
        return 0;
    }
    while (end > 0) {
        off_t start = end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
        size_t want = (size_t)(end - start);
        ssize_t got = pread(fd, buf, want, start);
        if (got < 0)
            return -errno;
        if ((size_t)got != want)
            return -EIO;
        for (ssize_t i = got - 1; i >= 0; i--) {
            if (buf[i] != '\n')
                continue;
            /* The newline ending the file closes the last line, it does not start one. */
            if (skip_last_nl && start + i == size - 1) {
                skip_last_nl = 0;
                continue;
            }
            skip_last_nl = 0;
            if (--*lines == 0) {
                *out = start + i + 1;
                return 0;
            }
        }
        skip_last_nl = 0;
        end = start;
    }
    /* Reached the start: the first line counts too. */
    if (size > 0)
        (*lines)--;
    *out = 0;
    return 0;
}
