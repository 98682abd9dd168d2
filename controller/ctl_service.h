#ifndef CTL_SERVICE_H
#define CTL_SERVICE_H

#include <stdbool.h>
#include <cjson/cJSON.h>

#include "ctl_serve.h"

/*
 * Services of the serve controller (ctl_service.c): versions, the API's
 * actions, the service status, the views, persistence, startup recovery.
 */

ctl_service_t *ctl_serve_find(ctl_serve_t *s, const char *name);
ctl_replica_t *ctl_service_replica(ctl_service_t *svc, int id);
ctl_version_t *ctl_service_version(ctl_service_t *svc, int version);
ctl_version_t *ctl_service_latest(ctl_service_t *svc);
/* SHUTTING_DOWN, or FAILED_CLEANUP after a down whose terminations failed. */
bool ctl_service_going_down(const ctl_service_t *svc);

/* API actions. Errors: CORE_ESPEC (400, *err), CORE_ECONFLICT (409),
 * CORE_ENOTFOUND (404), CORE_EINFEASIBLE (400, *err). */
typedef struct ctl_task_src {
    const char *yaml;
    const char *yaml_path; /* names the YAML in errors; may be NULL */
    const char *cwd;       /* relative workdir and file_mounts resolve here; may be NULL */
    const char *envs;      /* JSON object of env overrides (sky serve up --env); may be NULL */
    const char *overrides; /* JSON object of the task flags (--cpus, ...); may be NULL */
} ctl_task_src_t;

int ctl_serve_up(ctl_serve_t *s, const char *name, const ctl_task_src_t *src, ctl_service_t **out,
                 char **err);
int ctl_serve_update(ctl_serve_t *s, ctl_service_t *svc, const ctl_task_src_t *src,
                     ctl_update_mode_t mode, int *version, char **err);
int ctl_serve_down(ctl_serve_t *s, ctl_service_t *svc, bool purge);
int ctl_serve_terminate_replica(ctl_serve_t *s, ctl_service_t *svc, int id, bool purge, char **err);

/* Views (sky serve status). */
cJSON *ctl_serve_service_json(ctl_serve_t *s, ctl_service_t *svc);
char *ctl_serve_endpoint(ctl_serve_t *s, ctl_service_t *svc);

/* The service status and active versions from the replicas (persisted on change). */
void ctl_service_update_status(ctl_service_t *svc);
/* A service going down is deleted once nothing is left to terminate. */
void ctl_service_maybe_finish_down(ctl_service_t *svc);
/* Old versions nobody runs any more are forgotten. */
void ctl_service_prune_versions(ctl_service_t *svc);

/* Persistence: one replica row, the service row, the autoscaler and placer
 * state, and whatever the fleet marked dirty. */
void ctl_replica_save(ctl_replica_t *r);
void ctl_service_save(ctl_service_t *svc);
void ctl_service_save_meta(ctl_service_t *svc);
void ctl_service_save_fleet(ctl_service_t *svc);

/* Startup: every stored service, its versions and replicas, in-flight work resumed. */
int ctl_serve_load_services(ctl_serve_t *s);

/* Lowercase letters, digits, '-', starting with a letter, ending with letter/digit, <= 63. */
bool ctl_serve_valid_name(const char *name);

#endif
