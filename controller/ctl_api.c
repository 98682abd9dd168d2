/*
 * The serve controller's HTTP API (docs/serve-api.md) on core_http_server.
 * Bearer-token checks are done by the server (opts.token).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_api.h"
#include "ctl_dash.h"
#include "ctl_serve.h"
#include "ctl_serve_lb.h"
#include "ctl_serve_metrics.h"
#include "ctl_service.h"

#define LOG_MAX_READ (8u << 20) /* one log response never buffers more than this */
#define TAIL_POLL_MS 300

/* ------------------------------------------------------------------ */
/* helpers */

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int status_for(int rc)
{
    switch (rc) {
    case CORE_ENOTFOUND:
        return 404;
    case CORE_ECONFLICT:
        return 409;
    case CORE_ESPEC:
    case CORE_EINFEASIBLE:
    case CORE_EINVALREQ:
        return 400;
    default:
        return 500;
    }
}

/* Last <tail> lines of <buf> (tail < 0: all). */
static const char *tail_start(const char *buf, size_t len, int tail)
{
    const char *p = buf + len;
    int lines = 0;

    if (tail < 0)
        return buf;
    if (tail == 0)
        return buf + len;
    if (len > 0 && p[-1] == '\n')
        p--;
    while (p > buf) {
        if (p[-1] == '\n' && ++lines == tail)
            return p;
        p--;
    }
    return buf;
}

/* ------------------------------------------------------------------ */
/* file logs (controller, load balancer, replica provisioning log) */

typedef struct file_tail {
    uv_timer_t timer;
    core_http_conn_t *conn;
    char *path;
    off_t off;
    int closed;
} file_tail_t;

static void tail_free(uv_handle_t *h)
{
    file_tail_t *ft = h->data;

    free(ft->path);
    free(ft);
}

static void tail_finish(file_tail_t *ft)
{
    uv_timer_stop(&ft->timer);
    core_http_conn_on_close(ft->conn, NULL, NULL);
    core_http_stream_end(ft->conn);
    uv_close((uv_handle_t *)&ft->timer, tail_free);
}

static void tail_poll(uv_timer_t *t)
{
    file_tail_t *ft = t->data;
    char buf[16384];
    int fd;

    if (ft->closed || core_http_conn_is_closed(ft->conn)) {
        tail_finish(ft);
        return;
    }
    /* Backpressure: a slow reader does not make us buffer the file. */
    if (core_http_conn_write_queue(ft->conn) > (1u << 20))
        return;
    fd = open(ft->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < 64; i++) {
        ssize_t n = pread(fd, buf, sizeof(buf), ft->off);
        struct stat st;

        if (n <= 0) {
            /* Truncated or rotated: start over. */
            if (n == 0 && fstat(fd, &st) == 0 && st.st_size < ft->off)
                ft->off = 0;
            break;
        }
        ft->off += n;
        if (core_http_stream_write(ft->conn, buf, (size_t)n) < 0)
            break;
    }
    close(fd);
}

static void tail_on_close(core_http_conn_t *c, void *arg)
{
    file_tail_t *ft = arg;

    (void)c;
    ft->closed = 1;
}

/* Writes the file (its last <tail> lines); with <follow> keeps streaming growth. */
static void stream_file(ctl_serve_t *s, core_http_conn_t *conn, const char *path, int tail,
                        int follow, int begin)
{
    char *text = NULL;
    size_t len = 0;
    file_tail_t *ft;
    struct stat st;
    int rc;

    if (begin)
        core_http_stream_begin(conn, 200, "text/plain; charset=utf-8");
    if (stat(path, &st) == 0 && (size_t)st.st_size > LOG_MAX_READ && tail < 0)
        tail = 10000;
    rc = core_read_file(path, (size_t)(st.st_size > 0 ? st.st_size : 0) + (64u << 20), &text, &len);
    if (rc == 0) {
        const char *p = tail_start(text, len, tail);

        core_http_stream_write(conn, p, len - (size_t)(p - text));
    }
    free(text);
    if (!follow) {
        core_http_stream_end(conn);
        return;
    }
    ft = core_xcalloc(1, sizeof(*ft));
    ft->conn = conn;
    ft->path = core_xstrdup(path);
    ft->off = rc == 0 ? (off_t)len : 0;
    uv_timer_init(s->loop, &ft->timer);
    ft->timer.data = ft;
    core_http_conn_on_close(conn, tail_on_close, ft);
    uv_timer_start(&ft->timer, tail_poll, TAIL_POLL_MS, TAIL_POLL_MS);
}

/* ------------------------------------------------------------------ */
/* replica task logs from the agent (blocking client -> own thread) */

typedef struct agent_log {
    uv_async_t async;
    uv_thread_t thread;
    uv_mutex_t mu;
    core_http_conn_t *conn; /* loop side; NULL once released */
    char *buf;
    size_t len;
    int cancel;
    int done;
    int conn_closed;
    char ip[64];
    int port;
    int task_id;
    int follow;
    int tail;
} agent_log_t;

static int agent_log_cb(const char *data, size_t len, void *arg)
{
    agent_log_t *al = arg;
    int cancel;

    uv_mutex_lock(&al->mu);
    cancel = al->cancel;
    /* Bounded: a reader that stopped reading loses the middle, not our memory. */
    if (!cancel && al->len + len <= LOG_MAX_READ) {
        al->buf = core_xrealloc(al->buf, al->len + len);
        memcpy(al->buf + al->len, data, len);
        al->len += len;
    }
    uv_mutex_unlock(&al->mu);
    uv_async_send(&al->async);
    return cancel;
}

static void agent_log_thread(void *arg)
{
    agent_log_t *al = arg;
    int rc = core_agent_logs(al->ip, al->port, NULL, al->task_id, al->follow, al->tail,
                             agent_log_cb, al);

    uv_mutex_lock(&al->mu);
    if (rc < 0 && !al->cancel) {
        char *m = core_xasprintf("(replica logs unavailable: %s)\n", core_strerror(rc));
        size_t n = strlen(m);

        al->buf = core_xrealloc(al->buf, al->len + n);
        memcpy(al->buf + al->len, m, n);
        al->len += n;
        free(m);
    }
    al->done = 1;
    uv_mutex_unlock(&al->mu);
    uv_async_send(&al->async);
}

static void agent_log_free(uv_handle_t *h)
{
    agent_log_t *al = h->data;

    uv_mutex_destroy(&al->mu);
    free(al->buf);
    free(al);
}

static void agent_log_async(uv_async_t *h)
{
    agent_log_t *al = h->data;
    char *buf;
    size_t len;
    int done, closed;

    uv_mutex_lock(&al->mu);
    buf = al->buf;
    len = al->len;
    al->buf = NULL;
    al->len = 0;
    done = al->done;
    closed = al->conn_closed;
    uv_mutex_unlock(&al->mu);
    if (al->conn && !closed && len)
        core_http_stream_write(al->conn, buf, len);
    free(buf);
    if (al->conn && (closed || done)) {
        core_http_conn_on_close(al->conn, NULL, NULL);
        core_http_stream_end(al->conn);
        al->conn = NULL;
    }
    if (done) {
        uv_thread_join(&al->thread);
        uv_close((uv_handle_t *)&al->async, agent_log_free);
    }
}

static void agent_log_on_close(core_http_conn_t *c, void *arg)
{
    agent_log_t *al = arg;

    (void)c;
    uv_mutex_lock(&al->mu);
    al->conn_closed = 1;
    al->cancel = 1;
    uv_mutex_unlock(&al->mu);
    uv_async_send(&al->async);
}

static void stream_replica(ctl_serve_t *s, core_http_conn_t *conn, ctl_service_t *svc,
                           ctl_replica_t *r, int id, int tail, int follow)
{
    char path[1024];
    agent_log_t *al;
    bool alive = r && r->fr.row.f.launch == CTL_PROC_SUCCEEDED &&
                 r->fr.row.f.down == CTL_PROC_NONE && r->fr.row.agent_task_id > 0 &&
                 r->fr.row.ip[0];

    snprintf(path, sizeof(path), "%s/%s/replica_%d.log", s->serve_dir, svc->row.name, id);
    if (!alive) {
        stream_file(s, conn, path, tail, 0, 1);
        return;
    }
    /* The provisioning log first, then the task's own output from its agent. */
    core_http_stream_begin(conn, 200, "text/plain; charset=utf-8");
    {
        char *text = NULL;
        size_t len = 0;

        if (tail < 0 && core_read_file(path, LOG_MAX_READ, &text, &len) == 0)
            core_http_stream_write(conn, text, len);
        free(text);
    }
    al = core_xcalloc(1, sizeof(*al));
    uv_mutex_init(&al->mu);
    al->conn = conn;
    snprintf(al->ip, sizeof(al->ip), "%s", r->fr.row.ip);
    al->port = r->fr.row.agent_port;
    al->task_id = r->fr.row.agent_task_id;
    al->follow = follow;
    al->tail = tail;
    uv_async_init(s->loop, &al->async, agent_log_async);
    al->async.data = al;
    core_http_conn_on_close(conn, agent_log_on_close, al);
    if (uv_thread_create(&al->thread, agent_log_thread, al) != 0) {
        core_http_conn_on_close(conn, NULL, NULL);
        core_http_stream_end(conn);
        al->conn = NULL;
        uv_close((uv_handle_t *)&al->async, agent_log_free);
    }
}

static void handle_logs(ctl_serve_t *s, core_http_conn_t *conn, const core_http_req_t *req,
                        ctl_service_t *svc)
{
    char target[32] = "controller", v[32];
    int follow = 0, tail = -1, id = -1;
    char *path;

    core_http_query_get(req->query, "target", target, sizeof(target));
    if (core_http_query_get(req->query, "follow", v, sizeof(v)) == 0)
        follow = strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
    if (core_http_query_get(req->query, "tail", v, sizeof(v)) == 0 && v[0])
        tail = atoi(v);
    if (core_http_query_get(req->query, "replica_id", v, sizeof(v)) == 0 && v[0])
        id = atoi(v);
    if (tail >= 0)
        follow = 0; /* --tail forces no-follow, as the reference */
    if (strcmp(target, "controller") == 0) {
        path = ctl_serve_log_path(s, NULL, "controller.log");
    } else if (strcmp(target, "load_balancer") == 0) {
        path = ctl_serve_log_path(s, svc->row.name, "load_balancer.log");
    } else if (strcmp(target, "replica") == 0) {
        ctl_replica_t *r = ctl_service_replica(svc, id);
        char p[1024];

        snprintf(p, sizeof(p), "%s/%s/replica_%d.log", s->serve_dir, svc->row.name, id);
        if (!r && access(p, R_OK) != 0) {
            core_http_respond_error(conn, 404, "Replica %d of service %s does not exist.", id,
                                    svc->row.name);
            return;
        }
        stream_replica(s, conn, svc, r, id, tail, follow);
        return;
    } else {
        core_http_respond_error(conn, 400, "unknown log target '%s'", target);
        return;
    }
    stream_file(s, conn, path, tail, follow, 1);
    free(path);
}

/* ------------------------------------------------------------------ */
/* routes */

/*
 * The task of an up or update request; *envs gets the "envs" object (the
 * CLI's --env overrides) and *over the "overrides" object (the task flags,
 * checked when the task is parsed) as JSON text, or NULL. Answers 400 and
 * returns -EINVAL when the request is malformed.
 */
static int task_src(core_http_conn_t *conn, const cJSON *body, ctl_task_src_t *src, char **envs,
                    char **over)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(body, "envs"), *e;
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(body, "overrides");

    *envs = *over = NULL;
    memset(src, 0, sizeof(*src));
    src->yaml = json_str(body, "yaml");
    src->yaml_path = json_str(body, "yaml_path");
    src->cwd = json_str(body, "cwd");
    if (!src->yaml) {
        core_http_respond_error(conn, 400, "missing \"yaml\"");
        return -EINVAL;
    }
    if (o && !cJSON_IsNull(o)) {
        int ok = cJSON_IsObject(o) && cJSON_GetArraySize(o) <= CTL_MAX_ENVS;

        if (ok)
            cJSON_ArrayForEach(e, o) ok &= cJSON_IsString(e) && e->string[0] != '\0';
        if (!ok) {
            core_http_respond_error(conn, 400, "\"envs\" must be an object of at most %d strings",
                                    CTL_MAX_ENVS);
            return -EINVAL;
        }
        if (cJSON_GetArraySize(o) > 0)
            src->envs = *envs = cJSON_PrintUnformatted(o);
    }
    if (ov && !cJSON_IsNull(ov)) {
        if (!cJSON_IsObject(ov)) {
            core_http_respond_error(conn, 400, "\"overrides\" must be an object");
            free(*envs);
            *envs = NULL;
            return -EINVAL;
        }
        if (cJSON_GetArraySize(ov) > 0)
            src->overrides = *over = cJSON_PrintUnformatted(ov);
    }
    return 0;
}

static void handle_up(ctl_serve_t *s, core_http_conn_t *conn, const cJSON *body)
{
    const char *name = json_str(body, "name");
    ctl_service_t *svc = NULL;
    char *err = NULL, *ep, *repr, *envs, *over;
    ctl_task_src_t src;
    cJSON *out;
    int rc;

    if (task_src(conn, body, &src, &envs, &over) < 0)
        return;
    rc = ctl_serve_up(s, name, &src, &svc, &err);
    free(envs);
    free(over);
    if (rc < 0) {
        core_http_respond_error(conn, status_for(rc), "%s", err ? err : core_strerror(rc));
        free(err);
        return;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "name", svc->row.name);
    ep = ctl_serve_endpoint(s, svc);
    cJSON_AddStringToObject(out, "endpoint", ep);
    free(ep);
    cJSON_AddNumberToObject(out, "lb_port", svc->row.lb_port);
    repr = core_service_repr(ctl_service_latest(svc)->task->service);
    cJSON_AddStringToObject(out, "spec_repr", repr ? repr : "");
    free(repr);
    core_http_respond_json(conn, 200, out);
}

static void handle_list(ctl_serve_t *s, core_http_conn_t *conn, const core_http_req_t *req)
{
    char names[4096];
    int filter = core_http_query_get(req->query, "names", names, sizeof(names)) == 0 && names[0];
    cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "services");

    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        if (svc->deleted)
            continue;
        if (filter) {
            bool hit = false;
            char *copy = core_xstrdup(names), *save = NULL;

            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
                hit |= strcmp(t, svc->row.name) == 0;
            free(copy);
            if (!hit)
                continue;
        }
        cJSON_AddItemToArray(arr, ctl_serve_service_json(s, svc));
    }
    core_http_respond_json(conn, 200, out);
}

static void handle_service_post(ctl_serve_t *s, core_http_conn_t *conn, ctl_service_t *svc,
                                const char *action, const cJSON *body)
{
    char *err = NULL;
    int rc;

    if (strcmp(action, "update") == 0) {
        const char *mode_s = json_str(body, "mode");
        ctl_update_mode_t mode = CTL_UPDATE_ROLLING;
        ctl_task_src_t src;
        int version = 0;
        char *envs, *over;
        cJSON *out;

        if (mode_s && ctl_update_mode_parse(mode_s, &mode) < 0) {
            core_http_respond_error(conn, 400, "unknown update mode '%s' (rolling, blue_green)",
                                    mode_s);
            return;
        }
        if (task_src(conn, body, &src, &envs, &over) < 0)
            return;
        rc = ctl_serve_update(s, svc, &src, mode, &version, &err);
        free(envs);
        free(over);
        if (rc < 0) {
            core_http_respond_error(conn, status_for(rc), "%s", err ? err : core_strerror(rc));
            free(err);
            return;
        }
        out = cJSON_CreateObject();
        cJSON_AddNumberToObject(out, "version", version);
        core_http_respond_json(conn, 200, out);
    } else if (strcmp(action, "down") == 0) {
        const cJSON *purge = cJSON_GetObjectItemCaseSensitive(body, "purge");

        ctl_serve_down(s, svc, cJSON_IsTrue(purge));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stop_when_empty")))
            s->stop_when_empty = true;
        core_http_respond_json(conn, 200, NULL);
    } else if (strcmp(action, "terminate_replica") == 0) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "replica_id");
        const cJSON *purge = cJSON_GetObjectItemCaseSensitive(body, "purge");

        if (!cJSON_IsNumber(id)) {
            core_http_respond_error(conn, 400, "missing \"replica_id\"");
            return;
        }
        rc = ctl_serve_terminate_replica(s, svc, id->valueint, cJSON_IsTrue(purge), &err);
        if (rc < 0) {
            core_http_respond_error(conn, status_for(rc), "%s", err ? err : core_strerror(rc));
            free(err);
            return;
        }
        core_http_respond_json(conn, 200, NULL);
    } else {
        core_http_respond_error(conn, 404, "no such action '%s'", action);
    }
}

static void handle_sync(ctl_serve_t *s, core_http_conn_t *conn, const core_http_req_t *req,
                        const char *name)
{
    cJSON *body = core_http_body_json(req);
    ctl_service_t *svc = NULL;

    if (name) {
        svc = ctl_serve_find(s, name);
    } else {
        const char *n = json_str(body, "service");
        char q[CTL_SVC_NAME_MAX];

        if (!n && core_http_query_get(req->query, "service", q, sizeof(q)) == 0)
            n = q;
        if (n) {
            svc = ctl_serve_find(s, n);
        } else if (s->services && !s->services->next) {
            svc = s->services; /* one service: no ambiguity */
        }
    }
    if (!svc) {
        cJSON_Delete(body);
        core_http_respond_error(conn, 404, "unknown service");
        return;
    }
    core_http_respond_json(conn, 200, ctl_serve_lb_sync(s, svc, body));
    cJSON_Delete(body);
}

void ctl_api_handle(core_http_conn_t *conn, const core_http_req_t *req, void *ud)
{
    ctl_serve_t *s = ud;
    const char *path = req->path;
    int is_get = strcmp(req->method, "GET") == 0, is_post = strcmp(req->method, "POST") == 0;

    if (is_get && strcmp(path, "/health") == 0) {
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "status", "ok");
        cJSON_AddNumberToObject(o, "pid", getpid());
        cJSON_AddStringToObject(o, "mode", "serve");
        core_http_respond_json(conn, 200, o);
        return;
    }
    if (ctl_dash_handle(s, conn, req))
        return;
    if (is_get && strcmp(path, "/metrics") == 0) {
        size_t len;
        char *text = ctl_serve_metrics_render(s, &len);

        core_http_respond(conn, 200, CTL_PROM_CONTENT_TYPE, text, len);
        free(text);
        return;
    }
    if (is_get && strcmp(path, "/api/controller") == 0) {
        char since[32];
        double n = 0;

        if (core_http_query_get(req->query, "since", since, sizeof(since)) == 0 &&
            core_parse_num(since, 0, 1e18, &n) < 0) {
            core_http_respond_error(conn, 400, "since: expected a tick number");
            return;
        }
        core_http_respond_json(conn, 200, ctl_serve_stats_json(s, (unsigned long long)n));
        return;
    }
    if (strcmp(path, "/api/services") == 0) {
        if (is_get) {
            handle_list(s, conn, req);
        } else if (is_post) {
            cJSON *body = core_http_body_json(req);

            if (!body) {
                core_http_respond_error(conn, 400, "the body must be a JSON object");
                return;
            }
            handle_up(s, conn, body);
            cJSON_Delete(body);
        } else {
            core_http_respond_error(conn, 405, "method not allowed");
        }
        return;
    }
    if (strncmp(path, "/api/services/", 14) == 0) {
        char name[CTL_SVC_NAME_MAX];
        const char *rest = path + 14, *slash = strchr(rest, '/');
        ctl_service_t *svc;

        if (!slash || (size_t)(slash - rest) >= sizeof(name)) {
            core_http_respond_error(conn, 404, "not found");
            return;
        }
        memcpy(name, rest, (size_t)(slash - rest));
        name[slash - rest] = '\0';
        svc = ctl_serve_find(s, name);
        if (!svc) {
            core_http_respond_error(conn, 404, "Service %s does not exist.", name);
            return;
        }
        if (is_get && strcmp(slash + 1, "logs") == 0) {
            handle_logs(s, conn, req, svc);
        } else if (is_post) {
            cJSON *body = core_http_body_json(req);

            if (!body && req->body_len > 0) {
                core_http_respond_error(conn, 400, "the body must be a JSON object");
                return;
            }
            if (!body)
                body = cJSON_CreateObject();
            handle_service_post(s, conn, svc, slash + 1, body);
            cJSON_Delete(body);
        } else {
            core_http_respond_error(conn, 404, "not found");
        }
        return;
    }
    if (is_post && strcmp(path, "/controller/load_balancer_sync") == 0) {
        handle_sync(s, conn, req, NULL);
        return;
    }
    if (is_post && strncmp(path, "/lb/", 4) == 0) {
        char name[CTL_SVC_NAME_MAX];
        const char *rest = path + 4, *slash = strchr(rest, '/');

        if (slash && (size_t)(slash - rest) < sizeof(name) &&
            strcmp(slash, "/controller/load_balancer_sync") == 0) {
            memcpy(name, rest, (size_t)(slash - rest));
            name[slash - rest] = '\0';
            handle_sync(s, conn, req, name);
            return;
        }
    }
    if (is_get && strcmp(path, "/autoscaler/info") == 0) {
        char name[CTL_SVC_NAME_MAX] = "";
        ctl_service_t *svc;
        cJSON *o;

        core_http_query_get(req->query, "name", name, sizeof(name));
        svc = ctl_serve_find(s, name);
        if (!svc || !svc->fleet.scaler_ok) {
            core_http_respond_error(conn, 404, "Service %s does not exist.", name);
            return;
        }
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "target_num_replicas", svc->fleet.scaler.st.target);
        cJSON_AddNumberToObject(o, "final_target_num_replicas",
                                ctl_scaler_final_target(&svc->fleet.scaler));
        cJSON_AddNumberToObject(o, "min_replicas", svc->fleet.scaler.spec.min_replicas);
        cJSON_AddNumberToObject(o, "max_replicas",
                                svc->fleet.scaler.spec.max_replicas < 0
                                    ? svc->fleet.scaler.spec.min_replicas
                                    : svc->fleet.scaler.spec.max_replicas);
        cJSON_AddNumberToObject(o, "latest_version", svc->fleet.scaler.st.latest_version);
        cJSON_AddNumberToObject(o, "upscale_counter", svc->fleet.scaler.st.upscale_counter);
        cJSON_AddNumberToObject(o, "downscale_counter", svc->fleet.scaler.st.downscale_counter);
        cJSON_AddNumberToObject(o, "qps", ctl_scaler_qps(&svc->fleet.scaler, core_now()));
        core_http_respond_json(conn, 200, o);
        return;
    }
    core_http_respond_error(conn, 404, "not found");
}
