/* core_store: the schema versions and migrations, refusing a newer file, a
 * failed migration rolling back, the statement cache, and a kill -9 of a
 * writer or of a migration losing nothing that was committed. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/store.h"
#include "core/util.h"

typedef struct fx {
    char dir[64];
    char path[128];
} fx_t;

static int setup(void **state)
{
    fx_t *f = core_xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    core_rm_rf(f->dir);
    free(f);
    return 0;
}

/* Version 1 as a store of "today" declares it: IF NOT EXISTS, plus a column
 * older files lack. */
static int v1_columns(core_store_t *st, void *arg, char **err)
{
    (void)arg;
    (void)err;
    return core_store_add_column(st, "items", "note", "TEXT");
}

static const core_store_step_t steps[] = {
    {"CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
     " note TEXT);",
     v1_columns},
    {"ALTER TABLE items ADD COLUMN weight REAL NOT NULL DEFAULT 1;"
     "CREATE TABLE tags (item INTEGER NOT NULL, tag TEXT NOT NULL);",
     NULL},
};

static const core_store_schema_t schema1 = {"test store", steps, 1, NULL};
static const core_store_schema_t schema2 = {"test store", steps, 2, NULL};

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static long long count(core_store_t *st, const char *sql)
{
    sqlite3_stmt *q = core_store_prepare(st, sql);
    assert_non_null(q);
    assert_int_equal(core_store_step(st, q), 1);
    long long n = sqlite3_column_int64(q, 0);
    core_store_reset(q);
    return n;
}

static void test_fresh_file(void **state)
{
    fx_t *f = *state;
    core_store_t *st = NULL;
    char *err = NULL;

    assert_int_equal(core_store_open(f->path, &schema2, &st, &err), 0);
    assert_null(err);
    assert_int_equal(core_store_version(st), 2);
    assert_int_equal(core_store_has_column(st, "items", "weight"), 1);
    assert_int_equal(core_store_has_column(st, "items", "nope"), 0);
    assert_int_equal(core_store_has_column(st, "nope", "id"), 0);
    sqlite3_stmt *q = core_store_prepare(st, "PRAGMA journal_mode");
    assert_int_equal(core_store_step(st, q), 1);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    core_store_reset(q);
    assert_int_equal(count(st, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(count(st, "PRAGMA busy_timeout"), 10000);
    core_store_close(st);
}

/* A file of before versions (user_version 0, no note column) reaches version 2. */
static void test_unversioned_file_migrates(void **state)
{
    fx_t *f = *state;
    core_store_t *st = NULL;
    char *err = NULL;

    raw_exec(f->path, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
                      "INSERT INTO items (name) VALUES ('a'), ('b');");
    assert_int_equal(core_store_open(f->path, &schema2, &st, &err), 0);
    assert_int_equal(core_store_version(st), 2);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM items WHERE note IS NULL AND weight = 1"), 2);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM tags"), 0);
    core_store_close(st);
    /* Step by step gives the same: version 1 first, then 2. */
    unlink(f->path);
    raw_exec(f->path, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
                      "INSERT INTO items (name) VALUES ('a');");
    assert_int_equal(core_store_open(f->path, &schema1, &st, &err), 0);
    assert_int_equal(core_store_version(st), 1);
    assert_int_equal(core_store_has_column(st, "items", "note"), 1);
    assert_int_equal(core_store_has_column(st, "items", "weight"), 0);
    core_store_close(st);
    assert_int_equal(core_store_open(f->path, &schema2, &st, &err), 0);
    assert_int_equal(core_store_version(st), 2);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM items WHERE weight = 1"), 1);
    core_store_close(st);
}

static void test_newer_file_is_refused(void **state)
{
    fx_t *f = *state;
    core_store_t *st = NULL;
    char *err = NULL;

    assert_int_equal(core_store_open(f->path, &schema2, &st, &err), 0);
    core_store_close(st);
    st = NULL;
    assert_int_equal(core_store_open(f->path, &schema1, &st, &err), CORE_ESTORE);
    assert_null(st);
    assert_non_null(err);
    assert_non_null(strstr(err, "schema version 2, newer than this program's 1"));
    free(err);
}

static int failing_step(core_store_t *st, void *arg, char **err)
{
    (void)arg;
    assert_int_equal(core_store_exec(st, "INSERT INTO items (name) VALUES ('half')"), 0);
    *err = core_xstrdup("no way");
    return -EIO;
}

/* A step that fails leaves the file as it was, for a fixed program to migrate. */
static void test_failed_migration_rolls_back(void **state)
{
    fx_t *f = *state;
    core_store_t *st = NULL;
    char *err = NULL;
    const core_store_step_t bad[] = {steps[0], {"CREATE TABLE t2 (x);", failing_step}};
    const core_store_schema_t sbad = {"test store", bad, 2, NULL};

    assert_int_equal(core_store_open(f->path, &schema1, &st, &err), 0);
    assert_int_equal(core_store_exec(st, "INSERT INTO items (name) VALUES ('kept')"), 0);
    core_store_close(st);
    assert_int_equal(core_store_open(f->path, &sbad, &st, &err), CORE_ESTORE);
    assert_non_null(strstr(err, "migrating to schema version 2: no way"));
    free(err);
    err = NULL;
    assert_int_equal(core_store_open(f->path, &schema1, &st, &err), 0);
    assert_int_equal(core_store_version(st), 1);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM items"), 1);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM sqlite_master WHERE name = 't2'"), 0);
    core_store_close(st);
    assert_int_equal(core_store_open(f->path, &schema2, &st, &err), 0);
    core_store_close(st);
}

static void test_statement_cache(void **state)
{
    fx_t *f = *state;
    core_store_t *st = NULL;
    static const char ins[] = "INSERT INTO items (name, note) VALUES (?1, ?2)";

    assert_int_equal(core_store_open(f->path, &schema2, &st, NULL), 0);
    sqlite3_stmt *q = core_store_prepare(st, ins);
    core_store_bind_text(q, 1, "x");
    core_store_bind_text(q, 2, "n");
    assert_int_equal(core_store_run(st, q), 0);
    assert_int_equal(core_store_last_id(st), 1);
    /* The same statement, with the earlier bindings cleared. */
    assert_ptr_equal(core_store_prepare(st, ins), q);
    core_store_bind_text(q, 1, "y");
    assert_int_equal(core_store_run(st, q), 0);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM items WHERE note IS NULL"), 1);
    /* A constraint error is reported and the statement is usable again. */
    assert_ptr_equal(core_store_prepare(st, ins), q);
    assert_int_equal(core_store_run(st, q), CORE_ESTORE); /* name NOT NULL, unbound */
    core_store_bind_text(q, 1, "z");
    assert_int_equal(core_store_run(st, q), 0);
    assert_null(core_store_prepare(st, "SELECT nope FROM nowhere"));
    /* begin/rollback */
    assert_int_equal(core_store_begin(st), 0);
    assert_int_equal(core_store_exec(st, "DELETE FROM items"), 0);
    assert_int_equal(core_store_changes(st), 3);
    core_store_rollback(st);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM items"), 3);
    char buf[8];
    q = core_store_prepare(st, "SELECT name, note FROM items ORDER BY id");
    assert_int_equal(core_store_step(st, q), 1);
    core_store_col_text(q, 0, buf, sizeof(buf));
    assert_string_equal(buf, "x");
    char *note = core_store_col_dup(q, 1);
    assert_string_equal(note, "n");
    free(note);
    assert_int_equal(core_store_step(st, q), 1);
    assert_null(core_store_col_dup(q, 1));
    core_store_col_text(q, 1, buf, sizeof(buf));
    assert_string_equal(buf, "");
    core_store_reset(q);
    core_store_close(st);
}

/*
 * A child writes rows one transaction each and reports every committed id on
 * a pipe; it is killed with SIGKILL at some point. Every id it reported must
 * be in the file, and the file must be intact.
 */
static void writer(const char *path, int fd, int batch)
{
    core_store_t *st = NULL;
    if (core_store_open(path, &schema2, &st, NULL) < 0)
        _exit(3);
    static const char ins[] = "INSERT INTO items (name) VALUES ('row')";
    static const char tag[] = "INSERT INTO tags (item, tag) VALUES (?1, 'x')";
    for (;;) {
        if (batch && core_store_begin(st) < 0)
            _exit(4);
        if (core_store_run(st, core_store_prepare(st, ins)) < 0)
            _exit(5);
        long long id = core_store_last_id(st);
        sqlite3_stmt *q = core_store_prepare(st, tag);
        sqlite3_bind_int64(q, 1, id);
        if (core_store_run(st, q) < 0)
            _exit(6);
        if (batch && core_store_commit(st) < 0)
            _exit(7);
        if (write(fd, &id, sizeof(id)) != sizeof(id))
            _exit(8);
    }
}

static void test_kill9_loses_nothing(void **state)
{
    fx_t *f = *state;

    for (int round = 0; round < 6; round++) {
        /* A fresh file each round: an earlier round may have been killed between
         * the two statements of an unbatched row. */
        static const char *const files[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < CORE_ARRAY_SIZE(files); i++) {
            char *p = core_xasprintf("%s%s", f->path, files[i]);
            unlink(p);
            free(p);
        }
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            writer(f->path, p[1], round % 2);
        }
        close(p[1]);
        long long id, last = 0, seen = 0;
        /* Let it commit a different number of rows each round, then kill it. */
        while (seen < 50 + round * 37 && read(p[0], &id, sizeof(id)) == sizeof(id)) {
            last = id;
            seen++;
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        while (read(p[0], &id, sizeof(id)) == sizeof(id))
            last = id;
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));

        core_store_t *st = NULL;
        assert_int_equal(core_store_open(f->path, &schema2, &st, NULL), 0);
        sqlite3_stmt *q = core_store_prepare(st, "PRAGMA integrity_check");
        assert_int_equal(core_store_step(st, q), 1);
        assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
        core_store_reset(q);
        q = core_store_prepare(st, "SELECT COUNT(*) FROM items WHERE id <= ?1");
        sqlite3_bind_int64(q, 1, last);
        assert_int_equal(core_store_step(st, q), 1);
        assert_int_equal(sqlite3_column_int64(q, 0), last); /* every reported row is there */
        core_store_reset(q);
        if (round % 2) /* each batch is whole: a row and its tag, or neither */
            assert_int_equal(
                count(st, "SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item FROM tags)"),
                0);
        core_store_close(st);
    }
}

static int stuck_step(core_store_t *st, void *arg, char **err)
{
    int fd = *(int *)arg;
    char c = 'm';
    (void)err;
    if (core_store_exec(st, "INSERT INTO items (name) VALUES ('during')") < 0 ||
        write(fd, &c, 1) != 1)
        _exit(9);
    pause();
    return 0;
}

/* Killed in the middle of a migration: the next open finds the old version. */
static void test_kill9_during_migration(void **state)
{
    fx_t *f = *state;
    core_store_t *st = NULL;

    assert_int_equal(core_store_open(f->path, &schema1, &st, NULL), 0);
    core_store_close(st);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const core_store_step_t stuck[] = {steps[0], {"CREATE TABLE t2 (x);", stuck_step}};
        const core_store_schema_t s = {"test store", stuck, 2, &p[1]};
        close(p[0]);
        core_store_open(f->path, &s, &st, NULL);
        _exit(10);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_int_equal(core_store_open(f->path, &schema1, &st, NULL), 0);
    assert_int_equal(core_store_version(st), 1);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM items"), 0);
    assert_int_equal(count(st, "SELECT COUNT(*) FROM sqlite_master WHERE name = 't2'"), 0);
    core_store_close(st);
    assert_int_equal(core_store_open(f->path, &schema2, &st, NULL), 0);
    assert_int_equal(core_store_version(st), 2);
    core_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unversioned_file_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_file_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_during_migration, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
