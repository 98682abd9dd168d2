#ifndef CTL_SERVE_H
#define CTL_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "core/catalog.h"
#include "core/http.h"
#include "core/prov.h"
#include "core/prov_registry.h"
#include "core/spec.h"
#include "ctl_backoff.h"
#include "ctl_fleet.h"
#include "ctl_placer.h"
#include "ctl_probe.h"
#include "ctl_replica.h"
#include "ctl_scaler.h"
#include "ctl_serve_cfg.h"
#include "ctl_serve_store.h"

/*
 * sky-controller --mode serve: one daemon for every service (docs/serve-api.md).
 * Decision logic lives in ctl_replica/ctl_scaler/ctl_placer; this layer owns
 * the I/O: SQLite rows, provider and agent calls (thread pool), readiness
 * probes (curl multi on the loop), the sky-lb processes and the HTTP API.
 */

/* ---- the daemon ---- */

typedef struct ctl_serve ctl_serve_t;
typedef struct ctl_service ctl_service_t;

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
} ctl_replica_t;

struct ctl_service {
    ctl_service_row_t row;
    ctl_serve_t *s;
    ctl_version_t *versions; /* ascending */
    size_t n_versions;
    ctl_fleet_t fleet; /* the replicas, the autoscaler and the spot placer */
    double next_decision;
    double next_probe;
    int probes_pending;
    int probed_once;
    /* sky-lb */
    uv_process_t *lb_proc; /* our child; NULL for an adopted or absent LB */
    double lb_restart_at;  /* 0: none scheduled */
    double lb_spawned_at;
    ctl_backoff_t lb_backoff;
    int refs; /* jobs in flight that point at us */
    int deleted;
    struct ctl_service *next;
};

typedef struct ctl_serve_opts {
    int port;
    const char *home;            /* NULL: $SKY_HOME */
    core_prov_registry_t *provs; /* NULL: this build's providers */
} ctl_serve_opts_t;

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
    char host_ip[64]; /* first non-loopback IPv4, shown in endpoints */
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

ctl_service_t *ctl_serve_find(ctl_serve_t *s, const char *name);
ctl_replica_t *ctl_service_replica(ctl_service_t *svc, int id);
ctl_version_t *ctl_service_version(ctl_service_t *svc, int version);
ctl_version_t *ctl_service_latest(ctl_service_t *svc);

/* API actions. Errors: CORE_ESPEC (400, *err), CORE_ECONFLICT (409),
 * CORE_ENOTFOUND (404), CORE_EINFEASIBLE (400, *err). */
typedef struct ctl_task_src {
    const char *yaml;
    const char *yaml_path; /* names the YAML in errors; may be NULL */
    const char *cwd;       /* relative workdir and file_mounts resolve here; may be NULL */
    const char *envs;      /* JSON object of env overrides (sky serve up --env); may be NULL */
} ctl_task_src_t;

int ctl_serve_up(ctl_serve_t *s, const char *name, const ctl_task_src_t *src, ctl_service_t **out,
                 char **err);
int ctl_serve_update(ctl_serve_t *s, ctl_service_t *svc, const ctl_task_src_t *src,
                     ctl_update_mode_t mode, int *version, char **err);
int ctl_serve_down(ctl_serve_t *s, ctl_service_t *svc, bool purge);
int ctl_serve_terminate_replica(ctl_serve_t *s, ctl_service_t *svc, int id, bool purge, char **err);
cJSON *ctl_serve_service_json(ctl_serve_t *s, ctl_service_t *svc);
/* The LB's sync: feeds the autoscaler, returns the ready set. */
cJSON *ctl_serve_lb_sync(ctl_serve_t *s, ctl_service_t *svc, const cJSON *body);
char *ctl_serve_endpoint(ctl_serve_t *s, ctl_service_t *svc);
char *ctl_serve_log_path(ctl_serve_t *s, const char *svc, const char *file);
/* Writes a line to the service's replica_<id>.log. */
void ctl_serve_replica_log(ctl_serve_t *s, const char *svc, int id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ctl_api.c */
void ctl_api_handle(core_http_conn_t *conn, const core_http_req_t *req, void *ud);

/* Pure helpers (unit tested). */
/* Lowercase letters, digits, '-', starting with a letter, ending with letter/digit, <= 63. */
bool ctl_serve_valid_name(const char *name);
/* The directory of a relative <path> against <cwd>; absolute and ~ paths as given. Caller frees. */
char *ctl_serve_resolve_path(const char *path, const char *cwd);

#endif
