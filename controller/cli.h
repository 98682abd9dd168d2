#ifndef CTL_CLI_H
#define CTL_CLI_H

/*
 * The `sky` CLI's command groups. Each takes the arguments after its group
 * name (argv[0] is the group name) and returns the process exit code:
 * 0 success, 1 failure, 2 usage error.
 */
int ctl_cli_cloud(int argc, char **argv);
/* Unmanaged tasks on one-instance clusters (cli_cluster.c). */
int ctl_cli_launch(int argc, char **argv);
int ctl_cli_exec(int argc, char **argv);
int ctl_cli_status(int argc, char **argv);
int ctl_cli_down(int argc, char **argv);
int ctl_cli_logs(int argc, char **argv);
int ctl_cli_serve(int argc, char **argv);
/* Managed spot jobs (cli_spot.c). */
int ctl_cli_spot(int argc, char **argv);

#endif
