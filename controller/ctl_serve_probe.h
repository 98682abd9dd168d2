#ifndef CTL_SERVE_PROBE_H
#define CTL_SERVE_PROBE_H

#include "ctl_serve.h"

/* Starts a readiness probe round over <svc>'s tracked replicas (ctl_serve_probe.c). */
void ctl_service_probe_round(ctl_service_t *svc);

#endif
