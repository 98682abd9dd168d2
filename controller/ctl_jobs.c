/*
 * The managed-jobs controller (see ctl_jobs.h for the API and the model).
 *
 * Threads: the main thread runs the libuv loop with the HTTP API; each
 * non-terminal job has a thread running its state machine (launch, monitor,
 * recover, cancel) with blocking provider and agent calls; each attempt has
 * a log thread copying the agent's output into the job's log folder. Every
 * thread has its own SQLite connection (WAL); the shared in-memory state is
 * only the job table below, under one mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "core/agent.h"
#include "core/catalog.h"
#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/prov.h"
#include "core/spec.h"
#include "core/taskrun.h"
#include "core/util.h"
#include "ctl_backoff.h"
#include "ctl_jobs.h"
#include "ctl_jobs_logic.h"

/*
 * Timings. The reference polls every 15 s and backs off launches from 60 s;
 * here detection must start recovery within 2 s of a preemption on the local
 * cloud, so the poll is 0.5 s. Every value can be overridden by an
 * environment variable named in the table, for tests and demos.
 */
typedef struct jobs_cfg {
    double poll_s;            /* SKY_JOBS_POLL_INTERVAL: monitor period */
    double retry_init_s;      /* SKY_JOBS_RETRY_INIT_GAP: first launch backoff (ref. 60 s) */
    double retry_max_factor;  /* SKY_JOBS_RETRY_MAX_FACTOR: cap = init * factor (ref. 5) */
    double failure_grace_s;   /* SKY_JOBS_FAILURE_GRACE: before the preemption check (ref. 5 s) */
    double unknown_timeout_s; /* SKY_JOBS_STATUS_TIMEOUT: status unknown -> recover (ref. 60 s) */
    double start_timeout_s;   /* SKY_JOBS_START_TIMEOUT: agent must start the task (ref. 50 s) */
} jobs_cfg_t;

static double env_double(const char *name, double def)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return def;
    double d;
    if (core_parse_num(v, 0, 1e9, &d) < 0) {
        CORE_WARN("ignoring %s=%s: not a non-negative number", name, v);
        return def;
    }
    return d;
}

static void cfg_load(jobs_cfg_t *c)
{
    c->poll_s = env_double("SKY_JOBS_POLL_INTERVAL", 0.5);
    c->retry_init_s = env_double("SKY_JOBS_RETRY_INIT_GAP", 60);
    c->retry_max_factor = env_double("SKY_JOBS_RETRY_MAX_FACTOR", 5);
    c->failure_grace_s = env_double("SKY_JOBS_FAILURE_GRACE", CTL_JOB_FAILURE_GRACE_S);
    c->unknown_timeout_s = env_double("SKY_JOBS_STATUS_TIMEOUT", 10);
    c->start_timeout_s = env_double("SKY_JOBS_START_TIMEOUT", 50);
}

typedef struct job job_t;
typedef struct jobs_ctx jobs_ctx_t;

struct job {
    long id;
    jobs_ctx_t *ctx;
    pthread_t thread;
    int thread_started;
    atomic_int cancel; /* user asked to cancel */
    atomic_int done;   /* thread finished */
    job_t *next;
};

struct jobs_ctx {
    jobs_cfg_t cfg;
    char *home;     /* $SKY_HOME */
    char *jobs_dir; /* $SKY_HOME/jobs */
    char *db_path;
    char *token;
    atomic_int stopping;
    pthread_mutex_t mu; /* guards <jobs> */
    job_t *jobs;
    sqlite3 *db; /* the loop thread's connection */
    uv_loop_t *loop;
    core_http_server_t *http;
    uv_signal_t sigterm, sigint;
};

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL, yaml TEXT NOT NULL, yaml_path TEXT, cwd TEXT, envs TEXT,"
    " resources TEXT, status TEXT NOT NULL, submitted_at REAL, start_at REAL, end_at REAL,"
    " last_recovered_at REAL NOT NULL DEFAULT -1, job_duration REAL NOT NULL DEFAULT 0,"
    " recovery_count INTEGER NOT NULL DEFAULT 0, failure_reason TEXT,"
    " run_id TEXT NOT NULL, restart_count INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " attempt INTEGER NOT NULL DEFAULT 0," /* log file index of the current attempt */
    " instance_id TEXT, cloud TEXT, region TEXT, zone TEXT, instance_type TEXT,"
    " spot INTEGER, ip TEXT, agent_port INTEGER, agent_task INTEGER,"
    " prev_cloud TEXT, prev_region TEXT, prev_zone TEXT, prev_type TEXT, prev_spot INTEGER);";

/* ---------------------------------------------------------------- store */

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        CORE_ERROR("open %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
    return db;
}

/* A job row as the thread works on it. */
typedef struct jrow {
    long id;
    char *name, *yaml, *yaml_path, *cwd, *envs, *resources, *failure_reason, *run_id;
    ctl_job_times_t t;
    int restart_count;
    int cancel_requested;
    int attempt;
    core_instance_t inst; /* id[0] == 0: none */
    int agent_task;
    core_candidate_t prev; /* where the last attempt ran (cloud[0] == 0: none) */
} jrow_t;

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? core_xstrdup((const char *)t) : NULL;
}

static void col_cpy(sqlite3_stmt *st, int i, char *out, size_t n)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, n, "%s", t ? (const char *)t : "");
}

static double col_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? CTL_TIME_UNSET
                                                     : sqlite3_column_double(st, i);
}

static void jrow_free(jrow_t *r)
{
    free(r->name);
    free(r->yaml);
    free(r->yaml_path);
    free(r->cwd);
    free(r->envs);
    free(r->resources);
    free(r->failure_reason);
    free(r->run_id);
    memset(r, 0, sizeof(*r));
}

#define JROW_COLS                                                                                  \
    "id,name,yaml,yaml_path,cwd,envs,resources,status,submitted_at,start_at,end_at,"               \
    "last_recovered_at,job_duration,recovery_count,failure_reason,run_id,restart_count,"           \
    "cancel_requested,attempt,instance_id,cloud,region,zone,instance_type,spot,ip,agent_port,"     \
    "agent_task,prev_cloud,prev_region,prev_zone,prev_type,prev_spot"

static void jrow_from(sqlite3_stmt *st, jrow_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(st, 0);
    r->name = col_dup(st, 1);
    r->yaml = col_dup(st, 2);
    r->yaml_path = col_dup(st, 3);
    r->cwd = col_dup(st, 4);
    r->envs = col_dup(st, 5);
    r->resources = col_dup(st, 6);
    const unsigned char *s = sqlite3_column_text(st, 7);
    if (ctl_job_status_parse(s ? (const char *)s : "", &r->t.status) < 0)
        r->t.status = CTL_JOB_FAILED_CONTROLLER;
    r->t.submitted_at = col_time(st, 8);
    r->t.start_at = col_time(st, 9);
    r->t.end_at = col_time(st, 10);
    r->t.last_recovered_at = sqlite3_column_double(st, 11);
    r->t.job_duration = sqlite3_column_double(st, 12);
    r->t.recovery_count = sqlite3_column_int(st, 13);
    r->failure_reason = col_dup(st, 14);
    r->run_id = col_dup(st, 15);
    r->restart_count = sqlite3_column_int(st, 16);
    r->cancel_requested = sqlite3_column_int(st, 17);
    r->attempt = sqlite3_column_int(st, 18);
    col_cpy(st, 19, r->inst.id, sizeof(r->inst.id));
    col_cpy(st, 20, r->inst.cloud, sizeof(r->inst.cloud));
    col_cpy(st, 21, r->inst.region, sizeof(r->inst.region));
    col_cpy(st, 22, r->inst.zone, sizeof(r->inst.zone));
    col_cpy(st, 23, r->inst.instance_type, sizeof(r->inst.instance_type));
    r->inst.spot = sqlite3_column_int(st, 24);
    col_cpy(st, 25, r->inst.ip, sizeof(r->inst.ip));
    r->inst.agent_port = sqlite3_column_int(st, 26);
    r->agent_task = sqlite3_column_int(st, 27);
    col_cpy(st, 28, r->prev.cloud, sizeof(r->prev.cloud));
    col_cpy(st, 29, r->prev.region, sizeof(r->prev.region));
    col_cpy(st, 30, r->prev.zone, sizeof(r->prev.zone));
    col_cpy(st, 31, r->prev.instance_type, sizeof(r->prev.instance_type));
    r->prev.spot = sqlite3_column_int(st, 32);
}

static int jrow_load(sqlite3 *db, long id, jrow_t *r)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT " JROW_COLS " FROM jobs WHERE id=?1", -1, &st, NULL) !=
        SQLITE_OK)
        return CORE_ESTORE;
    sqlite3_bind_int64(st, 1, id);
    int r_ = CORE_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        jrow_from(st, r);
        r_ = 0;
    }
    sqlite3_finalize(st);
    return r_;
}

static void bind_time(sqlite3_stmt *st, int i, double v)
{
    if (v < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, v);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Writes every mutable column of <r>. Retries on a busy database. */
static int jrow_save(sqlite3 *db, const jrow_t *r)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db,
        "UPDATE jobs SET status=?2,submitted_at=?3,start_at=?4,end_at=?5,last_recovered_at=?6,"
        "job_duration=?7,recovery_count=?8,failure_reason=?9,restart_count=?10,attempt=?11,"
        "instance_id=?12,cloud=?13,region=?14,zone=?15,instance_type=?16,spot=?17,ip=?18,"
        "agent_port=?19,agent_task=?20,prev_cloud=?21,prev_region=?22,prev_zone=?23,"
        "prev_type=?24,prev_spot=?25,resources=?26 WHERE id=?1",
        -1, &st, NULL);
    if (rc != SQLITE_OK) {
        CORE_ERROR("job %ld: save: %s", r->id, sqlite3_errmsg(db));
        return CORE_ESTORE;
    }
    sqlite3_bind_int64(st, 1, r->id);
    sqlite3_bind_text(st, 2, ctl_job_status_name(r->t.status), -1, SQLITE_STATIC);
    bind_time(st, 3, r->t.submitted_at);
    bind_time(st, 4, r->t.start_at);
    bind_time(st, 5, r->t.end_at);
    sqlite3_bind_double(st, 6, r->t.last_recovered_at);
    sqlite3_bind_double(st, 7, r->t.job_duration);
    sqlite3_bind_int(st, 8, r->t.recovery_count);
    bind_str(st, 9, r->failure_reason);
    sqlite3_bind_int(st, 10, r->restart_count);
    sqlite3_bind_int(st, 11, r->attempt);
    bind_str(st, 12, r->inst.id);
    bind_str(st, 13, r->inst.cloud);
    bind_str(st, 14, r->inst.region);
    bind_str(st, 15, r->inst.zone);
    bind_str(st, 16, r->inst.instance_type);
    sqlite3_bind_int(st, 17, r->inst.spot);
    bind_str(st, 18, r->inst.ip);
    sqlite3_bind_int(st, 19, r->inst.agent_port);
    sqlite3_bind_int(st, 20, r->agent_task);
    bind_str(st, 21, r->prev.cloud);
    bind_str(st, 22, r->prev.region);
    bind_str(st, 23, r->prev.zone);
    bind_str(st, 24, r->prev.instance_type);
    sqlite3_bind_int(st, 25, r->prev.spot);
    bind_str(st, 26, r->resources);
    for (int tries = 0; tries < 50; tries++) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            break;
        sqlite3_reset(st);
        usleep(100000);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        CORE_ERROR("job %ld: save: %s", r->id, sqlite3_errmsg(db));
        return CORE_ESTORE;
    }
    return 0;
}

static int db_cancel_requested(sqlite3 *db, long id)
{
    sqlite3_stmt *st = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(db, "SELECT cancel_requested FROM jobs WHERE id=?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

/* ------------------------------------------------------------ job files */

static char *job_path(const jobs_ctx_t *ctx, long id, const char *file)
{
    return core_xasprintf("%s/%ld/%s", ctx->jobs_dir, id, file);
}

/* Appends one timestamped line to the job's controller log. */
static void jlog(const jobs_ctx_t *ctx, long id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void jlog(const jobs_ctx_t *ctx, long id, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    CORE_INFO("job %ld: %s", id, msg);
    char *p = job_path(ctx, id, "controller.log");
    FILE *f = fopen(p, "a");
    free(p);
    if (f == NULL)
        return;
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(f, "%s %s\n", ts, msg);
    fclose(f);
}

/* ------------------------------------------------------------ log copy */

/*
 * Copies one attempt's output from the agent into run-<attempt>.log. After a
 * controller restart the stream starts from the beginning again, so the
 * bytes already in the file are skipped.
 */
typedef struct logcopy {
    jobs_ctx_t *ctx;
    long job;
    int attempt;
    char ip[64];
    int port;
    int task;
    pthread_t thread;
    atomic_int stop;
    FILE *f;
    long long skip;
    atomic_int refs; /* the thread and its owner; the last one frees */
    atomic_int done; /* the thread has written everything it will */
} logcopy_t;

#define LOGCOPY_DRAIN_S 10.0

static void logcopy_unref(logcopy_t *lc)
{
    if (atomic_fetch_sub(&lc->refs, 1) == 1)
        free(lc);
}

static int on_log_chunk(const char *data, size_t len, void *arg)
{
    logcopy_t *lc = arg;
    if (lc->skip > 0) {
        size_t s = (long long)len < lc->skip ? len : (size_t)lc->skip;
        lc->skip -= (long long)s;
        data += s;
        len -= s;
    }
    if (len)
        fwrite(data, 1, len, lc->f);
    fflush(lc->f);
    return atomic_load(&lc->stop) ? 1 : 0;
}

static void *logcopy_run(void *arg)
{
    logcopy_t *lc = arg;
    char name[32];
    snprintf(name, sizeof(name), "run-%d.log", lc->attempt);
    char *p = job_path(lc->ctx, lc->job, name);
    struct stat st;
    lc->skip = stat(p, &st) == 0 ? (long long)st.st_size : 0;
    lc->f = fopen(p, "a");
    free(p);
    if (lc->f == NULL) {
        atomic_store(&lc->done, 1);
        logcopy_unref(lc);
        return NULL;
    }
    /* The stream breaks when the instance vanishes; retry while the attempt lasts. */
    while (!atomic_load(&lc->stop)) {
        /* Each connection replays the task's output from its start. */
        struct stat s2;
        if (fstat(fileno(lc->f), &s2) == 0)
            lc->skip = (long long)s2.st_size;
        int r = core_agent_logs(lc->ip, lc->port, NULL, lc->task, 1, -1, on_log_chunk, lc);
        if (r == 0 || r == CORE_ENOTFOUND)
            break; /* the task ended (or stop) */
        usleep(300000);
    }
    fclose(lc->f);
    atomic_store(&lc->done, 1);
    logcopy_unref(lc);
    return NULL;
}

static logcopy_t *logcopy_start(jobs_ctx_t *ctx, const jrow_t *r)
{
    logcopy_t *lc = core_xcalloc(1, sizeof(*lc));
    lc->ctx = ctx;
    lc->job = r->id;
    lc->attempt = r->attempt;
    snprintf(lc->ip, sizeof(lc->ip), "%s", r->inst.ip);
    lc->port = r->inst.agent_port;
    lc->task = r->agent_task;
    atomic_init(&lc->refs, 2);
    if (pthread_create(&lc->thread, NULL, logcopy_run, lc) != 0) {
        free(lc);
        return NULL;
    }
    return lc;
}

/*
 * With <wait_for_end>, waits until the copy has the task's whole output (the
 * task ended, so the agent ends the stream). Otherwise tells the copy to stop
 * and leaves without waiting: its connection may hang on a vanished host
 * until the stream's idle check (about a second), and recovery must not.
 */
static void logcopy_finish(logcopy_t *lc, int wait_for_end)
{
    if (lc == NULL)
        return;
    /* Bounded: an instance that vanishes right after its task ended must not hold the
     * job's end forever (the copy retries a broken stream). */
    double deadline = core_now() + LOGCOPY_DRAIN_S;
    while (wait_for_end && !atomic_load(&lc->done) && core_now() < deadline)
        usleep(20000);
    if (atomic_load(&lc->done)) {
        pthread_join(lc->thread, NULL);
    } else {
        atomic_store(&lc->stop, 1);
        pthread_detach(lc->thread);
    }
    logcopy_unref(lc);
}

/* ------------------------------------------------------------ job thread */

typedef struct runner {
    jobs_ctx_t *ctx;
    job_t *job;
    sqlite3 *db;
    core_prov_t *prov;
    core_task_t *task;
    core_candidate_t *cands;
    size_t n_cands;
    jrow_t r;
    ctl_rng_t rng;
    logcopy_t *logs;
} runner_t;

static int cancelled(runner_t *ru)
{
    if (atomic_load(&ru->job->cancel))
        return 1;
    if (db_cancel_requested(ru->db, ru->r.id)) {
        atomic_store(&ru->job->cancel, 1);
        return 1;
    }
    return 0;
}

/* Sleeps <s> seconds in small steps; returns 1 early on cancel or shutdown. */
static int nap(runner_t *ru, double s)
{
    double end = core_now() + s;
    while (core_now() < end) {
        if (cancelled(ru) || atomic_load(&ru->ctx->stopping))
            return 1;
        double left = end - core_now();
        usleep((useconds_t)((left > 0.1 ? 0.1 : left > 0 ? left : 0) * 1e6));
    }
    return cancelled(ru) || atomic_load(&ru->ctx->stopping);
}

static void set_reason(jrow_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(jrow_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    free(r->failure_reason);
    r->failure_reason = s;
}

/* Where the job last ran: kept for the status (CLOUD/REGION/ZONE) and the recovery strategy. */
static void remember_location(jrow_t *r)
{
    if (r->inst.id[0] == '\0')
        return;
    snprintf(r->prev.cloud, sizeof(r->prev.cloud), "%s", r->inst.cloud);
    snprintf(r->prev.region, sizeof(r->prev.region), "%s", r->inst.region);
    snprintf(r->prev.zone, sizeof(r->prev.zone), "%s", r->inst.zone);
    snprintf(r->prev.instance_type, sizeof(r->prev.instance_type), "%s", r->inst.instance_type);
    r->prev.spot = r->inst.spot;
}

static int transport_error(int rc)
{
    return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -EIO ||
           rc == -EHOSTUNREACH;
}

/*
 * After a transport error: sky-localcloud may have died or restarted on another
 * port. Reconnecting finds it again (starting it if needed), as opening did.
 */
static void prov_reopen(runner_t *ru)
{
    core_prov_t *p = NULL;
    if (atomic_load(&ru->ctx->stopping) || core_prov_local_open(&p) < 0)
        return;
    core_prov_destroy(ru->prov);
    ru->prov = p;
}

/* Terminates <id>, retrying transport errors a few times: a leaked instance costs money. */
static int terminate_id(runner_t *ru, const char *id)
{
    int rc = 0;
    for (int tries = 0; tries < 5; tries++) {
        rc = core_prov_terminate(ru->prov, id);
        if (!transport_error(rc) || atomic_load(&ru->ctx->stopping))
            break;
        usleep(300000);
        prov_reopen(ru);
    }
    return rc;
}

static void terminate_instance(runner_t *ru)
{
    if (ru->r.inst.id[0] == '\0')
        return;
    int rc = terminate_id(ru, ru->r.inst.id);
    if (rc < 0)
        jlog(ru->ctx, ru->r.id, "terminating %s failed: %s", ru->r.inst.id, core_strerror(rc));
    else
        jlog(ru->ctx, ru->r.id, "terminated %s", ru->r.inst.id);
    remember_location(&ru->r);
    memset(&ru->r.inst, 0, sizeof(ru->r.inst));
    ru->r.agent_task = 0;
    jrow_save(ru->db, &ru->r);
}

/* Terminates every instance this job owns besides the current one: leftovers
 * of a launch the daemon was killed in the middle of. */
static void reap_orphans(runner_t *ru)
{
    core_instance_t *list = NULL;
    size_t n = 0;
    char owner[64];
    snprintf(owner, sizeof(owner), "job:%ld", ru->r.id);
    int rc = core_prov_list(ru->prov, &list, &n);
    if (transport_error(rc)) {
        prov_reopen(ru);
        rc = core_prov_list(ru->prov, &list, &n);
    }
    if (rc < 0) {
        jlog(ru->ctx, ru->r.id, "cannot list instances to reap leftovers: %s", core_strerror(rc));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].owner, owner) == 0 && strcmp(list[i].id, ru->r.inst.id) != 0) {
            jlog(ru->ctx, ru->r.id, "terminating leftover instance %s", list[i].id);
            terminate_id(ru, list[i].id);
        }
    }
    free(list);
}

static cJSON *task_envs(const runner_t *ru)
{
    cJSON *envs = cJSON_CreateObject();
    const jrow_t *r = &ru->r;
    cJSON_AddStringToObject(envs, "SKYPILOT_RUN_ID", r->run_id);
    cJSON_AddStringToObject(envs, "SKYPILOT_TASK_ID", r->run_id);
    cJSON_AddStringToObject(envs, "SKYPILOT_TASK_IDS", r->run_id);
    char id[32];
    snprintf(id, sizeof(id), "%ld", r->id);
    cJSON_AddStringToObject(envs, "SKYPILOT_JOB_ID", id);
    cJSON_AddStringToObject(envs, "SKYPILOT_NODE_RANK", "0");
    cJSON_AddStringToObject(envs, "SKYPILOT_NUM_NODES", "1");
    cJSON_AddStringToObject(envs, "SKYPILOT_NODE_IPS", r->inst.ip);
    cJSON_AddStringToObject(envs, "SKYPILOT_NUM_GPUS_PER_NODE", "0");
    char *info = core_xasprintf(
        "{\"cluster_name\":\"%s-%ld\",\"cloud\":\"%s\",\"region\":\"%s\",\"zone\":\"%s\"}", r->name,
        r->id, r->inst.cloud, r->inst.region, r->inst.zone);
    cJSON_AddStringToObject(envs, "SKYPILOT_CLUSTER_INFO", info);
    free(info);
    /* --env values given at launch win over the YAML's. */
    cJSON *user = r->envs ? cJSON_Parse(r->envs) : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, user)
    {
        if (cJSON_IsString(e)) {
            cJSON_DeleteItemFromObjectCaseSensitive(envs, e->string);
            cJSON_AddStringToObject(envs, e->string, e->valuestring);
        }
    }
    cJSON_Delete(user);
    return envs;
}

typedef enum launch_result {
    LAUNCH_OK = 0,
    LAUNCH_CANCELLED,
    LAUNCH_PRECHECK_FAILED,
    LAUNCH_STOPPING,
} launch_result_t;

/*
 * Submits the task on the freshly launched instance and waits until the
 * agent started it; returns its submit time, or a negative value when the
 * instance died meanwhile (which counts as a failed launch).
 */
static double start_on_instance(runner_t *ru)
{
    jrow_t *r = &ru->r;
    cJSON *envs = task_envs(ru);
    char *err = NULL;
    cJSON *job = core_task_agent_json(ru->task, envs, r->cwd, &err);
    cJSON_Delete(envs);
    if (job == NULL) {
        jlog(ru->ctx, r->id, "cannot build the task: %s", err);
        free(err);
        return -1;
    }
    int tid = 0, rc = core_agent_submit(r->inst.ip, r->inst.agent_port, NULL, job, &tid);
    cJSON_Delete(job);
    if (rc < 0) {
        jlog(ru->ctx, r->id, "submitting to %s failed: %s", r->inst.id, core_strerror(rc));
        return -1;
    }
    r->agent_task = tid;
    r->attempt++;
    double t0 = core_now();
    jrow_save(ru->db, r);
    if (core_now() - t0 > 1)
        jlog(ru->ctx, r->id, "saving the job took %.1f s", core_now() - t0);
    double deadline = core_now() + ru->ctx->cfg.start_timeout_s;
    int last_rc = 0;
    while (core_now() < deadline) {
        core_agent_task_t t;
        t0 = core_now();
        rc = core_agent_task_get(r->inst.ip, r->inst.agent_port, NULL, tid, &t);
        if (rc == 0) {
            double sub = t.submitted_at > 0 ? t.submitted_at : core_now();
            int started = t.status != CORE_AGENT_PENDING;
            core_agent_task_free(&t);
            if (started)
                return sub;
        } else if (rc != last_rc || core_now() - t0 > 1) {
            jlog(ru->ctx, r->id, "asking %s for task %d: %s (%.1f s)", r->inst.id, tid,
                 core_strerror(rc), core_now() - t0);
        }
        last_rc = rc;
        if (nap(ru, 0.2))
            return -1;
    }
    jlog(ru->ctx, r->id, "%s did not start the task within %.0f s", r->inst.id,
         ru->ctx->cfg.start_timeout_s);
    return -1;
}

/*
 * Launches the job somewhere (first start or a recovery), retrying with
 * backoff while nothing has capacity. On success the row has the instance
 * and its submit time is in *t_submit.
 */
static launch_result_t launch(runner_t *ru, int recovering, double *t_submit)
{
    jrow_t *r = &ru->r;
    ctl_backoff_t bo;
    ctl_backoff_init(&bo, ru->ctx->cfg.retry_init_s, ru->ctx->cfg.retry_max_factor, ctl_rng_uniform,
                     &ru->rng);
    const core_job_recovery_t *jr = core_task_job_recovery(ru->task);
    core_recovery_strategy_t strategy = jr->strategy;
    int pinned = ru->task->resources.region || ru->task->resources.zone;
    unsigned char *skip = core_xcalloc(ru->n_cands, 1);
    char owner[64];
    snprintf(owner, sizeof(owner), "job:%ld", r->id);
    launch_result_t res = LAUNCH_OK;
    for (int sweep = 0;; sweep++) {
        if (cancelled(ru)) {
            res = LAUNCH_CANCELLED;
            break;
        }
        if (atomic_load(&ru->ctx->stopping)) {
            res = LAUNCH_STOPPING;
            break;
        }
        memset(skip, 0, ru->n_cands);
        if (recovering && r->prev.cloud[0])
            ctl_jobs_recovery_skip(strategy, ru->cands, ru->n_cands, &r->prev, pinned, sweep, skip);
        core_instance_t inst;
        size_t chosen = 0;
        char *err = NULL;
        int rc = core_prov_launch_failover(ru->prov, ru->cands, ru->n_cands, skip, owner, &inst,
                                           &chosen, &err);
        if (rc == 0) {
            r->inst = inst;
            jlog(ru->ctx, r->id, "launched %s in %s/%s/%s (%s%s)", inst.id, inst.cloud, inst.region,
                 inst.zone, inst.instance_type, inst.spot ? ", spot" : "");
            jrow_save(ru->db, r);
            double t = start_on_instance(ru);
            if (t >= 0) {
                *t_submit = t;
                free(skip);
                return LAUNCH_OK;
            }
            terminate_instance(ru);
            if (cancelled(ru)) {
                res = LAUNCH_CANCELLED;
                break;
            }
        } else if (rc == CORE_EINVALREQ && !recovering && sweep == 0) {
            set_reason(r, "Resources are invalid for every candidate: %s",
                       err ? err : core_strerror(rc));
            free(err);
            res = LAUNCH_PRECHECK_FAILED;
            break;
        } else {
            jlog(ru->ctx, r->id, "launch attempt %d failed: %s", sweep + 1,
                 err ? err : core_strerror(rc));
            if (transport_error(rc)) {
                /* The local cloud may still make the instance it timed out on, or it
                 * restarted: reconnect and remove whatever this job left there. */
                prov_reopen(ru);
                reap_orphans(ru);
            }
        }
        free(err);
        /* Nothing could be launched: wait in PENDING, as the reference shows it. */
        if (ctl_job_set_backoff_pending(&r->t) == 0)
            jrow_save(ru->db, r);
        double gap = ctl_backoff_next(&bo);
        jlog(ru->ctx, r->id, "%s; retrying in %.1f s",
             rc == CORE_ENOCAPACITY ? "no capacity" : "launch failed", gap);
        if (nap(ru, gap)) {
            res = cancelled(ru) ? LAUNCH_CANCELLED : LAUNCH_STOPPING;
            break;
        }
        if (ctl_job_set_restarting(&r->t, recovering) == 0)
            jrow_save(ru->db, r);
    }
    free(skip);
    return res;
}

/* Buckets the job declared `persistent: false` are its own: remove them at the end. */
static void cleanup_storage(runner_t *ru)
{
    for (size_t i = 0; i < ru->task->n_file_mounts; i++) {
        const core_file_mount_t *m = &ru->task->file_mounts[i];
        if (!m->is_storage || m->persistent || m->name == NULL)
            continue;
        char *p = NULL;
        if (core_bucket_path(m->name, &p) == 0) {
            core_rm_rf(p);
            jlog(ru->ctx, ru->r.id, "removed ephemeral bucket %s", m->name);
        }
        free(p);
    }
}

static void do_cancel(runner_t *ru)
{
    jrow_t *r = &ru->r;
    /* Cancelled between two instances (recovering, or its backoff in PENDING): the running
     * time was banked when the recovery began, and the wait since is not running time. */
    int between = r->t.status != CTL_JOB_RUNNING && r->t.status != CTL_JOB_CANCELLING &&
                  r->t.last_recovered_at >= 0;
    if (ctl_job_set_cancelling(&r->t) == 0)
        jrow_save(ru->db, r);
    jlog(ru->ctx, r->id, "cancelling");
    if (r->inst.id[0] && r->agent_task)
        core_agent_cancel(r->inst.ip, r->inst.agent_port, NULL, r->agent_task);
    logcopy_finish(ru->logs, 0);
    ru->logs = NULL;
    terminate_instance(ru);
    reap_orphans(ru);
    cleanup_storage(ru);
    if (ctl_job_set_cancelled(&r->t, core_now()) == 0) {
        if (between)
            r->t.last_recovered_at = r->t.end_at;
        jrow_save(ru->db, r);
    }
    jlog(ru->ctx, r->id, "CANCELLED");
}

static void finish(runner_t *ru, ctl_job_status_t st, double end, const char *why)
{
    jrow_t *r = &ru->r;
    logcopy_finish(ru->logs, 1);
    ru->logs = NULL;
    if (st == CTL_JOB_SUCCEEDED) {
        if (ctl_job_set_succeeded(&r->t, end) < 0)
            ctl_job_set_failed(&r->t, CTL_JOB_FAILED_CONTROLLER, end, false);
    } else {
        if (why)
            set_reason(r, "%s", why);
        ctl_job_set_failed(&r->t, st, end, false);
    }
    jrow_save(ru->db, r);
    terminate_instance(ru);
    reap_orphans(ru);
    cleanup_storage(ru);
    jlog(ru->ctx, r->id, "%s", ctl_job_status_name(r->t.status));
}

/*
 * The job's instance as the provider sees it: a forgotten instance is
 * TERMINATED; when the provider cannot be reached the state is unknown this
 * round, so it counts as RUNNING and the agent's answer decides.
 */
static enum core_inst_state instance_state(runner_t *ru)
{
    core_instance_t now;
    int d = core_prov_describe(ru->prov, ru->r.inst.id, &now);
    if (transport_error(d))
        prov_reopen(ru);
    return d == 0 ? now.state : d == CORE_ENOTFOUND ? CORE_INST_TERMINATED : CORE_INST_RUNNING;
}

/*
 * The monitor loop of §3.3: poll the agent; when the status is unknown or a
 * failure, ask the provider whether the instance is still there. Returns
 * 1 when the job needs recovery, 0 when it ended (or was cancelled or the
 * daemon stops).
 */
static int monitor(runner_t *ru)
{
    jrow_t *r = &ru->r;
    double unknown_since = -1;
    if (ru->logs == NULL)
        ru->logs = logcopy_start(ru->ctx, r);
    for (;;) {
        if (cancelled(ru)) {
            do_cancel(ru);
            return 0;
        }
        if (atomic_load(&ru->ctx->stopping))
            return 0;
        /*
         * The provider first: asking the local cloud is cheap, and a vanished
         * instance is seen at once instead of after an agent connect timeout.
         */
        enum core_inst_state inst = instance_state(ru);
        core_agent_task_t t;
        memset(&t, 0, sizeof(t));
        int rc = inst == CORE_INST_RUNNING
                     ? core_agent_task_get(r->inst.ip, r->inst.agent_port, NULL, r->agent_task, &t)
                     : -ECONNREFUSED;
        bool known = rc == 0;
        core_agent_status_t js = t.status;
        double ended = t.ended_at > 0 ? t.ended_at : core_now();
        int exit_code = t.has_exit_code ? t.exit_code : -1;
        core_agent_task_free(&t);
        if (!known && unknown_since < 0)
            unknown_since = core_now();
        else if (known)
            unknown_since = -1;
        /* A failed program is a user failure only if its instance is still up after a grace
         * period: a preemption may kill the program first (reference §3.3). */
        if (inst == CORE_INST_RUNNING && known &&
            (js == CORE_AGENT_FAILED || js == CORE_AGENT_FAILED_SETUP)) {
            nap(ru, ru->ctx->cfg.failure_grace_s);
            inst = instance_state(ru);
        }
        ctl_job_status_t fail_status = CTL_JOB_FAILED;
        double unknown_for = unknown_since < 0 ? 0 : core_now() - unknown_since;
        /* The classifier's own threshold is the reference's 60 s; ours is configurable. */
        if (!known && inst == CORE_INST_RUNNING && unknown_for < ru->ctx->cfg.unknown_timeout_s)
            unknown_for = 0;
        else if (!known && inst == CORE_INST_RUNNING)
            unknown_for = CTL_JOB_STATUS_FETCH_TIMEOUT_S + 1;
        ctl_job_outcome_t o = ctl_job_classify(known, js, inst, unknown_for, &fail_status);
        switch (o) {
        case CTL_JOB_KEEP_MONITORING:
            break;
        case CTL_JOB_OUT_SUCCEEDED:
            finish(ru, CTL_JOB_SUCCEEDED, ended, NULL);
            return 0;
        case CTL_JOB_USER_FAILURE: {
            const core_job_recovery_t *jr = core_task_job_recovery(ru->task);
            ctl_restart_policy_t pol = {jr->max_restarts_on_errors, jr->recover_on_exit_codes,
                                        jr->n_recover_on_exit_codes};
            int codes[1] = {exit_code};
            if (ctl_job_should_restart_on_failure(&pol, codes, exit_code >= 0 ? 1 : 0,
                                                  &r->restart_count)) {
                jlog(ru->ctx, r->id, "user program failed (exit %d); restart %d of %d", exit_code,
                     r->restart_count, jr->max_restarts_on_errors);
                jrow_save(ru->db, r);
                return 1;
            }
            char why[256];
            snprintf(why, sizeof(why),
                     "The user program failed (exit code %d). To see the details, run: sky spot "
                     "logs %ld",
                     exit_code, r->id);
            finish(ru, fail_status, ended, why);
            return 0;
        }
        case CTL_JOB_RECOVER:
            jlog(ru->ctx, r->id, "instance %s is %s: recovering", r->inst.id,
                 core_inst_state_name(inst));
            return 1;
        case CTL_JOB_CONTROLLER_FAILURE:
            finish(ru, CTL_JOB_FAILED_CONTROLLER, ended, "Unexpected job status on the instance");
            return 0;
        }
        nap(ru, ru->ctx->cfg.poll_s);
    }
}

static void recover(runner_t *ru)
{
    jrow_t *r = &ru->r;
    for (;;) {
        logcopy_finish(ru->logs, 0);
        ru->logs = NULL;
        if (r->t.status != CTL_JOB_RECOVERING) {
            if (ctl_job_set_recovering(&r->t, core_now(), true) < 0)
                return;
        }
        /* Remember where it ran, for the recovery strategy, before dropping it. */
        remember_location(r);
        jrow_save(ru->db, r);
        terminate_instance(ru);
        reap_orphans(ru);
        double t_submit = 0;
        launch_result_t lr = launch(ru, 1, &t_submit);
        if (lr == LAUNCH_CANCELLED) {
            do_cancel(ru);
            return;
        }
        if (lr != LAUNCH_OK)
            return;
        if (r->t.status == CTL_JOB_PENDING)
            ctl_job_set_restarting(&r->t, true);
        ctl_job_set_recovered(&r->t, t_submit);
        jrow_save(ru->db, r);
        jlog(ru->ctx, r->id, "RUNNING again on %s (recovery %d)", r->inst.id, r->t.recovery_count);
        if (!monitor(ru))
            return;
    }
}

static void *job_thread(void *arg)
{
    runner_t ru;
    memset(&ru, 0, sizeof(ru));
    job_t *job = arg;
    ru.ctx = job->ctx;
    ru.job = job;
    jobs_ctx_t *ctx = job->ctx;
    char *err = NULL;
    core_catalog_t *cat = NULL;
    ru.db = db_open(ctx->db_path);
    if (ru.db == NULL || jrow_load(ru.db, job->id, &ru.r) < 0)
        goto out;
    jrow_t *r = &ru.r;
    ctl_rng_seed(&ru.rng, (uint64_t)job->id * 7919u + (uint64_t)time(NULL));
    if (ctl_job_status_is_terminal(r->t.status))
        goto out;
    if (core_task_parse(r->yaml, strlen(r->yaml), r->yaml_path, &ru.task, &err) < 0 ||
        core_catalog_load(NULL, &cat, &err) < 0 ||
        core_catalog_resolve(cat, &ru.task->resources, &ru.cands, &ru.n_cands, &err) < 0) {
        set_reason(r, "%s", err ? err : "invalid task");
        ctl_job_set_failed(&r->t, CTL_JOB_FAILED_PRECHECKS, core_now(), false);
        jrow_save(ru.db, r);
        jlog(ctx, r->id, "FAILED_PRECHECKS: %s", r->failure_reason);
        goto out;
    }
    /* Without the cloud nothing can be launched, checked or cleaned up: wait for it. */
    int rc;
    while ((rc = core_prov_local_open(&ru.prov)) < 0) {
        jlog(ctx, r->id, "cannot reach the local cloud: %s; retrying", core_strerror(rc));
        for (int i = 0; i < 20 && !atomic_load(&ctx->stopping); i++)
            usleep(100000);
        if (atomic_load(&ctx->stopping))
            goto out;
    }
    switch (r->t.status) {
    case CTL_JOB_CANCELLING:
        do_cancel(&ru);
        goto out;
    case CTL_JOB_RUNNING: {
        /* Resume monitoring the instance it already runs on. */
        jlog(ctx, r->id, "resuming the monitor of %s", r->inst.id);
        if (monitor(&ru))
            recover(&ru);
        goto out;
    }
    case CTL_JOB_RECOVERING:
        jlog(ctx, r->id, "resuming recovery");
        recover(&ru);
        goto out;
    case CTL_JOB_PENDING:
        if (r->t.start_at < 0)
            break;
        /* It has run before: this PENDING is a recovery's launch backoff. */
        jlog(ctx, r->id, "resuming recovery (was waiting for capacity)");
        ctl_job_set_restarting(&r->t, true);
        jrow_save(ru.db, r);
        recover(&ru);
        goto out;
    default:
        break;
    }
    /* PENDING or STARTING: a fresh start, or one the daemon died in. */
    if (cancelled(&ru)) {
        do_cancel(&ru);
        goto out;
    }
    reap_orphans(&ru);
    terminate_instance(&ru);
    if (r->t.status == CTL_JOB_PENDING && r->t.start_at < 0 && r->t.submitted_at < 0)
        ctl_job_set_starting(&r->t, core_now());
    else if (r->t.status == CTL_JOB_PENDING)
        ctl_job_set_restarting(&r->t, false);
    jrow_save(ru.db, r);
    jlog(ctx, r->id, "STARTING (%zu candidates, cheapest %s/%s %s)", ru.n_cands, ru.cands[0].region,
         ru.cands[0].zone, ru.cands[0].instance_type);
    double t_submit = 0;
    launch_result_t lr = launch(&ru, 0, &t_submit);
    if (lr == LAUNCH_CANCELLED) {
        do_cancel(&ru);
        goto out;
    }
    if (lr == LAUNCH_PRECHECK_FAILED) {
        ctl_job_set_failed(&r->t, CTL_JOB_FAILED_PRECHECKS, core_now(), false);
        jrow_save(ru.db, r);
        goto out;
    }
    if (lr != LAUNCH_OK)
        goto out;
    if (r->t.status == CTL_JOB_PENDING)
        ctl_job_set_restarting(&r->t, false);
    ctl_job_set_started(&r->t, t_submit);
    jrow_save(ru.db, r);
    jlog(ctx, r->id, "RUNNING on %s", r->inst.id);
    if (monitor(&ru))
        recover(&ru);
out:
    logcopy_finish(ru.logs, atomic_load(&ctx->stopping) ? 0 : 1);
    free(err);
    free(ru.cands);
    core_catalog_free(cat);
    core_task_free(ru.task);
    core_prov_destroy(ru.prov);
    jrow_free(&ru.r);
    if (ru.db)
        sqlite3_close(ru.db);
    atomic_store(&job->done, 1);
    return NULL;
}

static void start_job(jobs_ctx_t *ctx, long id)
{
    job_t *j = core_xcalloc(1, sizeof(*j));
    j->id = id;
    j->ctx = ctx;
    char *dir = core_xasprintf("%s/%ld", ctx->jobs_dir, id);
    core_mkdir_p(dir, 0700);
    free(dir);
    pthread_mutex_lock(&ctx->mu);
    j->next = ctx->jobs;
    ctx->jobs = j;
    pthread_mutex_unlock(&ctx->mu);
    if (pthread_create(&j->thread, NULL, job_thread, j) == 0)
        j->thread_started = 1;
    else
        atomic_store(&j->done, 1);
}

static job_t *find_job(jobs_ctx_t *ctx, long id)
{
    pthread_mutex_lock(&ctx->mu);
    job_t *j = ctx->jobs;
    while (j && j->id != id)
        j = j->next;
    pthread_mutex_unlock(&ctx->mu);
    return j;
}

/* -------------------------------------------------------------- the API */

static cJSON *time_or_null(double v)
{
    return v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

static cJSON *job_json(const jrow_t *r)
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

static void api_list(jobs_ctx_t *ctx, core_http_conn_t *c, const core_http_req_t *req)
{
    char v[8];
    int all = core_http_query_get(req->query, "all", v, sizeof(v)) == 0 && strcmp(v, "0") != 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(ctx->db, "SELECT " JROW_COLS " FROM jobs ORDER BY id DESC", -1, &st,
                           NULL) != SQLITE_OK) {
        core_http_respond_error(c, 500, "database: %s", sqlite3_errmsg(ctx->db));
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "jobs");
    int shown = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        jrow_t r;
        jrow_from(st, &r);
        /* Without --all: every unfinished job plus the latest 50. */
        if (all || !ctl_job_status_is_terminal(r.t.status) || shown < 50) {
            cJSON_AddItemToArray(arr, job_json(&r));
            shown++;
        }
        jrow_free(&r);
    }
    sqlite3_finalize(st);
    core_http_respond_json(c, 200, doc);
}

static void api_submit(jobs_ctx_t *ctx, core_http_conn_t *c, const core_http_req_t *req)
{
    cJSON *body = core_http_body_json(req);
    const cJSON *yaml = cJSON_GetObjectItem(body, "yaml");
    const cJSON *path = cJSON_GetObjectItem(body, "yaml_path");
    const cJSON *cwd = cJSON_GetObjectItem(body, "cwd");
    const cJSON *name = cJSON_GetObjectItem(body, "name");
    const cJSON *envs = cJSON_GetObjectItem(body, "envs");
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
    if (core_task_parse(yaml->valuestring, strlen(yaml->valuestring), fname, &t, &err) < 0)
        goto bad;
    core_task_set_envs(t, envs);
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
    /* SKYPILOT_RUN_ID: fixed at submission and stored, so it survives recoveries and
     * controller restarts alike (the reference regenerates it on restart: #1399). */
    char ts[64], run_id[256];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d-%H-%M-%S", &tm);
    char *envs_text = envs ? cJSON_PrintUnformatted(envs) : NULL;
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(ctx->db,
                       "INSERT INTO jobs (name,yaml,yaml_path,cwd,envs,resources,status,run_id) "
                       "VALUES (?1,?2,?3,?4,?5,?6,'PENDING','')",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, jname, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, yaml->valuestring, -1, SQLITE_TRANSIENT);
    bind_str(st, 3, cJSON_IsString(path) ? path->valuestring : NULL);
    bind_str(st, 4, cJSON_IsString(cwd) ? cwd->valuestring : NULL);
    bind_str(st, 5, envs_text);
    sqlite3_bind_text(st, 6, res, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    cJSON_free(envs_text);
    if (rc != SQLITE_DONE) {
        err = core_xasprintf("database: %s", sqlite3_errmsg(ctx->db));
        goto fail500;
    }
    long id = (long)sqlite3_last_insert_rowid(ctx->db);
    snprintf(run_id, sizeof(run_id), "sky-managed-%s-%06ld_%s_%ld-0", ts, now.tv_nsec / 1000, jname,
             id);
    sqlite3_prepare_v2(ctx->db, "UPDATE jobs SET run_id=?2 WHERE id=?1", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, run_id, -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    sqlite3_finalize(st);
    start_job(ctx, id);
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

static void api_cancel(jobs_ctx_t *ctx, core_http_conn_t *c, long id)
{
    jrow_t r;
    if (jrow_load(ctx->db, id, &r) < 0) {
        core_http_respond_error(c, 404, "job %ld not found", id);
        return;
    }
    ctl_job_status_t st = r.t.status;
    jrow_free(&r);
    if (ctl_job_status_is_terminal(st)) {
        core_http_respond_error(c, 409, "job %ld already ended (%s)", id, ctl_job_status_name(st));
        return;
    }
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v2(ctx->db, "UPDATE jobs SET cancel_requested=1 WHERE id=?1", -1, &s, NULL);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_step(s);
    sqlite3_finalize(s);
    job_t *j = find_job(ctx, id);
    if (j)
        atomic_store(&j->cancel, 1);
    if (j == NULL || atomic_load(&j->done))
        start_job(ctx, id); /* e.g. a job whose thread gave up: let a thread cancel it */
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
    jobs_ctx_t *ctx;
    core_http_conn_t *conn;
    uv_timer_t timer;
    long job;
    int controller; /* controller.log instead of run-N.log */
    int follow;
    int attempt;
    long long off;
    int closed;
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
        char *p = job_path(ls->ctx, ls->job, name);
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
        char *np = job_path(ls->ctx, ls->job, next);
        int exists = access(np, F_OK) == 0;
        free(np);
        if (!exists)
            break;
        ls->attempt++;
        ls->off = 0;
    }
    if (sent > 0)
        return;
    jrow_t r;
    int ended = jrow_load(ls->ctx->db, ls->job, &r) < 0 || ctl_job_status_is_terminal(r.t.status);
    if (r.id)
        jrow_free(&r);
    if (!ls->follow || ended) {
        /* One more pass happened above after the end; the job's logs are complete. */
        job_t *j = find_job(ls->ctx, ls->job);
        if (!ls->follow || j == NULL || atomic_load(&j->done))
            ls_end(ls);
    }
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
        char *p = job_path(ls->ctx, ls->job, name);
        struct stat st;
        long long size = stat(p, &st) == 0 ? (long long)st.st_size : -1;
        free(p);
        snprintf(name, sizeof(name), "run-%d.log", ls->attempt + 1);
        p = job_path(ls->ctx, ls->job, name);
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

static void api_logs(jobs_ctx_t *ctx, core_http_conn_t *c, const core_http_req_t *req, long id,
                     int controller)
{
    jrow_t r;
    if (jrow_load(ctx->db, id, &r) < 0) {
        core_http_respond_error(c, 404, "job %ld not found", id);
        return;
    }
    jrow_free(&r);
    char v[8];
    logstream_t *ls = core_xcalloc(1, sizeof(*ls));
    ls->ctx = ctx;
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
    uv_timer_init(ctx->loop, &ls->timer);
    ls->timer.data = ls;
    core_http_stream_begin(c, 200, "text/plain; charset=utf-8");
    uv_timer_start(&ls->timer, on_ls_tick, 0, 200);
}

static void handler(core_http_conn_t *c, const core_http_req_t *req, void *ud)
{
    jobs_ctx_t *ctx = ud;
    const char *p = req->path;
    if (strcmp(p, "/health") == 0) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "status", "ok");
        cJSON_AddNumberToObject(doc, "pid", getpid());
        core_http_respond_json(c, 200, doc);
        return;
    }
    if (strcmp(p, "/api/jobs") == 0) {
        if (strcmp(req->method, "GET") == 0)
            api_list(ctx, c, req);
        else if (strcmp(req->method, "POST") == 0)
            api_submit(ctx, c, req);
        else
            core_http_respond_error(c, 405, "method not allowed");
        return;
    }
    long id = 0;
    int off = 0;
    if (sscanf(p, "/api/jobs/%ld%n", &id, &off) == 1 && id > 0) {
        const char *rest = p + off;
        if (*rest == '\0' && strcmp(req->method, "GET") == 0) {
            jrow_t r;
            if (jrow_load(ctx->db, id, &r) < 0) {
                core_http_respond_error(c, 404, "job %ld not found", id);
                return;
            }
            core_http_respond_json(c, 200, job_json(&r));
            jrow_free(&r);
            return;
        }
        if (strcmp(rest, "/cancel") == 0 && strcmp(req->method, "POST") == 0) {
            api_cancel(ctx, c, id);
            return;
        }
        if (strcmp(rest, "/logs") == 0 || strcmp(rest, "/controller_log") == 0) {
            api_logs(ctx, c, req, id, strcmp(rest, "/controller_log") == 0);
            return;
        }
    }
    core_http_respond_error(c, 404, "no route for %s %s", req->method, p);
}

/* ------------------------------------------------------------- lifecycle */

static void on_signal(uv_signal_t *s, int signum)
{
    jobs_ctx_t *ctx = s->data;
    CORE_INFO("signal %d: stopping (jobs keep running on their instances)", signum);
    atomic_store(&ctx->stopping, 1);
    core_http_server_close(ctx->http);
    uv_close((uv_handle_t *)&ctx->sigterm, NULL);
    uv_close((uv_handle_t *)&ctx->sigint, NULL);
}

static int write_port_file(const jobs_ctx_t *ctx, int port)
{
    char *p = core_xasprintf("%s/controller.port", ctx->jobs_dir);
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d\n", port);
    int r = core_write_file(p, buf, (size_t)n, 0600);
    free(p);
    return r;
}

int ctl_jobs_main(const ctl_jobs_opts_t *opts)
{
    jobs_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    int code = 1;
    cfg_load(&ctx.cfg);
    pthread_mutex_init(&ctx.mu, NULL);
    ctx.home = core_home_dir();
    ctx.jobs_dir = core_xasprintf("%s/jobs", ctx.home);
    ctx.db_path = core_xasprintf("%s/jobs.db", ctx.jobs_dir);
    core_mkdir_p(ctx.jobs_dir, 0700);
    char *tokpath = core_xasprintf("%s/token", ctx.home);
    int r = core_token_load(tokpath, &ctx.token);
    free(tokpath);
    if (r < 0) {
        CORE_ERROR("cannot read or create the token: %s", core_strerror(r));
        goto out;
    }
    ctx.db = db_open(ctx.db_path);
    if (ctx.db == NULL || sqlite3_exec(ctx.db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        CORE_ERROR("cannot initialise %s", ctx.db_path);
        goto out;
    }
    ctx.loop = uv_default_loop();
    core_http_server_opts_t ho = {.token = ctx.token, .max_body = 4u << 20};
    r = core_http_server_start(ctx.loop, opts->listen_host ? opts->listen_host : "127.0.0.1",
                               opts->port, &ho, handler, &ctx, &ctx.http);
    if (r < 0) {
        CORE_ERROR("cannot listen on port %d: %s", opts->port, core_strerror(r));
        goto out;
    }
    int port = core_http_server_port(ctx.http);
    write_port_file(&ctx, port);
    uv_signal_init(ctx.loop, &ctx.sigterm);
    uv_signal_init(ctx.loop, &ctx.sigint);
    ctx.sigterm.data = ctx.sigint.data = &ctx;
    uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);
    uv_signal_start(&ctx.sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    /* Resume every job that had not ended when the previous daemon stopped. */
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(ctx.db, "SELECT id, status FROM jobs ORDER BY id", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        ctl_job_status_t s;
        const unsigned char *txt = sqlite3_column_text(st, 1);
        if (ctl_job_status_parse(txt ? (const char *)txt : "", &s) == 0 &&
            !ctl_job_status_is_terminal(s)) {
            CORE_INFO("resuming job %lld (%s)", sqlite3_column_int64(st, 0), txt);
            start_job(&ctx, (long)sqlite3_column_int64(st, 0));
        }
    }
    sqlite3_finalize(st);
    CORE_INFO("jobs controller listening on 127.0.0.1:%d (pid %d)", port, (int)getpid());
    uv_run(ctx.loop, UV_RUN_DEFAULT);
    code = 0;
out:
    atomic_store(&ctx.stopping, 1);
    /* Job threads notice <stopping> within 0.1 s (blocking calls within their timeouts). */
    for (job_t *j = ctx.jobs, *next; j; j = next) {
        next = j->next;
        if (j->thread_started)
            pthread_join(j->thread, NULL);
        free(j);
    }
    if (ctx.loop) {
        uv_run(ctx.loop, UV_RUN_NOWAIT);
        uv_loop_close(ctx.loop);
    }
    if (ctx.db)
        sqlite3_close(ctx.db);
    free(ctx.token);
    free(ctx.db_path);
    free(ctx.jobs_dir);
    free(ctx.home);
    pthread_mutex_destroy(&ctx.mu);
    return code;
}
