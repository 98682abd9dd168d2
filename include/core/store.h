#ifndef CORE_STORE_H
#define CORE_STORE_H

#include <stddef.h>
#include <sqlite3.h>

/*
 * The one SQLite layer under every store (serve, jobs, local cloud, the CLI's
 * clusters, the agent's tasks): one connection with the same settings for
 * all, cached prepared statements and a versioned schema.
 *
 * Settings. WAL journal, synchronous=NORMAL and a 10 s busy timeout. In WAL
 * mode NORMAL syncs at checkpoints only: a committed transaction survives the
 * process being killed at any point (kill -9 included, tests/unit/core/
 * test_store.c), and only an OS crash or power loss may roll back the last
 * ones. Writers that read first use core_store_begin (BEGIN IMMEDIATE), so
 * two processes never deadlock on a lock upgrade.
 *
 * Schema. A store declares its schema as steps; step i takes the database
 * from version i to i+1 (PRAGMA user_version). Opening applies the missing
 * steps in one transaction, so a kill -9 in the middle leaves the old
 * version for the next open to migrate again. Databases made before
 * versions existed are version 0: a store's step 0 creates its tables with
 * IF NOT EXISTS and adds, with core_store_add_column, the columns older
 * files lack, so both a fresh file and any earlier file reach version 1. A
 * file newer than the program is refused rather than misread.
 *
 * Threads: a store is used by one thread at a time.
 */
typedef struct core_store core_store_t;

typedef struct core_store_step {
    const char *sql; /* run first (several statements allowed); may be NULL */
    /* then this (e.g. copy data from an older format); may be NULL.
     * Returns 0 or a negative errno; *err (optional) says why. */
    int (*fn)(core_store_t *st, void *arg, char **err);
} core_store_step_t;

typedef struct core_store_schema {
    const char *name; /* in messages: "jobs store" */
    const core_store_step_t *steps;
    size_t n_steps; /* the current version */
    void *arg;      /* passed to each step's fn */
} core_store_schema_t;

/* Opens (creating) <path> and migrates it. On failure *err (if err != NULL)
 * gets a message the caller frees; returns CORE_ESTORE. */
int core_store_open(const char *path, const core_store_schema_t *schema, core_store_t **out,
                    char **err);
void core_store_close(core_store_t *st);
int core_store_version(core_store_t *st);
/* For what this layer does not wrap (sqlite3_errmsg, ...). */
sqlite3 *core_store_db(core_store_t *st);

/*
 * The prepared statement for <sql> (compiled once per store, cached by the
 * string's address, so pass a literal), reset with no bindings; NULL on a
 * syntax error (logged). Hand it back to core_store_run / core_store_step,
 * which reset it when done.
 */
sqlite3_stmt *core_store_prepare(core_store_t *st, const char *sql);
/* Runs <q> to completion and resets it: 0 or CORE_ESTORE (logged). */
int core_store_run(core_store_t *st, sqlite3_stmt *q);
/* One step: 1 with a row, 0 when done (reset), CORE_ESTORE on error (reset,
 * logged). Stopping before 0 needs core_store_reset, which ends the read. */
int core_store_step(core_store_t *st, sqlite3_stmt *q);
void core_store_reset(sqlite3_stmt *q);

/* Statements without results (several allowed): 0 or CORE_ESTORE. */
int core_store_exec(core_store_t *st, const char *sql);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. Not nested. */
int core_store_begin(core_store_t *st);
int core_store_commit(core_store_t *st);
void core_store_rollback(core_store_t *st);
long long core_store_last_id(core_store_t *st);
/* Rows changed by the last INSERT/UPDATE/DELETE. */
int core_store_changes(core_store_t *st);

/* 1 if <table> has <column>, 0 if not (or no such table), CORE_ESTORE. */
int core_store_has_column(core_store_t *st, const char *table, const char *column);
/* ALTER TABLE <table> ADD COLUMN <column> <decl> unless it is there. */
int core_store_add_column(core_store_t *st, const char *table, const char *column,
                          const char *decl);

/* Column <i> as text into <out> ("" for NULL), or a copy (NULL for NULL). */
void core_store_col_text(sqlite3_stmt *q, int i, char *out, size_t outlen);
char *core_store_col_dup(sqlite3_stmt *q, int i);
/* Binds a copy of <s>, or NULL when s is NULL. */
void core_store_bind_text(sqlite3_stmt *q, int i, const char *s);

#endif
