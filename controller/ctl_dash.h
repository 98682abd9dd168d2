#ifndef CTL_DASH_H
#define CTL_DASH_H

#include <stdbool.h>

#include "core/http.h"

/*
 * The dashboard the serve controller serves at / (docs/metrics.md#dashboard): a
 * static page (controller/dashboard/, compiled in) that polls
 * GET /api/dashboard with the token and redraws in place. The page and its
 * two files are public; the token comes in the login link's fragment
 * (#token=...), which browsers never send to the server, so it appears in
 * no request line or log, and the page keeps it in the browser's storage.
 *
 * GET /api/dashboard = {"now": epoch, "services": [SERVICE + "cost_per_hour"],
 *   "history": {"<service>": {"t": [...], "spot": [...], "on_demand": [...],
 *               "target": [...], "cost": [...]}},
 *   "jobs": [JOB...] (newest first, at most 200) or null when no job ever ran here}
 * History: one sample every CTL_DASH_SAMPLE_S of each service's READY spot and
 * on-demand replicas, target and cost per hour, the last hour, in memory
 * (a restarted controller starts a new history).
 */
typedef struct ctl_serve ctl_serve_t;
typedef struct ctl_dash ctl_dash_t;

#define CTL_DASH_SAMPLE_S 2.0
#define CTL_DASH_SAMPLES  1800

/* The paths anyone may GET (the page and its files), NULL-terminated. */
extern const char *const ctl_dash_public_paths[];

ctl_dash_t *ctl_dash_new(void);
void ctl_dash_free(ctl_dash_t *d);
/* Called every tick: takes a sample of every service when one is due at <now>. */
void ctl_dash_sample(ctl_dash_t *d, ctl_serve_t *s, double now);
/* Answers the dashboard's routes; false when <req> is not one of them. */
bool ctl_dash_handle(ctl_serve_t *s, core_http_conn_t *conn, const core_http_req_t *req);

#endif
