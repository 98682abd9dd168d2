#ifndef TRACE_WORLD_H
#define TRACE_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/catalog.h"
#include "core/prov.h"

/*
 * A spot-availability trace as a cloud (bench/policy/README.md, "Model").
 *
 * The world: one `<zone>_<gpu>_<count>.json` per zone of a trace folder,
 * priced from the catalog. The trace cloud: a provider over that world. A spot
 * launch in a zone succeeds iff the zone's count for the current tick is above
 * the spot instances held there; on-demand always succeeds; launches return
 * at once (provisioning time is the replay's to model, in virtual time).
 */

#define TRACE_MAX_ZONES 64
#define TRACE_MAX_TICKS (10u * 1000 * 1000)

typedef struct zone {
    char name[40];
    char cloud[24];
    char region[40];
    int *data;
    size_t n;
    double spot_price, od_price;
    bool price_fallback;
} zone_t;

typedef struct world {
    zone_t *z;
    size_t nz;
    double gap;
    size_t ticks;
    size_t shortest, longest;
    char tag[40];
    char instance_type[48];
    char cloud[24];
    int od_zone;     /* cheapest on-demand zone: where on-demand replicas and the baseline run */
    int *spot_order; /* zones by spot price, cheapest first (the normal failover order) */
    int n_fallback;  /* zones priced from the average */
} world_t;

typedef struct trace_world_opts {
    const char *trace;         /* the folder */
    const char *gpu;           /* the <gpu>_<count> tag; NULL: v100_1, else the commonest */
    const char *instance_type; /* NULL: from the tag */
    double gap;                /* > 0: replaces every file's gap_seconds */
    long start_tick, n_ticks;  /* the window; n_ticks 0: to the end */
    bool extend;               /* run to the longest file (missing ticks = 0 spot) */
    double spot_discount;      /* >= 0: spot = on-demand x this, in every zone */
} trace_world_opts_t;

int trace_world_load(world_t *w, const trace_world_opts_t *o, const core_catalog_t *cat,
                     char **err);
void trace_world_free(world_t *w);

/* The candidate of zone <z> (spot or on-demand) at the world's prices. */
void trace_world_candidate(const world_t *w, int z, int spot, core_candidate_t *out);
/* The index of zone <name>, -1. */
int trace_world_zone(const world_t *w, const char *name);

/* The trace cloud: instances held per zone against the current tick's counts. */
typedef struct trace_cloud trace_cloud_t;

trace_cloud_t *trace_cloud_new(const world_t *w);
/* A provider handle; core_prov_destroy frees the handle, not the cloud. */
core_prov_t *trace_cloud_prov(trace_cloud_t *c);
void trace_cloud_free(trace_cloud_t *c);
/* Tick <tick>'s spot counts (0 past a file's end). */
void trace_cloud_set_tick(trace_cloud_t *c, size_t tick);
int trace_cloud_capacity(const trace_cloud_t *c, int z);
int trace_cloud_held_spot(const trace_cloud_t *c, int z);
/* A spot instance lost: released, PREEMPTED. */
void trace_cloud_preempt(trace_cloud_t *c, const char *id);
/* Acquisition order of instance <id> (newest = largest), 0 if unknown. */
uint64_t trace_cloud_seq(const trace_cloud_t *c, const char *id);

#endif
