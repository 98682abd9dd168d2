#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "core/err.h"
#include "ctl_scaler.h"

/* ---- a tiny simulated fleet driven by the decisions ---- */

#define MAXR 256

typedef struct fleet {
    ctl_replica_info_t r[MAXR];
    size_t n;
    int next_id;
    bool default_spot; /* what the yaml says when the override is -1 */
    int ups, downs, spot_ups, od_ups;
} fleet_t;

static void fleet_init(fleet_t *f, bool default_spot)
{
    memset(f, 0, sizeof(*f));
    f->next_id = 1;
    f->default_spot = default_spot;
}

static ctl_replica_info_t *find(fleet_t *f, int id)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].id == id)
            return &f->r[i];
    return NULL;
}

static int add(fleet_t *f, int version, bool spot, ctl_replica_status_t st)
{
    ctl_replica_info_t *r = &f->r[f->n++];

    assert_true(f->n <= MAXR);
    memset(r, 0, sizeof(*r));
    r->id = f->next_id++;
    r->version = version;
    r->is_spot = spot;
    r->status = st;
    return r->id;
}

static void remove_id(fleet_t *f, int id)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->r[i].id == id) {
            f->r[i] = f->r[--f->n];
            return;
        }
    }
    fail_msg("no replica %d", id);
}

/* One tick; scale-ups join as PENDING in the latest version, scale-downs vanish. */
static void tick(ctl_scaler_t *s, fleet_t *f, const int *active, size_t n_active, double now)
{
    ctl_decision_t *d;
    size_t n;

    f->ups = f->downs = f->spot_ups = f->od_ups = 0;
    assert_int_equal(ctl_scaler_decide(s, f->r, f->n, active, n_active, now, &d, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (d[i].kind == CTL_SCALE_UP) {
            bool spot = d[i].use_spot < 0 ? f->default_spot : d[i].use_spot == 1;

            add(f, s->st.latest_version, spot, CTL_REPLICA_PENDING);
            f->ups++;
            f->spot_ups += d[i].use_spot == 1;
            f->od_ups += d[i].use_spot == 0;
        } else {
            assert_non_null(find(f, d[i].replica_id));
            remove_id(f, d[i].replica_id);
            f->downs++;
        }
    }
    free(d);
}

static void set_all(fleet_t *f, bool spot, ctl_replica_status_t st)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->r[i].is_spot == spot)
            f->r[i].status = st;
}

static int count(const fleet_t *f, int spot /* -1 any */, int version /* -1 any */)
{
    int c = 0;

    for (size_t i = 0; i < f->n; i++)
        if ((spot < 0 || f->r[i].is_spot == spot) && (version < 0 || f->r[i].version == version) &&
            !ctl_replica_status_is_terminal(f->r[i].status))
            c++;
    return c;
}

static void add_qps(ctl_scaler_t *s, double qps, double now)
{
    /* qps * 60 requests spread over the last minute */
    int n = (int)(qps * 60);

    for (int i = 0; i < n; i++)
        ctl_scaler_add_request_count(s, now - 59.5 + 59.0 * i / (n > 1 ? n - 1 : 1), 1, now);
}

/* qps for the last 20 s: with a 20 s window, each tick sees exactly its batch. */
static void add_rate(ctl_scaler_t *s, double qps, double now)
{
    int n = (int)(qps * 20);

    for (int i = 0; i < n; i++)
        ctl_scaler_add_request_count(s, now - 20 + 20.0 * (i + 1) / n, 1, now);
}

static void seed_spec(ctl_scaler_spec_t *sp)
{
    /* examples/serve/spot_policy/dynamic_on_demand_fallback.yaml */
    ctl_scaler_spec_default(sp);
    sp->min_replicas = 2;
    sp->max_replicas = 3;
    sp->target_qps_per_replica = 1;
    sp->dynamic_ondemand_fallback = true;
}

/* ---- tests ---- */

static void test_spec_validation(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    char *err = NULL;

    ctl_scaler_spec_default(&sp);
    assert_int_equal(ctl_scaler_spec_validate(&sp, NULL), 0);
    sp.target_qps_per_replica = 0;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, &err), CORE_ESPEC);
    assert_non_null(err);
    free(err);
    err = NULL;
    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 3;
    sp.max_replicas = 2;
    assert_int_equal(ctl_scaler_spec_validate(&sp, NULL), CORE_ESPEC);
    ctl_scaler_spec_default(&sp);
    sp.decision_interval_s = 0;
    assert_int_equal(ctl_scaler_spec_validate(&sp, NULL), CORE_ESPEC);
    ctl_scaler_spec_default(&sp);
    sp.base_ondemand_fallback_replicas = -1;
    assert_int_equal(ctl_scaler_spec_validate(&sp, NULL), CORE_ESPEC);
    ctl_scaler_spec_default(&sp);
    assert_int_equal(ctl_scaler_kind_for_spec(&sp), CTL_SCALER_REQUEST_RATE);
    sp.base_ondemand_fallback_replicas = 1;
    assert_int_equal(ctl_scaler_kind_for_spec(&sp), CTL_SCALER_FALLBACK);
    sp.base_ondemand_fallback_replicas = 0;
    sp.dynamic_ondemand_fallback = true;
    assert_int_equal(ctl_scaler_kind_for_spec(&sp), CTL_SCALER_FALLBACK);
}

static void test_defaults_and_thresholds(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;

    ctl_scaler_spec_default(&sp);
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    assert_int_equal(s.up_threshold, 15);
    assert_int_equal(s.down_threshold, 60);
    assert_int_equal(s.st.target, 1);
    assert_int_equal(s.st.latest_version, 1);
    assert_int_equal(s.st.latest_version_ever_ready, 0);
    assert_float_equal(ctl_scaler_next_interval(&s), 20, 0);
    ctl_scaler_destroy(&s);
    sp.upscale_delay_s = 50;   /* int(50/20) = 2 */
    sp.downscale_delay_s = 10; /* 0: immediate */
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    assert_int_equal(s.up_threshold, 2);
    assert_int_equal(s.down_threshold, 0);
    ctl_scaler_destroy(&s);
}

static void test_fixed_size_without_target_qps(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 3;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    add_qps(&s, 100, 1000);
    tick(&s, &f, NULL, 0, 1000);
    assert_int_equal(f.ups, 3);
    assert_int_equal(count(&f, -1, -1), 3);
    tick(&s, &f, NULL, 0, 1020);
    assert_int_equal(f.ups + f.downs, 0);
    /* A FAILED replica is terminal: not counted, replaced. */
    f.r[0].status = CTL_REPLICA_FAILED_PROVISION;
    tick(&s, &f, NULL, 0, 1040);
    assert_int_equal(f.ups, 1);
    ctl_scaler_destroy(&s);
}

static void test_seed_dynamic_fallback(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    double now = 1000;

    seed_spec(&sp);
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    assert_int_equal(s.kind, CTL_SCALER_FALLBACK);
    fleet_init(&f, true);
    /* start: 2 spot + 2 on-demand, as the seed's NO_REPLICA 0/4 table shows */
    tick(&s, &f, NULL, 0, now);
    assert_int_equal(f.spot_ups, 2);
    assert_int_equal(f.od_ups, 2);
    assert_int_equal(f.downs, 0);
    /* provisioning: nothing changes */
    set_all(&f, true, CTL_REPLICA_PROVISIONING);
    set_all(&f, false, CTL_REPLICA_PROVISIONING);
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.ups + f.downs, 0);
    /* on-demand ready first: still nothing */
    set_all(&f, false, CTL_REPLICA_READY);
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.ups + f.downs, 0);
    /* one spot ready: one on-demand goes */
    f.r[0].status = CTL_REPLICA_READY;
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.downs, 1);
    assert_int_equal(count(&f, 0, -1), 1);
    /* both spot ready: on-demand scaled down to 0 */
    set_all(&f, true, CTL_REPLICA_READY);
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.downs, 1);
    assert_int_equal(count(&f, 0, -1), 0);
    assert_int_equal(count(&f, 1, -1), 2);
    /* one spot preempted: 1 spot + 1 on-demand up */
    f.r[0].status = CTL_REPLICA_PREEMPTED;
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.spot_ups, 1);
    assert_int_equal(f.od_ups, 1);
    assert_int_equal(f.downs, 0);
    /* the preempted record goes away after its down; the new spot becomes ready */
    remove_id(&f, f.r[0].id);
    set_all(&f, true, CTL_REPLICA_READY);
    set_all(&f, false, CTL_REPLICA_READY);
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.downs, 1);
    assert_int_equal(count(&f, 0, -1), 0);
    assert_int_equal(count(&f, 1, -1), 2);
    ctl_scaler_destroy(&s);
}

static void test_base_ondemand_always_one(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    double now = 0;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 2;
    sp.max_replicas = 3;
    sp.target_qps_per_replica = 1;
    sp.base_ondemand_fallback_replicas = 1;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, true);
    tick(&s, &f, NULL, 0, now);
    assert_int_equal(f.spot_ups, 1);
    assert_int_equal(f.od_ups, 1);
    for (int i = 0; i < 5; i++) {
        set_all(&f, true, i < 2 ? CTL_REPLICA_STARTING : CTL_REPLICA_READY);
        set_all(&f, false, CTL_REPLICA_READY);
        tick(&s, &f, NULL, 0, now += 20);
        assert_int_equal(f.ups + f.downs, 0);
        assert_int_equal(count(&f, 0, -1), 1);
        assert_int_equal(count(&f, 1, -1), 1);
    }
    /* The spot one is preempted: without dynamic fallback only spot is replaced. */
    for (size_t i = 0; i < f.n; i++)
        if (f.r[i].is_spot)
            f.r[i].status = CTL_REPLICA_PREEMPTED;
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.spot_ups, 1);
    assert_int_equal(f.od_ups, 0);
    ctl_scaler_destroy(&s);
}

static void test_base_and_dynamic(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;

    seed_spec(&sp);
    sp.base_ondemand_fallback_replicas = 1;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, true);
    /* spot_needed = 2 - 1 = 1; od = 1 + (1 - 0) = 2 */
    tick(&s, &f, NULL, 0, 0);
    assert_int_equal(f.spot_ups, 1);
    assert_int_equal(f.od_ups, 2);
    set_all(&f, true, CTL_REPLICA_READY);
    set_all(&f, false, CTL_REPLICA_READY);
    tick(&s, &f, NULL, 0, 20);
    assert_int_equal(f.downs, 1);
    assert_int_equal(count(&f, 0, -1), 1);
    ctl_scaler_destroy(&s);
}

static void test_base_exceeds_final_target_clamped(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;

    /* min 0 + base 1, no traffic: the reference throws each tick (negative count). */
    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 0;
    sp.max_replicas = 2;
    sp.target_qps_per_replica = 1;
    sp.base_ondemand_fallback_replicas = 1;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, true);
    add(&f, 1, true, CTL_REPLICA_READY); /* a leftover spot replica */
    tick(&s, &f, NULL, 0, 0);
    assert_int_equal(f.downs, 1); /* spot_needed clamps to 0: only the one spot goes */
    assert_int_equal(f.ups, 0);   /* od capped at target 0 */
    assert_float_equal(ctl_scaler_next_interval(&s), 5, 0);
    ctl_scaler_destroy(&s);

    /* min 1, base 2: target 1 -> no spot, exactly one on-demand */
    sp.min_replicas = 1;
    sp.base_ondemand_fallback_replicas = 2;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, true);
    tick(&s, &f, NULL, 0, 0);
    assert_int_equal(f.spot_ups, 0);
    assert_int_equal(f.od_ups, 1);
    tick(&s, &f, NULL, 0, 20);
    assert_int_equal(f.ups + f.downs, 0);
    ctl_scaler_destroy(&s);
}

static void test_overprovision_not_backed_by_ondemand(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;

    seed_spec(&sp);
    sp.num_overprovision = 1;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    assert_int_equal(ctl_scaler_final_target(&s), 3);
    fleet_init(&f, true);
    tick(&s, &f, NULL, 0, 0);
    assert_int_equal(f.spot_ups, 3);
    assert_int_equal(f.od_ups, 2); /* min(3 - 0, target 2) */
    /* RequestRate: overprovision adds plain replicas */
    ctl_scaler_destroy(&s);
    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 1;
    sp.num_overprovision = 2;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    tick(&s, &f, NULL, 0, 0);
    assert_int_equal(f.ups, 3);
    ctl_scaler_destroy(&s);
}

/*
 * The hedge (fallback_target_only): dynamic fallback covers the target with
 * on-demand, never the overprovisioned spot replica. SpotHedge's own shape:
 * target 2, 1 overprovisioned, dynamic fallback.
 */
static void test_hedge_covers_only_the_target(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    double now = 0;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 2;
    sp.num_overprovision = 1;
    sp.dynamic_ondemand_fallback = true;
    sp.fallback_target_only = true;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, true);
    /* start: 3 spot, and on-demand for the target while none is READY */
    tick(&s, &f, NULL, 0, now);
    assert_int_equal(f.spot_ups, 3);
    assert_int_equal(f.od_ups, 2);
    set_all(&f, false, CTL_REPLICA_READY);
    set_all(&f, true, CTL_REPLICA_STARTING);
    /* two spot READY, the hedge still starting: the on-demand ones go (the reference keeps 1) */
    f.r[0].status = CTL_REPLICA_READY;
    f.r[1].status = CTL_REPLICA_READY;
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.downs, 2);
    assert_int_equal(count(&f, 0, -1), 0);
    assert_int_equal(count(&f, 1, -1), 3);
    set_all(&f, true, CTL_REPLICA_READY);
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.ups + f.downs, 0);
    /* one spot preempted: its spot successor only; READY (2) still meets the target */
    f.r[0].status = CTL_REPLICA_PREEMPTED;
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.spot_ups, 1);
    assert_int_equal(f.od_ups, 0);
    /* a second one preempted before the successor is READY: one on-demand for the target */
    f.r[1].status = CTL_REPLICA_PREEMPTED;
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(f.spot_ups, 1);
    assert_int_equal(f.od_ups, 1);
    ctl_scaler_destroy(&s);
}

/*
 * Every combination of target T, overprovision O, base B and READY spot R
 * (the rest of the spot replicas still starting, no on-demand yet): the
 * on-demand scale-ups are min(T, B + max(0, C - R)), where C, the spot that
 * on-demand stands in for, is T + O - B for the reference and T - B with the
 * hedge; without overprovision the two agree.
 */
/* On-demand scale-ups of one first tick: R of the spot replicas READY, the rest starting. */
static int first_tick_od(int t, int o, int b, int r, bool hedge)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = t;
    sp.num_overprovision = o;
    sp.base_ondemand_fallback_replicas = b;
    sp.dynamic_ondemand_fallback = true;
    sp.fallback_target_only = hedge;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, true);
    for (int i = 0; i < t + o - b; i++)
        add(&f, 1, true, i < r ? CTL_REPLICA_READY : CTL_REPLICA_STARTING);
    tick(&s, &f, NULL, 0, 0);
    assert_int_equal(f.spot_ups + f.downs, 0);
    ctl_scaler_destroy(&s);
    return f.od_ups;
}

static void test_hedge_formula_exhaustive(void **state)
{
    for (int t = 1; t <= 4; t++)
        for (int o = 0; o <= 2; o++)
            for (int b = 0; b <= t; b++)
                for (int r = 0; r <= t + o - b; r++) {
                    int od[2];

                    for (int hedge = 0; hedge <= 1; hedge++) {
                        int cover = hedge ? t - b : t + o - b;
                        int want = b + (cover > r ? cover - r : 0);

                        if (want > t)
                            want = t;
                        od[hedge] = first_tick_od(t, o, b, r, hedge);
                        if (od[hedge] != want)
                            fail_msg("hedge %d T %d O %d B %d R %d: %d on-demand, want %d", hedge,
                                     t, o, b, r, od[hedge], want);
                    }
                    /* never more on-demand with the hedge; the same without overprovision */
                    assert_true(od[1] <= od[0]);
                    if (o == 0)
                        assert_int_equal(od[1], od[0]);
                }
}

static void test_qps_hysteresis(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    double now = 10000;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 1;
    sp.max_replicas = 5;
    sp.target_qps_per_replica = 2;
    sp.upscale_delay_s = 60;    /* 3 ticks */
    sp.downscale_delay_s = 120; /* 6 ticks */
    sp.qps_window_s = 20;       /* a parameter like every constant */
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    tick(&s, &f, NULL, 0, now);
    assert_int_equal(f.ups, 1);

    /* 5 qps -> ceil(5/2) = 3 wanted; needs 3 consecutive ticks */
    for (int i = 1; i <= 2; i++) {
        now += 20;
        add_rate(&s, 5, now);
        tick(&s, &f, NULL, 0, now);
        assert_int_equal(s.st.target, 1);
        assert_int_equal(s.st.upscale_counter, i);
        assert_int_equal(f.ups, 0);
    }
    /* an equal tick resets the counters (issue #4444: consecutive only) */
    now += 21; /* window empties: qps 0 -> wanted 1 == target */
    tick(&s, &f, NULL, 0, now);
    assert_int_equal(s.st.upscale_counter, 0);
    for (int i = 1; i <= 3; i++) {
        now += 20;
        add_rate(&s, 5, now);
        tick(&s, &f, NULL, 0, now);
    }
    assert_int_equal(s.st.target, 3);
    assert_int_equal(f.ups, 2);
    assert_int_equal(s.st.upscale_counter, 0);
    /* above max clips to 5 */
    for (int i = 1; i <= 3; i++) {
        now += 20;
        add_rate(&s, 100, now);
        tick(&s, &f, NULL, 0, now);
    }
    assert_int_equal(s.st.target, 5);
    assert_int_equal(count(&f, -1, -1), 5);
    /* traffic stops: 6 ticks to come down, then the least useful go */
    set_all(&f, false, CTL_REPLICA_READY);
    now += 21;
    for (int i = 1; i <= 5; i++) {
        tick(&s, &f, NULL, 0, now += 20);
        assert_int_equal(s.st.downscale_counter, i);
        assert_int_equal(f.downs, 0);
    }
    tick(&s, &f, NULL, 0, now += 20);
    assert_int_equal(s.st.target, 1);
    assert_int_equal(f.downs, 4);
    assert_int_equal(count(&f, -1, -1), 1);
    assert_int_equal(f.r[0].id, 1); /* the oldest (lowest id) READY replica stays */
    /* an opposite tick resets the down counter */
    ctl_scaler_destroy(&s);
}

static void test_opposite_tick_resets(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    double now = 0;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 1;
    sp.max_replicas = 10;
    sp.target_qps_per_replica = 1;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    s.st.target = 3;
    add_qps(&s, 5, now);
    ctl_scaler_hysteresis_tick(&s, now);
    assert_int_equal(s.st.upscale_counter, 1);
    now += 61;
    ctl_scaler_hysteresis_tick(&s, now); /* wanted 1 < 3 */
    assert_int_equal(s.st.upscale_counter, 0);
    assert_int_equal(s.st.downscale_counter, 1);
    ctl_scaler_destroy(&s);
}

static void test_scale_from_zero(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    double now = 500;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 0;
    sp.max_replicas = 4;
    sp.target_qps_per_replica = 1;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    tick(&s, &f, NULL, 0, now);
    assert_int_equal(f.ups, 0);
    assert_float_equal(ctl_scaler_next_interval(&s), 5, 0);
    /* first requests: straight up, no upscale delay */
    add_qps(&s, 2.5, now += 5);
    tick(&s, &f, NULL, 0, now);
    assert_int_equal(s.st.target, 3);
    assert_int_equal(f.ups, 3);
    assert_float_equal(ctl_scaler_next_interval(&s), 20, 0);
    ctl_scaler_destroy(&s);
}

static void test_window_retrim_and_bound(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    double ts[120];

    ctl_scaler_spec_default(&sp);
    sp.qps_max_entries = 50;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    for (int i = 0; i < 120; i++)
        ts[i] = 1000 + i * 0.5; /* 1000 .. 1059.5 */
    ctl_scaler_add_requests(&s, ts, 30, 1060);
    assert_float_equal(ctl_scaler_qps(&s, 1060), 30.0 / 60, 1e-12);
    /* exactly now - 60 stays (bisect_left), one more second drops the first */
    assert_float_equal(ctl_scaler_qps(&s, 1060), 0.5, 1e-12);
    assert_float_equal(ctl_scaler_qps(&s, 1060.25), 29.0 / 60, 1e-12);
    /* re-trim at decision time: no sync for a while -> qps falls to 0 */
    assert_float_equal(ctl_scaler_qps(&s, 1200), 0, 0);
    /* stale timestamps are ignored on arrival */
    ctl_scaler_add_requests(&s, ts, 10, 1200);
    assert_int_equal(s.win.len, 0);
    /* the bound: 120 distinct stamps fit in 50 entries, every request still counted */
    ctl_scaler_add_requests(&s, ts, 120, 1060);
    assert_true(s.win.len <= 50);
    assert_true(s.win.compactions > 0);
    assert_int_equal(s.win.dropped, 0);
    assert_int_equal(s.win.total, 120);
    assert_float_equal(ctl_scaler_qps(&s, 1060), 2, 1e-12);
    for (size_t i = 1; i < s.win.len; i++)
        assert_true(s.win.e[s.win.start + i - 1].t < s.win.e[s.win.start + i].t);
    /* merged entries expire at most one slot (60 / 25 = 2.4 s) late */
    double q = ctl_scaler_qps(&s, 1090);
    assert_true(q * 60 >= 60 && q * 60 <= 60 + 2.4 / 0.5 + 1);
    /* counts share an entry */
    ctl_scaler_destroy(&s);
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    ctl_scaler_add_request_count(&s, 2000, 600, 2000);
    ctl_scaler_add_request_count(&s, 2000, 600, 2000);
    assert_int_equal(s.win.len, 1);
    assert_float_equal(ctl_scaler_qps(&s, 2001), 20, 1e-12);
    ctl_scaler_destroy(&s);
}

static void test_window_high_rate_bounded(void **state)
{
    /* 10k requests/s for 3 minutes into 4096 entries: memory stays bounded
     * and the measured QPS stays within a slot's worth of the truth. */
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    double ts[1000];

    ctl_scaler_spec_default(&sp);
    sp.qps_max_entries = 4096;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    for (int sec = 0; sec < 180; sec++) {
        for (int k = 0; k < 10; k++) {
            for (int i = 0; i < 1000; i++)
                ts[i] = sec + k * 0.1 + i * 1e-4;
            ctl_scaler_add_requests(&s, ts, 1000, sec + 1);
        }
        assert_true(s.win.len <= 4096);
    }
    double q = ctl_scaler_qps(&s, 180);
    assert_true(q > 10000 * 0.99 && q < 10000 * 1.01);
    assert_int_equal(s.win.dropped, 0);
    assert_true(s.win.cap <= 2 * 4096 + 64);
    ctl_scaler_destroy(&s);
}

static void test_window_out_of_order(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    const double a[] = {105, 101, 103, 101, 110, 100};

    ctl_scaler_spec_default(&sp);
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    ctl_scaler_add_requests(&s, a, 6, 110);
    assert_int_equal(s.win.total, 6);
    for (size_t i = 1; i < s.win.len; i++)
        assert_true(s.win.e[s.win.start + i - 1].t < s.win.e[s.win.start + i].t);
    /* trim at 161.5 keeps only 105 and 110 */
    assert_float_equal(ctl_scaler_qps(&s, 164.5), 2.0 / 60, 1e-12);
    ctl_scaler_destroy(&s);
}

static void test_rolling_update(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    int active[2] = {1};

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 3;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    for (int i = 0; i < 3; i++)
        add(&f, 1, false, CTL_REPLICA_READY);
    tick(&s, &f, active, 1, 0);
    assert_int_equal(f.ups + f.downs, 0);
    assert_int_equal(s.st.latest_version_ever_ready, 1);

    assert_int_equal(ctl_scaler_update_version(&s, 2, &sp, CTL_UPDATE_ROLLING, 10, NULL), 0);
    /* L = 0 < T = 3: keep 3 old, launch 3 new at once */
    tick(&s, &f, active, 1, 20);
    assert_int_equal(f.ups, 3);
    assert_int_equal(f.downs, 0);
    assert_int_equal(count(&f, -1, 2), 3);
    /* one new ready: L = 1, keep 2 old */
    int new_ids[3], k = 0;
    for (size_t i = 0; i < f.n; i++)
        if (f.r[i].version == 2)
            new_ids[k++] = f.r[i].id;
    find(&f, new_ids[0])->status = CTL_REPLICA_READY;
    active[1] = 2;
    tick(&s, &f, active, 2, 40);
    assert_int_equal(f.downs, 1);
    assert_int_equal(count(&f, -1, 1), 2);
    assert_null(find(&f, 3)); /* the highest old id goes first */
    /* a non-ready old replica is the first to go */
    find(&f, 1)->status = CTL_REPLICA_NOT_READY;
    find(&f, new_ids[1])->status = CTL_REPLICA_READY;
    tick(&s, &f, active, 2, 60);
    assert_int_equal(f.downs, 1);
    assert_null(find(&f, 1));
    assert_non_null(find(&f, 2));
    /* L = 3 >= T: every old one goes */
    find(&f, new_ids[2])->status = CTL_REPLICA_READY;
    tick(&s, &f, active, 2, 80);
    assert_int_equal(f.downs, 1);
    assert_int_equal(count(&f, -1, 1), 0);
    assert_int_equal(count(&f, -1, 2), 3);
    assert_int_equal(f.ups, 0);
    ctl_scaler_destroy(&s);
}

static void test_rolling_update_terminal_old_ignored(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 2;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    add(&f, 1, false, CTL_REPLICA_READY);
    add(&f, 1, false, CTL_REPLICA_FAILED); /* kept failed record */
    assert_int_equal(ctl_scaler_update_version(&s, 2, &sp, CTL_UPDATE_ROLLING, 0, NULL), 0);
    tick(&s, &f, NULL, 0, 20);
    assert_int_equal(f.downs, 0);
    assert_int_equal(f.ups, 2);
    ctl_scaler_destroy(&s);
}

static void test_blue_green(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    int active[1] = {1};

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 2;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    add(&f, 1, false, CTL_REPLICA_READY);
    add(&f, 1, false, CTL_REPLICA_READY);
    assert_int_equal(ctl_scaler_update_version(&s, 2, &sp, CTL_UPDATE_BLUE_GREEN, 0, NULL), 0);
    assert_int_equal(s.st.update_mode, CTL_UPDATE_BLUE_GREEN);
    tick(&s, &f, active, 1, 20);
    assert_int_equal(f.ups, 2);
    assert_int_equal(f.downs, 0);
    /* one green ready: LB still on blue (active = [1]), nothing removed */
    f.r[2].status = CTL_REPLICA_READY;
    tick(&s, &f, active, 1, 40);
    assert_int_equal(f.ups + f.downs, 0);
    /* both green ready -> active versions switch */
    f.r[3].status = CTL_REPLICA_READY;
    ctl_version_min_t mins[] = {{1, 2}, {2, 2}};
    int av[2];
    size_t nav = ctl_active_versions(f.r, f.n, CTL_UPDATE_BLUE_GREEN, mins, 2, av, 2);
    assert_int_equal(nav, 1);
    assert_int_equal(av[0], 2);
    tick(&s, &f, av, nav, 60);
    assert_int_equal(f.downs, 2);
    assert_int_equal(count(&f, -1, 1), 0);
    /* empty active list: no outdated scale-down at all */
    add(&f, 1, false, CTL_REPLICA_READY);
    tick(&s, &f, NULL, 0, 80);
    assert_int_equal(f.downs, 0);
    /* a replica already shutting down is not scaled down again */
    f.r[f.n - 1].status = CTL_REPLICA_SHUTTING_DOWN;
    tick(&s, &f, av, 1, 100);
    assert_int_equal(f.downs, 0);
    ctl_scaler_destroy(&s);
}

static void test_unrecoverable_freeze(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    int active[1] = {1};

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 2;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    add(&f, 1, false, CTL_REPLICA_READY);
    add(&f, 1, false, CTL_REPLICA_READY);
    tick(&s, &f, active, 1, 0);
    assert_false(s.last_frozen);
    assert_int_equal(ctl_scaler_update_version(&s, 2, &sp, CTL_UPDATE_ROLLING, 0, NULL), 0);
    tick(&s, &f, active, 1, 20);
    assert_int_equal(f.ups, 2);
    /* v2's app crashes before ever being ready: freeze, old replicas kept */
    f.r[2].status = CTL_REPLICA_FAILED;
    f.r[2].unrecoverable = true;
    tick(&s, &f, active, 1, 40);
    assert_true(s.last_frozen);
    assert_int_equal(f.ups + f.downs, 0);
    /* a fix (v3) unfreezes */
    assert_int_equal(ctl_scaler_update_version(&s, 3, &sp, CTL_UPDATE_ROLLING, 50, NULL), 0);
    tick(&s, &f, active, 1, 60);
    assert_false(s.last_frozen);
    assert_int_equal(f.ups, 2);
    ctl_scaler_destroy(&s);

    /* once a version was ready, later unrecoverable failures do not freeze */
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    add(&f, 1, false, CTL_REPLICA_READY);
    add(&f, 1, false, CTL_REPLICA_FAILED);
    f.r[1].unrecoverable = true;
    tick(&s, &f, active, 1, 0);
    assert_false(s.last_frozen);
    assert_int_equal(f.ups, 1);
    ctl_scaler_destroy(&s);

    /* the very first version freezes too (ever_ready starts at 0) */
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, false);
    add(&f, 1, false, CTL_REPLICA_FAILED_INITIAL_DELAY);
    f.r[0].unrecoverable = true;
    tick(&s, &f, NULL, 0, 0);
    assert_true(s.last_frozen);
    assert_int_equal(f.ups, 0);
    ctl_scaler_destroy(&s);
}

static void test_update_version(void **state)
{
    ctl_scaler_spec_t sp, sp2;
    ctl_scaler_t s;
    char *err = NULL;

    ctl_scaler_spec_default(&sp);
    sp.min_replicas = 1;
    sp.max_replicas = 10;
    sp.target_qps_per_replica = 1;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    add_qps(&s, 4, 100);
    ctl_scaler_hysteresis_tick(&s, 100);
    assert_int_equal(s.st.upscale_counter, 1);
    /* older or equal version: rejected, nothing changes */
    assert_int_equal(ctl_scaler_update_version(&s, 1, &sp, CTL_UPDATE_ROLLING, 100, &err),
                     CORE_EINVALREQ);
    assert_non_null(err);
    free(err);
    assert_int_equal(s.st.upscale_counter, 1);
    /* new version: counters reset, target computed at once (4 qps -> 4) */
    sp2 = sp;
    sp2.upscale_delay_s = 100;
    assert_int_equal(ctl_scaler_update_version(&s, 2, &sp2, CTL_UPDATE_ROLLING, 100, NULL), 0);
    assert_int_equal(s.st.latest_version, 2);
    assert_int_equal(s.st.upscale_counter, 0);
    assert_int_equal(s.st.target, 4);
    assert_int_equal(s.up_threshold, 5);
    /* kind change carries the window and ever_ready over */
    sp2.dynamic_ondemand_fallback = true;
    sp2.max_replicas = 2;
    assert_int_equal(ctl_scaler_update_version(&s, 3, &sp2, CTL_UPDATE_ROLLING, 100, NULL), 0);
    assert_int_equal(s.kind, CTL_SCALER_FALLBACK);
    assert_int_equal(s.st.target, 2); /* re-clipped into the new max */
    assert_true(s.win.total > 0);
    /* a bad spec leaves everything alone */
    sp2.min_replicas = -1;
    assert_int_equal(ctl_scaler_update_version(&s, 4, &sp2, CTL_UPDATE_ROLLING, 100, NULL),
                     CORE_ESPEC);
    assert_int_equal(s.st.latest_version, 3);
    ctl_scaler_destroy(&s);
}

static void test_json_roundtrip(void **state)
{
    ctl_scaler_spec_t sp;
    ctl_scaler_t s, t;
    ctl_placer_t p, q;
    ctl_location_t a, b;
    ctl_location_status_t st;
    cJSON *j;
    char *txt;

    seed_spec(&sp);
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    ctl_placer_init(&p);
    ctl_location_set(&a, "local", "r1", "z1");
    ctl_location_set(&b, "local", "r1", "z2");
    ctl_placer_add(&p, &a, 1);
    ctl_placer_add(&p, &b, 2);
    ctl_placer_add(&p, &(ctl_location_t){"local", "r2", "z3"}, 3);
    ctl_placer_set_preemptive(&p, &a);
    assert_int_equal(ctl_scaler_update_version(&s, 4, &sp, CTL_UPDATE_BLUE_GREEN, 0, NULL), 0);
    s.st.target = 3;
    s.st.upscale_counter = 7;
    s.st.latest_version_ever_ready = 3;
    add_qps(&s, 1, 1000);
    j = ctl_scaler_state_to_json(&s, &p, true);
    txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);

    /* "restart": fresh objects from the latest spec and the catalog, then restore */
    assert_int_equal(ctl_scaler_init(&t, &sp, 4, NULL), 0);
    ctl_placer_init(&q);
    ctl_placer_add(&q, &a, 1);
    ctl_placer_add(&q, &b, 2);
    ctl_placer_add(&q, &(ctl_location_t){"local", "r2", "z3"}, 3);
    j = cJSON_Parse(txt);
    free(txt);
    assert_int_equal(ctl_scaler_state_from_json(&t, &q, j, 1010), 0);
    cJSON_Delete(j);
    assert_int_equal(t.st.target, 3);
    assert_int_equal(t.st.upscale_counter, 7);
    assert_int_equal(t.st.latest_version, 4);
    assert_int_equal(t.st.latest_version_ever_ready, 3);
    assert_int_equal(t.st.update_mode, CTL_UPDATE_BLUE_GREEN);
    assert_int_equal(ctl_placer_status(&q, &a, &st), 0);
    assert_int_equal(st, CTL_LOC_PREEMPTED);
    /* 10 s later about 50 of the 60 requests are still in the window */
    double qps = ctl_scaler_qps(&t, 1010);
    assert_true(qps > 45.0 / 60 && qps < 55.0 / 60);

    /* malformed documents leave the state alone */
    const char *bad[] = {
        "[]",
        "{\"target\":1}",
        "{\"target\":1,\"upscale_counter\":0,\"downscale_counter\":0,\"latest_version\":2,"
        "\"latest_version_ever_ready\":1,\"update_mode\":\"canary\"}",
        "{\"target\":1.5,\"upscale_counter\":0,\"downscale_counter\":0,\"latest_version\":2,"
        "\"latest_version_ever_ready\":1,\"update_mode\":\"rolling\"}",
        "{\"target\":1,\"upscale_counter\":0,\"downscale_counter\":0,\"latest_version\":2,"
        "\"latest_version_ever_ready\":1,\"update_mode\":\"rolling\",\"requests\":[[1]]}",
        "{\"target\":1,\"upscale_counter\":0,\"downscale_counter\":0,\"latest_version\":2,"
        "\"latest_version_ever_ready\":1,\"update_mode\":\"rolling\",\"placer\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = cJSON_Parse(bad[i]);
        assert_non_null(j);
        assert_int_equal(ctl_scaler_state_from_json(&t, &q, j, 1010), CORE_EJSON);
        cJSON_Delete(j);
        assert_int_equal(t.st.latest_version, 4);
    }
    /* target out of the current spec's range is clipped */
    j = cJSON_Parse("{\"target\":9,\"upscale_counter\":0,\"downscale_counter\":0,"
                    "\"latest_version\":5,\"latest_version_ever_ready\":5,"
                    "\"update_mode\":\"rolling\"}");
    assert_int_equal(ctl_scaler_state_from_json(&t, NULL, j, 1010), 0);
    cJSON_Delete(j);
    assert_int_equal(t.st.target, 3);
    assert_int_equal(t.st.latest_version, 5);

    ctl_scaler_destroy(&s);
    ctl_scaler_destroy(&t);
    ctl_placer_destroy(&p);
    ctl_placer_destroy(&q);
}

static void test_long_trace_invariants(void **state)
{
    /* Two simulated days at 20 s ticks with a diurnal load and random
     * preemptions: the fleet always converges to the final target. */
    ctl_scaler_spec_t sp;
    ctl_scaler_t s;
    fleet_t f;
    uint64_t x = 12345;

    seed_spec(&sp);
    sp.max_replicas = 8;
    sp.upscale_delay_s = 60;
    sp.downscale_delay_s = 300;
    assert_int_equal(ctl_scaler_init(&s, &sp, 1, NULL), 0);
    fleet_init(&f, true);
    for (double now = 0; now < 2 * 86400; now += 20) {
        double phase = (double)((long)now % 86400) / 86400;
        double qps = phase < 0.5 ? 8 * phase * 2 : 8 * (1 - phase) * 2;

        ctl_scaler_add_request_count(&s, now, (uint32_t)(qps * 20), now);
        for (size_t i = 0; i < f.n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            if (f.r[i].status == CTL_REPLICA_PENDING)
                f.r[i].status = CTL_REPLICA_READY;
            else if (f.r[i].is_spot && (x >> 33) % 500 == 0)
                f.r[i].status = CTL_REPLICA_PREEMPTED;
        }
        for (size_t i = 0; i < f.n;)
            if (f.r[i].status == CTL_REPLICA_PREEMPTED && (x >> 40) % 2)
                remove_id(&f, f.r[i].id);
            else
                i++;
        tick(&s, &f, NULL, 0, now);
        assert_true(s.st.target >= 2 && s.st.target <= 8);
        assert_int_equal(count(&f, 1, -1), ctl_scaler_final_target(&s));
        assert_true(count(&f, 0, -1) <= s.st.target);
    }
    ctl_scaler_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_validation),
        cmocka_unit_test(test_defaults_and_thresholds),
        cmocka_unit_test(test_fixed_size_without_target_qps),
        cmocka_unit_test(test_seed_dynamic_fallback),
        cmocka_unit_test(test_base_ondemand_always_one),
        cmocka_unit_test(test_base_and_dynamic),
        cmocka_unit_test(test_base_exceeds_final_target_clamped),
        cmocka_unit_test(test_overprovision_not_backed_by_ondemand),
        cmocka_unit_test(test_hedge_covers_only_the_target),
        cmocka_unit_test(test_hedge_formula_exhaustive),
        cmocka_unit_test(test_qps_hysteresis),
        cmocka_unit_test(test_opposite_tick_resets),
        cmocka_unit_test(test_scale_from_zero),
        cmocka_unit_test(test_window_retrim_and_bound),
        cmocka_unit_test(test_window_high_rate_bounded),
        cmocka_unit_test(test_window_out_of_order),
        cmocka_unit_test(test_rolling_update),
        cmocka_unit_test(test_rolling_update_terminal_old_ignored),
        cmocka_unit_test(test_blue_green),
        cmocka_unit_test(test_unrecoverable_freeze),
        cmocka_unit_test(test_update_version),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_long_trace_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
