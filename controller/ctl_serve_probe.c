/*
 * Readiness probe rounds: every probe_interval, each tracked replica is
 * probed (ctl_probe.c, on the loop); results go to the fleet
 * (ctl_fleet_probe), and a failed probe also asks the provider whether the
 * instance is still there.
 *
 * A round does not wait for the previous one's probes: one to a dead host
 * runs until its timeout (15 s by default), and the others' replicas (a
 * new one replacing it among them) must not wait that long to be READY. A
 * replica has one probe in flight at most (r->probing). (The reference waits
 * for every probe of a round before the next one.)
 *
 * Between rounds, a replica that was never READY is probed every
 * CTL_NEW_PROBE_INTERVAL_S: a new replica's server comes up at any moment of
 * the interval, and waiting for the next round would add up to a whole
 * probe_interval to its READY (and to a dead replica's replacement). Once
 * READY, it is probed with the rounds only. (The reference probes every
 * replica every probe_interval.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_probe.h"
#include "ctl_serve.h"
#include "ctl_serve_probe.h"
#include "ctl_serve_replica.h"
#include "ctl_service.h"

/* The readiness probe's initial delay of <r>'s version. */
static double initial_delay(ctl_service_t *svc, const ctl_replica_t *r)
{
    ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);

    if (v && v->task && v->task->service)
        return v->task->service->probe.initial_delay_seconds;
    return CTL_DEFAULT_INITIAL_DELAY_S;
}

typedef struct probe_arg {
    ctl_serve_t *s;
    char svc[CTL_SVC_NAME_MAX];
    int id;
    char instance_id[64];
} probe_arg_t;

/* CONTROLLER_INIT until the first round's probes all answered; afterwards
 * every answer that changed a replica counts at once. */
static void round_done(ctl_service_t *svc, bool changed)
{
    if (svc->probes_pending > 0 && !(svc->probed_once && changed))
        return;
    svc->probed_once = 1;
    ctl_service_update_status(svc);
}

static void on_probe(void *arg, bool ok, long status, const char *err)
{
    probe_arg_t *pa = arg;
    ctl_service_t *svc;
    ctl_replica_t *r = ctl_serve_find_replica(pa->s, pa->svc, pa->id, &svc);
    ctl_replica_facts_t before;
    ctl_probe_action_t act;
    double t = core_now();

    if (svc && svc->probes_pending > 0)
        svc->probes_pending--;
    if (!r || strcmp(r->fr.row.instance_id, pa->instance_id) != 0) {
        if (svc)
            round_done(svc, false);
        free(pa);
        return;
    }
    r->probing = 0;
    if (!ctl_replica_should_track(&r->fr.row.f)) {
        round_done(svc, false);
        free(pa);
        return;
    }
    before = r->fr.row.f;
    act = ctl_fleet_probe(&svc->fleet, &r->fr, initial_delay(svc, r), ok, t);
    if (!ok)
        CORE_DEBUG("%s replica %d: probe failed (%ld %s)", svc->row.name, r->fr.row.id, status,
                   err ? err : "");
    switch (act) {
    case CTL_PROBE_MARK_READY:
        CORE_INFO("%s replica %d: READY", svc->row.name, r->fr.row.id);
        ctl_serve_replica_log(svc->s, svc->row.name, r->fr.row.id, "readiness probe OK: READY");
        if (svc->row.uptime <= 0) {
            svc->row.uptime = r->fr.row.f.first_ready_time;
            ctl_service_save(svc);
        }
        break;
    case CTL_PROBE_MARK_NOT_READY:
        if (before.service_ready_now)
            CORE_WARN("%s replica %d: NOT_READY (%ld %s)", svc->row.name, r->fr.row.id, status,
                      err ? err : "");
        break;
    case CTL_PROBE_TERMINATE_FAILED_PROBING:
    case CTL_PROBE_TERMINATE_FAILED_INITIAL_DELAY:
        ctl_serve_replica_log(svc->s, svc->row.name, r->fr.row.id, "%s: terminating",
                              act == CTL_PROBE_TERMINATE_FAILED_PROBING
                                  ? "probes failing for too long (FAILED_PROBING)"
                                  : "not ready within the initial delay (FAILED_INITIAL_DELAY)");
        break;
    default:
        break;
    }
    if (r->fr.dirty)
        ctl_replica_save(r);
    if (!ok)
        ctl_replica_queue_describe(r); /* preemption check, not only the probe timeout */
    round_done(svc, act != CTL_PROBE_NOTHING);
    free(pa);
}

/* Probes <svc>'s tracked replicas (only those never READY when <new_only>). */
static void probe_round(ctl_service_t *svc, bool new_only)
{
    ctl_serve_t *s = svc->s;

    CTL_FOR_EACH_REPLICA(svc, r)
    {
        ctl_version_t *v = ctl_service_version(svc, r->fr.row.version);
        const core_readiness_probe_t *pr;
        ctl_probe_req_t req;
        probe_arg_t *pa;
        char *url;

        if (r->probing || !ctl_replica_should_track(&r->fr.row.f) || !r->fr.row.ip[0] || !v ||
            !v->task || (new_only && r->fr.row.f.first_ready_time != CTL_READY_NEVER))
            continue;
        pr = &v->task->service->probe;
        url = core_xasprintf("http://%s:%d%s", r->fr.row.ip,
                             r->fr.row.replica_port + r->fr.row.port_offset,
                             pr->path ? pr->path : "/");
        memset(&req, 0, sizeof(req));
        req.url = url;
        req.post_data = pr->post_data;
        req.headers = pr->headers;
        req.n_headers = pr->n_headers;
        req.timeout_s = pr->timeout_seconds > 0 ? pr->timeout_seconds : 15;
        pa = core_xcalloc(1, sizeof(*pa));
        pa->s = s;
        snprintf(pa->svc, sizeof(pa->svc), "%s", svc->row.name);
        pa->id = r->fr.row.id;
        snprintf(pa->instance_id, sizeof(pa->instance_id), "%s", r->fr.row.instance_id);
        if (ctl_prober_start(s->prober, &req, on_probe, pa) == 0) {
            r->probing = 1;
            svc->probes_pending++;
        } else {
            free(pa);
        }
        free(url);
    }
    round_done(svc, false);
}

void ctl_service_probe_tick(ctl_service_t *svc, double t)
{
    double every = svc->s->cfg.probe_interval;

    if (t >= svc->next_probe) {
        svc->next_probe = t + every;
        svc->next_new_probe = t + CTL_NEW_PROBE_INTERVAL_S;
        probe_round(svc, false);
    } else if (every > CTL_NEW_PROBE_INTERVAL_S && t >= svc->next_new_probe) {
        svc->next_new_probe = t + CTL_NEW_PROBE_INTERVAL_S;
        probe_round(svc, true);
    }
}
