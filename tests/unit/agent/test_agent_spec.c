/* Pure parts of sky-agent: task validation, env building, status machine, log tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent.h"
#include "core/agent.h"
#include "core/err.h"
#include "core/mem.h"

static int parse_str(const char *json, core_agent_req_t *out, char **err)
{
    cJSON *doc = cJSON_Parse(json);
    int rc = core_agent_req_parse(doc, out, err);
    cJSON_Delete(doc);
    return rc;
}

static void test_parse_full(void **state)
{
    core_agent_req_t s;
    char *err = NULL;
    int rc = parse_str("{\"name\":\"train\",\"setup\":\"pip install x\",\"run\":\"python t.py\","
                       "\"envs\":{\"A\":\"1\",\"N\":42,\"F\":1.5,\"B\":true,"
                       "\"SKYPILOT_TASK_ID\":\"sky-managed-x_1-0\"},"
                       "\"workdir\":\"/src/app\","
                       "\"file_mounts\":[{\"dst\":\"/checkpoint\",\"src\":\"/b/ck\",\"mode\":"
                       "\"MOUNT\"},{\"dst\":\"/data\",\"src\":\"/d\"}]}",
                       &s, &err);
    assert_int_equal(rc, 0);
    assert_null(err);
    assert_string_equal(s.name, "train");
    assert_string_equal(s.setup, "pip install x");
    assert_string_equal(s.run, "python t.py");
    assert_string_equal(s.workdir, "/src/app");
    assert_int_equal(s.n_envs, 5);
    assert_string_equal(s.env_keys[1], "N");
    assert_string_equal(s.env_vals[1], "42");
    assert_string_equal(s.env_vals[2], "1.5");
    assert_string_equal(s.env_vals[3], "true");
    assert_int_equal(s.n_mounts, 2);
    assert_int_equal(s.mounts[0].mode, CORE_AGENT_MOUNT);
    assert_string_equal(s.mounts[0].dst, "/checkpoint");
    assert_int_equal(s.mounts[1].mode, CORE_AGENT_COPY); /* default */

    /* Round trip through the stored form. */
    cJSON *j = core_agent_req_json(&s);
    core_agent_req_t s2;
    assert_int_equal(core_agent_req_parse(j, &s2, &err), 0);
    assert_string_equal(s2.env_vals[4], "sky-managed-x_1-0");
    assert_int_equal(s2.mounts[0].mode, CORE_AGENT_MOUNT);
    assert_string_equal(s2.mounts[1].src, "/d");
    cJSON_Delete(j);
    core_agent_req_free(&s2);
    core_agent_req_free(&s);
}

static void test_parse_minimal(void **state)
{
    core_agent_req_t s;
    char *err = NULL;
    assert_int_equal(parse_str("{\"run\":null,\"setup\":null,\"envs\":null,\"workdir\":null,"
                               "\"file_mounts\":null}",
                               &s, &err),
                     0);
    assert_string_equal(s.name, "task");
    assert_null(s.run);
    assert_null(s.setup);
    assert_null(s.workdir);
    assert_int_equal(s.n_envs, 0);
    assert_int_equal(s.n_mounts, 0);
    core_agent_req_free(&s);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *json;
        const char *needle;
    } cases[] = {
        {"[]", "object"},
        {"{\"run\":5}", "'run'"},
        {"{\"setup\":[1]}", "'setup'"},
        {"{\"name\":{}}", "'name'"},
        {"{\"bogus\":1}", "unknown field 'bogus'"},
        {"{\"envs\":[\"A=1\"]}", "'envs'"},
        {"{\"envs\":{\"1A\":\"x\"}}", "invalid env name '1A'"},
        {"{\"envs\":{\"A-B\":\"x\"}}", "invalid env name"},
        {"{\"envs\":{\"\":\"x\"}}", "invalid env name"},
        {"{\"envs\":{\"A\":null}}", "env 'A'"},
        {"{\"envs\":{\"A\":{}}}", "env 'A'"},
        {"{\"workdir\":\"rel/path\"}", "absolute"},
        {"{\"file_mounts\":{}}", "list"},
        {"{\"file_mounts\":[{\"dst\":\"/a\"}]}", "file_mounts[0]"},
        {"{\"file_mounts\":[{\"dst\":\"/a\",\"src\":\"b\"}]}", "absolute"},
        {"{\"file_mounts\":[{\"dst\":\"/\",\"src\":\"/b\"}]}", "cannot be /"},
        {"{\"file_mounts\":[{\"dst\":\"/a\",\"src\":\"/b\"},{\"dst\":\"/a\",\"src\":\"/b\","
         "\"mode\":\"SYNC\"}]}",
         "file_mounts[1]: 'mode'"},
        {"{\"file_mounts\":[5]}", "file_mounts[0]"},
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cases); i++) {
        core_agent_req_t s;
        char *err = NULL;
        int rc = parse_str(cases[i].json, &s, &err);
        if (rc != CORE_EINVALREQ || err == NULL || strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu (%s): rc=%d err=%s", i, cases[i].json, rc, err ? err : "(null)");
        free(err);
    }
    /* A NULL document (malformed JSON upstream) is rejected too. */
    core_agent_req_t s;
    char *err = NULL;
    assert_int_equal(core_agent_req_parse(NULL, &s, &err), CORE_EINVALREQ);
    free(err);
}

static void test_parse_limits(void **state)
{
    char name[CORE_AGENT_MAX_NAME + 40];
    memset(name, 'n', sizeof(name));
    name[sizeof(name) - 1] = '\0';
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "name", name);
    core_agent_req_t s;
    char *err = NULL;
    assert_int_equal(core_agent_req_parse(doc, &s, &err), CORE_EINVALREQ);
    assert_non_null(strstr(err, "longer"));
    free(err);
    cJSON_Delete(doc);

    doc = cJSON_CreateObject();
    cJSON *envs = cJSON_AddObjectToObject(doc, "envs");
    for (int i = 0; i <= CORE_AGENT_MAX_ENVS; i++) {
        char k[32];
        snprintf(k, sizeof(k), "K%d", i);
        cJSON_AddStringToObject(envs, k, "v");
    }
    err = NULL;
    assert_int_equal(core_agent_req_parse(doc, &s, &err), CORE_EINVALREQ);
    assert_non_null(strstr(err, "too many envs"));
    free(err);
    cJSON_Delete(doc);
}

static void test_env_build(void **state)
{
    char *base[] = {"PATH=/usr/bin:/bin",   "HOME=/root", "FOO=base",
                    "SKYPILOT_NODE_RANK=9", "garbage",    NULL};
    core_agent_req_t s;
    char *err = NULL;
    assert_int_equal(parse_str("{\"envs\":{\"FOO\":\"task\",\"BAR\":\"a=b c\","
                               "\"SKYPILOT_TASK_ID\":\"id-1\"}}",
                               &s, &err),
                     0);
    char **env = agent_env_build(base, "/inst/home", "10.0.0.5", 0, &s);
    assert_string_equal(agent_env_get(env, "PATH"), "/usr/bin:/bin");
    assert_string_equal(agent_env_get(env, "HOME"), "/inst/home");
    assert_string_equal(agent_env_get(env, "FOO"), "task");
    assert_string_equal(agent_env_get(env, "BAR"), "a=b c");
    assert_string_equal(agent_env_get(env, "SKYPILOT_TASK_ID"), "id-1");
    assert_string_equal(agent_env_get(env, "SKYPILOT_NODE_RANK"), "0");
    assert_string_equal(agent_env_get(env, "SKYPILOT_NODE_IPS"), "10.0.0.5");
    assert_string_equal(agent_env_get(env, "SKYPILOT_NUM_NODES"), "1");
    assert_null(agent_env_get(env, "SKYPILOT_SETUP_NODE_RANK"));
    assert_null(agent_env_get(env, "garbage"));
    /* Each key exactly once. */
    size_t n = 0, homes = 0;
    for (; env[n] != NULL; n++)
        homes += strncmp(env[n], "HOME=", 5) == 0;
    assert_int_equal(homes, 1);
    /* PATH HOME FOO SKYPILOT_NODE_RANK from base, 3 more node vars, BAR and SKYPILOT_TASK_ID. */
    assert_int_equal(n, 4 + 3 + 2);
    agent_env_free(env);

    env = agent_env_build(base, "/h", NULL, 1, &s);
    assert_string_equal(agent_env_get(env, "SKYPILOT_SETUP_NODE_RANK"), "0");
    assert_string_equal(agent_env_get(env, "SKYPILOT_SETUP_NODE_IPS"), "127.0.0.1");
    agent_env_free(env);

    /* A task may override HOME on purpose. */
    core_agent_req_free(&s);
    assert_int_equal(parse_str("{\"envs\":{\"HOME\":\"/custom\"}}", &s, &err), 0);
    env = agent_env_build(NULL, "/h", "1.2.3.4", 0, &s);
    assert_string_equal(agent_env_get(env, "HOME"), "/custom");
    agent_env_free(env);
    core_agent_req_free(&s);
}

static void test_env_key_valid(void **state)
{
    assert_true(core_agent_env_key_valid("A"));
    assert_true(core_agent_env_key_valid("_x9"));
    assert_true(core_agent_env_key_valid("SKYPILOT_TASK_ID"));
    assert_false(core_agent_env_key_valid(""));
    assert_false(core_agent_env_key_valid(NULL));
    assert_false(core_agent_env_key_valid("9A"));
    assert_false(core_agent_env_key_valid("A=B"));
    assert_false(core_agent_env_key_valid("A B"));
}

static void test_transitions(void **state)
{
    /* Rows: from; columns: to, in enum order (PENDING .. CANCELLED). */
    static const int ok[7][7] = {
        /*        P  SU R  S  F  FS C */
        /* P  */ {0, 1, 0, 0, 1, 0, 1},
        /* SU */ {0, 0, 1, 0, 1, 1, 1},
        /* R  */ {0, 0, 0, 1, 1, 0, 1},
        /* S  */ {0, 0, 0, 0, 0, 0, 0},
        /* F  */ {0, 0, 0, 0, 0, 0, 0},
        /* FS */ {0, 0, 0, 0, 0, 0, 0},
        /* C  */ {0, 0, 0, 0, 0, 0, 0},
    };
    for (int from = 0; from < 7; from++)
        for (int to = 0; to < 7; to++)
            if (agent_status_transition_ok((core_agent_status_t)from, (core_agent_status_t)to) !=
                ok[from][to])
                fail_msg("%s -> %s", core_agent_status_name((core_agent_status_t)from),
                         core_agent_status_name((core_agent_status_t)to));
    assert_false(agent_status_transition_ok(CORE_AGENT_STATUS_COUNT, CORE_AGENT_RUNNING));
    assert_false(agent_status_transition_ok(CORE_AGENT_RUNNING, (core_agent_status_t)-1));
}

static void test_status_names(void **state)
{
    for (int i = 0; i < CORE_AGENT_STATUS_COUNT; i++) {
        core_agent_status_t s;
        assert_int_equal(
            core_agent_status_parse(core_agent_status_name((core_agent_status_t)i), &s), 0);
        assert_int_equal(s, i);
    }
    core_agent_status_t s;
    assert_int_equal(core_agent_status_parse("running", &s), -EINVAL);
    assert_int_equal(core_agent_status_parse(NULL, &s), -EINVAL);
    assert_string_equal(core_agent_status_name(CORE_AGENT_STATUS_COUNT), "UNKNOWN");
    assert_string_equal(core_agent_status_name(CORE_AGENT_FAILED_SETUP), "FAILED_SETUP");
    assert_true(core_agent_status_is_terminal(CORE_AGENT_CANCELLED));
    assert_true(core_agent_status_is_terminal(CORE_AGENT_FAILED_SETUP));
    assert_false(core_agent_status_is_terminal(CORE_AGENT_SETTING_UP));
    assert_false(core_agent_status_is_terminal(CORE_AGENT_PENDING));
}

static void test_task_from_json(void **state)
{
    core_agent_task_t t;
    cJSON *j = cJSON_Parse("{\"task_id\":7,\"name\":\"n\",\"status\":\"FAILED\",\"exit_code\":3,"
                           "\"submitted_at\":1.5,\"started_at\":2.5,\"ended_at\":null,"
                           "\"failure_reason\":\"run exited with code 3\"}");
    assert_int_equal(core_agent_task_from_json(j, &t), 0);
    assert_int_equal(t.task_id, 7);
    assert_int_equal(t.status, CORE_AGENT_FAILED);
    assert_true(t.has_exit_code);
    assert_int_equal(t.exit_code, 3);
    assert_true(t.started_at == 2.5);
    assert_true(t.ended_at == 0.0);
    assert_string_equal(t.failure_reason, "run exited with code 3");
    core_agent_task_free(&t);
    cJSON_Delete(j);

    j = cJSON_Parse("{\"task_id\":1,\"status\":\"RUNNING\",\"exit_code\":null}");
    assert_int_equal(core_agent_task_from_json(j, &t), 0);
    assert_false(t.has_exit_code);
    assert_null(t.failure_reason);
    core_agent_task_free(&t);
    cJSON_Delete(j);

    j = cJSON_Parse("{\"task_id\":1,\"status\":\"WEIRD\"}");
    assert_int_equal(core_agent_task_from_json(j, &t), CORE_EJSON);
    core_agent_task_free(&t);
    cJSON_Delete(j);
    assert_int_equal(core_agent_task_from_json(NULL, &t), CORE_EJSON);
}

static int tmpfile_with(const char *data, size_t len)
{
    char path[] = "/tmp/agent_tail_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    return fd;
}

static off_t tail_of(const char *data, long want, long *left)
{
    int fd = tmpfile_with(data, strlen(data));
    off_t off = -1;
    *left = want;
    assert_int_equal(agent_tail_offset(fd, (off_t)strlen(data), left, &off), 0);
    close(fd);
    return off;
}

static void test_tail_offset(void **state)
{
    long left;
    assert_int_equal(tail_of("a\nb\nc\n", 1, &left), 4);
    assert_int_equal(left, 0);
    assert_int_equal(tail_of("a\nb\nc\n", 2, &left), 2);
    assert_int_equal(tail_of("a\nb\nc\n", 3, &left), 0);
    assert_int_equal(left, 0);
    /* Not enough lines: offset 0, the rest is owed by the previous file. */
    assert_int_equal(tail_of("a\nb\nc\n", 5, &left), 0);
    assert_int_equal(left, 2);
    /* No trailing newline: the partial last line counts as a line. */
    assert_int_equal(tail_of("a\nb\nc", 1, &left), 4);
    assert_int_equal(tail_of("a\nb\nc", 2, &left), 2);
    assert_int_equal(tail_of("", 3, &left), 0);
    assert_int_equal(left, 3);
    assert_int_equal(tail_of("a\n\n\n", 2, &left), 2);
    assert_int_equal(tail_of("x\n", 0, &left), 2);

    /* Lines spanning the 64 KiB read window. */
    size_t n = 200000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (i % 1000 == 999) ? '\n' : 'x';
    big[n] = '\0';
    assert_int_equal(tail_of(big, 100, &left), (off_t)(n - 100 * 1000));
    assert_int_equal(tail_of(big, 70, &left), (off_t)(n - 70 * 1000));
    assert_int_equal(tail_of(big, 1000, &left), 0);
    assert_int_equal(left, 800);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),     cmocka_unit_test(test_parse_minimal),
        cmocka_unit_test(test_parse_errors),   cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_env_build),      cmocka_unit_test(test_env_key_valid),
        cmocka_unit_test(test_transitions),    cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_task_from_json), cmocka_unit_test(test_tail_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
