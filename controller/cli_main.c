/*
 * sky: the command-line client. Each command group lives in its own
 * cli_<group>.c; this file only dispatches.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/log.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} group_t;

static const group_t groups[] = {
    {"launch", ctl_cli_launch, "launch a cluster and run a task on it"},
    {"exec", ctl_cli_exec, "run a task on an existing cluster"},
    {"status", ctl_cli_status, "list clusters"},
    {"logs", ctl_cli_logs, "show a cluster task's logs"},
    {"down", ctl_cli_down, "terminate clusters"},
    {"cloud", ctl_cli_cloud, "operate the local cloud (status, preempt, capacity, replay, down)"},
    {"serve", ctl_cli_serve, "serve on spot/on-demand replicas (up, status, update, down, logs)"},
    {"spot", ctl_cli_spot, "managed spot jobs: launch, status, logs, cancel"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sky COMMAND [ARGS]...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        fprintf(f, "  %-8s %s\n", groups[i].name, groups[i].help);
}

int main(int argc, char **argv)
{
    core_log_init("sky", CORE_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (strcmp(argv[1], groups[i].name) == 0)
            return groups[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sky: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
