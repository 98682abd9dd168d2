#ifndef CTL_PLACER_H
#define CTL_PLACER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/catalog.h"

struct cJSON;

/*
 * Spot placers: where to launch the next spot replica of a service. Pure
 * state: the controller feeds launch outcomes and preemptions in, with its
 * clock, and asks for a location.
 *
 * - dynamic_fallback: SpotHedge's DynamicFallbackSpotPlacer (reference
 *   sky/serve/spot_placer.py), kept as the reference has it.
 * - spread_backoff: ours. A zone that failed a launch or lost a replica backs
 *   off (per-zone exponential backoff, cleared by a success there). Among the
 *   zones not backing off it takes the one holding the fewest of the
 *   service's spot replicas, then the one with the fewest failures, then the
 *   cheapest. So it never cycles over empty zones, tries every zone (dearer
 *   ones too) before trying a failed one again, spreads replicas, and stacks
 *   them in the zones in use only when every other zone is backing off. When
 *   every zone backs off it places nothing (-EAGAIN) until the first backoff
 *   ends.
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

typedef enum ctl_placer_kind {
    CTL_PLACER_DYNAMIC_FALLBACK = 0,
    CTL_PLACER_SPREAD_BACKOFF,
} ctl_placer_kind_t;

/* "dynamic_fallback", "spread_backoff" */
const char *ctl_placer_kind_name(ctl_placer_kind_t k);

/*
 * spread_backoff's backoff, in autoscaler decision intervals D: after a
 * location's k-th failure, min(D * max(15, n + 1) * 2^(k-1), 180 * D) with n
 * locations. The first (5 min at D = 20 s: a cloud that has just refused
 * capacity rarely has it a minute later) outlasts one round over every other
 * location (one launch per decision), so that the zones in use get the next
 * replica rather than a failed zone being retried; the cap (1 h) bounds how
 * late a zone's returning capacity is noticed.
 */
#define CTL_PLACER_BACKOFF_MIN_DECISIONS 15
#define CTL_PLACER_BACKOFF_MAX_DECISIONS 180
#define CTL_PLACER_DEFAULT_DECISION_S    20.0

typedef struct ctl_placer_loc {
    ctl_location_t loc;
    double cost; /* $/hour of the cheapest feasible spot instance there */
    ctl_location_status_t status;
    /* spread_backoff: failures (failed launches, preemptions) since the last
     * success, the last one's time, and the time before which the location is
     * not chosen. */
    int failures;
    double failed_at;
    double retry_at;
} ctl_placer_loc_t;

typedef struct ctl_placer {
    ctl_placer_loc_t *locs; /* insertion order = tie-break order (reference dict order) */
    size_t n;
    ctl_placer_kind_t kind;     /* dynamic_fallback unless ctl_placer_set_kind() */
    double decision_interval_s; /* spread_backoff's unit of time (D above) */
} ctl_placer_t;

/* Every location starts ACTIVE. A location listed twice keeps its lowest cost.
 * The kind is dynamic_fallback. */
void ctl_placer_init(ctl_placer_t *p);
/* The kind, and the controller's decision interval (ignored unless > 0; default 20 s). */
void ctl_placer_set_kind(ctl_placer_t *p, ctl_placer_kind_t kind, double decision_interval_s);
/* spread_backoff: the backoff after a location's <failures>-th failure. */
double ctl_placer_backoff_s(const ctl_placer_t *p, int failures);
void ctl_placer_add(ctl_placer_t *p, const ctl_location_t *loc, double cost);
/* Spot candidates only, one location per zone at the zone's cheapest spot price. */
void ctl_placer_init_from_candidates(ctl_placer_t *p, const core_candidate_t *c, size_t n);
void ctl_placer_destroy(ctl_placer_t *p);

/*
 * Where to launch the next spot replica at time <now>. <in_use> lists the
 * locations of the service's spot replicas (a location once per replica).
 *
 * dynamic_fallback (select_next_location; <now> unused): the cheapest ACTIVE
 * location not in <in_use>, else the cheapest ACTIVE one.
 * spread_backoff: among the locations not backing off (retry_at <= now), the
 * one with the fewest replicas in <in_use>, then the fewest failures, then the
 * cheapest; -EAGAIN when every location is backing off, with the time the
 * first one is free again in *retry_at (may be NULL): launch nothing before it.
 *
 * Ties go to the earliest added. CORE_ENOTFOUND when there are no locations.
 */
int ctl_placer_select_at(const ctl_placer_t *p, const ctl_location_t *in_use, size_t n_in_use,
                         double now, ctl_location_t *out, double *retry_at);
/*
 * Evidence of capacity at <loc> at time <when>: a launch there that started at
 * <when> succeeded (the controller learns it when provisioning ends, but the
 * capacity was there when the launch began). ACTIVE; spread_backoff clears the
 * backoff and the failure count, unless a failure there came after <when>:
 * older evidence does not undo newer. CORE_ENOTFOUND for an unknown location
 * (the reference asserts).
 */
int ctl_placer_set_active_at(ctl_placer_t *p, const ctl_location_t *loc, double when);
/*
 * A launch at <loc> failed for lack of capacity, or a replica there was
 * preempted. dynamic_fallback: PREEMPTED, and fewer than 2 ACTIVE left resets
 * all to ACTIVE. spread_backoff: PREEMPTED, one more failure, and the location
 * backs off until now + ctl_placer_backoff_s(failures); no reset.
 */
int ctl_placer_set_preemptive_at(ctl_placer_t *p, const ctl_location_t *loc, double now);

/* The forms above at time 0 (the reference's API; the clock matters only to spread_backoff). */
int ctl_placer_select(const ctl_placer_t *p, const ctl_location_t *in_use, size_t n_in_use,
                      ctl_location_t *out);
int ctl_placer_set_active(ctl_placer_t *p, const ctl_location_t *loc);
int ctl_placer_set_preemptive(ctl_placer_t *p, const ctl_location_t *loc);
size_t ctl_placer_num_active(const ctl_placer_t *p);
/* CORE_ENOTFOUND for an unknown location. */
int ctl_placer_status(const ctl_placer_t *p, const ctl_location_t *loc, ctl_location_status_t *out);

/*
 * Persistence (the reference keeps this in memory only): a JSON array of
 * {"cloud","region","zone","cost","status":"ACTIVE"|"PREEMPTED","failures",
 * "failed_at","retry_at"} (the last three optional when read).
 * from_json applies stored states to the locations already added (built
 * from the current catalog); stored locations no longer offered are ignored.
 * CORE_EJSON on a malformed document (p is then unchanged).
 */
struct cJSON *ctl_placer_to_json(const ctl_placer_t *p);
int ctl_placer_from_json(ctl_placer_t *p, const struct cJSON *j);

#endif
