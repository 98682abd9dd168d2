#ifndef CORE_PROV_H
#define CORE_PROV_H

#include <stddef.h>

#include "core/catalog.h"

/*
 * Provider interface shared by both controller modes and `sky launch`.
 * Calls block as a real cloud's do: controllers run them off their loop
 * (uv_queue_work) and apply the results on the loop thread. A handle is
 * thread-safe: a controller shares one between the threads of its pool.
 * Controllers and the CLI get handles from the registry
 * (include/core/prov_registry.h), never from a provider's constructor.
 */
#define CORE_INST_STATE_MAP(XX) XX(PENDING) XX(RUNNING) XX(PREEMPTED) XX(TERMINATED) XX(FAILED)

enum core_inst_state {
#define XX(name) CORE_INST_##name,
    CORE_INST_STATE_MAP(XX)
#undef XX
};

typedef struct core_instance {
    char id[64];
    char cloud[24];
    char region[40];
    char zone[40];
    char instance_type[48];
    int spot;
    enum core_inst_state state;
    char ip[64];          /* the host's address, e.g. "198.18.0.5" */
    int agent_port;       /* where sky-agent listens on <ip> */
    int port_offset;      /* non-root fallback: add to every user port; else 0 */
    double price;         /* $/hour */
    double launched_at;   /* epoch seconds */
    char owner[128];      /* "cluster:NAME", "serve:SVC:ID", "job:ID" */
    double preempt_at;    /* a spot preemption notice: the instance goes at this epoch
                           * second (as EC2's instance-action time); 0 = no notice */
} core_instance_t;

typedef struct core_prov core_prov_t;

typedef struct core_prov_ops {
    const char *name;
    /* Blocks until the instance is RUNNING with its agent answering.
     * Returns CORE_ENOCAPACITY (try elsewhere) or CORE_EINVALREQ (do not);
     * *err (may be NULL) gets a message the caller frees. */
    int (*launch)(core_prov_t *p, const core_candidate_t *cand, const char *owner,
                  core_instance_t *out, char **err);
    /* Idempotent: terminating a gone instance is 0. */
    int (*terminate)(core_prov_t *p, const char *id);
    /* CORE_ENOTFOUND when the provider never knew <id>. */
    int (*describe)(core_prov_t *p, const char *id, core_instance_t *out);
    /* All instances not yet TERMINATED (PREEMPTED ones included). Caller frees *out. */
    int (*list)(core_prov_t *p, core_instance_t **out, size_t *n);
    void (*destroy)(core_prov_t *p);
} core_prov_ops_t;

struct core_prov {
    const core_prov_ops_t *ops;
};

/*
 * The local cloud provider: an HTTP client of sky-localcloud, started again
 * if it died but not if it was taken down ($SKY_HOME/localcloud/,
 * CORE_LC_RESTART in core/localcloud.h). Each call is a blocking request.
 * The registry's default driver; *err (may be NULL) gets a sentence.
 */
int core_prov_local_open(core_prov_t **out, char **err);

static inline int core_prov_launch(core_prov_t *p, const core_candidate_t *c, const char *owner,
                                   core_instance_t *out, char **err)
{
    return p->ops->launch(p, c, owner, out, err);
}
static inline int core_prov_terminate(core_prov_t *p, const char *id)
{
    return p->ops->terminate(p, id);
}
static inline int core_prov_describe(core_prov_t *p, const char *id, core_instance_t *out)
{
    return p->ops->describe(p, id, out);
}
static inline int core_prov_list(core_prov_t *p, core_instance_t **out, size_t *n)
{
    return p->ops->list(p, out, n);
}
static inline void core_prov_destroy(core_prov_t *p)
{
    if (p)
        p->ops->destroy(p);
}

/*
 * Failover: tries <cands> in order (skipping indexes whose skip[i] is set,
 * if skip != NULL), moving on after CORE_ENOCAPACITY, stopping at
 * CORE_EINVALREQ. On success *chosen is the index used. If every candidate
 * lacked capacity, returns CORE_ENOCAPACITY.
 */
int core_prov_launch_failover(core_prov_t *p, const core_candidate_t *cands, size_t n,
                              const unsigned char *skip, const char *owner, core_instance_t *out,
                              size_t *chosen, char **err);

/* "PENDING", ...; "UNKNOWN" out of range. */
const char *core_inst_state_name(enum core_inst_state s);
/* Exact name; -EINVAL otherwise. */
int core_inst_state_parse(const char *s, enum core_inst_state *out);

#endif
