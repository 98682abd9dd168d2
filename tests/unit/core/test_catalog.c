/*
 * Catalog loading and resources -> candidates resolution against the shipped
 * data/catalog.yaml (and small custom catalogs for error paths).
 */
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

#include "core/catalog.h"
#include "core/err.h"
#include "core/spec.h"
#include "core/util.h"

typedef struct fixture {
    char home[64];
    core_catalog_t *cat;
} fixture_t;

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void rm_home(const char *home)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/catalog.yaml", home);
    unlink(p);
    rmdir(home);
}

/* A private, empty SKY_HOME so that load(NULL) picks the shipped catalog. */
static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char *err = NULL;
    snprintf(f->home, sizeof(f->home), "/tmp/test_catalog_XXXXXX");
    if (!mkdtemp(f->home))
        return -1;
    setenv("SKY_HOME", f->home, 1);
    if (core_catalog_load(NULL, &f->cat, &err)) {
        fprintf(stderr, "catalog: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    core_catalog_free(f->cat);
    rm_home(f->home);
    unsetenv("SKY_HOME");
    free(f);
    return 0;
}

static core_task_t *task_of(const char *resources_yaml)
{
    char yaml[2048];
    core_task_t *t = NULL;
    char *err = NULL;
    snprintf(yaml, sizeof(yaml), "resources:\n%s", resources_yaml);
    if (core_task_parse(yaml, strlen(yaml), "t.yaml", &t, &err))
        fail_msg("parse: %s", err);
    return t;
}

/* Resolves and checks the invariants every answer must have. */
static core_candidate_t *resolve(const core_catalog_t *cat, const char *resources_yaml,
                                 const core_resolve_opts_t *opts, size_t *n)
{
    core_task_t *t = task_of(resources_yaml);
    core_candidate_t *c = NULL;
    char *err = NULL;
    int rc = core_catalog_resolve_ex(cat, &t->resources, opts, &c, n, &err);
    if (rc)
        fail_msg("resolve '%s': %d %s", resources_yaml, rc, err ? err : "");
    assert_true(*n > 0);
    for (size_t i = 1; i < *n; i++) {
        const core_candidate_t *a = &c[i - 1], *b = &c[i];
        if (!t->resources.ordered && a->price > b->price)
            fail_msg("not cheapest first at %zu: %g > %g", i, a->price, b->price);
        if (a->price == b->price) {
            int r = strcmp(a->cloud, b->cloud);
            if (!r)
                r = strcmp(a->region, b->region);
            if (!r)
                r = strcmp(a->zone, b->zone);
            if (!r)
                r = strcmp(a->instance_type, b->instance_type);
            if (!r)
                r = a->spot - b->spot;
            if (r >= 0 && !t->resources.ordered)
                fail_msg("tie not in (cloud, region, zone, type) order at %zu", i);
        }
    }
    core_task_free(t);
    return c;
}

static char *resolve_err(const core_catalog_t *cat, const char *resources_yaml,
                         const core_resolve_opts_t *opts)
{
    core_task_t *t = task_of(resources_yaml);
    core_candidate_t *c = NULL;
    size_t n = 99;
    char *err = NULL;
    int rc = core_catalog_resolve_ex(cat, &t->resources, opts, &c, &n, &err);
    if (rc != CORE_EINFEASIBLE)
        fail_msg("resolve '%s': want CORE_EINFEASIBLE, got %d (%zu candidates)", resources_yaml, rc,
                 n);
    assert_null(c);
    assert_int_equal(n, 0);
    assert_non_null(err);
    core_task_free(t);
    return err;
}

static int count_zone(const char *cloud, const char *region, const char *zone, void *arg)
{
    int *n = arg;
    (void)cloud;
    (void)region;
    (void)zone;
    (*n)++;
    return 0;
}

typedef struct find_zone {
    const char *zone;
    char found[80];
    int visited;
} find_zone_t;

static int find_zone_cb(const char *cloud, const char *region, const char *zone, void *arg)
{
    find_zone_t *fz = arg;
    fz->visited++;
    if (strcmp(zone, fz->zone))
        return 0;
    snprintf(fz->found, sizeof(fz->found), "%s/%s/%s", cloud, region, zone);
    return 7;
}

static void test_shipped_catalog_zones(void **state)
{
    fixture_t *f = *state;
    int n = 0;
    assert_int_equal(core_catalog_each_zone(f->cat, count_zone, &n), 0);
    assert_int_equal(n, 21);
    /* The zones the shipped spot traces name exist (so traces can be replayed). */
    static const char *const trace_zones[][2] = {
        {"us-east-1f", "aws/us-east-1/us-east-1f"},
        {"us-east-2a", "aws/us-east-2/us-east-2a"},
        {"us-east-2b", "aws/us-east-2/us-east-2b"},
        {"us-west-2a", "aws/us-west-2/us-west-2a"},
        {"us-west-2b", "aws/us-west-2/us-west-2b"},
        {"us-west-2c", "aws/us-west-2/us-west-2c"},
        {"us-central1-a", "gcp/us-central1/us-central1-a"},
        {"us-central1-b", "gcp/us-central1/us-central1-b"},
        {"us-east1-b", "gcp/us-east1/us-east1-b"},
        {"us-west1-b", "gcp/us-west1/us-west1-b"},
        {"europe-west4-a", "gcp/europe-west4/europe-west4-a"},
        {"asia-northeast1-a", "gcp/asia-northeast1/asia-northeast1-a"},
    };
    for (size_t i = 0; i < sizeof(trace_zones) / sizeof(trace_zones[0]); i++) {
        find_zone_t fz = {.zone = trace_zones[i][0]};
        assert_int_equal(core_catalog_each_zone(f->cat, find_zone_cb, &fz), 7);
        assert_string_equal(fz.found, trace_zones[i][1]);
    }
    /* Catalog order: the first visited zone is the first in the file. */
    find_zone_t fz = {.zone = "us-east-1a"};
    assert_int_equal(core_catalog_each_zone(f->cat, find_zone_cb, &fz), 7);
    assert_int_equal(fz.visited, 1);
}

static void test_cpus_exact_and_plus(void **state)
{
    fixture_t *f = *state;
    size_t n;
    core_candidate_t *c = resolve(f->cat, "  cpus: 2\n", NULL, &n);
    /* aws c6i.large + m6i.large in 9 zones, gcp e2/n2-standard-2 in 12 zones */
    assert_int_equal(n, 42);
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i].vcpus == 2);
        assert_int_equal(c[i].spot, 0);
        assert_string_equal(c[i].accelerator, "");
    }
    assert_string_equal(c[0].cloud, "gcp");
    assert_string_equal(c[0].region, "us-central1");
    assert_string_equal(c[0].zone, "us-central1-a");
    assert_string_equal(c[0].instance_type, "e2-standard-2");
    assert_true(c[0].price == 0.067);
    free(c);

    c = resolve(f->cat, "  cpus: 2+\n", NULL, &n);
    /* 6 general-purpose types per cloud, GPU types excluded without accelerators */
    assert_int_equal(n, 6 * 9 + 6 * 12);
    int saw4 = 0, saw16 = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i].vcpus >= 2);
        assert_string_equal(c[i].accelerator, "");
        saw4 |= c[i].vcpus == 4;
        saw16 |= c[i].vcpus == 16;
    }
    assert_true(saw4 && saw16);
    assert_string_equal(c[0].instance_type, "e2-standard-2");
    free(c);

    c = resolve(f->cat, "  cpus: 4\n", NULL, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].vcpus == 4);
    free(c);

    c = resolve(f->cat, "  cpus: 16+\n", NULL, &n);
    assert_int_equal(n, 21); /* m6i.4xlarge and n2-standard-16 everywhere */
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].vcpus == 16);
    free(c);
}

static void test_memory(void **state)
{
    fixture_t *f = *state;
    size_t n;
    core_candidate_t *c = resolve(f->cat, "  memory: 16\n", NULL, &n);
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i].memory_gb == 16);
        assert_string_equal(c[i].accelerator, "");
    }
    assert_int_equal(n, 9 + 2 * 12); /* m6i.xlarge; e2-/n2-standard-4 */
    free(c);
    c = resolve(f->cat, "  memory: 64+\n", NULL, &n);
    assert_int_equal(n, 21);
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].memory_gb >= 64);
    free(c);
    c = resolve(f->cat, "  cpus: 2\n  memory: 4\n", NULL, &n);
    assert_int_equal(n, 9); /* only c6i.large */
    assert_string_equal(c[0].instance_type, "c6i.large");
    assert_string_equal(c[0].zone, "us-east-1a");
    free(c);
}

static void test_accelerators(void **state)
{
    fixture_t *f = *state;
    size_t n;
    core_candidate_t *c = resolve(f->cat, "  accelerators: V100:1\n", NULL, &n);
    assert_int_equal(n, 8 + 9); /* p3.2xlarge zones + n1-standard-8+V100 zones */
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(c[i].accelerator, "V100");
        assert_int_equal(c[i].accelerator_count, 1);
    }
    assert_string_equal(c[0].instance_type, "n1-standard-8+V100");
    assert_string_equal(c[0].zone, "us-central1-a");
    assert_true(c[0].price == 2.86);
    assert_string_equal(c[n - 1].cloud, "gcp"); /* asia-northeast1 is the dearest */
    free(c);

    c = resolve(f->cat, "  accelerators: v100\n  cloud: aws\n", NULL, &n);
    assert_int_equal(n, 8);
    assert_string_equal(c[0].instance_type, "p3.2xlarge");
    assert_true(c[0].price == 3.06);
    free(c);

    c = resolve(f->cat, "  accelerators: {V100: 8}\n", NULL, &n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].instance_type, "p3.16xlarge");
    free(c);

    c = resolve(f->cat, "  accelerators: A100:8\n  use_spot: true\n", NULL, &n);
    assert_string_equal(c[0].instance_type, "a2-highgpu-8g");
    assert_int_equal(c[0].spot, 1);
    free(c);

    /* instance_type alone may name a GPU type. */
    c = resolve(f->cat, "  instance_type: p3.2xlarge\n", NULL, &n);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].instance_type, "p3.2xlarge");
    free(c);
}

static void test_use_spot(void **state)
{
    fixture_t *f = *state;
    size_t n, n2;
    core_candidate_t *c = resolve(f->cat, "  cpus: 2+\n  use_spot: true\n", NULL, &n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i].spot, 1);
    assert_string_equal(c[0].instance_type, "e2-standard-2");
    assert_true(c[0].price == 0.0201);
    free(c);
    c = resolve(f->cat, "  cpus: 2+\n  use_spot: false\n", NULL, &n2);
    for (size_t i = 0; i < n2; i++)
        assert_int_equal(c[i].spot, 0);
    assert_int_equal(n, n2);
    free(c);

    /* Overrides (serve autoscaler). */
    core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;
    o.use_spot = 1;
    c = resolve(f->cat, "  cpus: 2\n", &o, &n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i].spot, 1);
    free(c);
    o.use_spot = 0;
    c = resolve(f->cat, "  cpus: 2\n  use_spot: true\n", &o, &n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c[i].spot, 0);
    assert_true(c[0].price == 0.067);
    free(c);
}

static void test_location_filters(void **state)
{
    fixture_t *f = *state;
    size_t n;
    core_candidate_t *c = resolve(f->cat, "  cpus: 2\n  cloud: aws\n", NULL, &n);
    assert_int_equal(n, 18);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].cloud, "aws");
    assert_string_equal(c[0].zone, "us-east-1a");
    free(c);
    c = resolve(f->cat, "  cpus: 2\n  region: us-west-2\n", NULL, &n);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].region, "us-west-2");
    free(c);
    c = resolve(f->cat, "  cpus: 2\n  zone: us-east-1f\n", NULL, &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(c[i].region, "us-east-1");
        assert_string_equal(c[i].zone, "us-east-1f");
    }
    free(c);
    c = resolve(f->cat, "  cpus: 2\n  infra: gcp/europe-west4\n", NULL, &n);
    assert_int_equal(n, 4);
    free(c);

    /* Restriction by the spot placer / recovery strategy. */
    core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;
    o.cloud = "gcp";
    o.region = "us-east1";
    o.zone = "us-east1-b";
    c = resolve(f->cat, "  cpus: 2+\n  use_spot: true\n", &o, &n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].zone, "us-east1-b");
    assert_int_equal(n, 6);
    free(c);
    o.region = NULL;
    o.zone = NULL;
    c = resolve(f->cat, "  cpus: 2+\n  any_of:\n    - cloud: gcp\n    - cloud: aws\n", &o, &n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c[i].cloud, "gcp");
    free(c);
    char *err = resolve_err(f->cat, "  cpus: 2\n  cloud: aws\n", &o);
    assert_string_equal(err, "the requested location gcp is outside the resources' location "
                             "aws");
    free(err);
    o.cloud = "aws";
    o.region = "us-east-2";
    err = resolve_err(f->cat, "  cpus: 2\n  region: us-east-1\n", &o);
    assert_string_equal(err, "the requested location aws/us-east-2 is outside the resources' "
                             "location */us-east-1");
    free(err);
}

static void test_any_of_and_ordered(void **state)
{
    fixture_t *f = *state;
    size_t n;
    core_candidate_t *c = resolve(f->cat,
                                  "  cpus: 2\n  any_of:\n"
                                  "    - {cloud: aws, region: us-east-2}\n"
                                  "    - {cloud: gcp, region: europe-west4}\n",
                                  NULL, &n);
    assert_int_equal(n, 6 + 4);
    assert_string_equal(c[0].region, "europe-west4"); /* 0.0737 < 0.08585 */
    assert_string_equal(c[0].instance_type, "e2-standard-2");
    free(c);
    c = resolve(f->cat,
                "  cpus: 2\n  ordered:\n"
                "    - {cloud: aws, region: us-east-2}\n"
                "    - {cloud: gcp, region: europe-west4}\n",
                NULL, &n);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(c[i].region, "us-east-2");
    for (size_t i = 6; i < 10; i++)
        assert_string_equal(c[i].region, "europe-west4");
    for (size_t i = 1; i < 6; i++)
        assert_true(c[i - 1].price <= c[i].price);
    free(c);
    /* Overlapping entries do not duplicate candidates. */
    c = resolve(f->cat, "  cpus: 2\n  any_of:\n    - cloud: aws\n    - region: us-east-1\n", NULL,
                &n);
    assert_int_equal(n, 18);
    free(c);
    /* One infeasible entry is skipped when another is feasible. */
    c = resolve(f->cat, "  any_of:\n    - accelerators: H100:8\n    - accelerators: T4:1\n", NULL,
                &n);
    assert_string_equal(c[0].accelerator, "T4");
    free(c);
}

static void test_default_resources(void **state)
{
    fixture_t *f = *state;
    size_t n;
    /* Nothing asked: the reference's default shape, 8+ vCPUs and 32+ GB. */
    core_candidate_t *c = resolve(f->cat, "  use_spot: false\n", NULL, &n);
    assert_string_equal(c[0].instance_type, "m6i.2xlarge");
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].vcpus >= 8 && c[i].memory_gb >= 32 && !c[i].accelerator[0]);
    free(c);
}

static void test_infeasible_messages(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *yaml;
        const char *err;
    } cases[] = {
        {"  cpus: 64+\n  accelerators: V100:1\n  cloud: aws\n  region: us-east-1\n",
         "no instance type with 64+ vCPUs and V100:1 in region us-east-1 of aws"},
        {"  accelerators: H100:1\n", "no instance type with H100:1"},
        {"  cpus: 3\n", "no instance type with 3 vCPUs"},
        {"  memory: 4096+\n", "no instance type with 4096+ GB memory"},
        {"  cpus: 2\n  memory: 64\n", "no instance type with 2 vCPUs and 64 GB memory"},
        {"  cpus: 2\n  cloud: azure\n",
         "cloud 'azure' is not in the catalog (available: aws, gcp)"},
        {"  cpus: 2\n  cloud: aws\n  region: eu-north-1\n", "region 'eu-north-1' not found in aws"},
        {"  cpus: 2\n  region: us-west-2\n  zone: us-east-1a\n",
         "zone 'us-east-1a' is not in region 'us-west-2'"},
        {"  cpus: 2\n  zone: mars-1a\n", "zone 'mars-1a' not found in the catalog"},
        {"  instance_type: m9.huge\n", "instance type 'm9.huge' not found in the catalog"},
        {"  instance_type: p3.2xlarge\n  cloud: gcp\n",
         "instance type 'p3.2xlarge' not found in gcp"},
        {"  instance_type: p3.2xlarge\n  accelerators: A100:8\n",
         "no instance type with name p3.2xlarge and A100:8"},
        {"  accelerators: V100:1\n  cloud: aws\n  zone: us-east-2c\n",
         "no instance type with V100:1 in zone us-east-2c of aws"},
        {"  accelerators: K80:1\n  cloud: gcp\n", "no instance type with K80:1 in gcp"},
        {"  accelerators: V100:1\n  cloud: aws\n  region: us-east-2\n  zone: us-east-2c\n",
         "no instance type with V100:1 in zone us-east-2c of region us-east-2 of aws"},
        {"  any_of:\n    - accelerators: H100:8\n    - cpus: 1\n",
         "any_of[0]: no instance type with H100:8; any_of[1]: no instance type with 1 vCPUs"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = resolve_err(f->cat, cases[i].yaml, NULL);
        if (strcmp(err, cases[i].err)) {
            print_error("case %zu:\n  want: %s\n  got:  %s\n", i, cases[i].err, err);
            failures++;
        }
        free(err);
    }
    assert_int_equal(failures, 0);

    /* err may be NULL. */
    core_task_t *t = task_of("  cpus: 3\n");
    core_candidate_t *c = NULL;
    size_t n = 0;
    assert_int_equal(core_catalog_resolve(f->cat, &t->resources, &c, &n, NULL), CORE_EINFEASIBLE);
    core_task_free(t);
}

static void test_locations_and_price(void **state)
{
    fixture_t *f = *state;
    core_task_t *t = task_of("  cpus: 2+\n  use_spot: true\n");
    core_location_t *l = NULL;
    size_t n = 0;
    char *err = NULL;
    assert_int_equal(core_catalog_locations(f->cat, &t->resources, -1, &l, &n, &err), 0);
    assert_int_equal(n, 21); /* the cheapest 2-vCPU spot type lives in every zone */
    assert_string_equal(l[0].cloud, "gcp");
    assert_string_equal(l[0].zone, "us-central1-a");
    assert_string_equal(l[1].zone, "us-east1-b");
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_true(strcmp(l[i].zone, l[j].zone) != 0);
    free(l);
    core_task_free(t);

    t = task_of("  accelerators: V100:1\n");
    assert_int_equal(core_catalog_locations(f->cat, &t->resources, 1, &l, &n, &err), 0);
    assert_int_equal(n, 17);
    free(l);
    core_task_free(t);

    double p = 0;
    assert_int_equal(
        core_catalog_price(f->cat, "aws", "us-east-1", "us-east-1a", "p3.2xlarge", 0, &p), 0);
    assert_true(p == 3.06);
    assert_int_equal(
        core_catalog_price(f->cat, "AWS", "us-east-1", "us-east-1a", "p3.2xlarge", 1, &p), 0);
    assert_true(p == 0.918);
    assert_int_equal(
        core_catalog_price(f->cat, "aws", "us-east-2", "us-east-2c", "p3.2xlarge", 0, &p),
        CORE_ENOTFOUND);
    assert_int_equal(
        core_catalog_price(f->cat, "gcp", "us-east-1", "us-east-1a", "p3.2xlarge", 0, &p),
        CORE_ENOTFOUND);
}

static void test_labels(void **state)
{
    (void)state;
    core_candidate_t c;
    char buf[64];
    memset(&c, 0, sizeof(c));
    /* The seed's RESOURCES: the catalog's cloud as the reference names it. */
    snprintf(c.cloud, sizeof(c.cloud), "gcp");
    c.vcpus = 2;
    c.spot = 1;
    core_candidate_label(&c, buf, sizeof(buf));
    assert_string_equal(buf, "1x GCP([Spot]vCPU=2)");
    snprintf(c.cloud, sizeof(c.cloud), "aws");
    c.spot = 0;
    c.vcpus = 4;
    snprintf(c.accelerator, sizeof(c.accelerator), "V100");
    c.accelerator_count = 1;
    core_candidate_label(&c, buf, sizeof(buf));
    assert_string_equal(buf, "1x AWS(vCPU=4, V100:1)");
    snprintf(c.cloud, sizeof(c.cloud), "local");
    c.vcpus = 0.5;
    c.accelerator[0] = '\0';
    core_candidate_label(&c, buf, sizeof(buf));
    assert_string_equal(buf, "1x Local(vCPU=0.5)");
    snprintf(c.cloud, sizeof(c.cloud), "mycloud"); /* unknown to the reference: as written */
    core_candidate_label(&c, buf, sizeof(buf));
    assert_string_equal(buf, "1x mycloud(vCPU=0.5)");
    core_candidate_label(&c, buf, 8); /* truncates, stays terminated */
    assert_string_equal(buf, "1x mycl");
    assert_string_equal(core_cloud_display_name("Kubernetes"), "Kubernetes");
    assert_string_equal(core_cloud_display_name("ssh"), "SSH");
}

static const char *const SMALL = "clouds:\n"
                                 "  local:\n"
                                 "    instance_types:\n"
                                 "      small: {vcpus: 2, memory: 4}\n"
                                 "    regions:\n"
                                 "      r1:\n"
                                 "        zones:\n"
                                 "          z1:\n"
                                 "            small: {on_demand: 0.1}\n";

static void test_home_override_and_no_spot(void **state)
{
    fixture_t *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/catalog.yaml", f->home);
    write_text(path, SMALL);
    core_catalog_t *cat = NULL;
    char *err = NULL;
    assert_int_equal(core_catalog_load(NULL, &cat, &err), 0);
    int n = 0;
    core_catalog_each_zone(cat, count_zone, &n);
    assert_int_equal(n, 1);
    err = resolve_err(cat, "  cpus: 2\n  use_spot: true\n", NULL);
    assert_string_equal(err, "no spot offer for an instance type with 2 vCPUs");
    free(err);
    size_t nc;
    core_candidate_t *c = resolve(cat, "  cpus: 2\n", NULL, &nc);
    assert_int_equal(nc, 1);
    assert_string_equal(c[0].cloud, "local");
    free(c);
    double p;
    assert_int_equal(core_catalog_price(cat, "local", "r1", "z1", "small", 1, &p), CORE_ENOTFOUND);
    core_catalog_free(cat);
    unlink(path);
}

static void test_load_errors(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *text;
        const char *err; /* after "<path>:" */
    } cases[] = {
        {"clouds:\n  aws:\n    instance_types: {}\n    regions: {}\n    extra: 1\n",
         "5:5: unknown key 'extra' in cloud aws"},
        {"clouds:\n  aws:\n    instance_types:\n      a: {vcpus: 2, memory: 4}\n"
         "    regions:\n      r:\n        zones:\n          z:\n            b: {on_demand: 1}\n",
         "9:13: instance type 'b' is not declared in aws.instance_types"},
        {"clouds:\n  aws:\n    instance_types:\n      a: {vcpus: 2, memory: 4, accelerators: "
         "V100}\n    regions: {}\n",
         "4:46: accelerators: expected \"NAME:COUNT\", got 'V100'"},
        {"clouds:\n  aws:\n    instance_types:\n      a: {vcpus: 2, memory: 4}\n"
         "    regions:\n      r:\n        zones:\n          z:\n            a: {spot: 1}\n",
         "9:16: offer a: on_demand price is required"},
        {"clouds:\n  aws:\n    instance_types:\n      a: {vcpus: two, memory: 4}\n"
         "    regions: {}\n",
         "4:18: vcpus: expected a non-negative number, got 'two'"},
        {"clouds:\n  aws: [\n", "3:1: YAML syntax error: did not find expected node content"},
        {"regions: {}\n", "1:1: unknown key 'regions' in catalog"},
        {"clouds:\n  aws:\n    regions: {}\n",
         "3:5: cloud aws: instance_types and regions are required"},
    };
    char path[128];
    snprintf(path, sizeof(path), "%s/bad.yaml", f->home);
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        core_catalog_t *cat = NULL;
        char *err = NULL, want[512];
        write_text(path, cases[i].text);
        int rc = core_catalog_load(path, &cat, &err);
        snprintf(want, sizeof(want), "%s:%s", path, cases[i].err);
        if (rc != CORE_ESPEC || !err || strcmp(err, want)) {
            print_error("case %zu: rc=%d\n  want: %s\n  got:  %s\n", i, rc, want,
                        err ? err : "(none)");
            failures++;
        }
        assert_null(cat);
        free(err);
    }
    unlink(path);
    assert_int_equal(failures, 0);

    core_catalog_t *cat = NULL;
    char *err = NULL;
    assert_int_equal(core_catalog_load("/nonexistent/catalog.yaml", &cat, &err), -ENOENT);
    assert_string_equal(err, "/nonexistent/catalog.yaml: cannot read catalog: No such file or "
                             "directory");
    free(err);
}

/* `infra: ssh/POOL` resolves to the pools `sky ssh up` recorded, not the catalog. */
static void test_ssh_pools(void **state)
{
    fixture_t *f = *state;
    char dir[160], path[200];
    core_resolve_opts_t od = CORE_RESOLVE_OPTS_INIT, spot = CORE_RESOLVE_OPTS_INIT;
    core_candidate_t *c;
    size_t n;
    char *err, label[64];

    snprintf(dir, sizeof(dir), "%s/ssh/pools/lab", f->home);
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    snprintf(path, sizeof(path), "%s/hosts.json", dir);
    write_text(path, "{\"hosts\": ["
                     "{\"host\": \"10.0.0.1\", \"addr\": \"10.0.0.1\", \"agent_port\": 46590,"
                     " \"cpus\": 4, \"memory_gb\": 16, \"state\": \"ok\"},"
                     "{\"host\": \"10.0.0.2\", \"addr\": \"10.0.0.2\", \"agent_port\": 46590,"
                     " \"cpus\": 64, \"memory_gb\": 256, \"state\": \"unreachable\"}]}");

    c = resolve(f->cat, "  infra: ssh/lab\n  cpus: 2+\n", NULL, &n);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].cloud, "ssh");
    assert_string_equal(c[0].region, "lab");
    assert_string_equal(c[0].zone, "");
    assert_int_equal(c[0].spot, 0);
    assert_true(c[0].price == 0 && c[0].vcpus == 2);
    core_candidate_label(&c[0], label, sizeof(label));
    assert_string_equal(label, "1x SSH/lab(vCPU=2)");
    free(c);
    c = resolve(f->cat, "  infra: ssh\n", NULL, &n); /* any pool */
    assert_true(n == 1 && !strcmp(c[0].region, "lab"));
    free(c);

    /* A spot service's any_of: spot in a cloud, its on-demand fallback on the pool first
     * (owned machines cost nothing). */
    const char *mixed = "  use_spot: true\n  cpus: 2\n  any_of:\n    - infra: gcp\n"
                        "    - infra: ssh/lab\n";
    spot.use_spot = 1;
    c = resolve(f->cat, mixed, &spot, &n);
    for (size_t i = 0; i < n; i++)
        assert_true(c[i].spot && strcmp(c[i].cloud, "ssh"));
    free(c);
    od.use_spot = 0;
    c = resolve(f->cat, mixed, &od, &n);
    assert_true(n > 1 && !strcmp(c[0].cloud, "ssh") && !c[0].spot && !strcmp(c[1].cloud, "gcp"));
    free(c);
    /* The placer's and the instance's location narrow to one host. */
    od.cloud = "ssh";
    od.zone = "10.0.0.1";
    c = resolve(f->cat, mixed, &od, &n);
    assert_true(n == 1 && !strcmp(c[0].zone, "10.0.0.1"));
    free(c);

    err = resolve_err(f->cat, "  infra: ssh/lab\n  use_spot: true\n", NULL);
    assert_string_equal(err, "SSH Node Pool hosts are never spot: use_spot: true cannot be placed "
                             "on ssh/lab");
    free(err);
    err = resolve_err(f->cat, "  infra: ssh/lab\n  cpus: 8\n", NULL);
    assert_string_equal(err, "no host of ssh/lab can hold the request: 10.0.0.1: 4 of 4 CPUs "
                             "free, 8 asked");
    free(err);
    err = resolve_err(f->cat, "  infra: ssh/nope\n", NULL);
    assert_non_null(strstr(err, "no host of ssh/nope can hold the request"));
    free(err);
    unlink(path);
    rmdir(dir);
    snprintf(dir, sizeof(dir), "%s/ssh/pools", f->home);
    rmdir(dir);
    snprintf(dir, sizeof(dir), "%s/ssh", f->home);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_catalog_zones),
        cmocka_unit_test(test_cpus_exact_and_plus),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_accelerators),
        cmocka_unit_test(test_use_spot),
        cmocka_unit_test(test_location_filters),
        cmocka_unit_test(test_any_of_and_ordered),
        cmocka_unit_test(test_default_resources),
        cmocka_unit_test(test_infeasible_messages),
        cmocka_unit_test(test_locations_and_price),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_ssh_pools),
        cmocka_unit_test(test_home_override_and_no_spot),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
