#ifndef CTL_FLEET_H
#define CTL_FLEET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/spec.h"
#include "ctl_backoff.h"
#include "ctl_placer.h"
#include "ctl_replica.h"
#include "ctl_scaler.h"
#include "ctl_serve_cfg.h"
#include "ctl_serve_store.h"

/*
 * The fleet: one service's replica table and the rules that move it (the
 * reconcile core). Pure: the clock is passed in, nothing here does I/O.
 *
 * The caller does the I/O and reports back. The serve controller runs
 * launches and terminations in its thread pool against a provider
 * (ctl_serve_replica.c); bench/policy/policy_replay runs them at once against
 * a spot-availability trace in virtual time. Both call the functions below in
 * the same situations, so the policy that is measured is the one that runs:
 *
 *   ctl_fleet_autoscale   autoscaler tick: new replicas, placed by the spot
 *                         placer (launch them), scale-downs (drained)
 *   ctl_fleet_launch_due / _launch_started / _launch_done
 *                         a launch attempt and its outcome (success, no
 *                         capacity, error): placer feedback, retry backoff,
 *                         failed launches
 *   ctl_fleet_instance_gone
 *                         the provider lost the instance (preemption), also
 *                         while it was provisioning
 *   ctl_fleet_notice / ctl_fleet_routable
 *                         a preemption notice: the replacement at the next
 *                         decision (the caller runs one at once), the doomed
 *                         replica drained from sky-lb before its deadline
 *   ctl_fleet_probe       a readiness probe result
 *   ctl_fleet_down_due / _down_started / _down_done
 *                         terminations once their drain is over
 *
 * The replica record is the store's row (ctl_serve_store.h): the fleet
 * decides on exactly what the controller persists. Every function that
 * changes a replica's row sets its `dirty` flag; a change to the autoscaler
 * or placer state sets the fleet's `meta_dirty`. The caller persists and
 * clears them.
 */

typedef struct ctl_fleet_replica {
    ctl_replica_row_t row;
    bool dirty;
    bool busy;             /* the caller runs a launch or a termination of it */
    double next_launch_at; /* a launch waiting for capacity retries from here */
    ctl_backoff_t backoff; /* ... after this backoff (launch_retry_initial, x1.6, jitter) */
    bool backoff_init;
    double preempt_at; /* a preemption notice's deadline (epoch s), 0 = none; not stored:
                        * the provider reports it again after a restart */
    struct ctl_fleet_replica *next;
} ctl_fleet_replica_t;

/* A zone that lost a spot replica recently: the failover tries it last (no placer). */
#define CTL_FLEET_MAX_AVOID 16
typedef struct ctl_fleet_avoid {
    char cloud[24], region[40], zone[40];
    double until;
} ctl_fleet_avoid_t;

/* Allocates a replica id (the controller: never reused across restarts). */
typedef int (*ctl_fleet_id_fn)(void *arg, int *out);

typedef struct ctl_fleet {
    char name[64];              /* the service, for logs */
    const ctl_serve_cfg_t *cfg; /* drain, launch retry and probe timings */
    ctl_scaler_t scaler;
    bool scaler_ok;
    ctl_placer_t placer;
    bool has_placer;
    int version;                   /* new replicas run this version */
    bool spot;                     /* ... and are spot unless the autoscaler says */
    ctl_fleet_replica_t *replicas; /* ascending ids */
    size_t rep_size;               /* the caller's replica struct, ctl_fleet_replica_t first */
    ctl_fleet_id_fn alloc_id;
    void *alloc_arg;
    ctl_rng_fn rng; /* backoff jitter */
    void *rng_arg;
    bool meta_dirty;
    ctl_fleet_avoid_t avoid[CTL_FLEET_MAX_AVOID]; /* not stored: a restart forgets them */
} ctl_fleet_t;

/*
 * <rep_size> >= sizeof(ctl_fleet_replica_t): the fleet allocates the caller's
 * replica struct, whose first member is the ctl_fleet_replica_t, zeroed.
 */
void ctl_fleet_init(ctl_fleet_t *f, const char *name, const ctl_serve_cfg_t *cfg, size_t rep_size,
                    ctl_fleet_id_fn alloc_id, void *alloc_arg, ctl_rng_fn rng, void *rng_arg);
/* Frees every replica, the scaler and the placer. */
void ctl_fleet_destroy(ctl_fleet_t *f);

/* The autoscaler spec of a service: its replica_policy and the controller's timings. */
void ctl_fleet_scaler_spec(const ctl_serve_cfg_t *cfg, const core_service_spec_t *ss,
                           ctl_scaler_spec_t *out);
/*
 * Whether a service gets a spot placer: only with `spot_placer:`, the
 * reference's rule. (Giving every fallback service one was measured on the
 * shipped traces, with either placer, and was not better on every one:
 * bench/RESULTS.md, "Preemption notices and the default placer".)
 */
bool ctl_fleet_wants_placer(const core_task_t *t);
/* Starts the autoscaler for version <version> of <t>. CORE_ESPEC with *err. */
int ctl_fleet_start(ctl_fleet_t *f, const core_task_t *t, int version, char **err);
/*
 * Gives the fleet a spot placer of the kind <t> names (`spot_placer:`;
 * dynamic_fallback when it names none), its backoff in the controller's
 * decision intervals, over the spot candidates among <c> (one location a zone,
 * at its cheapest price, in candidate order).
 */
void ctl_fleet_use_placer(ctl_fleet_t *f, const core_task_t *t, const core_candidate_t *c,
                          size_t n);

/* A replica recovered from the store (the row is copied), in id order. */
ctl_fleet_replica_t *ctl_fleet_add(ctl_fleet_t *f, const ctl_replica_row_t *row);
/*
 * After a controller restart: a termination that was running runs again, a
 * failed launch's cleanup starts. A launch that was running stays so: the
 * caller relaunches it idempotently (adopting the instance it already owns).
 */
void ctl_fleet_recover(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t);
ctl_fleet_replica_t *ctl_fleet_find(const ctl_fleet_t *f, int id);
/* Unlinks and frees <r> (the caller deleted its row). */
void ctl_fleet_remove(ctl_fleet_t *f, ctl_fleet_replica_t *r);
/* The autoscaler's view of every replica, in table order. Caller frees *out. */
size_t ctl_fleet_infos(const ctl_fleet_t *f, ctl_replica_info_t **out);

typedef enum ctl_fleet_action_kind {
    CTL_FLEET_LAUNCH = 0, /* a new replica: launch SCHEDULED, spot or not, placed or not */
    CTL_FLEET_DRAIN,      /* scaled down: SHUTTING_DOWN, terminated once down_at passes */
} ctl_fleet_action_kind_t;

typedef struct ctl_fleet_action {
    ctl_fleet_action_kind_t kind;
    ctl_fleet_replica_t *r;
    ctl_replica_status_t was; /* DRAIN: the status the autoscaler saw */
} ctl_fleet_action_t;

/*
 * One autoscaler decision at <t> (ctl_scaler_decide over the table; <active>
 * are the LB's active versions). New replicas are placed, in decision order,
 * before any is launched, as the controller queues them; a spot replica the
 * placer has no zone for (every zone backing off) is not created: the next
 * decision asks again, and the on-demand fallback covers meanwhile. *out (caller frees)
 * lists the effective actions. The next decision is due after
 * ctl_scaler_next_interval(&f->scaler).
 */
void ctl_fleet_autoscale(ctl_fleet_t *f, const int *active, size_t n_active, double t,
                         ctl_fleet_action_t **out, size_t *n_out);

/* Scale-down on request or by the autoscaler: drained for <drain> seconds. */
void ctl_fleet_scale_down(ctl_fleet_t *f, ctl_fleet_replica_t *r, bool purge, double drain,
                          double t);
/* SHUTTING_DOWN now, terminated after <drain> seconds (a launch in flight is interrupted). */
void ctl_fleet_start_down(ctl_fleet_t *f, ctl_fleet_replica_t *r, double drain, double t);

/*
 * The whole service goes down at <t> (sky serve down): every replica is
 * terminated now, drains cut short, a failed termination retried (unless
 * <purge>). Replicas with nothing left to terminate (and, when purging, those
 * whose termination failed) are listed in *done (caller frees) for the caller
 * to delete and remove.
 */
size_t ctl_fleet_down_all(ctl_fleet_t *f, bool purge, double t, ctl_fleet_replica_t ***done);

/* A launch (first or retry) is due at <t>. */
bool ctl_fleet_launch_due(const ctl_fleet_replica_t *r, double t);
/* The caller starts launching <r>: busy, launch RUNNING, one more attempt. */
void ctl_fleet_launch_started(ctl_fleet_t *f, ctl_fleet_replica_t *r);

typedef enum ctl_fleet_launch_outcome {
    CTL_FLEET_LAUNCHED = 0, /* launch SUCCEEDED */
    CTL_FLEET_SUPERSEDED,   /* scaled down meanwhile: its pending termination takes over */
    CTL_FLEET_RETRY,        /* stays PROVISIONING; retried at r->next_launch_at */
    CTL_FLEET_FAILED,       /* launch FAILED; terminated now (a placer's spot replica goes
                               away after that, so the autoscaler relaunches elsewhere) */
} ctl_fleet_launch_outcome_t;

/*
 * The outcome of a launch attempt at <t>: 0, CORE_ENOCAPACITY (the zone or
 * every candidate was full), CORE_EINVALREQ / CORE_EINFEASIBLE (never
 * launchable as asked), CORE_ESPEC (the task cannot run as written: FAILED as
 * an app that fails its setup), or a transient error (retried up to
 * launch_max_retry attempts). No capacity without a placer waits for capacity (retry_until_up);
 * with one, the zone is marked preempted and the replica fails.
 */
ctl_fleet_launch_outcome_t ctl_fleet_launch_done(ctl_fleet_t *f, ctl_fleet_replica_t *r, int rc,
                                                 double t);

/* A launch that failed before reaching the provider (no usable version, no
 * candidate); <no_capacity>: the placer's location cannot host it. */
void ctl_fleet_launch_failed(ctl_fleet_t *f, ctl_fleet_replica_t *r, bool no_capacity, double t);

/*
 * The launched replica's instance is gone (preempted, or no longer running):
 * PREEMPTED, the placer marks its zone, terminated now. Nothing happens (false)
 * to a replica not launched or already going down.
 */
bool ctl_fleet_preempted(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t);
/*
 * The provider lost <r>'s instance at <t>, whatever <r> was doing: while
 * provisioning, a launch that failed for lack of capacity; launched, as
 * ctl_fleet_preempted; draining, the drain ends (nothing left to drain).
 * Returns true when <r> changed.
 */
bool ctl_fleet_instance_gone(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t);
/*
 * A preemption notice at <t>: <r>'s instance goes at <deadline>. From now on
 * the autoscaler counts <r> as lost, so its next decision launches the
 * replacement, and the placer marks <r>'s zone preempted (the replacement
 * goes elsewhere). <r> keeps serving while ctl_fleet_routable says so; the
 * preemption itself comes as ctl_fleet_instance_gone. Returns true for a
 * new notice (the caller runs a decision at once); false for a repeated
 * one, or a replica not launched or already going down.
 */
bool ctl_fleet_notice(ctl_fleet_t *f, ctl_fleet_replica_t *r, double deadline, double t);
/*
 * Whether sky-lb may route to <r> at <t> (besides its being READY). A replica
 * under notice leaves as soon as the READY replicas not under notice meet the
 * autoscaler's target, and in any case cfg->notice_drain_seconds before its
 * deadline, so that the LB has synced and the requests in flight are done
 * when the instance goes.
 */
bool ctl_fleet_routable(const ctl_fleet_t *f, const ctl_fleet_replica_t *r, double t);

/*
 * Orders the candidates of a launch at <t> of a spot replica without a placer
 * location: the zones where one of the service's spot replicas was preempted
 * (or got a notice) in the last 15 decision intervals go last, in their order,
 * so the failover tries other zones first, as the seed promises ("SkyServe
 * will try different regions and clouds"); if only those have room, they
 * still get it.
 */
void ctl_fleet_order_candidates(const ctl_fleet_t *f, core_candidate_t *c, size_t n, double t);

/* The replica's task failed on its instance: FAILED, terminated now. */
void ctl_fleet_app_failed(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t);

/*
 * A readiness probe result at <t> for a tracked replica (nothing happens to
 * others). <initial_delay_s> is the replica's version's. Terminating actions
 * start the termination.
 */
ctl_probe_action_t ctl_fleet_probe(ctl_fleet_t *f, ctl_fleet_replica_t *r, double initial_delay_s,
                                   bool ok, double t);

/* A scheduled termination is due at <t> (its drain is over). */
bool ctl_fleet_down_due(const ctl_fleet_replica_t *r, double t);
/* The caller starts terminating <r>: busy, down RUNNING. */
void ctl_fleet_down_started(ctl_fleet_t *f, ctl_fleet_replica_t *r);
/*
 * The termination ended. Returns true when the record goes away (the caller
 * deletes its row, then ctl_fleet_remove): after a scale-down, a failed spot
 * launch, a purge, an old version, or when the whole service goes down.
 * Otherwise it stays visible (FAILED*, PREEMPTED...) until purged.
 */
bool ctl_fleet_down_done(ctl_fleet_t *f, ctl_fleet_replica_t *r, bool ok, bool service_down);

#endif
