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
#include "core/util.h"

/*
 * On-disk layout (the instance's disk, so it survives an agent restart):
 *   <home>/.sky_agent/tasks/<id>/spec.json    normalized submission, written once
 *   <home>/.sky_agent/tasks/<id>/status.json  rewritten atomically on each transition
 *   <home>/.sky_agent/tasks/<id>/setup.log    sync + setup output
 *   <home>/.sky_agent/tasks/<id>/run.log      run output
 * A task directory without status.json is a submission that never got an
 * answer; it is ignored (but its id is not reused).
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

int agent_store_init(agent_t *a)
{
    return core_mkdir_p(a->state_dir, 0700);
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

static int write_json(const char *path, cJSON *doc)
{
    char *s = cJSON_PrintUnformatted(doc);
    if (s == NULL)
        return -ENOMEM;
    int rc = core_write_file(path, s, strlen(s), 0600);
    free(s);
    return rc;
}

int agent_store_save_status(agent_t *a, const agent_task_t *t)
{
    cJSON *o = agent_task_to_json(t);
    cJSON_AddNumberToObject(o, "pgid", t->pgid);
    cJSON_AddNumberToObject(o, "pid_start", (double)t->pid_start);
    char *path = agent_task_file(a, t->id, "status.json");
    int rc = write_json(path, o);
    if (rc < 0)
        CORE_ERROR("task %d: cannot write %s: %s", t->id, path, core_strerror(rc));
    free(path);
    cJSON_Delete(o);
    return rc;
}

int agent_store_save_spec(agent_t *a, const agent_task_t *t)
{
    char *dir = agent_task_dir(a, t->id);
    int rc = core_mkdir_p(dir, 0700);
    free(dir);
    if (rc < 0)
        return rc;
    cJSON *o = core_agent_req_json(&t->spec);
    char *path = agent_task_file(a, t->id, "spec.json");
    rc = write_json(path, o);
    free(path);
    cJSON_Delete(o);
    return rc;
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

static agent_task_t *load_one(agent_t *a, int id)
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

int agent_store_load(agent_t *a)
{
    DIR *d = opendir(a->state_dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -errno;
    int max_id = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int id = parse_id(de->d_name);
        if (id > max_id)
            max_id = id;
    }
    closedir(d);
    if (max_id == 0)
        return 0;
    a->tasks = core_xcalloc((size_t)max_id, sizeof(*a->tasks));
    a->n_tasks = max_id;
    int loaded = 0, lost = 0;
    for (int id = 1; id <= max_id; id++) {
        agent_task_t *t = load_one(a, id);
        if (t == NULL)
            continue;
        a->tasks[id - 1] = t;
        loaded++;
        /* Pending tasks never started: they simply stay queued. */
        if (t->status == CORE_AGENT_SETTING_UP || t->status == CORE_AGENT_RUNNING) {
            fail_lost_task(a, t);
            lost++;
        }
    }
    CORE_INFO("loaded %d task(s) from %s (%d were live when the agent stopped)", loaded,
              a->state_dir, lost);
    return 0;
}
