#ifndef CORE_CATALOG_H
#define CORE_CATALOG_H

#include <stddef.h>

/*
 * The catalog: clouds -> regions -> zones -> instance types with on-demand
 * and spot prices (data/catalog.yaml, overridable by $SKY_HOME/catalog.yaml).
 */
typedef struct core_catalog core_catalog_t;

/* One launchable choice: where, what, and at which price. */
typedef struct core_candidate {
    char cloud[24];
    char region[40];
    char zone[40];
    char instance_type[48];
    int spot;              /* 1 = spot, 0 = on-demand */
    double price;          /* $/hour for this spot/on-demand choice */
    double vcpus;
    double memory_gb;
    char accelerator[24];  /* "" when none, e.g. "V100" */
    int accelerator_count;
} core_candidate_t;

struct core_resources; /* include/core/spec.h */

/* path NULL: $SKY_HOME/catalog.yaml if present, else the shipped data/catalog.yaml.
 * Errors are "file:line:col: message" in *err (caller frees). */
int core_catalog_load(const char *path, core_catalog_t **out, char **err);
void core_catalog_free(core_catalog_t *cat);

/*
 * Resolves a task's resources (any_of included) into launchable candidates,
 * cheapest first; ties broken by cloud, region, zone, type for a stable order.
 * Entries on cloud "ssh" are not the catalog's: they resolve to the SSH Node
 * Pools set up in $SKY_HOME (core_prov_ssh_candidates, price 0; use_spot is
 * infeasible there).
 * *out is allocated (caller frees). CORE_EINFEASIBLE with *err naming the
 * requirement that no instance satisfies.
 */
int core_catalog_resolve(const core_catalog_t *cat, const struct core_resources *res,
                         core_candidate_t **out, size_t *n, char **err);

/* Visits every (cloud, region, zone) once, in catalog order; stops at a
 * non-zero return of <cb> and returns it. */
typedef int (*core_catalog_zone_cb)(const char *cloud, const char *region, const char *zone,
                                    void *arg);
int core_catalog_each_zone(const core_catalog_t *cat, core_catalog_zone_cb cb, void *arg);

/* "GCP" for "gcp", "AWS" for "aws", ... (static); an unknown cloud as given. */
const char *core_cloud_display_name(const char *cloud);

/* "1x GCP([Spot]vCPU=2)": the candidate's cloud as the reference names it
 * (core_cloud_display_name), as the seed's serve tables print RESOURCES; an
 * SSH Node Pool's with its pool, "1x SSH/lab(vCPU=2)". */
void core_candidate_label(const core_candidate_t *c, char *out, size_t outlen);

/*
 * Per-launch adjustments for the controllers (additive to core_catalog_resolve).
 * use_spot: -1 = as the resources say; 0/1 = override (serve autoscaler's
 *   {'use_spot': ...} override, applied to every candidate, any_of included).
 * cloud/region/zone: NULL = no restriction; otherwise the candidates are
 *   restricted to that location in addition to the resources' own filters
 *   (serve spot placer's {'cloud','region','zone'} override; the jobs recovery
 *   strategies' "same region first"). A location the resources exclude gives
 *   CORE_EINFEASIBLE.
 * A zeroed struct is NOT "no override" (use_spot 0): use CORE_RESOLVE_OPTS_INIT.
 */
typedef struct core_resolve_opts {
    int use_spot;
    const char *cloud;
    const char *region;
    const char *zone;
} core_resolve_opts_t;

#define CORE_RESOLVE_OPTS_INIT {-1, NULL, NULL, NULL}

/*
 * core_catalog_resolve with <opts> (NULL = none). Same ordering and errors.
 * Matching rules (both functions): cpus/memory exact, or at least with "+";
 * accelerators by name (case-insensitive) and exact count; a request without
 * accelerators gets no GPU type unless instance_type names one; a request with
 * none of cpus/memory/accelerators/instance_type gets the reference's default
 * shape, 8+ vCPUs and 32+ GB; spot candidates only when use_spot is true (after
 * the override), on-demand only otherwise. any_of is a union sorted cheapest
 * first; `ordered` keeps the entries' order (each entry sorted). Duplicates
 * (same place, type and spot) are dropped.
 */
int core_catalog_resolve_ex(const core_catalog_t *cat, const struct core_resources *res,
                            const core_resolve_opts_t *opts, core_candidate_t **out, size_t *n,
                            char **err);

/* A (cloud, region, zone) triple, e.g. a spot placer location. */
typedef struct core_location {
    char cloud[24];
    char region[40];
    char zone[40];
} core_location_t;

/*
 * The distinct zones where <res> (with the use_spot override, -1 = none) has
 * a candidate, ordered by each zone's cheapest candidate (then cloud, region,
 * zone). For the spot placer's set of possible locations. *out allocated.
 */
int core_catalog_locations(const core_catalog_t *cat, const struct core_resources *res,
                           int use_spot, core_location_t **out, size_t *n, char **err);

/* Price of <instance_type> in <zone> of <region>/<cloud>, spot or on-demand.
 * 0, or CORE_ENOTFOUND (unknown location/type, or no spot offer there). */
int core_catalog_price(const core_catalog_t *cat, const char *cloud, const char *region,
                       const char *zone, const char *instance_type, int spot, double *price);

#endif
