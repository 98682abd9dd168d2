#ifndef CTL_SERVE_H
#define CTL_SERVE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "core/catalog.h"
#include "core/http.h"
#include "core/prov_registry.h"
#include "core/spec.h"
#include "ctl_backoff.h"
#include "ctl_fleet.h"
#include "ctl_idle.h"
#include "ctl_lb_report.h"
#include "ctl_metrics.h"
#include "ctl_serve_cfg.h"
#include "ctl_serve_store.h"

/*
 * sky-controller --mode serve: one daemon for every service (docs/serve-api.md).
 * The daemon's own types: a service, its versions and replicas, and the
 * daemon that holds them. What each part does lives in its own module:
 *   ctl_fleet.h          the reconcile core (pure): replicas, autoscaler, placer
 *   ctl_service.h        services, versions, API actions, status, views
 *   ctl_serve_replica.h  launches, terminations, preemptions on the loop
 *   ctl_serve_work.h     the blocking provider and agent calls (thread pool)
 *   ctl_serve_probe.h    readiness probe rounds
 *   ctl_serve_lb.h       sky-lb supervision and its sync
 *   ctl_api.h            the HTTP API
 */

typedef struct ctl_serve ctl_serve_t;
typedef struct ctl_service ctl_service_t;
typedef struct ctl_prober ctl_prober_t; /* ctl_probe.h */

typedef struct ctl_version {
    ctl_version_row_t row;
    core_task_t *task;
    int port;          /* the replica's main port */
    char *fingerprint; /* everything but `service:`, for replica reuse on update */
} ctl_version_t;

typedef struct ctl_replica {
    ctl_fleet_replica_t fr; /* first: the service's fleet allocates ctl_replica_t */
    ctl_service_t *svc;
    int probing;
    int job_polling;
    int preempt_check;                /* a describe after a failed probe is under way */
    unsigned long long launched_mono; /* when the launch result was applied */
    double next_job_poll;
    /* Attempts the LB sent it and those that failed, summed from its syncs. */
    unsigned long long lb_requests, lb_failures;
    /* Final responses the LB relayed from it, by status class 1xx..5xx. */
    unsigned long long lb_responses[CTL_LB_CLASSES];
} ctl_replica_t;

struct ctl_service {
    ctl_service_row_t row;
    ctl_serve_t *s;
    ctl_version_t *versions; /* ascending */
    size_t n_versions;
    ctl_fleet_t fleet;  /* the replicas, the autoscaler and the spot placer */
    char *saved_scaler; /* the autoscaler and placer state as last written */
    char *saved_placer;
    double next_decision;
    double next_probe;
    double next_new_probe; /* replicas not READY yet are probed more often */
    int probes_pending;
    int probed_once;
    /* sky-lb */
    uv_process_t *lb_proc; /* our child; NULL for an adopted or absent LB */
    double lb_restart_at;  /* 0: none scheduled */
    double lb_spawned_at;
    ctl_backoff_t lb_backoff;
    ctl_serve_counters_t counters; /* /metrics */
    int deleted;
    struct ctl_service *next;
};

typedef struct ctl_serve_opts {
    int port;
    const char *home;            /* NULL: $SKY_HOME */
    core_prov_registry_t *provs; /* NULL: this build's providers */
} ctl_serve_opts_t;

/* The last ticks' durations, for GET /api/controller (the scale benchmark reads them). */
#define CTL_TICK_SAMPLES 4096
typedef struct ctl_tick_stats {
    float ms[CTL_TICK_SAMPLES];              /* ring */
    unsigned char decided[CTL_TICK_SAMPLES]; /* an autoscaler decision ran in that tick */
    unsigned long long count;
    double max_ms;
} ctl_tick_stats_t;

struct ctl_serve {
    uv_loop_t *loop;
    ctl_serve_cfg_t cfg;
    char *home;
    char *serve_dir; /* $SKY_HOME/serve */
    char *token;
    char *token_path;
    char *lb_path; /* sky-lb binary */
    ctl_store_t *store;
    core_catalog_t *catalog;
    core_http_server_t *http;
    int port;
    char host_ip[256]; /* what endpoints name: cfg.endpoint_host, else the first non-loopback IPv4 */
    ctl_prober_t *prober;
    ctl_service_t *services; /* sorted by name */
    uv_timer_t tick;
    uv_signal_t sigterm, sigint;
    int poll_busy;
    double next_poll;
    int stopping;
    int lock_fd;
    core_prov_registry_t *provs; /* shared by the thread pool's jobs */
    ctl_rng_t rng;
    ctl_tick_stats_t ticks;
    ctl_idle_t idle;
    ctl_metrics_proc_t proc; /* restarts, start time (/metrics) */
    struct ctl_dash *dash;   /* the dashboard's history (ctl_dash.h) */
    bool stop_when_empty;    /* `sky serve down -a`: exit once the last service is gone */
};

int ctl_serve_main(const ctl_serve_opts_t *opts);

static inline ctl_replica_t *ctl_replica_first(const ctl_service_t *svc)
{
    return (ctl_replica_t *)svc->fleet.replicas;
}
static inline ctl_replica_t *ctl_replica_next(const ctl_replica_t *r)
{
    return (ctl_replica_t *)r->fr.next;
}
#define CTL_FOR_EACH_REPLICA(svc, r)                                                               \
    for (ctl_replica_t *r = ctl_replica_first(svc); r; r = ctl_replica_next(r))

/* {"pid","services","replicas","tick":{"count","total","p50_ms","p99_ms","max_ms",
 * "decision":{"count","p50_ms","p99_ms"}}}: the ticks from number <since> on, within
 * the last CTL_TICK_SAMPLES. */
cJSON *ctl_serve_stats_json(ctl_serve_t *s, unsigned long long since);

/* The replica <id> of service <svcname>, and (svc_out, may be NULL) the service. */
ctl_replica_t *ctl_serve_find_replica(ctl_serve_t *s, const char *svcname, int id,
                                      ctl_service_t **svc_out);

/* $SKY_HOME/serve/<svc>/<file> (svc NULL: $SKY_HOME/serve/<file>). Caller frees. */
char *ctl_serve_log_path(ctl_serve_t *s, const char *svc, const char *file);
void ctl_serve_replica_log_path(ctl_serve_t *s, const char *svc, int id, char *out, size_t outlen);
/* Appends a timestamped line to <path>; thread-safe (one O_APPEND write). */
void ctl_serve_vlog(const char *path, const char *fmt, va_list ap);
/* Writes a line to the service's replica_<id>.log. */
void ctl_serve_replica_log(ctl_serve_t *s, const char *svc, int id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
