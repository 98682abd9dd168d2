/* lc_store: instance rows, meta and capacities survive a reopen (kill -9 + restart). */
#include <errno.h>
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

#include "core/store.h"
#include "core/util.h"
#include "lc.h"

static char *tmpdb(void)
{
    char tmpl[] = "/tmp/lc-store-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char *path = malloc(strlen(dir) + 16);
    sprintf(path, "%s/state.db", dir);
    return path;
}

static void free_insts(lc_daemon_t *d)
{
    while (d->insts) {
        lc_inst_t *n = d->insts->next;
        free(d->insts);
        d->insts = n;
    }
}

static void test_roundtrip(void **state)
{
    char *path = tmpdb();
    lc_daemon_t d;
    memset(&d, 0, sizeof(d));
    lc_market_init(&d.market, 1);
    assert_int_equal(lc_store_open(&d, path), 0);

    lc_inst_t in;
    memset(&in, 0, sizeof(in));
    snprintf(in.super.id, sizeof(in.super.id), "i-000007");
    in.num = 7;
    snprintf(in.super.zone, sizeof(in.super.zone), "us-east-1a");
    snprintf(in.super.owner, sizeof(in.super.owner), "serve:svc:3");
    snprintf(in.super.ip, sizeof(in.super.ip), "198.18.0.9");
    snprintf(in.netns, sizeof(in.netns), "sky-abcd-000007");
    in.super.spot = 1;
    in.super.price = 0.25;
    in.super.launched_at = 1000.5;
    in.super.agent_port = 8790;
    in.super.state = CORE_INST_RUNNING;
    in.agent_pid = 4242;
    in.agent_sid = 4241;
    in.netns_ino = 4026532999ULL;
    in.preempt_at = 1990.5; /* a notice's deadline survives a restart */
    assert_int_equal(lc_store_put(&d, &in), 0);
    in.super.state = CORE_INST_PREEMPTED; /* updates replace the row */
    in.ended_at = 2000.0;
    assert_int_equal(lc_store_put(&d, &in), 0);
    assert_int_equal(lc_store_meta_set(&d, "next_num", "9"), 0);
    assert_int_equal(lc_store_put_capacity(&d, "us-east-1a", 3), 0);
    assert_int_equal(lc_store_put_capacity(&d, "*", 5), 0);
    assert_int_equal(lc_store_put_capacity(&d, "us-east-1b", 1), 0);
    assert_int_equal(lc_store_put_capacity(&d, "us-east-1b", -1), 0); /* unlimited = no row */
    lc_store_close(&d);

    lc_daemon_t d2;
    memset(&d2, 0, sizeof(d2));
    lc_market_init(&d2.market, 1);
    assert_int_equal(lc_store_open(&d2, path), 0);
    assert_int_equal(lc_store_load(&d2), 0);
    assert_non_null(d2.insts);
    assert_null(d2.insts->next);
    lc_inst_t *got = d2.insts;
    assert_string_equal(got->super.id, "i-000007");
    assert_int_equal(got->super.state, CORE_INST_PREEMPTED);
    assert_string_equal(got->super.owner, "serve:svc:3");
    assert_string_equal(got->super.ip, "198.18.0.9");
    assert_string_equal(got->netns, "sky-abcd-000007");
    assert_int_equal(got->super.spot, 1);
    assert_true(got->super.price == 0.25);
    assert_true(got->ended_at == 2000.0);
    assert_int_equal(got->agent_pid, 4242);
    assert_int_equal(got->agent_sid, 4241);
    assert_true(got->netns_ino == 4026532999ULL);
    assert_true(got->preempt_at == 1990.5);
    assert_int_equal(d2.next_num, 9);
    assert_int_equal(lc_market_capacity(&d2.market, "us-east-1a"), 3);
    assert_int_equal(lc_market_capacity(&d2.market, "us-east-1b"), 5); /* the default */
    char buf[16];
    assert_int_equal(lc_store_meta_get(&d2, "missing", buf, sizeof(buf)), -ENOENT);
    lc_store_close(&d2);
    free_insts(&d2);

    char *dir = strdup(path);
    *strrchr(dir, '/') = '\0';
    core_rm_rf(dir);
    free(dir);
    free(path);
}

/* A state.db of before schema versions opens, keeps its rows and migrates to the
 * current version (2: preemption notices, none on the old rows). */
static void test_unversioned_file(void **state)
{
    (void)state;
    char *path = tmpdb();
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL;"
                     "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "CREATE TABLE capacity (zone TEXT PRIMARY KEY, capacity INTEGER NOT NULL);"
                     "CREATE TABLE instances (id TEXT PRIMARY KEY, num INTEGER NOT NULL,"
                     " cloud TEXT, region TEXT, zone TEXT, instance_type TEXT, spot INTEGER,"
                     " state TEXT, ip TEXT, agent_port INTEGER, port_offset INTEGER, price REAL,"
                     " launched_at REAL, ended_at REAL, owner TEXT, netns TEXT, veth TEXT,"
                     " agent_pid INTEGER, reason TEXT, torn_down INTEGER, agent_sid INTEGER,"
                     " netns_ino INTEGER);"
                     "INSERT INTO meta VALUES ('tag', 'ab12');"
                     "INSERT INTO capacity VALUES ('us-east-1a', 2);"
                     "INSERT INTO instances (id, num, zone, state, owner) VALUES"
                     " ('i-000003', 3, 'us-east-1a', 'RUNNING', 'job:1');",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    lc_daemon_t d;
    memset(&d, 0, sizeof(d));
    lc_market_init(&d.market, 1);
    assert_int_equal(lc_store_open(&d, path), 0);
    assert_int_equal(core_store_version(d.store), 2);
    assert_int_equal(lc_store_load(&d), 0);
    assert_non_null(d.insts);
    assert_string_equal(d.insts->super.id, "i-000003");
    assert_true(d.insts->preempt_at == 0);
    assert_int_equal(d.insts->super.state, CORE_INST_RUNNING);
    assert_string_equal(d.insts->super.owner, "job:1");
    assert_int_equal(d.next_num, 4);
    assert_int_equal(lc_market_capacity(&d.market, "us-east-1a"), 2);
    char buf[16];
    assert_int_equal(lc_store_meta_get(&d, "tag", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "ab12");
    lc_store_close(&d);
    free_insts(&d);

    char *dir = strdup(path);
    *strrchr(dir, '/') = '\0';
    core_rm_rf(dir);
    free(dir);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_unversioned_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
