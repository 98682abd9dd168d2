#ifndef CTL_REPLICA_H
#define CTL_REPLICA_H

#include <stdbool.h>
#include <stddef.h>

#include "ctl_placer.h"

/*
 * Replica status model of the reference (sky/serve/serve_state.py and
 * replica_managers.ReplicaStatusProperty). The status is never stored: the
 * controller stores the facts and derives the status with
 * ctl_replica_derive_status().
 */
#define CTL_REPLICA_STATUS_MAP(XX)                                                                 \
    XX(PENDING) XX(PROVISIONING) XX(STARTING) XX(READY) XX(NOT_READY) XX(SHUTTING_DOWN)           \
    XX(FAILED) XX(FAILED_INITIAL_DELAY) XX(FAILED_PROBING) XX(FAILED_PROVISION)                   \
    XX(FAILED_CLEANUP) XX(PREEMPTED) XX(UNKNOWN)

typedef enum ctl_replica_status {
#define XX(name) CTL_REPLICA_##name,
    CTL_REPLICA_STATUS_MAP(XX)
#undef XX
    CTL_REPLICA_STATUS_COUNT,
} ctl_replica_status_t;

/* "PENDING", ...; "?" out of range. */
const char *ctl_replica_status_name(ctl_replica_status_t s);
/* CORE_ENOTFOUND for an unknown name. */
int ctl_replica_status_parse(const char *name, ctl_replica_status_t *out);
/* FAILED, FAILED_CLEANUP, FAILED_INITIAL_DELAY, FAILED_PROBING, FAILED_PROVISION, UNKNOWN */
bool ctl_replica_status_is_failed(ctl_replica_status_t s);
/* SHUTTING_DOWN, PREEMPTED, UNKNOWN and the failed ones */
bool ctl_replica_status_is_terminal(ctl_replica_status_t s);
/* Index in [PENDING, PROVISIONING, STARTING, NOT_READY, READY]; -1 if absent. */
int ctl_replica_status_scale_down_rank(ctl_replica_status_t s);

/* common_utils.ProcessStatus of the launch and down workers; NONE is Python None. */
#define CTL_PROC_STATUS_MAP(XX)                                                                    \
    XX(NONE) XX(SCHEDULED) XX(RUNNING) XX(SUCCEEDED) XX(INTERRUPTED) XX(FAILED)

typedef enum ctl_proc_status {
#define XX(name) CTL_PROC_##name,
    CTL_PROC_STATUS_MAP(XX)
#undef XX
    CTL_PROC_STATUS_COUNT,
} ctl_proc_status_t;

/* "NONE", ...; "?" out of range. CORE_ENOTFOUND for an unknown name. */
const char *ctl_proc_status_name(ctl_proc_status_t s);
int ctl_proc_status_parse(const char *name, ctl_proc_status_t *out);

/* first_ready_time sentinels: Python None, and the "initial delay exceeded" -1. */
#define CTL_READY_NEVER          (-2.0)
#define CTL_READY_DELAY_EXCEEDED (-1.0)

/* ReplicaStatusProperty. */
typedef struct ctl_replica_facts {
    ctl_proc_status_t launch;
    ctl_proc_status_t down;
    bool user_app_failed;
    bool service_ready_now;
    double first_ready_time; /* >= 0 epoch s, or a CTL_READY_* sentinel */
    bool is_scale_down;
    bool preempted;
    bool purged;
    bool failed_spot_availability;
} ctl_replica_facts_t;

/* A fresh replica: PENDING (launch NONE, down NONE, first_ready_time NEVER). */
void ctl_replica_facts_init(ctl_replica_facts_t *f);
/* to_replica_status(): reference §3.1, first matching rule wins. */
ctl_replica_status_t ctl_replica_derive_status(const ctl_replica_facts_t *f);
/* should_track_service_status(): which replicas are probed. */
bool ctl_replica_should_track(const ctl_replica_facts_t *f);
/* unrecoverable_failure(): only terminal replicas; ever-ready => false. */
bool ctl_replica_unrecoverable_failure(const ctl_replica_facts_t *f);
/* _handle_sky_down_finish: true = delete the record, false = keep it visible. */
bool ctl_replica_remove_after_down(const ctl_replica_facts_t *f, int version, int latest_version);

/* ---- readiness-probe bookkeeping (ReplicaManager._probe_all_replicas) ---- */

#define CTL_DEFAULT_INITIAL_DELAY_S       1200.0
#define CTL_DEFAULT_CONSECUTIVE_FAILURE_S 180.0 /* 10 s for pools */

typedef struct ctl_probe_params {
    double initial_delay_s; /* from the replica's own version spec */
    double consecutive_failure_s;
} ctl_probe_params_t;

void ctl_probe_params_default(ctl_probe_params_t *p);

/* consecutive_failure_times reduced to what the rule reads: first and last. */
typedef struct ctl_probe_state {
    double first_not_ready_time; /* -1: none yet (first failed probe after launch) */
    double first_fail_time;      /* -1: no consecutive failures */
    double last_fail_time;
    int n_fail;
} ctl_probe_state_t;

void ctl_probe_state_init(ctl_probe_state_t *s);

typedef enum ctl_probe_action {
    CTL_PROBE_NOTHING = 0,
    CTL_PROBE_MARK_READY,     /* was not ready; now READY (check first_ready_time for uptime) */
    CTL_PROBE_MARK_NOT_READY, /* ready before; failing but under the threshold */
    CTL_PROBE_TERMINATE_FAILED_PROBING,
    CTL_PROBE_TERMINATE_FAILED_INITIAL_DELAY,
} ctl_probe_action_t;

/*
 * Applies one probe result taken at time <t> (success = HTTP 200 exactly) to
 * the facts and the probe state and says what the controller must do. The
 * terminate actions have already set the facts' ready fields (the caller sets
 * down/SCHEDULED when it starts the termination). A spot replica's probe
 * failure should also trigger the preemption check (not done here).
 */
ctl_probe_action_t ctl_replica_record_probe(ctl_replica_facts_t *f, ctl_probe_state_t *s,
                                            const ctl_probe_params_t *p, bool ok, double t);

/* ---- what the autoscaler sees of a replica ---- */

typedef struct ctl_replica_info {
    int id;
    int version;
    bool is_spot;
    ctl_replica_status_t status; /* derived */
    bool unrecoverable;          /* ctl_replica_unrecoverable_failure(facts) */
    bool has_location;
    ctl_location_t location; /* spot placer location, if any */
} ctl_replica_info_t;

void ctl_replica_info_fill(ctl_replica_info_t *r, int id, int version, bool is_spot,
                           const ctl_replica_facts_t *f);

/*
 * _select_nonterminal_replicas_to_scale_down: sorts by (scale-down rank,
 * version asc, id desc) and writes the first <k> ids to <out_ids>.
 * Candidates whose status has no rank sort last. Returns the number written
 * (min(k, n)).
 */
size_t ctl_replica_select_scale_down(const ctl_replica_info_t *cands, size_t n, size_t k,
                                     int *out_ids);

/* ---- service status and active versions ---- */

#define CTL_SERVICE_STATUS_MAP(XX)                                                                 \
    XX(CONTROLLER_INIT) XX(REPLICA_INIT) XX(CONTROLLER_FAILED) XX(READY) XX(SHUTTING_DOWN)        \
    XX(FAILED) XX(FAILED_CLEANUP) XX(NO_REPLICA)

typedef enum ctl_service_status {
#define XX(name) CTL_SERVICE_##name,
    CTL_SERVICE_STATUS_MAP(XX)
#undef XX
    CTL_SERVICE_STATUS_COUNT,
} ctl_service_status_t;

/* "CONTROLLER_INIT", ...; "?" out of range. CORE_ENOTFOUND for an unknown name. */
const char *ctl_service_status_name(ctl_service_status_t s);
int ctl_service_status_parse(const char *name, ctl_service_status_t *out);

/* ServiceStatus.from_replica_statuses(): READY > FAILED > NO_REPLICA (empty) > REPLICA_INIT. */
ctl_service_status_t ctl_service_status_from_statuses(const ctl_replica_status_t *st, size_t n);
/*
 * The status the reference shows: from_replica_statuses() of the READY
 * replicas only (quirk kept: READY or NO_REPLICA; the seed docs print
 * NO_REPLICA 0/4 while replicas provision). ready_only=false uses all.
 */
ctl_service_status_t ctl_service_status_from_replicas(const ctl_replica_info_t *r, size_t n,
                                                      bool ready_only);

typedef enum ctl_update_mode {
    CTL_UPDATE_ROLLING = 0,
    CTL_UPDATE_BLUE_GREEN,
} ctl_update_mode_t;

const char *ctl_update_mode_name(ctl_update_mode_t m); /* "rolling", "blue_green" */
int ctl_update_mode_parse(const char *name, ctl_update_mode_t *out);

typedef struct ctl_version_min {
    int version;
    int min_replicas;
} ctl_version_min_t;

/*
 * The LB's active versions (sorted ascending). ROLLING: every version with a
 * READY replica. BLUE_GREEN: the newest version whose READY count >= its own
 * min_replicas (<mins>; a version missing from it needs 1), else the oldest
 * version with a READY replica. Writes at most <cap> versions; returns the count.
 */
size_t ctl_active_versions(const ctl_replica_info_t *r, size_t n, ctl_update_mode_t mode,
                           const ctl_version_min_t *mins, size_t n_mins, int *out, size_t cap);

#endif
