/* core/prov_ssh.c's pure placement: which host a launch claims. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/prov_ssh.h"

static core_ssh_slot_t host(double cpus, double mem)
{
    core_ssh_slot_t s = {.usable = 1, .cpus = cpus, .memory_gb = mem, .gpu_name = ""};
    return s;
}

static void test_spreads_a_service_over_hosts(void **state)
{
    (void)state;
    core_ssh_slot_t s[3] = {host(4, 16), host(4, 16), host(4, 16)};
    core_ssh_ask_t a = {.cpus = 1, .exclusive = 1};
    char why[128];
    /* One replica each, in host order, then nothing: replicas share ports. */
    for (int i = 0; i < 3; i++) {
        int got = core_ssh_place(s, 3, &a, why, sizeof(why));
        assert_int_equal(got, i);
        s[got].claims++;
        s[got].same_group++;
        s[got].used_cpus += 1;
    }
    assert_int_equal(core_ssh_place(s, 3, &a, why, sizeof(why)), -1);
    assert_string_equal(why, "already runs a replica of this service (same ports)");
    /* Another group (a job) still fits, on the host with the most free CPUs. */
    core_ssh_ask_t job = {.cpus = 1};
    s[1].used_cpus = 3;
    s[0].used_cpus = 2;
    assert_int_equal(core_ssh_place(s, 3, &job, why, sizeof(why)), 2);
}

static void test_fewest_claims_first_then_free_cpus(void **state)
{
    (void)state;
    core_ssh_slot_t s[3] = {host(8, 32), host(2, 32), host(8, 32)};
    s[0].claims = 2;
    s[0].used_cpus = 2;
    core_ssh_ask_t a = {.cpus = 1};
    char why[128];
    assert_int_equal(core_ssh_place(s, 3, &a, why, sizeof(why)), 2); /* 0 claims, 8 free */
    s[2].claims = 1;
    s[2].used_cpus = 1;
    assert_int_equal(core_ssh_place(s, 3, &a, why, sizeof(why)), 1); /* 0 claims */
}

static void test_capacity_and_gpus(void **state)
{
    (void)state;
    core_ssh_slot_t s[2] = {host(4, 8), host(16, 64)};
    s[1].gpus = 2;
    s[1].gpu_name = "NVIDIA A100-SXM4-80GB";
    char why[128];
    core_ssh_ask_t big = {.cpus = 8, .memory_gb = 32};
    assert_int_equal(core_ssh_place(s, 2, &big, why, sizeof(why)), 1);
    s[1].used_cpus = 10;
    assert_int_equal(core_ssh_place(s, 2, &big, why, sizeof(why)), -1);
    assert_string_equal(why, "4 of 4 CPUs free, 8 asked");
    core_ssh_ask_t gpu = {.cpus = 1, .accelerator = "a100", .accelerator_count = 2};
    assert_int_equal(core_ssh_place(s, 2, &gpu, why, sizeof(why)), 1);
    s[1].used_gpus = 1;
    assert_int_equal(core_ssh_place(s, 2, &gpu, why, sizeof(why)), -1);
    assert_string_equal(why, "no a100 GPU"); /* the first host's reason is kept */
    core_ssh_ask_t v100 = {.cpus = 1, .accelerator = "V100", .accelerator_count = 1};
    assert_int_equal(core_ssh_place(s, 2, &v100, why, sizeof(why)), -1);
    core_ssh_ask_t mem = {.cpus = 1, .memory_gb = 9};
    s[1].usable = 0;
    assert_int_equal(core_ssh_place(s, 2, &mem, why, sizeof(why)), -1);
    assert_string_equal(why, "8.0 of 8.0 GB memory free, 9 asked");
}

static void test_dead_hosts_are_skipped(void **state)
{
    (void)state;
    core_ssh_slot_t s[2] = {host(4, 8), host(4, 8)};
    s[0].usable = 0;
    core_ssh_ask_t a = {.cpus = 1, .exclusive = 1};
    char why[128];
    assert_int_equal(core_ssh_place(s, 2, &a, why, sizeof(why)), 1);
    s[1].usable = 0;
    assert_int_equal(core_ssh_place(s, 2, &a, why, sizeof(why)), -1);
    assert_string_equal(why, "not answering");
    assert_int_equal(core_ssh_place(s, 0, &a, why, sizeof(why)), -1);
    assert_string_equal(why, "no host");
}

static void test_owner_groups(void **state)
{
    (void)state;
    char g[64];
    int excl;
    core_ssh_owner_group("serve:svc:3", g, sizeof(g), &excl);
    assert_string_equal(g, "serve:svc:");
    assert_int_equal(excl, 1);
    core_ssh_owner_group("job:7", g, sizeof(g), &excl);
    assert_string_equal(g, "job:7");
    assert_int_equal(excl, 0);
    core_ssh_owner_group("serve:odd", g, sizeof(g), &excl);
    assert_string_equal(g, "serve:odd");
    assert_int_equal(excl, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spreads_a_service_over_hosts),
        cmocka_unit_test(test_fewest_claims_first_then_free_cpus),
        cmocka_unit_test(test_capacity_and_gpus),
        cmocka_unit_test(test_dead_hosts_are_skipped),
        cmocka_unit_test(test_owner_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
