#ifndef CORE_SPEC_H
#define CORE_SPEC_H

#include <stddef.h>

/*
 * Task / service YAML (SkyPilot-compatible) parsed into typed structs.
 *
 * Parsing (core_task_load / core_task_parse) checks the schema: unknown keys,
 * types, value ranges, and the rules that concern the service section alone
 * (reference/skyserve.md §2: max >= min, target_qps needs max_replicas, ...).
 * core_task_validate_service adds the task-level rules of §2.1 (ports, use_spot,
 * job_recovery); core_task_validate_job the managed-jobs ones. Every error is an
 * allocated "file:line:col: message" (line/col 1-based, of the offending node).
 *
 * Conventions for "unset" in the structs below: strings NULL, numbers 0 for
 * cpus/memory/disk_size (they cannot be 0 when set), -1 for tri-states and
 * optional counts. All strings and arrays are owned by the task and freed by
 * core_task_free.
 */

/* Input larger than this is refused before parsing. */
#define CORE_SPEC_MAX_BYTES (1024 * 1024)

/* Position of a YAML node, 1-based; 0/0 when the value was not in the YAML. */
typedef struct core_mark {
    int line;
    int col;
} core_mark_t;

typedef struct core_kv {
    char *key;
    char *value;      /* envs: NULL when the YAML gave no value (must come from --env) */
    core_mark_t mark; /* of the key */
} core_kv_t;

/* An inclusive port range; a single port has lo == hi. */
typedef struct core_port_range {
    int lo;
    int hi;
} core_port_range_t;

/* job_recovery.strategy; EAGER_NEXT_REGION is the default. */
#define CORE_RECOVERY_STRATEGY_MAP(XX) XX(EAGER_NEXT_REGION) XX(FAILOVER)

typedef enum core_recovery_strategy {
#define XX(name) CORE_RECOVERY_##name,
    CORE_RECOVERY_STRATEGY_MAP(XX)
#undef XX
} core_recovery_strategy_t;

typedef struct core_job_recovery {
    int set; /* 1 if job_recovery/spot_recovery was given */
    core_recovery_strategy_t strategy;
    int max_restarts_on_errors; /* default 0 */
    int *recover_on_exit_codes; /* 0..255 */
    size_t n_recover_on_exit_codes;
    core_mark_t mark;
} core_job_recovery_t;

/*
 * resources: section. Each any_of/ordered entry is stored already merged over
 * the enclosing resources (the entry's fields override the outer ones), so a
 * consumer can use an entry directly; entries have n_any_of == 0.
 */
typedef struct core_resources {
    char *cloud;      /* lowercased; NULL = any (also set by infra: cloud/region/zone) */
    char *region;     /* NULL = any */
    char *zone;       /* NULL = any */
    double cpus;      /* 0 = unset */
    int cpus_plus;    /* "2+" = at least 2 */
    double memory_gb; /* 0 = unset */
    int memory_plus;
    char *accelerator;     /* NULL = none, e.g. "V100" (as written; match case-insensitively) */
    int accelerator_count; /* >= 1 when accelerator is set ("V100" = 1) */
    char *instance_type;   /* NULL = any */
    int use_spot;          /* -1 unset (= on-demand), 0 false, 1 true */
    core_port_range_t *ports;
    size_t n_ports; /* 0 = unset */
    int disk_size;  /* GB, 0 = unset; kept, not used for placement */
    core_job_recovery_t job_recovery;

    struct core_resources *any_of; /* location/config candidates (merged, see above) */
    size_t n_any_of;
    int ordered; /* 1 if the list came from `ordered:` (keep list order) */

    core_mark_t mark;          /* of the resources mapping (or the any_of entry) */
    core_mark_t ports_mark;    /* of the ports value */
    core_mark_t use_spot_mark; /* of the use_spot value */
} core_resources_t;

typedef enum core_mount_mode {
    CORE_MOUNT_MOUNT = 0, /* bucket mounted, outlives instances (default for storage) */
    CORE_MOUNT_COPY,      /* contents copied at launch */
} core_mount_mode_t;

/*
 * file_mounts entry. dst -> "local/path" gives is_storage 0, mode COPY, src set.
 * dst -> {name, source, store, mode, persistent} gives is_storage 1.
 */
typedef struct core_file_mount {
    char *dst;
    int is_storage;
    char *src;          /* local path or bucket URL; NULL if absent (storage) */
    char *src_resolved; /* src with ~ expanded and made absolute if local; NULL if src NULL */
    char *name;         /* bucket name (storage; required) */
    char *store;        /* optional, e.g. "s3", "gcs"; kept, not used */
    core_mount_mode_t mode;
    int persistent; /* default 1 */
    core_mark_t mark;
} core_file_mount_t;

typedef struct core_readiness_probe {
    char *path;                   /* default "/"; always starts with '/' */
    double initial_delay_seconds; /* default 1200 */
    double timeout_seconds;       /* default 15 */
    char *post_data;              /* JSON text (json.dumps style) or NULL = GET */
    core_kv_t *headers;
    size_t n_headers;
} core_readiness_probe_t;

typedef enum core_lb_policy {
    CORE_LB_ROUND_ROBIN = 0,
    CORE_LB_LEAST_LOAD, /* default */
    CORE_LB_POWER_OF_TWO,
} core_lb_policy_t;

typedef enum core_spot_placer {
    CORE_SPOT_PLACER_NONE = 0,
    CORE_SPOT_PLACER_DYNAMIC_FALLBACK, /* the reference's (SpotHedge) */
    CORE_SPOT_PLACER_SPREAD_BACKOFF,   /* ours: controller/ctl_placer.h */
} core_spot_placer_t;

typedef struct core_replica_policy {
    int min_replicas;              /* default 1; `replicas: N` sets it */
    int max_replicas;              /* -1 unset (= min_replicas) */
    double target_qps_per_replica; /* valid when has_target_qps */
    int has_target_qps;
    double upscale_delay_seconds;        /* default 300 */
    double downscale_delay_seconds;      /* default 1200 */
    int num_overprovision;               /* -1 unset (None) */
    int base_ondemand_fallback_replicas; /* -1 unset (None, behaves as 0) */
    int dynamic_ondemand_fallback;       /* -1 unset (None, behaves as false), 0, 1 */
    /* Ours: 0 = the dynamic fallback covers only target_num_replicas, not the
     * num_overprovision hedge; -1 unset (behaves as 1, the reference). */
    int fallback_covers_overprovision;
    core_spot_placer_t spot_placer;

    core_mark_t mark; /* of replica_policy (or of `replicas:`) */
    core_mark_t max_replicas_mark;
    core_mark_t target_qps_mark;
    core_mark_t base_ondemand_mark;
    core_mark_t covers_overprovision_mark;
} core_replica_policy_t;

typedef struct core_service_spec {
    core_readiness_probe_t probe;
    core_replica_policy_t policy;
    int has_replicas_shorthand; /* 1 if `replicas:` was used */
    core_lb_policy_t lb_policy;
    char *tls_keyfile; /* both NULL or both set */
    char *tls_certfile;
    int ports; /* service.ports, 0 = unset */
    /* Derived: dynamic_ondemand_fallback == 1 || base_ondemand_fallback_replicas > 0. */
    int use_ondemand_fallback;

    core_mark_t mark; /* of the service mapping */
    core_mark_t ports_mark;
    core_mark_t spot_placer_mark;
    core_mark_t fallback_mark; /* of base_ondemand/dynamic_ondemand (last given) */
} core_service_spec_t;

typedef struct core_task {
    char *filename;         /* as given to load/parse (used in error messages) */
    char *name;             /* NULL if absent */
    char *workdir;          /* as written, NULL if absent */
    char *workdir_resolved; /* ~ expanded, absolute against the cwd at parse time */
    char *setup;            /* NULL if absent */
    char *run;              /* NULL if absent */
    core_kv_t *envs;        /* in YAML order */
    size_t n_envs;
    core_kv_t *secrets; /* same rules as envs */
    size_t n_secrets;
    core_file_mount_t *file_mounts; /* in YAML order */
    size_t n_file_mounts;
    int num_nodes;                /* default 1 */
    core_resources_t resources;   /* defaults when the section is absent */
    core_service_spec_t *service; /* NULL when there is no service: section */
    /* Valid SkyPilot keys this implementation cannot honour: one
     * "file:line:col: warning: ..." each, in file order (then overrides'). */
    char **warnings;
    size_t n_warnings;
} core_task_t;

/* Reads <path> (at most CORE_SPEC_MAX_BYTES) and parses it. 0 or CORE_ESPEC / -errno. */
int core_task_load(const char *path, core_task_t **out, char **err);
/* <filename> is only used in messages (e.g. "<db>"); NULL gives "<string>". */
int core_task_parse(const char *text, size_t len, const char *filename, core_task_t **out,
                    char **err);

/*
 * The task as a user asked for it, in the reference's order
 * (sky/utils/task_yaml.py from_yaml_config, command.py
 * _make_task_or_dag_from_entrypoint_with_overrides):
 *   1. <envs> (the CLI's --env/--env-file, a JSON object of strings) and
 *      overrides.secrets (--secret) replace or add the YAML's envs and secrets;
 *   2. `${VAR}` and `$VAR` naming one of them (secrets win) are substituted in
 *      file_mounts (keys and values), the service section and workdir; other
 *      names stay as written;
 *   3. the rest of <overrides> (the task flags) is applied, see below.
 * Both may be NULL. The stores keep <envs> and <overrides> next to the YAML,
 * so that a restarted controller rebuilds the same task from the three.
 *
 * <overrides> members (each optional; a null value resets the field):
 *   "resources": {"cpus": "4+", "memory": "16+", "accelerators": "V100:1",
 *       "instance_type": S, "use_spot": B, "infra": "cloud[/region[/zone]]",
 *       "cloud": S, "region": S, "zone": S, "ports": [S...],
 *       "job_recovery": "FAILOVER", and the resource keys that only warn
 *       (image_id, disk_size, disk_tier, network_tier)} applied to the
 *       resources and to every any_of/ordered entry (Resources.copy(**override));
 *   "secrets": {"K": "V"}; "workdir": an absolute path; "num_nodes": N.
 * Values are checked as the same YAML keys would be; errors name
 * "task overrides". Unknown members are errors.
 */
struct cJSON;
int core_task_parse_with(const char *text, size_t len, const char *filename,
                         const struct cJSON *envs, const struct cJSON *overrides,
                         core_task_t **out, char **err);
void core_task_free(core_task_t *t);

/*
 * Task-level service rules (reference/skyserve.md §2.1) plus the service-only
 * rules checked at parse time. Returns the service's main port (> 0) or a
 * negative error (CORE_ESPEC, *err set). CORE_ESPEC too if t->service is NULL.
 */
int core_task_validate_service(const core_task_t *t, char **err);

/*
 * 1 when the task asks for spot: its any_of candidates (which inherit the
 * outer use_spot, and which validation keeps all spot or all on-demand) when
 * it has them, else its resources.
 */
int core_task_uses_spot(const core_task_t *t);

/*
 * Managed-job rules: every env/secret has a value, all resource candidates
 * use the same job_recovery strategy, no service section.
 * 0 or CORE_ESPEC with *err.
 */
int core_task_validate_job(const core_task_t *t, char **err);

/* Sets or replaces an env (CLI --env KEY=VALUE); keeps YAML order for existing keys. */
void core_task_set_env(core_task_t *t, const char *key, const char *value);
/* core_task_set_env for each string of a JSON object (the CLI's --env and
 * --env-file overrides as the APIs carry them); other members are skipped. */
void core_task_set_envs(core_task_t *t, const struct cJSON *envs);

/*
 * The job recovery of a task: the first resource candidate's (they must agree,
 * see core_task_validate_job); the default EAGER_NEXT_REGION when none is set.
 */
const core_job_recovery_t *core_task_job_recovery(const core_task_t *t);

/* The multi-line repr the reference prints at `serve up` (§2). Caller frees. */
char *core_service_repr(const core_service_spec_t *s);

/* "round_robin", "least_load", "power_of_two" (static). */
const char *core_lb_policy_name(core_lb_policy_t p);
/* "EAGER_NEXT_REGION", "FAILOVER" (static). */
const char *core_recovery_strategy_name(core_recovery_strategy_t s);
/* Either name, in any case (as the YAML takes it); CORE_ENOTFOUND otherwise. */
int core_recovery_strategy_parse(const char *name, core_recovery_strategy_t *out);

/*
 * Copies <src> into <dst> (deep); overrides use_spot when use_spot >= 0 and
 * cloud/region/zone when non-NULL (the reference's Resources.copy(**override)
 * for per-replica launches). Free with core_resources_clear.
 */
void core_resources_copy(core_resources_t *dst, const core_resources_t *src, int use_spot,
                         const char *cloud, const char *region, const char *zone);
void core_resources_clear(core_resources_t *r);

#endif
