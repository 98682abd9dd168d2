/*
 * The serve controller's dashboard (ctl_dash.h): its static files, the
 * history behind its chart, and the JSON it polls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/util.h"
#include "ctl_dash.h"
#include "ctl_jobs_api.h"
#include "ctl_jobs_store.h"
#include "ctl_serve.h"
#include "ctl_serve_metrics.h"
#include "ctl_service.h"

/* cmake/Embed.cmake, from controller/dashboard/. */
extern const unsigned char ctl_dash_index_html[], ctl_dash_dashboard_css[], ctl_dash_dashboard_js[];
extern const size_t ctl_dash_index_html_len, ctl_dash_dashboard_css_len, ctl_dash_dashboard_js_len;

#define DASH_MAX_JOBS 200

const char *const ctl_dash_public_paths[] = {"/", "/dashboard.css", "/dashboard.js", NULL};

typedef struct sample {
    double t, cost;
    int spot, on_demand, target;
} sample_t;

typedef struct hist {
    char name[CTL_SVC_NAME_MAX];
    sample_t ring[CTL_DASH_SAMPLES];
    size_t head, n; /* oldest at head */
    bool seen;      /* in the last sampling round */
    struct hist *next;
} hist_t;

struct ctl_dash {
    hist_t *hists;
    double next_sample;
};

ctl_dash_t *ctl_dash_new(void)
{
    return core_xcalloc(1, sizeof(ctl_dash_t));
}

void ctl_dash_free(ctl_dash_t *d)
{
    if (!d)
        return;
    while (d->hists) {
        hist_t *h = d->hists;

        d->hists = h->next;
        free(h);
    }
    free(d);
}

static hist_t *hist_get(ctl_dash_t *d, const char *name)
{
    hist_t *h;

    for (h = d->hists; h; h = h->next)
        if (strcmp(h->name, name) == 0)
            return h;
    h = core_xcalloc(1, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->next = d->hists;
    d->hists = h;
    return h;
}

void ctl_dash_sample(ctl_dash_t *d, ctl_serve_t *s, double now)
{
    if (now < d->next_sample)
        return;
    d->next_sample = now + CTL_DASH_SAMPLE_S;
    for (hist_t *h = d->hists; h; h = h->next)
        h->seen = false;
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        hist_t *h;
        sample_t x = {.t = now, .cost = ctl_serve_cost_per_hour(svc)};

        if (svc->deleted)
            continue;
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            if (ctl_replica_row_status(&r->fr.row) != CTL_REPLICA_READY)
                continue;
            if (r->fr.row.is_spot)
                x.spot++;
            else
                x.on_demand++;
        }
        x.target = svc->fleet.scaler_ok ? ctl_scaler_final_target(&svc->fleet.scaler) : 0;
        h = hist_get(d, svc->row.name);
        h->seen = true;
        h->ring[(h->head + h->n) % CTL_DASH_SAMPLES] = x;
        if (h->n < CTL_DASH_SAMPLES)
            h->n++;
        else
            h->head = (h->head + 1) % CTL_DASH_SAMPLES;
    }
    /* A service that went away takes its history along. */
    for (hist_t **pp = &d->hists; *pp;) {
        hist_t *h = *pp;

        if (h->seen) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        free(h);
    }
}

static cJSON *hist_json(const hist_t *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *t = cJSON_AddArrayToObject(o, "t"), *sp = cJSON_AddArrayToObject(o, "spot");
    cJSON *od = cJSON_AddArrayToObject(o, "on_demand"), *tg = cJSON_AddArrayToObject(o, "target");
    cJSON *c = cJSON_AddArrayToObject(o, "cost");

    for (size_t i = 0; i < h->n; i++) {
        const sample_t *x = &h->ring[(h->head + i) % CTL_DASH_SAMPLES];

        cJSON_AddItemToArray(t, cJSON_CreateNumber(x->t));
        cJSON_AddItemToArray(sp, cJSON_CreateNumber(x->spot));
        cJSON_AddItemToArray(od, cJSON_CreateNumber(x->on_demand));
        cJSON_AddItemToArray(tg, cJSON_CreateNumber(x->target));
        cJSON_AddItemToArray(c, cJSON_CreateNumber(x->cost));
    }
    return o;
}

/* The managed jobs from the jobs controller's store (read only here; it
 * may be stopped, idle), or null when no job ever ran in this SKY_HOME. */
static cJSON *jobs_json(ctl_serve_t *s)
{
    char *path = core_xasprintf("%s/jobs/jobs.db", s->home), *err = NULL;
    core_store_t *st = NULL;
    ctl_job_row_t *rows = NULL;
    size_t n = 0;
    cJSON *arr;

    if (access(path, F_OK) != 0 || ctl_jobs_store_open(path, &st, &err) < 0 ||
        ctl_jobs_store_list(st, &rows, &n) < 0) {
        free(path);
        free(err);
        core_store_close(st);
        return cJSON_CreateNull();
    }
    arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (i < DASH_MAX_JOBS)
            cJSON_AddItemToArray(arr, ctl_jobs_job_json(&rows[i]));
        ctl_job_row_free(&rows[i]);
    }
    free(rows);
    core_store_close(st);
    free(path);
    return arr;
}

static void api_dashboard(ctl_serve_t *s, core_http_conn_t *conn)
{
    cJSON *o = cJSON_CreateObject(), *svcs = cJSON_AddArrayToObject(o, "services");
    cJSON *hist = cJSON_AddObjectToObject(o, "history");

    cJSON_AddNumberToObject(o, "now", core_now());
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        cJSON *j;

        if (svc->deleted)
            continue;
        j = ctl_serve_service_json(s, svc);
        cJSON_AddNumberToObject(j, "cost_per_hour", ctl_serve_cost_per_hour(svc));
        cJSON_AddItemToArray(svcs, j);
    }
    for (const hist_t *h = s->dash->hists; h; h = h->next)
        cJSON_AddItemToObject(hist, h->name, hist_json(h));
    cJSON_AddItemToObject(o, "jobs", jobs_json(s));
    core_http_respond_json(conn, 200, o);
}

bool ctl_dash_handle(ctl_serve_t *s, core_http_conn_t *conn, const core_http_req_t *req)
{
    static const struct {
        const char *path, *type;
        const unsigned char *body;
        const size_t *len;
    } files[] = {
        {"/", "text/html; charset=utf-8", ctl_dash_index_html, &ctl_dash_index_html_len},
        {"/dashboard.css", "text/css; charset=utf-8", ctl_dash_dashboard_css,
         &ctl_dash_dashboard_css_len},
        {"/dashboard.js", "text/javascript; charset=utf-8", ctl_dash_dashboard_js,
         &ctl_dash_dashboard_js_len},
    };

    if (strcmp(req->method, "GET") != 0)
        return false;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (strcmp(req->path, files[i].path) == 0) {
            core_http_respond(conn, 200, files[i].type, (const char *)files[i].body, *files[i].len);
            return true;
        }
    }
    if (strcmp(req->path, "/api/dashboard") == 0) {
        api_dashboard(s, conn);
        return true;
    }
    return false;
}
