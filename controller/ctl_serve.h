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
#include "ctl_placer.h"
#include "ctl_replica.h"
#include "ctl_scaler.h"

/*
 * sky-controller --mode serve: one daemon for every service (docs/serve-api.md).
 * Decision logic lives in ctl_replica/ctl_scaler/ctl_placer; this layer owns
 * the I/O: SQLite rows, provider and agent calls (thread pool), readiness
 * probes (curl multi on the loop), the sky-lb processes and the HTTP API.
 */

/* ---- timing constants (docs/serve-config.md) ---- */

typedef struct ctl_serve_cfg {
    double probe_interval;                /* ENDPOINT_PROBE_INTERVAL_SECONDS 10 */
    double decision_interval;             /* AUTOSCALER_DEFAULT_DECISION_INTERVAL_SECONDS 20 */
    double no_replica_decision_interval;  /* AUTOSCALER_NO_REPLICA_DECISION_INTERVAL_SECONDS 5 */
    double consecutive_failure_threshold; /* 180 */
    double drain_seconds;                 /* _DEFAULT_DRAIN_SECONDS 120 */
    double lb_sync_interval;              /* 1 (reference 20, see serve-config.md) */
    double provider_poll_interval;        /* 1 */
    double job_status_interval;           /* _JOB_STATUS_FETCH_INTERVAL 30 */
    double launch_retry_initial;          /* _RETRY_INIT_GAP_SECONDS 60 */
    int launch_max_retry;                 /* launch_cluster max_retry 3 */
    double terminate_retry_initial;       /* terminate_cluster Backoff(5) */
    int terminate_max_retry;              /* 3 */
    double qps_window;                    /* AUTOSCALER_QPS_WINDOW_SIZE_SECONDS 60 */
    int lb_port_start;                    /* LOAD_BALANCER_PORT_START 30001 */
    double lb_restart_initial;            /* LB restart backoff start 1 */
    double instance_boot_timeout;         /* wait for a re-adopted PENDING instance: 600 */
} ctl_serve_cfg_t;

void ctl_serve_cfg_default(ctl_serve_cfg_t *c);
/* Sets one constant by its config name ("probe_interval", ...).
 * -ENOENT for an unknown name, -EINVAL for a bad value. */
int ctl_serve_cfg_set(ctl_serve_cfg_t *c, const char *name, const char *value);
/* Applies $SKY_HOME/config.yaml's `serve:` section (<config_path>, may be
 * missing) and then SKY_SERVE_<NAME> environment variables. *err on a bad
 * value (caller frees). */
int ctl_serve_cfg_load(ctl_serve_cfg_t *c, const char *config_path, char **err);
/* Name/default/meaning rows, for docs and `--help`. NULL-terminated. */
typedef struct ctl_serve_cfg_doc {
    const char *name;
    const char *def;
    const char *meaning;
} ctl_serve_cfg_doc_t;
extern const ctl_serve_cfg_doc_t ctl_serve_cfg_docs[];

/* ---- persisted rows (ctl_serve_store.c) ---- */

#define CTL_SVC_NAME_MAX        64
#define CTL_MAX_ACTIVE_VERSIONS 32
#define CTL_MAX_ENVS            256 /* --env overrides per version */

typedef struct ctl_service_row {
    char name[CTL_SVC_NAME_MAX];
    ctl_service_status_t status;
    double created_at;
    double uptime; /* epoch of the first READY probe, 0 = never */
    int lb_port;
    int lb_pid;       /* 0 = none */
    int lb_ctrl_port; /* controller port the running LB syncs with */
    char lb_policy[24];
    char requested_resources[96];
    int active_versions[CTL_MAX_ACTIVE_VERSIONS];
    size_t n_active;
    int purge; /* down --purge in progress */
} ctl_service_row_t;

typedef struct ctl_version_row {
    int version;
    char *yaml;
    char *yaml_path;
    char *cwd;
    char *envs; /* JSON object of --env overrides, or NULL */
    ctl_update_mode_t mode;
} ctl_version_row_t;

void ctl_version_row_clear(ctl_version_row_t *v);

typedef struct ctl_replica_row {
    int id;
    int version;
    ctl_replica_facts_t f;
    ctl_probe_state_t ps;
    int is_spot;
    int use_spot;     /* launch override: -1 yaml, 0, 1 */
    int has_location; /* spot placer location chosen for the launch */
    ctl_location_t loc;
    char instance_id[64]; /* "" until launched */
    char ip[64];
    char cloud[24], region[40], zone[40];
    char instance_type[48];
    char resources[96]; /* "1x Local([Spot]vCPU=2)" */
    int agent_port;
    int port_offset;
    int replica_port;
    double price;
    double launched_at; /* row creation (LAUNCHED column) */
    int agent_task_id;  /* 0 until submitted */
    double down_at;     /* a scheduled termination starts at this time */
    int launch_attempts;
} ctl_replica_row_t;

void ctl_replica_row_init(ctl_replica_row_t *r, int id, int version);
ctl_replica_status_t ctl_replica_row_status(const ctl_replica_row_t *r);

typedef struct ctl_store ctl_store_t;

int ctl_store_open(const char *path, ctl_store_t **out);
void ctl_store_close(ctl_store_t *st);
int ctl_store_begin(ctl_store_t *st);
int ctl_store_commit(ctl_store_t *st);

int ctl_store_put_service(ctl_store_t *st, const ctl_service_row_t *s);
/* Sorted by name. Caller frees *out. */
int ctl_store_list_services(ctl_store_t *st, ctl_service_row_t **out, size_t *n);
/* The service and every version, replica and meta row of it. */
int ctl_store_delete_service(ctl_store_t *st, const char *name);

int ctl_store_put_version(ctl_store_t *st, const char *svc, const ctl_version_row_t *v);
/* Ascending versions; free each with ctl_version_row_clear, then the array. */
int ctl_store_list_versions(ctl_store_t *st, const char *svc, ctl_version_row_t **out, size_t *n);
int ctl_store_delete_versions_below(ctl_store_t *st, const char *svc, int version);
/* MAX(version) + 1 (1 for none). */
int ctl_store_next_version(ctl_store_t *st, const char *svc, int *out);

int ctl_store_put_replica(ctl_store_t *st, const char *svc, const ctl_replica_row_t *r);
/* Ascending ids. Caller frees *out. */
int ctl_store_list_replicas(ctl_store_t *st, const char *svc, ctl_replica_row_t **out, size_t *n);
int ctl_store_delete_replica(ctl_store_t *st, const char *svc, int id);

/*
 * Reserves a replica id: max(stored next id, MAX(replica_id)+1, 1), and
 * stores the one after it. Ids are never reused (the reference restarts at 1).
 */
int ctl_store_alloc_replica_id(ctl_store_t *st, const char *svc, int *out);
/* Autoscaler and placer state (JSON text, NULL = leave as is / none). */
int ctl_store_put_meta(ctl_store_t *st, const char *svc, const char *scaler_json,
                       const char *placer_json);
/* *scaler_json and *placer_json allocated or NULL; *next_id 1 when absent. */
int ctl_store_get_meta(ctl_store_t *st, const char *svc, int *next_id, char **scaler_json,
                       char **placer_json);

/* ---- readiness probes (ctl_probe.c) ---- */

typedef struct ctl_prober ctl_prober_t;

typedef struct ctl_probe_req {
    const char *url;
    const char *post_data; /* NULL: GET; else POST with a JSON body */
    const core_kv_t *headers;
    size_t n_headers;
    double timeout_s;
} ctl_probe_req_t;

/* ok: HTTP 200 exactly. status 0 when no response arrived (err says why). */
typedef void (*ctl_probe_cb)(void *arg, bool ok, long status, const char *err);

int ctl_prober_new(uv_loop_t *loop, ctl_prober_t **out);
/* Starts one probe; <cb> runs on the loop thread exactly once (unless the
 * prober is closed first, then never). */
int ctl_prober_start(ctl_prober_t *p, const ctl_probe_req_t *req, ctl_probe_cb cb, void *arg);
size_t ctl_prober_in_flight(const ctl_prober_t *p);
/* Aborts the probes in flight (their callbacks do not run) and frees <p>. */
void ctl_prober_close(ctl_prober_t *p);

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
    ctl_replica_row_t row;
    ctl_service_t *svc;
    int busy; /* a launch/terminate job is in the thread pool */
    int probing;
    int job_polling;
    int preempt_check;     /* a describe after a failed probe is under way */
    double next_launch_at; /* retry time of a launch waiting for capacity */
    ctl_backoff_t backoff;
    int backoff_init;
    unsigned long long launched_mono; /* when the launch result was applied */
    double next_job_poll;
    struct ctl_replica *next;
} ctl_replica_t;

struct ctl_service {
    ctl_service_row_t row;
    ctl_serve_t *s;
    ctl_version_t *versions; /* ascending */
    size_t n_versions;
    ctl_replica_t *replicas; /* ascending ids */
    ctl_scaler_t scaler;
    int scaler_ok;
    ctl_placer_t placer;
    int has_placer;
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
    const char *home;           /* NULL: $SKY_HOME */
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
