#ifndef CTL_CLI_H
#define CTL_CLI_H

/*
 * The `sky` CLI's command groups. Each takes the arguments after its group
 * name (argv[0] is the group name) and returns the process exit code:
 * 0 success, 1 failure, 2 usage error.
 */
int ctl_cli_cloud(int argc, char **argv);

#endif
