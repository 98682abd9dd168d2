#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/prov_registry.h"
#include "fake_cloud.h"

/* Two clouds behind two providers: "sim" (the default) and "ssh" (a pool). */
typedef struct world {
    fake_cloud_t *sim, *pool;
    core_prov_registry_t *reg;
    int opens;
} world_t;

static const char *const ssh_clouds[] = {"ssh", NULL};

static int counting_open(void *arg, core_prov_t **out, char **err)
{
    world_t *w = arg;

    (void)err;
    w->opens++;
    *out = fake_cloud_prov(w->pool);
    return 0;
}

static void world_init(world_t *w)
{
    core_prov_driver_t d[2];

    memset(w, 0, sizeof(*w));
    assert_int_equal(fake_cloud_new(NULL, &w->sim), 0);
    assert_int_equal(fake_cloud_new(NULL, &w->pool), 0);
    d[0] = fake_cloud_driver(w->sim, NULL);
    d[1] =
        (core_prov_driver_t){.name = "pool", .clouds = ssh_clouds, .open = counting_open, .arg = w};
    assert_int_equal(core_prov_registry_new(d, 2, &w->reg), 0);
}

static void world_free(world_t *w)
{
    core_prov_registry_free(w->reg);
    fake_cloud_free(w->sim);
    fake_cloud_free(w->pool);
}

static core_candidate_t cand(const char *cloud, const char *zone, int spot)
{
    core_candidate_t c;

    memset(&c, 0, sizeof(c));
    snprintf(c.cloud, sizeof(c.cloud), "%s", cloud);
    snprintf(c.region, sizeof(c.region), "%s", zone);
    snprintf(c.zone, sizeof(c.zone), "%s", zone);
    snprintf(c.instance_type, sizeof(c.instance_type), "t");
    c.spot = spot;
    return c;
}

static void test_routes_by_cloud_default_for_the_rest(void **state)
{
    world_t w;
    core_prov_t *a, *b, *c;

    (void)state;
    world_init(&w);
    assert_string_equal(core_prov_registry_driver(w.reg, "aws")->name, "fake");
    assert_string_equal(core_prov_registry_driver(w.reg, NULL)->name, "fake");
    assert_string_equal(core_prov_registry_driver(w.reg, "ssh")->name, "pool");
    assert_int_equal(w.opens, 0); /* nothing opened before use */
    assert_int_equal(core_prov_registry_get(w.reg, "ssh", &a, NULL), 0);
    assert_int_equal(core_prov_registry_get(w.reg, "ssh", &b, NULL), 0);
    assert_ptr_equal(a, b); /* opened once, shared */
    assert_int_equal(w.opens, 1);
    assert_int_equal(core_prov_registry_get(w.reg, "gcp", &c, NULL), 0);
    assert_ptr_not_equal(a, c);
    world_free(&w);
}

static void test_failover_spans_providers_in_candidate_order(void **state)
{
    world_t w;
    core_candidate_t c[3] = {cand("aws", "a", 1), cand("aws", "b", 1), cand("ssh", "pool1", 0)};
    core_instance_t in;
    size_t chosen = 9;
    char *err = NULL;

    (void)state;
    world_init(&w);
    fake_cloud_set_capacity(w.sim, "a", 0, -1);
    fake_cloud_set_capacity(w.sim, "b", 0, -1);
    /* Spot on the simulated cloud is full: the on-demand fallback lands on the pool. */
    assert_int_equal(core_prov_registry_launch(w.reg, c, 3, NULL, "o", &in, &chosen, &err), 0);
    assert_int_equal(chosen, 2);
    assert_string_equal(in.cloud, "ssh");
    assert_int_equal(fake_cloud_live(w.pool, "o", NULL), 1);
    assert_int_equal(fake_cloud_live(w.sim, NULL, NULL), 0);
    assert_null(err);
    /* A hard error stops the failover, as core_prov_launch_failover does. */
    fake_cloud_fail_next(w.sim, "a", 1, CORE_EINVALREQ);
    assert_int_equal(core_prov_registry_launch(w.reg, c, 3, NULL, "o", &in, &chosen, &err),
                     CORE_EINVALREQ);
    assert_non_null(err);
    free(err);
    world_free(&w);
}

static void test_list_covers_every_provider(void **state)
{
    world_t w;
    core_candidate_t a = cand("aws", "a", 1), p = cand("ssh", "pool1", 0);
    core_instance_t in, *all = NULL;
    size_t n = 0;

    (void)state;
    world_init(&w);
    assert_int_equal(core_prov_registry_launch(w.reg, &a, 1, NULL, "x", &in, NULL, NULL), 0);
    assert_int_equal(core_prov_registry_launch(w.reg, &p, 1, NULL, "x", &in, NULL, NULL), 0);
    assert_int_equal(core_prov_registry_list(w.reg, &all, &n), 0);
    assert_int_equal(n, 2);
    free(all);
    /* describe/terminate go to the instance's cloud's provider */
    assert_int_equal(core_prov_registry_describe(w.reg, "ssh", in.id, &in), 0);
    assert_int_equal(core_prov_registry_terminate(w.reg, "ssh", in.id), 0);
    assert_int_equal(fake_cloud_live(w.pool, NULL, NULL), 0);
    assert_int_equal(fake_cloud_live(w.sim, NULL, NULL), 1);
    world_free(&w);
}

static int failing_open(void *arg, core_prov_t **out, char **err)
{
    int *calls = arg;

    if ((*calls)++ == 0) {
        if (err)
            *err = strdup("daemon down");
        return -ECONNREFUSED;
    }
    *out = NULL;
    return -ENOENT;
}

static void test_failed_open_is_retried_and_bad_tables_refused(void **state)
{
    int calls = 0;
    core_prov_driver_t d = {.name = "flaky", .open = failing_open, .arg = &calls};
    core_prov_driver_t two[2] = {d, d};
    const char *const dup[] = {"x", NULL};
    core_prov_driver_t clash[2] = {{.name = "a", .clouds = dup, .open = failing_open},
                                   {.name = "b", .clouds = dup, .open = failing_open}};
    core_prov_registry_t *r = NULL;
    core_prov_t *p;
    char *err = NULL;

    (void)state;
    assert_int_equal(core_prov_registry_new(&d, 1, &r), 0);
    assert_int_equal(core_prov_registry_get(r, NULL, &p, &err), -ECONNREFUSED);
    assert_string_equal(err, "daemon down");
    free(err);
    assert_int_equal(core_prov_registry_get(r, NULL, &p, NULL), -ENOENT);
    assert_int_equal(calls, 2);
    core_prov_registry_free(r);
    assert_int_equal(core_prov_registry_new(two, 2, &r), -EINVAL);   /* two defaults */
    assert_int_equal(core_prov_registry_new(clash, 2, &r), -EINVAL); /* one cloud, two drivers */
    assert_int_equal(core_prov_registry_new(clash, 1, &r), 0);
    assert_int_equal(core_prov_registry_get(r, "aws", &p, NULL), CORE_ENOTFOUND); /* no default */
    core_prov_registry_free(r);
}

static void test_builtin_local_default_and_ssh_pools(void **state)
{
    size_t n = 0;
    core_prov_registry_t *r = NULL;

    (void)state;
    assert_non_null(core_prov_builtin_drivers(&n));
    assert_int_equal(n, 2);
    assert_int_equal(core_prov_registry_new(NULL, 0, &r), 0);
    assert_string_equal(core_prov_registry_driver(r, NULL)->name, "local");
    assert_null(core_prov_registry_driver(r, NULL)->clouds);
    assert_string_equal(core_prov_registry_driver(r, "gcp")->name, "local");
    assert_string_equal(core_prov_registry_driver(r, "ssh")->name, "ssh");
    assert_ptr_equal(core_prov_registry_driver(r, "ssh"), core_prov_registry_driver(r, "ssh"));
    core_prov_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_by_cloud_default_for_the_rest),
        cmocka_unit_test(test_failover_spans_providers_in_candidate_order),
        cmocka_unit_test(test_list_covers_every_provider),
        cmocka_unit_test(test_failed_open_is_retried_and_bad_tables_refused),
        cmocka_unit_test(test_builtin_local_default_and_ssh_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
