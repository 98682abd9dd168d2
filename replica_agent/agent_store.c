#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/store.h"
#include "core/util.h"

/*
 * On-disk layout (the instance's disk, so it survives an agent restart):
 *   <home>/.sky_agent/agent.db                 one row per task: the normalized
 *                                              submission and its status, updated
 *                                              on each transition (core/store.h)
 *   <home>/.sky_agent/tasks/<id>/setup.log     sync + setup output
 *   <home>/.sky_agent/tasks/<id>/run.log       run output
 *   <home>/.sky_agent/tasks/<id>/{setup,run}.sh
 * A task directory without a row is a submission that never got an answer;
 * its id is not reused. Agents before the database kept spec.json and
 * status.json in each task directory: the first open imports them.
 */

#define STATUS_MAX (1u << 20)
#define SPEC_MAX   (4u << 20)

char *agent_task_dir(const agent_t *a, int id)
{
    return core_xasprintf("%s/%d", a->state_dir, id);
}

char *agent_task_file(const agent_t *a, int id, const char *name)
{
    return core_xasprintf("%s/%d/%s", a->state_dir, id, name);
}

void agent_task_free(agent_task_t *t)
{
    if (t == NULL)
        return;
    core_agent_req_free(&t->spec);
    free(t->failure_reason);
    free(t);
}

static void add_time(cJSON *o, const char *key, double v)
{
    if (v > 0)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *agent_task_to_json(const agent_task_t *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "task_id", t->id);
    cJSON_AddStringToObject(o, "name", t->spec.name ? t->spec.name : "");
    cJSON_AddStringToObject(o, "status", core_agent_status_name(t->status));
    if (t->has_exit_code)
        cJSON_AddNumberToObject(o, "exit_code", t->exit_code);
    else
        cJSON_AddNullToObject(o, "exit_code");
    add_time(o, "submitted_at", t->submitted_at);
    add_time(o, "started_at", t->started_at);
    add_time(o, "ended_at", t->ended_at);
    if (t->failure_reason)
        cJSON_AddStringToObject(o, "failure_reason", t->failure_reason);
    else
        cJSON_AddNullToObject(o, "failure_reason");
    return o;
}

static void bind_time(sqlite3_stmt *q, int i, double v)
{
    if (v > 0)
        sqlite3_bind_double(q, i, v);
    else
        sqlite3_bind_null(q, i);
}

/* Binds ?2.. ?9 (status .. pid_start) of the insert and update below. */
static void bind_status(sqlite3_stmt *q, const agent_task_t *t)
{
    sqlite3_bind_text(q, 2, core_agent_status_name(t->status), -1, SQLITE_STATIC);
    if (t->has_exit_code)
        sqlite3_bind_int(q, 3, t->exit_code);
    else
        sqlite3_bind_null(q, 3);
    bind_time(q, 4, t->submitted_at);
    bind_time(q, 5, t->started_at);
    bind_time(q, 6, t->ended_at);
    core_store_bind_text(q, 7, t->failure_reason);
    sqlite3_bind_int(q, 8, (int)t->pgid);
    sqlite3_bind_int64(q, 9, (sqlite3_int64)t->pid_start);
}

static int insert_task(core_store_t *st, const agent_task_t *t)
{
    sqlite3_stmt *q = core_store_prepare(
        st, "INSERT OR REPLACE INTO tasks (id, status, exit_code, submitted_at, started_at,"
            " ended_at, failure_reason, pgid, pid_start, spec)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (q == NULL)
        return CORE_ESTORE;
    sqlite3_bind_int(q, 1, t->id);
    bind_status(q, t);
    cJSON *o = core_agent_req_json(&t->spec);
    char *spec = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    sqlite3_bind_text(q, 10, spec, -1, SQLITE_TRANSIENT);
    free(spec);
    return core_store_run(st, q);
}

int agent_store_save_status(agent_t *a, const agent_task_t *t)
{
    sqlite3_stmt *q = core_store_prepare(
        a->store, "UPDATE tasks SET status=?2, exit_code=?3, submitted_at=?4, started_at=?5,"
                  " ended_at=?6, failure_reason=?7, pgid=?8, pid_start=?9 WHERE id=?1");
    if (q == NULL)
        return CORE_ESTORE;
    sqlite3_bind_int(q, 1, t->id);
    bind_status(q, t);
    int rc = core_store_run(a->store, q);
    if (rc < 0)
        CORE_ERROR("task %d: cannot save its status", t->id);
    return rc;
}

int agent_store_add(agent_t *a, const agent_task_t *t)
{
    return insert_task(a->store, t);
}

/* Field 22 of /proc/<pid>/stat, 0 if the process does not exist. */
unsigned long long agent_proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm may contain spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p++;
    unsigned long long v = 0;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        if (field == 22) {
            v = strtoull(p, NULL, 10);
            break;
        }
        while (*p && *p != ' ')
            p++;
    }
    return v;
}

/*
 * The agent died while this task ran. Its children were not ours to wait
 * for any more, so the exit code is lost: report FAILED and say why, and
 * make that true by killing what is left of its process group, if the
 * group leader is still the process we started (pid reuse check).
 */
static void fail_lost_task(agent_t *a, agent_task_t *t)
{
    int killed = 0;
    if (t->pgid > 0) {
        unsigned long long st = agent_proc_starttime(t->pgid);
        if (st != 0 && st == t->pid_start) {
            killed = kill(-t->pgid, SIGKILL) == 0;
        } else if (st == 0 && kill(-t->pgid, 0) == 0) {
            /* Leader gone but members left: a pgid cannot be reused while members exist. */
            killed = kill(-t->pgid, SIGKILL) == 0;
        }
    }
    free(t->failure_reason);
    t->failure_reason = core_xasprintf(
        "sky-agent restarted while the task was %s; its exit status is unknown%s",
        core_agent_status_name(t->status), killed ? " (its leftover processes were killed)" : "");
    t->status = CORE_AGENT_FAILED;
    t->has_exit_code = 0;
    t->ended_at = core_now();
    agent_store_save_status(a, t);
}

/* A task of a pre-database agent (spec.json + status.json), or NULL if unreadable. */
static agent_task_t *legacy_task(agent_t *a, int id)
{
    char *spath = agent_task_file(a, id, "spec.json");
    char *tpath = agent_task_file(a, id, "status.json");
    char *sbuf = NULL, *tbuf = NULL, *err = NULL;
    size_t len;
    cJSON *sdoc = NULL, *tdoc = NULL;
    agent_task_t *t = NULL;
    core_agent_task_t ct = {0};

    if (core_read_file(tpath, STATUS_MAX, &tbuf, &len) < 0 ||
        core_read_file(spath, SPEC_MAX, &sbuf, &len) < 0)
        goto out;
    sdoc = cJSON_Parse(sbuf);
    tdoc = cJSON_Parse(tbuf);
    if (sdoc == NULL || tdoc == NULL || core_agent_task_from_json(tdoc, &ct) < 0) {
        CORE_WARN("task %d: unreadable state in %s, skipped", id, tpath);
        goto out;
    }
    t = core_xcalloc(1, sizeof(*t));
    if (core_agent_req_parse(sdoc, &t->spec, &err) < 0) {
        CORE_WARN("task %d: invalid %s (%s), skipped", id, spath, err);
        free(t);
        t = NULL;
        goto out;
    }
    t->id = id;
    t->status = ct.status;
    t->has_exit_code = ct.has_exit_code;
    t->exit_code = ct.exit_code;
    t->submitted_at = ct.submitted_at;
    t->started_at = ct.started_at;
    t->ended_at = ct.ended_at;
    t->failure_reason = ct.failure_reason;
    ct.failure_reason = NULL;
    const cJSON *pg = cJSON_GetObjectItemCaseSensitive(tdoc, "pgid");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(tdoc, "pid_start");
    t->pgid = cJSON_IsNumber(pg) ? (pid_t)pg->valueint : 0;
    t->pid_start = cJSON_IsNumber(ps) ? (unsigned long long)ps->valuedouble : 0;
out:
    core_agent_task_free(&ct);
    cJSON_Delete(sdoc);
    cJSON_Delete(tdoc);
    free(sbuf);
    free(tbuf);
    free(spath);
    free(tpath);
    free(err);
    return t;
}

static int parse_id(const char *s)
{
    if (*s == '\0' || *s == '0')
        return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 1000000000L)
            return -1;
    }
    return (int)v;
}

/* The highest task directory's id (0 for none): ids are never reused. */
static int max_dir_id(const agent_t *a)
{
    DIR *d = opendir(a->state_dir);
    if (d == NULL)
        return 0;
    int max_id = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int id = parse_id(de->d_name);
        if (id > max_id)
            max_id = id;
    }
    closedir(d);
    return max_id;
}

typedef struct import {
    agent_t *a;
    int ran;
} import_t;

/* Schema version 1's data: the tasks of the spec.json/status.json layout. */
static int import_legacy(core_store_t *st, void *arg, char **err)
{
    import_t *im = arg;
    agent_t *a = im->a;
    int max_id = max_dir_id(a), n = 0;

    for (int id = 1; id <= max_id; id++) {
        agent_task_t *t = legacy_task(a, id);
        if (t == NULL)
            continue;
        int rc = insert_task(st, t);
        agent_task_free(t);
        if (rc < 0) {
            *err = core_xasprintf("importing task %d", id);
            return rc;
        }
        n++;
    }
    if (n)
        CORE_INFO("imported %d task(s) from the spec.json/status.json files of %s", n,
                  a->state_dir);
    im->ran = 1;
    return 0;
}

/* The old files of imported tasks: the database is the truth now, and a stale
 * status.json would mislead whoever reads the directory. Only once the import
 * is committed, so that a kill -9 before that imports them again. */
static void remove_legacy_files(agent_t *a)
{
    int max_id = max_dir_id(a);

    for (int id = 1; id <= max_id; id++) {
        char *p = agent_task_file(a, id, "status.json");
        unlink(p);
        free(p);
        p = agent_task_file(a, id, "spec.json");
        unlink(p);
        free(p);
    }
}

static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id INTEGER PRIMARY KEY, spec TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER,"
    " submitted_at REAL, started_at REAL, ended_at REAL, failure_reason TEXT,"
    " pgid INTEGER NOT NULL DEFAULT 0, pid_start INTEGER NOT NULL DEFAULT 0);";

int agent_store_init(agent_t *a)
{
    static const core_store_step_t steps[] = {
        {schema_v1, import_legacy},
    };
    import_t im = {a, 0};
    const core_store_schema_t schema = {"agent store", steps, CORE_ARRAY_SIZE(steps), &im};
    int rc = core_mkdir_p(a->state_dir, 0700);
    if (rc < 0)
        return rc;
    char *path = core_xasprintf("%s/.sky_agent/agent.db", a->home), *err = NULL;
    rc = core_store_open(path, &schema, &a->store, &err);
    free(path);
    if (rc < 0) {
        CORE_ERROR("%s", err ? err : "agent store: cannot open");
        free(err);
        return rc;
    }
    if (im.ran)
        remove_legacy_files(a);
    return 0;
}

void agent_store_close(agent_t *a)
{
    core_store_close(a->store);
    a->store = NULL;
}

static agent_task_t *task_from_row(sqlite3_stmt *q)
{
    agent_task_t *t = core_xcalloc(1, sizeof(*t));
    char *err = NULL;
    t->id = sqlite3_column_int(q, 0);
    const char *spec = (const char *)sqlite3_column_text(q, 1);
    cJSON *doc = spec ? cJSON_Parse(spec) : NULL;
    int rc = doc ? core_agent_req_parse(doc, &t->spec, &err) : CORE_EJSON;
    cJSON_Delete(doc);
    const char *status = (const char *)sqlite3_column_text(q, 2);
    if (rc < 0 || status == NULL || core_agent_status_parse(status, &t->status) < 0) {
        CORE_WARN("task %d: unreadable row (%s), skipped", t->id, err ? err : "status");
        free(err);
        if (rc == 0)
            core_agent_req_free(&t->spec);
        free(t);
        return NULL;
    }
    t->has_exit_code = sqlite3_column_type(q, 3) != SQLITE_NULL;
    t->exit_code = sqlite3_column_int(q, 3);
    t->submitted_at = sqlite3_column_double(q, 4);
    t->started_at = sqlite3_column_double(q, 5);
    t->ended_at = sqlite3_column_double(q, 6);
    t->failure_reason = core_store_col_dup(q, 7);
    t->pgid = (pid_t)sqlite3_column_int(q, 8);
    t->pid_start = (unsigned long long)sqlite3_column_int64(q, 9);
    return t;
}

int agent_store_load(agent_t *a)
{
    sqlite3_stmt *q = core_store_prepare(
        a->store, "SELECT id, spec, status, exit_code, submitted_at, started_at, ended_at,"
                  " failure_reason, pgid, pid_start FROM tasks ORDER BY id");
    if (q == NULL)
        return CORE_ESTORE;
    int max_id = max_dir_id(a), loaded = 0, lost = 0, rc;
    agent_task_t **tasks = NULL;
    size_t n = 0;
    while ((rc = core_store_step(a->store, q)) == 1) {
        agent_task_t *t = task_from_row(q);
        if (t == NULL)
            continue;
        tasks = core_xrealloc(tasks, (n + 1) * sizeof(*tasks));
        tasks[n++] = t;
        if (t->id > max_id)
            max_id = t->id;
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            agent_task_free(tasks[i]);
        free(tasks);
        return rc;
    }
    if (max_id > 0) {
        a->tasks = core_xcalloc((size_t)max_id, sizeof(*a->tasks));
        a->n_tasks = max_id;
    }
    for (size_t i = 0; i < n; i++) {
        agent_task_t *t = tasks[i];
        a->tasks[t->id - 1] = t;
        loaded++;
        /* Pending tasks never started: they simply stay queued. */
        if (t->status == CORE_AGENT_SETTING_UP || t->status == CORE_AGENT_RUNNING) {
            fail_lost_task(a, t);
            lost++;
        }
    }
    free(tasks);
    if (loaded)
        CORE_INFO("loaded %d task(s) (%d were live when the agent stopped)", loaded, lost);
    return 0;
}
