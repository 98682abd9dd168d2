#ifndef CTL_PLACER_H
#define CTL_PLACER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/catalog.h"

struct cJSON;

/*
 * SpotHedge's DynamicFallbackSpotPlacer (reference sky/serve/spot_placer.py).
 * Pure state: the controller feeds launch outcomes and preemptions in and
 * asks where to launch the next spot replica.
 */

/* (cloud, region, zone); zone "" is the reference's None. */
typedef struct ctl_location {
    char cloud[24];
    char region[40];
    char zone[40];
} ctl_location_t;

bool ctl_location_equal(const ctl_location_t *a, const ctl_location_t *b);
void ctl_location_set(ctl_location_t *l, const char *cloud, const char *region, const char *zone);
void ctl_location_from_candidate(ctl_location_t *l, const core_candidate_t *c);

typedef enum ctl_location_status {
    CTL_LOC_ACTIVE = 0,
    CTL_LOC_PREEMPTED,
} ctl_location_status_t;

typedef struct ctl_placer_loc {
    ctl_location_t loc;
    double cost; /* $/hour of the cheapest feasible spot instance there */
    ctl_location_status_t status;
} ctl_placer_loc_t;

typedef struct ctl_placer {
    ctl_placer_loc_t *locs; /* insertion order = tie-break order (reference dict order) */
    size_t n;
} ctl_placer_t;

/* Every location starts ACTIVE. A location listed twice keeps its lowest cost. */
void ctl_placer_init(ctl_placer_t *p);
void ctl_placer_add(ctl_placer_t *p, const ctl_location_t *loc, double cost);
/* Spot candidates only, one location per zone at the zone's cheapest spot price. */
void ctl_placer_init_from_candidates(ctl_placer_t *p, const core_candidate_t *c, size_t n);
void ctl_placer_destroy(ctl_placer_t *p);

/*
 * select_next_location: the cheapest ACTIVE location not in <in_use> (the
 * locations of the service's spot replicas), else the cheapest ACTIVE one.
 * Ties go to the earliest added. CORE_ENOTFOUND when there are no locations.
 */
int ctl_placer_select(const ctl_placer_t *p, const ctl_location_t *in_use, size_t n_in_use,
                      ctl_location_t *out);
/* Launch success. CORE_ENOTFOUND for an unknown location (the reference asserts). */
int ctl_placer_set_active(ctl_placer_t *p, const ctl_location_t *loc);
/* Launch failure or preemption: PREEMPTED; fewer than 2 ACTIVE left resets all to ACTIVE. */
int ctl_placer_set_preemptive(ctl_placer_t *p, const ctl_location_t *loc);
size_t ctl_placer_num_active(const ctl_placer_t *p);
/* CORE_ENOTFOUND for an unknown location. */
int ctl_placer_status(const ctl_placer_t *p, const ctl_location_t *loc, ctl_location_status_t *out);

/*
 * Persistence (the reference keeps this in memory only): a JSON array of
 * {"cloud","region","zone","cost","status":"ACTIVE"|"PREEMPTED"}.
 * from_json applies stored statuses to the locations already added (built
 * from the current catalog); stored locations no longer offered are ignored.
 * CORE_EJSON on a malformed document (p is then unchanged).
 */
struct cJSON *ctl_placer_to_json(const ctl_placer_t *p);
int ctl_placer_from_json(ctl_placer_t *p, const struct cJSON *j);

#endif
