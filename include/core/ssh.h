#ifndef CORE_SSH_H
#define CORE_SSH_H

#include <stddef.h>

#include "core/ssh_pool.h"

/*
 * Running commands on pool hosts with the system's OpenSSH client, never
 * prompting (BatchMode), with a connect timeout and the product's own
 * known_hosts ($SKY_HOME/ssh/known_hosts, new hosts accepted, changed keys
 * refused). Blocking: the CLI, or a controller's thread pool.
 */

#define CORE_SSH_CONNECT_TIMEOUT_S 5
#define CORE_SSH_MAX_OUTPUT (256u << 10) /* per stream; the rest is dropped */

typedef enum core_ssh_status {
    CORE_SSH_OK = 0,      /* the command ran and exited 0 */
    CORE_SSH_FAILED,      /* the command ran and exited non-zero (exit_code) */
    CORE_SSH_UNREACHABLE, /* no SSH connection: timeout, refused, no route, DNS */
    CORE_SSH_AUTH,        /* connected, but the key was refused */
    CORE_SSH_HOSTKEY,     /* the host's key differs from the one recorded */
} core_ssh_status_t;

typedef struct core_ssh_result {
    core_ssh_status_t status;
    int exit_code; /* of the remote command; 255 = ssh's own failure */
    char *out;     /* stdout, NUL-terminated (owned) */
    size_t out_len;
    char *err; /* stderr, NUL-terminated (owned) */
} core_ssh_result_t;

/*
 * Runs <script> with `sh -c` on <h> (the user's login shell starts it, so a
 * host whose login shell is not POSIX still works), feeding <input> (may be
 * NULL) on its stdin. Gives up after <timeout_ms> (the result is then
 * UNREACHABLE). Returns 0 when ssh could be run at all (look at res->status),
 * or a negative errno. Free <res> with core_ssh_result_free.
 */
int core_ssh_run(const core_ssh_host_t *h, const char *script, const void *input, size_t in_len,
                 long timeout_ms, core_ssh_result_t *res);
/* The same with stdin read from <in_fd> (e.g. a pipe from a local tar). */
int core_ssh_run_fd(const core_ssh_host_t *h, const char *script, int in_fd, long timeout_ms,
                    core_ssh_result_t *res);
void core_ssh_result_free(core_ssh_result_t *res);

/* "ok", "failed", "unreachable", "auth failed", "host key changed". */
const char *core_ssh_status_name(core_ssh_status_t s);

/* Classifies ssh's exit (255 = ssh failed) from its stderr. Pure. */
core_ssh_status_t core_ssh_classify(int exit_code, const char *err);

/* ssh's last stderr line that explains a failure (e.g. "Permission denied
 * (publickey)."), copied into <out>. Pure. */
void core_ssh_reason(const char *err, char *out, size_t outlen);

/* The argv of the ssh command for <h> (NULL-terminated, caller frees with
 * core_ssh_argv_free), exposed for tests and `sky ssh` diagnostics. */
char **core_ssh_argv(const core_ssh_host_t *h, const char *script);
void core_ssh_argv_free(char **argv);

#endif
