#ifndef CORE_PROV_SSH_H
#define CORE_PROV_SSH_H

#include <stddef.h>

#include "core/catalog.h"
#include "core/prov.h"

struct core_resources;

/*
 * The SSH Node Pool provider (docs/ssh-node-pools.md): `infra: ssh/POOL`.
 * Hosts set up by `sky ssh up` offer their CPUs, memory and GPUs; a launch
 * claims a host that fits (claims in $SKY_HOME/ssh/claims.db, shared by
 * every process of the SKY_HOME) and starts an agent of the instance's own
 * there over SSH; terminate releases the claim at once and stops that agent.
 * An instance is cloud "ssh", region = pool, zone = host, never spot, price 0.
 * An instance is its agent: describe and list report FAILED one whose agent
 * does not answer (host dead, link down), as a cloud reports a dead VM.
 *
 * Thread-safe: a registry shares one handle among a controller's threads.
 *
 * Candidates: cloud "ssh", region = pool (or "" for any pool), zone = host
 * (or "" for any host of the pool); vcpus/memory_gb/accelerator say what to
 * claim. A spot candidate is CORE_EINVALREQ.
 */
int core_prov_ssh_open(core_prov_t **out, char **err);

/* The RUNNING instance whose agent listens at <ip>:<port> (what a task's
 * files are staged for, core/ssh_stage.c); CORE_ENOTFOUND when none. */
typedef struct core_ssh_claim {
    char id[64];
    char pool[64];
    char host[256]; /* as in the pool file */
} core_ssh_claim_t;
int core_prov_ssh_find(const char *ip, int port, core_ssh_claim_t *out);

/*
 * The candidates of <res> (one entry, not its any_of) on SSH Node Pools:
 * one per pool set up with a host that could hold the request (cloud
 * "ssh"; region = res->region or every pool; zone = res->zone or ""),
 * price 0. cpus unset claims 1 CPU, memory unset none. CORE_EINFEASIBLE
 * with *err when none can (use_spot, no such pool, nothing big enough).
 */
int core_prov_ssh_candidates(const struct core_resources *res, core_candidate_t **out, size_t *n,
                             char **err);

/* ---- placement (pure, for tests) ---- */

typedef struct core_ssh_slot {
    int usable;          /* set up ok and its agent answers */
    double cpus;         /* what the host has */
    double memory_gb;
    int gpus;
    const char *gpu_name; /* "" without */
    double used_cpus;    /* what live claims hold */
    double used_memory_gb;
    int used_gpus;
    int claims;     /* live claims */
    int same_group; /* live claims of the asking owner's group */
} core_ssh_slot_t;

typedef struct core_ssh_ask {
    double cpus;
    double memory_gb;
    const char *accelerator; /* NULL or "": none */
    int accelerator_count;
    int exclusive; /* a host holds one claim of the group at most (a service's replicas
                    * share ports) */
} core_ssh_ask_t;

/*
 * The slot to claim, spreading: the fewest claims of the same group, then
 * the fewest claims, then the most free CPUs, then the first. -1 when none
 * fits, with *why (why the first host did not). Pure.
 */
int core_ssh_place(const core_ssh_slot_t *slots, size_t n, const core_ssh_ask_t *ask, char *why,
                   size_t whylen);

/* "serve:SVC:" for "serve:SVC:ID"; otherwise the owner itself. Exclusive
 * groups: a service's replicas (same ports). */
void core_ssh_owner_group(const char *owner, char *out, size_t outlen, int *exclusive);

#endif
