#ifndef CTL_SERVE_LB_H
#define CTL_SERVE_LB_H

#include <cjson/cJSON.h>

#include "ctl_serve.h"

/* sky-lb supervision and sync (ctl_serve_lb.c). */

/* Starts, re-adopts or schedules the restart of <svc>'s sky-lb. */
void ctl_lb_ensure(ctl_serve_t *s, ctl_service_t *svc);
void ctl_lb_stop(ctl_serve_t *s, ctl_service_t *svc);
/* The URL the LB routes to for <r>, or NULL when <r> is not in its ready set. Caller frees. */
char *ctl_lb_url(const ctl_service_t *svc, const ctl_replica_t *r);
/* The LB's sync: feeds the autoscaler, returns the ready set. */
cJSON *ctl_serve_lb_sync(ctl_serve_t *s, ctl_service_t *svc, const cJSON *body);

/* A free port for a new service's LB (or its admin listener), from
 * lb_port_start, other than <taken> and the ports of our services; taken
 * under a machine-wide lock (fd, or -1) released by ctl_lb_port_unlock once
 * the LB listens on <port> and <admin_port> (0: do not wait for it). */
int ctl_lb_port_lock(void);
int ctl_lb_pick_port(ctl_serve_t *s, int taken);
void ctl_lb_port_unlock(int fd, int port, int admin_port);

#endif
