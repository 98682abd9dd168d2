/* The one builder of the agent's task request (core_task_request) and its paths. */
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
#include <cjson/cJSON.h>

#include "core/agent_req.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/taskrun.h"
#include "core/util.h"

static core_task_t *parse(const char *yaml)
{
    core_task_t *t = NULL;
    char *err = NULL;

    if (core_task_parse(yaml, strlen(yaml), "t.yaml", &t, &err) < 0)
        fail_msg("parse: %s", err);
    return t;
}

static const char *env_of(const core_agent_req_t *r, const char *key)
{
    for (size_t i = 0; i < r->n_envs; i++)
        if (strcmp(r->env_keys[i], key) == 0)
            return r->env_vals[i];
    return NULL;
}

/* The serve controller's copy of the builder dropped an env without a value
 * and launched the replica without it; the one builder refuses. */
static void test_env_without_value_is_refused_not_dropped(void **state)
{
    core_task_t *t = parse("run: echo $PORT\nenvs:\n  A: 1\n  PORT:\n");
    core_task_req_opts_t serve = {.name = "serve-svc-1", .cwd = "/"};
    core_agent_req_t r;
    char *err = NULL;

    (void)state;
    assert_int_equal(core_task_request(t, &serve, &r, &err), CORE_ESPEC);
    assert_non_null(strstr(err, "env PORT has no value"));
    assert_non_null(strstr(err, "--env PORT=VALUE"));
    free(err);
    /* With the --env override (what `sky serve up --env` stores), it is there. */
    core_task_set_env(t, "PORT", "8093");
    assert_int_equal(core_task_request(t, &serve, &r, &err), 0);
    assert_string_equal(env_of(&r, "PORT"), "8093");
    assert_string_equal(env_of(&r, "A"), "1");
    core_agent_req_free(&r);
    core_task_free(t);

    t = parse("run: x\nsecrets:\n  TOKEN:\n");
    assert_int_equal(core_task_request(t, NULL, &r, &err), CORE_ESPEC);
    assert_non_null(strstr(err, "secret TOKEN has no value"));
    free(err);
    core_task_free(t);
}

/* What the serve controller asks for: its name, its SKYPILOT_SERVE_* variables
 * (which win over the task's), paths against the CLI's directory. */
static void test_serve_request(void **state)
{
    core_task_t *t = parse("name: web\nsetup: pip install x\nrun: python app.py\n"
                           "workdir: app\nenvs:\n  SKYPILOT_SERVE_REPLICA_ID: mine\n  B: two\n"
                           "secrets:\n  S: hidden\n");
    cJSON *extra = cJSON_CreateObject(), *j;
    core_task_req_opts_t o = {.name = "serve-web-7", .cwd = "/w", .extra_envs = extra};
    core_agent_req_t r, back;
    char *err = NULL;

    (void)state;
    cJSON_AddStringToObject(extra, "SKYPILOT_SERVE_REPLICA_ID", "7");
    assert_int_equal(core_task_request(t, &o, &r, &err), 0);
    assert_string_equal(r.name, "serve-web-7");
    assert_string_equal(r.setup, "pip install x");
    assert_string_equal(r.run, "python app.py");
    assert_string_equal(r.workdir, "/w/app"); /* not checked: the agent reports it */
    assert_string_equal(env_of(&r, "SKYPILOT_SERVE_REPLICA_ID"), "7");
    assert_string_equal(env_of(&r, "B"), "two");
    assert_string_equal(env_of(&r, "S"), "hidden");
    assert_int_equal(r.n_envs, 3);
    /* The agent's parser takes exactly what the builder builds. */
    j = core_agent_req_json(&r);
    assert_int_equal(core_agent_req_parse(j, &back, &err), 0);
    assert_string_equal(back.workdir, "/w/app");
    assert_string_equal(back.name, "serve-web-7");
    assert_int_equal(back.n_envs, 3);
    core_agent_req_free(&back);
    cJSON_Delete(j);
    core_agent_req_free(&r);
    /* The CLI and the jobs controller check paths first. */
    o.check_sources = 1;
    assert_int_equal(core_task_request(t, &o, &r, &err), CORE_ESPEC);
    assert_string_equal(err, "workdir '/w/app' is not a directory");
    free(err);
    /* No options: the task's own name. */
    assert_int_equal(core_task_request(t, NULL, &r, &err), 0);
    assert_string_equal(r.name, "web");
    core_agent_req_free(&r);
    cJSON_Delete(extra);
    core_task_free(t);
}

static void test_mounts(void **state)
{
    char dir[] = "/tmp/test_taskrun_XXXXXX", *path, *text = NULL, *yaml;
    size_t len = 0;
    core_task_t *t;
    core_agent_req_t r;
    core_task_req_opts_t o = {.check_sources = 1};
    char *err = NULL;

    (void)state;
    assert_non_null(mkdtemp(dir));
    path = core_xasprintf("%s/home", dir);
    setenv("SKY_HOME", path, 1);
    free(path);
    path = core_xasprintf("%s/src", dir);
    core_mkdir_p(path, 0755);
    free(path);
    path = core_xasprintf("%s/src/seed.txt", dir);
    core_write_file(path, "seed\n", 5, 0644);
    free(path);
    o.cwd = dir;
    yaml =
        core_xasprintf("run: x\nfile_mounts:\n  /ckpt:\n    name: my-bucket\n    source: %s/src\n"
                       "  /data: src\n  /cache:\n    name: cache-b\n    mode: COPY\n",
                       dir);
    t = parse(yaml);
    free(yaml);
    assert_int_equal(core_task_request(t, &o, &r, &err), 0);
    assert_int_equal(r.n_mounts, 3);
    path = core_xasprintf("%s/home/buckets/my-bucket", dir);
    assert_string_equal(r.mounts[0].src, path);
    assert_int_equal(r.mounts[0].mode, CORE_AGENT_MOUNT);
    free(path);
    /* the bucket was filled from its source, once */
    path = core_xasprintf("%s/home/buckets/my-bucket/seed.txt", dir);
    assert_int_equal(core_read_file(path, 64, &text, &len), 0);
    assert_string_equal(text, "seed\n");
    free(text);
    free(path);
    path = core_xasprintf("%s/src", dir);
    assert_string_equal(r.mounts[1].src, path); /* a local source against the CLI's directory */
    assert_int_equal(r.mounts[1].mode, CORE_AGENT_COPY);
    free(path);
    assert_int_equal(r.mounts[2].mode, CORE_AGENT_COPY); /* a bucket asked as COPY */
    core_agent_req_free(&r);
    core_task_free(t);

    /* A bucket URL as a plain mount's source is refused, never skipped. */
    t = parse("run: x\nfile_mounts:\n  /data: s3://some-bucket/data\n");
    o.check_sources = 0;
    assert_int_equal(core_task_request(t, &o, &r, &err), CORE_ESPEC);
    assert_non_null(strstr(err, "bucket URL"));
    free(err);
    core_task_free(t);
    /* A missing local source is refused when checked. */
    t = parse("run: x\nfile_mounts:\n  /data: nowhere\n");
    o.check_sources = 1;
    assert_int_equal(core_task_request(t, &o, &r, &err), CORE_ESPEC);
    assert_non_null(strstr(err, "is not readable"));
    free(err);
    core_task_free(t);
    core_rm_rf(dir);
    unsetenv("SKY_HOME");
}

static void test_resolve_path(void **state)
{
    char *p;

    (void)state;
    p = core_resolve_path("examples/serve", "/src/sky");
    assert_string_equal(p, "/src/sky/examples/serve");
    free(p);
    p = core_resolve_path("./x", "/w/");
    assert_string_equal(p, "/w/x");
    free(p);
    p = core_resolve_path(".", "/w");
    assert_string_equal(p, "/w");
    free(p);
    p = core_resolve_path("/abs/dir", "/w");
    assert_string_equal(p, "/abs/dir");
    free(p);
    setenv("HOME", "/home/u", 1);
    p = core_resolve_path("~/d", "/w");
    assert_string_equal(p, "/home/u/d");
    free(p);
    p = core_resolve_path("rel", NULL);
    assert_string_equal(p, "/rel");
    free(p);
    assert_null(core_resolve_path(NULL, "/w"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_without_value_is_refused_not_dropped),
        cmocka_unit_test(test_serve_request),
        cmocka_unit_test(test_mounts),
        cmocka_unit_test(test_resolve_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
