/*
 * The SQLite layer of every store (see include/core/store.h for the
 * settings and the migration scheme).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/store.h"

#define BUSY_TIMEOUT_MS 10000

typedef struct cached {
    const char *sql;
    sqlite3_stmt *stmt;
} cached_t;

struct core_store {
    sqlite3 *db;
    const char *name;
    int version;
    cached_t *cache;
    size_t n_cache, cap_cache;
};

static int fail(core_store_t *st, const char *what)
{
    CORE_ERROR("%s: %s: %s", st->name, what, sqlite3_errmsg(st->db));
    return CORE_ESTORE;
}

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
}

int core_store_exec(core_store_t *st, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    CORE_ERROR("%s: %s: %s", st->name, sql, msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return CORE_ESTORE;
}

static int read_version(core_store_t *st, int *out)
{
    sqlite3_stmt *q = NULL;
    int rc = CORE_ESTORE;

    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        *out = sqlite3_column_int(q, 0);
        rc = 0;
    }
    sqlite3_finalize(q);
    return rc;
}

/* Brings the file to the schema's version, all steps in one transaction. */
static int migrate(core_store_t *st, const core_store_schema_t *sc, char **err)
{
    char *why = NULL, sql[64];
    int v, rc;

    if (read_version(st, &v) < 0)
        goto db_fail;
    if (v == (int)sc->n_steps) {
        st->version = v;
        return 0;
    }
    /* Another process may be migrating the same file: IMMEDIATE waits for it,
     * and the version is read again under the lock. */
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto db_fail;
    if (read_version(st, &v) < 0)
        goto db_rollback;
    if (v > (int)sc->n_steps) {
        set_err(err, "%s: the database is at schema version %d, newer than this program's %zu",
                sc->name, v, sc->n_steps);
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return CORE_ESTORE;
    }
    for (; v < (int)sc->n_steps; v++) {
        const core_store_step_t *step = &sc->steps[v];

        if (step->sql && sqlite3_exec(st->db, step->sql, NULL, NULL, NULL) != SQLITE_OK)
            goto db_rollback;
        if (step->fn && (rc = step->fn(st, sc->arg, &why)) < 0) {
            set_err(err, "%s: migrating to schema version %d: %s", sc->name, v + 1,
                    why ? why : core_strerror(rc));
            free(why);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return CORE_ESTORE;
        }
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", sc->n_steps);
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        goto db_rollback;
    st->version = (int)sc->n_steps;
    return 0;
db_rollback:
    set_err(err, "%s: migrating to schema version %d: %s", sc->name, v + 1,
            sqlite3_errmsg(st->db));
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return CORE_ESTORE;
db_fail:
    set_err(err, "%s: %s", sc->name, sqlite3_errmsg(st->db));
    return CORE_ESTORE;
}

int core_store_open(const char *path, const core_store_schema_t *schema, core_store_t **out,
                    char **err)
{
    core_store_t *st = core_xcalloc(1, sizeof(*st));
    sqlite3_stmt *q = NULL;
    int rc;

    if (err)
        *err = NULL;
    st->name = schema->name;
    rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, "%s: cannot open %s: %s", schema->name, path,
                st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    /* journal_mode answers with the mode in force: a file system without
     * shared memory keeps the rollback journal, which is slower, not unsafe. */
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        set_err(err, "%s: %s: %s", schema->name, path, sqlite3_errmsg(st->db));
        sqlite3_finalize(q);
        goto fail;
    }
    if (strcmp((const char *)sqlite3_column_text(q, 0), "wal") != 0)
        CORE_WARN("%s: %s: journal mode %s, not wal", schema->name, path,
                  (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (sqlite3_exec(st->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        set_err(err, "%s: %s: %s", schema->name, path, sqlite3_errmsg(st->db));
        goto fail;
    }
    if (migrate(st, schema, err) < 0)
        goto fail;
    *out = st;
    return 0;
fail:
    sqlite3_close(st->db);
    free(st);
    return CORE_ESTORE;
}

void core_store_close(core_store_t *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_cache; i++)
        sqlite3_finalize(st->cache[i].stmt);
    free(st->cache);
    sqlite3_close(st->db);
    free(st);
}

int core_store_version(core_store_t *st)
{
    return st->version;
}

sqlite3 *core_store_db(core_store_t *st)
{
    return st->db;
}

sqlite3_stmt *core_store_prepare(core_store_t *st, const char *sql)
{
    sqlite3_stmt *q = NULL;

    for (size_t i = 0; i < st->n_cache; i++) {
        if (st->cache[i].sql == sql) {
            q = st->cache[i].stmt;
            sqlite3_reset(q);
            sqlite3_clear_bindings(q);
            return q;
        }
    }
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL) != SQLITE_OK) {
        fail(st, sql);
        return NULL;
    }
    if (st->n_cache == st->cap_cache) {
        st->cap_cache = st->cap_cache ? st->cap_cache * 2 : 16;
        st->cache = core_xrealloc(st->cache, st->cap_cache * sizeof(*st->cache));
    }
    st->cache[st->n_cache++] = (cached_t){sql, q};
    return q;
}

int core_store_step(core_store_t *st, sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);

    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(q);
        return 0;
    }
    fail(st, sqlite3_sql(q));
    sqlite3_reset(q);
    return CORE_ESTORE;
}

int core_store_run(core_store_t *st, sqlite3_stmt *q)
{
    int rc;

    while ((rc = core_store_step(st, q)) == 1)
        ;
    return rc;
}

void core_store_reset(sqlite3_stmt *q)
{
    sqlite3_reset(q);
}

int core_store_begin(core_store_t *st)
{
    return core_store_exec(st, "BEGIN IMMEDIATE");
}

int core_store_commit(core_store_t *st)
{
    return core_store_exec(st, "COMMIT");
}

void core_store_rollback(core_store_t *st)
{
    /* Fails harmlessly when an error already ended the transaction. */
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

long long core_store_last_id(core_store_t *st)
{
    return (long long)sqlite3_last_insert_rowid(st->db);
}

int core_store_changes(core_store_t *st)
{
    return sqlite3_changes(st->db);
}

int core_store_has_column(core_store_t *st, const char *table, const char *column)
{
    sqlite3_stmt *q = NULL;
    int found = 0, rc;

    /* table_info takes no bound parameters; the names come from our own schemas. */
    char *sql = core_xasprintf("PRAGMA table_info(\"%s\")", table);
    rc = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL);
    free(sql);
    if (rc != SQLITE_OK)
        return fail(st, "table_info");
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(q, 1);

        if (name && strcmp((const char *)name, column) == 0)
            found = 1;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return fail(st, "table_info");
    return found;
}

int core_store_add_column(core_store_t *st, const char *table, const char *column,
                          const char *decl)
{
    int rc = core_store_has_column(st, table, column);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    char *sql = core_xasprintf("ALTER TABLE \"%s\" ADD COLUMN \"%s\" %s", table, column, decl);
    rc = core_store_exec(st, sql);
    free(sql);
    return rc;
}

void core_store_col_text(sqlite3_stmt *q, int i, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(q, i);

    snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

char *core_store_col_dup(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);

    return t ? core_xstrdup((const char *)t) : NULL;
}

void core_store_bind_text(sqlite3_stmt *q, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(q, i);
}
