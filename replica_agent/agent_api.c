#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

/*
 * Routes (see include/core/agent.h for the bodies):
 *   GET /health, POST /tasks, GET /tasks, GET /tasks/N, GET /tasks/N/logs,
 *   POST /tasks/N/cancel[?grace=S]   SIGTERM, SIGKILL S seconds later (default 3)
 *   GET /notice, GET /latest/meta-data/spot/instance-action
 *                                    the cloud's preemption notice, as EC2's metadata
 *                                    server gives it: 404 without one
 */

/* Strict decimal id in [1, 1e9]; -1 otherwise. <end> receives the rest. */
static int parse_id(const char *s, const char **end)
{
    long v = 0;
    const char *p = s;
    if (*p < '1' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000000L)
            return -1;
        p++;
    }
    *end = p;
    return (int)v;
}

static int query_flag(const char *query, const char *key, int *out)
{
    char v[16];
    int rc = core_http_query_get(query, key, v, sizeof(v));
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return -EINVAL;
    if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "") == 0)
        *out = 1;
    else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        *out = 0;
    else
        return -EINVAL;
    return 0;
}

static int query_long(const char *query, const char *key, long *out)
{
    char v[24];
    int rc = core_http_query_get(query, key, v, sizeof(v));
    if (rc == -ENOENT)
        return 0;
    if (rc < 0 || v[0] == '\0')
        return -EINVAL;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < -1)
        return -EINVAL;
    *out = n;
    return 0;
}

static void handle_health(agent_t *a, core_http_conn_t *c)
{
    int n = 0;
    for (int i = 0; i < a->n_tasks; i++)
        n += a->tasks[i] != NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "tasks", n);
    cJSON_AddNumberToObject(o, "running", a->active != NULL ? 1 : 0);
    core_http_respond_json(c, 200, o);
}

static void handle_submit(agent_t *a, core_http_conn_t *c, const core_http_req_t *req)
{
    cJSON *doc = core_http_body_json(req);
    if (doc == NULL) {
        core_http_respond_error(c, 400, "the body must be a JSON object");
        return;
    }
    core_agent_req_t spec;
    char *err = NULL;
    int rc = core_agent_req_parse(doc, &spec, &err);
    cJSON_Delete(doc);
    if (rc < 0) {
        core_http_respond_error(c, 400, "invalid task: %s", err ? err : "malformed");
        free(err);
        return;
    }
    int id = 0;
    rc = agent_task_submit(a, &spec, &id);
    core_agent_req_free(&spec);
    if (rc < 0) {
        core_http_respond_error(c, 500, "cannot store the task: %s", core_strerror(rc));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "task_id", id);
    core_http_respond_json(c, 200, o);
}

static void handle_list(agent_t *a, core_http_conn_t *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "tasks");
    for (int i = 0; i < a->n_tasks; i++) {
        if (a->tasks[i] != NULL)
            cJSON_AddItemToArray(arr, agent_task_to_json(a->tasks[i]));
    }
    core_http_respond_json(c, 200, o);
}

static void handle_cancel(agent_t *a, core_http_conn_t *c, const core_http_req_t *req,
                          agent_task_t *t)
{
    int cancelled = 0;
    char v[32];
    double grace = -1;
    if (core_http_query_get(req->query, "grace", v, sizeof(v)) == 0 &&
        core_parse_num(v, 0, 86400, &grace) < 0) {
        core_http_respond_error(c, 400, "grace must be 0 to 86400 seconds");
        return;
    }
    agent_task_cancel(a, t, grace < 0 ? -1 : (long)(grace * 1000), &cancelled);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "task_id", t->id);
    cJSON_AddBoolToObject(o, "cancelled", cancelled);
    cJSON_AddStringToObject(o, "status", core_agent_status_name(t->status));
    core_http_respond_json(c, 200, o);
}

/*
 * The instance's preemption notice, which the cloud writes to the metadata
 * folder (sky-localcloud: <instance>/metadata/instance-action). As EC2's
 * http://169.254.169.254/latest/meta-data/spot/instance-action: 404 until a
 * notice is given, then {"action": "terminate", "time": ISO 8601 UTC}; we add
 * "deadline" (epoch seconds) and "seconds_left".
 */
static void handle_notice(agent_t *a, core_http_conn_t *c)
{
    char *path = NULL, *text = NULL;
    cJSON *o = NULL;

    if (a->metadata_dir)
        path = core_xasprintf("%s/instance-action", a->metadata_dir);
    if (path && core_read_file(path, 4096, &text, NULL) == 0)
        o = cJSON_Parse(text);
    free(path);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        core_http_respond_error(c, 404, "no preemption notice");
        return;
    }
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(o, "deadline");
    if (cJSON_IsNumber(dl)) {
        double left = dl->valuedouble - core_now();
        cJSON_AddNumberToObject(o, "seconds_left", left > 0 ? left : 0);
    }
    core_http_respond_json(c, 200, o);
}

static void handle_logs(agent_t *a, core_http_conn_t *c, const core_http_req_t *req,
                        agent_task_t *t)
{
    int follow = 0;
    long tail = -1;
    if (query_flag(req->query, "follow", &follow) < 0 ||
        query_long(req->query, "tail", &tail) < 0) {
        core_http_respond_error(c, 400, "follow must be 0|1 and tail an integer >= -1");
        return;
    }
    agent_logs_serve(a, c, t, follow, tail);
}

void agent_api_handle(core_http_conn_t *c, const core_http_req_t *req, void *ud)
{
    agent_t *a = ud;
    const char *path = req->path;
    int get = strcmp(req->method, "GET") == 0;
    int post = strcmp(req->method, "POST") == 0;

    if (a->stopping) {
        core_http_respond_error(c, 503, "sky-agent is shutting down");
        return;
    }
    if (strcmp(path, "/health") == 0) {
        if (!get)
            goto method;
        handle_health(a, c);
        return;
    }
    if (strcmp(path, "/notice") == 0 ||
        strcmp(path, "/latest/meta-data/spot/instance-action") == 0) {
        if (!get)
            goto method;
        handle_notice(a, c);
        return;
    }
    if (strcmp(path, "/tasks") == 0 || strcmp(path, "/tasks/") == 0) {
        if (post)
            handle_submit(a, c, req);
        else if (get)
            handle_list(a, c);
        else
            goto method;
        return;
    }
    if (strncmp(path, "/tasks/", 7) == 0) {
        const char *rest = NULL;
        int id = parse_id(path + 7, &rest);
        if (id < 0 || (*rest != '\0' && *rest != '/')) {
            core_http_respond_error(c, 404, "no such path: %s", path);
            return;
        }
        agent_task_t *t = agent_task_find(a, id);
        if (strcmp(rest, "") == 0 || strcmp(rest, "/") == 0) {
            if (!get)
                goto method;
        } else if (strcmp(rest, "/logs") == 0) {
            if (!get)
                goto method;
        } else if (strcmp(rest, "/cancel") == 0) {
            if (!post)
                goto method;
        } else {
            core_http_respond_error(c, 404, "no such path: %s", path);
            return;
        }
        if (t == NULL) {
            core_http_respond_error(c, 404, "task %d not found", id);
            return;
        }
        if (strcmp(rest, "/logs") == 0)
            handle_logs(a, c, req, t);
        else if (strcmp(rest, "/cancel") == 0)
            handle_cancel(a, c, req, t);
        else
            core_http_respond_json(c, 200, agent_task_to_json(t));
        return;
    }
    core_http_respond_error(c, 404, "no such path: %s", path);
    return;
method:
    core_http_respond_error(c, 405, "method %s not allowed on %s", req->method, path);
}
