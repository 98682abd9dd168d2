#ifndef CORE_SSH_STAGE_H
#define CORE_SSH_STAGE_H

#include <cjson/cJSON.h>

/*
 * For core_agent_submit to an SSH pool instance's agent at <ip>:<port>:
 * <task> (the agent's task JSON) with its workdir and COPY file_mounts
 * copied to the host and its MOUNT buckets mounted there (sshfs, served
 * from this machine's bucket directory; see core/ssh_stage.c for the
 * guarantees), paths rewritten to the host's. *out is a new object (the
 * task itself when there is nothing to bring). Blocking. CORE_EINVALREQ
 * (the host refused: no sshfs, instance gone) or -EHOSTUNREACH, with *err.
 */
int core_ssh_stage_task(const char *ip, int port, const cJSON *task, cJSON **out, char **err);

/* The argv serving <bucket> over SFTP on stdin/stdout as the mounts do
 * (sftp-server chrooted to it in a user namespace), for tests. -ENOENT
 * without sftp-server. Free each string and the array. */
int core_ssh_sftp_sandbox_argv(const char *bucket, char ***out);

#endif
