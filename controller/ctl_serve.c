/*
 * The serve controller daemon: one libuv loop for every service.
 *
 * Facts live in SQLite rows (ctl_serve_store.c); statuses are derived from
 * them (ctl_replica). Blocking provider and agent calls run in the thread
 * pool; their results are applied on the loop thread, looking replicas up by
 * (service, id) so that a record deleted meanwhile is never touched. A 200 ms
 * tick drives the per-service schedules: readiness probe rounds, autoscaler
 * decisions, launch retries, drained terminations, sky-lb supervision, and
 * the provider poll that detects preemptions within about a second.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_serve.h"

#define TICK_MS 200
/* A sky-lb that ran this long before exiting is restarted without backoff;
 * one that exits sooner is crash-looping (bad flags, port taken) and backs off. */
#define LB_HEALTHY_RUN_S 2.0
#define OWNER_FMT        "serve:%s:%d"

static void lb_ensure(ctl_serve_t *s, ctl_service_t *svc);
static void lb_stop(ctl_serve_t *s, ctl_service_t *svc);
static void update_status(ctl_service_t *svc);
static void queue_launch(ctl_replica_t *r);
static void maybe_finish_down(ctl_service_t *svc);

/* ------------------------------------------------------------------ */
/* small helpers */

/* SHUTTING_DOWN, or FAILED_CLEANUP after a down whose terminations failed. */
static bool going_down(const ctl_service_t *svc)
{
    return svc->row.status == CTL_SERVICE_SHUTTING_DOWN ||
           svc->row.status == CTL_SERVICE_FAILED_CLEANUP;
}

static double now_s(void)
{
    return core_now();
}

ctl_service_t *ctl_serve_find(ctl_serve_t *s, const char *name)
{
    for (ctl_service_t *svc = s->services; svc; svc = svc->next)
        if (!svc->deleted && strcmp(svc->row.name, name) == 0)
            return svc;
    return NULL;
}

ctl_replica_t *ctl_service_replica(ctl_service_t *svc, int id)
{
    CTL_FOR_EACH_REPLICA(svc, r)
    if (r->fr.row.id == id)
        return r;
    return NULL;
}

ctl_version_t *ctl_service_version(ctl_service_t *svc, int version)
{
    for (size_t i = 0; i < svc->n_versions; i++)
        if (svc->versions[i].row.version == version)
            return &svc->versions[i];
    return NULL;
}

ctl_version_t *ctl_service_latest(ctl_service_t *svc)
{
    return svc->n_versions ? &svc->versions[svc->n_versions - 1] : NULL;
}

static ctl_replica_t *find_replica(ctl_serve_t *s, const char *svcname, int id,
                                   ctl_service_t **svc_out)
{
    ctl_service_t *svc = ctl_serve_find(s, svcname);

    if (svc_out)
        *svc_out = svc;
    return svc ? ctl_service_replica(svc, id) : NULL;
}

char *ctl_serve_log_path(ctl_serve_t *s, const char *svc, const char *file)
{
    if (!svc)
        return core_xasprintf("%s/%s", s->serve_dir, file);
    return core_xasprintf("%s/%s/%s", s->serve_dir, svc, file);
}

/* Thread-safe: each line is one O_APPEND write. */
static void vlog_to(const char *path, const char *fmt, va_list ap)
{
    char ts[32], *msg, *line;
    time_t t = time(NULL);
    struct tm tm;
    int fd;

    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    if (vasprintf(&msg, fmt, ap) < 0)
        return;
    line = core_xasprintf("%s %s\n", ts, msg);
    free(msg);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, line, strlen(line));
        (void)w;
        close(fd);
    }
    free(line);
}

static void replica_log_path(ctl_serve_t *s, const char *svc, int id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s/replica_%d.log", s->serve_dir, svc, id);
}

void ctl_serve_replica_log(ctl_serve_t *s, const char *svc, int id, const char *fmt, ...)
{
    char path[1024];
    va_list ap;

    replica_log_path(s, svc, id, path, sizeof(path));
    va_start(ap, fmt);
    vlog_to(path, fmt, ap);
    va_end(ap);
}

static void persist_replica(ctl_replica_t *r)
{
    ctl_store_put_replica(r->svc->s->store, r->svc->row.name, &r->fr.row);
    r->fr.dirty = false;
}

static void persist_service(ctl_service_t *svc)
{
    ctl_store_put_service(svc->s->store, &svc->row);
}

static void persist_scaler(ctl_service_t *svc)
{
    cJSON *j;
    char *sj, *pj = NULL;

    svc->fleet.meta_dirty = false;
    if (!svc->fleet.scaler_ok)
        return;
    j = ctl_scaler_state_to_json(&svc->fleet.scaler, NULL, true);
    sj = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (svc->fleet.has_placer) {
        j = ctl_placer_to_json(&svc->fleet.placer);
        pj = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    }
    ctl_store_put_meta(svc->s->store, svc->row.name, sj, pj);
    free(sj);
    free(pj);
}

/* Writes what the fleet changed: replica rows, the autoscaler and placer state. */
static void persist_fleet(ctl_service_t *svc)
{
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        if (r->fr.dirty)
            persist_replica(r);
    }
    if (svc->fleet.meta_dirty)
        persist_scaler(svc);
}

/* The readiness probe's initial delay of <r>'s version. */
static double initial_delay(ctl_service_t *svc, const ctl_replica_t *r)
{
    ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);

    if (v && v->task && v->task->service)
        return v->task->service->probe.initial_delay_seconds;
    return CTL_DEFAULT_INITIAL_DELAY_S;
}

/* ------------------------------------------------------------------ */
/* versions */

static char *task_fingerprint(const core_task_t *t, const char *cwd, int port)
{
    cJSON *o = cJSON_CreateObject(), *envs, *fms, *res;
    char *wd = ctl_serve_resolve_path(t->workdir, cwd), *out;
    const core_resources_t *rs = &t->resources;

    cJSON_AddStringToObject(o, "setup", t->setup ? t->setup : "");
    cJSON_AddStringToObject(o, "run", t->run ? t->run : "");
    cJSON_AddStringToObject(o, "workdir", wd ? wd : "");
    free(wd);
    cJSON_AddNumberToObject(o, "num_nodes", t->num_nodes);
    cJSON_AddNumberToObject(o, "port", port);
    envs = cJSON_AddObjectToObject(o, "envs");
    for (size_t i = 0; i < t->n_envs; i++)
        cJSON_AddStringToObject(envs, t->envs[i].key, t->envs[i].value ? t->envs[i].value : "");
    for (size_t i = 0; i < t->n_secrets; i++)
        cJSON_AddStringToObject(envs, t->secrets[i].key,
                                t->secrets[i].value ? t->secrets[i].value : "");
    fms = cJSON_AddArrayToObject(o, "file_mounts");
    for (size_t i = 0; i < t->n_file_mounts; i++)
        cJSON_AddItemToArray(fms, cJSON_CreateString(t->file_mounts[i].dst));
    res = cJSON_AddArrayToObject(o, "resources");
    for (size_t i = 0; i <= rs->n_any_of; i++) {
        const core_resources_t *e = rs->n_any_of ? (i < rs->n_any_of ? &rs->any_of[i] : NULL) : rs;
        char *d;

        if (!e)
            break;
        d = core_xasprintf("%s/%s/%s/%g%s/%g%s/%s:%d/%s/%d", e->cloud ? e->cloud : "",
                           e->region ? e->region : "", e->zone ? e->zone : "", e->cpus,
                           e->cpus_plus ? "+" : "", e->memory_gb, e->memory_plus ? "+" : "",
                           e->accelerator ? e->accelerator : "", e->accelerator_count,
                           e->instance_type ? e->instance_type : "", e->use_spot);
        cJSON_AddItemToArray(res, cJSON_CreateString(d));
        free(d);
        if (!rs->n_any_of)
            break;
    }
    out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* Parses and validates a version's YAML. 0, or CORE_ESPEC with *err. */
static int version_load(ctl_version_t *v, char **err)
{
    int rc, port;
    const char *fname = v->row.yaml_path ? v->row.yaml_path : "<service.yaml>";

    rc = core_task_parse(v->row.yaml, strlen(v->row.yaml), fname, &v->task, err);
    if (rc < 0)
        return rc;
    if (v->row.envs) {
        cJSON *envs = cJSON_Parse(v->row.envs);

        core_task_set_envs(v->task, envs);
        cJSON_Delete(envs);
    }
    if (!v->task->service) {
        *err = core_xasprintf("%s: the task YAML has no `service:` section", fname);
        goto fail;
    }
    port = core_task_validate_service(v->task, err);
    if (port < 0)
        goto fail;
    v->port = port;
    v->fingerprint = task_fingerprint(v->task, v->row.cwd, port);
    return 0;
fail:
    core_task_free(v->task);
    v->task = NULL;
    return CORE_ESPEC;
}

static void version_set(ctl_version_t *v, int version, const ctl_task_src_t *src,
                        ctl_update_mode_t mode)
{
    v->row.version = version;
    v->row.yaml = core_xstrdup(src->yaml);
    v->row.yaml_path = src->yaml_path ? core_xstrdup(src->yaml_path) : NULL;
    v->row.cwd = src->cwd ? core_xstrdup(src->cwd) : NULL;
    v->row.envs = src->envs ? core_xstrdup(src->envs) : NULL;
    v->row.mode = mode;
}

static void version_clear(ctl_version_t *v)
{
    ctl_version_row_clear(&v->row);
    core_task_free(v->task);
    v->task = NULL;
    free(v->fingerprint);
    v->fingerprint = NULL;
}

/* The spot placer's locations: every zone with a spot candidate, at its cheapest price. */
static void placer_build(ctl_serve_t *s, ctl_service_t *svc, const core_task_t *t)
{
    core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;
    core_candidate_t *c = NULL;
    size_t n = 0;
    char *err = NULL;

    o.use_spot = 1;
    if (s->catalog && core_catalog_resolve_ex(s->catalog, &t->resources, &o, &c, &n, &err) == 0)
        ctl_placer_init_from_candidates(&svc->fleet.placer, c, n);
    else
        CORE_WARN("%s: spot placer: no spot location: %s", svc->row.name, err ? err : "?");
    free(err);
    free(c);
}

/* ------------------------------------------------------------------ */
/* thread-pool jobs */

enum job_kind {
    JOB_LAUNCH = 0,
    JOB_TERMINATE,
    JOB_LIST,
    JOB_DESCRIBE,
    JOB_TASK_STATUS,
};

typedef struct job {
    uv_work_t w;
    ctl_serve_t *s;
    enum job_kind kind;
    char svc[CTL_SVC_NAME_MAX];
    int id;
    char owner[128];
    char logpath[1024];
    double boot_timeout;
    /* launch */
    core_candidate_t *cands;
    size_t n_cands;
    char *task_json;
    char task_name[128];
    /* terminate / describe / status */
    char cloud[24]; /* where instance_id lives: picks its provider */
    char instance_id[64];
    char ip[64];
    int agent_port;
    int task_id;
    int sync_logs;
    int max_retry;
    double retry_initial;
    /* results */
    int rc;
    char *err;
    core_instance_t inst;
    int have_inst;
    size_t chosen;
    int adopted;
    core_instance_t *list;
    size_t n_list;
    core_agent_status_t task_status;
    unsigned long long started_mono;
} job_t;

static void job_free(job_t *j)
{
    free(j->cands);
    free(j->task_json);
    free(j->err);
    free(j->list);
    free(j);
}

static void jlog(job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jlog(job_t *j, const char *fmt, ...)
{
    va_list ap;

    if (!j->logpath[0])
        return;
    va_start(ap, fmt);
    vlog_to(j->logpath, fmt, ap);
    va_end(ap);
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* An instance this replica already owns (a launch interrupted by a controller
 * restart): adopt it instead of launching a duplicate. */
static int find_owned(core_prov_registry_t *p, job_t *j, core_instance_t *out)
{
    core_instance_t *all = NULL;
    size_t n = 0;
    int found = 0, rc = core_prov_registry_list(p, &all, &n);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].owner, j->owner) != 0)
            continue;
        if (!found && (all[i].state == CORE_INST_RUNNING || all[i].state == CORE_INST_PENDING)) {
            *out = all[i];
            found = 1;
        } else if (all[i].state != CORE_INST_TERMINATED) {
            /* A dead leftover (preempted/failed): make sure nothing stays behind. */
            core_prov_registry_terminate(p, all[i].cloud, all[i].id);
        }
    }
    free(all);
    return found;
}

static int wait_running(core_prov_registry_t *p, job_t *j, core_instance_t *inst)
{
    unsigned long long deadline = core_mono_ms() + (unsigned long long)(j->boot_timeout * 1000);

    while (inst->state == CORE_INST_PENDING) {
        if (core_mono_ms() > deadline)
            return -ETIMEDOUT;
        msleep(500);
        if (core_prov_registry_describe(p, inst->cloud, inst->id, inst) < 0)
            return CORE_ENOTFOUND;
    }
    return inst->state == CORE_INST_RUNNING ? 0 : CORE_EPREEMPTED;
}

static int submit_task(job_t *j)
{
    core_agent_task_t *tasks = NULL;
    size_t n = 0;
    cJSON *task;
    int rc, tid = 0;

    /* Up to ~30 s for the agent: the provider says RUNNING once it answered. */
    for (int i = 0; i < 60; i++) {
        if (core_agent_health(j->inst.ip, j->inst.agent_port, NULL, 2000) == 0)
            break;
        msleep(500);
    }
    /* Idempotent across restarts: reuse the task we submitted before. */
    if (core_agent_task_list(j->inst.ip, j->inst.agent_port, NULL, &tasks, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (tasks[i].name && strcmp(tasks[i].name, j->task_name) == 0)
                tid = tasks[i].task_id;
            core_agent_task_free(&tasks[i]);
        }
        free(tasks);
    }
    if (tid > 0) {
        jlog(j, "reusing task %d already submitted to the agent", tid);
        j->task_id = tid;
        return 0;
    }
    task = cJSON_Parse(j->task_json);
    rc = core_agent_submit(j->inst.ip, j->inst.agent_port, NULL, task, &j->task_id);
    cJSON_Delete(task);
    if (rc < 0) {
        j->err = core_xasprintf("submitting the task to the agent at %s:%d: %s", j->inst.ip,
                                j->inst.agent_port, core_strerror(rc));
        return rc;
    }
    jlog(j, "task %d submitted to the agent at %s:%d", j->task_id, j->inst.ip, j->inst.agent_port);
    return 0;
}

static void work_launch(job_t *j)
{
    core_prov_registry_t *p = j->s->provs;
    int rc = find_owned(p, j, &j->inst);

    if (rc > 0) {
        j->adopted = 1;
        j->have_inst = 1;
        jlog(j, "adopting instance %s (%s) already launched for this replica", j->inst.id,
             core_inst_state_name(j->inst.state));
        if ((rc = wait_running(p, j, &j->inst)) < 0) {
            j->err = core_xasprintf("instance %s did not become RUNNING: %s", j->inst.id,
                                    core_strerror(rc));
            core_prov_registry_terminate(p, j->inst.cloud, j->inst.id);
            j->have_inst = 0;
            j->rc = -EAGAIN;
            return;
        }
    } else {
        jlog(j, "launching (%zu candidate%s, cheapest %s/%s %s%s)", j->n_cands,
             j->n_cands == 1 ? "" : "s", j->n_cands ? j->cands[0].region : "-",
             j->n_cands ? j->cands[0].zone : "-", j->n_cands ? j->cands[0].instance_type : "-",
             j->n_cands && j->cands[0].spot ? " spot" : "");
        rc = core_prov_registry_launch(p, j->cands, j->n_cands, NULL, j->owner, &j->inst,
                                       &j->chosen, &j->err);
        if (rc < 0) {
            j->rc = rc;
            jlog(j, "launch failed: %s", j->err ? j->err : core_strerror(rc));
            return;
        }
        j->have_inst = 1;
        jlog(j, "instance %s RUNNING at %s (%s/%s/%s %s%s)", j->inst.id, j->inst.ip, j->inst.cloud,
             j->inst.region, j->inst.zone, j->inst.instance_type, j->inst.spot ? " spot" : "");
    }
    j->rc = submit_task(j);
}

static int sync_log_cb(const char *data, size_t len, void *arg)
{
    int fd = *(int *)arg;
    ssize_t w = write(fd, data, len);

    (void)w;
    return 0;
}

static void work_terminate(job_t *j)
{
    core_prov_registry_t *p = j->s->provs;
    double gap = j->retry_initial;
    int rc = 0;

    if (j->sync_logs && j->task_id > 0 && j->ip[0]) {
        int fd = open(j->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

        if (fd >= 0) {
            const char *hdr = "---- replica task log (synced at termination) ----\n";
            ssize_t w = write(fd, hdr, strlen(hdr));

            (void)w;
            core_agent_logs(j->ip, j->agent_port, NULL, j->task_id, 0, -1, sync_log_cb, &fd);
            close(fd);
        }
    }
    for (int attempt = 0; attempt < j->max_retry; attempt++) {
        core_instance_t *all = NULL;
        size_t n = 0;

        rc = 0;
        if (j->instance_id[0])
            rc = core_prov_registry_terminate(p, j->cloud, j->instance_id);
        /* Everything this replica owns, launched or half-launched. */
        if (rc == 0 && (rc = core_prov_registry_list(p, &all, &n)) == 0) {
            for (size_t i = 0; i < n && rc == 0; i++)
                if (strcmp(all[i].owner, j->owner) == 0 && all[i].state != CORE_INST_TERMINATED)
                    rc = core_prov_registry_terminate(p, all[i].cloud, all[i].id);
            free(all);
        }
        if (rc == 0)
            break;
        jlog(j, "terminate attempt %d failed: %s", attempt + 1, core_strerror(rc));
        if (attempt + 1 < j->max_retry)
            msleep((long)(gap * 1000));
        gap *= 1.6;
    }
    j->rc = rc;
    if (rc == 0)
        jlog(j, "terminated");
}

static void work_list(job_t *j)
{
    j->rc = core_prov_registry_list(j->s->provs, &j->list, &j->n_list);
}

static void work_describe(job_t *j)
{
    j->rc = core_prov_registry_describe(j->s->provs, j->cloud, j->instance_id, &j->inst);
}

static void work_task_status(job_t *j)
{
    core_agent_task_t t;

    memset(&t, 0, sizeof(t));
    j->rc = core_agent_task_get(j->ip, j->agent_port, NULL, j->task_id, &t);
    if (j->rc == 0)
        j->task_status = t.status;
    core_agent_task_free(&t);
}

static void on_work(uv_work_t *w)
{
    job_t *j = w->data;

    switch (j->kind) {
    case JOB_LAUNCH:
        work_launch(j);
        break;
    case JOB_TERMINATE:
        work_terminate(j);
        break;
    case JOB_LIST:
        work_list(j);
        break;
    case JOB_DESCRIBE:
        work_describe(j);
        break;
    case JOB_TASK_STATUS:
        work_task_status(j);
        break;
    }
}

static void after_launch(job_t *j);
static void after_terminate(job_t *j);
static void after_list(job_t *j);
static void after_describe(job_t *j);
static void after_task_status(job_t *j);

static void on_after_work(uv_work_t *w, int status)
{
    job_t *j = w->data;

    (void)status;
    if (!j->s->stopping) {
        switch (j->kind) {
        case JOB_LAUNCH:
            after_launch(j);
            break;
        case JOB_TERMINATE:
            after_terminate(j);
            break;
        case JOB_LIST:
            after_list(j);
            break;
        case JOB_DESCRIBE:
            after_describe(j);
            break;
        case JOB_TASK_STATUS:
            after_task_status(j);
            break;
        }
    }
    job_free(j);
}

static job_t *job_new(ctl_serve_t *s, enum job_kind kind, const char *svc, int id)
{
    job_t *j = core_xcalloc(1, sizeof(*j));

    j->s = s;
    j->kind = kind;
    j->w.data = j;
    j->started_mono = core_mono_ms();
    if (svc) {
        snprintf(j->svc, sizeof(j->svc), "%s", svc);
        snprintf(j->owner, sizeof(j->owner), OWNER_FMT, svc, id);
        replica_log_path(s, svc, id, j->logpath, sizeof(j->logpath));
    }
    j->id = id;
    return j;
}

static void job_queue(job_t *j)
{
    int rc = uv_queue_work(j->s->loop, &j->w, on_work, on_after_work);

    if (rc < 0) {
        CORE_ERROR("uv_queue_work: %s", uv_strerror(rc));
        job_free(j);
    }
}

/* ------------------------------------------------------------------ */
/* launch */

static cJSON *agent_task(ctl_serve_t *s, ctl_service_t *svc, ctl_version_t *v, int id)
{
    const core_task_t *t = v->task;
    cJSON *o = cJSON_CreateObject(), *envs, *fms;
    char buf[32], *wd;

    cJSON_AddStringToObject(o, "name", "");
    if (t->setup)
        cJSON_AddStringToObject(o, "setup", t->setup);
    else
        cJSON_AddNullToObject(o, "setup");
    if (t->run)
        cJSON_AddStringToObject(o, "run", t->run);
    else
        cJSON_AddNullToObject(o, "run");
    envs = cJSON_AddObjectToObject(o, "envs");
    for (size_t i = 0; i < t->n_envs; i++)
        if (t->envs[i].value)
            cJSON_AddStringToObject(envs, t->envs[i].key, t->envs[i].value);
    for (size_t i = 0; i < t->n_secrets; i++)
        if (t->secrets[i].value)
            cJSON_AddStringToObject(envs, t->secrets[i].key, t->secrets[i].value);
    snprintf(buf, sizeof(buf), "%d", id);
    cJSON_AddStringToObject(envs, "SKYPILOT_SERVE_REPLICA_ID", buf);
    cJSON_AddStringToObject(envs, "SKYPILOT_SERVE_SERVICE_NAME", svc->row.name);
    /* The workdir is relative to the directory the CLI ran in, not ours. */
    wd = ctl_serve_resolve_path(t->workdir, v->row.cwd);
    if (wd)
        cJSON_AddStringToObject(o, "workdir", wd);
    else
        cJSON_AddNullToObject(o, "workdir");
    free(wd);
    fms = cJSON_AddArrayToObject(o, "file_mounts");
    for (size_t i = 0; i < t->n_file_mounts; i++) {
        const core_file_mount_t *fm = &t->file_mounts[i];
        cJSON *m;
        char *src;

        if (fm->is_storage) {
            src = core_xasprintf("%s/buckets/%s", s->home, fm->name);
            core_mkdir_p(src, 0755);
        } else if (fm->src && !strstr(fm->src, "://")) {
            src = ctl_serve_resolve_path(fm->src, v->row.cwd);
        } else {
            CORE_WARN("%s: file_mounts %s: source %s not supported, skipped", svc->row.name,
                      fm->dst, fm->src ? fm->src : "(none)");
            continue;
        }
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "dst", fm->dst);
        cJSON_AddStringToObject(m, "src", src);
        cJSON_AddStringToObject(m, "mode",
                                fm->mode == CORE_MOUNT_MOUNT && fm->is_storage ? "MOUNT" : "COPY");
        cJSON_AddItemToArray(fms, m);
        free(src);
    }
    return o;
}

static int resolve_candidates(ctl_serve_t *s, ctl_replica_t *r, ctl_version_t *v,
                              core_candidate_t **c, size_t *n, char **err)
{
    core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;

    if (!s->catalog) {
        if (err)
            *err = core_xstrdup("no catalog loaded");
        return CORE_EINFEASIBLE;
    }
    o.use_spot = r->fr.row.use_spot;
    if (r->fr.row.has_location) {
        o.cloud = r->fr.row.loc.cloud;
        o.region = r->fr.row.loc.region;
        o.zone = r->fr.row.loc.zone[0] ? r->fr.row.loc.zone : NULL;
    }
    return core_catalog_resolve_ex(s->catalog, &v->task->resources, &o, c, n, err);
}

static void launch_failed(ctl_replica_t *r, bool no_capacity)
{
    ctl_fleet_launch_failed(&r->svc->fleet, &r->fr, no_capacity, now_s());
    persist_fleet(r->svc);
}

static void queue_launch(ctl_replica_t *r)
{
    ctl_service_t *svc = r->svc;
    ctl_serve_t *s = svc->s;
    ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);
    job_t *j;
    cJSON *t;
    char *err = NULL;
    int rc;

    if (r->fr.busy)
        return;
    if (!v || !v->task) {
        ctl_serve_replica_log(s, svc->row.name, r->fr.row.id, "version %d has no usable task",
                              r->fr.row.version);
        launch_failed(r, false);
        return;
    }
    j = job_new(s, JOB_LAUNCH, svc->row.name, r->fr.row.id);
    rc = resolve_candidates(s, r, v, &j->cands, &j->n_cands, &err);
    if (rc < 0) {
        ctl_serve_replica_log(s, svc->row.name, r->fr.row.id, "no launchable resources: %s",
                              err ? err : core_strerror(rc));
        CORE_WARN("%s replica %d: no launchable resources: %s", svc->row.name, r->fr.row.id,
                  err ? err : core_strerror(rc));
        free(err);
        job_free(j);
        launch_failed(r, r->fr.row.has_location);
        return;
    }
    t = agent_task(s, svc, v, r->fr.row.id);
    snprintf(j->task_name, sizeof(j->task_name), "serve-%s-%d", svc->row.name, r->fr.row.id);
    cJSON_ReplaceItemInObject(t, "name", cJSON_CreateString(j->task_name));
    j->task_json = cJSON_PrintUnformatted(t);
    cJSON_Delete(t);
    j->boot_timeout = s->cfg.instance_boot_timeout;
    ctl_fleet_launch_started(&svc->fleet, &r->fr);
    persist_replica(r);
    CORE_INFO("%s replica %d: launching (version %d, %s%s%s)", svc->row.name, r->fr.row.id,
              r->fr.row.version, r->fr.row.is_spot ? "spot" : "on-demand",
              r->fr.row.has_location ? " in " : "",
              r->fr.row.has_location ? r->fr.row.loc.zone : "");
    job_queue(j);
}

static void fill_instance(ctl_replica_t *r, const core_instance_t *in)
{
    core_candidate_t c;

    snprintf(r->fr.row.instance_id, sizeof(r->fr.row.instance_id), "%s", in->id);
    snprintf(r->fr.row.ip, sizeof(r->fr.row.ip), "%s", in->ip);
    snprintf(r->fr.row.cloud, sizeof(r->fr.row.cloud), "%s", in->cloud);
    snprintf(r->fr.row.region, sizeof(r->fr.row.region), "%s", in->region);
    snprintf(r->fr.row.zone, sizeof(r->fr.row.zone), "%s", in->zone);
    snprintf(r->fr.row.instance_type, sizeof(r->fr.row.instance_type), "%s", in->instance_type);
    r->fr.row.agent_port = in->agent_port;
    r->fr.row.port_offset = in->port_offset;
    r->fr.row.price = in->price;
    r->fr.row.is_spot = in->spot;
    memset(&c, 0, sizeof(c));
    snprintf(c.cloud, sizeof(c.cloud), "%s", in->cloud);
    snprintf(c.region, sizeof(c.region), "%s", in->region);
    snprintf(c.zone, sizeof(c.zone), "%s", in->zone);
    snprintf(c.instance_type, sizeof(c.instance_type), "%s", in->instance_type);
    c.spot = in->spot;
    c.price = in->price;
    /* vCPUs for the label come from the catalog's view of the type. */
    if (r->svc->s->catalog) {
        core_candidate_t *cands = NULL;
        size_t n = 0;
        ctl_version_t *v = ctl_service_version(r->svc, r->fr.row.version);
        core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;

        o.use_spot = in->spot;
        o.cloud = in->cloud;
        o.region = in->region;
        o.zone = in->zone;
        if (v && v->task &&
            core_catalog_resolve_ex(r->svc->s->catalog, &v->task->resources, &o, &cands, &n,
                                    NULL) == 0) {
            for (size_t i = 0; i < n; i++)
                if (strcmp(cands[i].instance_type, in->instance_type) == 0)
                    c = cands[i];
        }
        free(cands);
    }
    core_candidate_label(&c, r->fr.row.resources, sizeof(r->fr.row.resources));
}

static void orphan_terminate(ctl_serve_t *s, const char *svc, int id, const char *cloud,
                             const char *instance_id)
{
    job_t *j = job_new(s, JOB_TERMINATE, svc, id);

    snprintf(j->cloud, sizeof(j->cloud), "%s", cloud);
    snprintf(j->instance_id, sizeof(j->instance_id), "%s", instance_id);
    j->max_retry = s->cfg.terminate_max_retry;
    j->retry_initial = s->cfg.terminate_retry_initial;
    j->id = -id - 1; /* no record to update */
    job_queue(j);
}

static void after_launch(job_t *j)
{
    ctl_service_t *svc;
    ctl_replica_t *r = find_replica(j->s, j->svc, j->id, &svc);
    ctl_serve_t *s = j->s;

    if (!r) {
        /* The record went away meanwhile (purge): leak nothing. */
        if (j->have_inst)
            orphan_terminate(s, j->svc, j->id, j->inst.cloud, j->inst.id);
        return;
    }
    if (j->have_inst)
        fill_instance(r, &j->inst);
    if (j->have_inst && j->task_id > 0)
        r->fr.row.agent_task_id = j->task_id;
    switch (ctl_fleet_launch_done(&svc->fleet, &r->fr, j->rc, now_s())) {
    case CTL_FLEET_SUPERSEDED: /* scaled down while launching: the pending down takes over */
        break;
    case CTL_FLEET_LAUNCHED:
        r->launched_mono = core_mono_ms();
        r->next_job_poll = now_s() + s->cfg.job_status_interval;
        CORE_INFO("%s replica %d: STARTING on %s (%s)%s", svc->row.name, r->fr.row.id,
                  r->fr.row.instance_id, r->fr.row.ip, j->adopted ? " (adopted)" : "");
        break;
    case CTL_FLEET_RETRY:
        CORE_WARN("%s replica %d: launch failed: %s", svc->row.name, r->fr.row.id,
                  j->err ? j->err : core_strerror(j->rc));
        ctl_serve_replica_log(s, svc->row.name, r->fr.row.id, "retrying the launch in %.0f s",
                              r->fr.next_launch_at - now_s());
        break;
    case CTL_FLEET_FAILED:
        CORE_WARN("%s replica %d: launch failed: %s", svc->row.name, r->fr.row.id,
                  j->err ? j->err : core_strerror(j->rc));
        break;
    }
    persist_fleet(svc);
}

/* ------------------------------------------------------------------ */
/* termination */

static void queue_terminate(ctl_replica_t *r)
{
    ctl_serve_t *s = r->svc->s;
    job_t *j = job_new(s, JOB_TERMINATE, r->svc->row.name, r->fr.row.id);

    snprintf(j->cloud, sizeof(j->cloud), "%s", r->fr.row.cloud);
    snprintf(j->instance_id, sizeof(j->instance_id), "%s", r->fr.row.instance_id);
    snprintf(j->ip, sizeof(j->ip), "%s", r->fr.row.ip);
    j->agent_port = r->fr.row.agent_port;
    j->task_id = r->fr.row.agent_task_id;
    /* Keep the task's output of a replica that failed (reference sync_down_logs). */
    j->sync_logs = !r->fr.row.f.preempted && !r->fr.row.f.is_scale_down && r->fr.row.instance_id[0];
    j->max_retry = s->cfg.terminate_max_retry;
    j->retry_initial = s->cfg.terminate_retry_initial;
    ctl_fleet_down_started(&r->svc->fleet, &r->fr);
    persist_replica(r);
    job_queue(j);
}

static void replica_remove(ctl_service_t *svc, ctl_replica_t *r)
{
    ctl_store_delete_replica(svc->s->store, svc->row.name, r->fr.row.id);
    ctl_fleet_remove(&svc->fleet, &r->fr);
}

static void after_terminate(job_t *j)
{
    ctl_service_t *svc;
    ctl_replica_t *r;

    if (j->id < 0)
        return; /* orphan cleanup */
    r = find_replica(j->s, j->svc, j->id, &svc);
    if (!r)
        return;
    CORE_INFO("%s replica %d: terminated (%s)", svc->row.name, r->fr.row.id,
              j->rc == 0 ? "ok" : core_strerror(j->rc));
    if (ctl_fleet_down_done(&svc->fleet, &r->fr, j->rc == 0, going_down(svc)))
        replica_remove(svc, r);
    else
        persist_replica(r);
    update_status(svc);
    maybe_finish_down(svc);
}

/* ------------------------------------------------------------------ */
/* preemption detection */

static void handle_gone(ctl_replica_t *r, const char *why)
{
    ctl_service_t *svc = r->svc;

    if (!ctl_fleet_preempted(&svc->fleet, &r->fr, now_s()))
        return;
    CORE_WARN("%s replica %d: instance %s %s: PREEMPTED", svc->row.name, r->fr.row.id,
              r->fr.row.instance_id, why);
    ctl_serve_replica_log(svc->s, svc->row.name, r->fr.row.id, "instance %s %s: preempted",
                          r->fr.row.instance_id, why);
    persist_fleet(svc);
    update_status(svc);
}

static void after_list(job_t *j)
{
    ctl_serve_t *s = j->s;

    s->poll_busy = 0;
    if (j->rc < 0) {
        CORE_DEBUG("provider poll: %s", core_strerror(j->rc));
        return;
    }
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            const core_instance_t *in = NULL;

            if (r->fr.row.f.launch != CTL_PROC_SUCCEEDED || r->fr.row.f.down != CTL_PROC_NONE ||
                !r->fr.row.instance_id[0] || r->fr.busy)
                continue;
            /* A list taken before the launch result arrived knows nothing of it. */
            if (r->launched_mono > j->started_mono)
                continue;
            for (size_t i = 0; i < j->n_list; i++)
                if (strcmp(j->list[i].id, r->fr.row.instance_id) == 0 &&
                    strcmp(j->list[i].cloud, r->fr.row.cloud) == 0)
                    in = &j->list[i];
            if (!in)
                handle_gone(r, "is gone");
            else if (in->state == CORE_INST_PREEMPTED || in->state == CORE_INST_TERMINATED ||
                     in->state == CORE_INST_FAILED)
                handle_gone(r, in->state == CORE_INST_PREEMPTED ? "was preempted"
                                                                : "is no longer running");
        }
    }
}

static void queue_describe(ctl_replica_t *r)
{
    job_t *j;

    if (r->preempt_check || !r->fr.row.instance_id[0])
        return;
    j = job_new(r->svc->s, JOB_DESCRIBE, r->svc->row.name, r->fr.row.id);
    snprintf(j->cloud, sizeof(j->cloud), "%s", r->fr.row.cloud);
    snprintf(j->instance_id, sizeof(j->instance_id), "%s", r->fr.row.instance_id);
    r->preempt_check = 1;
    job_queue(j);
}

static void after_describe(job_t *j)
{
    ctl_replica_t *r = find_replica(j->s, j->svc, j->id, NULL);

    if (!r)
        return;
    r->preempt_check = 0;
    if (strcmp(r->fr.row.instance_id, j->instance_id) != 0)
        return;
    if (j->rc == CORE_ENOTFOUND)
        handle_gone(r, "is gone");
    else if (j->rc == 0 && j->inst.state != CORE_INST_RUNNING && j->inst.state != CORE_INST_PENDING)
        handle_gone(r, j->inst.state == CORE_INST_PREEMPTED ? "was preempted"
                                                            : "is no longer running");
}

static void after_task_status(job_t *j)
{
    ctl_replica_t *r = find_replica(j->s, j->svc, j->id, NULL);

    if (!r)
        return;
    r->job_polling = 0;
    if (j->rc < 0) {
        /* The agent does not answer: is the instance still there? */
        queue_describe(r);
        return;
    }
    if ((j->task_status == CORE_AGENT_FAILED || j->task_status == CORE_AGENT_FAILED_SETUP) &&
        ctl_replica_should_track(&r->fr.row.f)) {
        CORE_WARN("%s replica %d: the task %s: FAILED", r->svc->row.name, r->fr.row.id,
                  core_agent_status_name(j->task_status));
        ctl_serve_replica_log(j->s, r->svc->row.name, r->fr.row.id, "task %d ended %s",
                              r->fr.row.agent_task_id, core_agent_status_name(j->task_status));
        ctl_fleet_app_failed(&r->svc->fleet, &r->fr, now_s());
        persist_replica(r);
        update_status(r->svc);
    }
}

/* ------------------------------------------------------------------ */
/* probes */

typedef struct probe_arg {
    ctl_serve_t *s;
    char svc[CTL_SVC_NAME_MAX];
    int id;
    char instance_id[64];
} probe_arg_t;

static void round_done(ctl_service_t *svc)
{
    if (svc->probes_pending > 0)
        return;
    svc->probed_once = 1;
    update_status(svc);
}

static void on_probe(void *arg, bool ok, long status, const char *err)
{
    probe_arg_t *pa = arg;
    ctl_service_t *svc;
    ctl_replica_t *r = find_replica(pa->s, pa->svc, pa->id, &svc);
    ctl_replica_facts_t before;
    ctl_probe_action_t act;
    double t = now_s();

    if (svc && svc->probes_pending > 0)
        svc->probes_pending--;
    if (!r || strcmp(r->fr.row.instance_id, pa->instance_id) != 0) {
        if (svc)
            round_done(svc);
        free(pa);
        return;
    }
    r->probing = 0;
    if (!ctl_replica_should_track(&r->fr.row.f)) {
        round_done(svc);
        free(pa);
        return;
    }
    before = r->fr.row.f;
    act = ctl_fleet_probe(&svc->fleet, &r->fr, initial_delay(svc, r), ok, t);
    if (!ok)
        CORE_DEBUG("%s replica %d: probe failed (%ld %s)", svc->row.name, r->fr.row.id, status,
                   err ? err : "");
    switch (act) {
    case CTL_PROBE_MARK_READY:
        CORE_INFO("%s replica %d: READY", svc->row.name, r->fr.row.id);
        ctl_serve_replica_log(svc->s, svc->row.name, r->fr.row.id, "readiness probe OK: READY");
        if (svc->row.uptime <= 0) {
            svc->row.uptime = r->fr.row.f.first_ready_time;
            persist_service(svc);
        }
        break;
    case CTL_PROBE_MARK_NOT_READY:
        if (before.service_ready_now)
            CORE_WARN("%s replica %d: NOT_READY (%ld %s)", svc->row.name, r->fr.row.id, status,
                      err ? err : "");
        break;
    case CTL_PROBE_TERMINATE_FAILED_PROBING:
    case CTL_PROBE_TERMINATE_FAILED_INITIAL_DELAY:
        ctl_serve_replica_log(svc->s, svc->row.name, r->fr.row.id, "%s: terminating",
                              act == CTL_PROBE_TERMINATE_FAILED_PROBING
                                  ? "probes failing for too long (FAILED_PROBING)"
                                  : "not ready within the initial delay (FAILED_INITIAL_DELAY)");
        break;
    default:
        break;
    }
    persist_replica(r);
    if (!ok)
        queue_describe(r); /* preemption check, not only the probe timeout */
    round_done(svc);
    free(pa);
}

static void probe_round(ctl_service_t *svc)
{
    ctl_serve_t *s = svc->s;

    svc->next_probe = now_s() + s->cfg.probe_interval;
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);
        const core_readiness_probe_t *pr;
        ctl_probe_req_t req;
        probe_arg_t *pa;
        char *url;

        if (r->probing || !ctl_replica_should_track(&r->fr.row.f) || !r->fr.row.ip[0] || !v ||
            !v->task)
            continue;
        pr = &v->task->service->probe;
        url = core_xasprintf("http://%s:%d%s", r->fr.row.ip,
                             r->fr.row.replica_port + r->fr.row.port_offset,
                             pr->path ? pr->path : "/");
        memset(&req, 0, sizeof(req));
        req.url = url;
        req.post_data = pr->post_data;
        req.headers = pr->headers;
        req.n_headers = pr->n_headers;
        req.timeout_s = pr->timeout_seconds > 0 ? pr->timeout_seconds : 15;
        pa = core_xcalloc(1, sizeof(*pa));
        pa->s = s;
        snprintf(pa->svc, sizeof(pa->svc), "%s", svc->row.name);
        pa->id = r->fr.row.id;
        snprintf(pa->instance_id, sizeof(pa->instance_id), "%s", r->fr.row.instance_id);
        if (ctl_prober_start(s->prober, &req, on_probe, pa) == 0) {
            r->probing = 1;
            svc->probes_pending++;
        } else {
            free(pa);
        }
        free(url);
    }
    round_done(svc);
}

/* ------------------------------------------------------------------ */
/* service status, active versions */

static void update_status(ctl_service_t *svc)
{
    ctl_replica_info_t *infos;
    size_t n = ctl_fleet_infos(&svc->fleet, &infos);
    ctl_version_min_t *mins = core_xcalloc(svc->n_versions + 1, sizeof(*mins));
    int act[CTL_MAX_ACTIVE_VERSIONS];
    size_t na;
    ctl_service_status_t st = svc->row.status;
    bool changed = false;

    for (size_t i = 0; i < svc->n_versions; i++) {
        mins[i].version = svc->versions[i].row.version;
        mins[i].min_replicas =
            svc->versions[i].task ? svc->versions[i].task->service->policy.min_replicas : 1;
    }
    na = ctl_active_versions(infos, n, svc->fleet.scaler.st.update_mode, mins, svc->n_versions, act,
                             CTL_MAX_ACTIVE_VERSIONS);
    if (na != svc->row.n_active || memcmp(act, svc->row.active_versions, na * sizeof(int))) {
        memcpy(svc->row.active_versions, act, na * sizeof(int));
        svc->row.n_active = na;
        changed = true;
    }
    /* The reference's observable status: from the READY replicas only
     * (READY or NO_REPLICA), CONTROLLER_INIT until the first probe round. */
    if (!going_down(svc) && svc->probed_once)
        st = ctl_service_status_from_replicas(infos, n, true);
    if (st != svc->row.status) {
        CORE_INFO("%s: service %s -> %s", svc->row.name, ctl_service_status_name(svc->row.status),
                  ctl_service_status_name(st));
        svc->row.status = st;
        changed = true;
    }
    if (changed)
        persist_service(svc);
    free(mins);
    free(infos);
}

/* ------------------------------------------------------------------ */
/* autoscaling */

/* A replica the autoscaler added: what it asks for, until it runs; then launch it. */
static void replica_created(ctl_service_t *svc, ctl_replica_t *r)
{
    ctl_serve_t *s = svc->s;
    ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);
    core_candidate_t *c = NULL;
    size_t nc = 0;

    r->svc = svc;
    r->fr.row.replica_port = v ? v->port : 0;
    snprintf(r->fr.row.resources, sizeof(r->fr.row.resources), "%s", svc->row.requested_resources);
    if (v && resolve_candidates(s, r, v, &c, &nc, NULL) == 0 && nc > 0)
        core_candidate_label(&c[0], r->fr.row.resources, sizeof(r->fr.row.resources));
    free(c);
    persist_replica(r);
    ctl_serve_replica_log(s, svc->row.name, r->fr.row.id, "replica %d of version %d: %s%s%s",
                          r->fr.row.id, r->fr.row.version, r->fr.row.is_spot ? "spot" : "on-demand",
                          r->fr.row.has_location ? ", placed in " : "",
                          r->fr.row.has_location ? r->fr.row.loc.zone : "");
}

static void autoscale(ctl_service_t *svc)
{
    ctl_fleet_action_t *a = NULL;
    size_t n = 0;
    double t = now_s();

    ctl_fleet_autoscale(&svc->fleet, svc->row.active_versions, svc->row.n_active, t, &a, &n);
    for (size_t i = 0; i < n; i++) {
        ctl_replica_t *r = (ctl_replica_t *)a[i].r;

        if (a[i].kind == CTL_FLEET_LAUNCH)
            replica_created(svc, r);
        else
            CORE_INFO("%s: scaling down replica %d", svc->row.name, r->fr.row.id);
    }
    /* Launched once all are placed, as the fleet's placement assumes. */
    for (size_t i = 0; i < n; i++)
        if (a[i].kind == CTL_FLEET_LAUNCH)
            queue_launch((ctl_replica_t *)a[i].r);
    if (n)
        CORE_INFO("%s: autoscaler: %zu decision(s), target %d (qps %.2f)", svc->row.name, n,
                  ctl_scaler_final_target(&svc->fleet.scaler), svc->fleet.scaler.last_qps);
    free(a);
    persist_fleet(svc);
    svc->next_decision = t + ctl_scaler_next_interval(&svc->fleet.scaler);
    update_status(svc);
}

/* ------------------------------------------------------------------ */
/* sky-lb supervision */

static int port_free(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    if (fd < 0)
        return 0;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static int pick_lb_port(ctl_serve_t *s)
{
    for (int p = s->cfg.lb_port_start; p < 65536; p++) {
        bool used = false;

        for (ctl_service_t *o = s->services; o; o = o->next)
            used |= !o->deleted && o->row.lb_port == p;
        if (!used && port_free(p))
            return p;
    }
    return -EADDRINUSE;
}

/*
 * Controllers of other SKY_HOMEs pick ports on the same machine, and two
 * sky-lbs that bind one port share it through SO_REUSEPORT. So picking a
 * port and starting the LB that takes it happen under a machine-wide lock,
 * released once the port is in use (or after LB_PORT_WAIT_MS; the LB binds
 * within milliseconds).
 */
#define LB_PORT_LOCK    "sky-serve-lb-ports.lock"
#define LB_PORT_WAIT_MS 3000

static int lb_port_lock(void)
{
    const char *dirs[] = {"/run", "/tmp"};

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dirs[i], LB_PORT_LOCK);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            continue;
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                close(fd);
                return -1;
            }
        }
        return fd;
    }
    return -1;
}

static void lb_port_unlock(int fd, int port)
{
    if (fd < 0)
        return;
    for (int waited = 0; port > 0 && waited < LB_PORT_WAIT_MS && port_free(port); waited += 10)
        usleep(10 * 1000);
    close(fd);
}

static int pid_is_lb(int pid, const char *svc)
{
    char path[64], buf[4096];
    ssize_t n;
    int fd, is_lb = 0, has_svc = 0;

    if (pid <= 0 || kill(pid, 0) != 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
        const char *a = buf + i;
        const char *slash = strrchr(a, '/');

        if (i == 0)
            is_lb = strcmp(slash ? slash + 1 : a, "sky-lb") == 0;
        if (strcmp(a, "--service") == 0 && i + (ssize_t)strlen(a) + 1 < n)
            has_svc = strcmp(a + strlen(a) + 1, svc) == 0;
    }
    return is_lb && has_svc;
}

static void lb_proc_closed(uv_handle_t *h)
{
    free(h);
}

static void on_lb_exit(uv_process_t *p, int64_t status, int sig)
{
    ctl_service_t *svc = p->data;

    uv_close((uv_handle_t *)p, lb_proc_closed);
    if (!svc)
        return;
    svc->lb_proc = NULL;
    svc->row.lb_pid = 0;
    if (svc->deleted || going_down(svc) || svc->s->stopping)
        return;
    /* The endpoint is down until the LB is back: after a healthy run restart
     * it at once; only a crash loop waits out the backoff. */
    double wait = 0;
    if (now_s() - svc->lb_spawned_at < LB_HEALTHY_RUN_S)
        wait = ctl_backoff_next(&svc->lb_backoff);
    else
        ctl_backoff_reset(&svc->lb_backoff);
    svc->lb_restart_at = now_s() + wait;
    CORE_WARN("%s: sky-lb exited (status %lld, signal %d); restarting in %.1f s", svc->row.name,
              (long long)status, sig, wait);
    lb_ensure(svc->s, svc);
}

/* The URL the LB routes to for <r>, or NULL when <r> is not in its ready set. */
static char *lb_url(const ctl_service_t *svc, const ctl_replica_t *r)
{
    bool active = false;

    if (ctl_replica_row_status(&r->fr.row) != CTL_REPLICA_READY || !r->fr.row.ip[0])
        return NULL;
    for (size_t i = 0; i < svc->row.n_active; i++)
        active |= svc->row.active_versions[i] == r->fr.row.version;
    if (!active)
        return NULL;
    return core_xasprintf("http://%s:%d", r->fr.row.ip,
                          r->fr.row.replica_port + r->fr.row.port_offset);
}

static int lb_spawn(ctl_serve_t *s, ctl_service_t *svc)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    char listen[32], ctrl[256], sync[32], *log = NULL, *cert = NULL, *key = NULL;
    const char **argv;
    char **urls;
    ctl_version_t *v = ctl_service_latest(svc);
    int n = 0, n_urls = 0, n_reps = 0, fd, rc, port_lock = -1;
    uv_process_t *p;

    if (!s->lb_path) {
        CORE_ERROR("%s: cannot find the sky-lb program", svc->row.name);
        return -ENOENT;
    }
    if (svc->row.lb_port <= 0) {
        port_lock = lb_port_lock();
        rc = pick_lb_port(s);
        if (rc < 0) {
            lb_port_unlock(port_lock, 0);
            return rc;
        }
        svc->row.lb_port = rc;
    }
    snprintf(listen, sizeof(listen), "0.0.0.0:%d", svc->row.lb_port);
    /* The path names the service: the LB posts {controller}/controller/load_balancer_sync. */
    snprintf(ctrl, sizeof(ctrl), "http://127.0.0.1:%d/lb/%s", s->port, svc->row.name);
    snprintf(sync, sizeof(sync), "%g", s->cfg.lb_sync_interval);
    CTL_FOR_EACH_REPLICA(svc, r)
    n_reps++;
    argv = core_xcalloc((size_t)(20 + 2 * n_reps), sizeof(*argv));
    urls = core_xcalloc((size_t)(n_reps + 1), sizeof(*urls));
    argv[n++] = s->lb_path;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--controller";
    argv[n++] = ctrl;
    argv[n++] = "--service";
    argv[n++] = svc->row.name;
    argv[n++] = "--controller-token-file";
    argv[n++] = s->token_path;
    argv[n++] = "--sync-interval";
    argv[n++] = sync;
    argv[n++] = "--policy";
    argv[n++] = svc->row.lb_policy[0] ? svc->row.lb_policy : "least_load";
    /* A restarted LB routes from its first request on, not after its first sync. */
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        if ((urls[n_urls] = lb_url(svc, r)) != NULL) {
            argv[n++] = "--replica";
            argv[n++] = urls[n_urls++];
        }
    }
    if (v && v->task && v->task->service->tls_certfile) {
        /* Relative to the directory the CLI ran in, like the workdir. */
        cert = ctl_serve_resolve_path(v->task->service->tls_certfile, v->row.cwd);
        key = ctl_serve_resolve_path(v->task->service->tls_keyfile, v->row.cwd);
        argv[n++] = "--tls-cert";
        argv[n++] = cert;
        argv[n++] = "--tls-key";
        argv[n++] = key;
    }
    argv[n] = NULL;
    log = ctl_serve_log_path(s, svc->row.name, "load_balancer.log");
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(log);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fd;
    o.file = s->lb_path;
    o.args = (char **)argv;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = on_lb_exit;
    /* Its own session: the LB outlives a controller restart and is re-adopted. */
    o.flags = UV_PROCESS_DETACHED;
    p = core_xcalloc(1, sizeof(*p));
    rc = uv_spawn(s->loop, p, &o);
    close(fd);
    if (rc < 0) {
        free(p);
        CORE_ERROR("%s: spawning sky-lb: %s", svc->row.name, uv_strerror(rc));
        goto out;
    }
    p->data = svc;
    svc->lb_proc = p;
    svc->lb_spawned_at = now_s();
    svc->row.lb_pid = p->pid;
    svc->row.lb_ctrl_port = s->port;
    persist_service(svc);
    CORE_INFO("%s: sky-lb pid %d on port %d (%d ready replicas)", svc->row.name, p->pid,
              svc->row.lb_port, n_urls);
out:
    lb_port_unlock(port_lock, rc == 0 ? svc->row.lb_port : 0);
    for (int i = 0; i < n_urls; i++)
        free(urls[i]);
    free(urls);
    free(argv);
    free(cert);
    free(key);
    return rc;
}

static void lb_ensure(ctl_serve_t *s, ctl_service_t *svc)
{
    if (svc->lb_proc || going_down(svc))
        return;
    if (svc->row.lb_pid > 0) {
        if (pid_is_lb(svc->row.lb_pid, svc->row.name) && svc->row.lb_ctrl_port == s->port)
            return; /* adopted and alive */
        if (pid_is_lb(svc->row.lb_pid, svc->row.name)) {
            /* It syncs with a port we no longer have. */
            kill(svc->row.lb_pid, SIGTERM);
        } else if (svc->lb_restart_at == 0) {
            /* An adopted LB had been running: restart it at once. */
            CORE_WARN("%s: sky-lb (pid %d) is gone", svc->row.name, svc->row.lb_pid);
            svc->lb_restart_at = now_s();
        }
        svc->row.lb_pid = 0;
        persist_service(svc);
    }
    if (svc->lb_restart_at > now_s())
        return;
    svc->lb_restart_at = 0;
    if (lb_spawn(s, svc) < 0)
        svc->lb_restart_at = now_s() + ctl_backoff_next(&svc->lb_backoff);
}

static void lb_stop(ctl_serve_t *s, ctl_service_t *svc)
{
    (void)s;
    if (svc->lb_proc) {
        uv_process_kill(svc->lb_proc, SIGTERM);
    } else if (svc->row.lb_pid > 0 && pid_is_lb(svc->row.lb_pid, svc->row.name)) {
        kill(svc->row.lb_pid, SIGTERM);
    }
}

/* ------------------------------------------------------------------ */
/* service lifecycle */

static void service_free(ctl_service_t *svc)
{
    ctl_fleet_destroy(&svc->fleet);
    for (size_t i = 0; i < svc->n_versions; i++)
        version_clear(&svc->versions[i]);
    free(svc->versions);
    if (svc->lb_proc)
        svc->lb_proc->data = NULL;
    free(svc);
}

static void service_link(ctl_serve_t *s, ctl_service_t *svc)
{
    ctl_service_t **pp = &s->services;

    while (*pp && strcmp((*pp)->row.name, svc->row.name) < 0)
        pp = &(*pp)->next;
    svc->next = *pp;
    *pp = svc;
}

static void service_unlink(ctl_serve_t *s, ctl_service_t *svc)
{
    for (ctl_service_t **pp = &s->services; *pp; pp = &(*pp)->next) {
        if (*pp == svc) {
            *pp = svc->next;
            return;
        }
    }
}

static void maybe_finish_down(ctl_service_t *svc)
{
    ctl_serve_t *s = svc->s;
    bool blocked = false;

    if (!going_down(svc) || svc->deleted)
        return;
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        if (r->fr.row.f.down == CTL_PROC_FAILED && svc->row.purge)
            continue;
        blocked = true;
    }
    if (blocked) {
        /* Only replicas whose termination failed remain: FAILED_CLEANUP. */
        bool all_failed = ctl_replica_first(svc) != NULL;

        CTL_FOR_EACH_REPLICA(svc, r)
        all_failed &= r->fr.row.f.down == CTL_PROC_FAILED && !r->fr.busy;
        if (all_failed && svc->row.status != CTL_SERVICE_FAILED_CLEANUP) {
            svc->row.status = CTL_SERVICE_FAILED_CLEANUP;
            persist_service(svc);
            CORE_ERROR("%s: FAILED_CLEANUP (replicas could not be terminated)", svc->row.name);
        }
        return;
    }
    lb_stop(s, svc);
    ctl_store_delete_service(s->store, svc->row.name);
    CORE_INFO("%s: service removed", svc->row.name);
    svc->deleted = 1;
    service_unlink(s, svc);
    service_free(svc);
}

int ctl_serve_down(ctl_serve_t *s, ctl_service_t *svc, bool purge)
{
    (void)s;
    svc->row.status = CTL_SERVICE_SHUTTING_DOWN;
    svc->row.purge = svc->row.purge || purge;
    persist_service(svc);
    lb_stop(s, svc);
    {
        ctl_fleet_replica_t **done = NULL;
        size_t n = ctl_fleet_down_all(&svc->fleet, purge, now_s(), &done);

        for (size_t i = 0; i < n; i++)
            replica_remove(svc, (ctl_replica_t *)done[i]);
        free(done);
    }
    persist_fleet(svc);
    maybe_finish_down(svc);
    return 0;
}

int ctl_serve_terminate_replica(ctl_serve_t *s, ctl_service_t *svc, int id, bool purge, char **err)
{
    ctl_replica_t *r = ctl_service_replica(svc, id);
    ctl_replica_status_t st;

    if (!r) {
        *err = core_xasprintf("Replica %d of service %s does not exist.", id, svc->row.name);
        return CORE_ENOTFOUND;
    }
    st = ctl_replica_row_status(&r->fr.row);
    if (st == CTL_REPLICA_SHUTTING_DOWN) {
        *err =
            core_xasprintf("Replica %d of service %s is already shutting down.", id, svc->row.name);
        return CORE_ECONFLICT;
    }
    if (ctl_replica_status_is_failed(st) || st == CTL_REPLICA_PREEMPTED) {
        if (!purge) {
            *err = core_xasprintf("Replica %d of service %s is in failed status (%s). Use "
                                  "--purge to remove it.",
                                  id, svc->row.name, ctl_replica_status_name(st));
            return CORE_ECONFLICT;
        }
        if (r->fr.row.f.down != CTL_PROC_NONE && !r->fr.busy) {
            replica_remove(svc, r);
            update_status(svc);
            return 0;
        }
    }
    CORE_INFO("%s: terminating replica %d on request%s", svc->row.name, id,
              purge ? " (purge)" : "");
    ctl_fleet_scale_down(&svc->fleet, &r->fr, purge, s->cfg.drain_seconds, now_s());
    persist_replica(r);
    update_status(svc);
    return 0;
}

static int alloc_replica_id(void *arg, int *out)
{
    ctl_service_t *svc = arg;

    return ctl_store_alloc_replica_id(svc->s->store, svc->row.name, out);
}

/* Sets up the in-memory side of a service whose rows exist (new or recovered). */
static int service_init_runtime(ctl_serve_t *s, ctl_service_t *svc, const char *scaler_json,
                                const char *placer_json)
{
    ctl_version_t *v = ctl_service_latest(svc);
    char *err = NULL;

    svc->s = s;
    ctl_fleet_init(&svc->fleet, svc->row.name, &s->cfg, sizeof(ctl_replica_t), alloc_replica_id,
                   svc, ctl_rng_uniform, &s->rng);
    ctl_backoff_init(&svc->lb_backoff, s->cfg.lb_restart_initial, 10, ctl_rng_uniform, &s->rng);
    if (!v || !v->task) {
        CORE_ERROR("%s: no usable version", svc->row.name);
        return CORE_ESPEC;
    }
    if (ctl_fleet_start(&svc->fleet, v->task, v->row.version, &err) < 0) {
        CORE_ERROR("%s: autoscaler: %s", svc->row.name, err ? err : "?");
        free(err);
        return CORE_ESPEC;
    }
    svc->fleet.scaler.st.update_mode = v->row.mode;
    /* The placer's locations: the first version's spot candidates. */
    if (ctl_fleet_wants_placer(v->task)) {
        ctl_fleet_use_placer(&svc->fleet);
        placer_build(s, svc, svc->versions[0].task ? svc->versions[0].task : v->task);
    }
    if (scaler_json) {
        cJSON *j = cJSON_Parse(scaler_json);

        if (ctl_scaler_state_from_json(&svc->fleet.scaler, NULL, j, now_s()) < 0)
            CORE_WARN("%s: stored autoscaler state unreadable; starting fresh", svc->row.name);
        cJSON_Delete(j);
    }
    if (placer_json && svc->fleet.has_placer) {
        cJSON *j = cJSON_Parse(placer_json);

        if (ctl_placer_from_json(&svc->fleet.placer, j) < 0)
            CORE_WARN("%s: stored placer state unreadable", svc->row.name);
        cJSON_Delete(j);
    }
    return 0;
}

static void requested_label(ctl_serve_t *s, ctl_version_t *v, char *out, size_t outlen)
{
    core_candidate_t *c = NULL;
    size_t n = 0;

    snprintf(out, outlen, "-");
    if (s->catalog && core_catalog_resolve(s->catalog, &v->task->resources, &c, &n, NULL) == 0 &&
        n > 0)
        core_candidate_label(&c[0], out, outlen);
    free(c);
}

static void gen_name(ctl_serve_t *s, char *out, size_t outlen)
{
    do {
        snprintf(out, outlen, "sky-service-%04x",
                 (unsigned)(ctl_rng_uniform(&s->rng) * 65536) & 0xffff);
    } while (ctl_serve_find(s, out));
}

int ctl_serve_up(ctl_serve_t *s, const char *name, const ctl_task_src_t *src, ctl_service_t **out,
                 char **err)
{
    ctl_service_t *svc;
    ctl_version_t *v;
    core_candidate_t *c = NULL;
    size_t nc = 0;
    char gen[CTL_SVC_NAME_MAX];
    int rc, port_lock = -1;

    if (!name || !*name) {
        gen_name(s, gen, sizeof(gen));
        name = gen;
    }
    if (!ctl_serve_valid_name(name)) {
        *err = core_xasprintf("Invalid service name '%s': use lowercase letters, digits and "
                              "dashes, starting with a letter (at most %d characters).",
                              name, CTL_SVC_NAME_MAX - 1);
        return CORE_ESPEC;
    }
    if (ctl_serve_find(s, name)) {
        *err = core_xasprintf("Service %s already exists.", name);
        return CORE_ECONFLICT;
    }
    svc = core_xcalloc(1, sizeof(*svc));
    svc->s = s;
    snprintf(svc->row.name, sizeof(svc->row.name), "%s", name);
    svc->versions = core_xcalloc(1, sizeof(*svc->versions));
    v = &svc->versions[0];
    version_set(v, CTL_INITIAL_VERSION, src, CTL_UPDATE_ROLLING);
    svc->n_versions = 1;
    if ((rc = version_load(v, err)) < 0)
        goto fail;
    /* Refuse what can never launch now rather than failing every replica later. */
    if (s->catalog &&
        (rc = core_catalog_resolve(s->catalog, &v->task->resources, &c, &nc, err)) < 0)
        goto fail;
    free(c);
    svc->row.status = CTL_SERVICE_CONTROLLER_INIT;
    svc->row.created_at = now_s();
    snprintf(svc->row.lb_policy, sizeof(svc->row.lb_policy), "%s",
             core_lb_policy_name(v->task->service->lb_policy));
    requested_label(s, v, svc->row.requested_resources, sizeof(svc->row.requested_resources));
    if ((rc = service_init_runtime(s, svc, NULL, NULL)) < 0) {
        *err = core_xstrdup("invalid replica policy");
        goto fail;
    }
    port_lock = lb_port_lock();
    rc = pick_lb_port(s);
    if (rc < 0) {
        *err = core_xstrdup("no free port for the load balancer");
        goto fail;
    }
    svc->row.lb_port = rc;
    {
        char *dir = ctl_serve_log_path(s, name, "");

        core_mkdir_p(dir, 0755);
        free(dir);
    }
    /* Stale rows from an earlier service of the same name must not leak in. */
    ctl_store_delete_service(s->store, name);
    if ((rc = ctl_store_put_service(s->store, &svc->row)) < 0 ||
        (rc = ctl_store_put_version(s->store, name, &v->row)) < 0) {
        *err = core_xstrdup("cannot write the service database");
        goto fail;
    }
    persist_scaler(svc);
    service_link(s, svc);
    svc->next_probe = now_s();
    svc->next_decision = now_s();
    lb_ensure(s, svc);
    lb_port_unlock(port_lock, svc->lb_proc ? svc->row.lb_port : 0);
    CORE_INFO("%s: service up (version 1, LB port %d)", name, svc->row.lb_port);
    *out = svc;
    return 0;
fail:
    lb_port_unlock(port_lock, 0);
    service_free(svc);
    return rc < 0 ? rc : CORE_ESPEC;
}

int ctl_serve_update(ctl_serve_t *s, ctl_service_t *svc, const ctl_task_src_t *src,
                     ctl_update_mode_t mode, int *version, char **err)
{
    ctl_version_t nv, *old;
    ctl_scaler_spec_t sp;
    int rc, next;

    if (going_down(svc)) {
        *err = core_xasprintf("Service %s is shutting down.", svc->row.name);
        return CORE_ECONFLICT;
    }
    memset(&nv, 0, sizeof(nv));
    if ((rc = ctl_store_next_version(s->store, svc->row.name, &next)) < 0)
        return rc;
    old = ctl_service_latest(svc);
    if (old && next <= old->row.version)
        next = old->row.version + 1;
    version_set(&nv, next, src, mode);
    if ((rc = version_load(&nv, err)) < 0)
        goto fail;
    ctl_fleet_scaler_spec(&s->cfg, nv.task->service, &sp);
    if ((rc = ctl_scaler_spec_validate(&sp, err)) < 0)
        goto fail;
    if (old && old->task && nv.task->service->lb_policy != old->task->service->lb_policy)
        CORE_WARN("%s: load_balancing_policy cannot be changed by update; ignored", svc->row.name);
    if ((rc = ctl_store_put_version(s->store, svc->row.name, &nv.row)) < 0) {
        *err = core_xstrdup("cannot write the service database");
        goto fail;
    }
    /* Replica reuse: only `service:` changed -> relabel, no relaunch. */
    if (old && old->fingerprint && nv.task->n_file_mounts == 0 &&
        strcmp(old->fingerprint, nv.fingerprint) == 0) {
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            if (ctl_replica_status_is_terminal(ctl_replica_row_status(&r->fr.row)))
                continue;
            r->fr.row.version = next;
            persist_replica(r);
            CORE_INFO("%s replica %d: reused for version %d", svc->row.name, r->fr.row.id, next);
        }
    }
    svc->versions = core_xrealloc(svc->versions, (svc->n_versions + 1) * sizeof(*svc->versions));
    svc->versions[svc->n_versions++] = nv;
    svc->fleet.version = next;
    svc->fleet.spot = core_task_uses_spot(nv.task);
    rc = ctl_scaler_update_version(&svc->fleet.scaler, next, &sp, mode, now_s(), err);
    if (rc < 0)
        CORE_WARN("%s: autoscaler update: %s", svc->row.name, err && *err ? *err : "?");
    free(*err);
    *err = NULL;
    persist_scaler(svc);
    svc->next_decision = now_s();
    update_status(svc);
    *version = next;
    CORE_INFO("%s: updated to version %d (%s)", svc->row.name, next, ctl_update_mode_name(mode));
    return 0;
fail:
    version_clear(&nv);
    return rc < 0 ? rc : CORE_ESPEC;
}

/* Old versions nobody runs any more are forgotten (the reference does the same). */
static void prune_versions(ctl_service_t *svc)
{
    int minv = ctl_service_latest(svc) ? ctl_service_latest(svc)->row.version : 0;
    size_t k = 0;

    CTL_FOR_EACH_REPLICA(svc, r)
    if (r->fr.row.version < minv)
        minv = r->fr.row.version;
    while (k + 1 < svc->n_versions && svc->versions[k].row.version < minv)
        k++;
    if (k == 0)
        return;
    for (size_t i = 0; i < k; i++)
        version_clear(&svc->versions[i]);
    memmove(svc->versions, svc->versions + k, (svc->n_versions - k) * sizeof(*svc->versions));
    svc->n_versions -= k;
    ctl_store_delete_versions_below(svc->s->store, svc->row.name, minv);
}

/* ------------------------------------------------------------------ */
/* views */

char *ctl_serve_endpoint(ctl_serve_t *s, ctl_service_t *svc)
{
    return core_xasprintf("%s:%d", s->host_ip, svc->row.lb_port);
}

static cJSON *replica_json(ctl_replica_t *r)
{
    cJSON *o = cJSON_CreateObject();
    ctl_replica_status_t st = ctl_replica_row_status(&r->fr.row);

    cJSON_AddNumberToObject(o, "replica_id", r->fr.row.id);
    cJSON_AddNumberToObject(o, "version", r->fr.row.version);
    cJSON_AddStringToObject(o, "status", ctl_replica_status_name(st));
    if (r->fr.row.ip[0] &&
        (st == CTL_REPLICA_READY || st == CTL_REPLICA_NOT_READY || st == CTL_REPLICA_STARTING)) {
        char *u = core_xasprintf("http://%s:%d", r->fr.row.ip,
                                 r->fr.row.replica_port + r->fr.row.port_offset);

        cJSON_AddStringToObject(o, "endpoint", u);
        free(u);
    } else {
        cJSON_AddNullToObject(o, "endpoint");
    }
    cJSON_AddNumberToObject(o, "launched_at", r->fr.row.launched_at);
    cJSON_AddStringToObject(o, "resources", r->fr.row.resources);
    cJSON_AddBoolToObject(o, "is_spot", r->fr.row.is_spot);
    cJSON_AddStringToObject(o, "cloud", r->fr.row.cloud[0] ? r->fr.row.cloud : r->fr.row.loc.cloud);
    cJSON_AddStringToObject(o, "region",
                            r->fr.row.region[0] ? r->fr.row.region : r->fr.row.loc.region);
    cJSON_AddStringToObject(o, "zone", r->fr.row.zone[0] ? r->fr.row.zone : r->fr.row.loc.zone);
    cJSON_AddStringToObject(o, "instance_id", r->fr.row.instance_id);
    cJSON_AddStringToObject(o, "ip", r->fr.row.ip);
    return o;
}

cJSON *ctl_serve_service_json(ctl_serve_t *s, ctl_service_t *svc)
{
    cJSON *o = cJSON_CreateObject(), *av, *reps;
    ctl_version_t *v = ctl_service_latest(svc);
    char *ep = ctl_serve_endpoint(s, svc), *repr;
    int ready = 0, total = 0;

    cJSON_AddStringToObject(o, "name", svc->row.name);
    cJSON_AddStringToObject(o, "status", ctl_service_status_name(svc->row.status));
    if (svc->row.uptime > 0)
        cJSON_AddNumberToObject(o, "uptime", svc->row.uptime);
    else
        cJSON_AddNullToObject(o, "uptime");
    cJSON_AddNumberToObject(o, "version", v ? v->row.version : 0);
    av = cJSON_AddArrayToObject(o, "active_versions");
    for (size_t i = 0; i < svc->row.n_active; i++)
        cJSON_AddItemToArray(av, cJSON_CreateNumber(svc->row.active_versions[i]));
    cJSON_AddStringToObject(o, "endpoint", ep);
    free(ep);
    cJSON_AddNumberToObject(o, "lb_port", svc->row.lb_port);
    cJSON_AddStringToObject(o, "load_balancing_policy", svc->row.lb_policy);
    repr = v && v->task ? core_service_repr(v->task->service) : NULL;
    if (repr) {
        /* The "Replica autoscaling policy:" line of the repr. */
        char *line = strstr(repr, "Replica autoscaling policy:");

        if (line) {
            char *val = line + strlen("Replica autoscaling policy:"), *nl;

            while (*val == ' ')
                val++;
            nl = strchr(val, '\n');
            if (nl)
                *nl = '\0';
            cJSON_AddStringToObject(o, "autoscaling_policy", val);
        } else {
            cJSON_AddStringToObject(o, "autoscaling_policy", "");
        }
        free(repr);
    } else {
        cJSON_AddStringToObject(o, "autoscaling_policy", "");
    }
    cJSON_AddStringToObject(o, "requested_resources", svc->row.requested_resources);
    cJSON_AddNumberToObject(o, "target_num_replicas",
                            svc->fleet.scaler_ok ? ctl_scaler_final_target(&svc->fleet.scaler) : 0);
    reps = cJSON_AddArrayToObject(o, "replicas");
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        ctl_replica_status_t st = ctl_replica_row_status(&r->fr.row);

        ready += st == CTL_REPLICA_READY;
        total += !ctl_replica_status_is_failed(st);
        cJSON_AddItemToArray(reps, replica_json(r));
    }
    cJSON_AddNumberToObject(o, "ready", ready);
    cJSON_AddNumberToObject(o, "total", total);
    return o;
}

cJSON *ctl_serve_lb_sync(ctl_serve_t *s, ctl_service_t *svc, const cJSON *body)
{
    const cJSON *agg = cJSON_GetObjectItemCaseSensitive(body, "request_aggregator");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(agg, "timestamps");
    cJSON *out = cJSON_CreateObject(), *info = cJSON_AddObjectToObject(out, "replica_info");
    double t = now_s();

    (void)s;
    if (cJSON_IsArray(ts) && svc->fleet.scaler_ok) {
        int n = cJSON_GetArraySize(ts);
        double *v = core_xmalloc((size_t)(n ? n : 1) * sizeof(*v));
        size_t k = 0;
        const cJSON *it;

        cJSON_ArrayForEach(it, ts)
        {
            if (cJSON_IsNumber(it))
                v[k++] = it->valuedouble;
        }
        ctl_scaler_add_requests(&svc->fleet.scaler, v, k, t);
        free(v);
    }
    if (going_down(svc))
        return out;
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        cJSON *o;
        char *u = lb_url(svc, r);

        if (!u)
            continue;
        o = cJSON_AddObjectToObject(info, u);
        cJSON_AddNumberToObject(o, "replica_id", r->fr.row.id);
        cJSON_AddNumberToObject(o, "version", r->fr.row.version);
        cJSON_AddStringToObject(o, "gpu_type", "unknown");
        free(u);
    }
    return out;
}

/* ------------------------------------------------------------------ */
/* the tick */

static void replica_tick(ctl_replica_t *r, double t)
{
    ctl_serve_t *s = r->svc->s;

    if (r->fr.busy)
        return;
    if (ctl_fleet_down_due(&r->fr, t)) {
        queue_terminate(r);
        return;
    }
    if (r->fr.row.f.down != CTL_PROC_NONE)
        return;
    if (ctl_fleet_launch_due(&r->fr, t)) {
        queue_launch(r);
        return;
    }
    if (ctl_replica_should_track(&r->fr.row.f) && r->fr.row.agent_task_id > 0 && !r->job_polling &&
        t >= r->next_job_poll) {
        job_t *j = job_new(s, JOB_TASK_STATUS, r->svc->row.name, r->fr.row.id);

        snprintf(j->ip, sizeof(j->ip), "%s", r->fr.row.ip);
        j->agent_port = r->fr.row.agent_port;
        j->task_id = r->fr.row.agent_task_id;
        r->job_polling = 1;
        r->next_job_poll = t + s->cfg.job_status_interval;
        job_queue(j);
    }
}

static void on_tick(uv_timer_t *timer)
{
    ctl_serve_t *s = timer->data;
    double t = now_s();
    bool any_launched = false;

    for (ctl_service_t *svc = s->services, *next; svc; svc = next) {
        next = svc->next;
        if (!going_down(svc)) {
            lb_ensure(s, svc);
            if (t >= svc->next_probe && svc->probes_pending == 0)
                probe_round(svc);
            if (t >= svc->next_decision && svc->fleet.scaler_ok)
                autoscale(svc);
        }
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            replica_tick(r, t);
            any_launched |= r->fr.row.f.launch == CTL_PROC_SUCCEEDED && r->fr.row.instance_id[0];
        }
        if (going_down(svc))
            maybe_finish_down(svc);
        else
            prune_versions(svc);
    }
    if (any_launched && !s->poll_busy && t >= s->next_poll) {
        job_t *j = job_new(s, JOB_LIST, NULL, 0);

        s->poll_busy = 1;
        s->next_poll = t + s->cfg.provider_poll_interval;
        job_queue(j);
    }
}

/* ------------------------------------------------------------------ */
/* startup, recovery */

static int load_services(ctl_serve_t *s)
{
    ctl_service_row_t *rows = NULL;
    size_t n = 0;
    int rc = ctl_store_list_services(s->store, &rows, &n);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        ctl_service_t *svc = core_xcalloc(1, sizeof(*svc));
        ctl_version_row_t *vr = NULL;
        ctl_replica_row_t *rr = NULL;
        size_t nv = 0, nr = 0;
        char *sj = NULL, *pj = NULL;
        int next_id;

        svc->row = rows[i];
        svc->s = s;
        ctl_store_list_versions(s->store, svc->row.name, &vr, &nv);
        svc->versions = core_xcalloc(nv ? nv : 1, sizeof(*svc->versions));
        for (size_t k = 0; k < nv; k++) {
            char *err = NULL;

            svc->versions[k].row = vr[k];
            if (version_load(&svc->versions[k], &err) < 0) {
                CORE_ERROR("%s: version %d: %s", svc->row.name, vr[k].version, err ? err : "?");
                free(err);
            }
        }
        free(vr);
        svc->n_versions = nv;
        ctl_store_get_meta(s->store, svc->row.name, &next_id, &sj, &pj);
        if (service_init_runtime(s, svc, sj, pj) < 0 &&
            svc->row.status != CTL_SERVICE_SHUTTING_DOWN) {
            CORE_ERROR("%s: cannot recover the service; it will be shut down", svc->row.name);
            svc->row.status = CTL_SERVICE_SHUTTING_DOWN;
        }
        free(sj);
        free(pj);
        ctl_store_list_replicas(s->store, svc->row.name, &rr, &nr);
        for (size_t k = 0; k < nr; k++) {
            ctl_replica_t *r = (ctl_replica_t *)ctl_fleet_add(&svc->fleet, &rr[k]);

            r->svc = svc;
            ctl_fleet_recover(&svc->fleet, &r->fr, now_s());
            if (r->fr.row.f.launch == CTL_PROC_SUCCEEDED)
                r->next_job_poll = now_s() + 1;
            CORE_INFO("%s replica %d: recovered as %s", svc->row.name, r->fr.row.id,
                      ctl_replica_status_name(ctl_replica_row_status(&r->fr.row)));
        }
        free(rr);
        persist_fleet(svc);
        /* A restart must not reset uptime or status (reference §9). The
         * service shows its last status until the first probe round. */
        svc->probed_once = svc->row.status != CTL_SERVICE_CONTROLLER_INIT;
        svc->next_probe = now_s();
        svc->next_decision =
            now_s() + (svc->fleet.scaler_ok ? ctl_scaler_next_interval(&svc->fleet.scaler) : 5);
        service_link(s, svc);
        CORE_INFO("%s: recovered (%s, %zu version(s))", svc->row.name,
                  ctl_service_status_name(svc->row.status), svc->n_versions);
        if (going_down(svc))
            ctl_serve_down(s, svc, svc->row.purge);
    }
    free(rows);
    return 0;
}

static void host_ip(char *out, size_t outlen)
{
    struct ifaddrs *ifa = NULL;

    snprintf(out, outlen, "127.0.0.1");
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        /* The local cloud's bridge and veths are not how users reach us. */
        if (strncmp(i->ifa_name, "skybr", 5) == 0 || strncmp(i->ifa_name, "veth", 4) == 0 ||
            strncmp(i->ifa_name, "sky", 3) == 0)
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)outlen);
        break;
    }
    freeifaddrs(ifa);
}

static void on_signal(uv_signal_t *h, int sig)
{
    ctl_serve_t *s = h->data;

    /* Replicas and LBs keep running; a restart re-adopts them. */
    CORE_INFO("signal %d: exiting (replicas and load balancers keep running)", sig);
    s->stopping = 1;
    uv_stop(s->loop);
}

static int read_port_file(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int port = 0;

    if (core_read_file(path, 64, &text, &len) == 0)
        port = atoi(text);
    free(text);
    return port > 0 && port < 65536 ? port : 0;
}

int ctl_serve_main(const ctl_serve_opts_t *opts)
{
    ctl_serve_t *s = core_xcalloc(1, sizeof(*s));
    core_http_server_opts_t ho;
    char *cfgpath, *dbpath, *lockpath, *portpath, *prevpath, *err = NULL, buf[32];
    int rc, port;

    s->loop = uv_default_loop();
    s->lock_fd = -1;
    ctl_rng_seed(&s->rng, (uint64_t)core_mono_ms() ^ ((uint64_t)getpid() << 32));
    s->home = core_home_dir();
    s->serve_dir = core_xasprintf("%s/serve", s->home);
    core_mkdir_p(s->serve_dir, 0700);
    ctl_serve_cfg_default(&s->cfg);
    cfgpath = core_xasprintf("%s/config.yaml", s->home);
    rc = ctl_serve_cfg_load(&s->cfg, cfgpath, &err);
    free(cfgpath);
    if (rc < 0) {
        fprintf(stderr, "sky-controller: %s\n", err ? err : "bad configuration");
        free(err);
        return 2;
    }
    lockpath = core_xasprintf("%s/controller.lock", s->serve_dir);
    s->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockpath);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "sky-controller: another serve controller runs for %s\n", s->home);
        return 1;
    }
    s->token_path = core_xasprintf("%s/token", s->home);
    if ((rc = core_token_load(s->token_path, &s->token)) < 0) {
        fprintf(stderr, "sky-controller: token %s: %s\n", s->token_path, core_strerror(rc));
        return 1;
    }
    if ((rc = core_catalog_load(NULL, &s->catalog, &err)) < 0) {
        CORE_ERROR("catalog: %s", err ? err : core_strerror(rc));
        free(err);
        err = NULL;
        s->catalog = NULL;
    }
    s->lb_path = core_find_program("sky-lb");
    s->provs = opts->provs;
    if (!s->provs && (rc = core_prov_registry_new(NULL, 0, &s->provs)) < 0) {
        fprintf(stderr, "sky-controller: providers: %s\n", core_strerror(rc));
        return 1;
    }
    dbpath = core_xasprintf("%s/services.db", s->serve_dir);
    rc = ctl_store_open(dbpath, &s->store);
    free(dbpath);
    if (rc < 0) {
        fprintf(stderr, "sky-controller: cannot open the service database\n");
        return 1;
    }
    if ((rc = ctl_prober_new(s->loop, &s->prober)) < 0)
        return 1;
    host_ip(s->host_ip, sizeof(s->host_ip));
    memset(&ho, 0, sizeof(ho));
    ho.token = s->token;
    ho.max_body = 4 << 20;
    portpath = core_xasprintf("%s/controller.port", s->serve_dir);
    prevpath = core_xasprintf("%s/controller.prev_port", s->serve_dir);
    port = opts->port;
    rc = -1;
    if (port == 0) {
        /* Keep the previous port so re-adopted LBs still reach us (the CLI
         * removes controller.port when it finds it stale, hence a copy). */
        int prev = read_port_file(prevpath);

        if (prev > 0)
            rc = core_http_server_start(s->loop, "127.0.0.1", prev, &ho, ctl_api_handle, s,
                                        &s->http);
    }
    if (rc < 0)
        rc = core_http_server_start(s->loop, "127.0.0.1", port, &ho, ctl_api_handle, s, &s->http);
    if (rc < 0) {
        fprintf(stderr, "sky-controller: listen 127.0.0.1:%d: %s\n", port, core_strerror(rc));
        return 1;
    }
    s->port = core_http_server_port(s->http);
    if ((rc = load_services(s)) < 0) {
        fprintf(stderr, "sky-controller: cannot load services: %s\n", core_strerror(rc));
        return 1;
    }
    snprintf(buf, sizeof(buf), "%d\n", s->port);
    core_write_file(prevpath, buf, strlen(buf), 0644);
    core_write_file(portpath, buf, strlen(buf), 0644);
    free(portpath);
    free(prevpath);
    CORE_INFO("serve controller listening on 127.0.0.1:%d (pid %d, home %s)", s->port, getpid(),
              s->home);
    uv_timer_init(s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 0, TICK_MS);
    uv_signal_init(s->loop, &s->sigterm);
    s->sigterm.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_init(s->loop, &s->sigint);
    s->sigint.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    uv_run(s->loop, UV_RUN_DEFAULT);
    /* Jobs may still block in the thread pool (a launch takes minutes);
     * their effects are idempotent on restart, so do not wait for them. */
    ctl_store_close(s->store);
    return 0;
}
