#ifndef CORE_SSH_DEPLOY_H
#define CORE_SSH_DEPLOY_H

#include <stddef.h>

#include "core/ssh.h"
#include "core/ssh_pool.h"

/*
 * `sky ssh up` / `sky ssh down` on one pool: install sky-agent on each host
 * over SSH and start it (TLS, the pool's token), or stop and remove it; and
 * the local record of what was set up, $SKY_HOME/ssh/pools/<pool>/hosts.json,
 * which `sky check` and the provider read. Layout (docs/ssh-node-pools.md):
 *
 *   $SKY_HOME/ssh/ca.key, ca.crt      the CA the agents' certificates come from
 *   $SKY_HOME/ssh/known_hosts         host keys (accept-new)
 *   $SKY_HOME/ssh/agents/<addr>       "<pool>": reach <addr>'s agent over TLS
 *   $SKY_HOME/ssh/pools/<pool>/token  the pool's agents' bearer token (0600)
 *   $SKY_HOME/ssh/pools/<pool>/hosts.json, certs/<addr>.crt
 *   host: ~/.sky-agent/<tag>-<pool>/  sky-agent, token, agent.crt/.key, home/,
 *                                     agent.log, agent.pid, port
 * (<tag>: 8 hex digits of the CA's hash, so two controllers' installs of
 * the same pool name on one host stay apart.)
 *
 * Everything blocks; hosts of a pool are handled in parallel threads.
 */

typedef enum core_ssh_host_state {
    CORE_SSH_HOST_OK = 0,
    CORE_SSH_HOST_UNREACHABLE,
    CORE_SSH_HOST_AUTH,
    CORE_SSH_HOST_HOSTKEY,
    CORE_SSH_HOST_WRONG_ARCH,
    CORE_SSH_HOST_NO_BASH,
    CORE_SSH_HOST_NO_PYTHON,
    CORE_SSH_HOST_ERROR, /* anything else: see the reason */
} core_ssh_host_state_t;

/* "ok", "unreachable", "auth failed", "host key changed", "wrong arch",
 * "no bash", "no python3", "error". */
const char *core_ssh_host_state_name(core_ssh_host_state_t s);

typedef struct core_ssh_hostinfo {
    char host[256];    /* as in the pool file */
    char addr[64];     /* where ssh arrived = where the agent listens */
    int agent_port;
    char arch[32];     /* uname -m */
    int cpus;
    double memory_gb;
    int gpus;          /* nvidia-smi's count; 0 without GPUs */
    char gpu_name[64]; /* the first GPU's name, "" without */
    core_ssh_host_state_t state;
    char reason[512];  /* why not ok; a summary when ok */
} core_ssh_hostinfo_t;

/* The local sky-agent to install: path, SHA-256 (checked against the
 * sky-agent.sha256 written next to it at build time) and ELF arch name. */
typedef struct core_ssh_agent_bin {
    char *path;
    char sha[65];
    char arch[32];
    char *data;
    size_t len;
} core_ssh_agent_bin_t;

int core_ssh_agent_bin_load(core_ssh_agent_bin_t *b, char **err);
void core_ssh_agent_bin_free(core_ssh_agent_bin_t *b);
/* uname -m's name for an ELF image's machine ("x86_64", "aarch64", ...); "" if not ELF. */
void core_ssh_elf_arch(const void *data, size_t len, char *out, size_t outlen);

/*
 * Sets up every host of <pool>: *out gets one entry per host in file order
 * (caller frees), and the record is written. Hosts recorded by an earlier up
 * but no longer in the pool are taken down. Idempotent: an agent already
 * running the same binary, certificate and token is left alone (its tasks
 * too). 0 when it could try (see each host's state), or a negative errno
 * with *err for a local problem (no sky-agent, no CA).
 */
int core_ssh_pool_up(const core_ssh_pool_t *pool, const core_ssh_agent_bin_t *bin,
                     core_ssh_hostinfo_t **out, size_t *n, char **err);

/*
 * Stops the agents of pool <name> (and their tasks) and removes what up
 * installed, on the recorded hosts plus <pool>'s (may be NULL). A host that
 * cannot be reached keeps its record (a later down retries it); state
 * CORE_SSH_HOST_OK means removed or nothing was there. *out as for up.
 */
int core_ssh_pool_down(const char *name, const core_ssh_pool_t *pool, core_ssh_hostinfo_t **out,
                       size_t *n, char **err);

/*
 * Instances (the SSH provider, core/prov_ssh.c): an agent of its own per
 * instance in ~/.sky-agent/<dir>/instances/<id>/ on a port of its own, with
 * the pool's token and certificate. start also stops this pool's instances
 * that are not in <keep> (space-separated ids: claims released while the
 * host could not be reached). -EHOSTUNREACH when ssh could not get through,
 * CORE_EINVALREQ when the host refused (not set up, agent would not start).
 */
int core_ssh_install_dir(const char *pool, char *out, size_t outlen);
int core_ssh_instance_start(const core_ssh_host_t *h, const char *pool, const char *addr,
                            const char *id, const char *keep, int *port, char **err);
int core_ssh_instance_stop(const core_ssh_host_t *h, const char *pool, const char *id,
                           long timeout_ms, char **err);

/* The record of <pool>: -ENOENT when it was never set up (or is down). */
int core_ssh_record_load(const char *pool, core_ssh_hostinfo_t **out, size_t *n);
/* Names of the pools with a record, sorted. Caller frees each and the array. */
int core_ssh_record_pools(char ***names, size_t *n);

/* Whether a recorded host's agent answers now (TLS, its pool's token): 0 or
 * the agent client's error. */
int core_ssh_host_alive(const core_ssh_hostinfo_t *h, long timeout_ms);
/* The same for <n> hosts at once (in parallel): rcs[i] for hs[i]. */
void core_ssh_hosts_alive(const core_ssh_hostinfo_t *hs, size_t n, long timeout_ms, int *rcs);

/*
 * Pure parts, exposed for tests: the probe's "key=value" lines into <h>
 * (arch, cpus, memory, GPUs, address) and what the probe reported about an
 * existing install (hashes, running agent's port).
 */
typedef struct core_ssh_probe {
    char agent_sha[65];
    char cert_sha[65];
    char token_sha[65];
    int agent_running;
    int agent_port;
    int bash;
    int python3;
} core_ssh_probe_t;
int core_ssh_parse_probe(const char *out, core_ssh_hostinfo_t *h, core_ssh_probe_t *p);

#endif
