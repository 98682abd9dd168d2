#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "ctl_jobs_logic.h"

static void test_status_sets(void **state)
{
    int terminal = 0, failed = 0;
    ctl_job_status_t s;

    for (int i = 0; i < CTL_JOB_STATUS_COUNT; i++) {
        assert_int_equal(ctl_job_status_parse(ctl_job_status_name(i), &s), 0);
        assert_int_equal(s, i);
        terminal += ctl_job_status_is_terminal(i);
        failed += ctl_job_status_is_failed(i);
    }
    assert_int_equal(terminal, 7);
    assert_int_equal(failed, 5);
    assert_false(ctl_job_status_is_terminal(CTL_JOB_CANCELLING)); /* HEAD semantics */
    assert_false(ctl_job_status_is_processing(CTL_JOB_CANCELLING));
    assert_true(ctl_job_status_is_processing(CTL_JOB_RECOVERING));
    assert_false(ctl_job_status_is_failed(CTL_JOB_CANCELLED));
    assert_int_equal(ctl_job_status_parse("DEPRECATED_SUBMITTED", &s), 0);
    assert_int_equal(s, CTL_JOB_SUBMITTED);
    assert_int_equal(ctl_job_status_parse("nope", &s), CORE_ENOTFOUND);
    assert_int_equal(ctl_job_status_exit_code(CTL_JOB_SUCCEEDED), 0);
    assert_int_equal(ctl_job_status_exit_code(CTL_JOB_FAILED_SETUP), 100);
    assert_int_equal(ctl_job_status_exit_code(CTL_JOB_RUNNING), 101);
    assert_int_equal(ctl_job_status_exit_code(CTL_JOB_CANCELLED), 103);
    ctl_job_status_t tasks[] = {CTL_JOB_SUCCEEDED, CTL_JOB_RUNNING, CTL_JOB_PENDING};
    assert_int_equal(ctl_job_status_of_tasks(tasks, 3), CTL_JOB_RUNNING);
    assert_int_equal(ctl_job_status_of_tasks(tasks, 1), CTL_JOB_SUCCEEDED);
}

static void test_guards(void **state)
{
    ctl_job_times_t t;

    ctl_job_times_init(&t);
    assert_int_equal(ctl_job_set_recovering(&t, 5, false), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_recovered(&t, 5), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_succeeded(&t, 5), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_cancelled(&t, 5), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_backoff_pending(&t), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_starting(&t, 10), 0);
    assert_int_equal(ctl_job_set_starting(&t, 10), CORE_ECONFLICT);
    /* launch attempt failed: backoff, then restart */
    assert_int_equal(ctl_job_set_backoff_pending(&t), 0);
    assert_int_equal(t.status, CTL_JOB_PENDING);
    assert_int_equal(ctl_job_set_restarting(&t, false), 0);
    assert_int_equal(t.status, CTL_JOB_STARTING);
    assert_int_equal(ctl_job_set_started(&t, 20), 0);
    assert_int_equal(ctl_job_set_started(&t, 20), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_succeeded(&t, 30), 0);
    /* terminal: end_at set, every guarded write refuses */
    assert_int_equal(ctl_job_set_failed(&t, CTL_JOB_FAILED, 40, false), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_cancelling(&t), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_restarting(&t, true), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_failed(&t, CTL_JOB_RUNNING, 40, true), CORE_EINVALREQ);
    /* the controller-death sweep overrides, keeping end_at */
    assert_int_equal(ctl_job_set_failed(&t, CTL_JOB_FAILED_CONTROLLER, 50, true), 0);
    assert_int_equal(t.status, CTL_JOB_FAILED_CONTROLLER);
    assert_float_equal(t.end_at, 30, 0);
}

static void test_cancel_paths(void **state)
{
    ctl_job_times_t t;
    ctl_job_display_t d;

    ctl_job_times_init(&t);
    assert_int_equal(ctl_job_set_pending_cancelled(&t), 0);
    assert_int_equal(t.status, CTL_JOB_CANCELLED);
    assert_float_equal(t.end_at, CTL_TIME_UNSET, 0); /* as upstream: end_at stays NULL */
    ctl_job_display(&t, 100, &d);
    assert_true(d.total_dash);
    assert_true(d.job_duration_dash);

    ctl_job_times_init(&t);
    ctl_job_set_starting(&t, 10);
    ctl_job_set_started(&t, 20);
    assert_int_equal(ctl_job_set_pending_cancelled(&t), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_cancelling(&t), 0);
    assert_int_equal(ctl_job_set_restarting(&t, true), CORE_ECONFLICT); /* cancel wins */
    assert_int_equal(ctl_job_set_cancelled(&t, 80), 0);
    ctl_job_display(&t, 1000, &d);
    assert_float_equal(d.job_duration, 60, 1e-9);
    assert_float_equal(d.total_duration, 70, 1e-9);
}

static void test_durations_simple_and_recovery(void **state)
{
    ctl_job_times_t t;
    ctl_job_display_t d;

    ctl_job_times_init(&t);
    ctl_job_display(&t, 50, &d);
    assert_true(d.total_dash); /* PENDING: never submitted */
    assert_true(d.job_duration_dash);
    ctl_job_set_starting(&t, 100);
    ctl_job_display(&t, 130, &d);
    assert_false(d.total_dash);
    assert_float_equal(d.total_duration, 30, 1e-9);
    assert_true(d.job_duration_dash); /* provisioning is not job time */
    ctl_job_set_started(&t, 150);
    assert_float_equal(t.start_at, 150, 0);
    ctl_job_display(&t, 200, &d);
    assert_float_equal(d.job_duration, 50, 1e-9);
    assert_false(d.job_duration_dash);

    /* preempted at 250: 100 s banked; RECOVERING shows the banked value */
    assert_int_equal(ctl_job_set_recovering(&t, 250, false), 0);
    assert_float_equal(t.job_duration, 100, 1e-9);
    assert_float_equal(t.last_recovered_at, 150, 0);
    ctl_job_display(&t, 390, &d);
    assert_float_equal(d.job_duration, 100, 1e-9);
    assert_float_equal(d.total_duration, 290, 1e-9);
    /* running again from the new cluster's submit time */
    assert_int_equal(ctl_job_set_recovered(&t, 400), 0);
    assert_int_equal(t.recovery_count, 1);
    ctl_job_display(&t, 450, &d);
    assert_float_equal(d.job_duration, 150, 1e-9); /* 100 + (450 - 400) */
    assert_int_equal(d.recoveries, 1);
    assert_int_equal(ctl_job_set_succeeded(&t, 500), 0);
    ctl_job_display(&t, 9999, &d);
    assert_float_equal(d.job_duration, 200, 1e-9);
    assert_float_equal(d.total_duration, 400, 1e-9);
}

static void test_durations_failed_while_recovering(void **state)
{
    ctl_job_times_t t;
    ctl_job_display_t d;

    ctl_job_times_init(&t);
    ctl_job_set_starting(&t, 100);
    ctl_job_set_started(&t, 150);
    ctl_job_set_recovering(&t, 250, false);
    assert_int_equal(ctl_job_set_failed(&t, CTL_JOB_FAILED_CONTROLLER, 600, false), 0);
    assert_float_equal(t.last_recovered_at, 600, 0);
    ctl_job_display(&t, 9999, &d);
    assert_float_equal(d.job_duration, 100, 1e-9); /* recovery time not counted */
    assert_float_equal(d.total_duration, 500, 1e-9);
}

static void test_durations_user_failure_restart(void **state)
{
    ctl_job_times_t t;
    ctl_job_display_t d;

    /* a restart on error is a recovery too (#RECOVERIES counts it) */
    ctl_job_times_init(&t);
    ctl_job_set_starting(&t, 0);
    ctl_job_set_started(&t, 10);
    ctl_job_set_recovering(&t, 40, false);
    ctl_job_set_recovered(&t, 60);
    ctl_job_set_recovering(&t, 70, false);
    ctl_job_set_recovered(&t, 100);
    assert_int_equal(ctl_job_set_failed(&t, CTL_JOB_FAILED, 130, false), 0);
    ctl_job_display(&t, 500, &d);
    assert_float_equal(d.job_duration, 30 + 10 + 30, 1e-9);
    assert_int_equal(d.recoveries, 2);
}

static void test_durations_forced_recovering(void **state)
{
    ctl_job_times_t t;
    ctl_job_display_t d;

    /* HA resume: forced to RECOVERING from STARTING before the job ever ran */
    ctl_job_times_init(&t);
    ctl_job_set_starting(&t, 100);
    assert_int_equal(ctl_job_set_recovering(&t, 120, false), CORE_ECONFLICT);
    assert_int_equal(ctl_job_set_recovering(&t, 120, true), 0);
    assert_float_equal(t.last_recovered_at, 120, 0);
    assert_float_equal(t.job_duration, 0, 0);
    ctl_job_display(&t, 130, &d);
    assert_true(d.job_duration_dash);
    ctl_job_set_recovered(&t, 200);
    ctl_job_display(&t, 230, &d);
    assert_float_equal(d.job_duration, 30, 1e-9);
    /* a cancelling job cannot be forced */
    ctl_job_set_cancelling(&t);
    assert_int_equal(ctl_job_set_recovering(&t, 240, true), CORE_ECONFLICT);
}

static void test_pipeline_display(void **state)
{
    ctl_job_times_t t[2];
    ctl_job_display_t d;

    ctl_job_times_init(&t[0]);
    ctl_job_times_init(&t[1]);
    ctl_job_set_starting(&t[0], 100);
    ctl_job_set_started(&t[0], 110);
    ctl_job_set_succeeded(&t[0], 210);
    ctl_job_display_pipeline(t, 2, 300, &d);
    assert_float_equal(d.job_duration, 100, 1e-9);
    assert_float_equal(d.total_duration, 200, 1e-9); /* task 2 open: up to now */
    ctl_job_set_starting(&t[1], 220);
    ctl_job_set_started(&t[1], 230);
    ctl_job_set_recovering(&t[1], 250, false);
    ctl_job_set_recovered(&t[1], 260);
    ctl_job_set_succeeded(&t[1], 290);
    ctl_job_display_pipeline(t, 2, 1000, &d);
    assert_float_equal(d.job_duration, 100 + 20 + 30, 1e-9);
    assert_float_equal(d.total_duration, 190, 1e-9);
    assert_int_equal(d.recoveries, 1);
}

static void test_should_restart(void **state)
{
    ctl_restart_policy_t none = {0, NULL, 0};
    const int codes[] = {3, 42};
    ctl_restart_policy_t two = {2, codes, 2};
    int cnt = 0;
    const int ex1[] = {1}, ex42[] = {0, 42}, ex137[] = {137};

    assert_false(ctl_job_should_restart_on_failure(&none, ex1, 1, &cnt));
    assert_int_equal(cnt, 1);
    cnt = 0;
    assert_true(ctl_job_should_restart_on_failure(&two, ex1, 1, &cnt));
    assert_true(ctl_job_should_restart_on_failure(&two, ex137, 1, &cnt));
    assert_int_equal(cnt, 2);
    /* a listed code on any node: restart, not counted */
    assert_true(ctl_job_should_restart_on_failure(&two, ex42, 2, &cnt));
    assert_int_equal(cnt, 2);
    assert_false(ctl_job_should_restart_on_failure(&two, ex1, 1, &cnt)); /* third: over */
    assert_int_equal(cnt, 3);
    assert_true(ctl_job_should_restart_on_failure(&two, ex42 + 1, 1, &cnt));
    /* no exit codes known (agent gone): counts */
    cnt = 0;
    assert_true(ctl_job_should_restart_on_failure(&two, NULL, 0, &cnt));
    assert_int_equal(cnt, 1);
}

/* An answer of the agent (known) or none. */
#define K(s) true, CORE_AGENT_##s
#define UNKNOWN false, CORE_AGENT_PENDING

static void test_classify(void **state)
{
    ctl_job_status_t fs = CTL_JOB_PENDING;
    core_agent_status_t c;

    assert_int_equal(ctl_job_classify(K(SUCCEEDED), CORE_INST_PREEMPTED, 0, &fs),
                     CTL_JOB_OUT_SUCCEEDED);
    assert_int_equal(ctl_job_classify(K(RUNNING), CORE_INST_RUNNING, 0, &fs),
                     CTL_JOB_KEEP_MONITORING);
    assert_int_equal(ctl_job_classify(K(SETTING_UP), CORE_INST_RUNNING, 0, &fs),
                     CTL_JOB_KEEP_MONITORING);
    /* any non-running instance is a preemption, whatever the job says */
    const enum core_inst_state gone[] = {CORE_INST_PENDING, CORE_INST_PREEMPTED,
                                         CORE_INST_TERMINATED, CORE_INST_FAILED};
    const core_agent_status_t any[] = {CORE_AGENT_RUNNING, CORE_AGENT_FAILED,
                                       CORE_AGENT_FAILED_SETUP, CORE_AGENT_CANCELLED};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 4; j++)
            assert_int_equal(ctl_job_classify(true, any[j], gone[i], 0, &fs), CTL_JOB_RECOVER);
        assert_int_equal(ctl_job_classify(UNKNOWN, gone[i], 0, &fs), CTL_JOB_RECOVER);
    }
    assert_int_equal(ctl_job_classify(K(FAILED), CORE_INST_RUNNING, 0, &fs),
                     CTL_JOB_USER_FAILURE);
    assert_int_equal(fs, CTL_JOB_FAILED);
    assert_int_equal(ctl_job_classify(K(FAILED_SETUP), CORE_INST_RUNNING, 0, &fs),
                     CTL_JOB_USER_FAILURE);
    assert_int_equal(fs, CTL_JOB_FAILED_SETUP);
    assert_int_equal(ctl_job_classify(K(CANCELLED), CORE_INST_RUNNING, 0, &fs),
                     CTL_JOB_CONTROLLER_FAILURE);
    assert_int_equal(fs, CTL_JOB_FAILED_CONTROLLER);
    /* unknown status with the instance up: wait up to 60 s, then recover */
    assert_int_equal(ctl_job_classify(UNKNOWN, CORE_INST_RUNNING, 59, &fs),
                     CTL_JOB_KEEP_MONITORING);
    assert_int_equal(ctl_job_classify(UNKNOWN, CORE_INST_RUNNING, 60, &fs), CTL_JOB_RECOVER);
    assert_false(ctl_job_needs_instance_check(K(RUNNING), 1));
    assert_true(ctl_job_needs_instance_check(K(RUNNING), 2));
    assert_false(ctl_job_needs_instance_check(K(SUCCEEDED), 4));
    assert_true(ctl_job_needs_instance_check(K(FAILED), 1));
    assert_true(ctl_job_needs_instance_check(UNKNOWN, 1));
    assert_int_equal(core_agent_status_parse("SETTING_UP", &c), 0);
    assert_int_equal(c, CORE_AGENT_SETTING_UP);
    assert_true(core_agent_status_is_terminal(CORE_AGENT_CANCELLED));
    assert_false(core_agent_status_is_terminal(CORE_AGENT_PENDING));
}

static core_candidate_t C(const char *region, const char *zone, const char *type, int spot,
                          double price)
{
    core_candidate_t c;

    memset(&c, 0, sizeof(c));
    strcpy(c.cloud, "local");
    strcpy(c.region, region);
    strcpy(c.zone, zone);
    strcpy(c.instance_type, type);
    c.spot = spot;
    c.price = price;
    return c;
}

static void test_recovery_skip(void **state)
{
    core_candidate_t c[] = {
        C("r1", "r1a", "t1", 1, 0.10), C("r1", "r1b", "t1", 1, 0.10), C("r2", "r2a", "t1", 1, 0.12),
        C("r3", "r3a", "t2", 1, 0.20), C("r1", "r1a", "t1", 0, 0.30),
    };
    unsigned char skip[5];
    core_recovery_strategy_t s;

    /* EAGER, first sweep: the whole preempted region is skipped */
    assert_int_equal(
        ctl_jobs_recovery_skip(CORE_RECOVERY_EAGER_NEXT_REGION, c, 5, &c[0], false, 0, skip), 2);
    const unsigned char eager0[] = {1, 1, 0, 0, 1};
    assert_memory_equal(skip, eager0, 5);
    /* later sweeps: everything, the preempted region included */
    assert_int_equal(
        ctl_jobs_recovery_skip(CORE_RECOVERY_EAGER_NEXT_REGION, c, 5, &c[0], false, 1, skip), 5);
    const unsigned char zero[5] = {0};
    assert_memory_equal(skip, zero, 5);
    /* the user pinned the region: nothing to skip */
    assert_int_equal(
        ctl_jobs_recovery_skip(CORE_RECOVERY_EAGER_NEXT_REGION, c, 5, &c[0], true, 0, skip), 5);
    /* FAILOVER, first sweep: same region, same type and spot flag, any zone */
    assert_int_equal(ctl_jobs_recovery_skip(CORE_RECOVERY_FAILOVER, c, 5, &c[0], false, 0, skip),
                     2);
    const unsigned char fo0[] = {0, 0, 1, 1, 1};
    assert_memory_equal(skip, fo0, 5);
    assert_int_equal(ctl_jobs_recovery_skip(CORE_RECOVERY_FAILOVER, c, 5, &c[0], false, 1, skip),
                     5);
    /* unknown previous location: full list */
    assert_int_equal(ctl_jobs_recovery_skip(CORE_RECOVERY_FAILOVER, c, 5, NULL, false, 0, skip), 5);
    /* a single-region catalog: EAGER's block would leave nothing, so it is dropped */
    assert_int_equal(
        ctl_jobs_recovery_skip(CORE_RECOVERY_EAGER_NEXT_REGION, c, 2, &c[0], false, 0, skip), 2);
    assert_memory_equal(skip, zero, 2);
    assert_int_equal(core_recovery_strategy_parse("eager_next_region", &s), 0);
    assert_int_equal(s, CORE_RECOVERY_EAGER_NEXT_REGION);
    assert_int_equal(core_recovery_strategy_parse("FAILOVER", &s), 0);
    assert_int_equal(s, CORE_RECOVERY_FAILOVER);
    assert_int_equal(core_recovery_strategy_parse("x", &s), CORE_ENOTFOUND);
    assert_string_equal(core_recovery_strategy_name(CORE_RECOVERY_FAILOVER), "FAILOVER");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_sets),
        cmocka_unit_test(test_guards),
        cmocka_unit_test(test_cancel_paths),
        cmocka_unit_test(test_durations_simple_and_recovery),
        cmocka_unit_test(test_durations_failed_while_recovering),
        cmocka_unit_test(test_durations_user_failure_restart),
        cmocka_unit_test(test_durations_forced_recovering),
        cmocka_unit_test(test_pipeline_display),
        cmocka_unit_test(test_should_restart),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_recovery_skip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
