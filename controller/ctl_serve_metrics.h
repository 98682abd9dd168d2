#ifndef CTL_SERVE_METRICS_H
#define CTL_SERVE_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "ctl_serve.h"

/*
 * The serve controller's GET /metrics (docs/metrics.md): per service the
 * replicas by status and capacity (spot, on_demand) and the target, the QPS
 * its LB reports, the attempts its LB sent each replica, the hourly cost of
 * its instances, launches, failed launches and preemptions; and the
 * controller's restarts. Prometheus text; the caller frees the result.
 */
char *ctl_serve_metrics_render(ctl_serve_t *s, size_t *len);

/* Whether <r>'s instance is running up a bill (provisioned and not yet gone). */
bool ctl_serve_replica_billed(const ctl_replica_t *r);
/* The service's cost per hour: the prices of its billed replicas, in dollars. */
double ctl_serve_cost_per_hour(const ctl_service_t *svc);

#endif
