#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "core/err.h"
#include "ctl_placer.h"

static ctl_location_t L(const char *cloud, const char *region, const char *zone)
{
    ctl_location_t l;

    ctl_location_set(&l, cloud, region, zone);
    return l;
}

/* Three zones of one region plus a pricier region. */
static void setup4(ctl_placer_t *p)
{
    ctl_location_t a = L("local", "r1", "r1a"), b = L("local", "r1", "r1b"),
                   c = L("local", "r1", "r1c"), d = L("local", "r2", "r2a");

    ctl_placer_init(p);
    ctl_placer_add(p, &a, 0.30);
    ctl_placer_add(p, &b, 0.10);
    ctl_placer_add(p, &c, 0.10);
    ctl_placer_add(p, &d, 0.50);
}

static void test_location_equal(void **state)
{
    ctl_location_t a = L("aws", "us-east-1", "us-east-1a"), b = L("aws", "us-east-1", "");

    assert_true(ctl_location_equal(&a, &a));
    assert_false(ctl_location_equal(&a, &b)); /* zone None differs from a zone */
    b = L("gcp", "us-east-1", "us-east-1a");
    assert_false(ctl_location_equal(&a, &b));
}

static void test_cheapest_unused_with_tiebreak(void **state)
{
    ctl_placer_t p;
    ctl_location_t out;

    setup4(&p);
    assert_int_equal(ctl_placer_select(&p, NULL, 0, &out), 0);
    assert_string_equal(out.zone, "r1b"); /* cheapest; tie with r1c goes to the first added */
    ctl_placer_destroy(&p);
}

static void test_spreads_across_zones(void **state)
{
    ctl_placer_t p;
    ctl_location_t used[4], out;
    const char *want[] = {"r1b", "r1c", "r1a", "r2a"};

    setup4(&p);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ctl_placer_select(&p, used, (size_t)i, &out), 0);
        assert_string_equal(out.zone, want[i]);
        used[i] = out;
    }
    /* All in use: fall back to the cheapest active overall. */
    assert_int_equal(ctl_placer_select(&p, used, 4, &out), 0);
    assert_string_equal(out.zone, "r1b");
    ctl_placer_destroy(&p);
}

static void test_preempted_skipped_then_active_again(void **state)
{
    ctl_placer_t p;
    ctl_location_t out, b = L("local", "r1", "r1b");
    ctl_location_status_t st;

    setup4(&p);
    assert_int_equal(ctl_placer_set_preemptive(&p, &b), 0);
    assert_int_equal(ctl_placer_status(&p, &b, &st), 0);
    assert_int_equal(st, CTL_LOC_PREEMPTED);
    assert_int_equal(ctl_placer_num_active(&p), 3);
    assert_int_equal(ctl_placer_select(&p, NULL, 0, &out), 0);
    assert_string_equal(out.zone, "r1c");
    /* Even when every active one is in use, a preempted zone is not chosen. */
    ctl_location_t used[3] = {L("local", "r1", "r1a"), L("local", "r1", "r1c"),
                              L("local", "r2", "r2a")};
    assert_int_equal(ctl_placer_select(&p, used, 3, &out), 0);
    assert_string_equal(out.zone, "r1c");
    assert_int_equal(ctl_placer_set_active(&p, &b), 0);
    assert_int_equal(ctl_placer_select(&p, NULL, 0, &out), 0);
    assert_string_equal(out.zone, "r1b");
    ctl_placer_destroy(&p);
}

static void test_reset_when_fewer_than_two_active(void **state)
{
    ctl_placer_t p;
    ctl_location_t a = L("local", "r1", "r1a"), b = L("local", "r1", "r1b"),
                   c = L("local", "r1", "r1c");

    setup4(&p);
    ctl_placer_set_preemptive(&p, &a);
    ctl_placer_set_preemptive(&p, &b);
    assert_int_equal(ctl_placer_num_active(&p), 2);
    ctl_placer_set_preemptive(&p, &c); /* 1 active left -> everything ACTIVE again */
    assert_int_equal(ctl_placer_num_active(&p), 4);
    ctl_placer_destroy(&p);
}

static void test_unknown_location_and_empty(void **state)
{
    ctl_placer_t p;
    ctl_location_t x = L("nope", "r", "z"), out;

    ctl_placer_init(&p);
    assert_int_equal(ctl_placer_select(&p, NULL, 0, &out), CORE_ENOTFOUND);
    setup4(&p);
    assert_int_equal(ctl_placer_set_preemptive(&p, &x), CORE_ENOTFOUND);
    assert_int_equal(ctl_placer_set_active(&p, &x), CORE_ENOTFOUND);
    assert_int_equal(ctl_placer_num_active(&p), 4);
    ctl_placer_destroy(&p);
}

static void test_from_candidates(void **state)
{
    core_candidate_t c[4];
    ctl_placer_t p;
    ctl_location_t out;

    memset(c, 0, sizeof(c));
    for (int i = 0; i < 4; i++) {
        strcpy(c[i].cloud, "local");
        strcpy(c[i].region, "r1");
    }
    strcpy(c[0].zone, "z1"), c[0].spot = 1, c[0].price = 0.2;
    strcpy(c[1].zone, "z1"), c[1].spot = 1, c[1].price = 0.1;  /* cheaper type, same zone */
    strcpy(c[2].zone, "z2"), c[2].spot = 0, c[2].price = 0.01; /* on-demand: ignored */
    strcpy(c[3].zone, "z3"), c[3].spot = 1, c[3].price = 0.15;
    ctl_placer_init_from_candidates(&p, c, 4);
    assert_int_equal(p.n, 2);
    assert_float_equal(p.locs[0].cost, 0.1, 1e-12);
    assert_int_equal(ctl_placer_select(&p, NULL, 0, &out), 0);
    assert_string_equal(out.zone, "z1");
    ctl_placer_destroy(&p);
}

static void test_json_roundtrip(void **state)
{
    ctl_placer_t p, q;
    ctl_location_t b = L("local", "r1", "r1b");
    ctl_location_status_t st;
    cJSON *j;
    char *txt;

    setup4(&p);
    ctl_placer_set_preemptive(&p, &b);
    j = ctl_placer_to_json(&p);
    txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    j = cJSON_Parse(txt);
    free(txt);
    setup4(&q);
    assert_int_equal(ctl_placer_from_json(&q, j), 0);
    assert_int_equal(ctl_placer_status(&q, &b, &st), 0);
    assert_int_equal(st, CTL_LOC_PREEMPTED);
    assert_int_equal(ctl_placer_num_active(&q), 3);
    cJSON_Delete(j);

    /* Malformed: status unknown -> error, placer untouched. */
    j = cJSON_Parse("[{\"cloud\":\"local\",\"region\":\"r1\",\"zone\":\"r1a\",\"status\":\"X\"}]");
    assert_int_equal(ctl_placer_from_json(&q, j), CORE_EJSON);
    assert_int_equal(ctl_placer_num_active(&q), 3);
    cJSON_Delete(j);
    j = cJSON_Parse("{}");
    assert_int_equal(ctl_placer_from_json(&q, j), CORE_EJSON);
    cJSON_Delete(j);
    ctl_placer_destroy(&p);
    ctl_placer_destroy(&q);
}

/* ---- spread_backoff ---- */

#define TICK 20.0    /* one autoscaler decision */
#define B0   300.0   /* first backoff: 15 decisions */
#define BMAX 3600.0  /* cap: 180 decisions */

/* setup4 (r1a 0.30, r1b 0.10, r1c 0.10, r2a 0.50) as spread_backoff. */
static void setup4_sb(ctl_placer_t *p)
{
    setup4(p);
    ctl_placer_set_kind(p, CTL_PLACER_SPREAD_BACKOFF, TICK);
}

static const ctl_location_t *loc_named(const ctl_placer_t *p, const char *zone)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->locs[i].loc.zone, zone) == 0)
            return &p->locs[i].loc;
    fail_msg("no zone %s", zone);
    return NULL;
}

static const char *pick(const ctl_placer_t *p, const ctl_location_t *in_use, size_t n, double now)
{
    static ctl_location_t out;
    double retry = -1;
    int rc = ctl_placer_select_at(p, in_use, n, now, &out, &retry);

    if (rc == -EAGAIN)
        return "EAGAIN";
    assert_int_equal(rc, 0);
    return out.zone;
}

static void test_kind_names_and_defaults(void **state)
{
    ctl_placer_t p;

    assert_string_equal(ctl_placer_kind_name(CTL_PLACER_DYNAMIC_FALLBACK), "dynamic_fallback");
    assert_string_equal(ctl_placer_kind_name(CTL_PLACER_SPREAD_BACKOFF), "spread_backoff");
    ctl_placer_init(&p);
    assert_int_equal(p.kind, CTL_PLACER_DYNAMIC_FALLBACK);
    assert_float_equal(p.decision_interval_s, 20, 0);
    /* a non-positive or infinite interval keeps the current one */
    ctl_placer_set_kind(&p, CTL_PLACER_SPREAD_BACKOFF, 0);
    ctl_placer_set_kind(&p, CTL_PLACER_SPREAD_BACKOFF, -1);
    ctl_placer_set_kind(&p, CTL_PLACER_SPREAD_BACKOFF, INFINITY);
    assert_int_equal(p.kind, CTL_PLACER_SPREAD_BACKOFF);
    assert_float_equal(p.decision_interval_s, 20, 0);
    /* 15 decisions, doubling, capped at 180 decisions whatever the count */
    assert_float_equal(ctl_placer_backoff_s(&p, 1), 300, 0);
    assert_float_equal(ctl_placer_backoff_s(&p, 2), 600, 0);
    assert_float_equal(ctl_placer_backoff_s(&p, 4), 2400, 0);
    assert_float_equal(ctl_placer_backoff_s(&p, 5), 3600, 0);
    assert_float_equal(ctl_placer_backoff_s(&p, 1000000), 3600, 0);
    assert_float_equal(ctl_placer_backoff_s(&p, 0), 300, 0); /* never below the first */
    /* with more than 14 locations, one round over them: n + 1 decisions */
    for (int i = 0; i < 14; i++) {
        ctl_location_t l;
        char z[8];

        snprintf(z, sizeof(z), "z%d", i);
        ctl_location_set(&l, "c", "r", z);
        ctl_placer_add(&p, &l, 1);
    }
    assert_float_equal(ctl_placer_backoff_s(&p, 1), 300, 0);
    ctl_placer_add(&p, &(ctl_location_t){"c", "r", "z14"}, 1);
    ctl_placer_add(&p, &(ctl_location_t){"c", "r", "z15"}, 1);
    assert_float_equal(ctl_placer_backoff_s(&p, 1), 17 * 20, 0);
    assert_float_equal(ctl_placer_backoff_s(&p, 2), 34 * 20, 0);
    /* scaled with the decision interval (a live replay's 1 s) */
    ctl_placer_set_kind(&p, CTL_PLACER_SPREAD_BACKOFF, 1);
    assert_float_equal(ctl_placer_backoff_s(&p, 1), 17, 0);
    assert_float_equal(ctl_placer_backoff_s(&p, 100), 180, 0);
    ctl_placer_destroy(&p);
}

static void test_sb_cheapest_first_and_empty(void **state)
{
    ctl_placer_t p;
    ctl_location_t out;
    double retry = -1;

    ctl_placer_init(&p);
    ctl_placer_set_kind(&p, CTL_PLACER_SPREAD_BACKOFF, TICK);
    assert_int_equal(ctl_placer_select_at(&p, NULL, 0, 100, &out, &retry), CORE_ENOTFOUND);
    ctl_placer_destroy(&p);
    setup4_sb(&p);
    /* cheapest; the tie r1b/r1c goes to the first added */
    assert_string_equal(pick(&p, NULL, 0, 0), "r1b");
    ctl_placer_destroy(&p);
}

/* Spreads over every zone before any zone gets a second replica, then evens out. */
static void test_sb_spreads_evenly(void **state)
{
    ctl_placer_t p;
    ctl_location_t used[12];
    const char *want[] = {"r1b", "r1c", "r1a", "r2a", "r1b", "r1c", "r1a", "r2a", "r1b"};

    setup4_sb(&p);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *z = pick(&p, used, i, 0);

        assert_string_equal(z, want[i]);
        used[i] = *loc_named(&p, z);
    }
    ctl_placer_destroy(&p);
}

/* A failed zone sits out min(B0 * 2^(k-1), BMAX) after its k-th failure, counted from it. */
static void test_sb_backoff_is_exponential_and_capped(void **state)
{
    ctl_placer_t p;
    const ctl_location_t *b;
    double now = 1000, expect[] = {300, 600, 1200, 2400, 3600, 3600, 3600};

    ctl_location_t others[3];

    setup4_sb(&p);
    b = loc_named(&p, "r1b");
    /* one replica in each other zone: r1b, holding none, is chosen whenever it is free */
    others[0] = *loc_named(&p, "r1a");
    others[1] = *loc_named(&p, "r1c");
    others[2] = *loc_named(&p, "r2a");
    for (size_t k = 0; k < sizeof(expect) / sizeof(expect[0]); k++) {
        ctl_location_status_t st;

        assert_int_equal(ctl_placer_set_preemptive_at(&p, b, now), 0);
        assert_int_equal(ctl_placer_status(&p, b, &st), 0);
        assert_int_equal(st, CTL_LOC_PREEMPTED);
        assert_int_equal(p.locs[1].failures, (int)k + 1);
        assert_float_equal(p.locs[1].retry_at, now + expect[k], 1e-9);
        /* skipped until the backoff ends (a second replica elsewhere instead), then chosen */
        assert_string_equal(pick(&p, others, 3, now), "r1c");
        assert_string_equal(pick(&p, others, 3, now + expect[k] - 0.001), "r1c");
        assert_string_equal(pick(&p, others, 3, now + expect[k]), "r1b");
        now += expect[k] + 5;
    }
    /* many more failures: still the cap, no overflow */
    for (int k = 0; k < 5000; k++)
        ctl_placer_set_preemptive_at(&p, b, now);
    assert_float_equal(p.locs[1].retry_at, now + BMAX, 1e-9);
    ctl_placer_destroy(&p);
}

/* A success (evidence of capacity) clears the backoff and the failure count. */
static void test_sb_success_clears_backoff(void **state)
{
    ctl_placer_t p;
    const ctl_location_t *b;

    setup4_sb(&p);
    b = loc_named(&p, "r1b");
    for (int k = 0; k < 4; k++)
        ctl_placer_set_preemptive_at(&p, b, 0);
    assert_string_equal(pick(&p, NULL, 0, 100), "r1c");
    assert_int_equal(ctl_placer_set_active_at(&p, b, 100), 0);
    assert_int_equal(p.locs[1].failures, 0);
    assert_string_equal(pick(&p, NULL, 0, 100), "r1b");
    /* the next failure starts over at the first backoff */
    ctl_placer_set_preemptive_at(&p, b, 200);
    assert_float_equal(p.locs[1].retry_at, 200 + B0, 1e-9);
    /* a success learnt now of a launch that began before that failure is older
     * evidence: the failure stands (the launch took the last slot) */
    assert_int_equal(ctl_placer_set_active_at(&p, b, 150), 0);
    assert_int_equal(p.locs[1].failures, 1);
    assert_float_equal(p.locs[1].retry_at, 200 + B0, 1e-9);
    assert_string_equal(pick(&p, NULL, 0, 210), "r1c");
    /* one that began at or after it clears it */
    assert_int_equal(ctl_placer_set_active_at(&p, b, 200), 0);
    assert_int_equal(p.locs[1].failures, 0);
    assert_string_equal(pick(&p, NULL, 0, 210), "r1b");
    /* the reference's placer takes every success as it comes */
    ctl_placer_t ref;

    setup4(&ref);
    ctl_placer_set_preemptive_at(&ref, loc_named(&ref, "r1b"), 200);
    ctl_placer_set_active_at(&ref, loc_named(&ref, "r1b"), 100);
    assert_string_equal(pick(&ref, NULL, 0, 210), "r1b");
    ctl_placer_destroy(&ref);
    ctl_placer_destroy(&p);
}

/*
 * Every zone, the dearest included, is tried before a failed one is tried
 * again; with all of them failed, nothing is placed until the first backoff
 * ends (no reset, no cycling), and -EAGAIN says when.
 */
static void test_sb_tries_every_zone_then_waits(void **state)
{
    ctl_placer_t p;
    ctl_location_t out;
    const char *want[] = {"r1b", "r1c", "r1a", "r2a"};
    double now = 0, retry = -1;

    setup4_sb(&p);
    for (size_t i = 0; i < 4; i++, now += TICK) {
        const char *z = pick(&p, NULL, 0, now);

        assert_string_equal(z, want[i]);
        ctl_placer_set_preemptive_at(&p, loc_named(&p, z), now);
    }
    /* all four back off; r1b (failed at 0) is free at B0... */
    assert_int_equal(ctl_placer_select_at(&p, NULL, 0, B0 - 1, &out, &retry), -EAGAIN);
    assert_float_equal(retry, B0, 1e-9);
    assert_int_equal(ctl_placer_select_at(&p, NULL, 0, B0 - 1, &out, NULL), -EAGAIN);
    /* ...and is the only candidate from B0 to B0 + 20 */
    assert_string_equal(pick(&p, NULL, 0, B0), "r1b");
    assert_string_equal(pick(&p, NULL, 0, B0 + TICK - 1), "r1b");
    ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1b"), B0); /* second failure: 2 * B0 */
    assert_int_equal(ctl_placer_select_at(&p, NULL, 0, B0 + 1, &out, &retry), -EAGAIN);
    assert_float_equal(retry, TICK + B0, 1e-9); /* r1c, failed at 20 */
    /* r1c (1 failure) goes before r1b (2) although both are free and r1b is first */
    assert_string_equal(pick(&p, NULL, 0, 4 * B0), "r1c");
    /* the reference's placer, by contrast, resets and starts over at the cheapest */
    ctl_placer_t ref;

    setup4(&ref);
    for (size_t i = 0; i < 3; i++)
        ctl_placer_set_preemptive(&ref, loc_named(&ref, want[i]));
    assert_int_equal(ctl_placer_num_active(&ref), 4);
    assert_string_equal(pick(&ref, NULL, 0, 0), "r1b");
    ctl_placer_destroy(&ref);
    ctl_placer_destroy(&p);
}

/* When only the zones in use have room, it stacks there (fewest replicas first). */
static void test_sb_stacks_when_only_used_zones_have_room(void **state)
{
    ctl_placer_t p;
    ctl_location_t used[3];

    setup4_sb(&p);
    used[0] = *loc_named(&p, "r1a");
    used[1] = *loc_named(&p, "r1a");
    used[2] = *loc_named(&p, "r2a");
    ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1b"), 0);
    ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1c"), 0);
    /* r1a holds 2, r2a 1: the dearer r2a, which holds fewer */
    assert_string_equal(pick(&p, used, 3, 10), "r2a");
    /* r2a backs off too: r1a gets a third rather than the target going unmet */
    ctl_placer_set_preemptive_at(&p, loc_named(&p, "r2a"), 10);
    assert_string_equal(pick(&p, used, 3, 20), "r1a");
    /* an empty zone whose backoff ended wins over stacking again */
    assert_string_equal(pick(&p, used, 3, B0), "r1b");
    ctl_placer_destroy(&p);
}

/* A preemption backs the zone off like a failed launch; the replica's successor goes elsewhere. */
static void test_sb_preemption_backs_off(void **state)
{
    ctl_placer_t p;
    ctl_location_t used[1];

    setup4_sb(&p);
    used[0] = *loc_named(&p, "r1c");
    assert_string_equal(pick(&p, used, 1, 0), "r1b");
    ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1b"), 0); /* our replica in r1b is lost */
    assert_string_equal(pick(&p, used, 1, 1), "r1a");
    assert_int_equal(ctl_placer_set_preemptive_at(&p, &(ctl_location_t){"x", "y", "z"}, 0),
                     CORE_ENOTFOUND);
    assert_int_equal(ctl_placer_set_active_at(&p, &(ctl_location_t){"x", "y", "z"}, 0),
                     CORE_ENOTFOUND);
    ctl_placer_destroy(&p);
}

/*
 * A small cloud: zones with spot capacity, the placer asked once per
 * decision (TICK) for each missing replica, launches resolved at once.
 */
typedef struct cloud {
    int cap[4];
    int held[4];
    ctl_location_t used[16];
    size_t n_used;
    long failed;
} cloud_t;

static int zone_index(const ctl_placer_t *p, const ctl_location_t *l)
{
    for (size_t i = 0; i < p->n; i++)
        if (ctl_location_equal(&p->locs[i].loc, l))
            return (int)i;
    return -1;
}

/* One decision at <now>: launch until <want> replicas run or the placer says wait. */
static void decide(ctl_placer_t *p, cloud_t *c, size_t want, double now)
{
    while (c->n_used < want) {
        ctl_location_t out;
        int z;

        if (ctl_placer_select_at(p, c->used, c->n_used, now, &out, NULL) != 0)
            return;
        z = zone_index(p, &out);
        if (c->held[z] < c->cap[z]) {
            c->held[z]++;
            c->used[c->n_used++] = out;
            ctl_placer_set_active_at(p, &out, now);
        } else {
            c->failed++;
            ctl_placer_set_preemptive_at(p, &out, now);
            return; /* the autoscaler asks again at its next decision */
        }
    }
}

/* The reference's lone replica never reaches the dearest zone; ours does on its 4th try. */
static void test_sb_lone_replica_reaches_the_dearest_zone(void **state)
{
    ctl_placer_t p, ref;
    cloud_t c = {.cap = {0, 0, 0, 1}}; /* only r2a, the dearest, has spot */
    double now = 0;

    setup4_sb(&p);
    for (int d = 0; d < 4; d++, now += TICK)
        decide(&p, &c, 1, now);
    assert_int_equal(c.n_used, 1);
    assert_string_equal(c.used[0].zone, "r2a");
    assert_int_equal(c.failed, 3);
    /* placed: no launch, hence no failure, for the rest of the day */
    for (; now < 86400; now += TICK)
        decide(&p, &c, 1, now);
    assert_int_equal(c.failed, 3);
    ctl_placer_destroy(&p);

    /* the reference's: 3 zones of 4 is enough to make it reset before r2a */
    cloud_t rc = {.cap = {0, 0, 0, 1}};
    setup4(&ref);
    ctl_placer_set_preemptive(&ref, loc_named(&ref, "r1a")); /* 3 active */
    for (now = 0; now < 3600; now += TICK)
        decide(&ref, &rc, 1, now);
    assert_int_equal(rc.n_used, 0);
    assert_true(rc.failed >= 3600 / TICK - 1);
    ctl_placer_destroy(&ref);
}

/*
 * Only r1a has room (for 3). Three replicas wanted: the empty zones are each
 * tried once, then the replicas stack in r1a; an empty zone is retried only
 * when its backoff has ended and a replica is missing. Over a day with one
 * r1a replica preempted every hour the failed launches stay within the
 * backoff schedule, where the reference's placer fails once per decision.
 */
static void test_sb_no_launch_storm(void **state)
{
    ctl_placer_t p;
    cloud_t c = {.cap = {3, 0, 0, 0}};
    double now = 0;

    setup4_sb(&p);
    for (; now < 120; now += TICK)
        decide(&p, &c, 3, now);
    assert_int_equal(c.n_used, 3);
    assert_int_equal(c.held[0], 3);
    assert_int_equal(c.failed, 3); /* r1b, r1c, r2a once each */
    for (int hour = 1; hour <= 24; hour++) {
        /* one of r1a's replicas is preempted and the zone's capacity stays 3 */
        c.held[0]--;
        c.n_used--;
        ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1a"), now);
        for (double end = now + 3600; now < end; now += TICK)
            decide(&p, &c, 3, now);
        assert_int_equal(c.n_used, 3);
    }
    /* each preemption costs at most the 3 empty zones once (their backoff has long
     * ended), r1a is back after its own backoff: <= 3 failed launches per preemption */
    assert_true(c.failed <= 3 + 24 * 3);
    ctl_placer_destroy(&p);

    /* the reference, same world and period: one failure per decision while a replica is
     * missing, which is always (it never stacks a third replica in r1a next to two) */
    ctl_placer_t ref;
    cloud_t rc = {.cap = {3, 0, 0, 0}};

    setup4(&ref);
    for (now = 0; now < 3600; now += TICK)
        decide(&ref, &rc, 3, now);
    assert_true(rc.failed > 100);
    ctl_placer_destroy(&ref);
}

/*
 * Random walk over failures, successes and replica sets: every choice is a
 * location not backing off with the fewest replicas among those not backing
 * off (so never a second replica in a zone while a zone that may have room
 * holds none), then the fewest failures, then the cheapest; -EAGAIN only when
 * all back off, with the first time one is free.
 */
static void test_sb_invariants_random_walk(void **state)
{
    ctl_placer_t p;
    ctl_location_t used[8];
    size_t n_used = 0;
    uint64_t x = 88172645463325252ull;
    double now = 0;

    setup4_sb(&p);
    for (int step = 0; step < 20000; step++) {
        ctl_location_t out;
        double retry = -1;
        int rc, r;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        r = (int)(x % 100);
        now += (double)(x % 97);
        if (r < 30) {
            ctl_placer_set_preemptive_at(&p, &p.locs[x % 4].loc, now);
        } else if (r < 40) {
            ctl_placer_set_active_at(&p, &p.locs[(x >> 8) % 4].loc, now);
        } else if (r < 55 && n_used > 0) {
            size_t gone = (x >> 8) % n_used;

            n_used--;
            used[gone] = used[n_used];
        }
        rc = ctl_placer_select_at(&p, used, n_used, now, &out, &retry);
        size_t cnt[4] = {0}, best = SIZE_MAX;
        double first = INFINITY;
        int free_zones = 0;

        for (size_t i = 0; i < n_used; i++)
            cnt[zone_index(&p, &used[i])]++;
        for (size_t i = 0; i < 4; i++) {
            if (p.locs[i].retry_at > now) {
                first = fmin(first, p.locs[i].retry_at);
                continue;
            }
            free_zones++;
            if (cnt[i] < best)
                best = cnt[i];
        }
        if (free_zones == 0) {
            assert_int_equal(rc, -EAGAIN);
            assert_float_equal(retry, first, 0);
            continue;
        }
        assert_int_equal(rc, 0);
        int z = zone_index(&p, &out);

        assert_true(p.locs[z].retry_at <= now);
        assert_int_equal(cnt[z], best);
        for (size_t i = 0; i < 4; i++) {
            if (p.locs[i].retry_at > now || cnt[i] != best)
                continue;
            assert_true(p.locs[z].failures <= p.locs[i].failures);
            if (p.locs[z].failures == p.locs[i].failures)
                assert_true(p.locs[z].cost <= p.locs[i].cost);
        }
        if (n_used < 8 && r >= 55)
            used[n_used++] = out;
    }
    ctl_placer_destroy(&p);
}

static void test_sb_json_roundtrip(void **state)
{
    ctl_placer_t p, q;
    cJSON *j;
    char *txt;

    setup4_sb(&p);
    for (int k = 0; k < 3; k++)
        ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1a"), 5000);
    ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1b"), 5000);
    ctl_placer_set_preemptive_at(&p, loc_named(&p, "r1c"), 5000);
    j = ctl_placer_to_json(&p);
    txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    j = cJSON_Parse(txt);
    free(txt);
    setup4_sb(&q);
    assert_int_equal(ctl_placer_from_json(&q, j), 0);
    cJSON_Delete(j);
    assert_int_equal(q.locs[0].failures, 3);
    assert_float_equal(q.locs[0].failed_at, 5000, 0);
    assert_float_equal(q.locs[0].retry_at, 5000 + 4 * B0, 1e-9);
    /* one ACTIVE location left: no reset for spread_backoff */
    assert_int_equal(ctl_placer_num_active(&q), 1);
    assert_string_equal(pick(&q, NULL, 0, 5001), "r2a");

    /* a document from before spread_backoff: no failures/retry_at, nothing backs off */
    j = cJSON_Parse("[{\"cloud\":\"local\",\"region\":\"r1\",\"zone\":\"r1b\",\"cost\":0.1,"
                    "\"status\":\"PREEMPTED\"}]");
    assert_int_equal(ctl_placer_from_json(&q, j), 0);
    cJSON_Delete(j);
    assert_int_equal(q.locs[1].failures, 0);
    assert_string_equal(pick(&q, NULL, 0, 5001), "r1b");

    /* malformed: negative or non-numeric failures, non-numeric retry_at; q unchanged */
    static const char *bad[] = {
        "[{\"cloud\":\"local\",\"region\":\"r1\",\"zone\":\"r1b\",\"status\":\"ACTIVE\","
        "\"failures\":-1}]",
        "[{\"cloud\":\"local\",\"region\":\"r1\",\"zone\":\"r1b\",\"status\":\"ACTIVE\","
        "\"failures\":\"3\"}]",
        "[{\"cloud\":\"local\",\"region\":\"r1\",\"zone\":\"r1b\",\"status\":\"ACTIVE\","
        "\"failures\":1e9}]",
        "[{\"cloud\":\"local\",\"region\":\"r1\",\"zone\":\"r1b\",\"status\":\"ACTIVE\","
        "\"retry_at\":\"soon\"}]",
        "[{\"cloud\":\"local\",\"region\":\"r1\",\"zone\":\"r1b\",\"status\":\"ACTIVE\","
        "\"failed_at\":null}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = cJSON_Parse(bad[i]);
        assert_non_null(j);
        assert_int_equal(ctl_placer_from_json(&q, j), CORE_EJSON);
        cJSON_Delete(j);
    }
    assert_int_equal(q.locs[0].failures, 3);
    ctl_placer_destroy(&p);
    ctl_placer_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_location_equal),
        cmocka_unit_test(test_cheapest_unused_with_tiebreak),
        cmocka_unit_test(test_spreads_across_zones),
        cmocka_unit_test(test_preempted_skipped_then_active_again),
        cmocka_unit_test(test_reset_when_fewer_than_two_active),
        cmocka_unit_test(test_unknown_location_and_empty),
        cmocka_unit_test(test_from_candidates),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_kind_names_and_defaults),
        cmocka_unit_test(test_sb_cheapest_first_and_empty),
        cmocka_unit_test(test_sb_spreads_evenly),
        cmocka_unit_test(test_sb_backoff_is_exponential_and_capped),
        cmocka_unit_test(test_sb_success_clears_backoff),
        cmocka_unit_test(test_sb_tries_every_zone_then_waits),
        cmocka_unit_test(test_sb_stacks_when_only_used_zones_have_room),
        cmocka_unit_test(test_sb_preemption_backs_off),
        cmocka_unit_test(test_sb_lone_replica_reaches_the_dearest_zone),
        cmocka_unit_test(test_sb_no_launch_storm),
        cmocka_unit_test(test_sb_invariants_random_walk),
        cmocka_unit_test(test_sb_json_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
