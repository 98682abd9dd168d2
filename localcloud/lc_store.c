#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "lc.h"

/*
 * One row per instance, ever; instance facts are real columns so that a
 * restarted daemon (or a curious operator with sqlite3) sees everything.
 * Only the loop thread touches the database.
 */

static const char *schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS capacity (zone TEXT PRIMARY KEY, capacity INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS instances ("
    " id TEXT PRIMARY KEY, num INTEGER NOT NULL, cloud TEXT, region TEXT, zone TEXT,"
    " instance_type TEXT, spot INTEGER, state TEXT, ip TEXT, agent_port INTEGER,"
    " port_offset INTEGER, price REAL, launched_at REAL, ended_at REAL, owner TEXT,"
    " netns TEXT, veth TEXT, agent_pid INTEGER, reason TEXT, torn_down INTEGER,"
    " agent_sid INTEGER, netns_ino INTEGER);";

int lc_store_open(lc_daemon_t *d, const char *path)
{
    int rc = sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        CORE_ERROR("cannot open %s: %s", path, sqlite3_errstr(rc));
        sqlite3_close(d->db);
        d->db = NULL;
        return CORE_ESTORE;
    }
    sqlite3_busy_timeout(d->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(d->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        CORE_ERROR("schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return CORE_ESTORE;
    }
    return 0;
}

void lc_store_close(lc_daemon_t *d)
{
    if (d->db)
        sqlite3_close(d->db);
    d->db = NULL;
}

int lc_store_put(lc_daemon_t *d, const lc_inst_t *in)
{
    static const char *sql =
        "INSERT OR REPLACE INTO instances (id, num, cloud, region, zone, instance_type, spot,"
        " state, ip, agent_port, port_offset, price, launched_at, ended_at, owner, netns, veth,"
        " agent_pid, reason, torn_down, agent_sid, netns_ino)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto fail;
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
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    return 0;
fail:
    CORE_ERROR("store instance %s: %s", in->super.id, sqlite3_errmsg(d->db));
    sqlite3_finalize(st);
    return CORE_ESTORE;
}

static void col_text(sqlite3_stmt *st, int col, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

/* Loads every instance (oldest last in the list, so newest first) and the capacities. */
int lc_store_load(lc_daemon_t *d)
{
    static const char *sql =
        "SELECT id, num, cloud, region, zone, instance_type, spot, state, ip, agent_port,"
        " port_offset, price, launched_at, ended_at, owner, netns, veth, agent_pid, reason,"
        " torn_down, agent_sid, netns_ino FROM instances ORDER BY num ASC";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lc_inst_t *in = core_xcalloc(1, sizeof(*in));
        core_instance_t *s = &in->super;
        int i = 0;
        col_text(st, i++, s->id, sizeof(s->id));
        in->num = sqlite3_column_int64(st, i++);
        col_text(st, i++, s->cloud, sizeof(s->cloud));
        col_text(st, i++, s->region, sizeof(s->region));
        col_text(st, i++, s->zone, sizeof(s->zone));
        col_text(st, i++, s->instance_type, sizeof(s->instance_type));
        s->spot = sqlite3_column_int(st, i++);
        char state[24];
        col_text(st, i++, state, sizeof(state));
        if (core_inst_state_parse(state, &s->state) < 0)
            s->state = CORE_INST_FAILED;
        col_text(st, i++, s->ip, sizeof(s->ip));
        s->agent_port = sqlite3_column_int(st, i++);
        s->port_offset = sqlite3_column_int(st, i++);
        s->price = sqlite3_column_double(st, i++);
        s->launched_at = sqlite3_column_double(st, i++);
        in->ended_at = sqlite3_column_double(st, i++);
        col_text(st, i++, s->owner, sizeof(s->owner));
        col_text(st, i++, in->netns, sizeof(in->netns));
        col_text(st, i++, in->veth, sizeof(in->veth));
        in->agent_pid = sqlite3_column_int(st, i++);
        col_text(st, i++, in->reason, sizeof(in->reason));
        in->torn_down = sqlite3_column_int(st, i++);
        in->agent_sid = sqlite3_column_int(st, i++);
        in->netns_ino = (unsigned long long)sqlite3_column_int64(st, i++);
        in->final_state = s->state;
        in->next = d->insts;
        d->insts = in;
        if (in->num >= d->next_num)
            d->next_num = in->num + 1;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE)
        goto fail;

    if (sqlite3_prepare_v2(d->db, "SELECT zone, capacity FROM capacity", -1, &st, NULL) !=
        SQLITE_OK)
        goto fail;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char zone[40];
        col_text(st, 0, zone, sizeof(zone));
        long cap = (long)sqlite3_column_int64(st, 1);
        if (strcmp(zone, "*") == 0)
            d->market.default_capacity = cap;
        else
            lc_market_set(&d->market, zone, cap);
    }
    sqlite3_finalize(st);
    st = NULL;

    char buf[32];
    if (lc_store_meta_get(d, "next_num", buf, sizeof(buf)) == 0) {
        long n = strtol(buf, NULL, 10);
        if (n > d->next_num)
            d->next_num = n;
    }
    if (d->next_num < 1)
        d->next_num = 1;
    return 0;
fail:
    CORE_ERROR("load: %s", sqlite3_errmsg(d->db));
    sqlite3_finalize(st);
    return CORE_ESTORE;
}

int lc_store_meta_get(lc_daemon_t *d, const char *key, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int ret = -ENOENT;
    if (sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return CORE_ESTORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        col_text(st, 0, out, outlen);
        ret = 0;
    }
    sqlite3_finalize(st);
    return ret;
}

int lc_store_meta_set(lc_daemon_t *d, const char *key, const char *val)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return CORE_ESTORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : CORE_ESTORE;
}

/* <zone> "*" is the default; capacity < 0 (unlimited) deletes the row. */
int lc_store_put_capacity(lc_daemon_t *d, const char *zone, long capacity)
{
    sqlite3_stmt *st = NULL;
    const char *sql = capacity < 0
                          ? "DELETE FROM capacity WHERE zone = ?"
                          : "INSERT OR REPLACE INTO capacity (zone, capacity) VALUES (?, ?)";
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return CORE_ESTORE;
    sqlite3_bind_text(st, 1, zone, -1, SQLITE_STATIC);
    if (capacity >= 0)
        sqlite3_bind_int64(st, 2, capacity);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : CORE_ESTORE;
}

int lc_store_clear_capacities(lc_daemon_t *d)
{
    return sqlite3_exec(d->db, "DELETE FROM capacity", NULL, NULL, NULL) == SQLITE_OK ? 0
                                                                                      : CORE_ESTORE;
}
