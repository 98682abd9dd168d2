/*
 * SQLite persistence of the serve controller: services, versions (the task
 * YAML text and update mode), replicas (every ReplicaInfo fact of reference
 * §9 as a real column, plus the instance it runs on) and per-service meta
 * (the replica-id counter and the autoscaler/placer state the reference
 * loses on restart). Loop thread only. Settings and migrations: core/store.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/store.h"
#include "ctl_serve_store.h"

struct ctl_store {
    core_store_t *st;
};

/* Version 1: the schema as it was before versions, and the columns files of
 * that time may lack (versions.envs came later). */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS services ("
    "  name TEXT PRIMARY KEY, status TEXT NOT NULL, created_at REAL NOT NULL,"
    "  uptime REAL NOT NULL DEFAULT 0, lb_port INTEGER NOT NULL DEFAULT 0,"
    "  lb_pid INTEGER NOT NULL DEFAULT 0, lb_ctrl_port INTEGER NOT NULL DEFAULT 0,"
    "  load_balancing_policy TEXT NOT NULL DEFAULT 'least_load',"
    "  requested_resources TEXT NOT NULL DEFAULT '',"
    "  active_versions TEXT NOT NULL DEFAULT '[]', purge INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS versions ("
    "  service_name TEXT NOT NULL, version INTEGER NOT NULL, yaml TEXT NOT NULL,"
    "  yaml_path TEXT, cwd TEXT, mode TEXT NOT NULL DEFAULT 'rolling', envs TEXT,"
    "  PRIMARY KEY(service_name, version));"
    "CREATE TABLE IF NOT EXISTS replicas ("
    "  service_name TEXT NOT NULL, replica_id INTEGER NOT NULL, version INTEGER NOT NULL,"
    "  sky_launch_status TEXT NOT NULL, sky_down_status TEXT NOT NULL,"
    "  user_app_failed INTEGER NOT NULL, service_ready_now INTEGER NOT NULL,"
    "  first_ready_time REAL NOT NULL, is_scale_down INTEGER NOT NULL,"
    "  preempted INTEGER NOT NULL, purged INTEGER NOT NULL,"
    "  failed_spot_availability INTEGER NOT NULL,"
    "  first_not_ready_time REAL NOT NULL, first_fail_time REAL NOT NULL,"
    "  last_fail_time REAL NOT NULL, n_fail INTEGER NOT NULL,"
    "  is_spot INTEGER NOT NULL, use_spot INTEGER NOT NULL, has_location INTEGER NOT NULL,"
    "  loc_cloud TEXT, loc_region TEXT, loc_zone TEXT,"
    "  instance_id TEXT, ip TEXT, cloud TEXT, region TEXT, zone TEXT, instance_type TEXT,"
    "  resources TEXT, agent_port INTEGER, port_offset INTEGER, replica_port INTEGER,"
    "  price REAL, launched_at REAL, agent_task_id INTEGER, down_at REAL,"
    "  launch_attempts INTEGER,"
    "  PRIMARY KEY(service_name, replica_id));"
    "CREATE TABLE IF NOT EXISTS service_meta ("
    "  service_name TEXT PRIMARY KEY, next_replica_id INTEGER NOT NULL DEFAULT 1,"
    "  autoscaler_state TEXT, placer_state TEXT);";

static int v1_columns(core_store_t *st, void *arg, char **err)
{
    (void)arg;
    (void)err;
    return core_store_add_column(st, "versions", "envs", "TEXT");
}

/* Version 2: the task flags of `sky serve up/update` (issue 14). */
static const char schema_v2[] = "ALTER TABLE versions ADD COLUMN overrides TEXT;";

/* Version 3: the LB's admin listener port, kept so that a restarted or
 * re-adopted LB serves its metrics where scrapers already look. */
static const char schema_v3[] =
    "ALTER TABLE services ADD COLUMN lb_admin_port INTEGER NOT NULL DEFAULT 0;";

static const core_store_step_t steps[] = {
    {schema_v1, v1_columns},
    {schema_v2, NULL},
    {schema_v3, NULL},
};

int ctl_store_open(const char *path, ctl_store_t **out)
{
    static const core_store_schema_t schema = {"serve store", steps, CORE_ARRAY_SIZE(steps), NULL};
    ctl_store_t *st = core_xcalloc(1, sizeof(*st));
    char *err = NULL;

    if (core_store_open(path, &schema, &st->st, &err) < 0) {
        CORE_ERROR("%s", err ? err : "serve store: cannot open");
        free(err);
        free(st);
        return CORE_ESTORE;
    }
    *out = st;
    return 0;
}

void ctl_store_close(ctl_store_t *st)
{
    if (!st)
        return;
    core_store_close(st->st);
    free(st);
}

int ctl_store_begin(ctl_store_t *st)
{
    return core_store_begin(st->st);
}

int ctl_store_commit(ctl_store_t *st)
{
    return core_store_commit(st->st);
}

static sqlite3_stmt *prep(ctl_store_t *st, const char *sql)
{
    return core_store_prepare(st->st, sql);
}

static int run(ctl_store_t *st, sqlite3_stmt *q)
{
    return core_store_run(st->st, q);
}

/* ---- services ---- */

static char *versions_json(const int *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    char *s;

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

static void parse_versions(const char *text, int *v, size_t *n)
{
    cJSON *a = text ? cJSON_Parse(text) : NULL;
    const cJSON *it;

    *n = 0;
    cJSON_ArrayForEach(it, a)
    {
        if (cJSON_IsNumber(it) && *n < CTL_MAX_ACTIVE_VERSIONS)
            v[(*n)++] = it->valueint;
    }
    cJSON_Delete(a);
}

int ctl_store_put_service(ctl_store_t *st, const ctl_service_row_t *s)
{
    sqlite3_stmt *q = prep(st, "INSERT OR REPLACE INTO services (name, status, created_at, uptime,"
                               " lb_port, lb_pid, lb_ctrl_port, load_balancing_policy,"
                               " requested_resources, active_versions, purge, lb_admin_port)"
                               " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
    char *av;

    if (!q)
        return CORE_ESTORE;
    av = versions_json(s->active_versions, s->n_active);
    sqlite3_bind_text(q, 1, s->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, ctl_service_status_name(s->status), -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 3, s->created_at);
    sqlite3_bind_double(q, 4, s->uptime);
    sqlite3_bind_int(q, 5, s->lb_port);
    sqlite3_bind_int(q, 6, s->lb_pid);
    sqlite3_bind_int(q, 7, s->lb_ctrl_port);
    sqlite3_bind_text(q, 8, s->lb_policy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 9, s->requested_resources, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 10, av, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 11, s->purge);
    sqlite3_bind_int(q, 12, s->lb_admin_port);
    free(av);
    return run(st, q);
}

int ctl_store_list_services(ctl_store_t *st, ctl_service_row_t **out, size_t *n)
{
    sqlite3_stmt *q = prep(st, "SELECT name, status, created_at, uptime, lb_port, lb_pid,"
                               " lb_ctrl_port, load_balancing_policy, requested_resources,"
                               " active_versions, purge, lb_admin_port FROM services"
                               " ORDER BY name");
    ctl_service_row_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if (!q)
        return CORE_ESTORE;
    while ((rc = core_store_step(st->st, q)) == 1) {
        ctl_service_row_t *s;
        char status[32];

        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            v = core_xrealloc(v, cap * sizeof(*v));
        }
        s = &v[cnt++];
        memset(s, 0, sizeof(*s));
        core_store_col_text(q, 0, s->name, sizeof(s->name));
        core_store_col_text(q, 1, status, sizeof(status));
        if (ctl_service_status_parse(status, &s->status) < 0)
            s->status = CTL_SERVICE_CONTROLLER_INIT;
        s->created_at = sqlite3_column_double(q, 2);
        s->uptime = sqlite3_column_double(q, 3);
        s->lb_port = sqlite3_column_int(q, 4);
        s->lb_pid = sqlite3_column_int(q, 5);
        s->lb_ctrl_port = sqlite3_column_int(q, 6);
        core_store_col_text(q, 7, s->lb_policy, sizeof(s->lb_policy));
        core_store_col_text(q, 8, s->requested_resources, sizeof(s->requested_resources));
        parse_versions((const char *)sqlite3_column_text(q, 9), s->active_versions, &s->n_active);
        s->purge = sqlite3_column_int(q, 10);
        s->lb_admin_port = sqlite3_column_int(q, 11);
    }
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

static int delete_by_service(ctl_store_t *st, const char *sql, const char *name)
{
    sqlite3_stmt *q = prep(st, sql);

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_TRANSIENT);
    return run(st, q);
}

int ctl_store_delete_service(ctl_store_t *st, const char *name)
{
    int rc = ctl_store_begin(st);

    if (rc < 0)
        return rc;
    if ((rc = delete_by_service(st, "DELETE FROM replicas WHERE service_name=?", name)) < 0 ||
        (rc = delete_by_service(st, "DELETE FROM versions WHERE service_name=?", name)) < 0 ||
        (rc = delete_by_service(st, "DELETE FROM service_meta WHERE service_name=?", name)) < 0 ||
        (rc = delete_by_service(st, "DELETE FROM services WHERE name=?", name)) < 0) {
        core_store_rollback(st->st);
        return rc;
    }
    return ctl_store_commit(st);
}

/* ---- versions ---- */

void ctl_version_row_clear(ctl_version_row_t *v)
{
    free(v->yaml);
    v->yaml = NULL;
    free(v->yaml_path);
    v->yaml_path = NULL;
    free(v->cwd);
    v->cwd = NULL;
    free(v->envs);
    v->envs = NULL;
    free(v->overrides);
    v->overrides = NULL;
}

int ctl_store_put_version(ctl_store_t *st, const char *svc, const ctl_version_row_t *v)
{
    sqlite3_stmt *q = prep(st, "INSERT OR REPLACE INTO versions (service_name, version, yaml,"
                               " yaml_path, cwd, mode, envs, overrides)"
                               " VALUES (?,?,?,?,?,?,?,?)");

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, v->version);
    sqlite3_bind_text(q, 3, v->yaml ? v->yaml : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, v->yaml_path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, v->cwd, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 6, ctl_update_mode_name(v->mode), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, v->envs, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 8, v->overrides, -1, SQLITE_TRANSIENT);
    return run(st, q);
}

int ctl_store_list_versions(ctl_store_t *st, const char *svc, ctl_version_row_t **out, size_t *n)
{
    sqlite3_stmt *q = prep(st, "SELECT version, yaml, yaml_path, cwd, mode, envs, overrides FROM versions"
                               " WHERE service_name=? ORDER BY version");
    ctl_version_row_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    while ((rc = core_store_step(st->st, q)) == 1) {
        ctl_version_row_t *r;
        const unsigned char *mode;

        if (cnt == cap) {
            cap = cap ? cap * 2 : 4;
            v = core_xrealloc(v, cap * sizeof(*v));
        }
        r = &v[cnt++];
        memset(r, 0, sizeof(*r));
        r->version = sqlite3_column_int(q, 0);
        r->yaml = core_store_col_dup(q, 1);
        r->yaml_path = core_store_col_dup(q, 2);
        r->cwd = core_store_col_dup(q, 3);
        r->envs = core_store_col_dup(q, 5);
        r->overrides = core_store_col_dup(q, 6);
        mode = sqlite3_column_text(q, 4);
        if (!mode || ctl_update_mode_parse((const char *)mode, &r->mode) < 0)
            r->mode = CTL_UPDATE_ROLLING;
    }
    if (rc < 0) {
        for (size_t i = 0; i < cnt; i++)
            ctl_version_row_clear(&v[i]);
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int ctl_store_delete_versions_below(ctl_store_t *st, const char *svc, int version)
{
    sqlite3_stmt *q = prep(st, "DELETE FROM versions WHERE service_name=? AND version<?");

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, version);
    return run(st, q);
}

int ctl_store_next_version(ctl_store_t *st, const char *svc, int *out)
{
    sqlite3_stmt *q = prep(st, "SELECT COALESCE(MAX(version),0)+1 FROM versions"
                               " WHERE service_name=?");
    int rc;

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    rc = core_store_step(st->st, q);
    if (rc == 1)
        *out = sqlite3_column_int(q, 0);
    core_store_reset(q);
    return rc == 1 ? 0 : CORE_ESTORE;
}

/* ---- replicas ---- */

void ctl_replica_row_init(ctl_replica_row_t *r, int id, int version)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->version = version;
    ctl_replica_facts_init(&r->f);
    ctl_probe_state_init(&r->ps);
    r->use_spot = -1;
}

ctl_replica_status_t ctl_replica_row_status(const ctl_replica_row_t *r)
{
    return ctl_replica_derive_status(&r->f);
}

#define REPLICA_COLS                                                                               \
    "replica_id, version, sky_launch_status, sky_down_status, user_app_failed,"                    \
    " service_ready_now, first_ready_time, is_scale_down, preempted, purged,"                      \
    " failed_spot_availability, first_not_ready_time, first_fail_time, last_fail_time,"            \
    " n_fail, is_spot, use_spot, has_location, loc_cloud, loc_region, loc_zone, instance_id,"      \
    " ip, cloud, region, zone, instance_type, resources, agent_port, port_offset,"                 \
    " replica_port, price, launched_at, agent_task_id, down_at, launch_attempts"

int ctl_store_put_replica(ctl_store_t *st, const char *svc, const ctl_replica_row_t *r)
{
    sqlite3_stmt *q = prep(st, "INSERT OR REPLACE INTO replicas (service_name, " REPLICA_COLS
                               ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                               "?,?,?,?,?,?,?,?,?,?)");
    int i = 1;

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, i++, svc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, i++, r->id);
    sqlite3_bind_int(q, i++, r->version);
    sqlite3_bind_text(q, i++, ctl_proc_status_name(r->f.launch), -1, SQLITE_STATIC);
    sqlite3_bind_text(q, i++, ctl_proc_status_name(r->f.down), -1, SQLITE_STATIC);
    sqlite3_bind_int(q, i++, r->f.user_app_failed);
    sqlite3_bind_int(q, i++, r->f.service_ready_now);
    sqlite3_bind_double(q, i++, r->f.first_ready_time);
    sqlite3_bind_int(q, i++, r->f.is_scale_down);
    sqlite3_bind_int(q, i++, r->f.preempted);
    sqlite3_bind_int(q, i++, r->f.purged);
    sqlite3_bind_int(q, i++, r->f.failed_spot_availability);
    sqlite3_bind_double(q, i++, r->ps.first_not_ready_time);
    sqlite3_bind_double(q, i++, r->ps.first_fail_time);
    sqlite3_bind_double(q, i++, r->ps.last_fail_time);
    sqlite3_bind_int(q, i++, r->ps.n_fail);
    sqlite3_bind_int(q, i++, r->is_spot);
    sqlite3_bind_int(q, i++, r->use_spot);
    sqlite3_bind_int(q, i++, r->has_location);
    sqlite3_bind_text(q, i++, r->loc.cloud, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->loc.region, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->loc.zone, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->instance_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->ip, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->cloud, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->region, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->zone, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->instance_type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, i++, r->resources, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, i++, r->agent_port);
    sqlite3_bind_int(q, i++, r->port_offset);
    sqlite3_bind_int(q, i++, r->replica_port);
    sqlite3_bind_double(q, i++, r->price);
    sqlite3_bind_double(q, i++, r->launched_at);
    sqlite3_bind_int(q, i++, r->agent_task_id);
    sqlite3_bind_double(q, i++, r->down_at);
    sqlite3_bind_int(q, i++, r->launch_attempts);
    return run(st, q);
}

static void proc_col(sqlite3_stmt *q, int i, ctl_proc_status_t *out)
{
    const unsigned char *t = sqlite3_column_text(q, i);

    if (!t || ctl_proc_status_parse((const char *)t, out) < 0)
        *out = CTL_PROC_NONE;
}

int ctl_store_list_replicas(ctl_store_t *st, const char *svc, ctl_replica_row_t **out, size_t *n)
{
    sqlite3_stmt *q = prep(st, "SELECT " REPLICA_COLS " FROM replicas WHERE service_name=?"
                               " ORDER BY replica_id");
    ctl_replica_row_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    while ((rc = core_store_step(st->st, q)) == 1) {
        ctl_replica_row_t *r;
        int i = 0;

        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            v = core_xrealloc(v, cap * sizeof(*v));
        }
        r = &v[cnt++];
        ctl_replica_row_init(r, sqlite3_column_int(q, 0), sqlite3_column_int(q, 1));
        i = 2;
        proc_col(q, i++, &r->f.launch);
        proc_col(q, i++, &r->f.down);
        r->f.user_app_failed = sqlite3_column_int(q, i++);
        r->f.service_ready_now = sqlite3_column_int(q, i++);
        r->f.first_ready_time = sqlite3_column_double(q, i++);
        r->f.is_scale_down = sqlite3_column_int(q, i++);
        r->f.preempted = sqlite3_column_int(q, i++);
        r->f.purged = sqlite3_column_int(q, i++);
        r->f.failed_spot_availability = sqlite3_column_int(q, i++);
        r->ps.first_not_ready_time = sqlite3_column_double(q, i++);
        r->ps.first_fail_time = sqlite3_column_double(q, i++);
        r->ps.last_fail_time = sqlite3_column_double(q, i++);
        r->ps.n_fail = sqlite3_column_int(q, i++);
        r->is_spot = sqlite3_column_int(q, i++);
        r->use_spot = sqlite3_column_int(q, i++);
        r->has_location = sqlite3_column_int(q, i++);
        core_store_col_text(q, i++, r->loc.cloud, sizeof(r->loc.cloud));
        core_store_col_text(q, i++, r->loc.region, sizeof(r->loc.region));
        core_store_col_text(q, i++, r->loc.zone, sizeof(r->loc.zone));
        core_store_col_text(q, i++, r->instance_id, sizeof(r->instance_id));
        core_store_col_text(q, i++, r->ip, sizeof(r->ip));
        core_store_col_text(q, i++, r->cloud, sizeof(r->cloud));
        core_store_col_text(q, i++, r->region, sizeof(r->region));
        core_store_col_text(q, i++, r->zone, sizeof(r->zone));
        core_store_col_text(q, i++, r->instance_type, sizeof(r->instance_type));
        core_store_col_text(q, i++, r->resources, sizeof(r->resources));
        r->agent_port = sqlite3_column_int(q, i++);
        r->port_offset = sqlite3_column_int(q, i++);
        r->replica_port = sqlite3_column_int(q, i++);
        r->price = sqlite3_column_double(q, i++);
        r->launched_at = sqlite3_column_double(q, i++);
        r->agent_task_id = sqlite3_column_int(q, i++);
        r->down_at = sqlite3_column_double(q, i++);
        r->launch_attempts = sqlite3_column_int(q, i++);
    }
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int ctl_store_delete_replica(ctl_store_t *st, const char *svc, int id)
{
    sqlite3_stmt *q = prep(st, "DELETE FROM replicas WHERE service_name=? AND replica_id=?");

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 2, id);
    return run(st, q);
}

/* ---- meta ---- */

static int ensure_meta(ctl_store_t *st, const char *svc)
{
    sqlite3_stmt *q = prep(st, "INSERT OR IGNORE INTO service_meta (service_name) VALUES (?)");

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    return run(st, q);
}

int ctl_store_alloc_replica_id(ctl_store_t *st, const char *svc, int *out)
{
    sqlite3_stmt *q;
    int rc, id = 1;

    if ((rc = ctl_store_begin(st)) < 0)
        return rc;
    if ((rc = ensure_meta(st, svc)) < 0)
        goto fail;
    q = prep(st, "SELECT MAX(m.next_replica_id, COALESCE((SELECT MAX(replica_id)+1 FROM replicas"
                 " WHERE service_name=?1), 1), 1) FROM service_meta m WHERE m.service_name=?1");
    if (!q) {
        rc = CORE_ESTORE;
        goto fail;
    }
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    if (core_store_step(st->st, q) == 1)
        id = sqlite3_column_int(q, 0);
    core_store_reset(q);
    q = prep(st, "UPDATE service_meta SET next_replica_id=? WHERE service_name=?");
    if (!q) {
        rc = CORE_ESTORE;
        goto fail;
    }
    sqlite3_bind_int(q, 1, id + 1);
    sqlite3_bind_text(q, 2, svc, -1, SQLITE_TRANSIENT);
    if ((rc = run(st, q)) < 0)
        goto fail;
    if ((rc = ctl_store_commit(st)) < 0)
        goto fail;
    *out = id;
    return 0;
fail:
    core_store_rollback(st->st);
    return rc;
}

int ctl_store_put_meta(ctl_store_t *st, const char *svc, const char *scaler_json,
                       const char *placer_json)
{
    sqlite3_stmt *q;
    int rc;

    if ((rc = ensure_meta(st, svc)) < 0)
        return rc;
    q = prep(st, "UPDATE service_meta SET autoscaler_state=COALESCE(?, autoscaler_state),"
                 " placer_state=COALESCE(?, placer_state) WHERE service_name=?");
    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, scaler_json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, placer_json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, svc, -1, SQLITE_TRANSIENT);
    return run(st, q);
}

int ctl_store_get_meta(ctl_store_t *st, const char *svc, int *next_id, char **scaler_json,
                       char **placer_json)
{
    sqlite3_stmt *q = prep(st, "SELECT next_replica_id, autoscaler_state, placer_state"
                               " FROM service_meta WHERE service_name=?");
    int rc;

    if (!q)
        return CORE_ESTORE;
    sqlite3_bind_text(q, 1, svc, -1, SQLITE_TRANSIENT);
    *next_id = 1;
    if (scaler_json)
        *scaler_json = NULL;
    if (placer_json)
        *placer_json = NULL;
    rc = core_store_step(st->st, q);
    if (rc == 1) {
        *next_id = sqlite3_column_int(q, 0);
        if (scaler_json)
            *scaler_json = core_store_col_dup(q, 1);
        if (placer_json)
            *placer_json = core_store_col_dup(q, 2);
        core_store_reset(q);
    }
    return rc < 0 ? rc : 0;
}
