/*
 * agent_client IP PORT TOKEN|- CMD [ARGS]: drives include/core/agent.h from
 * tests/integration/test_agent.py.
 *   health | submit JSON | get ID | list | logs ID FOLLOW TAIL [STOP_AFTER] | cancel ID
 * Prints results on stdout; on error prints "error <name>" and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/agent.h"
#include "core/err.h"

typedef struct logs_ctx {
    size_t seen;
    size_t stop_after;
} logs_ctx_t;

static int on_chunk(const char *data, size_t len, void *arg)
{
    logs_ctx_t *c = arg;
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    c->seen += len;
    return c->stop_after > 0 && c->seen >= c->stop_after;
}

static void print_task(const core_agent_task_t *t)
{
    printf("%d %s %s %d %s %d %d %s\n", t->task_id, t->name, core_agent_status_name(t->status),
           t->has_exit_code ? t->exit_code : -1, t->submitted_at > 0 ? "sub" : "-",
           t->started_at > 0, t->ended_at > 0, t->failure_reason ? t->failure_reason : "-");
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: agent_client IP PORT TOKEN|- CMD [ARGS]\n");
        return 2;
    }
    const char *ip = argv[1];
    int port = atoi(argv[2]);
    const char *token = strcmp(argv[3], "-") == 0 ? NULL : argv[3];
    const char *cmd = argv[4];
    int rc;
    if (strcmp(cmd, "health") == 0) {
        rc = core_agent_health(ip, port, token, 2000);
        if (rc == 0)
            printf("ok\n");
    } else if (strcmp(cmd, "submit") == 0 && argc == 6) {
        cJSON *j = cJSON_Parse(argv[5]);
        int id = 0;
        rc = core_agent_submit(ip, port, token, j, &id);
        cJSON_Delete(j);
        if (rc == 0)
            printf("%d\n", id);
    } else if (strcmp(cmd, "get") == 0 && argc == 6) {
        core_agent_task_t t;
        rc = core_agent_task_get(ip, port, token, atoi(argv[5]), &t);
        if (rc == 0)
            print_task(&t);
        core_agent_task_free(&t);
    } else if (strcmp(cmd, "list") == 0) {
        core_agent_task_t *ts = NULL;
        size_t n = 0;
        rc = core_agent_task_list(ip, port, token, &ts, &n);
        for (size_t i = 0; i < n; i++) {
            print_task(&ts[i]);
            core_agent_task_free(&ts[i]);
        }
        free(ts);
    } else if (strcmp(cmd, "logs") == 0 && argc >= 8) {
        logs_ctx_t c = {0, argc > 8 ? (size_t)atol(argv[8]) : 0};
        rc = core_agent_logs(ip, port, token, atoi(argv[5]), atoi(argv[6]), atoi(argv[7]), on_chunk,
                             &c);
    } else if (strcmp(cmd, "cancel") == 0 && argc == 6) {
        rc = core_agent_cancel(ip, port, token, atoi(argv[5]));
        if (rc == 0)
            printf("ok\n");
    } else {
        fprintf(stderr, "agent_client: bad command\n");
        return 2;
    }
    if (rc < 0) {
        printf("error %s\n", core_err_name(rc));
        return 1;
    }
    return 0;
}
