#ifndef FAKE_CLOUD_H
#define FAKE_CLOUD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/prov.h"
#include "core/prov_registry.h"

/*
 * A scripted cloud behind the provider interface, for unit tests and the
 * controller scale benchmark (never for acceptance tests, which use the
 * local cloud). Zones hold a number of spot and on-demand instances; a launch
 * fails with CORE_ENOCAPACITY when its zone is full, or with whatever was
 * scripted for it; lowering a zone's spot capacity preempts its newest spot
 * instances, PENDING ones included; instances can be planted as if launched
 * before a controller restart; requests in flight on an instance are
 * remembered so that a termination cutting them is counted.
 *
 * Time is the caller's: a clock function (virtual in unit tests). With a
 * launch delay, a launch returns its instance PENDING at once (a test's
 * virtual clock cannot advance while a call blocks) and describe/list show it
 * RUNNING once the delay is over; callers wait with describe, as the
 * controller does for an adopted PENDING instance. Thread-safe.
 */

typedef double (*fake_clock_fn)(void *arg);

typedef struct fake_cloud_opts {
    fake_clock_fn clock; /* NULL: core_now() */
    void *clock_arg;
    double launch_delay; /* seconds PENDING after a launch; 0: RUNNING at once */
    const char *ip;      /* every instance's address; NULL: 127.0.0.1 */
    int agent_port;      /* every instance's agent port */
    int port_offset;     /* every instance's port offset */
} fake_cloud_opts_t;

typedef struct fake_cloud fake_cloud_t;

int fake_cloud_new(const fake_cloud_opts_t *o, fake_cloud_t **out);
/* Outlives the handles: free it after every handle and registry using it. */
void fake_cloud_free(fake_cloud_t *f);
/* A handle on <f>; core_prov_destroy frees the handle only. */
core_prov_t *fake_cloud_prov(fake_cloud_t *f);
/* A registry driver whose handles are on <f>; clouds NULL: the default driver. */
core_prov_driver_t fake_cloud_driver(fake_cloud_t *f, const char *const *clouds);

/* What <zone> holds at once (-1: no limit, the default). Lowering the spot
 * capacity below what is held preempts the newest spot instances there. */
void fake_cloud_set_capacity(fake_cloud_t *f, const char *zone, int spot, int ondemand);
/* The next <n> launch attempts in <zone> fail with <rc>, capacity or not. */
void fake_cloud_fail_next(fake_cloud_t *f, const char *zone, int n, int rc);
/* PENDING or RUNNING -> PREEMPTED; CORE_ENOTFOUND for an unknown or ended id. */
int fake_cloud_preempt(fake_cloud_t *f, const char *id);
/* An instance launched earlier (by a controller that then restarted): id,
 * owner, zone, spot and state as given (PENDING ones turn RUNNING after the
 * launch delay from now). Counts against capacity, not as a launch. */
void fake_cloud_plant(fake_cloud_t *f, const core_instance_t *in);
/* Requests in flight on <id> until <until>: terminating it earlier cuts them. */
void fake_cloud_busy_until(fake_cloud_t *f, const char *id, double until);

typedef struct fake_cloud_stats {
    long launches;     /* launch calls */
    long failed;       /* ... that returned an error */
    long terminations; /* terminate calls on live instances */
    long cut;          /* terminations of an instance with requests in flight */
    long preemptions;
} fake_cloud_stats_t;

void fake_cloud_stats(fake_cloud_t *f, fake_cloud_stats_t *out);
/* The instance <id> as describe would show it; CORE_ENOTFOUND. */
int fake_cloud_get(fake_cloud_t *f, const char *id, core_instance_t *out);
/* Instances of <owner> (NULL: any) in <zone> (NULL: any) not TERMINATED,
 * PREEMPTED or FAILED. */
size_t fake_cloud_live(fake_cloud_t *f, const char *owner, const char *zone);

#endif
