#ifndef CTL_SERVE_PROBE_H
#define CTL_SERVE_PROBE_H

#include "ctl_serve.h"

/* Starts the readiness probes due at <t> (ctl_serve_probe.c): a round over
 * <svc>'s tracked replicas every probe_interval, and between rounds the
 * replicas never READY yet every CTL_NEW_PROBE_INTERVAL_S. */
#define CTL_NEW_PROBE_INTERVAL_S 0.5
void ctl_service_probe_tick(ctl_service_t *svc, double t);

#endif
