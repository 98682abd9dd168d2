#ifndef CTL_CLI_H
#define CTL_CLI_H

#include "cli_opt.h"

/*
 * The `sky` CLI's commands (cli_opt.h: each handler gets the arguments from
 * its own name on and returns the exit code: 0 success, 1 failure, 2 usage
 * error). The command tree itself is in cli_main.c.
 */

/* Unmanaged tasks on one-instance clusters (cli_cluster.c). */
int ctl_cli_launch(ctl_cli_t *cli, int argc, char **argv);
int ctl_cli_exec(ctl_cli_t *cli, int argc, char **argv);
int ctl_cli_status(ctl_cli_t *cli, int argc, char **argv);
int ctl_cli_down(ctl_cli_t *cli, int argc, char **argv);
int ctl_cli_logs(ctl_cli_t *cli, int argc, char **argv);

/* Command groups, each ended by an entry without a name. */
extern const ctl_cli_cmd_t ctl_cli_cloud_cmds[]; /* the local cloud (cli_cloud.c) */
extern const ctl_cli_cmd_t ctl_cli_serve_cmds[]; /* services (cli_serve.c) */
extern const ctl_cli_cmd_t ctl_cli_jobs_cmds[];  /* managed jobs (cli_jobs.c) */
extern const ctl_cli_cmd_t ctl_cli_spot_cmds[];  /* the seed-era name of jobs (cli_jobs.c) */
extern const ctl_cli_cmd_t ctl_cli_ssh_cmds[];   /* SSH Node Pools: up, down (cli_ssh.c) */

/* The login link of the serve controller's dashboard (cli_dash.c). */
int ctl_cli_dashboard(ctl_cli_t *cli, int argc, char **argv);

/* Which infra is usable: the local cloud, each SSH Node Pool (cli_ssh.c). */
int ctl_cli_check(ctl_cli_t *cli, int argc, char **argv);

#endif
