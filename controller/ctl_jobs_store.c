/*
 * jobs.db: one row per managed job (see ctl_jobs_store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/mem.h"
#include "ctl_jobs_store.h"

/* Version 1: the schema as it was before versions. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL, yaml TEXT NOT NULL, yaml_path TEXT, cwd TEXT, envs TEXT,"
    " resources TEXT, status TEXT NOT NULL, submitted_at REAL, start_at REAL, end_at REAL,"
    " last_recovered_at REAL NOT NULL DEFAULT -1, job_duration REAL NOT NULL DEFAULT 0,"
    " recovery_count INTEGER NOT NULL DEFAULT 0, failure_reason TEXT,"
    " run_id TEXT NOT NULL, restart_count INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " instance_id TEXT, cloud TEXT, region TEXT, zone TEXT, instance_type TEXT,"
    " spot INTEGER, ip TEXT, agent_port INTEGER, agent_task INTEGER,"
    " prev_cloud TEXT, prev_region TEXT, prev_zone TEXT, prev_type TEXT, prev_spot INTEGER);";

/* Version 2: the task flags and the submitting user (issue 14). */
static const char schema_v2[] = "ALTER TABLE jobs ADD COLUMN overrides TEXT;"
                                "ALTER TABLE jobs ADD COLUMN user TEXT;";

static const core_store_step_t steps[] = {
    {schema_v1, NULL},
    {schema_v2, NULL},
};

int ctl_jobs_store_open(const char *path, core_store_t **out, char **err)
{
    static const core_store_schema_t schema = {"jobs store", steps, CORE_ARRAY_SIZE(steps), NULL};
    return core_store_open(path, &schema, out, err);
}

void ctl_job_row_free(ctl_job_row_t *r)
{
    free(r->name);
    free(r->yaml);
    free(r->yaml_path);
    free(r->cwd);
    free(r->envs);
    free(r->resources);
    free(r->failure_reason);
    free(r->run_id);
    free(r->overrides);
    free(r->user);
    memset(r, 0, sizeof(*r));
}

#define ROW_COLS                                                                                   \
    "id,name,yaml,yaml_path,cwd,envs,resources,status,submitted_at,start_at,end_at,"               \
    "last_recovered_at,job_duration,recovery_count,failure_reason,run_id,restart_count,"           \
    "cancel_requested,attempt,instance_id,cloud,region,zone,instance_type,spot,ip,agent_port,"     \
    "agent_task,prev_cloud,prev_region,prev_zone,prev_type,prev_spot,overrides,user"

static double col_time(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? CTL_TIME_UNSET
                                                    : sqlite3_column_double(q, i);
}

static void row_from(sqlite3_stmt *q, ctl_job_row_t *r)
{
    memset(r, 0, sizeof(*r));
    r->id = (long)sqlite3_column_int64(q, 0);
    r->name = core_store_col_dup(q, 1);
    r->yaml = core_store_col_dup(q, 2);
    r->yaml_path = core_store_col_dup(q, 3);
    r->cwd = core_store_col_dup(q, 4);
    r->envs = core_store_col_dup(q, 5);
    r->resources = core_store_col_dup(q, 6);
    const unsigned char *s = sqlite3_column_text(q, 7);
    if (ctl_job_status_parse(s ? (const char *)s : "", &r->t.status) < 0)
        r->t.status = CTL_JOB_FAILED_CONTROLLER;
    r->t.submitted_at = col_time(q, 8);
    r->t.start_at = col_time(q, 9);
    r->t.end_at = col_time(q, 10);
    r->t.last_recovered_at = sqlite3_column_double(q, 11);
    r->t.job_duration = sqlite3_column_double(q, 12);
    r->t.recovery_count = sqlite3_column_int(q, 13);
    r->failure_reason = core_store_col_dup(q, 14);
    r->run_id = core_store_col_dup(q, 15);
    r->restart_count = sqlite3_column_int(q, 16);
    r->cancel_requested = sqlite3_column_int(q, 17);
    r->attempt = sqlite3_column_int(q, 18);
    core_store_col_text(q, 19, r->inst.id, sizeof(r->inst.id));
    core_store_col_text(q, 20, r->inst.cloud, sizeof(r->inst.cloud));
    core_store_col_text(q, 21, r->inst.region, sizeof(r->inst.region));
    core_store_col_text(q, 22, r->inst.zone, sizeof(r->inst.zone));
    core_store_col_text(q, 23, r->inst.instance_type, sizeof(r->inst.instance_type));
    r->inst.spot = sqlite3_column_int(q, 24);
    core_store_col_text(q, 25, r->inst.ip, sizeof(r->inst.ip));
    r->inst.agent_port = sqlite3_column_int(q, 26);
    r->agent_task = sqlite3_column_int(q, 27);
    core_store_col_text(q, 28, r->prev.cloud, sizeof(r->prev.cloud));
    core_store_col_text(q, 29, r->prev.region, sizeof(r->prev.region));
    core_store_col_text(q, 30, r->prev.zone, sizeof(r->prev.zone));
    core_store_col_text(q, 31, r->prev.instance_type, sizeof(r->prev.instance_type));
    r->prev.spot = sqlite3_column_int(q, 32);
    r->overrides = core_store_col_dup(q, 33);
    r->user = core_store_col_dup(q, 34);
}

/* Times and locations: unset (-1) and "" are NULL in the table. */
static void bind_time(sqlite3_stmt *q, int i, double v)
{
    if (v < 0)
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_double(q, i, v);
}

static void bind_str(sqlite3_stmt *q, int i, const char *s)
{
    core_store_bind_text(q, i, s && *s ? s : NULL);
}

int ctl_jobs_store_add(core_store_t *st, const ctl_job_new_t *n, long *id, char *run_id,
                       size_t run_id_len)
{
    char ts[64];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d-%H-%M-%S", &tm);

    int rc = core_store_begin(st);
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = core_store_prepare(
        st, "INSERT INTO jobs (name,yaml,yaml_path,cwd,envs,resources,overrides,user,status,"
            "run_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,'PENDING','')");
    if (q == NULL)
        goto fail;
    sqlite3_bind_text(q, 1, n->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, n->yaml, -1, SQLITE_TRANSIENT);
    bind_str(q, 3, n->yaml_path);
    bind_str(q, 4, n->cwd);
    bind_str(q, 5, n->envs);
    bind_str(q, 6, n->resources);
    bind_str(q, 7, n->overrides);
    bind_str(q, 8, n->user);
    if (core_store_run(st, q) < 0)
        goto fail;
    *id = (long)core_store_last_id(st);
    snprintf(run_id, run_id_len, "sky-managed-%s-%06ld_%s_%ld-0", ts, now.tv_nsec / 1000, n->name,
             *id);
    q = core_store_prepare(st, "UPDATE jobs SET run_id=?2 WHERE id=?1");
    if (q == NULL)
        goto fail;
    sqlite3_bind_int64(q, 1, *id);
    sqlite3_bind_text(q, 2, run_id, -1, SQLITE_TRANSIENT);
    if (core_store_run(st, q) < 0 || core_store_commit(st) < 0)
        goto fail;
    return 0;
fail:
    core_store_rollback(st);
    return CORE_ESTORE;
}

int ctl_jobs_store_get(core_store_t *st, long id, ctl_job_row_t *out)
{
    sqlite3_stmt *q = core_store_prepare(st, "SELECT " ROW_COLS " FROM jobs WHERE id=?1");
    if (q == NULL)
        return CORE_ESTORE;
    sqlite3_bind_int64(q, 1, id);
    int rc = core_store_step(st, q);
    if (rc == 1) {
        row_from(q, out);
        core_store_reset(q);
        return 0;
    }
    return rc < 0 ? rc : CORE_ENOTFOUND;
}

int ctl_jobs_store_save(core_store_t *st, const ctl_job_row_t *r)
{
    sqlite3_stmt *q = core_store_prepare(
        st, "UPDATE jobs SET status=?2,submitted_at=?3,start_at=?4,end_at=?5,last_recovered_at=?6,"
            "job_duration=?7,recovery_count=?8,failure_reason=?9,restart_count=?10,attempt=?11,"
            "instance_id=?12,cloud=?13,region=?14,zone=?15,instance_type=?16,spot=?17,ip=?18,"
            "agent_port=?19,agent_task=?20,prev_cloud=?21,prev_region=?22,prev_zone=?23,"
            "prev_type=?24,prev_spot=?25,resources=?26 WHERE id=?1");
    if (q == NULL)
        return CORE_ESTORE;
    sqlite3_bind_int64(q, 1, r->id);
    sqlite3_bind_text(q, 2, ctl_job_status_name(r->t.status), -1, SQLITE_STATIC);
    bind_time(q, 3, r->t.submitted_at);
    bind_time(q, 4, r->t.start_at);
    bind_time(q, 5, r->t.end_at);
    sqlite3_bind_double(q, 6, r->t.last_recovered_at);
    sqlite3_bind_double(q, 7, r->t.job_duration);
    sqlite3_bind_int(q, 8, r->t.recovery_count);
    bind_str(q, 9, r->failure_reason);
    sqlite3_bind_int(q, 10, r->restart_count);
    sqlite3_bind_int(q, 11, r->attempt);
    bind_str(q, 12, r->inst.id);
    bind_str(q, 13, r->inst.cloud);
    bind_str(q, 14, r->inst.region);
    bind_str(q, 15, r->inst.zone);
    bind_str(q, 16, r->inst.instance_type);
    sqlite3_bind_int(q, 17, r->inst.spot);
    bind_str(q, 18, r->inst.ip);
    sqlite3_bind_int(q, 19, r->inst.agent_port);
    sqlite3_bind_int(q, 20, r->agent_task);
    bind_str(q, 21, r->prev.cloud);
    bind_str(q, 22, r->prev.region);
    bind_str(q, 23, r->prev.zone);
    bind_str(q, 24, r->prev.instance_type);
    sqlite3_bind_int(q, 25, r->prev.spot);
    bind_str(q, 26, r->resources);
    return core_store_run(st, q);
}

int ctl_jobs_store_request_cancel(core_store_t *st, long id)
{
    sqlite3_stmt *q = core_store_prepare(st, "UPDATE jobs SET cancel_requested=1 WHERE id=?1");
    if (q == NULL)
        return CORE_ESTORE;
    sqlite3_bind_int64(q, 1, id);
    return core_store_run(st, q);
}

int ctl_jobs_store_list(core_store_t *st, ctl_job_row_t **out, size_t *n)
{
    sqlite3_stmt *q = core_store_prepare(st, "SELECT " ROW_COLS " FROM jobs ORDER BY id DESC");
    ctl_job_row_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if (q == NULL)
        return CORE_ESTORE;
    while ((rc = core_store_step(st, q)) == 1) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            v = core_xrealloc(v, cap * sizeof(*v));
        }
        row_from(q, &v[cnt++]);
    }
    if (rc < 0) {
        for (size_t i = 0; i < cnt; i++)
            ctl_job_row_free(&v[i]);
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}
