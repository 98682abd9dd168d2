#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "core/err.h"
#include "core/mem.h"

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
                       const core_agent_req_t *spec)
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
