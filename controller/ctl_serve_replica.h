#ifndef CTL_SERVE_REPLICA_H
#define CTL_SERVE_REPLICA_H

#include "ctl_serve.h"

/*
 * Replicas on the serve controller's loop (ctl_serve_replica.c): the fleet's
 * decisions turned into thread-pool jobs, and their results fed back.
 */

/* One autoscaler decision for <svc>: new replicas launched, scale-downs drained. */
void ctl_service_autoscale(ctl_service_t *svc);
/* <r>'s share of the tick at <t>: a due termination, a due launch, the task status poll. */
void ctl_replica_tick(ctl_replica_t *r, double t);
/* The provider poll (preemption detection), when one is due at <t>. */
void ctl_serve_poll(ctl_serve_t *s, double t);
/* Asks the provider whether <r>'s instance is still there (after a failed probe). */
void ctl_replica_queue_describe(ctl_replica_t *r);
/* Deletes <r>'s row and drops it from the fleet. */
void ctl_replica_remove(ctl_service_t *svc, ctl_replica_t *r);

#endif
