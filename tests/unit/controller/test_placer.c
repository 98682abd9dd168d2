#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
