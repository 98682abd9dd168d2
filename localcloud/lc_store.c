#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/store.h"
#include "lc.h"

/*
 * One row per instance, ever; instance facts are real columns so that a
 * restarted daemon (or a curious operator with sqlite3) sees everything.
 * Only the loop thread touches the database. Settings and migrations:
 * core/store.h.
 */

/* Version 1: the schema as it was before versions. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS capacity (zone TEXT PRIMARY KEY, capacity INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS instances ("
    " id TEXT PRIMARY KEY, num INTEGER NOT NULL, cloud TEXT, region TEXT, zone TEXT,"
    " instance_type TEXT, spot INTEGER, state TEXT, ip TEXT, agent_port INTEGER,"
    " port_offset INTEGER, price REAL, launched_at REAL, ended_at REAL, owner TEXT,"
    " netns TEXT, veth TEXT, agent_pid INTEGER, reason TEXT, torn_down INTEGER,"
    " agent_sid INTEGER, netns_ino INTEGER);";

/* Version 2: preemption notices. */
static const char schema_v2[] =
    "ALTER TABLE instances ADD COLUMN preempt_at REAL NOT NULL DEFAULT 0;";

static const core_store_step_t steps[] = {
    {schema_v1, NULL},
    {schema_v2, NULL},
};

int lc_store_open(lc_daemon_t *d, const char *path)
{
    static const core_store_schema_t schema = {"local cloud store", steps,
                                               CORE_ARRAY_SIZE(steps), NULL};
    char *err = NULL;

    if (core_store_open(path, &schema, &d->store, &err) < 0) {
        CORE_ERROR("%s", err ? err : "local cloud store: cannot open");
        free(err);
        d->store = NULL;
        return CORE_ESTORE;
    }
    return 0;
}

void lc_store_close(lc_daemon_t *d)
{
    core_store_close(d->store);
    d->store = NULL;
}

int lc_store_put(lc_daemon_t *d, const lc_inst_t *in)
{
    static const char *sql =
        "INSERT OR REPLACE INTO instances (id, num, cloud, region, zone, instance_type, spot,"
        " state, ip, agent_port, port_offset, price, launched_at, ended_at, owner, netns, veth,"
        " agent_pid, reason, torn_down, agent_sid, netns_ino, preempt_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    sqlite3_stmt *st = core_store_prepare(d->store, sql);
    if (st == NULL)
        return CORE_ESTORE;
    const core_instance_t *s = &in->super;
    int i = 1;
    sqlite3_bind_text(st, i++, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, i++, in->num);
    sqlite3_bind_text(st, i++, s->cloud, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i++, s->region, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i++, s->zone, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i++, s->instance_type, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, i++, s->spot);
    sqlite3_bind_text(st, i++, core_inst_state_name(s->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i++, s->ip, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, i++, s->agent_port);
    sqlite3_bind_int(st, i++, s->port_offset);
    sqlite3_bind_double(st, i++, s->price);
    sqlite3_bind_double(st, i++, s->launched_at);
    sqlite3_bind_double(st, i++, in->ended_at);
    sqlite3_bind_text(st, i++, s->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i++, in->netns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i++, in->veth, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, i++, in->agent_pid);
    sqlite3_bind_text(st, i++, in->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, i++, in->torn_down);
    sqlite3_bind_int(st, i++, in->agent_sid);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)in->netns_ino);
    sqlite3_bind_double(st, i++, in->preempt_at);
    return core_store_run(d->store, st);
}

/* Loads every instance (oldest last in the list, so newest first) and the capacities. */
int lc_store_load(lc_daemon_t *d)
{
    static const char *sql =
        "SELECT id, num, cloud, region, zone, instance_type, spot, state, ip, agent_port,"
        " port_offset, price, launched_at, ended_at, owner, netns, veth, agent_pid, reason,"
        " torn_down, agent_sid, netns_ino, preempt_at FROM instances ORDER BY num ASC";
    sqlite3_stmt *st = core_store_prepare(d->store, sql);
    if (st == NULL)
        return CORE_ESTORE;
    int rc;
    while ((rc = core_store_step(d->store, st)) == 1) {
        lc_inst_t *in = core_xcalloc(1, sizeof(*in));
        core_instance_t *s = &in->super;
        int i = 0;
        core_store_col_text(st, i++, s->id, sizeof(s->id));
        in->num = sqlite3_column_int64(st, i++);
        core_store_col_text(st, i++, s->cloud, sizeof(s->cloud));
        core_store_col_text(st, i++, s->region, sizeof(s->region));
        core_store_col_text(st, i++, s->zone, sizeof(s->zone));
        core_store_col_text(st, i++, s->instance_type, sizeof(s->instance_type));
        s->spot = sqlite3_column_int(st, i++);
        char state[24];
        core_store_col_text(st, i++, state, sizeof(state));
        if (core_inst_state_parse(state, &s->state) < 0)
            s->state = CORE_INST_FAILED;
        core_store_col_text(st, i++, s->ip, sizeof(s->ip));
        s->agent_port = sqlite3_column_int(st, i++);
        s->port_offset = sqlite3_column_int(st, i++);
        s->price = sqlite3_column_double(st, i++);
        s->launched_at = sqlite3_column_double(st, i++);
        in->ended_at = sqlite3_column_double(st, i++);
        core_store_col_text(st, i++, s->owner, sizeof(s->owner));
        core_store_col_text(st, i++, in->netns, sizeof(in->netns));
        core_store_col_text(st, i++, in->veth, sizeof(in->veth));
        in->agent_pid = sqlite3_column_int(st, i++);
        core_store_col_text(st, i++, in->reason, sizeof(in->reason));
        in->torn_down = sqlite3_column_int(st, i++);
        in->agent_sid = sqlite3_column_int(st, i++);
        in->netns_ino = (unsigned long long)sqlite3_column_int64(st, i++);
        in->preempt_at = sqlite3_column_double(st, i++);
        in->final_state = s->state;
        in->next = d->insts;
        d->insts = in;
        if (in->num >= d->next_num)
            d->next_num = in->num + 1;
    }
    if (rc < 0)
        return rc;

    st = core_store_prepare(d->store, "SELECT zone, capacity FROM capacity");
    if (st == NULL)
        return CORE_ESTORE;
    while ((rc = core_store_step(d->store, st)) == 1) {
        char zone[40];
        core_store_col_text(st, 0, zone, sizeof(zone));
        long cap = (long)sqlite3_column_int64(st, 1);
        if (strcmp(zone, "*") == 0)
            d->market.default_capacity = cap;
        else
            lc_market_set(&d->market, zone, cap);
    }
    if (rc < 0)
        return rc;

    char buf[32];
    if (lc_store_meta_get(d, "next_num", buf, sizeof(buf)) == 0) {
        long n = strtol(buf, NULL, 10);
        if (n > d->next_num)
            d->next_num = n;
    }
    if (d->next_num < 1)
        d->next_num = 1;
    return 0;
}

int lc_store_meta_get(lc_daemon_t *d, const char *key, char *out, size_t outlen)
{
    sqlite3_stmt *st = core_store_prepare(d->store, "SELECT value FROM meta WHERE key = ?");
    if (st == NULL)
        return CORE_ESTORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = core_store_step(d->store, st);
    if (rc == 1) {
        core_store_col_text(st, 0, out, outlen);
        core_store_reset(st);
        return 0;
    }
    return rc < 0 ? rc : -ENOENT;
}

int lc_store_meta_set(lc_daemon_t *d, const char *key, const char *val)
{
    sqlite3_stmt *st =
        core_store_prepare(d->store, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    if (st == NULL)
        return CORE_ESTORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
    return core_store_run(d->store, st);
}

/* <zone> "*" is the default; capacity < 0 (unlimited) deletes the row. */
int lc_store_put_capacity(lc_daemon_t *d, const char *zone, long capacity)
{
    static const char del[] = "DELETE FROM capacity WHERE zone = ?";
    static const char put[] = "INSERT OR REPLACE INTO capacity (zone, capacity) VALUES (?, ?)";
    sqlite3_stmt *st = core_store_prepare(d->store, capacity < 0 ? del : put);
    if (st == NULL)
        return CORE_ESTORE;
    sqlite3_bind_text(st, 1, zone, -1, SQLITE_STATIC);
    if (capacity >= 0)
        sqlite3_bind_int64(st, 2, capacity);
    return core_store_run(d->store, st);
}

int lc_store_clear_capacities(lc_daemon_t *d)
{
    return core_store_exec(d->store, "DELETE FROM capacity");
}
