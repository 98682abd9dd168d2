#ifndef CTL_SERVE_CFG_H
#define CTL_SERVE_CFG_H

/*
 * The serve controller's settings (docs/serve-config.md): the
 * reference's defaults, then the `serve:` section of $SKY_HOME/config.yaml,
 * then SKY_SERVE_<NAME> environment variables. The one place the defaults
 * live: the controller and bench/policy/policy_replay both start from
 * ctl_serve_cfg_default().
 */

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
    double controller_idle_seconds;       /* no service for this long: the controller exits */
    char endpoint_host[256]; /* what endpoint URLs name; "": the first non-loopback IPv4 */
    double notice_drain_seconds; /* sky-lb stops routing to a replica this long
                                  * before its preemption notice's deadline: 5 */
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

#endif
