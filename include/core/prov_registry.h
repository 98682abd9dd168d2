#ifndef CORE_PROV_REGISTRY_H
#define CORE_PROV_REGISTRY_H

#include <stddef.h>

#include "core/catalog.h"
#include "core/prov.h"

/*
 * Which provider launches a candidate. Controllers and `sky launch` never open
 * a provider by name: they ask a registry for the provider of a cloud (a
 * candidate's, or an instance's), and the registry opens it on first use.
 *
 * A driver serves a list of clouds; the one without a list is the default and
 * serves every cloud no other driver names. This build's drivers: the local
 * cloud (sky-localcloud), the default, which simulates every catalog cloud;
 * and SSH Node Pools (core/prov_ssh.h), serving cloud "ssh" (`infra:
 * ssh/POOL`). One service's candidates may span both (spot in the local
 * cloud, on-demand fallback on a pool), which core_prov_registry_launch
 * handles.
 *
 * Handles from a registry are shared: every call may come from any thread
 * (the controllers' thread pools), so providers must be thread-safe.
 */

typedef struct core_prov_driver {
    const char *name;          /* "local": what logs and `sky check` show */
    const char *const *clouds; /* NULL-terminated clouds it launches in; NULL: the default */
    /* Opens a handle; *err (may be NULL) gets a sentence the caller frees. */
    int (*open)(void *arg, core_prov_t **out, char **err);
    void *arg;
} core_prov_driver_t;

/* This build's drivers, the default among them. */
const core_prov_driver_t *core_prov_builtin_drivers(size_t *n);

/*
 * A fresh handle of this build's provider for <cloud> (NULL: the default), for
 * a caller that holds one handle at a time (the CLI, a job's thread). The
 * caller destroys it. Controllers keep a registry instead.
 */
int core_prov_open(const char *cloud, core_prov_t **out, char **err);

typedef struct core_prov_registry core_prov_registry_t;

/* <drivers> (copied; NULL: this build's). -EINVAL when two drivers claim the
 * default or one cloud. Opens nothing. */
int core_prov_registry_new(const core_prov_driver_t *drivers, size_t n, core_prov_registry_t **out);
/* Destroys every handle it opened. */
void core_prov_registry_free(core_prov_registry_t *r);

/* The driver launching in <cloud> (NULL: the default); NULL when none does. */
const core_prov_driver_t *core_prov_registry_driver(const core_prov_registry_t *r,
                                                    const char *cloud);

/*
 * The provider of <cloud>, opened at the first call and shared afterwards;
 * valid until core_prov_registry_free. A failed open (a daemon that does not
 * answer) is retried by the next call. CORE_ENOTFOUND when no driver serves
 * <cloud>.
 */
int core_prov_registry_get(core_prov_registry_t *r, const char *cloud, core_prov_t **out,
                           char **err);

/*
 * Failover in candidate order, each candidate launched by its own cloud's
 * provider (the semantics of core_prov_launch_failover: next candidate after
 * CORE_ENOCAPACITY, stop at any other error).
 */
int core_prov_registry_launch(core_prov_registry_t *r, const core_candidate_t *cands, size_t n,
                              const unsigned char *skip, const char *owner, core_instance_t *out,
                              size_t *chosen, char **err);

/*
 * The instances of every provider (opening them), e.g. to find what an owner
 * holds after a restart. One unreachable provider fails the call: a partial
 * list would look like lost instances. Caller frees *out.
 */
int core_prov_registry_list(core_prov_registry_t *r, core_instance_t **out, size_t *n);

/* Calls on the provider of <cloud>, where an instance lives (core_instance_t.cloud). */
int core_prov_registry_terminate(core_prov_registry_t *r, const char *cloud, const char *id);
int core_prov_registry_describe(core_prov_registry_t *r, const char *cloud, const char *id,
                                core_instance_t *out);

#endif
