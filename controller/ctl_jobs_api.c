/*
 * The jobs controller's HTTP API (routes in ctl_jobs.h): submissions, the
 * queue, cancels, and the jobs' logs streamed from their files.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/catalog.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/util.h"
#include "ctl_jobs_api.h"
#include "ctl_jobs_logs.h"
#include "ctl_jobs_metrics.h"
#include "ctl_jobs_run.h"
#include "ctl_jobs_store.h"

static cJSON *time_or_null(double v)
{
    return v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

cJSON *ctl_jobs_job_json(const ctl_job_row_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "job_id", (double)r->id);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "status", ctl_job_status_name(r->t.status));
    cJSON_AddStringToObject(o, "resources", r->resources ? r->resources : "-");
    cJSON_AddItemToObject(o, "submitted_at", time_or_null(r->t.submitted_at));
    cJSON_AddItemToObject(o, "start_at", time_or_null(r->t.start_at));
    cJSON_AddItemToObject(o, "end_at", time_or_null(r->t.end_at));
    ctl_job_display_t d;
    ctl_job_times_t t = r->t;
    /* A recovery waiting in PENDING (launch backoff) shows the banked running time, as
     * RECOVERING does: nothing runs meanwhile. */
    if (t.status == CTL_JOB_PENDING && t.start_at >= 0)
        t.status = CTL_JOB_RECOVERING;
    ctl_job_display(&t, core_now(), &d);
    cJSON_AddNumberToObject(o, "job_duration", d.job_duration);
    cJSON_AddBoolToObject(o, "job_duration_dash", d.job_duration_dash);
    cJSON_AddNumberToObject(o, "total_duration", d.total_duration);
    cJSON_AddBoolToObject(o, "total_dash", d.total_dash);
    cJSON_AddNumberToObject(o, "recovery_count", r->t.recovery_count);
    cJSON_AddNumberToObject(o, "restart_count", r->restart_count);
    if (r->failure_reason)
        cJSON_AddStringToObject(o, "failure_reason", r->failure_reason);
    else
        cJSON_AddNullToObject(o, "failure_reason");
    cJSON_AddStringToObject(o, "run_id", r->run_id);
    if (r->user)
        cJSON_AddStringToObject(o, "user", r->user);
    else
        cJSON_AddNullToObject(o, "user");
    /* Between instances (recovering, ended): where it ran last. */
    const char *cloud = r->inst.id[0] ? r->inst.cloud : r->prev.cloud;
    const char *region = r->inst.id[0] ? r->inst.region : r->prev.region;
    const char *zone = r->inst.id[0] ? r->inst.zone : r->prev.zone;
    cJSON_AddStringToObject(o, "cloud", cloud);
    cJSON_AddStringToObject(o, "region", region);
    cJSON_AddStringToObject(o, "zone", zone);
    cJSON_AddStringToObject(o, "instance_id", r->inst.id);
    return o;
}

static void api_list(ctl_jobs_t *d, core_http_conn_t *c, const core_http_req_t *req)
{
    char v[8];
    int all = core_http_query_get(req->query, "all", v, sizeof(v)) == 0 && strcmp(v, "0") != 0;
    ctl_job_row_t *rows = NULL;
    size_t n = 0;
    if (ctl_jobs_store_list(d->store, &rows, &n) < 0) {
        core_http_respond_error(c, 500, "database: %s", sqlite3_errmsg(core_store_db(d->store)));
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "jobs");
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        /* Without --all: every unfinished job plus the latest 50. */
        if (all || !ctl_job_status_is_terminal(rows[i].t.status) || shown < 50) {
            cJSON_AddItemToArray(arr, ctl_jobs_job_json(&rows[i]));
            shown++;
        }
        ctl_job_row_free(&rows[i]);
    }
    free(rows);
    core_http_respond_json(c, 200, doc);
}

static void api_submit(ctl_jobs_t *d, core_http_conn_t *c, const core_http_req_t *req)
{
    cJSON *body = core_http_body_json(req);
    const cJSON *yaml = cJSON_GetObjectItem(body, "yaml");
    const cJSON *path = cJSON_GetObjectItem(body, "yaml_path");
    const cJSON *cwd = cJSON_GetObjectItem(body, "cwd");
    const cJSON *name = cJSON_GetObjectItem(body, "name");
    const cJSON *envs = cJSON_GetObjectItem(body, "envs");
    const cJSON *over = cJSON_GetObjectItem(body, "overrides");
    const cJSON *user = cJSON_GetObjectItem(body, "user");
    if (!cJSON_IsString(yaml)) {
        cJSON_Delete(body);
        core_http_respond_error(c, 400, "missing \"yaml\"");
        return;
    }
    const char *fname = cJSON_IsString(path) ? path->valuestring : "<yaml>";
    core_task_t *t = NULL;
    char *err = NULL;
    core_catalog_t *cat = NULL;
    core_candidate_t *cands = NULL;
    size_t n = 0;
    if (core_task_parse_with(yaml->valuestring, strlen(yaml->valuestring), fname, envs, over, &t,
                             &err) < 0)
        goto bad;
    if (core_task_validate_job(t, &err) < 0)
        goto bad;
    if (core_catalog_load(NULL, &cat, &err) < 0 ||
        core_catalog_resolve(cat, &t->resources, &cands, &n, &err) < 0)
        goto bad;
    const char *jname = cJSON_IsString(name) && *name->valuestring ? name->valuestring
                        : t->name                                  ? t->name
                                                                   : "sky-job";
    /* RESOURCES as the reference's queue shows the request: 1x [V100:1][Spot]. */
    char res[96];
    const core_resources_t *rs = &t->resources;
    int spot = core_task_uses_spot(t);
    if (rs->accelerator)
        snprintf(res, sizeof(res), "1x [%s:%d]%s", rs->accelerator, rs->accelerator_count,
                 spot ? "[Spot]" : "");
    else
        snprintf(res, sizeof(res), "1x [CPU:%g%s]%s", cands[0].vcpus, rs->cpus_plus ? "+" : "",
                 spot ? "[Spot]" : "");
    /* Stored next to the YAML, so that every (re)start rebuilds the same task. */
    char *envs_text = envs ? cJSON_PrintUnformatted(envs) : NULL;
    char *over_text = over ? cJSON_PrintUnformatted(over) : NULL;
    ctl_job_new_t nj = {.name = jname,
                        .yaml = yaml->valuestring,
                        .yaml_path = cJSON_IsString(path) ? path->valuestring : NULL,
                        .cwd = cJSON_IsString(cwd) ? cwd->valuestring : NULL,
                        .envs = envs_text,
                        .resources = res,
                        .overrides = over_text,
                        .user = cJSON_IsString(user) ? user->valuestring : NULL};
    long id = 0;
    char run_id[256];
    int rc = ctl_jobs_store_add(d->store, &nj, &id, run_id, sizeof(run_id));
    cJSON_free(envs_text);
    cJSON_free(over_text);
    if (rc < 0) {
        err = core_xasprintf("database: %s", sqlite3_errmsg(core_store_db(d->store)));
        goto fail500;
    }
    ctl_jobs_run_start(d, id);
    CORE_INFO("job %ld (%s) submitted", id, jname);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "job_id", (double)id);
    cJSON_AddStringToObject(doc, "name", jname);
    cJSON_AddStringToObject(doc, "run_id", run_id);
    core_http_respond_json(c, 200, doc);
    goto out;
bad:
    core_http_respond_error(c, 400, "%s", err ? err : "invalid task");
    goto out;
fail500:
    core_http_respond_error(c, 500, "%s", err);
out:
    free(err);
    free(cands);
    core_catalog_free(cat);
    core_task_free(t);
    cJSON_Delete(body);
}

static void api_cancel(ctl_jobs_t *d, core_http_conn_t *c, long id)
{
    ctl_job_row_t r;
    if (ctl_jobs_store_get(d->store, id, &r) < 0) {
        core_http_respond_error(c, 404, "job %ld not found", id);
        return;
    }
    ctl_job_status_t st = r.t.status;
    ctl_job_row_free(&r);
    if (ctl_job_status_is_terminal(st)) {
        core_http_respond_error(c, 409, "job %ld already ended (%s)", id, ctl_job_status_name(st));
        return;
    }
    if (ctl_jobs_store_request_cancel(d->store, id) < 0) {
        core_http_respond_error(c, 500, "database: %s", sqlite3_errmsg(core_store_db(d->store)));
        return;
    }
    ctl_jobs_run_cancel(d, id);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "job_id", (double)id);
    cJSON_AddStringToObject(doc, "status", "CANCELLING");
    core_http_respond_json(c, 200, doc);
}

/*
 * Log streaming: a timer per request reads the job's log files from where it
 * left off and writes what is new, moving to the next attempt's file when
 * one appears, until the job has ended and everything was sent.
 */
typedef struct logstream {
    ctl_jobs_t *d;
    core_http_conn_t *conn;
    uv_timer_t timer;
    long job;
    int controller; /* controller.log instead of run-N.log */
    int follow;
    int attempt;
    long long off;
} logstream_t;

static void on_ls_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ls_end(logstream_t *ls)
{
    uv_timer_stop(&ls->timer);
    core_http_stream_end(ls->conn);
    uv_close((uv_handle_t *)&ls->timer, on_ls_closed);
}

/* Sends up to 256 KiB of file <p> from ls->off. Returns bytes sent, or -1. */
static long long ls_pump_file(logstream_t *ls, const char *p)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    char buf[65536];
    long long sent = 0;
    while (sent < (256 << 10) && core_http_conn_write_queue(ls->conn) < (1u << 20)) {
        ssize_t n = pread(fd, buf, sizeof(buf), ls->off);
        if (n <= 0)
            break;
        if (core_http_stream_write(ls->conn, buf, (size_t)n) < 0) {
            close(fd);
            return -1;
        }
        ls->off += n;
        sent += n;
    }
    close(fd);
    return sent;
}

static void on_ls_tick(uv_timer_t *t)
{
    logstream_t *ls = t->data;
    if (core_http_conn_is_closed(ls->conn)) {
        ls_end(ls);
        return;
    }
    long long sent;
    for (;;) {
        char name[32];
        if (ls->controller)
            snprintf(name, sizeof(name), "controller.log");
        else
            snprintf(name, sizeof(name), "run-%d.log", ls->attempt);
        char *p = ctl_jobs_path(ls->d->jobs_dir, ls->job, name);
        sent = ls_pump_file(ls, p);
        free(p);
        if (sent < 0) {
            ls_end(ls);
            return;
        }
        if (sent > 0 || ls->controller)
            break;
        /* Nothing new here: has a later attempt started? */
        char next[32];
        snprintf(next, sizeof(next), "run-%d.log", ls->attempt + 1);
        char *np = ctl_jobs_path(ls->d->jobs_dir, ls->job, next);
        int exists = access(np, F_OK) == 0;
        free(np);
        if (!exists)
            break;
        ls->attempt++;
        ls->off = 0;
    }
    if (sent > 0)
        return;
    ctl_job_row_t r;
    memset(&r, 0, sizeof(r));
    int ended = ctl_jobs_store_get(ls->d->store, ls->job, &r) < 0 ||
                ctl_job_status_is_terminal(r.t.status);
    ctl_job_row_free(&r);
    /* One more pass happened above after the end; once the job's state machine is
     * gone too, the job's logs are complete. */
    if (!ls->follow || (ended && !ctl_jobs_run_active(ls->d, ls->job)))
        ls_end(ls);
}

/* Positions <ls> at byte <offset> of the attempts' logs laid end to end. */
static void ls_seek(logstream_t *ls, long long offset)
{
    if (ls->controller) {
        ls->off = offset;
        return;
    }
    for (;;) {
        char name[32];
        snprintf(name, sizeof(name), "run-%d.log", ls->attempt);
        char *p = ctl_jobs_path(ls->d->jobs_dir, ls->job, name);
        struct stat st;
        long long size = stat(p, &st) == 0 ? (long long)st.st_size : -1;
        free(p);
        snprintf(name, sizeof(name), "run-%d.log", ls->attempt + 1);
        p = ctl_jobs_path(ls->d->jobs_dir, ls->job, name);
        int next = access(p, F_OK) == 0;
        free(p);
        if (size >= 0 && offset >= size && next) {
            offset -= size;
            ls->attempt++;
            continue;
        }
        ls->off = offset;
        return;
    }
}

static void api_logs(ctl_jobs_t *d, core_http_conn_t *c, const core_http_req_t *req, long id,
                     int controller)
{
    ctl_job_row_t r;
    if (ctl_jobs_store_get(d->store, id, &r) < 0) {
        core_http_respond_error(c, 404, "job %ld not found", id);
        return;
    }
    ctl_job_row_free(&r);
    char v[8];
    logstream_t *ls = core_xcalloc(1, sizeof(*ls));
    ls->d = d;
    ls->conn = c;
    ls->job = id;
    ls->controller = controller;
    ls->attempt = 1;
    ls->follow =
        !(core_http_query_get(req->query, "follow", v, sizeof(v)) == 0 && strcmp(v, "0") == 0);
    /* offset=N resumes a stream a client lost (a daemon restart) at byte N of the
     * concatenated attempts, so nothing is shown twice. */
    char ov[32];
    long long offset = 0;
    if (core_http_query_get(req->query, "offset", ov, sizeof(ov)) == 0) {
        char *end = NULL;
        offset = strtoll(ov, &end, 10);
        if (*ov == '\0' || *end != '\0' || offset < 0)
            offset = 0;
    }
    ls_seek(ls, offset);
    uv_timer_init(d->loop, &ls->timer);
    ls->timer.data = ls;
    core_http_stream_begin(c, 200, "text/plain; charset=utf-8");
    uv_timer_start(&ls->timer, on_ls_tick, 0, 200);
}

void ctl_jobs_api_handle(core_http_conn_t *c, const core_http_req_t *req, void *ud)
{
    ctl_jobs_t *d = ud;
    const char *p = req->path;
    if (strcmp(p, "/health") == 0) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "status", "ok");
        cJSON_AddNumberToObject(doc, "pid", getpid());
        core_http_respond_json(c, 200, doc);
        return;
    }
    if (strcmp(p, "/metrics") == 0 && strcmp(req->method, "GET") == 0) {
        size_t len;
        char *text = ctl_jobs_metrics_render(d, &len);

        if (!text) {
            core_http_respond_error(c, 500, "database: %s",
                                    sqlite3_errmsg(core_store_db(d->store)));
            return;
        }
        core_http_respond(c, 200, CTL_PROM_CONTENT_TYPE, text, len);
        free(text);
        return;
    }
    if (strcmp(p, "/api/jobs") == 0) {
        if (strcmp(req->method, "GET") == 0)
            api_list(d, c, req);
        else if (strcmp(req->method, "POST") == 0)
            api_submit(d, c, req);
        else
            core_http_respond_error(c, 405, "method not allowed");
        return;
    }
    long id = 0;
    int off = 0;
    if (sscanf(p, "/api/jobs/%ld%n", &id, &off) == 1 && id > 0) {
        const char *rest = p + off;
        if (*rest == '\0' && strcmp(req->method, "GET") == 0) {
            ctl_job_row_t r;
            if (ctl_jobs_store_get(d->store, id, &r) < 0) {
                core_http_respond_error(c, 404, "job %ld not found", id);
                return;
            }
            core_http_respond_json(c, 200, ctl_jobs_job_json(&r));
            ctl_job_row_free(&r);
            return;
        }
        if (strcmp(rest, "/cancel") == 0 && strcmp(req->method, "POST") == 0) {
            api_cancel(d, c, id);
            return;
        }
        if (strcmp(rest, "/logs") == 0 || strcmp(rest, "/controller_log") == 0) {
            api_logs(d, c, req, id, strcmp(rest, "/controller_log") == 0);
            return;
        }
    }
    core_http_respond_error(c, 404, "no route for %s %s", req->method, p);
}
