/*
 * The serve controller's /metrics, rendered from the in-memory services on
 * the loop thread at scrape time (a few hundred lines a service).
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"
#include "ctl_serve_metrics.h"

bool ctl_serve_replica_billed(const ctl_replica_t *r)
{
    switch (ctl_replica_row_status(&r->fr.row)) {
    case CTL_REPLICA_PROVISIONING:
    case CTL_REPLICA_STARTING:
    case CTL_REPLICA_READY:
    case CTL_REPLICA_NOT_READY:
    case CTL_REPLICA_SHUTTING_DOWN:
        return r->fr.row.instance_id[0] != '\0';
    default:
        return false;
    }
}

double ctl_serve_cost_per_hour(const ctl_service_t *svc)
{
    double cost = 0;

    CTL_FOR_EACH_REPLICA(svc, r)
    {
        if (ctl_serve_replica_billed(r))
            cost += r->fr.row.price;
    }
    return cost;
}

static bool live(const ctl_service_t *svc)
{
    return !svc->deleted;
}

static void replicas(ctl_prom_t *p, ctl_serve_t *s)
{
    ctl_prom_family(p, "sky_serve_replicas", "gauge",
                    "Replicas of a service by status and capacity (spot or on_demand).");
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        unsigned n[CTL_REPLICA_STATUS_COUNT][2] = {{0}};

        if (!live(svc))
            continue;
        CTL_FOR_EACH_REPLICA(svc, r)
        n[ctl_replica_row_status(&r->fr.row)][r->fr.row.is_spot ? 1 : 0]++;
        /* Every series, zeros included: "on-demand replicas went to 0" is a
         * sample, not an absent series. */
        for (int st = 0; st < CTL_REPLICA_STATUS_COUNT; st++)
            for (int spot = 0; spot < 2; spot++)
                ctl_prom_sample(p, "sky_serve_replicas", n[st][spot], "service", svc->row.name,
                                "status", ctl_replica_status_name((ctl_replica_status_t)st),
                                "capacity", spot ? "spot" : "on_demand", NULL);
    }
    ctl_prom_family(p, "sky_serve_target_replicas", "gauge",
                    "Replicas the autoscaler wants for a service.");
    for (ctl_service_t *svc = s->services; svc; svc = svc->next)
        if (live(svc))
            ctl_prom_sample(p, "sky_serve_target_replicas",
                            svc->fleet.scaler_ok ? ctl_scaler_final_target(&svc->fleet.scaler) : 0,
                            "service", svc->row.name, NULL);
}

static void service_status(ctl_prom_t *p, ctl_serve_t *s)
{
    ctl_prom_family(p, "sky_serve_service_status", "gauge",
                    "1 for the status a service is in, 0 for the others.");
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        if (!live(svc))
            continue;
        for (int st = 0; st < CTL_SERVICE_STATUS_COUNT; st++)
            ctl_prom_sample(p, "sky_serve_service_status", (int)svc->row.status == st, "service",
                            svc->row.name, "status",
                            ctl_service_status_name((ctl_service_status_t)st), NULL);
    }
}

static void traffic(ctl_prom_t *p, ctl_serve_t *s)
{
    double now = core_now();

    ctl_prom_family(p, "sky_serve_requests_per_second", "gauge",
                    "Request rate of a service as its load balancer reports it, over the "
                    "autoscaler's window.");
    for (ctl_service_t *svc = s->services; svc; svc = svc->next)
        if (live(svc))
            ctl_prom_sample(p, "sky_serve_requests_per_second",
                            svc->fleet.scaler_ok ? ctl_scaler_qps(&svc->fleet.scaler, now) : 0,
                            "service", svc->row.name, NULL);
    ctl_prom_family(p, "sky_serve_replica_requests_total", "counter",
                    "Attempts the load balancer sent each replica, by outcome (ok, or failed: "
                    "no response from the replica), since this controller started.");
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        if (!live(svc))
            continue;
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            char id[16];

            snprintf(id, sizeof(id), "%d", r->fr.row.id);
            /* A failure can arrive without its attempt, counted before this
             * controller started: never below 0. */
            ctl_prom_sample(
                p, "sky_serve_replica_requests_total",
                r->lb_requests > r->lb_failures ? (double)(r->lb_requests - r->lb_failures) : 0,
                "service", svc->row.name, "replica", id, "outcome", "ok", NULL);
            ctl_prom_sample(p, "sky_serve_replica_requests_total", (double)r->lb_failures,
                            "service", svc->row.name, "replica", id, "outcome", "failed", NULL);
        }
    }
    ctl_prom_family(p, "sky_serve_replica_responses_total", "counter",
                    "Final responses the load balancer relayed from each replica, by status "
                    "class (1xx..5xx), since this controller started.");
    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        if (!live(svc))
            continue;
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            char id[16];

            snprintf(id, sizeof(id), "%d", r->fr.row.id);
            for (int c = 0; c < CTL_LB_CLASSES; c++) {
                char code[4] = {(char)('1' + c), 'x', 'x', 0};

                ctl_prom_sample(p, "sky_serve_replica_responses_total", (double)r->lb_responses[c],
                                "service", svc->row.name, "replica", id, "code", code, NULL);
            }
        }
    }
}

static unsigned long long counter(const ctl_serve_counters_t *c, int i)
{
    return i == 0 ? c->launches : i == 1 ? c->launch_failures : c->preemptions;
}

static void cost_and_events(ctl_prom_t *p, ctl_serve_t *s)
{
    static const char *const ctr[][2] = {
        {"sky_serve_launches_total", "Replica launch attempts started."},
        {"sky_serve_launch_failures_total",
         "Replica launch attempts that failed (no capacity, provider error), retried or not."},
        {"sky_serve_preemptions_total", "Launched replicas whose instance was preempted or lost."},
    };

    ctl_prom_family(p, "sky_serve_cost_dollars_per_hour", "gauge",
                    "What a service's instances cost now, in dollars per hour.");
    for (ctl_service_t *svc = s->services; svc; svc = svc->next)
        if (live(svc))
            ctl_prom_sample(p, "sky_serve_cost_dollars_per_hour", ctl_serve_cost_per_hour(svc),
                            "service", svc->row.name, NULL);
    for (int i = 0; i < 3; i++) {
        ctl_prom_family(p, ctr[i][0], "counter", ctr[i][1]);
        for (ctl_service_t *svc = s->services; svc; svc = svc->next)
            if (live(svc))
                ctl_prom_sample(p, ctr[i][0], (double)counter(&svc->counters, i), "service",
                                svc->row.name, NULL);
    }
}

char *ctl_serve_metrics_render(ctl_serve_t *s, size_t *len)
{
    ctl_prom_t p = {0};

    ctl_metrics_proc_render(&p, &s->proc);
    service_status(&p, s);
    replicas(&p, s);
    traffic(&p, s);
    cost_and_events(&p, s);
    return ctl_prom_take(&p, len);
}
