#ifndef CTL_PROBE_H
#define CTL_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/spec.h"

/* Readiness probes on the controller's loop (ctl_probe.c: curl multi on libuv). */

typedef struct ctl_prober ctl_prober_t;

typedef struct ctl_probe_req {
    const char *url;
    const char *post_data; /* NULL: GET; else POST with a JSON body */
    const core_kv_t *headers;
    size_t n_headers;
    double timeout_s;
} ctl_probe_req_t;

/* ok: HTTP 200 exactly. status 0 when no response arrived (err says why). */
typedef void (*ctl_probe_cb)(void *arg, bool ok, long status, const char *err);

int ctl_prober_new(uv_loop_t *loop, ctl_prober_t **out);
/* Starts one probe; <cb> runs on the loop thread exactly once (unless the
 * prober is closed first, then never). */
int ctl_prober_start(ctl_prober_t *p, const ctl_probe_req_t *req, ctl_probe_cb cb, void *arg);
size_t ctl_prober_in_flight(const ctl_prober_t *p);
/* Aborts the probes in flight (their callbacks do not run) and frees <p>. */
void ctl_prober_close(ctl_prober_t *p);

#endif
