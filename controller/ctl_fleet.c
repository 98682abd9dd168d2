/*
 * The fleet's rules (ctl_fleet.h). Everything here was the serve
 * controller's, and bench/policy/policy_replay.c kept a copy of it; both now
 * call this file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "ctl_fleet.h"

void ctl_fleet_init(ctl_fleet_t *f, const char *name, const ctl_serve_cfg_t *cfg, size_t rep_size,
                    ctl_fleet_id_fn alloc_id, void *alloc_arg, ctl_rng_fn rng, void *rng_arg)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->cfg = cfg;
    f->rep_size = rep_size < sizeof(ctl_fleet_replica_t) ? sizeof(ctl_fleet_replica_t) : rep_size;
    f->alloc_id = alloc_id;
    f->alloc_arg = alloc_arg;
    f->rng = rng;
    f->rng_arg = rng_arg;
    f->version = CTL_INITIAL_VERSION;
}

void ctl_fleet_destroy(ctl_fleet_t *f)
{
    while (f->replicas) {
        ctl_fleet_replica_t *r = f->replicas;

        f->replicas = r->next;
        free(r);
    }
    if (f->scaler_ok)
        ctl_scaler_destroy(&f->scaler);
    if (f->has_placer)
        ctl_placer_destroy(&f->placer);
    f->scaler_ok = f->has_placer = false;
}

void ctl_fleet_scaler_spec(const ctl_serve_cfg_t *cfg, const core_service_spec_t *ss,
                           ctl_scaler_spec_t *sp)
{
    const core_replica_policy_t *p = &ss->policy;

    ctl_scaler_spec_default(sp);
    sp->min_replicas = p->min_replicas;
    sp->max_replicas = p->max_replicas;
    sp->target_qps_per_replica = p->has_target_qps ? p->target_qps_per_replica : -1;
    sp->upscale_delay_s = p->upscale_delay_seconds;
    sp->downscale_delay_s = p->downscale_delay_seconds;
    sp->decision_interval_s = cfg->decision_interval;
    sp->no_replica_interval_s = cfg->no_replica_decision_interval;
    sp->qps_window_s = cfg->qps_window;
    sp->num_overprovision = p->num_overprovision > 0 ? p->num_overprovision : 0;
    sp->base_ondemand_fallback_replicas =
        p->base_ondemand_fallback_replicas > 0 ? p->base_ondemand_fallback_replicas : 0;
    sp->dynamic_ondemand_fallback = p->dynamic_ondemand_fallback == 1;
    sp->fallback_target_only = p->fallback_covers_overprovision == 0;
}

bool ctl_fleet_wants_placer(const core_task_t *t)
{
    return t->service->policy.spot_placer != CORE_SPOT_PLACER_NONE;
}

int ctl_fleet_start(ctl_fleet_t *f, const core_task_t *t, int version, char **err)
{
    ctl_scaler_spec_t sp;
    int rc;

    ctl_fleet_scaler_spec(f->cfg, t->service, &sp);
    if ((rc = ctl_scaler_init(&f->scaler, &sp, version, err)) < 0)
        return rc;
    f->scaler_ok = true;
    f->version = version;
    f->spot = core_task_uses_spot(t);
    return 0;
}

void ctl_fleet_use_placer(ctl_fleet_t *f, const core_task_t *t, const core_candidate_t *c, size_t n)
{
    if (f->has_placer)
        ctl_placer_destroy(&f->placer);
    ctl_placer_init_from_candidates(&f->placer, c, n);
    ctl_placer_set_kind(&f->placer,
                        t->service->policy.spot_placer == CORE_SPOT_PLACER_SPREAD_BACKOFF
                            ? CTL_PLACER_SPREAD_BACKOFF
                            : CTL_PLACER_DYNAMIC_FALLBACK,
                        f->cfg->decision_interval);
    f->has_placer = true;
}

static ctl_fleet_replica_t *rep_new(ctl_fleet_t *f, int id, int version)
{
    ctl_fleet_replica_t *r = core_xcalloc(1, f->rep_size), **pp;

    ctl_replica_row_init(&r->row, id, version);
    for (pp = &f->replicas; *pp && (*pp)->row.id < id; pp = &(*pp)->next)
        ;
    r->next = *pp;
    *pp = r;
    r->dirty = true;
    return r;
}

ctl_fleet_replica_t *ctl_fleet_add(ctl_fleet_t *f, const ctl_replica_row_t *row)
{
    ctl_fleet_replica_t *r = rep_new(f, row->id, row->version);

    r->row = *row;
    r->dirty = false;
    return r;
}

void ctl_fleet_recover(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t)
{
    /* Recovery of in-flight operations (reference §9, bug #8563 fixed):
     * launches resume idempotently, terminations finish whatever
     * is_scale_down says. */
    if (r->row.f.down == CTL_PROC_RUNNING) {
        r->row.f.down = CTL_PROC_SCHEDULED;
        r->dirty = true;
    }
    if (r->row.f.down == CTL_PROC_NONE && r->row.f.launch == CTL_PROC_FAILED)
        ctl_fleet_start_down(f, r, 0, t);
}

ctl_fleet_replica_t *ctl_fleet_find(const ctl_fleet_t *f, int id)
{
    for (ctl_fleet_replica_t *r = f->replicas; r; r = r->next)
        if (r->row.id == id)
            return r;
    return NULL;
}

void ctl_fleet_remove(ctl_fleet_t *f, ctl_fleet_replica_t *r)
{
    for (ctl_fleet_replica_t **pp = &f->replicas; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    free(r);
}

size_t ctl_fleet_infos(const ctl_fleet_t *f, ctl_replica_info_t **out)
{
    size_t n = 0, i = 0;

    for (ctl_fleet_replica_t *r = f->replicas; r; r = r->next)
        n++;
    *out = core_xcalloc(n ? n : 1, sizeof(**out));
    for (ctl_fleet_replica_t *r = f->replicas; r; r = r->next, i++) {
        ctl_replica_info_fill(&(*out)[i], r->row.id, r->row.version, r->row.is_spot, &r->row.f);
        (*out)[i].has_location = r->row.has_location;
        (*out)[i].location = r->row.loc;
    }
    return n;
}

void ctl_fleet_start_down(ctl_fleet_t *f, ctl_fleet_replica_t *r, double drain, double t)
{
    if (r->row.f.down != CTL_PROC_NONE)
        return;
    if (r->row.f.launch == CTL_PROC_RUNNING || r->row.f.launch == CTL_PROC_SCHEDULED ||
        r->row.f.launch == CTL_PROC_NONE)
        r->row.f.launch = CTL_PROC_INTERRUPTED;
    r->row.f.down = CTL_PROC_SCHEDULED;
    r->row.down_at = t + drain;
    r->dirty = true;
    CORE_INFO("%s replica %d: SHUTTING_DOWN (%s, drain %.0f s)", f->name, r->row.id,
              ctl_replica_status_name(ctl_replica_row_status(&r->row)), drain);
}

void ctl_fleet_scale_down(ctl_fleet_t *f, ctl_fleet_replica_t *r, bool purge, double drain,
                          double t)
{
    r->row.f.is_scale_down = true;
    r->row.f.purged = r->row.f.purged || purge;
    r->dirty = true;
    ctl_fleet_start_down(f, r, drain, t);
}

size_t ctl_fleet_down_all(ctl_fleet_t *f, bool purge, double t, ctl_fleet_replica_t ***done)
{
    size_t n = 0, cap = 0;

    *done = NULL;
    for (ctl_fleet_replica_t *r = f->replicas; r; r = r->next) {
        if (r->row.f.down == CTL_PROC_SUCCEEDED || (r->row.f.down == CTL_PROC_FAILED && !r->busy)) {
            if (r->row.f.down == CTL_PROC_FAILED && !purge) {
                /* Retry a failed cleanup once more. */
                r->row.f.down = CTL_PROC_NONE;
                ctl_fleet_start_down(f, r, 0, t);
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                *done = core_xrealloc(*done, cap * sizeof(**done));
            }
            (*done)[n++] = r;
            continue;
        }
        r->row.f.purged = r->row.f.purged || purge;
        r->dirty = true;
        if (r->row.f.down == CTL_PROC_NONE)
            ctl_fleet_start_down(f, r, 0, t);
        else if (r->row.f.down == CTL_PROC_SCHEDULED)
            r->row.down_at = t; /* no drain when the whole service goes */
    }
    return n;
}

/* The placer's location for a new spot replica at <t>; -EAGAIN: every zone is backing off. */
static int place_spot(ctl_fleet_t *f, double t, ctl_location_t *out)
{
    ctl_location_t *in_use = core_xcalloc(1, sizeof(*in_use));
    size_t n = 0, cap = 1;
    double retry_at = 0;
    int rc;

    for (ctl_fleet_replica_t *o = f->replicas; o; o = o->next) {
        if (!o->row.is_spot || !o->row.has_location)
            continue;
        if (n == cap) {
            cap *= 2;
            in_use = core_xrealloc(in_use, cap * sizeof(*in_use));
        }
        in_use[n++] = o->row.loc;
    }
    rc = ctl_placer_select_at(&f->placer, in_use, n, t, out, &retry_at);
    if (rc == -EAGAIN)
        CORE_DEBUG("%s: spot placer: every zone is backing off for %.0f s more", f->name,
                   retry_at - t);
    free(in_use);
    return rc;
}

/* A new replica of the latest version, placed by the spot placer when spot;
 * NULL when the placer has no zone for it (or no id was left). */
static ctl_fleet_replica_t *scale_up(ctl_fleet_t *f, int use_spot, double t)
{
    ctl_fleet_replica_t *r;
    ctl_location_t loc;
    bool is_spot = use_spot >= 0 ? use_spot == 1 : f->spot;
    int id, placed = CORE_ENOTFOUND;

    /* No launch (hence no failed one) while every zone is backing off. */
    if (is_spot && f->has_placer && (placed = place_spot(f, t, &loc)) == -EAGAIN)
        return NULL;
    if (f->alloc_id(f->alloc_arg, &id) < 0)
        return NULL;
    r = rep_new(f, id, f->version);
    r->row.launched_at = t;
    r->row.use_spot = use_spot;
    r->row.is_spot = is_spot;
    if (placed == 0) {
        r->row.loc = loc;
        r->row.has_location = 1;
    }
    r->row.f.launch = CTL_PROC_SCHEDULED;
    return r;
}

void ctl_fleet_autoscale(ctl_fleet_t *f, const int *active, size_t n_active, double t,
                         ctl_fleet_action_t **out, size_t *n_out)
{
    ctl_replica_info_t *infos;
    ctl_decision_t *d = NULL;
    ctl_fleet_action_t *acts;
    size_t n = ctl_fleet_infos(f, &infos), nd = 0, na = 0, k = 0;

    /* A replica under notice is as good as gone: the decision replaces it now. */
    for (ctl_fleet_replica_t *r = f->replicas; r; r = r->next, k++)
        if (r->preempt_at > 0 && !ctl_replica_status_is_terminal(infos[k].status))
            infos[k].status = CTL_REPLICA_PREEMPTED;
    if (ctl_scaler_decide(&f->scaler, infos, n, active, n_active, t, &d, &nd) < 0)
        nd = 0;
    acts = core_xcalloc(nd ? nd : 1, sizeof(*acts));
    for (size_t i = 0; i < nd; i++) {
        ctl_fleet_replica_t *r;

        if (d[i].kind == CTL_SCALE_UP) {
            if ((r = scale_up(f, d[i].use_spot, t)) != NULL)
                acts[na++] = (ctl_fleet_action_t){CTL_FLEET_LAUNCH, r, CTL_REPLICA_PENDING};
        } else if ((r = ctl_fleet_find(f, d[i].replica_id)) && r->row.f.down == CTL_PROC_NONE) {
            acts[na] = (ctl_fleet_action_t){CTL_FLEET_DRAIN, r, ctl_replica_row_status(&r->row)};
            ctl_fleet_scale_down(f, r, false, f->cfg->drain_seconds, t);
            na++;
        }
    }
    free(d);
    free(infos);
    f->meta_dirty = true; /* the hysteresis counters moved */
    *out = acts;
    *n_out = na;
}

bool ctl_fleet_launch_due(const ctl_fleet_replica_t *r, double t)
{
    return !r->busy && r->row.f.down == CTL_PROC_NONE &&
           (r->row.f.launch == CTL_PROC_SCHEDULED || r->row.f.launch == CTL_PROC_RUNNING) &&
           t >= r->next_launch_at;
}

void ctl_fleet_launch_started(ctl_fleet_t *f, ctl_fleet_replica_t *r)
{
    (void)f;
    r->busy = true;
    r->row.f.launch = CTL_PROC_RUNNING;
    r->row.launch_attempts++;
    r->dirty = true;
}

void ctl_fleet_launch_failed(ctl_fleet_t *f, ctl_fleet_replica_t *r, bool no_capacity, double t)
{
    r->row.f.launch = CTL_PROC_FAILED;
    if (no_capacity && r->row.is_spot && f->has_placer && r->row.has_location) {
        /* SpotHedge: the zone is out of spot; the record goes away after
         * down so the autoscaler relaunches, probably elsewhere. */
        ctl_placer_set_preemptive_at(&f->placer, &r->row.loc, t);
        r->row.f.failed_spot_availability = true;
        f->meta_dirty = true;
    }
    r->dirty = true;
    ctl_fleet_start_down(f, r, 0, t);
}

ctl_fleet_launch_outcome_t ctl_fleet_launch_done(ctl_fleet_t *f, ctl_fleet_replica_t *r, int rc,
                                                 double t)
{
    r->busy = false;
    r->dirty = true;
    if (r->row.f.launch == CTL_PROC_INTERRUPTED || r->row.f.down != CTL_PROC_NONE)
        return CTL_FLEET_SUPERSEDED;
    if (rc == 0) {
        r->row.f.launch = CTL_PROC_SUCCEEDED;
        r->backoff_init = false;
        if (f->has_placer && r->row.is_spot && r->row.has_location) {
            /* The capacity was there when the launch began. */
            ctl_placer_set_active_at(&f->placer, &r->row.loc, r->row.launched_at);
            f->meta_dirty = true;
        }
        return CTL_FLEET_LAUNCHED;
    }
    if (rc == CORE_ESPEC) {
        /* The task cannot run as written: the user's error, as a failing
         * setup is, so a version that never ran stops being relaunched. */
        r->row.f.user_app_failed = true;
        ctl_fleet_launch_failed(f, r, false, t);
        return CTL_FLEET_FAILED;
    }
    if (rc == CORE_ENOCAPACITY && r->row.is_spot && f->has_placer) {
        ctl_fleet_launch_failed(f, r, true, t);
        return CTL_FLEET_FAILED;
    }
    if (rc == CORE_EINVALREQ || rc == CORE_EINFEASIBLE ||
        (rc != CORE_ENOCAPACITY && r->row.launch_attempts >= f->cfg->launch_max_retry)) {
        ctl_fleet_launch_failed(f, r, false, t);
        return CTL_FLEET_FAILED;
    }
    /* No capacity without a placer (retry_until_up) or a transient error:
     * stay PROVISIONING and try again after a backoff. */
    if (!r->backoff_init) {
        ctl_backoff_init(&r->backoff, f->cfg->launch_retry_initial, CTL_BACKOFF_DEFAULT_MAX_FACTOR,
                         f->rng, f->rng_arg);
        r->backoff_init = true;
    }
    r->next_launch_at = t + ctl_backoff_next(&r->backoff);
    return CTL_FLEET_RETRY;
}

/* <r>'s zone lost it: without a placer, the failover tries that zone last for a while. */
static void avoid_zone(ctl_fleet_t *f, const ctl_fleet_replica_t *r, double t)
{
    ctl_fleet_avoid_t *slot = &f->avoid[0];

    if (f->has_placer || !r->row.is_spot || !r->row.zone[0])
        return;
    for (size_t i = 0; i < CTL_FLEET_MAX_AVOID; i++) {
        ctl_fleet_avoid_t *a = &f->avoid[i];

        if (strcmp(a->cloud, r->row.cloud) == 0 && strcmp(a->region, r->row.region) == 0 &&
            strcmp(a->zone, r->row.zone) == 0) {
            slot = a;
            break;
        }
        if (a->until < slot->until)
            slot = a; /* the oldest, or a free one */
    }
    snprintf(slot->cloud, sizeof(slot->cloud), "%s", r->row.cloud);
    snprintf(slot->region, sizeof(slot->region), "%s", r->row.region);
    snprintf(slot->zone, sizeof(slot->zone), "%s", r->row.zone);
    slot->until = t + 15 * f->cfg->decision_interval;
}

static bool avoided(const ctl_fleet_t *f, const core_candidate_t *c, double t)
{
    for (size_t i = 0; i < CTL_FLEET_MAX_AVOID; i++) {
        const ctl_fleet_avoid_t *a = &f->avoid[i];

        if (a->until > t && strcmp(a->zone, c->zone) == 0 && strcmp(a->region, c->region) == 0 &&
            strcmp(a->cloud, c->cloud) == 0)
            return true;
    }
    return false;
}

void ctl_fleet_order_candidates(const ctl_fleet_t *f, core_candidate_t *c, size_t n, double t)
{
    core_candidate_t *tmp;
    size_t k = 0;

    if (n < 2)
        return;
    tmp = core_xcalloc(n, sizeof(*tmp));
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (avoided(f, &c[i], t) == (pass == 1))
                tmp[k++] = c[i];
    memcpy(c, tmp, n * sizeof(*c));
    free(tmp);
}

bool ctl_fleet_preempted(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t)
{
    if (r->row.f.down != CTL_PROC_NONE || r->row.f.launch != CTL_PROC_SUCCEEDED)
        return false;
    r->row.f.preempted = true;
    r->row.f.service_ready_now = false;
    r->row.f.is_scale_down = true;
    /* Under notice, the placer heard of it already. */
    if (f->has_placer && r->row.is_spot && r->row.has_location && r->preempt_at <= 0) {
        ctl_placer_set_preemptive_at(&f->placer, &r->row.loc, t);
        f->meta_dirty = true;
    }
    avoid_zone(f, r, t);
    ctl_fleet_start_down(f, r, 0, t);
    return true;
}

bool ctl_fleet_instance_gone(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t)
{
    if (r->row.f.down == CTL_PROC_SCHEDULED) {
        r->row.down_at = t; /* nothing left to drain */
        r->dirty = true;
        return true;
    }
    if (r->row.f.down == CTL_PROC_NONE && r->row.f.launch == CTL_PROC_RUNNING && r->busy) {
        ctl_fleet_launch_done(f, r, CORE_ENOCAPACITY, t);
        return true;
    }
    return ctl_fleet_preempted(f, r, t);
}

bool ctl_fleet_notice(ctl_fleet_t *f, ctl_fleet_replica_t *r, double deadline, double t)
{
    if (r->row.f.down != CTL_PROC_NONE || r->row.f.launch != CTL_PROC_SUCCEEDED ||
        r->preempt_at > 0 || deadline <= 0)
        return false;
    r->preempt_at = deadline;
    if (f->has_placer && r->row.is_spot && r->row.has_location) {
        ctl_placer_set_preemptive_at(&f->placer, &r->row.loc, t);
        f->meta_dirty = true;
    }
    avoid_zone(f, r, t);
    CORE_INFO("%s replica %d: preemption notice, its instance goes in %.0f s", f->name, r->row.id,
              deadline - t);
    return true;
}

bool ctl_fleet_routable(const ctl_fleet_t *f, const ctl_fleet_replica_t *r, double t)
{
    int others = 0;

    if (r->preempt_at <= 0)
        return true;
    if (t >= r->preempt_at - f->cfg->notice_drain_seconds)
        return false;
    for (const ctl_fleet_replica_t *o = f->replicas; o; o = o->next)
        others += o->preempt_at <= 0 && ctl_replica_row_status(&o->row) == CTL_REPLICA_READY;
    return !f->scaler_ok || others < f->scaler.st.target;
}

void ctl_fleet_app_failed(ctl_fleet_t *f, ctl_fleet_replica_t *r, double t)
{
    r->row.f.user_app_failed = true;
    r->row.f.service_ready_now = false;
    r->dirty = true;
    ctl_fleet_start_down(f, r, 0, t);
}

ctl_probe_action_t ctl_fleet_probe(ctl_fleet_t *f, ctl_fleet_replica_t *r, double initial_delay_s,
                                   bool ok, double t)
{
    ctl_probe_params_t pp;
    ctl_probe_action_t act;

    if (!ctl_replica_should_track(&r->row.f))
        return CTL_PROBE_NOTHING;
    ctl_probe_params_default(&pp);
    pp.consecutive_failure_s = f->cfg->consecutive_failure_threshold;
    pp.initial_delay_s = initial_delay_s;
    {
        ctl_replica_facts_t f0 = r->row.f;
        ctl_probe_state_t ps0 = r->row.ps;

        act = ctl_replica_record_probe(&r->row.f, &r->row.ps, &pp, ok, t);
        /* A READY replica answering again changes nothing: nothing to write. */
        if (memcmp(&f0, &r->row.f, sizeof(f0)) != 0 || memcmp(&ps0, &r->row.ps, sizeof(ps0)) != 0)
            r->dirty = true;
    }
    if (act == CTL_PROBE_TERMINATE_FAILED_PROBING ||
        act == CTL_PROBE_TERMINATE_FAILED_INITIAL_DELAY)
        ctl_fleet_start_down(f, r, 0, t);
    return act;
}

bool ctl_fleet_down_due(const ctl_fleet_replica_t *r, double t)
{
    return !r->busy && r->row.f.down == CTL_PROC_SCHEDULED && t >= r->row.down_at;
}

void ctl_fleet_down_started(ctl_fleet_t *f, ctl_fleet_replica_t *r)
{
    (void)f;
    r->busy = true;
    r->row.f.down = CTL_PROC_RUNNING;
    r->dirty = true;
}

bool ctl_fleet_down_done(ctl_fleet_t *f, ctl_fleet_replica_t *r, bool ok, bool service_down)
{
    r->busy = false;
    r->row.f.down = ok ? CTL_PROC_SUCCEEDED : CTL_PROC_FAILED;
    r->row.f.service_ready_now = false;
    r->dirty = true;
    return ok &&
           (service_down || ctl_replica_remove_after_down(&r->row.f, r->row.version, f->version));
}
