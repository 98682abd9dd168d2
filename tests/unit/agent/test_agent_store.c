/* sky-agent persistence: what a restarted agent reports (no processes, no loop),
 * and the import of an older agent's spec.json/status.json files. */
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
#include "core/mem.h"
#include "core/store.h"
#include "core/util.h"

typedef struct fixture {
    char root[64];
    agent_t a;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = core_xcalloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/agent_store_XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    f->a.home = core_xstrdup(f->root);
    f->a.state_dir = core_xasprintf("%s/.sky_agent/tasks", f->root);
    if (agent_store_init(&f->a) < 0)
        return -1;
    *state = f;
    return 0;
}

static void reset_agent(agent_t *a)
{
    for (int i = 0; i < a->n_tasks; i++)
        agent_task_free(a->tasks[i]);
    free(a->tasks);
    a->tasks = NULL;
    a->n_tasks = 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    reset_agent(&f->a);
    agent_store_close(&f->a);
    core_rm_rf(f->root);
    free(f->a.home);
    free(f->a.state_dir);
    free(f);
    return 0;
}

static agent_task_t *make_task(int id, const char *json, core_agent_status_t st)
{
    agent_task_t *t = core_xcalloc(1, sizeof(*t));
    cJSON *doc = cJSON_Parse(json);
    char *err = NULL;
    assert_int_equal(core_agent_req_parse(doc, &t->spec, &err), 0);
    cJSON_Delete(doc);
    t->id = id;
    t->status = st;
    t->submitted_at = 1000.0 + id;
    return t;
}

static void save(agent_t *a, agent_task_t *t)
{
    char *dir = agent_task_dir(a, t->id);
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    free(dir);
    assert_int_equal(agent_store_add(a, t), 0);
    assert_int_equal(agent_store_save_status(a, t), 0);
}

static void test_roundtrip_and_lost_tasks(void **state)
{
    fixture_t *f = *state;
    agent_t *a = &f->a;

    agent_task_t *done = make_task(1, "{\"name\":\"done\",\"run\":\"true\",\"envs\":{\"A\":\"1\"}}",
                                   CORE_AGENT_SUCCEEDED);
    done->has_exit_code = 1;
    done->started_at = 1002.0;
    done->ended_at = 1003.0;
    agent_task_t *failed = make_task(2, "{\"name\":\"f\",\"run\":\"exit 3\"}", CORE_AGENT_FAILED);
    failed->has_exit_code = 1;
    failed->exit_code = 3;
    failed->failure_reason = core_xstrdup("run exited with code 3");
    /* No pgid recorded: nothing to kill, but it must not be reported as running. */
    agent_task_t *running =
        make_task(3, "{\"name\":\"r\",\"run\":\"sleep 9\"}", CORE_AGENT_RUNNING);
    agent_task_t *pending = make_task(5, "{\"name\":\"p\",\"run\":\"echo\"}", CORE_AGENT_PENDING);
    save(a, done);
    save(a, failed);
    save(a, running);
    save(a, pending);
    /* Id 4: a submission that crashed before its row (ignored, id not reused). */
    char *dir = agent_task_dir(a, 4);
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    free(dir);
    /* Id 6: garbage in its row. */
    dir = agent_task_dir(a, 6);
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    free(dir);
    assert_int_equal(sqlite3_exec(core_store_db(a->store),
                                  "INSERT INTO tasks (id, spec, status) VALUES (6, '{not json', "
                                  "'PENDING')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    agent_task_free(done);
    agent_task_free(failed);
    agent_task_free(running);
    agent_task_free(pending);

    assert_int_equal(agent_store_load(a), 0);
    assert_int_equal(a->n_tasks, 6);
    agent_task_t *t = agent_task_find(a, 1);
    assert_non_null(t);
    assert_int_equal(t->status, CORE_AGENT_SUCCEEDED);
    assert_true(t->has_exit_code);
    assert_int_equal(t->exit_code, 0);
    assert_true(t->ended_at == 1003.0);
    assert_string_equal(t->spec.env_vals[0], "1");

    t = agent_task_find(a, 2);
    assert_int_equal(t->status, CORE_AGENT_FAILED);
    assert_int_equal(t->exit_code, 3);
    assert_string_equal(t->failure_reason, "run exited with code 3");

    t = agent_task_find(a, 3);
    assert_int_equal(t->status, CORE_AGENT_FAILED);
    assert_false(t->has_exit_code);
    assert_non_null(strstr(t->failure_reason, "restarted while the task was RUNNING"));
    assert_true(t->ended_at > 0);

    assert_null(agent_task_find(a, 4));
    assert_int_equal(agent_task_find(a, 5)->status, CORE_AGENT_PENDING);
    assert_null(agent_task_find(a, 6));
    assert_null(agent_task_find(a, 7));
    assert_null(agent_task_find(a, 0));

    /* The lost task's new state is on disk: a second restart says the same. */
    reset_agent(a);
    assert_int_equal(agent_store_load(a), 0);
    t = agent_task_find(a, 3);
    assert_int_equal(t->status, CORE_AGENT_FAILED);
    assert_non_null(strstr(t->failure_reason, "RUNNING"));
}

static void test_empty_dir(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(agent_store_load(&f->a), 0);
    assert_int_equal(f->a.n_tasks, 0);
}

static void test_task_json(void **state)
{
    agent_task_t *t = make_task(7, "{\"name\":\"j\",\"run\":\"x\"}", CORE_AGENT_RUNNING);
    cJSON *j = agent_task_to_json(t);
    core_agent_task_t ct;
    assert_int_equal(core_agent_task_from_json(j, &ct), 0);
    assert_int_equal(ct.task_id, 7);
    assert_int_equal(ct.status, CORE_AGENT_RUNNING);
    assert_false(ct.has_exit_code);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "ended_at")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "failure_reason")));
    assert_true(ct.submitted_at == 1007.0);
    core_agent_task_free(&ct);
    cJSON_Delete(j);
    agent_task_free(t);
}

/* The files an agent without a database kept in each task directory. */
static void write_legacy(agent_t *a, agent_task_t *t, const char *status_text)
{
    char *dir = agent_task_dir(a, t->id);
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    free(dir);
    cJSON *spec = core_agent_req_json(&t->spec);
    char *text = cJSON_PrintUnformatted(spec);
    char *path = agent_task_file(a, t->id, "spec.json");
    assert_int_equal(core_write_file(path, text, strlen(text), 0600), 0);
    free(path);
    free(text);
    cJSON_Delete(spec);
    cJSON *st = agent_task_to_json(t);
    cJSON_AddNumberToObject(st, "pgid", t->pgid);
    cJSON_AddNumberToObject(st, "pid_start", (double)t->pid_start);
    text = cJSON_PrintUnformatted(st);
    path = agent_task_file(a, t->id, "status.json");
    if (status_text)
        assert_int_equal(core_write_file(path, status_text, strlen(status_text), 0600), 0);
    else
        assert_int_equal(core_write_file(path, text, strlen(text), 0600), 0);
    free(path);
    free(text);
    cJSON_Delete(st);
}

static void test_legacy_files_are_imported(void **state)
{
    fixture_t *f = *state;
    agent_t *a = &f->a;

    /* An agent of before the database: no agent.db, JSON files per task. */
    agent_store_close(a);
    char *db = core_xasprintf("%s/.sky_agent/agent.db", f->root);
    assert_int_equal(unlink(db), 0);
    agent_task_t *done = make_task(1, "{\"name\":\"done\",\"run\":\"true\",\"envs\":{\"A\":\"1\"}}",
                                   CORE_AGENT_SUCCEEDED);
    done->has_exit_code = 1;
    done->ended_at = 1003.0;
    agent_task_t *running =
        make_task(2, "{\"name\":\"r\",\"run\":\"sleep 9\"}", CORE_AGENT_RUNNING);
    agent_task_t *bad = make_task(4, "{\"run\":\"x\"}", CORE_AGENT_PENDING);
    write_legacy(a, done, NULL);
    write_legacy(a, running, NULL);
    write_legacy(a, bad, "{not json");
    char *dir = agent_task_dir(a, 3); /* crashed before status.json */
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    free(dir);
    agent_task_free(done);
    agent_task_free(running);
    agent_task_free(bad);

    assert_int_equal(agent_store_init(a), 0);
    assert_int_equal(access(db, F_OK), 0);
    char *old = agent_task_file(a, 1, "status.json");
    assert_int_not_equal(access(old, F_OK), 0); /* the database is the truth now */
    free(old);
    assert_int_equal(agent_store_load(a), 0);
    assert_int_equal(a->n_tasks, 4);
    agent_task_t *t = agent_task_find(a, 1);
    assert_non_null(t);
    assert_int_equal(t->status, CORE_AGENT_SUCCEEDED);
    assert_true(t->has_exit_code && t->exit_code == 0);
    assert_true(t->ended_at == 1003.0);
    assert_string_equal(t->spec.env_vals[0], "1");
    t = agent_task_find(a, 2);
    assert_int_equal(t->status, CORE_AGENT_FAILED);
    assert_non_null(strstr(t->failure_reason, "restarted while the task was RUNNING"));
    assert_null(agent_task_find(a, 3));
    assert_null(agent_task_find(a, 4));

    /* Opening again migrates nothing and sees the same. */
    reset_agent(a);
    agent_store_close(a);
    assert_int_equal(agent_store_init(a), 0);
    assert_int_equal(agent_store_load(a), 0);
    assert_int_equal(a->n_tasks, 4);
    assert_int_equal(agent_task_find(a, 2)->status, CORE_AGENT_FAILED);
    free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_and_lost_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_files_are_imported, setup, teardown),
        cmocka_unit_test(test_task_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
