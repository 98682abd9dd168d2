/* SQLite persistence of the serve controller: round trips of every column,
 * the never-reused replica-id counter, meta JSON, cascading deletes and
 * reopening the file (what a kill -9 and restart sees). */
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
#include "ctl_serve_store.h"

typedef struct fx {
    char dir[64];
    char path[128];
    ctl_store_t *st;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test-serve-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/services.db", f->dir);
    assert_int_equal(ctl_store_open(f->path, &f->st), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    ctl_store_close(f->st);
    core_rm_rf(f->dir);
    free(f);
    return 0;
}

static void reopen(fx_t *f)
{
    ctl_store_close(f->st);
    f->st = NULL;
    assert_int_equal(ctl_store_open(f->path, &f->st), 0);
}

static void test_service_roundtrip(void **state)
{
    fx_t *f = *state;
    ctl_service_row_t s, *out = NULL;
    size_t n = 0;

    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "svc-b");
    s.status = CTL_SERVICE_READY;
    s.created_at = 1000.5;
    s.uptime = 1010.25;
    s.lb_port = 30001;
    s.lb_pid = 4242;
    s.lb_ctrl_port = 20001;
    s.lb_admin_port = 30002;
    snprintf(s.lb_policy, sizeof(s.lb_policy), "round_robin");
    snprintf(s.requested_resources, sizeof(s.requested_resources), "1x Local([Spot]vCPU=2)");
    s.active_versions[0] = 1;
    s.active_versions[1] = 2;
    s.n_active = 2;
    s.purge = 1;
    assert_int_equal(ctl_store_put_service(f->st, &s), 0);
    snprintf(s.name, sizeof(s.name), "svc-a");
    s.status = CTL_SERVICE_NO_REPLICA;
    s.n_active = 0;
    assert_int_equal(ctl_store_put_service(f->st, &s), 0);
    reopen(f);
    assert_int_equal(ctl_store_list_services(f->st, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].name, "svc-a"); /* sorted by name */
    assert_int_equal(out[0].status, CTL_SERVICE_NO_REPLICA);
    assert_int_equal(out[0].n_active, 0);
    assert_string_equal(out[1].name, "svc-b");
    assert_int_equal(out[1].status, CTL_SERVICE_READY);
    assert_true(out[1].created_at == 1000.5);
    assert_true(out[1].uptime == 1010.25);
    assert_int_equal(out[1].lb_port, 30001);
    assert_int_equal(out[1].lb_pid, 4242);
    assert_int_equal(out[1].lb_ctrl_port, 20001);
    assert_int_equal(out[1].lb_admin_port, 30002);
    assert_string_equal(out[1].lb_policy, "round_robin");
    assert_string_equal(out[1].requested_resources, "1x Local([Spot]vCPU=2)");
    assert_int_equal(out[1].n_active, 2);
    assert_int_equal(out[1].active_versions[1], 2);
    assert_int_equal(out[1].purge, 1);
    free(out);
}

static void test_versions(void **state)
{
    fx_t *f = *state;
    ctl_version_row_t v = {0}, *out = NULL;
    size_t n = 0;
    int next = 0;

    assert_int_equal(ctl_store_next_version(f->st, "s", &next), 0);
    assert_int_equal(next, 1);
    v.version = 1;
    v.yaml = "service:\n  replicas: 1\n";
    v.yaml_path = "/a/b.yaml";
    v.cwd = "/a";
    v.mode = CTL_UPDATE_ROLLING;
    assert_int_equal(ctl_store_put_version(f->st, "s", &v), 0);
    v.version = 2;
    v.yaml_path = NULL;
    v.envs = "{\"PORT\":\"8093\"}";
    v.overrides = "{\"resources\":{\"cpus\":\"4+\"}}";
    v.mode = CTL_UPDATE_BLUE_GREEN;
    assert_int_equal(ctl_store_put_version(f->st, "s", &v), 0);
    assert_int_equal(ctl_store_next_version(f->st, "s", &next), 0);
    assert_int_equal(next, 3);
    reopen(f);
    assert_int_equal(ctl_store_list_versions(f->st, "s", &out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].version, 1);
    assert_string_equal(out[0].yaml, "service:\n  replicas: 1\n");
    assert_string_equal(out[0].yaml_path, "/a/b.yaml");
    assert_string_equal(out[0].cwd, "/a");
    assert_int_equal(out[0].mode, CTL_UPDATE_ROLLING);
    assert_null(out[1].yaml_path);
    assert_null(out[0].envs);
    assert_string_equal(out[1].envs, "{\"PORT\":\"8093\"}");
    assert_null(out[0].overrides);
    assert_string_equal(out[1].overrides, "{\"resources\":{\"cpus\":\"4+\"}}");
    assert_int_equal(out[1].mode, CTL_UPDATE_BLUE_GREEN);
    for (size_t i = 0; i < n; i++)
        ctl_version_row_clear(&out[i]);
    free(out);
    assert_int_equal(ctl_store_delete_versions_below(f->st, "s", 2), 0);
    assert_int_equal(ctl_store_list_versions(f->st, "s", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].version, 2);
    ctl_version_row_clear(&out[0]);
    free(out);
}

/* A database written before versions had an envs column opens and reads. */
static void test_versions_from_an_older_file(void **state)
{
    fx_t *f = *state;
    ctl_version_row_t *out = NULL;
    size_t n = 0;
    sqlite3 *db;

    ctl_store_close(f->st);
    f->st = NULL;
    unlink(f->path);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE versions (service_name TEXT NOT NULL,"
                                  " version INTEGER NOT NULL, yaml TEXT NOT NULL, yaml_path TEXT,"
                                  " cwd TEXT, mode TEXT NOT NULL DEFAULT 'rolling',"
                                  " PRIMARY KEY(service_name, version));"
                                  "INSERT INTO versions VALUES ('s', 1, 'run: x', NULL, '/', "
                                  "'rolling');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    reopen(f);
    assert_int_equal(ctl_store_list_versions(f->st, "s", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].yaml, "run: x");
    assert_null(out[0].envs);
    assert_null(out[0].overrides);
    ctl_version_row_clear(&out[0]);
    free(out);
    reopen(f); /* the column is there now: opening again is fine too */
}

/* A version-2 file (before the LB admin port) keeps its services: they read
 * back with no admin port, which the next LB spawn picks. */
static void test_services_from_a_version_2_file(void **state)
{
    fx_t *f = *state;
    ctl_service_row_t *out = NULL;
    size_t n = 0;
    sqlite3 *db;

    ctl_store_close(f->st);
    f->st = NULL;
    unlink(f->path);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE services (name TEXT PRIMARY KEY, status TEXT NOT NULL,"
                     " created_at REAL NOT NULL, uptime REAL NOT NULL DEFAULT 0,"
                     " lb_port INTEGER NOT NULL DEFAULT 0, lb_pid INTEGER NOT NULL DEFAULT 0,"
                     " lb_ctrl_port INTEGER NOT NULL DEFAULT 0,"
                     " load_balancing_policy TEXT NOT NULL DEFAULT 'least_load',"
                     " requested_resources TEXT NOT NULL DEFAULT '',"
                     " active_versions TEXT NOT NULL DEFAULT '[]',"
                     " purge INTEGER NOT NULL DEFAULT 0);"
                     "INSERT INTO services (name, status, created_at, lb_port)"
                     " VALUES ('s', 'READY', 1.0, 30005);"
                     "PRAGMA user_version=2;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    reopen(f);
    assert_int_equal(ctl_store_list_services(f->st, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].lb_port, 30005);
    assert_int_equal(out[0].lb_admin_port, 0);
    free(out);
}

static void test_replica_every_column(void **state)
{
    fx_t *f = *state;
    ctl_replica_row_t r, *out = NULL;
    size_t n = 0;

    ctl_replica_row_init(&r, 7, 3);
    r.f.launch = CTL_PROC_SUCCEEDED;
    r.f.down = CTL_PROC_SCHEDULED;
    r.f.user_app_failed = true;
    r.f.service_ready_now = true;
    r.f.first_ready_time = CTL_READY_DELAY_EXCEEDED;
    r.f.is_scale_down = true;
    r.f.preempted = true;
    r.f.purged = true;
    r.f.failed_spot_availability = true;
    r.ps.first_not_ready_time = 11;
    r.ps.first_fail_time = 12;
    r.ps.last_fail_time = 13;
    r.ps.n_fail = 4;
    r.is_spot = 1;
    r.use_spot = 1;
    r.has_location = 1;
    ctl_location_set(&r.loc, "gcp", "us-east1", "us-east1-b");
    snprintf(r.instance_id, sizeof(r.instance_id), "i-000009");
    snprintf(r.ip, sizeof(r.ip), "198.18.0.9");
    snprintf(r.cloud, sizeof(r.cloud), "gcp");
    snprintf(r.region, sizeof(r.region), "us-east1");
    snprintf(r.zone, sizeof(r.zone), "us-east1-b");
    snprintf(r.instance_type, sizeof(r.instance_type), "e2-standard-2");
    snprintf(r.resources, sizeof(r.resources), "1x Local([Spot]vCPU=2)");
    r.agent_port = 8790;
    r.port_offset = 3;
    r.replica_port = 8081;
    r.price = 0.02;
    r.launched_at = 99.5;
    r.agent_task_id = 2;
    r.down_at = 123.5;
    r.launch_attempts = 2;
    assert_int_equal(ctl_store_put_replica(f->st, "s", &r), 0);
    reopen(f);
    assert_int_equal(ctl_store_list_replicas(f->st, "s", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(&out[0].f, &r.f, sizeof(r.f));
    assert_memory_equal(&out[0].ps, &r.ps, sizeof(r.ps));
    assert_int_equal(out[0].id, 7);
    assert_int_equal(out[0].version, 3);
    assert_true(ctl_location_equal(&out[0].loc, &r.loc));
    assert_string_equal(out[0].instance_id, "i-000009");
    assert_string_equal(out[0].ip, "198.18.0.9");
    assert_string_equal(out[0].zone, "us-east1-b");
    assert_string_equal(out[0].instance_type, "e2-standard-2");
    assert_string_equal(out[0].resources, "1x Local([Spot]vCPU=2)");
    assert_int_equal(out[0].agent_port, 8790);
    assert_int_equal(out[0].port_offset, 3);
    assert_int_equal(out[0].replica_port, 8081);
    assert_true(out[0].price == 0.02);
    assert_true(out[0].launched_at == 99.5);
    assert_int_equal(out[0].agent_task_id, 2);
    assert_true(out[0].down_at == 123.5);
    assert_int_equal(out[0].launch_attempts, 2);
    assert_int_equal(out[0].use_spot, 1);
    /* The status is derived from the facts, never stored. */
    assert_int_equal(ctl_replica_row_status(&out[0]), CTL_REPLICA_PREEMPTED);
    free(out);
    assert_int_equal(ctl_store_delete_replica(f->st, "s", 7), 0);
    assert_int_equal(ctl_store_list_replicas(f->st, "s", &out, &n), 0);
    assert_int_equal(n, 0);
    free(out);
}

static void test_replica_ids_never_reused(void **state)
{
    fx_t *f = *state;
    ctl_replica_row_t r;
    int id = 0, next = 0;

    assert_int_equal(ctl_store_alloc_replica_id(f->st, "s", &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(ctl_store_alloc_replica_id(f->st, "s", &id), 0);
    assert_int_equal(id, 2);
    /* A row with a higher id (e.g. written by an older version) pushes the counter. */
    ctl_replica_row_init(&r, 10, 1);
    assert_int_equal(ctl_store_put_replica(f->st, "s", &r), 0);
    assert_int_equal(ctl_store_alloc_replica_id(f->st, "s", &id), 0);
    assert_int_equal(id, 11);
    /* Deleting every replica (all preempted and removed) does not reset it. */
    assert_int_equal(ctl_store_delete_replica(f->st, "s", 10), 0);
    reopen(f);
    assert_int_equal(ctl_store_alloc_replica_id(f->st, "s", &id), 0);
    assert_int_equal(id, 12);
    assert_int_equal(ctl_store_get_meta(f->st, "s", &next, NULL, NULL), 0);
    assert_int_equal(next, 13);
    /* Counters are per service. */
    assert_int_equal(ctl_store_alloc_replica_id(f->st, "other", &id), 0);
    assert_int_equal(id, 1);
}

static void test_meta_and_delete_service(void **state)
{
    fx_t *f = *state;
    ctl_service_row_t s, *rows = NULL;
    ctl_version_row_t v = {0}, *vs = NULL;
    ctl_replica_row_t r, *rs = NULL;
    char *sj = NULL, *pj = NULL;
    size_t n = 0;
    int next = 0, id = 0;

    assert_int_equal(ctl_store_get_meta(f->st, "s", &next, &sj, &pj), 0);
    assert_int_equal(next, 1);
    assert_null(sj);
    assert_null(pj);
    assert_int_equal(ctl_store_put_meta(f->st, "s", "{\"target\":3}", NULL), 0);
    assert_int_equal(ctl_store_put_meta(f->st, "s", NULL, "[]"), 0); /* NULL keeps */
    reopen(f);
    assert_int_equal(ctl_store_get_meta(f->st, "s", &next, &sj, &pj), 0);
    assert_string_equal(sj, "{\"target\":3}");
    assert_string_equal(pj, "[]");
    free(sj);
    free(pj);

    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "s");
    assert_int_equal(ctl_store_put_service(f->st, &s), 0);
    v.version = 1;
    v.yaml = "x";
    assert_int_equal(ctl_store_put_version(f->st, "s", &v), 0);
    ctl_replica_row_init(&r, 1, 1);
    assert_int_equal(ctl_store_put_replica(f->st, "s", &r), 0);
    assert_int_equal(ctl_store_alloc_replica_id(f->st, "s", &id), 0);
    assert_int_equal(ctl_store_delete_service(f->st, "s"), 0);
    assert_int_equal(ctl_store_list_services(f->st, &rows, &n), 0);
    assert_int_equal(n, 0);
    free(rows);
    assert_int_equal(ctl_store_list_versions(f->st, "s", &vs, &n), 0);
    assert_int_equal(n, 0);
    free(vs);
    assert_int_equal(ctl_store_list_replicas(f->st, "s", &rs, &n), 0);
    assert_int_equal(n, 0);
    free(rs);
    /* A new service of the same name starts its ids afresh. */
    assert_int_equal(ctl_store_alloc_replica_id(f->st, "s", &id), 0);
    assert_int_equal(id, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_service_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_from_an_older_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services_from_a_version_2_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_every_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_ids_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_and_delete_service, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
