/*
 * Every YAML file under examples/ (any depth) must parse, validate (as a service when it has a
 * service section, else as a managed job) and resolve against the shipped
 * catalog. Relative workdirs must exist (they are resolved from the source tree,
 * where `sky serve up examples/...` is documented to run).
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/catalog.h"
#include "core/err.h"
#include "core/spec.h"

#define MAX_EXAMPLES 256

static char *found[MAX_EXAMPLES];
static size_t n_found;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t len = strlen(path);
    if (type != FTW_F)
        return 0;
    if ((len > 5 && !strcmp(path + len - 5, ".yaml")) ||
        (len > 4 && !strcmp(path + len - 4, ".yml"))) {
        if (n_found == MAX_EXAMPLES)
            return 1;
        found[n_found++] = strdup(path);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_all_examples_validate(void **state)
{
    (void)state;
    core_catalog_t *cat = NULL;
    char *err = NULL;
    assert_int_equal(core_catalog_load(SKY_SOURCE_DIR "/data/catalog.yaml", &cat, &err), 0);
    assert_int_equal(nftw(SKY_SOURCE_DIR "/examples", collect, 16, FTW_PHYS), 0);
    qsort(found, n_found, sizeof(found[0]), cmp_str);
    int failures = 0, seeds = 0;
    for (size_t i = 0; i < n_found; i++) {
        core_task_t *t = NULL;
        int rc = core_task_load(found[i], &t, &err);
        if (!rc && t->service) {
            rc = core_task_validate_service(t, &err);
            rc = rc > 0 ? 0 : rc;
        } else if (!rc) {
            rc = core_task_validate_job(t, &err);
        }
        if (!rc) {
            core_candidate_t *c = NULL;
            size_t n = 0;
            rc = core_catalog_resolve(cat, &t->resources, &c, &n, &err);
            free(c);
        }
        if (!rc && t->workdir && t->workdir[0] != '~' && t->workdir[0] != '/') {
            struct stat st;
            if (stat(t->workdir_resolved, &st) || !S_ISDIR(st.st_mode)) {
                free(err);
                err = strdup("workdir does not exist in the source tree");
                rc = -1;
            }
        }
        if (rc) {
            print_error("%s: %s\n", found[i], err ? err : "(no message)");
            failures++;
        } else {
            print_message("ok %s\n", found[i] + strlen(SKY_SOURCE_DIR) + 1);
        }
        seeds += strstr(found[i], "/spot_policy/base_ondemand_fallback.yaml") ||
                 strstr(found[i], "/spot_policy/dynamic_on_demand_fallback.yaml");
        free(err);
        err = NULL;
        core_task_free(t);
        free(found[i]);
    }
    core_catalog_free(cat);
    assert_int_equal(seeds, 2);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_examples_validate),
    };
    if (chdir(SKY_SOURCE_DIR) != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
