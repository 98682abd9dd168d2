/*
 * Serve controller timing constants: reference defaults, overridden by the
 * `serve:` section of $SKY_HOME/config.yaml, then by SKY_SERVE_<NAME>
 * environment variables (tests use these for short timings).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/mem.h"
#include "core/util.h"
#include "ctl_replica.h"
#include "ctl_scaler.h"
#include "ctl_serve_cfg.h"

const ctl_serve_cfg_doc_t ctl_serve_cfg_docs[] = {
    {"probe_interval", "10", "readiness probe period (ENDPOINT_PROBE_INTERVAL_SECONDS)"},
    {"decision_interval", "20", "autoscaler period (AUTOSCALER_DEFAULT_DECISION_INTERVAL_SECONDS)"},
    {"no_replica_decision_interval", "5",
     "autoscaler period when the target is 0 (AUTOSCALER_NO_REPLICA_DECISION_INTERVAL_SECONDS)"},
    {"consecutive_failure_threshold", "180",
     "seconds of failing probes before a once-ready replica is FAILED_PROBING"},
    {"drain_seconds", "120",
     "wait before terminating a scaled-down replica (_DEFAULT_DRAIN_SECONDS)"},
    {"lb_sync_interval", "1", "sky-lb -> controller sync period (reference 20)"},
    {"provider_poll_interval", "1", "how often the provider is asked for instance states"},
    {"job_status_interval", "30", "agent task status poll (_JOB_STATUS_FETCH_INTERVAL)"},
    {"launch_retry_initial", "60",
     "first launch retry gap, x1.6 jittered, cap 5x (_RETRY_INIT_GAP_SECONDS)"},
    {"launch_max_retry", "3", "launch attempts for errors other than no-capacity"},
    {"terminate_retry_initial", "5", "first terminate retry gap (terminate_cluster Backoff(5))"},
    {"terminate_max_retry", "3", "terminate attempts before FAILED_CLEANUP"},
    {"qps_window", "60", "request-rate window (AUTOSCALER_QPS_WINDOW_SIZE_SECONDS)"},
    {"lb_port_start", "30001",
     "first port tried for a service's sky-lb (LOAD_BALANCER_PORT_START)"},
    {"lb_restart_initial", "1", "restart gap of a sky-lb that exited within 2 s of its start"},
    {"instance_boot_timeout", "600",
     "wait for a re-adopted instance still PENDING after a restart"},
    {"controller_idle_seconds", "600",
     "with no service for this long the controller exits (the reference's autostop); 0: never"},
    {"endpoint_host", "",
     "host or address the endpoint URLs name (empty: the first non-loopback IPv4)"},
    {"notice_drain_seconds", "5",
     "a replica under a preemption notice leaves sky-lb this long before its deadline, "
     "or as soon as the others meet the target"},
    {NULL, NULL, NULL},
};

void ctl_serve_cfg_default(ctl_serve_cfg_t *c)
{
    c->probe_interval = 10;
    c->decision_interval = CTL_SCALER_DEFAULT_DECISION_INTERVAL_S;
    c->no_replica_decision_interval = CTL_SCALER_DEFAULT_NO_REPLICA_INTERVAL_S;
    c->consecutive_failure_threshold = CTL_DEFAULT_CONSECUTIVE_FAILURE_S;
    c->drain_seconds = 120;
    c->lb_sync_interval = 1;
    c->provider_poll_interval = 1;
    c->job_status_interval = 30;
    c->launch_retry_initial = 60;
    c->launch_max_retry = 3;
    c->terminate_retry_initial = 5;
    c->terminate_max_retry = 3;
    c->qps_window = CTL_SCALER_DEFAULT_QPS_WINDOW_S;
    c->lb_port_start = 30001;
    c->lb_restart_initial = 1;
    c->instance_boot_timeout = 600;
    c->controller_idle_seconds = 600;
    c->endpoint_host[0] = '\0';
    c->notice_drain_seconds = 5;
}

/* A DNS name or an IPv4/IPv6 address, as it goes between "//" and ":port". */
static int set_host(char *out, size_t outlen, const char *v)
{
    size_t n = strlen(v);

    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    if (n >= outlen)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && !strchr(".-:[]", v[i]))
            return -EINVAL;
    /* An IPv6 address needs brackets before a port. */
    if (memchr(v, ':', n) && v[0] != '[') {
        if (n + 2 >= outlen)
            return -EINVAL;
        snprintf(out, outlen, "[%.*s]", (int)n, v);
        return 0;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

int ctl_serve_cfg_set(ctl_serve_cfg_t *c, const char *name, const char *value)
{
    struct {
        const char *name;
        double *d;
        int *i;
        double lo, hi;
    } t[] = {
        {"probe_interval", &c->probe_interval, NULL, 0.05, 86400},
        {"decision_interval", &c->decision_interval, NULL, 0.05, 86400},
        {"no_replica_decision_interval", &c->no_replica_decision_interval, NULL, 0.05, 86400},
        {"consecutive_failure_threshold", &c->consecutive_failure_threshold, NULL, 0, 1e7},
        {"drain_seconds", &c->drain_seconds, NULL, 0, 1e7},
        {"lb_sync_interval", &c->lb_sync_interval, NULL, 0.05, 3600},
        {"provider_poll_interval", &c->provider_poll_interval, NULL, 0.05, 86400},
        {"job_status_interval", &c->job_status_interval, NULL, 0.05, 86400},
        {"launch_retry_initial", &c->launch_retry_initial, NULL, 0, 86400},
        {"launch_max_retry", NULL, &c->launch_max_retry, 1, 1000},
        {"terminate_retry_initial", &c->terminate_retry_initial, NULL, 0, 86400},
        {"terminate_max_retry", NULL, &c->terminate_max_retry, 1, 1000},
        {"qps_window", &c->qps_window, NULL, 1, 86400},
        {"lb_port_start", NULL, &c->lb_port_start, 1, 65535},
        {"lb_restart_initial", &c->lb_restart_initial, NULL, 0.01, 3600},
        {"instance_boot_timeout", &c->instance_boot_timeout, NULL, 1, 1e7},
        {"controller_idle_seconds", &c->controller_idle_seconds, NULL, 0, 1e7},
        {"notice_drain_seconds", &c->notice_drain_seconds, NULL, 0, 86400},
    };

    if (strcmp(name, "endpoint_host") == 0)
        return set_host(c->endpoint_host, sizeof(c->endpoint_host), value);
    for (size_t k = 0; k < CORE_ARRAY_SIZE(t); k++) {
        char num[64];
        size_t n = strlen(value);
        double d;

        if (strcmp(t[k].name, name) != 0)
            continue;
        /* Values from environment variables may end in blanks: forgiven. */
        while (n > 0 && isspace((unsigned char)value[n - 1]))
            n--;
        if (n >= sizeof(num))
            return -EINVAL;
        memcpy(num, value, n);
        num[n] = '\0';
        if (core_parse_num(num, t[k].lo, t[k].hi, &d) < 0)
            return -EINVAL;
        if (t[k].i) {
            if (d != floor(d))
                return -EINVAL;
            *t[k].i = (int)d;
        } else {
            *t[k].d = d;
        }
        return 0;
    }
    return -ENOENT;
}

/* Reads the scalar pairs of the top-level `serve:` mapping. */
static int load_yaml(ctl_serve_cfg_t *c, const char *path, char **err)
{
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_node_t *root;
    char *text = NULL;
    size_t len = 0;
    int rc = core_read_file(path, 1 << 20, &text, &len);

    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        *err = core_xasprintf("%s: %s", path, strerror(-rc));
        return rc;
    }
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        *err = core_xasprintf("%s:%zu:%zu: %s", path, p.problem_mark.line + 1,
                              p.problem_mark.column + 1, p.problem ? p.problem : "bad YAML");
        yaml_parser_delete(&p);
        free(text);
        return -EINVAL;
    }
    rc = 0;
    root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
             pr < root->data.mapping.pairs.top && rc == 0; pr++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
            yaml_node_t *v = yaml_document_get_node(&doc, pr->value);

            if (!k || k->type != YAML_SCALAR_NODE ||
                strcmp((const char *)k->data.scalar.value, "serve") != 0)
                continue;
            if (!v || v->type != YAML_MAPPING_NODE)
                continue;
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *kk = yaml_document_get_node(&doc, q->key);
                yaml_node_t *vv = yaml_document_get_node(&doc, q->value);
                int r;

                if (!kk || !vv || kk->type != YAML_SCALAR_NODE || vv->type != YAML_SCALAR_NODE)
                    continue;
                r = ctl_serve_cfg_set(c, (const char *)kk->data.scalar.value,
                                      (const char *)vv->data.scalar.value);
                if (r == -EINVAL) {
                    *err = core_xasprintf("%s:%zu:%zu: serve.%s: bad value '%s'", path,
                                          vv->start_mark.line + 1, vv->start_mark.column + 1,
                                          kk->data.scalar.value, vv->data.scalar.value);
                    rc = -EINVAL;
                    break;
                }
                /* Unknown keys belong to other serve settings (or newer versions). */
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    free(text);
    return rc;
}

int ctl_serve_cfg_load(ctl_serve_cfg_t *c, const char *config_path, char **err)
{
    int rc;

    *err = NULL;
    if (config_path && (rc = load_yaml(c, config_path, err)) < 0)
        return rc;
    for (const ctl_serve_cfg_doc_t *d = ctl_serve_cfg_docs; d->name; d++) {
        char env[96];
        const char *v;
        size_t i;

        snprintf(env, sizeof(env), "SKY_SERVE_%s", d->name);
        for (i = 10; env[i]; i++)
            env[i] = (char)toupper((unsigned char)env[i]);
        v = getenv(env);
        if (!v || !*v)
            continue;
        if (ctl_serve_cfg_set(c, d->name, v) < 0) {
            *err = core_xasprintf("%s: bad value '%s'", env, v);
            return -EINVAL;
        }
    }
    return 0;
}
