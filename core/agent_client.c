#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/ssh_stage.h"
#include "core/tls.h"
#include "core/util.h"

static const char *const status_names[] = {
#define XX(name) #name,
    CORE_AGENT_STATUS_MAP(XX)
#undef XX
};

const char *core_agent_status_name(core_agent_status_t s)
{
    return core_enum_name(status_names, CORE_ARRAY_SIZE(status_names), (int)s, "UNKNOWN");
}

int core_agent_status_parse(const char *s, core_agent_status_t *out)
{
    int v = core_enum_value(status_names, CORE_ARRAY_SIZE(status_names), s);
    if (v < 0)
        return -EINVAL;
    *out = (core_agent_status_t)v;
    return 0;
}

int core_agent_status_is_terminal(core_agent_status_t s)
{
    return s == CORE_AGENT_SUCCEEDED || s == CORE_AGENT_FAILED || s == CORE_AGENT_FAILED_SETUP ||
           s == CORE_AGENT_CANCELLED;
}

void core_agent_task_free(core_agent_task_t *t)
{
    if (t == NULL)
        return;
    free(t->name);
    t->name = NULL;
    free(t->failure_reason);
    t->failure_reason = NULL;
}

static double num_or_zero(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

int core_agent_task_from_json(const cJSON *j, core_agent_task_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(j))
        return CORE_EJSON;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "task_id");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    if (!cJSON_IsNumber(id) || !cJSON_IsString(st))
        return CORE_EJSON;
    if (core_agent_status_parse(st->valuestring, &out->status) < 0)
        return CORE_EJSON;
    out->task_id = id->valueint;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    out->name = core_xstrdup(cJSON_IsString(name) ? name->valuestring : "");
    const cJSON *ec = cJSON_GetObjectItemCaseSensitive(j, "exit_code");
    if (cJSON_IsNumber(ec)) {
        out->has_exit_code = 1;
        out->exit_code = ec->valueint;
    }
    out->submitted_at = num_or_zero(j, "submitted_at");
    out->started_at = num_or_zero(j, "started_at");
    out->ended_at = num_or_zero(j, "ended_at");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(j, "failure_reason");
    if (cJSON_IsString(fr))
        out->failure_reason = core_xstrdup(fr->valuestring);
    return 0;
}

/*
 * How to reach the agent at <ip>. An SSH pool host (recorded by `sky ssh up`
 * as $SKY_HOME/ssh/agents/<ip>, naming its pool) speaks TLS and wants the
 * token derived for it from its pool's (core_host_token); any other (the
 * local cloud's) plain HTTP with <token>.
 * *tok is what to send, *owned what the caller frees.
 */
typedef struct endpoint {
    const char *scheme;
    const char *tok;
    char *owned;
} endpoint_t;

static void resolve(const char *ip, const char *token, endpoint_t *e)
{
    e->scheme = "http";
    e->tok = token;
    e->owned = NULL;
    if (strchr(ip, '/') || ip[0] == '.')
        return;
    char *rel = core_xasprintf("ssh/agents/%s", ip);
    char *path = core_home_path(rel);
    char *pool = NULL;
    size_t len = 0;
    free(rel);
    if (core_read_file(path, 256, &pool, &len) == 0) {
        pool[strcspn(pool, "\n")] = '\0';
        char *trel = core_xasprintf("ssh/pools/%s/token", pool);
        char *tpath = core_home_path(trel);
        char *t = NULL;
        if (core_read_file(tpath, 4096, &t, &len) == 0) {
            t[strcspn(t, "\n")] = '\0';
            e->scheme = "https";
            e->owned = core_xmalloc(65);
            core_host_token(t, ip, e->owned);
            e->tok = e->owned;
            memset(t, 0, strlen(t));
            free(t);
        }
        free(trel);
        free(tpath);
    }
    free(pool);
    free(path);
}

/* IPv6 literals need brackets in URLs. */
static char *agent_url(const endpoint_t *e, const char *ip, int port, const char *path)
{
    if (strchr(ip, ':') != NULL && ip[0] != '[')
        return core_xasprintf("%s://[%s]:%d%s", e->scheme, ip, port, path);
    return core_xasprintf("%s://%s:%d%s", e->scheme, ip, port, path);
}

char *core_agent_url(const char *ip, int port, const char *token, const char *path,
                     char **bearer)
{
    endpoint_t e;
    resolve(ip, token, &e);
    char *url = agent_url(&e, ip, port, path);
    *bearer = e.tok ? core_xstrdup(e.tok) : NULL;
    free(e.owned);
    return url;
}

static int map_status(int rc, long status)
{
    if (rc != CORE_EHTTP)
        return rc;
    switch (status) {
    case 404:
        return CORE_ENOTFOUND;
    case 401:
    case 403:
        return -EACCES;
    case 400:
    case 413:
        return CORE_EINVALREQ;
    default:
        return CORE_EHTTP;
    }
}

static int call(const char *method, const char *ip, int port, const char *token, const char *path,
                const cJSON *req, long timeout_ms, cJSON **resp)
{
    endpoint_t e;
    resolve(ip, token, &e);
    char *url = agent_url(&e, ip, port, path);
    long status = 0;
    cJSON *doc = NULL;
    int rc = core_http_json(method, url, e.tok, req, timeout_ms, &status, &doc);
    free(url);
    free(e.owned);
    rc = map_status(rc, status);
    if (rc < 0 || resp == NULL) {
        cJSON_Delete(doc);
        return rc;
    }
    if (doc == NULL)
        return CORE_EJSON;
    *resp = doc;
    return 0;
}

int core_agent_health(const char *ip, int port, const char *token, long timeout_ms)
{
    cJSON *doc = NULL;
    int rc = call("GET", ip, port, token, "/health", NULL, timeout_ms, &doc);
    if (rc < 0)
        return rc;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(doc, "status");
    rc = cJSON_IsString(st) && strcmp(st->valuestring, "ok") == 0 ? 0 : CORE_EJSON;
    cJSON_Delete(doc);
    return rc;
}

int core_agent_submit(const char *ip, int port, const char *token, const cJSON *task, int *task_id)
{
    cJSON *doc = NULL, *staged = NULL;
    endpoint_t e;
    resolve(ip, token, &e);
    free(e.owned);
    if (!strcmp(e.scheme, "https")) {
        /* A pool host cannot read this machine's paths: bring them there. */
        char *err = NULL;
        int rc = core_ssh_stage_task(ip, port, task, &staged, &err);
        if (rc < 0) {
            CORE_WARN("agent %s:%d: %s", ip, port, err ? err : core_strerror(rc));
            free(err);
            return rc;
        }
        task = staged;
    }
    int rc = call("POST", ip, port, token, "/tasks", task, CORE_AGENT_TIMEOUT_MS, &doc);
    cJSON_Delete(staged);
    if (rc < 0)
        return rc;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "task_id");
    if (cJSON_IsNumber(id)) {
        *task_id = id->valueint;
        rc = 0;
    } else {
        rc = CORE_EJSON;
    }
    cJSON_Delete(doc);
    return rc;
}

int core_agent_task_get(const char *ip, int port, const char *token, int task_id,
                        core_agent_task_t *out)
{
    char path[64];
    snprintf(path, sizeof(path), "/tasks/%d", task_id);
    cJSON *doc = NULL;
    memset(out, 0, sizeof(*out));
    int rc = call("GET", ip, port, token, path, NULL, CORE_AGENT_TIMEOUT_MS, &doc);
    if (rc < 0)
        return rc;
    rc = core_agent_task_from_json(doc, out);
    cJSON_Delete(doc);
    if (rc < 0)
        core_agent_task_free(out);
    return rc;
}

int core_agent_task_list(const char *ip, int port, const char *token, core_agent_task_t **out,
                         size_t *n)
{
    cJSON *doc = NULL;
    core_agent_task_t *arr = NULL;
    size_t cnt = 0;
    *out = NULL;
    *n = 0;
    int rc = call("GET", ip, port, token, "/tasks", NULL, CORE_AGENT_TIMEOUT_MS, &doc);
    if (rc < 0)
        return rc;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(doc, "tasks");
    if (!cJSON_IsArray(tasks)) {
        rc = CORE_EJSON;
        goto fail;
    }
    arr = core_xcalloc((size_t)cJSON_GetArraySize(tasks) + 1, sizeof(*arr));
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks)
    {
        rc = core_agent_task_from_json(t, &arr[cnt]);
        if (rc < 0)
            goto fail;
        cnt++;
    }
    cJSON_Delete(doc);
    *out = arr;
    *n = cnt;
    return 0;
fail:
    for (size_t i = 0; i < cnt; i++)
        core_agent_task_free(&arr[i]);
    free(arr);
    cJSON_Delete(doc);
    return rc;
}

int core_agent_logs(const char *ip, int port, const char *token, int task_id, int follow, int tail,
                    int (*cb)(const char *data, size_t len, void *arg), void *arg)
{
    char path[96];
    if (tail >= 0)
        snprintf(path, sizeof(path), "/tasks/%d/logs?follow=%d&tail=%d", task_id, follow ? 1 : 0,
                 tail);
    else
        snprintf(path, sizeof(path), "/tasks/%d/logs?follow=%d", task_id, follow ? 1 : 0);
    /* Ask first, so that a 404's JSON error never reaches <cb> as log text. */
    core_agent_task_t t;
    int rc = core_agent_task_get(ip, port, token, task_id, &t);
    if (rc < 0)
        return rc;
    core_agent_task_free(&t);
    endpoint_t e;
    resolve(ip, token, &e);
    char *url = agent_url(&e, ip, port, path);
    long status = 0;
    rc = core_http_stream_get(url, e.tok, follow ? 0 : 60000, cb, arg, &status);
    free(url);
    free(e.owned);
    if (rc == 0 && (status < 200 || status >= 300))
        rc = CORE_EHTTP;
    return map_status(rc, status);
}

int core_agent_cancel(const char *ip, int port, const char *token, int task_id)
{
    char path[64];
    snprintf(path, sizeof(path), "/tasks/%d/cancel", task_id);
    return call("POST", ip, port, token, path, NULL, CORE_AGENT_TIMEOUT_MS, NULL);
}

int core_agent_cancel_grace(const char *ip, int port, const char *token, int task_id,
                            double grace_s)
{
    char path[96];
    snprintf(path, sizeof(path), "/tasks/%d/cancel?grace=%.3f", task_id, grace_s > 0 ? grace_s : 0);
    return call("POST", ip, port, token, path, NULL, CORE_AGENT_TIMEOUT_MS, NULL);
}
