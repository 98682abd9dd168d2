#ifndef CORE_SSH_POOL_H
#define CORE_SSH_POOL_H

#include <stddef.h>

#include "core/spec.h" /* core_mark_t */

/*
 * SSH Node Pools: machines the user owns, listed in $SKY_HOME/ssh_node_pools.yaml
 * in SkyPilot's format (docs/ssh-node-pools.md):
 *
 *   my-pool:                     # pool name (infra: ssh/my-pool)
 *     user: alice                # optional defaults for every host
 *     identity_file: ~/.ssh/id_ed25519
 *     hosts:
 *       - 10.0.0.5               # an address, or a Host of ~/.ssh/config
 *       - ip: 10.0.0.6           # or a mapping overriding the defaults
 *         user: bob
 *         identity_file: ~/.ssh/bob
 *         port: 2222
 *
 * `password:` (pool or host) is refused: we only use keys. Errors are
 * "file:line:col: what". Nothing here touches the network or the disk
 * beyond reading the file.
 */

#define CORE_SSH_MAX_POOLS 256
#define CORE_SSH_MAX_HOSTS 1024 /* per pool */
#define CORE_SSH_MAX_NAME  63   /* pool names: they become paths and infra strings */

typedef struct core_ssh_host {
    char *host;          /* as written: address or ssh-config alias */
    char *user;          /* host's, else the pool's; NULL = ssh decides */
    char *identity_file; /* host's, else the pool's, "~/" expanded; NULL = ssh decides */
    int port;            /* 0 = ssh decides (22 or the ssh config's) */
    core_mark_t mark;    /* of the host entry */
    core_mark_t identity_mark; /* of the identity_file value that applies */
} core_ssh_host_t;

typedef struct core_ssh_pool {
    char *name;
    core_ssh_host_t *hosts;
    size_t n_hosts;
    core_mark_t mark; /* of the pool's name */
} core_ssh_pool_t;

typedef struct core_ssh_pools {
    char *file; /* for messages */
    core_ssh_pool_t *pools; /* in file order */
    size_t n_pools;
} core_ssh_pools_t;

/* Parses <text>; <file> names it in errors. *err (caller frees) on CORE_ESPEC. */
int core_ssh_pools_parse(const char *text, size_t len, const char *file, core_ssh_pools_t **out,
                         char **err);
/* Reads and parses <path> (NULL: $SKY_HOME/ssh_node_pools.yaml). -ENOENT with
 * *err saying which file is missing. */
int core_ssh_pools_load(const char *path, core_ssh_pools_t **out, char **err);
char *core_ssh_pools_default_path(void);
/* NULL when <name> is not a pool of <ps>. */
const core_ssh_pool_t *core_ssh_pools_find(const core_ssh_pools_t *ps, const char *name);
void core_ssh_pools_free(core_ssh_pools_t *ps);

/* 1 when <name> may name a pool: [A-Za-z0-9][A-Za-z0-9._-]*, at most CORE_SSH_MAX_NAME. */
int core_ssh_pool_name_valid(const char *name);

#endif
