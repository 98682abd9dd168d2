#ifndef CTL_SERVE_STORE_H
#define CTL_SERVE_STORE_H

#include <stddef.h>

#include "ctl_placer.h"
#include "ctl_replica.h"

/*
 * The serve controller's SQLite rows: services, their versions, their
 * replicas (the facts the statuses are derived from), and the autoscaler and
 * placer state. One file, $SKY_HOME/serve/services.db.
 */

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
    int lb_admin_port; /* the LB's loopback admin listener (/metrics); 0 = none yet */
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
    char *envs;      /* JSON object of --env overrides, or NULL */
    char *overrides; /* JSON object of the task flags (core_task_parse_with), or NULL */
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

#endif
