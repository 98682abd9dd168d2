#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include <stddef.h>

/*
 * Prometheus text exposition (format 0.0.4) for the controllers' /metrics:
 * a family is opened with its HELP and TYPE lines, then its samples follow,
 * every label value escaped (\\, \", \n) and every value in Go's float
 * syntax (NaN, +Inf, -Inf). Names follow Prometheus conventions: the sky_
 * prefix, base units (seconds, dollars), counters end in _total.
 */
typedef struct ctl_prom {
    char *buf; /* NUL-terminated */
    size_t len, cap;
} ctl_prom_t;

/* Starts a family: "# HELP <name> <help>" and "# TYPE <name> <type>". */
void ctl_prom_family(ctl_prom_t *p, const char *name, const char *type, const char *help);
/* One sample: <name>{k="v",...} <value>. The varargs are label name/value
 * pairs, ended by NULL. */
void ctl_prom_sample(ctl_prom_t *p, const char *name, double value, ...) __attribute__((sentinel));
/* The text (caller frees) and its length; <p> is empty again. */
char *ctl_prom_take(ctl_prom_t *p, size_t *len);

/*
 * A controller's process facts: start time, and restarts counted across
 * runs in <dir>/controller.starts (every start after the first is a restart).
 */
typedef struct ctl_metrics_proc {
    double started_at;
    unsigned long long restarts;
} ctl_metrics_proc_t;

void ctl_metrics_proc_start(ctl_metrics_proc_t *m, const char *dir);
/* sky_controller_restarts_total and sky_controller_start_time_seconds. */
void ctl_metrics_proc_render(ctl_prom_t *p, const ctl_metrics_proc_t *m);

/* What a service's /metrics counts as it happens (reset by a restart, as
 * Prometheus counters may be). */
typedef struct ctl_serve_counters {
    unsigned long long launches;        /* launch attempts started */
    unsigned long long launch_failures; /* attempts that failed (retried or not) */
    unsigned long long preemptions;     /* launched replicas whose instance went away */
} ctl_serve_counters_t;

#define CTL_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
