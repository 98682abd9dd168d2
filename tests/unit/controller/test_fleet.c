/*
 * The fleet (ctl_fleet.c) through a scripted cloud (tests/support/fake_cloud.c)
 * in virtual time: launch failover across zones, preemption while
 * provisioning, drains with requests in flight, a controller restart that
 * adopts live instances. The harness plays the controller's I/O side the way
 * ctl_serve_replica.c does, synchronously, and launches and terminates with
 * the controller's own provider steps (ctl_provision / ctl_unprovision).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/prov_registry.h"
#include "core/spec.h"
#include "ctl_fleet.h"
#include "ctl_serve_work.h"
#include "fake_cloud.h"

#define ZONES 3
static const char *const ZONE[ZONES] = {"z-a", "z-b", "z-c"}; /* cheapest spot first */

typedef struct harness {
    double now;
    fake_cloud_t *cloud;
    core_prov_registry_t *reg;
    ctl_serve_cfg_t cfg;
    ctl_fleet_t fleet;
    core_task_t *task;
    ctl_rng_t rng;
    int next_id;
    double next_decision;
    int in_flight_s; /* > 0: every READY replica serves requests lasting this long */
} harness_t;

static double clock_now(void *arg)
{
    return ((harness_t *)arg)->now;
}

static int alloc_id(void *arg, int *out)
{
    *out = ++((harness_t *)arg)->next_id;
    return 0;
}

static void owner_of(const ctl_fleet_replica_t *r, char *out, size_t n)
{
    snprintf(out, n, "serve:svc:%d", r->row.id);
}

static core_candidate_t candidate(const char *zone, int spot)
{
    core_candidate_t c;

    memset(&c, 0, sizeof(c));
    snprintf(c.cloud, sizeof(c.cloud), "aws");
    snprintf(c.region, sizeof(c.region), "r");
    snprintf(c.zone, sizeof(c.zone), "%s", zone);
    snprintf(c.instance_type, sizeof(c.instance_type), "p3.2xlarge");
    c.spot = spot;
    c.price = spot ? 1 : 3;
    return c;
}

/* The fleet with a service YAML; the placer (when the YAML wants one) knows the three zones. */
static void start(harness_t *h, const char *yaml, double launch_delay)
{
    fake_cloud_opts_t fo = {.clock = clock_now, .clock_arg = h, .launch_delay = launch_delay};
    core_prov_driver_t d;
    char *err = NULL;

    memset(h, 0, sizeof(*h));
    core_log_init("test_fleet", CORE_LOG_WARN);
    h->now = 1000;
    assert_int_equal(fake_cloud_new(&fo, &h->cloud), 0);
    d = fake_cloud_driver(h->cloud, NULL);
    assert_int_equal(core_prov_registry_new(&d, 1, &h->reg), 0);
    ctl_serve_cfg_default(&h->cfg);
    ctl_rng_seed(&h->rng, 1);
    if (core_task_parse(yaml, strlen(yaml), "svc.yaml", &h->task, &err) < 0 ||
        core_task_validate_service(h->task, &err) < 0)
        fail_msg("%s", err);
    ctl_fleet_init(&h->fleet, "svc", &h->cfg, sizeof(ctl_fleet_replica_t), alloc_id, h,
                   ctl_rng_uniform, &h->rng);
    assert_int_equal(ctl_fleet_start(&h->fleet, h->task, CTL_INITIAL_VERSION, &err), 0);
    if (ctl_fleet_wants_placer(h->task)) {
        core_candidate_t c[ZONES];

        for (int z = 0; z < ZONES; z++) {
            c[z] = candidate(ZONE[z], 1);
            c[z].price = 1 + z * 0.1;
        }
        ctl_fleet_use_placer(&h->fleet, h->task, c, ZONES);
    }
    h->next_decision = h->now;
}

static void stop(harness_t *h)
{
    ctl_fleet_destroy(&h->fleet);
    core_task_free(h->task);
    core_prov_registry_free(h->reg);
    fake_cloud_free(h->cloud);
}

/* Where the controller would launch <r> (ctl_serve_replica.c resolves this from the catalog). */
static size_t candidates(const ctl_fleet_replica_t *r, core_candidate_t *c)
{
    size_t n = 0;

    if (!r->row.is_spot)
        c[n++] = candidate("z-od", 0); /* on-demand: its own zone, never full */
    else if (r->row.has_location)
        c[n++] = candidate(r->row.loc.zone, 1);
    else
        for (int z = 0; z < ZONES; z++)
            c[n++] = candidate(ZONE[z], 1);
    return n;
}

static void launch(harness_t *h, ctl_fleet_replica_t *r)
{
    core_candidate_t c[ZONES];
    size_t n = candidates(r, c), chosen;
    core_instance_t in;
    char owner[64], *err = NULL;
    int adopted, rc;

    owner_of(r, owner, sizeof(owner));
    if (r->row.is_spot && !r->row.has_location) /* as ctl_serve_replica.c's queue_launch */
        ctl_fleet_order_candidates(&h->fleet, c, n, h->now);
    ctl_fleet_launch_started(&h->fleet, r);
    rc = ctl_provision(h->reg, owner, c, n, 60, NULL, &in, &adopted, &chosen, &err);
    free(err);
    if (rc < 0) {
        ctl_fleet_launch_done(&h->fleet, r, rc, h->now);
        return;
    }
    snprintf(r->row.instance_id, sizeof(r->row.instance_id), "%s", in.id);
    snprintf(r->row.cloud, sizeof(r->row.cloud), "%s", in.cloud);
    snprintf(r->row.region, sizeof(r->row.region), "%s", in.region);
    snprintf(r->row.zone, sizeof(r->row.zone), "%s", in.zone);
    if (in.state == CORE_INST_RUNNING)
        ctl_fleet_launch_done(&h->fleet, r, 0, h->now);
    /* else PENDING: provisioning; step() watches it */
}

/* A launch in flight: the instance came up, or was lost while PENDING. */
static void watch_provisioning(harness_t *h, ctl_fleet_replica_t *r)
{
    core_instance_t in;

    if (!r->busy || r->row.f.launch != CTL_PROC_RUNNING || !r->row.instance_id[0])
        return;
    if (fake_cloud_get(h->cloud, r->row.instance_id, &in) < 0 || in.state == CORE_INST_PREEMPTED ||
        in.state == CORE_INST_TERMINATED)
        ctl_fleet_launch_done(&h->fleet, r, CORE_ENOCAPACITY, h->now);
    else if (in.state == CORE_INST_RUNNING)
        ctl_fleet_launch_done(&h->fleet, r, 0, h->now);
}

static void terminate(harness_t *h, ctl_fleet_replica_t *r)
{
    char owner[64];
    bool gone;

    owner_of(r, owner, sizeof(owner));
    ctl_fleet_down_started(&h->fleet, r);
    gone = ctl_fleet_down_done(
        &h->fleet, r, ctl_unprovision(h->reg, owner, r->row.cloud, r->row.instance_id) == 0, false);
    if (gone)
        ctl_fleet_remove(&h->fleet, r);
}

static bool instance_running(harness_t *h, const ctl_fleet_replica_t *r)
{
    core_instance_t in;

    return r->row.instance_id[0] && fake_cloud_get(h->cloud, r->row.instance_id, &in) == 0 &&
           in.state == CORE_INST_RUNNING;
}

static void decide(harness_t *h)
{
    ctl_replica_info_t *infos;
    ctl_fleet_action_t *a = NULL;
    ctl_version_min_t mins = {CTL_INITIAL_VERSION, 1};
    int active[1];
    size_t n = ctl_fleet_infos(&h->fleet, &infos), na = 0;
    size_t n_active = ctl_active_versions(infos, n, CTL_UPDATE_ROLLING, &mins, 1, active, 1);

    free(infos);
    ctl_fleet_autoscale(&h->fleet, active, n_active, h->now, &a, &na);
    for (size_t i = 0; i < na; i++)
        if (a[i].kind == CTL_FLEET_LAUNCH)
            launch(h, a[i].r);
    free(a);
    h->next_decision = h->now + ctl_scaler_next_interval(&h->fleet.scaler);
}

/* One second of the controller: terminations, launches, the provider poll, probes, decisions. */
static void step(harness_t *h)
{
    ctl_fleet_replica_t *r, *next;

    h->now += 1;
    for (r = h->fleet.replicas; r; r = next) {
        next = r->next;
        watch_provisioning(h, r);
        if (ctl_fleet_down_due(r, h->now))
            terminate(h, r);
        else if (ctl_fleet_launch_due(r, h->now))
            launch(h, r);
    }
    for (r = h->fleet.replicas; r; r = r->next) {
        if (r->row.f.launch == CTL_PROC_SUCCEEDED && !instance_running(h, r))
            ctl_fleet_preempted(&h->fleet, r, h->now);
        ctl_fleet_probe(&h->fleet, r, 1200, instance_running(h, r), h->now);
        /* The LB routes only to READY replicas: requests start there, never on a draining one. */
        if (h->in_flight_s > 0 && ctl_replica_row_status(&r->row) == CTL_REPLICA_READY)
            fake_cloud_busy_until(h->cloud, r->row.instance_id, h->now + h->in_flight_s);
    }
    if (h->now >= h->next_decision)
        decide(h);
}

static void run(harness_t *h, int seconds)
{
    for (int i = 0; i < seconds; i++)
        step(h);
}

static int count(harness_t *h, ctl_replica_status_t st, int spot)
{
    int n = 0;

    for (ctl_fleet_replica_t *r = h->fleet.replicas; r; r = r->next)
        n += ctl_replica_row_status(&r->row) == st && (spot < 0 || r->row.is_spot == spot);
    return n;
}

static const char SPOT[] = "service:\n  readiness_probe: /\n  replicas: 2\n"
                           "resources:\n  ports: 8080\n  use_spot: true\n";
static const char SPOT_FALLBACK[] = "service:\n  readiness_probe: /\n  replica_policy:\n"
                                    "    min_replicas: 2\n    dynamic_ondemand_fallback: true\n"
                                    "    spot_placer: dynamic_fallback\n"
                                    "resources:\n  ports: 8080\n  use_spot: true\n";

/* Without a placer the provider's failover walks the zones cheapest first. */
static void test_launch_fails_over_across_zones(void **state)
{
    harness_t h;
    fake_cloud_stats_t st;

    (void)state;
    start(&h, SPOT, 0);
    fake_cloud_set_capacity(h.cloud, "z-a", 0, -1);
    fake_cloud_set_capacity(h.cloud, "z-b", 1, -1);
    run(&h, 5);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-a"), 0);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-b"), 1);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-c"), 1);
    fake_cloud_stats(h.cloud, &st);
    assert_int_equal(st.failed, 3); /* a, a, then b once full */
    stop(&h);
}

/* With the spot placer (dynamic fallback) a full zone is marked and the
 * replica relaunched elsewhere, an on-demand replica covering meanwhile. */
static void test_placer_moves_off_a_full_zone(void **state)
{
    harness_t h;
    ctl_location_t a;
    ctl_location_status_t ls;

    (void)state;
    start(&h, SPOT_FALLBACK, 0);
    fake_cloud_set_capacity(h.cloud, "z-a", 0, -1);
    run(&h, 2);
    /* The first decision placed spot replicas in z-a (cheapest) and z-b; z-a failed. */
    ctl_location_set(&a, "aws", "r", "z-a");
    assert_int_equal(ctl_placer_status(&h.fleet.placer, &a, &ls), 0);
    assert_int_equal(ls, CTL_LOC_PREEMPTED);
    assert_true(count(&h, CTL_REPLICA_READY, 0) >= 1); /* the fallback covers the gap */
    run(&h, 60);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-a"), 0);
    run(&h, h.cfg.drain_seconds + 60);
    /* Both spot replicas READY: the on-demand fallback drained and went away. */
    assert_int_equal(count(&h, CTL_REPLICA_READY, 0), 0);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, NULL), 2);
    stop(&h);
}

/* A spot instance lost while PENDING is a failed launch: retried until it runs. */
static void test_preemption_while_provisioning(void **state)
{
    harness_t h;
    ctl_fleet_replica_t *r;
    fake_cloud_stats_t st;
    char first[64];

    (void)state;
    start(&h, SPOT, 30);
    run(&h, 1);
    r = h.fleet.replicas;
    assert_non_null(r);
    assert_int_equal(ctl_replica_row_status(&r->row), CTL_REPLICA_PROVISIONING);
    snprintf(first, sizeof(first), "%s", r->row.instance_id);
    /* z-a's spot capacity vanishes while both replicas provision there. */
    fake_cloud_set_capacity(h.cloud, "z-a", 0, -1);
    run(&h, 1);
    fake_cloud_stats(h.cloud, &st);
    assert_int_equal(st.preemptions, 2);
    assert_int_equal(ctl_replica_row_status(&r->row), CTL_REPLICA_PROVISIONING);
    assert_true(r->next_launch_at > h.now); /* waiting out the launch backoff */
    run(&h, 600);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_string_not_equal(h.fleet.replicas->row.instance_id, first);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-a"), 0);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, NULL), 2); /* nothing leaked */
    stop(&h);
}

/* With a placer, the same loss fails the launch at once and the zone is avoided. */
static void test_preemption_while_provisioning_with_placer(void **state)
{
    harness_t h;
    int ids_before;

    (void)state;
    start(&h, SPOT_FALLBACK, 30);
    run(&h, 1);
    ids_before = h.next_id;
    fake_cloud_set_capacity(h.cloud, "z-a", 0, -1);
    run(&h, 2);
    /* The replica of z-a failed (FAILED_PROVISION, gone after its down) and is relaunched. */
    for (ctl_fleet_replica_t *r = h.fleet.replicas; r; r = r->next)
        assert_string_not_equal(r->row.loc.zone, "z-a");
    run(&h, 120);
    assert_true(h.next_id > ids_before);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-a"), 0);
    stop(&h);
}

static const char AUTOSCALED[] = "service:\n  readiness_probe: /\n  replica_policy:\n"
                                 "    min_replicas: 1\n    max_replicas: 3\n"
                                 "    target_qps_per_replica: 1\n"
                                 "    upscale_delay_seconds: 20\n    downscale_delay_seconds: 40\n"
                                 "resources:\n  ports: 8080\n";

/* One second of requests at the LB. */
static void feed(harness_t *h, uint32_t qps)
{
    ctl_scaler_add_request_count(&h->fleet.scaler, h->now, qps, h->now);
}

/* Scaled down: SHUTTING_DOWN at once (out of the LB's ready set), terminated
 * only after the drain, so that the requests it was serving finish. */
static void scale_down_with_requests(harness_t *h, double drain)
{
    h->cfg.drain_seconds = drain;
    h->in_flight_s = 60;
    for (int i = 0; i < 120; i++) {
        feed(h, 3);
        step(h);
    }
    assert_int_equal(count(h, CTL_REPLICA_READY, -1), 3);
    /* The load is gone: once the window empties and the downscale delay runs out, 1 replica. */
    for (int i = 0; i < 600 && count(h, CTL_REPLICA_READY, -1) > 1; i++)
        step(h);
    assert_int_equal(count(h, CTL_REPLICA_READY, -1), 1);
}

static void test_drain_with_requests_in_flight(void **state)
{
    harness_t h;
    fake_cloud_stats_t st;

    (void)state;
    start(&h, AUTOSCALED, 0);
    scale_down_with_requests(&h, 120);
    /* The last one scaled down is out of the ready set but its instance still serves. */
    assert_true(count(&h, CTL_REPLICA_SHUTTING_DOWN, -1) >= 1);
    assert_true(fake_cloud_live(h.cloud, NULL, NULL) > 1);
    run(&h, 200);
    assert_int_equal(count(&h, CTL_REPLICA_SHUTTING_DOWN, -1), 0);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, NULL), 1);
    fake_cloud_stats(h.cloud, &st);
    assert_int_equal(st.terminations, 2);
    assert_int_equal(st.cut, 0);
    stop(&h);

    /* The same without a drain cuts the requests in flight: what the drain is for. */
    start(&h, AUTOSCALED, 0);
    scale_down_with_requests(&h, 0);
    run(&h, 5);
    fake_cloud_stats(h.cloud, &st);
    assert_int_equal(st.terminations, 2);
    assert_int_equal(st.cut, 2);
    stop(&h);
}

static int count_routable(harness_t *h)
{
    int n = 0;

    for (ctl_fleet_replica_t *r = h->fleet.replicas; r; r = r->next)
        n += ctl_replica_row_status(&r->row) == CTL_REPLICA_READY &&
             ctl_fleet_routable(&h->fleet, r, h->now);
    return n;
}

static ctl_fleet_replica_t *first_ready(harness_t *h)
{
    for (ctl_fleet_replica_t *r = h->fleet.replicas; r; r = r->next)
        if (ctl_replica_row_status(&r->row) == CTL_REPLICA_READY)
            return r;
    fail_msg("no READY replica");
    return NULL;
}

/*
 * Without a placer a preempted replica's successor is tried in another zone
 * first (the seed: "SkyServe will try different regions and clouds"), though
 * the failover would otherwise take the cheapest one again; after 15
 * decision intervals the zone is the cheapest choice again. With room only in
 * the zone that preempted, it still gets the replica.
 */
static void test_successor_tries_another_zone_first(void **state)
{
    harness_t h;
    ctl_fleet_replica_t *r;
    core_candidate_t c[ZONES];
    char id[64];

    (void)state;
    start(&h, SPOT, 30);
    run(&h, 120);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-a"), 2); /* both in the cheapest */
    r = first_ready(&h);
    snprintf(id, sizeof(id), "%s", r->row.instance_id);
    assert_int_equal(fake_cloud_preempt(h.cloud, id), 0);
    run(&h, 120);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-a"), 1);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-b"), 1);
    for (int z = 0; z < ZONES; z++)
        c[z] = candidate(ZONE[z], 1);
    ctl_fleet_order_candidates(&h.fleet, c, ZONES, h.now);
    assert_string_equal(c[0].zone, "z-b");
    assert_string_equal(c[1].zone, "z-c");
    assert_string_equal(c[2].zone, "z-a");
    /* 15 decisions later, z-a is first again */
    for (int z = 0; z < ZONES; z++)
        c[z] = candidate(ZONE[z], 1);
    ctl_fleet_order_candidates(&h.fleet, c, ZONES, h.now + 15 * h.cfg.decision_interval);
    assert_string_equal(c[0].zone, "z-a");
    /* z-b and z-c lose their capacity (z-b's replica is preempted): only z-a, which
     * preempted a replica less than 15 decisions ago, has room; it gets the successor */
    fake_cloud_set_capacity(h.cloud, "z-b", 0, -1);
    fake_cloud_set_capacity(h.cloud, "z-c", 0, -1);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-b"), 0);
    run(&h, 300);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_int_equal(fake_cloud_live(h.cloud, NULL, "z-a"), 2);
    stop(&h);
}

/*
 * A notice 120 s ahead: the replacement is launched at once in another zone
 * and the doomed replica leaves the LB as soon as the replacement is READY,
 * well before its deadline; the LB has 2 replicas to route to all along.
 */
static void test_notice_replaces_before_the_deadline(void **state)
{
    harness_t h;
    ctl_fleet_replica_t *doomed;
    char zone[40], id[64];
    double deadline, drained_at = 0;
    int ids_before;

    (void)state;
    start(&h, SPOT_FALLBACK, 30);
    run(&h, 120);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    doomed = first_ready(&h);
    snprintf(zone, sizeof(zone), "%s", doomed->row.loc.zone);
    snprintf(id, sizeof(id), "%s", doomed->row.instance_id);
    deadline = h.now + 120;
    ids_before = h.next_id;
    assert_true(ctl_fleet_notice(&h.fleet, doomed, deadline, h.now));
    assert_false(ctl_fleet_notice(&h.fleet, doomed, deadline, h.now)); /* heard already */
    /* The other one alone does not meet the target: the doomed one still serves. */
    assert_true(ctl_fleet_routable(&h.fleet, doomed, h.now));
    h.next_decision = h.now; /* what the controller does on a notice */
    step(&h);
    assert_true(h.next_id > ids_before); /* replacement launched at the first step */
    for (ctl_fleet_replica_t *r = h.fleet.replicas; r; r = r->next)
        if (r->row.id > ids_before && r->row.is_spot)
            assert_string_not_equal(r->row.loc.zone, zone);
    while (h.now < deadline) {
        assert_true(count_routable(&h) >= 2);
        if (!drained_at && !ctl_fleet_routable(&h.fleet, doomed, h.now))
            drained_at = h.now;
        step(&h);
    }
    assert_true(drained_at > 0);
    assert_true(drained_at < deadline - 60);
    assert_int_equal(fake_cloud_preempt(h.cloud, id), 0);
    run(&h, 5);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    assert_true(count_routable(&h) >= 2);
    stop(&h);
}

/*
 * Both replicas get a notice too short for their replacements: they serve
 * until notice_drain_seconds before the deadline, then leave the LB (requests
 * shorter than that finish before the instances go); both replacements were
 * launched at once.
 */
static void test_notice_too_short_drains_before_the_deadline(void **state)
{
    harness_t h;
    double deadline;

    (void)state;
    start(&h, SPOT, 30);
    run(&h, 120);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 2);
    deadline = h.now + 20;
    for (ctl_fleet_replica_t *r = h.fleet.replicas; r; r = r->next)
        assert_true(ctl_fleet_notice(&h.fleet, r, deadline, h.now));
    h.next_decision = h.now;
    step(&h);
    assert_int_equal(count(&h, CTL_REPLICA_PROVISIONING, 1), 2);
    while (h.now < deadline) {
        int routable = count_routable(&h);

        if (h.now < deadline - h.cfg.notice_drain_seconds)
            assert_int_equal(routable, 2);
        else
            assert_int_equal(routable, 0);
        step(&h);
    }
    /* A replica not launched, or already going down, takes no notice. */
    for (ctl_fleet_replica_t *r = h.fleet.replicas; r; r = r->next)
        if (r->row.f.launch != CTL_PROC_SUCCEEDED)
            assert_false(ctl_fleet_notice(&h.fleet, r, deadline + 60, h.now));
    stop(&h);
}

/*
 * The controller dies after the provider launched replica 4's instance but
 * before it heard back (its row says launch RUNNING), and a dead leftover of
 * an earlier attempt lingers. The restarted controller, rebuilt from the rows,
 * adopts the live instance: no second launch, no replica lost, no leak.
 */
static void test_restart_adopts_live_instances(void **state)
{
    harness_t h;
    ctl_replica_row_t rows[8];
    size_t n = 0;
    ctl_fleet_replica_t *r4;
    core_candidate_t c = candidate("z-b", 1);
    core_instance_t in, dead;
    fake_cloud_stats_t before, after;
    char owner[64], *err = NULL;
    size_t chosen;
    int adopted;

    (void)state;
    start(&h,
          "service:\n  readiness_probe: /\n  replicas: 3\n"
          "resources:\n  ports: 8080\n  use_spot: true\n",
          0);
    run(&h, 5);
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 3);
    /* A fourth replica's launch, cut short by the crash. */
    ctl_replica_row_init(&rows[0], ++h.next_id, CTL_INITIAL_VERSION);
    rows[0].is_spot = 1;
    r4 = ctl_fleet_add(&h.fleet, &rows[0]);
    ctl_fleet_launch_started(&h.fleet, r4);
    owner_of(r4, owner, sizeof(owner));
    memset(&dead, 0, sizeof(dead));
    snprintf(dead.id, sizeof(dead.id), "old-attempt");
    snprintf(dead.owner, sizeof(dead.owner), "%s", owner);
    snprintf(dead.zone, sizeof(dead.zone), "z-a");
    dead.spot = 1;
    dead.state = CORE_INST_PREEMPTED;
    fake_cloud_plant(h.cloud, &dead);
    assert_int_equal(ctl_provision(h.reg, owner, &c, 1, 60, NULL, &in, &adopted, &chosen, &err), 0);
    assert_false(adopted);
    /* ... crash: only the rows survive. */
    for (ctl_fleet_replica_t *r = h.fleet.replicas; r; r = r->next)
        rows[n++] = r->row;
    ctl_fleet_destroy(&h.fleet);
    fake_cloud_stats(h.cloud, &before);

    ctl_fleet_init(&h.fleet, "svc", &h.cfg, sizeof(ctl_fleet_replica_t), alloc_id, &h,
                   ctl_rng_uniform, &h.rng);
    assert_int_equal(ctl_fleet_start(&h.fleet, h.task, CTL_INITIAL_VERSION, &err), 0);
    for (size_t i = 0; i < n; i++)
        ctl_fleet_recover(&h.fleet, ctl_fleet_add(&h.fleet, &rows[i]), h.now);
    h.next_decision = h.now + ctl_scaler_next_interval(&h.fleet.scaler);
    run(&h, 60);

    fake_cloud_stats(h.cloud, &after);
    assert_int_equal(after.launches, before.launches);    /* adopted, not launched again */
    assert_int_equal(count(&h, CTL_REPLICA_READY, 1), 3); /* the target; the extra drains */
    r4 = ctl_fleet_find(&h.fleet, h.next_id);
    assert_non_null(r4);
    assert_string_equal(r4->row.instance_id, in.id);
    assert_int_equal(fake_cloud_get(h.cloud, "old-attempt", &dead), 0);
    assert_int_equal(dead.state, CORE_INST_TERMINATED); /* the leftover was cleaned up */
    for (size_t i = 0; i < n; i++)                      /* every replica is still there */
        assert_non_null(ctl_fleet_find(&h.fleet, rows[i].id));
    stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_launch_fails_over_across_zones),
        cmocka_unit_test(test_placer_moves_off_a_full_zone),
        cmocka_unit_test(test_preemption_while_provisioning),
        cmocka_unit_test(test_preemption_while_provisioning_with_placer),
        cmocka_unit_test(test_drain_with_requests_in_flight),
        cmocka_unit_test(test_restart_adopts_live_instances),
        cmocka_unit_test(test_successor_tries_another_zone_first),
        cmocka_unit_test(test_notice_replaces_before_the_deadline),
        cmocka_unit_test(test_notice_too_short_drains_before_the_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
