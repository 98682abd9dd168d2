/*
 * ctl_jobs_work: the jobs controller's blocking calls against scripted
 * providers (no local cloud, no agent): failover launch honouring the skip
 * mask, the instance state a poll or describe reports (a forgotten instance
 * is TERMINATED, a preempted one is not asked for its task), and cleanup
 * terminating the job's instance and every leftover it owns (and nothing of
 * anyone else), removing its ephemeral buckets and saying so in its log.
 */
#include <errno.h>
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

#include "core/err.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/taskrun.h"
#include "core/util.h"
#include "ctl_jobs_work.h"

/* ---- a scripted provider */

#define MAX_INST 16

typedef struct fake {
    core_prov_t super;
    core_instance_t inst[MAX_INST];
    size_t n;
    const char *full_zone; /* launches there fail with no capacity */
    const char *prefix;    /* of its instance ids; NULL: "i" */
    int launches;
    char terminated[MAX_INST][64];
    size_t n_terminated;
} fake_t;

static core_instance_t *fake_find(fake_t *f, const char *id)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->inst[i].id, id) == 0)
            return &f->inst[i];
    return NULL;
}

static int fake_launch(core_prov_t *p, const core_candidate_t *c, const char *owner,
                       core_instance_t *out, char **err)
{
    fake_t *f = (fake_t *)p;
    f->launches++;
    if (f->full_zone && strcmp(c->zone, f->full_zone) == 0) {
        if (err)
            *err = core_xasprintf("no capacity in %s", c->zone);
        return CORE_ENOCAPACITY;
    }
    core_instance_t *in = &f->inst[f->n++];
    memset(in, 0, sizeof(*in));
    snprintf(in->id, sizeof(in->id), "%s-%06zu", f->prefix ? f->prefix : "i", f->n);
    snprintf(in->cloud, sizeof(in->cloud), "%s", c->cloud);
    snprintf(in->region, sizeof(in->region), "%s", c->region);
    snprintf(in->zone, sizeof(in->zone), "%s", c->zone);
    snprintf(in->owner, sizeof(in->owner), "%s", owner);
    in->state = CORE_INST_RUNNING;
    *out = *in;
    return 0;
}

static int fake_terminate(core_prov_t *p, const char *id)
{
    fake_t *f = (fake_t *)p;
    core_instance_t *in = fake_find(f, id);
    snprintf(f->terminated[f->n_terminated++], 64, "%s", id);
    if (in)
        in->state = CORE_INST_TERMINATED;
    return 0;
}

static int fake_describe(core_prov_t *p, const char *id, core_instance_t *out)
{
    core_instance_t *in = fake_find((fake_t *)p, id);
    if (in == NULL)
        return CORE_ENOTFOUND;
    *out = *in;
    return 0;
}

static int fake_list(core_prov_t *p, core_instance_t **out, size_t *n)
{
    fake_t *f = (fake_t *)p;
    *out = core_xcalloc(f->n + 1, sizeof(**out));
    *n = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->inst[i].state != CORE_INST_TERMINATED)
            (*out)[(*n)++] = f->inst[i];
    return 0;
}

static void fake_destroy(core_prov_t *p)
{
    (void)p; /* owned by the test */
}

static const core_prov_ops_t fake_ops = {"fake",      fake_launch, fake_terminate,
                                         fake_describe, fake_list, fake_destroy};

static int fake_open(void *arg, core_prov_t **out, char **err)
{
    (void)err;
    *out = arg;
    return 0;
}

static const char *const pool_clouds[] = {"ssh", NULL};

/* Two providers: <fake>, the default, and <pool>, serving cloud "ssh". */
typedef struct fx {
    char home[64];
    char *jobs_dir;
    fake_t fake, pool;
    core_prov_t *prov;
    core_prov_registry_t *reg;
} fx_t;

static int setup(void **state)
{
    fx_t *f = core_xcalloc(1, sizeof(*f));
    snprintf(f->home, sizeof(f->home), "/tmp/test-jobs-work-XXXXXX");
    assert_non_null(mkdtemp(f->home));
    setenv("SKY_HOME", f->home, 1);
    f->jobs_dir = core_xasprintf("%s/jobs", f->home);
    char *dir = core_xasprintf("%s/7", f->jobs_dir);
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    free(dir);
    f->fake.super.ops = &fake_ops;
    f->pool.super.ops = &fake_ops;
    f->pool.prefix = "ssh";
    f->prov = &f->fake.super;
    core_prov_driver_t d[2] = {
        {.name = "fake", .open = fake_open, .arg = &f->fake},
        {.name = "pool", .clouds = pool_clouds, .open = fake_open, .arg = &f->pool},
    };
    assert_int_equal(core_prov_registry_new(d, 2, &f->reg), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    core_prov_registry_free(f->reg);
    core_rm_rf(f->home);
    free(f->jobs_dir);
    free(f);
    return 0;
}

static void call_init(fx_t *f, ctl_jobs_call_t *c, ctl_jobs_op_t op)
{
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->jobs_dir = f->jobs_dir;
    c->job_id = 7;
    c->provs = &f->reg;
}

static core_candidate_t cand_in(const char *cloud, const char *region, const char *zone)
{
    core_candidate_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.cloud, sizeof(c.cloud), "%s", cloud);
    snprintf(c.region, sizeof(c.region), "%s", region);
    snprintf(c.zone, sizeof(c.zone), "%s", zone);
    snprintf(c.instance_type, sizeof(c.instance_type), "l.2x");
    c.spot = 1;
    return c;
}

static core_candidate_t cand(const char *region, const char *zone)
{
    return cand_in("local", region, zone);
}

static void test_launch_failover_and_skip(void **state)
{
    fx_t *f = *state;
    core_candidate_t cands[] = {cand("r1", "r1a"), cand("r1", "r1b"), cand("r2", "r2a")};
    unsigned char skip[] = {1, 0, 0};
    ctl_jobs_call_t c;

    f->fake.full_zone = "r1b";
    call_init(f, &c, CTL_JOBS_OP_LAUNCH);
    c.cands = cands;
    c.n_cands = 3;
    c.skip = skip;
    ctl_jobs_call_run(&c);
    assert_int_equal(c.rc, 0);
    assert_string_equal(c.launched.zone, "r2a"); /* r1a skipped, r1b full */
    assert_string_equal(c.launched.owner, "job:7");
    assert_int_equal(f->fake.launches, 2);
    ctl_jobs_call_clear(&c);

    /* Everything full: no capacity, and the reason. */
    f->fake.full_zone = "r2a";
    skip[1] = 1;
    call_init(f, &c, CTL_JOBS_OP_LAUNCH);
    c.cands = cands;
    c.n_cands = 3;
    c.skip = skip;
    ctl_jobs_call_run(&c);
    assert_int_equal(c.rc, CORE_ENOCAPACITY);
    assert_non_null(c.err);
    ctl_jobs_call_clear(&c);
}

/* An any_of of a pool and the local cloud: each candidate launched, described
 * and reaped by its own cloud's provider. */
static void test_candidates_span_providers(void **state)
{
    fx_t *f = *state;
    core_candidate_t cands[] = {cand_in("ssh", "lab", ""), cand("r1", "r1a")};
    core_instance_t stray, other;
    ctl_jobs_call_t c;

    f->pool.full_zone = "";
    call_init(f, &c, CTL_JOBS_OP_LAUNCH);
    c.cands = cands;
    c.n_cands = 2;
    ctl_jobs_call_run(&c);
    assert_int_equal(c.rc, 0);
    assert_string_equal(c.launched.cloud, "local"); /* the pool was full */
    assert_int_equal(f->pool.launches, 1);
    core_instance_t mine = c.launched;
    ctl_jobs_call_clear(&c);

    f->pool.full_zone = NULL;
    assert_int_equal(fake_launch(&f->pool.super, &cands[0], "job:7", &stray, NULL), 0);
    assert_int_equal(fake_launch(&f->pool.super, &cands[0], "job:8", &other, NULL), 0);
    call_init(f, &c, CTL_JOBS_OP_DESCRIBE);
    c.inst = stray;
    ctl_jobs_call_run(&c);
    assert_int_equal(c.state, CORE_INST_RUNNING); /* asked the pool, not the default */
    ctl_jobs_call_clear(&c);

    call_init(f, &c, CTL_JOBS_OP_CLEANUP);
    c.inst = mine;
    c.cands = cands;
    c.n_cands = 2;
    ctl_jobs_call_run(&c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(f->fake.n_terminated, 1);
    assert_string_equal(f->fake.terminated[0], mine.id);
    assert_int_equal(f->pool.n_terminated, 1);
    assert_string_equal(f->pool.terminated[0], stray.id);
    assert_int_equal(fake_find(&f->pool, other.id)->state, CORE_INST_RUNNING);
    ctl_jobs_call_clear(&c);
}

static void test_instance_states(void **state)
{
    fx_t *f = *state;
    core_candidate_t c0 = cand("r1", "r1a");
    core_instance_t in;
    ctl_jobs_call_t c;

    assert_int_equal(fake_launch(f->prov, &c0, "job:7", &in, NULL), 0);
    f->fake.inst[0].state = CORE_INST_PREEMPTED;
    /* A preempted instance: its agent is not asked. */
    call_init(f, &c, CTL_JOBS_OP_POLL);
    c.inst = in;
    c.task_id = 1;
    ctl_jobs_call_run(&c);
    assert_int_equal(c.state, CORE_INST_PREEMPTED);
    assert_int_equal(c.task_rc, -ECONNREFUSED);
    ctl_jobs_call_clear(&c);
    /* One the provider forgot is TERMINATED. */
    call_init(f, &c, CTL_JOBS_OP_DESCRIBE);
    snprintf(c.inst.id, sizeof(c.inst.id), "i-gone");
    ctl_jobs_call_run(&c);
    assert_int_equal(c.state, CORE_INST_TERMINATED);
    ctl_jobs_call_clear(&c);
}

static void test_cleanup(void **state)
{
    fx_t *f = *state;
    core_candidate_t c0 = cand("r1", "r1a");
    core_instance_t mine, leftover, other;
    ctl_jobs_call_t c;
    core_task_t *task = NULL;
    char *err = NULL;
    const char yaml[] = "run: echo\n"
                        "file_mounts:\n"
                        "  /ckpt:\n"
                        "    name: scratch-7\n"
                        "    mode: MOUNT\n"
                        "    persistent: false\n"
                        "  /data:\n"
                        "    name: keep-7\n"
                        "    mode: MOUNT\n";

    assert_int_equal(fake_launch(f->prov, &c0, "job:7", &mine, NULL), 0);
    assert_int_equal(fake_launch(f->prov, &c0, "job:7", &leftover, NULL), 0);
    assert_int_equal(fake_launch(f->prov, &c0, "job:8", &other, NULL), 0);
    assert_int_equal(core_task_parse(yaml, strlen(yaml), "t.yaml", &task, &err), 0);
    char *scratch = NULL, *keep = NULL;
    assert_int_equal(core_bucket_path("scratch-7", &scratch), 0);
    assert_int_equal(core_bucket_path("keep-7", &keep), 0);

    call_init(f, &c, CTL_JOBS_OP_CLEANUP);
    c.inst = mine;
    c.buckets = task;
    ctl_jobs_call_run(&c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(f->fake.n_terminated, 2);
    assert_string_equal(f->fake.terminated[0], mine.id);
    assert_string_equal(f->fake.terminated[1], leftover.id);
    assert_int_equal(fake_find(&f->fake, other.id)->state, CORE_INST_RUNNING);
    struct stat st;
    assert_int_not_equal(stat(scratch, &st), 0);
    assert_int_equal(stat(keep, &st), 0);
    ctl_jobs_call_clear(&c);

    char *log = NULL, *path = core_xasprintf("%s/7/controller.log", f->jobs_dir);
    size_t len;
    assert_int_equal(core_read_file(path, 1 << 20, &log, &len), 0);
    char line[128];
    snprintf(line, sizeof(line), "terminated %s\n", mine.id);
    assert_non_null(strstr(log, line));
    snprintf(line, sizeof(line), "terminating leftover instance %s\n", leftover.id);
    assert_non_null(strstr(log, line));
    assert_non_null(strstr(log, "removed ephemeral bucket scratch-7\n"));
    assert_null(strstr(log, "keep-7"));
    free(log);
    free(path);
    free(scratch);
    free(keep);
    core_task_free(task);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_launch_failover_and_skip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidates_span_providers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
