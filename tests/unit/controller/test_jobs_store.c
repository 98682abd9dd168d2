/* jobs.db: a job's row round trips every column, its run id is set with it,
 * a file of before schema versions opens and reads, and reopening (what a
 * kill -9 and restart sees) keeps everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/err.h"
#include "core/util.h"
#include "ctl_jobs_store.h"

typedef struct fx {
    char dir[64];
    char path[128];
    core_store_t *st;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-jobs-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/jobs.db", f->dir);
    assert_int_equal(ctl_jobs_store_open(f->path, &f->st, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    core_store_close(f->st);
    core_rm_rf(f->dir);
    free(f);
    return 0;
}

static void reopen(fx_t *f)
{
    core_store_close(f->st);
    f->st = NULL;
    assert_int_equal(ctl_jobs_store_open(f->path, &f->st, NULL), 0);
}

static void test_add_and_every_column(void **state)
{
    fx_t *f = *state;
    ctl_job_new_t n = {.name = "train", .yaml = "run: echo", .yaml_path = "/a/train.yaml",
                       .cwd = "/a", .envs = "{\"STEPS\":\"3\"}", .resources = "1x [CPU:2+][Spot]"};
    long id = 0;
    char run_id[256];
    ctl_job_row_t r;

    assert_int_equal(ctl_jobs_store_add(f->st, &n, &id, run_id, sizeof(run_id)), 0);
    assert_int_equal(id, 1);
    assert_non_null(strstr(run_id, "_train_1-0"));
    assert_int_equal(strncmp(run_id, "sky-managed-", 12), 0);
    assert_int_equal(ctl_jobs_store_get(f->st, 1, &r), 0);
    assert_int_equal(r.t.status, CTL_JOB_PENDING);
    assert_string_equal(r.run_id, run_id);
    assert_string_equal(r.envs, "{\"STEPS\":\"3\"}");
    assert_true(r.t.submitted_at == CTL_TIME_UNSET && r.t.end_at == CTL_TIME_UNSET);
    assert_true(r.t.last_recovered_at == -1);
    assert_null(r.failure_reason);
    assert_string_equal(r.inst.id, "");

    r.t.status = CTL_JOB_RECOVERING;
    r.t.submitted_at = 100.5;
    r.t.start_at = 101.25;
    r.t.last_recovered_at = 150;
    r.t.job_duration = 49.75;
    r.t.recovery_count = 2;
    r.failure_reason = strdup("why");
    r.restart_count = 1;
    r.attempt = 3;
    snprintf(r.inst.id, sizeof(r.inst.id), "i-000004");
    snprintf(r.inst.cloud, sizeof(r.inst.cloud), "local");
    snprintf(r.inst.region, sizeof(r.inst.region), "us-east-1");
    snprintf(r.inst.zone, sizeof(r.inst.zone), "us-east-1a");
    snprintf(r.inst.instance_type, sizeof(r.inst.instance_type), "l.2x");
    r.inst.spot = 1;
    snprintf(r.inst.ip, sizeof(r.inst.ip), "198.18.0.4");
    r.inst.agent_port = 8790;
    r.agent_task = 7;
    snprintf(r.prev.cloud, sizeof(r.prev.cloud), "local");
    snprintf(r.prev.region, sizeof(r.prev.region), "us-west-2");
    snprintf(r.prev.zone, sizeof(r.prev.zone), "us-west-2b");
    snprintf(r.prev.instance_type, sizeof(r.prev.instance_type), "l.4x");
    r.prev.spot = 1;
    assert_int_equal(ctl_jobs_store_save(f->st, &r), 0);
    ctl_job_row_free(&r);
    assert_int_equal(ctl_jobs_store_request_cancel(f->st, 1), 0);
    reopen(f);

    assert_int_equal(ctl_jobs_store_get(f->st, 1, &r), 0);
    assert_int_equal(r.t.status, CTL_JOB_RECOVERING);
    assert_true(r.t.submitted_at == 100.5 && r.t.start_at == 101.25);
    assert_true(r.t.end_at == CTL_TIME_UNSET);
    assert_true(r.t.last_recovered_at == 150 && r.t.job_duration == 49.75);
    assert_int_equal(r.t.recovery_count, 2);
    assert_string_equal(r.failure_reason, "why");
    assert_int_equal(r.restart_count, 1);
    assert_int_equal(r.cancel_requested, 1);
    assert_int_equal(r.attempt, 3);
    assert_string_equal(r.inst.id, "i-000004");
    assert_string_equal(r.inst.zone, "us-east-1a");
    assert_string_equal(r.inst.instance_type, "l.2x");
    assert_string_equal(r.inst.ip, "198.18.0.4");
    assert_int_equal(r.inst.agent_port, 8790);
    assert_int_equal(r.inst.spot, 1);
    assert_int_equal(r.agent_task, 7);
    assert_string_equal(r.prev.region, "us-west-2");
    assert_string_equal(r.prev.instance_type, "l.4x");
    assert_string_equal(r.resources, "1x [CPU:2+][Spot]");
    ctl_job_row_free(&r);
    assert_int_equal(ctl_jobs_store_get(f->st, 2, &r), CORE_ENOTFOUND);
}

static void test_list_newest_first(void **state)
{
    fx_t *f = *state;
    ctl_job_new_t n = {.name = "a", .yaml = "run: x"};
    ctl_job_row_t *rows = NULL;
    size_t cnt = 0;
    long id;
    char run_id[256];

    for (int i = 0; i < 3; i++)
        assert_int_equal(ctl_jobs_store_add(f->st, &n, &id, run_id, sizeof(run_id)), 0);
    assert_int_equal(ctl_jobs_store_list(f->st, &rows, &cnt), 0);
    assert_int_equal(cnt, 3);
    assert_int_equal(rows[0].id, 3);
    assert_int_equal(rows[2].id, 1);
    assert_null(rows[0].yaml_path);
    for (size_t i = 0; i < cnt; i++)
        ctl_job_row_free(&rows[i]);
    free(rows);
}

/* A jobs.db written before schema versions (a job mid-recovery) opens and reads. */
static void test_unversioned_file(void **state)
{
    fx_t *f = *state;
    sqlite3 *db;
    ctl_job_row_t r;

    core_store_close(f->st);
    f->st = NULL;
    unlink(f->path);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "PRAGMA journal_mode=WAL;"
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
            " prev_cloud TEXT, prev_region TEXT, prev_zone TEXT, prev_type TEXT,"
            " prev_spot INTEGER);"
            "INSERT INTO jobs (name, yaml, status, submitted_at, start_at, last_recovered_at,"
            " job_duration, recovery_count, run_id, attempt, prev_region)"
            " VALUES ('old', 'run: x', 'RECOVERING', 10, 11, 20, 9, 1, 'sky-managed-x_old_1-0',"
            " 2, 'us-east-1');",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ctl_jobs_store_open(f->path, &f->st, NULL), 0);
    assert_int_equal(core_store_version(f->st), 2);
    assert_int_equal(ctl_jobs_store_get(f->st, 1, &r), 0);
    assert_int_equal(r.t.status, CTL_JOB_RECOVERING);
    assert_true(r.t.start_at == 11 && r.t.job_duration == 9 && r.t.end_at == CTL_TIME_UNSET);
    assert_string_equal(r.run_id, "sky-managed-x_old_1-0");
    assert_int_equal(r.attempt, 2);
    assert_string_equal(r.prev.region, "us-east-1");
    assert_string_equal(r.inst.id, "");
    ctl_job_row_free(&r);
    /* New jobs continue its ids. */
    ctl_job_new_t n = {.name = "new", .yaml = "run: y"};
    long id;
    char run_id[256];
    assert_int_equal(ctl_jobs_store_add(f->st, &n, &id, run_id, sizeof(run_id)), 0);
    assert_int_equal(id, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_and_every_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unversioned_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
