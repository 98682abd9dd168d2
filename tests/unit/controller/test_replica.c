#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "ctl_replica.h"

#define NONE  CTL_PROC_NONE
#define SCHED CTL_PROC_SCHEDULED
#define RUN   CTL_PROC_RUNNING
#define OK    CTL_PROC_SUCCEEDED
#define INTR  CTL_PROC_INTERRUPTED
#define FAIL  CTL_PROC_FAILED
#define NEVER CTL_READY_NEVER
#define DELAY CTL_READY_DELAY_EXCEEDED

typedef struct row {
    ctl_proc_status_t launch, down;
    bool user_app_failed, ready_now;
    double first_ready;
    bool preempted;
    ctl_replica_status_t want;
} row_t;

/* One row per rule of §3.1, in order, plus the precedence cases between them. */
static const row_t rows[] = {
    {NONE, NONE, false, false, NEVER, false, CTL_REPLICA_PENDING},
    {SCHED, NONE, false, false, NEVER, false, CTL_REPLICA_PENDING},
    {SCHED, OK, true, true, 5, true, CTL_REPLICA_PENDING}, /* launch rule wins over all */
    {RUN, FAIL, false, false, NEVER, false, CTL_REPLICA_FAILED_CLEANUP},
    {RUN, OK, false, false, NEVER, false, CTL_REPLICA_UNKNOWN},
    {RUN, NONE, false, false, NEVER, false, CTL_REPLICA_PROVISIONING},
    {RUN, SCHED, false, false, NEVER, false, CTL_REPLICA_PROVISIONING},
    {RUN, NONE, false, false, NEVER, true, CTL_REPLICA_PROVISIONING},
    {INTR, NONE, false, false, NEVER, false, CTL_REPLICA_SHUTTING_DOWN},
    {INTR, FAIL, false, false, NEVER, false, CTL_REPLICA_SHUTTING_DOWN},
    /* down is set */
    {OK, SCHED, false, false, 5, true, CTL_REPLICA_PREEMPTED},
    {OK, OK, true, false, 5, true, CTL_REPLICA_PREEMPTED},
    {OK, SCHED, true, false, NEVER, false, CTL_REPLICA_SHUTTING_DOWN},
    {OK, RUN, false, true, 5, false, CTL_REPLICA_SHUTTING_DOWN},
    {OK, FAIL, true, false, NEVER, false, CTL_REPLICA_FAILED_CLEANUP},
    {OK, OK, true, false, 5, false, CTL_REPLICA_FAILED},
    {FAIL, OK, false, false, NEVER, false, CTL_REPLICA_FAILED_PROVISION},
    {FAIL, OK, true, false, NEVER, false, CTL_REPLICA_FAILED}, /* user_app_failed first */
    {OK, OK, false, false, NEVER, false, CTL_REPLICA_SHUTTING_DOWN},
    {OK, OK, false, false, DELAY, false, CTL_REPLICA_FAILED_INITIAL_DELAY},
    {OK, OK, false, false, 100, false, CTL_REPLICA_FAILED_PROBING},
    {OK, OK, false, true, 100, false, CTL_REPLICA_UNKNOWN},
    {OK, OK, false, false, 0, false, CTL_REPLICA_FAILED_PROBING}, /* 0 is a real time */
    /* down is None */
    {FAIL, NONE, false, false, NEVER, false, CTL_REPLICA_FAILED_CLEANUP},
    {OK, NONE, true, true, 5, false, CTL_REPLICA_FAILED_CLEANUP},
    {OK, NONE, false, true, 5, false, CTL_REPLICA_READY},
    {OK, NONE, false, false, 5, false, CTL_REPLICA_NOT_READY},
    {OK, NONE, false, false, 0, false, CTL_REPLICA_NOT_READY},
    {OK, NONE, false, false, NEVER, false, CTL_REPLICA_STARTING},
    {OK, NONE, false, false, DELAY, false, CTL_REPLICA_STARTING},
    {OK, NONE, false, false, NEVER, true, CTL_REPLICA_STARTING}, /* preempted needs a down */
};

static void test_derive_table(void **state)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ctl_replica_facts_t f;

        ctl_replica_facts_init(&f);
        f.launch = rows[i].launch;
        f.down = rows[i].down;
        f.user_app_failed = rows[i].user_app_failed;
        f.service_ready_now = rows[i].ready_now;
        f.first_ready_time = rows[i].first_ready;
        f.preempted = rows[i].preempted;
        if (ctl_replica_derive_status(&f) != rows[i].want)
            fail_msg("row %zu: got %s want %s", i,
                     ctl_replica_status_name(ctl_replica_derive_status(&f)),
                     ctl_replica_status_name(rows[i].want));
    }
}

static void test_status_sets_and_names(void **state)
{
    int n_failed = 0, n_terminal = 0;

    for (int s = 0; s < CTL_REPLICA_STATUS_COUNT; s++) {
        ctl_replica_status_t back;

        n_failed += ctl_replica_status_is_failed((ctl_replica_status_t)s);
        n_terminal += ctl_replica_status_is_terminal((ctl_replica_status_t)s);
        assert_int_equal(ctl_replica_status_parse(ctl_replica_status_name(s), &back), 0);
        assert_int_equal(back, s);
    }
    assert_int_equal(n_failed, 6);
    assert_int_equal(n_terminal, 8);
    assert_true(ctl_replica_status_is_failed(CTL_REPLICA_UNKNOWN));
    assert_false(ctl_replica_status_is_failed(CTL_REPLICA_PREEMPTED));
    assert_true(ctl_replica_status_is_terminal(CTL_REPLICA_PREEMPTED));
    assert_false(ctl_replica_status_is_terminal(CTL_REPLICA_NOT_READY));
    assert_int_equal(ctl_replica_status_scale_down_rank(CTL_REPLICA_PENDING), 0);
    assert_int_equal(ctl_replica_status_scale_down_rank(CTL_REPLICA_NOT_READY), 3);
    assert_int_equal(ctl_replica_status_scale_down_rank(CTL_REPLICA_READY), 4);
    assert_int_equal(ctl_replica_status_scale_down_rank(CTL_REPLICA_FAILED), -1);
    ctl_replica_status_t x;
    assert_int_equal(ctl_replica_status_parse("BOGUS", &x), CORE_ENOTFOUND);
}

static void test_should_track(void **state)
{
    ctl_replica_facts_t f;

    ctl_replica_facts_init(&f);
    assert_false(ctl_replica_should_track(&f));
    f.launch = OK;
    assert_true(ctl_replica_should_track(&f));
    f.preempted = true;
    assert_false(ctl_replica_should_track(&f));
    f.preempted = false;
    f.down = SCHED;
    assert_false(ctl_replica_should_track(&f));
    f.down = NONE;
    f.purged = true;
    assert_false(ctl_replica_should_track(&f));
}

static void test_unrecoverable(void **state)
{
    ctl_replica_facts_t f;

    ctl_replica_facts_init(&f);
    f.launch = OK;
    f.user_app_failed = true;
    /* Not terminal yet (FAILED_CLEANUP is terminal though: down None + user fail). */
    assert_true(ctl_replica_unrecoverable_failure(&f));
    f.down = OK;
    assert_true(ctl_replica_unrecoverable_failure(&f));
    f.first_ready_time = 10; /* once ready, a later crash is not "unrecoverable" */
    assert_false(ctl_replica_unrecoverable_failure(&f));
    ctl_replica_facts_init(&f);
    f.launch = OK;
    f.down = OK;
    f.first_ready_time = DELAY;
    assert_true(ctl_replica_unrecoverable_failure(&f));
    ctl_replica_facts_init(&f);
    f.launch = FAIL;
    f.down = OK; /* FAILED_PROVISION: capacity, not the app */
    assert_false(ctl_replica_unrecoverable_failure(&f));
    ctl_replica_facts_init(&f);
    f.launch = OK;
    f.first_ready_time = DELAY; /* STARTING, not terminal */
    assert_false(ctl_replica_unrecoverable_failure(&f));
}

static void test_retention(void **state)
{
    ctl_replica_facts_t f;

    ctl_replica_facts_init(&f);
    f.launch = OK;
    f.down = OK;
    f.user_app_failed = true;
    assert_false(ctl_replica_remove_after_down(&f, 2, 2)); /* kept: FAILED stays visible */
    assert_true(ctl_replica_remove_after_down(&f, 1, 2));  /* old version */
    f.is_scale_down = true;
    assert_true(ctl_replica_remove_after_down(&f, 2, 2));
    f.is_scale_down = false;
    f.purged = true;
    assert_true(ctl_replica_remove_after_down(&f, 2, 2));
    f.purged = false;
    f.failed_spot_availability = true;
    assert_true(ctl_replica_remove_after_down(&f, 2, 2));
}

static void test_probe_ready_not_ready_failed_probing(void **state)
{
    ctl_replica_facts_t f;
    ctl_probe_state_t s;
    ctl_probe_params_t p;

    ctl_replica_facts_init(&f);
    f.launch = OK;
    ctl_probe_state_init(&s);
    ctl_probe_params_default(&p);
    assert_int_equal(ctl_replica_derive_status(&f), CTL_REPLICA_STARTING);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 100), CTL_PROBE_NOTHING);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, true, 110), CTL_PROBE_MARK_READY);
    assert_float_equal(f.first_ready_time, 110, 0);
    assert_int_equal(ctl_replica_derive_status(&f), CTL_REPLICA_READY);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, true, 120), CTL_PROBE_NOTHING);
    assert_float_equal(f.first_ready_time, 110, 0); /* first stays first */
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 130), CTL_PROBE_MARK_NOT_READY);
    assert_int_equal(ctl_replica_derive_status(&f), CTL_REPLICA_NOT_READY);
    /* A success clears the failure run. */
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, true, 140), CTL_PROBE_MARK_READY);
    for (double t = 150; t < 330; t += 10)
        assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, t), CTL_PROBE_MARK_NOT_READY);
    /* 150 .. 330 = 180 s of consecutive failures */
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 330),
                     CTL_PROBE_TERMINATE_FAILED_PROBING);
    f.down = OK;
    assert_int_equal(ctl_replica_derive_status(&f), CTL_REPLICA_FAILED_PROBING);
}

static void test_probe_initial_delay(void **state)
{
    ctl_replica_facts_t f;
    ctl_probe_state_t s;
    ctl_probe_params_t p = {.initial_delay_s = 60, .consecutive_failure_s = 180};

    ctl_replica_facts_init(&f);
    f.launch = OK;
    ctl_probe_state_init(&s);
    /* The delay counts from the first failed probe, not from the launch. */
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 1000), CTL_PROBE_NOTHING);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 1060), CTL_PROBE_NOTHING);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 1061),
                     CTL_PROBE_TERMINATE_FAILED_INITIAL_DELAY);
    assert_float_equal(f.first_ready_time, DELAY, 0);
    f.down = SCHED;
    assert_int_equal(ctl_replica_derive_status(&f), CTL_REPLICA_SHUTTING_DOWN);
    f.down = OK;
    assert_int_equal(ctl_replica_derive_status(&f), CTL_REPLICA_FAILED_INITIAL_DELAY);
    assert_true(ctl_replica_unrecoverable_failure(&f));
}

static void test_probe_threshold_param(void **state)
{
    ctl_replica_facts_t f;
    ctl_probe_state_t s;
    ctl_probe_params_t p = {.initial_delay_s = 1200, .consecutive_failure_s = 10};

    ctl_replica_facts_init(&f);
    f.launch = OK;
    ctl_probe_state_init(&s);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, true, 0), CTL_PROBE_MARK_READY);
    assert_float_equal(f.first_ready_time, 0, 0);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 5), CTL_PROBE_MARK_NOT_READY);
    assert_int_equal(ctl_replica_record_probe(&f, &s, &p, false, 15),
                     CTL_PROBE_TERMINATE_FAILED_PROBING);
}

static ctl_replica_info_t R(int id, int version, ctl_replica_status_t st)
{
    ctl_replica_info_t r;

    memset(&r, 0, sizeof(r));
    r.id = id;
    r.version = version;
    r.status = st;
    return r;
}

static void test_scale_down_order(void **state)
{
    ctl_replica_info_t c[] = {
        R(1, 1, CTL_REPLICA_READY),   R(2, 1, CTL_REPLICA_NOT_READY),
        R(3, 2, CTL_REPLICA_READY),   R(4, 1, CTL_REPLICA_PROVISIONING),
        R(5, 1, CTL_REPLICA_PENDING), R(6, 1, CTL_REPLICA_STARTING),
        R(7, 1, CTL_REPLICA_READY),   R(8, 2, CTL_REPLICA_PENDING),
    };
    int ids[8];
    const int want[] = {5, 8, 4, 6, 2, 7, 1, 3};

    assert_int_equal(ctl_replica_select_scale_down(c, 8, 8, ids), 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(ids[i], want[i]);
    /* PENDING of v1 (id 5) and v2 (id 8): the older version goes first... */
    ctl_replica_info_t d[] = {R(8, 2, CTL_REPLICA_PENDING), R(5, 1, CTL_REPLICA_PENDING)};
    assert_int_equal(ctl_replica_select_scale_down(d, 2, 1, ids), 1);
    assert_int_equal(ids[0], 5);
    /* ...and among equals the highest id (newest) goes first. */
    ctl_replica_info_t e[] = {R(2, 1, CTL_REPLICA_READY), R(9, 1, CTL_REPLICA_READY),
                              R(4, 1, CTL_REPLICA_READY)};
    assert_int_equal(ctl_replica_select_scale_down(e, 3, 2, ids), 2);
    assert_int_equal(ids[0], 9);
    assert_int_equal(ids[1], 4);
    assert_int_equal(ctl_replica_select_scale_down(e, 3, 10, ids), 3);
    assert_int_equal(ctl_replica_select_scale_down(e, 3, 0, ids), 0);
}

static void test_service_status(void **state)
{
    ctl_replica_status_t a[] = {CTL_REPLICA_PROVISIONING, CTL_REPLICA_FAILED};
    ctl_replica_status_t b[] = {CTL_REPLICA_FAILED, CTL_REPLICA_READY};
    ctl_replica_status_t c[] = {CTL_REPLICA_STARTING};
    ctl_replica_info_t r[] = {R(1, 1, CTL_REPLICA_PROVISIONING), R(2, 1, CTL_REPLICA_STARTING)};
    ctl_service_status_t x;

    assert_int_equal(ctl_service_status_from_statuses(a, 2), CTL_SERVICE_FAILED);
    assert_int_equal(ctl_service_status_from_statuses(b, 2), CTL_SERVICE_READY);
    assert_int_equal(ctl_service_status_from_statuses(c, 1), CTL_SERVICE_REPLICA_INIT);
    assert_int_equal(ctl_service_status_from_statuses(NULL, 0), CTL_SERVICE_NO_REPLICA);
    /* The reference quirk: only READY replicas count, so provisioning shows NO_REPLICA. */
    assert_int_equal(ctl_service_status_from_replicas(r, 2, true), CTL_SERVICE_NO_REPLICA);
    assert_int_equal(ctl_service_status_from_replicas(r, 2, false), CTL_SERVICE_REPLICA_INIT);
    r[1].status = CTL_REPLICA_READY;
    assert_int_equal(ctl_service_status_from_replicas(r, 2, true), CTL_SERVICE_READY);
    assert_int_equal(ctl_service_status_parse("NO_REPLICA", &x), 0);
    assert_int_equal(x, CTL_SERVICE_NO_REPLICA);
    assert_string_equal(ctl_service_status_name(CTL_SERVICE_CONTROLLER_FAILED),
                        "CONTROLLER_FAILED");
}

static void test_active_versions(void **state)
{
    ctl_replica_info_t r[] = {
        R(1, 1, CTL_REPLICA_READY),        R(2, 1, CTL_REPLICA_READY),
        R(3, 2, CTL_REPLICA_READY),        R(4, 2, CTL_REPLICA_STARTING),
        R(5, 3, CTL_REPLICA_PROVISIONING),
    };
    ctl_version_min_t mins[] = {{1, 2}, {2, 2}, {3, 2}};
    int out[8];
    ctl_update_mode_t m;

    assert_int_equal(ctl_active_versions(r, 5, CTL_UPDATE_ROLLING, mins, 3, out, 8), 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 2);
    /* blue_green: v2 has 1 READY < min 2, so v1 keeps the traffic */
    assert_int_equal(ctl_active_versions(r, 5, CTL_UPDATE_BLUE_GREEN, mins, 3, out, 8), 1);
    assert_int_equal(out[0], 1);
    r[3].status = CTL_REPLICA_READY; /* v2 reaches its min: switch */
    assert_int_equal(ctl_active_versions(r, 5, CTL_UPDATE_BLUE_GREEN, mins, 3, out, 8), 1);
    assert_int_equal(out[0], 2);
    /* nobody qualifies: the oldest version with a ready replica */
    ctl_version_min_t big[] = {{1, 5}, {2, 5}};
    assert_int_equal(ctl_active_versions(r, 5, CTL_UPDATE_BLUE_GREEN, big, 2, out, 8), 1);
    assert_int_equal(out[0], 1);
    /* no ready replica at all */
    ctl_replica_info_t none[] = {R(1, 1, CTL_REPLICA_STARTING)};
    assert_int_equal(ctl_active_versions(none, 1, CTL_UPDATE_BLUE_GREEN, mins, 3, out, 8), 0);
    assert_int_equal(ctl_active_versions(none, 1, CTL_UPDATE_ROLLING, mins, 3, out, 8), 0);
    assert_int_equal(ctl_update_mode_parse("blue_green", &m), 0);
    assert_int_equal(m, CTL_UPDATE_BLUE_GREEN);
    assert_int_equal(ctl_update_mode_parse("canary", &m), CORE_ENOTFOUND);
}

static void test_info_fill(void **state)
{
    ctl_replica_facts_t f;
    ctl_replica_info_t r;

    ctl_replica_facts_init(&f);
    f.launch = OK;
    f.down = OK;
    f.user_app_failed = true;
    ctl_replica_info_fill(&r, 7, 3, true, &f);
    assert_int_equal(r.id, 7);
    assert_int_equal(r.version, 3);
    assert_true(r.is_spot);
    assert_int_equal(r.status, CTL_REPLICA_FAILED);
    assert_true(r.unrecoverable);
    assert_false(r.has_location);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derive_table),
        cmocka_unit_test(test_status_sets_and_names),
        cmocka_unit_test(test_should_track),
        cmocka_unit_test(test_unrecoverable),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_probe_ready_not_ready_failed_probing),
        cmocka_unit_test(test_probe_initial_delay),
        cmocka_unit_test(test_probe_threshold_param),
        cmocka_unit_test(test_scale_down_order),
        cmocka_unit_test(test_service_status),
        cmocka_unit_test(test_active_versions),
        cmocka_unit_test(test_info_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
