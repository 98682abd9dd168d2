#ifndef CTL_JOBS_METRICS_H
#define CTL_JOBS_METRICS_H

#include <stddef.h>

#include "ctl_jobs.h"

/*
 * The jobs controller's GET /metrics (docs/metrics.md): each managed job's
 * status and recoveries, the jobs by status, the controller's restarts.
 * Prometheus text (caller frees), or NULL when the store cannot be read.
 */
char *ctl_jobs_metrics_render(ctl_jobs_t *d, size_t *len);

#endif
