#ifndef CTL_SCALER_H
#define CTL_SCALER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_placer.h"
#include "ctl_replica.h"

struct cJSON;

/*
 * Serve autoscalers (reference sky/serve/autoscalers.py): RequestRate and
 * FallbackRequestRate (spot + on-demand). Pure: the controller passes the
 * replicas' derived state, the request timestamps and the clock; the scaler
 * returns decisions. The dict-valued target_qps_per_replica
 * (InstanceAwareRequestRateAutoscaler) is not implemented.
 */

#define CTL_SCALER_DEFAULT_MIN_REPLICAS          1
#define CTL_SCALER_DEFAULT_UPSCALE_DELAY_S       300.0
#define CTL_SCALER_DEFAULT_DOWNSCALE_DELAY_S     1200.0
#define CTL_SCALER_DEFAULT_DECISION_INTERVAL_S   20.0
#define CTL_SCALER_DEFAULT_NO_REPLICA_INTERVAL_S 5.0
#define CTL_SCALER_DEFAULT_QPS_WINDOW_S          60.0
#define CTL_SCALER_DEFAULT_QPS_MAX_ENTRIES       65536
#define CTL_INITIAL_VERSION                      1

typedef struct ctl_scaler_spec {
    int min_replicas;                    /* 1 */
    int max_replicas;                    /* < 0: unset, i.e. min_replicas */
    double target_qps_per_replica;       /* < 0: unset (fixed size = min_replicas) */
    double upscale_delay_s;              /* 300 */
    double downscale_delay_s;            /* 1200 */
    double decision_interval_s;          /* 20; thresholds = int(delay / interval) */
    double no_replica_interval_s;        /* 5, used when the final target is 0 */
    double qps_window_s;                 /* 60 */
    size_t qps_max_entries;              /* window bound; neighbours merge beyond it */
    int num_overprovision;               /* 0 */
    int base_ondemand_fallback_replicas; /* 0 */
    bool dynamic_ondemand_fallback;
    /*
     * The hedge (`fallback_covers_overprovision: false`): the dynamic
     * fallback covers only the target, not the num_overprovision spot replicas,
     * with on-demand. false (the reference): on-demand covers the shortfall of
     * READY spot against target + overprovision (capped at the target).
     */
    bool fallback_target_only;
} ctl_scaler_spec_t;

void ctl_scaler_spec_default(ctl_scaler_spec_t *spec);
/* CORE_ESPEC with a sentence in *err (caller frees; err may be NULL):
 * min < 0, max < min, target_qps == 0, negative delays/overprovision/base, interval <= 0. */
int ctl_scaler_spec_validate(const ctl_scaler_spec_t *spec, char **err);

typedef enum ctl_scaler_kind {
    CTL_SCALER_REQUEST_RATE = 0,
    CTL_SCALER_FALLBACK, /* base_ondemand_fallback_replicas > 0 or dynamic_ondemand_fallback */
} ctl_scaler_kind_t;

ctl_scaler_kind_t ctl_scaler_kind_for_spec(const ctl_scaler_spec_t *spec);

/* The persisted part: plain fields. */
typedef struct ctl_scaler_state {
    int target; /* target_num_replicas, before num_overprovision */
    int upscale_counter;
    int downscale_counter;
    int latest_version;
    int latest_version_ever_ready; /* starts at latest_version - 1 */
    ctl_update_mode_t update_mode;
} ctl_scaler_state_t;

/* Request timestamps (epoch s) with a count each, sorted by time. */
typedef struct ctl_qps_entry {
    double t;
    uint64_t count;
} ctl_qps_entry_t;

typedef struct ctl_qps_window {
    ctl_qps_entry_t *e; /* live entries are e[start .. start+len) */
    size_t start, len, cap;
    uint64_t total;       /* sum of the live counts */
    uint64_t compactions; /* times the size bound merged neighbouring entries */
    uint64_t dropped;     /* entries evicted (only stamps spread wider than the window) */
} ctl_qps_window_t;

typedef struct ctl_scaler {
    ctl_scaler_kind_t kind;
    ctl_scaler_spec_t spec;
    ctl_scaler_state_t st;
    int up_threshold; /* int(upscale_delay_s / decision_interval_s) */
    int down_threshold;
    ctl_qps_window_t win;
    /* Diagnostics of the last ctl_scaler_decide() (not persisted). */
    bool last_frozen;
    double last_qps;
} ctl_scaler_t;

/* Validates <spec> (CORE_ESPEC); target = min_replicas, latest_version = version. */
int ctl_scaler_init(ctl_scaler_t *s, const ctl_scaler_spec_t *spec, int version, char **err);
void ctl_scaler_destroy(ctl_scaler_t *s);

/*
 * collect_request_information: adds <n> timestamps (any order; usually
 * sorted) and trims everything older than now - window.
 */
void ctl_scaler_add_requests(ctl_scaler_t *s, const double *ts, size_t n, double now);
/* The same for a per-second bucket or any batch sharing one timestamp. */
void ctl_scaler_add_request_count(ctl_scaler_t *s, double t, uint32_t count, double now);
/* Requests per second over the window, re-trimmed at <now>. */
double ctl_scaler_qps(ctl_scaler_t *s, double now);

/* _calculate_target_num_replicas at <now>: clip(ceil(qps/target_qps), min, max). */
int ctl_scaler_calculate_target(ctl_scaler_t *s, double now);
/* One hysteresis tick (_set_target_num_replicas_with_hysteresis). */
void ctl_scaler_hysteresis_tick(ctl_scaler_t *s, double now);
/* target + num_overprovision */
int ctl_scaler_final_target(const ctl_scaler_t *s);
/* Seconds until the next decision: 5 when the final target is 0, else 20. */
double ctl_scaler_next_interval(const ctl_scaler_t *s);

/*
 * A new service version (also a change between the RequestRate and Fallback
 * kinds: the window and latest_version_ever_ready carry over). Takes the new
 * spec, resets the counters and recomputes the thresholds, and sets the
 * target to the computed one at once (no delay). CORE_EINVALREQ when
 * version <= latest_version, CORE_ESPEC for a bad spec (nothing changes).
 */
int ctl_scaler_update_version(ctl_scaler_t *s, int version, const ctl_scaler_spec_t *spec,
                              ctl_update_mode_t mode, double now, char **err);

typedef enum ctl_decision_kind {
    CTL_SCALE_UP = 0,
    CTL_SCALE_DOWN,
} ctl_decision_kind_t;

typedef struct ctl_decision {
    ctl_decision_kind_t kind;
    int use_spot;   /* SCALE_UP: -1 no override (the yaml decides), 0 on-demand, 1 spot */
    int replica_id; /* SCALE_DOWN */
} ctl_decision_t;

/*
 * generate_scaling_decisions: one autoscaler tick at <now>. <r> lists every
 * replica record the controller keeps (failed ones included); <active> are
 * the LB's active versions. *out is allocated (free() it; NULL when *n_out is
 * 0). Outdated-version scale-downs come first, then the kind's own decisions.
 * An unrecoverable failure of a never-ready latest version freezes scaling
 * (no decisions, s->last_frozen set).
 */
int ctl_scaler_decide(ctl_scaler_t *s, const ctl_replica_info_t *r, size_t n, const int *active,
                      size_t n_active, double now, ctl_decision_t **out, size_t *n_out);

/*
 * Persistence across controller restarts (the reference loses all of this,
 * issue #8562). JSON object: target, upscale_counter, downscale_counter,
 * latest_version, latest_version_ever_ready, update_mode, and optionally
 * "requests": [[t, count], ...] and "placer": ctl_placer_to_json().
 * from_json expects <s> initialised from the latest version's spec (and
 * <placer> from the current catalog); it restores the state, clips the target
 * into [min, max], and re-trims the window at <now>. CORE_EJSON on a malformed
 * document, leaving <s> unchanged.
 */
struct cJSON *ctl_scaler_state_to_json(const ctl_scaler_t *s, const ctl_placer_t *placer,
                                       bool include_window);
int ctl_scaler_state_from_json(ctl_scaler_t *s, ctl_placer_t *placer, const struct cJSON *j,
                               double now);

#endif
