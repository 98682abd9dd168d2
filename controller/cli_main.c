/*
 * sky: the command-line client. Each command group lives in its own
 * cli_<group>.c; this file is the command tree (cli_opt.h).
 */
#include <stdio.h>

#include "cli.h"
#include "core/log.h"

static const ctl_cli_cmd_t commands[] = {
    {"launch", "Launch a cluster and run a task on it", ctl_cli_launch, NULL},
    {"exec", "Run a task on an existing cluster", ctl_cli_exec, NULL},
    {"status", "List clusters", ctl_cli_status, NULL},
    {"logs", "Show a cluster task's logs", ctl_cli_logs, NULL},
    {"down", "Terminate clusters", ctl_cli_down, NULL},
    {"cloud", "Operate the local cloud (status, preempt, capacity, replay, usage, down)", NULL,
     ctl_cli_cloud_cmds},
    {"serve", "Serve on spot/on-demand replicas (up, status, update, down, logs)", NULL,
     ctl_cli_serve_cmds},
    {"jobs", "Managed jobs with auto-recovery (launch, queue, logs, cancel, dashboard)", NULL,
     ctl_cli_jobs_cmds},
    {"spot",
     "Managed spot jobs (launch, status, logs, cancel): the seed-era name of sky jobs\n\n"
     "As in the seed documents, a managed spot job runs on spot instances unless its YAML\n"
     "says `use_spot: false` (or --no-use-spot is given); sky jobs launch uses what the\n"
     "YAML says, on-demand by default. Both groups manage the same jobs.",
     NULL, ctl_cli_spot_cmds},
    {"ssh", "SSH Node Pools: set up (up) or remove (down) sky-agent on your hosts", NULL,
     ctl_cli_ssh_cmds},
    {"dashboard", "Print (--url) or open the login link of the web dashboard", ctl_cli_dashboard,
     NULL},
    {"check", "Which infra is usable: the local cloud, each SSH Node Pool", ctl_cli_check, NULL},
    {NULL, NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    static const ctl_cli_cmd_t sky = {
        "sky", "Serve models and run managed jobs on spot instances", NULL, commands};
    core_log_init("sky", CORE_LOG_WARN);
    return ctl_cli_main(&sky, argc, argv, stdout, stderr);
}
