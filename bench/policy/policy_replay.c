/*
 * policy_replay: replays a multi-zone spot-availability trace through the
 * controller's fleet (controller/ctl_fleet.c: the autoscaler, the
 * dynamic_fallback spot placer, the replica facts/status rules, the probe
 * bookkeeping and the seeded launch backoff) in virtual time, and reports the
 * cost relative to running the target on-demand, the availability (share of
 * time with READY >= target), preemptions and launches of each policy.
 *
 * Each policy is a service YAML parsed as `sky serve up` parses it, so its
 * defaults are the spec's, and the timings are the controller's
 * (ctl_serve_cfg_default) unless an option sets them. The cloud is the trace
 * (trace_world.c, see bench/policy/README.md): launches go through the
 * provider failover the controller uses; a launch takes --provision-delay,
 * then --cold-start before the readiness probe succeeds; when a zone's count
 * drops below what is held, the excess is preempted (newest first, or seeded
 * random). With --notice on, the victims get a preemption notice (the
 * cloud's lead time) before the drop, which the fleet acts on as the
 * controller does (ctl_fleet_notice); a failed launch takes --launch-api-latency.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/catalog.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/prov_registry.h"
#include "core/spec.h"
#include "core/util.h"

#include "ctl_fleet.h"
#include "trace_world.h"

#define MAX_LOAD_POINTS (10u * 1000 * 1000)

typedef struct opts {
    const char *policy;
    const char *catalog;
    const char *load_file;
    trace_world_opts_t world;
    ctl_serve_cfg_t cfg; /* the controller's timings: --drain, --decision-interval, ... */
    int target;
    double provision_s;
    double cold_start_s;
    double step_s;
    uint64_t seed;
    bool json;
    bool preempt_random;
    bool verbose;             /* events on stderr */
    double qps;               /* < 0: none */
    double qps_per_replica;   /* QPS mode */
    int min_replicas;         /* QPS mode */
    int max_replicas;         /* QPS mode */
    double service_start;     /* first autoscaler decision (the service's `up`) */
    const char *timeline;     /* JSON lines per step, "-" = stdout */
    bool fallback_placer;     /* --fallback-placer: a placer for every fallback policy too */
    ctl_placer_kind_t placer; /* --placer: the placer of the policies that have one */
    bool hedge;               /* --hedge on: fallback_covers_overprovision: false */
    bool notice;              /* --notice on: preemptions are announced */
    double notice_s;          /* ... this long ahead; < 0: the cloud's (AWS 120 s, GCP 30 s) */
    double api_latency_s;     /* a launch attempt that finds no capacity takes this long */
    FILE *tl;
} opts_t;

typedef struct load {
    double *t, *qps; /* piecewise constant from t[i] */
    size_t n;
} load_t;

/* A policy: the replica_policy lines of its service YAML (policy_yaml adds the rest). */
typedef struct policy {
    const char *name;
    bool spot;     /* resources.use_spot */
    bool fallback; /* on-demand fallback: the controller gives it a placer */
    bool dyn;      /* dynamic_ondemand_fallback: --hedge applies */
    bool placer;   /* spot_placer: <--placer> */
    const char *yaml;
} policy_t;

static const policy_t POLICIES[] = {
    {"ondemand", false, false, false, false, ""},
    {"spot", true, false, false, false, ""},
    {"base_fallback", true, true, false, false, "    base_ondemand_fallback_replicas: 1\n"},
    {"dynamic_fallback", true, true, true, false, "    dynamic_ondemand_fallback: true\n"},
    {"spothedge", true, true, true, true,
     "    dynamic_ondemand_fallback: true\n"
     "    num_overprovision: 1\n"},
};

/* A replica of the fleet, and the instance it holds in the trace cloud. */
typedef struct rep {
    ctl_fleet_replica_t fr; /* first: the fleet allocates rep_t */
    int zone;               /* zone of the held instance, -1 when none */
    uint64_t seq;           /* acquisition order, for newest-first preemption */
    double price;           /* $/h of the held instance */
    double launch_done;     /* provisioning finishes (launch SUCCEEDED) */
    double ready_at;        /* the probe succeeds from here */
    double fail_at;         /* > 0: a failed launch attempt reports at this time ... */
    int fail_rc;            /* ... with this error */
    double doomed_at;       /* > 0: the cloud announced its preemption for this time */
} rep_t;

typedef struct stats {
    double cost, baseline;
    double spot_s, od_s; /* instance-seconds */
    double measured_s, avail_s;
    long preemptions, launches, failed_launches, notices;
    long outages;
    double longest_outage_s, cur_outage_s;
    double spot_miss_s; /* fewer live spot replicas than wanted although some zone had room */
    double od_room_s;   /* on-demand instance-seconds while some zone had spare spot capacity */
    double wall_s;
    bool placer;             /* the policy ran with a spot placer */
    const char *spot_placer; /* which, or "none" */
    bool hedge;              /* the dynamic fallback covered the target only */
    double notice_s;         /* preemption notices this long ahead, 0 = none */
} stats_t;

typedef struct sim {
    const opts_t *o;
    const world_t *w;
    const policy_t *p;
    const load_t *load;
    core_task_t *task; /* the policy's service */
    ctl_fleet_t fl;
    ctl_rng_t rng;
    trace_cloud_t *cloud;
    core_prov_t *prov;
    /* The replicas in the order the world visits them (it preempts, bills and
     * retries in this order); removal swaps the last one in. */
    rep_t **r;
    size_t nr, cap;
    int next_id;
    double qps_carry;
    /* What the last autoscaler decision asked for (the timeline's targets): live replicas
     * of each kind after applying its scale-ups and scale-downs. -1 before the first one. */
    int spot_target, od_target;
    bool decided;    /* a decision ran in this step */
    bool decide_now; /* a notice: the controller decides at once */
    double notice_s; /* the notice's lead time, 0 without notices */
    stats_t st;
} sim_t;

/* ------------------------------------------------------------------ */
/* load (QPS) */

static int load_read(load_t *l, const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t cap = 0, lineno = 0;

    memset(l, 0, sizeof(*l));
    if (!f) {
        *err = core_xasprintf("%s: %s", path, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        double t, q;
        char *p = line;

        lineno++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        if (sscanf(p, "%lf %lf", &t, &q) != 2 || !isfinite(t) || !isfinite(q) || q < 0 ||
            (l->n && t <= l->t[l->n - 1]) || l->n >= MAX_LOAD_POINTS) {
            *err = core_xasprintf("%s:%zu:1: expected \"<seconds> <qps>\" with increasing seconds",
                                  path, lineno);
            fclose(f);
            free(l->t);
            free(l->qps);
            memset(l, 0, sizeof(*l));
            return CORE_EINVALREQ;
        }
        if (l->n == cap) {
            cap = cap ? cap * 2 : 64;
            l->t = core_xrealloc(l->t, cap * sizeof(double));
            l->qps = core_xrealloc(l->qps, cap * sizeof(double));
        }
        l->t[l->n] = t;
        l->qps[l->n++] = q;
    }
    fclose(f);
    if (l->n == 0) {
        *err = core_xasprintf("%s: no load points", path);
        return CORE_EINVALREQ;
    }
    return 0;
}

/* QPS at <t>; <hint> walks forward since time only increases. */
static double load_at(const load_t *l, double t, size_t *hint)
{
    while (*hint + 1 < l->n && l->t[*hint + 1] <= t)
        (*hint)++;
    return t < l->t[0] ? 0 : l->qps[*hint];
}

/* ------------------------------------------------------------------ */
/* the service and the world */

/*
 * The policy's service YAML, as a user would write it for `sky serve up`.
 * --placer names the placer of the policies that have one: spothedge's own,
 * and the fallback ones' (which the controller gives the default,
 * dynamic_fallback, unless the YAML names another). --hedge on:
 * `fallback_covers_overprovision: false` for the dynamic fallback ones.
 */
static char *policy_yaml(const opts_t *o, const load_t *load, const policy_t *p)
{
    char qps[64] = "", placer[64] = "";

    if (load)
        snprintf(qps, sizeof(qps), "    target_qps_per_replica: %.17g\n", o->qps_per_replica);
    if (p->placer ||
        (p->fallback && o->fallback_placer && o->placer != CTL_PLACER_DYNAMIC_FALLBACK))
        snprintf(placer, sizeof(placer), "    spot_placer: %s\n", ctl_placer_kind_name(o->placer));
    return core_xasprintf("service:\n"
                          "  readiness_probe: /\n"
                          "  replica_policy:\n"
                          "    min_replicas: %d\n"
                          "    max_replicas: %d\n"
                          "%s%s%s%s"
                          "resources:\n"
                          "  ports: 8080\n"
                          "  use_spot: %s\n",
                          load ? o->min_replicas : o->target, load ? o->max_replicas : o->target,
                          qps, p->yaml, placer,
                          o->hedge && p->dyn ? "    fallback_covers_overprovision: false\n" : "",
                          p->spot ? "true" : "false");
}

static int policy_task(const opts_t *o, const load_t *load, const policy_t *p, core_task_t **out,
                       char **err)
{
    char *yaml = policy_yaml(o, load, p);
    int rc = core_task_parse(yaml, strlen(yaml), p->name, out, err);

    free(yaml);
    if (rc == 0 && (rc = core_task_validate_service(*out, err)) > 0)
        rc = 0;
    if (rc < 0) {
        core_task_free(*out);
        *out = NULL;
    }
    return rc;
}

/*
 * The controller's rule (ctl_fleet_wants_placer, the reference's): `spot_placer:`
 * only. --fallback-placer: every fallback policy gets one too (the deviation
 * the controller had before the notices work, kept for comparison).
 */
static bool gets_placer(const opts_t *o, const core_task_t *t)
{
    return ctl_fleet_wants_placer(t) ||
           (o->fallback_placer && t->service->use_ondemand_fallback && core_task_uses_spot(t));
}

static int alloc_id(void *arg, int *out)
{
    *out = ++((sim_t *)arg)->next_id;
    return 0;
}

static void track(sim_t *s, rep_t *r)
{
    if (s->nr == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->r = core_xrealloc(s->r, s->cap * sizeof(*s->r));
    }
    r->zone = -1;
    s->r[s->nr++] = r;
}

static void untrack(sim_t *s, size_t i)
{
    ctl_fleet_remove(&s->fl, &s->r[i]->fr);
    s->r[i] = s->r[--s->nr];
}

/* Where the controller would launch <r>: its placer zone, every zone by spot
 * price (the catalog's resolve order), or the cheapest on-demand zone. */
static size_t candidates(const sim_t *s, const rep_t *r, core_candidate_t *c)
{
    const world_t *w = s->w;
    size_t n = 0;

    if (!r->fr.row.is_spot) {
        trace_world_candidate(w, w->od_zone, 0, &c[n++]);
    } else if (r->fr.row.has_location) {
        trace_world_candidate(w, trace_world_zone(w, r->fr.row.loc.zone), 1, &c[n++]);
    } else {
        for (size_t i = 0; i < w->nz; i++)
            trace_world_candidate(w, w->spot_order[i], 1, &c[n++]);
    }
    return n;
}

/* One launch attempt: the provider failover over the candidates. */
static void try_launch(sim_t *s, rep_t *r, double t)
{
    core_candidate_t c[TRACE_MAX_ZONES];
    size_t n = candidates(s, r, c);

    if (r->fr.row.is_spot && !r->fr.row.has_location)
        ctl_fleet_order_candidates(&s->fl, c, n, t);
    core_instance_t in;
    char owner[96];
    size_t chosen = 0;
    int rc;

    snprintf(owner, sizeof(owner), "serve:%s:%d", s->p->name, r->fr.row.id);
    s->st.launches++;
    ctl_fleet_launch_started(&s->fl, &r->fr);
    rc = core_prov_launch_failover(s->prov, c, n, NULL, owner, &in, &chosen, NULL);
    if (s->o->verbose)
        fprintf(stderr, "%9.0f %s: launch replica %d %s%s%s: %s%s\n", t, s->p->name, r->fr.row.id,
                r->fr.row.is_spot ? "spot" : "on-demand",
                r->fr.row.has_location ? " placed in " : "",
                r->fr.row.has_location ? r->fr.row.loc.zone : "",
                rc == 0 ? "ok in " : "no capacity", rc == 0 ? in.zone : "");
    if (rc == 0) {
        snprintf(r->fr.row.instance_id, sizeof(r->fr.row.instance_id), "%s", in.id);
        snprintf(r->fr.row.cloud, sizeof(r->fr.row.cloud), "%s", in.cloud);
        snprintf(r->fr.row.region, sizeof(r->fr.row.region), "%s", in.region);
        snprintf(r->fr.row.zone, sizeof(r->fr.row.zone), "%s", in.zone);
        r->zone = trace_world_zone(s->w, in.zone);
        r->seq = trace_cloud_seq(s->cloud, in.id);
        r->price = in.price;
        /* each zone the failover found full cost an API call first */
        r->launch_done = t + (double)chosen * s->o->api_latency_s + s->o->provision_s;
        r->ready_at = r->launch_done + s->o->cold_start_s;
        return; /* provisioning: the launch completes at launch_done */
    }
    s->st.failed_launches++;
    if (s->o->api_latency_s > 0 && rc == CORE_ENOCAPACITY) {
        /* the cloud answers "no capacity" after its API latency, once per zone tried */
        r->fail_at = t + (double)n * s->o->api_latency_s;
        r->fail_rc = rc;
        return;
    }
    ctl_fleet_launch_done(&s->fl, &r->fr, rc, t);
}

static void release(sim_t *s, rep_t *r)
{
    if (r->zone < 0)
        return;
    core_prov_terminate(s->prov, r->fr.row.instance_id);
    r->zone = -1;
}

static void preempt(sim_t *s, rep_t *r, double t)
{
    if (s->o->verbose)
        fprintf(stderr, "%9.0f %s: preempted replica %d in %s (%s)\n", t, s->p->name, r->fr.row.id,
                s->w->z[r->zone].name, ctl_replica_status_name(ctl_replica_row_status(&r->fr.row)));
    s->st.preemptions++;
    trace_cloud_preempt(s->cloud, r->fr.row.instance_id);
    r->zone = -1;
    r->doomed_at = 0;
    ctl_fleet_instance_gone(&s->fl, &r->fr, t);
}

/* Zone <z>'s spot count at tick <k> (0 past its file). */
static int count_at(const world_t *w, size_t z, size_t k)
{
    return k < w->z[z].n ? w->z[z].data[k] : 0;
}

/*
 * --notice: the cloud announces every preemption notice_s ahead. Ticks whose
 * boundary is at most notice_s away are known: each zone's spot instances
 * beyond the count at such a tick get a notice for its boundary (newest
 * first, those already under notice counted), including instances launched
 * during the notice window. The fleet hears of it as the controller's
 * provider poll would (ctl_fleet_notice, once launched), and decides at once.
 */
static void give_notices(sim_t *s, size_t next_tick, double t)
{
    const world_t *w = s->w;

    for (size_t k = next_tick; k < w->ticks && (double)k * w->gap - s->notice_s <= t; k++) {
        double at = (double)k * w->gap;

        for (size_t z = 0; z < w->nz; z++) {
            int excess = trace_cloud_held_spot(s->cloud, (int)z) - count_at(w, z, k);

            for (size_t i = 0; i < s->nr; i++)
                excess -= s->r[i]->zone == (int)z && s->r[i]->fr.row.is_spot &&
                          s->r[i]->doomed_at > 0 && s->r[i]->doomed_at <= at;
            while (excess-- > 0) {
                rep_t *victim = NULL;

                for (size_t i = 0; i < s->nr; i++) {
                    rep_t *r = s->r[i];

                    if (r->zone == (int)z && r->fr.row.is_spot && r->doomed_at <= 0 &&
                        (!victim || r->seq > victim->seq))
                        victim = r;
                }
                if (!victim)
                    break;
                victim->doomed_at = at;
                s->st.notices++;
                if (s->o->verbose)
                    fprintf(stderr, "%9.0f %s: preemption notice for replica %d in %s (at %.0f)\n",
                            t, s->p->name, victim->fr.row.id, w->z[z].name, at);
            }
        }
    }
    for (size_t i = 0; i < s->nr; i++) {
        rep_t *r = s->r[i];

        if (r->doomed_at > 0 && ctl_fleet_notice(&s->fl, &r->fr, r->doomed_at, t))
            s->decide_now = true;
    }
}

static void apply_capacity(sim_t *s, size_t tick, double t)
{
    trace_cloud_set_tick(s->cloud, tick);
    /* A notice is kept: its instance goes at the deadline. */
    for (size_t i = 0; i < s->nr; i++)
        if (s->r[i]->zone >= 0 && s->r[i]->doomed_at > 0 && s->r[i]->doomed_at <= t)
            preempt(s, s->r[i], t);
    for (size_t z = 0; z < s->w->nz; z++) {
        while (trace_cloud_held_spot(s->cloud, (int)z) > trace_cloud_capacity(s->cloud, (int)z)) {
            rep_t *victim = NULL;
            size_t n_in = 0, pick;

            for (size_t i = 0; i < s->nr; i++)
                if (s->r[i]->zone == (int)z && s->r[i]->fr.row.is_spot)
                    n_in++;
            pick = s->o->preempt_random ? (size_t)(ctl_rng_uniform(&s->rng) * (double)n_in) : 0;
            for (size_t i = 0; i < s->nr; i++) {
                rep_t *r = s->r[i];

                if (r->zone != (int)z || !r->fr.row.is_spot)
                    continue;
                if (s->o->preempt_random) {
                    if (pick-- == 0) {
                        victim = r;
                        break;
                    }
                } else if (!victim || r->seq > victim->seq) {
                    victim = r;
                }
            }
            preempt(s, victim, t);
        }
    }
}

static void decide(sim_t *s, double t)
{
    ctl_replica_info_t *infos;
    ctl_fleet_action_t *a = NULL;
    ctl_version_min_t mins = {CTL_INITIAL_VERSION, s->task->service->policy.min_replicas};
    int active[1];
    size_t n = ctl_fleet_infos(&s->fl, &infos), na = 0, n_active;
    int n_spot = 0, n_od = 0;

    for (size_t i = 0; i < n; i++) {
        if (!ctl_replica_status_is_terminal(infos[i].status)) {
            n_spot += infos[i].is_spot;
            n_od += !infos[i].is_spot;
        }
    }
    n_active = ctl_active_versions(infos, n, CTL_UPDATE_ROLLING, &mins, 1, active, 1);
    free(infos);
    s->decided = true;
    ctl_fleet_autoscale(&s->fl, active, n_active, t, &a, &na);
    for (size_t i = 0; i < na; i++) {
        rep_t *r = (rep_t *)a[i].r;

        if (a[i].kind == CTL_FLEET_LAUNCH) {
            track(s, r);
            n_spot += r->fr.row.is_spot;
            n_od += !r->fr.row.is_spot;
            continue;
        }
        n_spot -= r->fr.row.is_spot;
        n_od -= !r->fr.row.is_spot;
        if (s->o->verbose)
            fprintf(stderr, "%9.0f %s: scale down replica %d (%s %s)\n", t, s->p->name,
                    r->fr.row.id, r->fr.row.is_spot ? "spot" : "on-demand",
                    ctl_replica_status_name(a[i].was));
    }
    s->spot_target = n_spot;
    s->od_target = n_od;
    /* Launched after the whole batch was placed, as the controller queues them. */
    for (size_t i = 0; i < na; i++)
        if (a[i].kind == CTL_FLEET_LAUNCH)
            try_launch(s, (rep_t *)a[i].r, t);
    free(a);
}

static void housekeeping(sim_t *s, double t)
{
    /* terminations (drain over, or immediate downs) */
    for (size_t i = 0; i < s->nr;) {
        rep_t *r = s->r[i];

        /* Terminating an instance still provisioning ends its launch. */
        if (r->fr.busy && r->fr.row.f.down == CTL_PROC_SCHEDULED && r->fr.row.down_at <= t) {
            r->fail_at = 0;
            ctl_fleet_launch_done(&s->fl, &r->fr, -ECANCELED, t);
        }
        if (ctl_fleet_down_due(&r->fr, t)) {
            release(s, r);
            ctl_fleet_down_started(&s->fl, &r->fr);
            if (ctl_fleet_down_done(&s->fl, &r->fr, true, false)) {
                untrack(s, i);
                continue;
            }
        }
        i++;
    }
    for (size_t i = 0; i < s->nr; i++) {
        rep_t *r = s->r[i];

        if (r->fr.row.f.down != CTL_PROC_NONE)
            continue;
        if (r->fr.busy && r->fail_at > 0 && r->fail_at <= t) {
            r->fail_at = 0;
            ctl_fleet_launch_done(&s->fl, &r->fr, r->fail_rc, t);
        }
        if (ctl_fleet_launch_due(&r->fr, t))
            try_launch(s, r, t);
        if (r->fr.busy && r->zone >= 0 && r->launch_done <= t)
            ctl_fleet_launch_done(&s->fl, &r->fr, 0, t);
    }
}

static void probe_all(sim_t *s, double t)
{
    double delay = s->task->service->probe.initial_delay_seconds;

    for (size_t i = 0; i < s->nr; i++) {
        rep_t *r = s->r[i];

        ctl_fleet_probe(&s->fl, &r->fr, delay, r->zone >= 0 && t >= r->ready_at, t);
    }
}

static void feed_load(sim_t *s, double t, size_t *hint)
{
    double q;
    double n;

    if (!s->load || t <= 0)
        return;
    /* The requests of the last step, stamped mid-step: the window [now - 60, now]
     * then holds exactly 60 s worth of them. */
    q = load_at(s->load, t - s->o->step_s, hint);
    n = q * s->o->step_s + s->qps_carry;
    s->qps_carry = n - floor(n);
    if (floor(n) >= 1)
        ctl_scaler_add_request_count(&s->fl.scaler, t - s->o->step_s / 2,
                                     (uint32_t)fmin(floor(n), 4e9), t);
}

static void account(sim_t *s, double t, double warmup)
{
    double dt = s->o->step_s, end = (double)s->w->ticks * s->w->gap;
    const ctl_scaler_t *sc = &s->fl.scaler;
    int ready = 0;

    if (t + dt > end)
        dt = end - t;
    for (size_t i = 0; i < s->nr; i++) {
        const rep_t *r = s->r[i];

        if (r->zone >= 0) {
            s->st.cost += r->price * dt / 3600.0;
            if (r->fr.row.is_spot)
                s->st.spot_s += dt;
            else
                s->st.od_s += dt;
        }
        /* a replica under notice counts while sky-lb still routes to it */
        if (ctl_replica_row_status(&r->fr.row) == CTL_REPLICA_READY &&
            ctl_fleet_routable(&s->fl, &r->fr, t))
            ready++;
    }
    s->st.baseline += sc->st.target * s->w->z[s->w->od_zone].od_price * dt / 3600.0;
    if (s->fl.spot) {
        int want = ctl_scaler_final_target(sc) - sc->spec.base_ondemand_fallback_replicas;
        int live = 0, room = 0;

        for (size_t i = 0; i < s->nr; i++)
            live += s->r[i]->fr.row.is_spot && s->r[i]->zone >= 0 &&
                    s->r[i]->fr.row.f.down == CTL_PROC_NONE;
        for (size_t z = 0; z < s->w->nz; z++) {
            int spare =
                trace_cloud_capacity(s->cloud, (int)z) - trace_cloud_held_spot(s->cloud, (int)z);

            room += spare > 0 ? spare : 0;
        }
        if (live < want && room > 0)
            s->st.spot_miss_s += dt;
        for (size_t i = 0; i < s->nr && room > 0; i++)
            if (!s->r[i]->fr.row.is_spot && s->r[i]->zone >= 0)
                s->st.od_room_s += dt;
    }
    if (t < warmup)
        return;
    s->st.measured_s += dt;
    if (ready >= sc->st.target) {
        s->st.avail_s += dt;
        s->st.cur_outage_s = 0;
    } else {
        if (s->st.cur_outage_s == 0)
            s->st.outages++;
        s->st.cur_outage_s += dt;
        if (s->st.cur_outage_s > s->st.longest_outage_s)
            s->st.longest_outage_s = s->st.cur_outage_s;
    }
}

/* One JSON line of the --timeline: the state after step <t> (see README.md). */
static void timeline_line(sim_t *s, double t, size_t tick)
{
    int spot_live = 0, spot_ready = 0, od_live = 0, od_ready = 0, spot_held = 0, od_held = 0;
    FILE *f = s->o->tl;

    for (size_t i = 0; i < s->nr; i++) {
        const rep_t *r = s->r[i];
        ctl_replica_status_t st = ctl_replica_row_status(&r->fr.row);
        bool live = !ctl_replica_status_is_terminal(st), ready = st == CTL_REPLICA_READY;

        if (r->fr.row.is_spot) {
            spot_live += live;
            spot_ready += ready;
            spot_held += r->zone >= 0;
        } else {
            od_live += live;
            od_ready += ready;
            od_held += r->zone >= 0;
        }
    }
    fprintf(f, "{\"policy\":\"%s\",\"t\":%.6g,\"tick\":%zu,\"capacity\":[", s->p->name, t, tick);
    for (size_t z = 0; z < s->w->nz; z++)
        fprintf(f, "%s%d", z ? "," : "", trace_cloud_capacity(s->cloud, (int)z));
    fprintf(f,
            "],\"spot_live\":%d,\"spot_ready\":%d,\"od_live\":%d,\"od_ready\":%d,"
            "\"spot_held\":%d,\"od_held\":%d,\"target\":%d,\"spot_target\":%d,"
            "\"od_target\":%d,\"decision\":%s}\n",
            spot_live, spot_ready, od_live, od_ready, spot_held, od_held,
            ctl_scaler_final_target(&s->fl.scaler), s->spot_target, s->od_target,
            s->decided ? "true" : "false");
}

static int run_policy(const opts_t *o, const world_t *w, const load_t *load, const policy_t *p,
                      stats_t *out, char **err)
{
    sim_t s;
    double end = (double)w->ticks * w->gap, t, next_decision = o->service_start, warmup;
    size_t tick = 0, hint = 0;
    long step_i = 0;
    struct timespec a, b;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &a);
    memset(&s, 0, sizeof(s));
    s.o = o;
    s.w = w;
    s.p = p;
    s.load = load;
    if ((rc = policy_task(o, load, p, &s.task, err)) < 0)
        return rc;
    ctl_rng_seed(&s.rng, o->seed);
    ctl_fleet_init(&s.fl, p->name, &o->cfg, sizeof(rep_t), alloc_id, &s, ctl_rng_uniform, &s.rng);
    if ((rc = ctl_fleet_start(&s.fl, s.task, CTL_INITIAL_VERSION, err)) < 0) {
        core_task_free(s.task);
        return rc;
    }
    if (gets_placer(o, s.task)) {
        /* the world's zones at their spot prices, in the catalog's resolve order */
        core_candidate_t *c = core_xcalloc(w->nz, sizeof(*c));

        for (size_t i = 0; i < w->nz; i++)
            trace_world_candidate(w, w->spot_order[i], 1, &c[i]);
        ctl_fleet_use_placer(&s.fl, s.task, c, w->nz);
        free(c);
    }
    s.st.placer = s.fl.has_placer;
    s.st.spot_placer = s.fl.has_placer ? ctl_placer_kind_name(s.fl.placer.kind) : "none";
    s.st.hedge = s.fl.scaler.spec.fallback_target_only;
    s.cloud = trace_cloud_new(w);
    s.prov = trace_cloud_prov(s.cloud);
    s.spot_target = s.od_target = -1;
    if (o->notice)
        s.notice_s = o->notice_s >= 0 ? o->notice_s : strcmp(w->cloud, "gcp") == 0 ? 30 : 120;
    /* The first replicas cannot be READY before this; the on-demand baseline has the same gap. */
    warmup = o->service_start + ceil((o->provision_s + o->cold_start_s) / o->step_s) * o->step_s;

    s.st.notice_s = s.notice_s;
    for (t = 0; t < end; t = (double)(++step_i) * o->step_s) {
        if (t >= (double)tick * w->gap) {
            apply_capacity(&s, tick, t);
            tick++;
        }
        if (s.notice_s > 0)
            give_notices(&s, tick, t);
        housekeeping(&s, t);
        probe_all(&s, t);
        feed_load(&s, t, &hint);
        s.decided = false;
        /* (the epsilon: a decision interval that is a multiple of the step lands on it) */
        if (t >= next_decision - 1e-9 || (s.decide_now && t >= o->service_start)) {
            s.decide_now = false;
            decide(&s, t);
            next_decision = t + ctl_scaler_next_interval(&s.fl.scaler);
        }
        if (t >= o->service_start)
            account(&s, t, warmup);
        if (o->tl)
            timeline_line(&s, t, tick - 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    s.st.wall_s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    *out = s.st;
    ctl_fleet_destroy(&s.fl);
    core_prov_destroy(s.prov);
    trace_cloud_free(s.cloud);
    core_task_free(s.task);
    free(s.r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* output */

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static void print_json(const opts_t *o, const world_t *w, const policy_t *p, const stats_t *st)
{
    cJSON *j = cJSON_CreateObject();
    char *txt;

    cJSON_AddStringToObject(j, "policy", p->name);
    cJSON_AddStringToObject(j, "trace", o->world.trace);
    cJSON_AddStringToObject(j, "gpu", w->tag);
    cJSON_AddStringToObject(j, "instance_type", w->instance_type);
    cJSON_AddNumberToObject(j, "zones", (double)w->nz);
    cJSON_AddNumberToObject(j, "hours", (double)w->ticks * w->gap / 3600.0);
    cJSON_AddNumberToObject(j, "ticks", (double)w->ticks);
    cJSON_AddNumberToObject(j, "gap_seconds", w->gap);
    cJSON_AddNumberToObject(j, "start_tick", (double)o->world.start_tick);
    cJSON_AddBoolToObject(j, "fallback_placer", o->fallback_placer);
    cJSON_AddBoolToObject(j, "placer", st->placer);
    cJSON_AddStringToObject(j, "spot_placer", st->spot_placer);
    cJSON_AddBoolToObject(j, "hedge", st->hedge);
    cJSON_AddNumberToObject(j, "notice_s", st->notice_s);
    cJSON_AddNumberToObject(j, "notices", (double)st->notices);
    cJSON_AddNumberToObject(j, "launch_api_latency_s", o->api_latency_s);
    cJSON_AddNumberToObject(j, "failed_per_preemption",
                            st->preemptions ? (double)st->failed_launches / (double)st->preemptions
                                            : 0);
    cJSON_AddNumberToObject(j, "target_replicas", o->target);
    cJSON_AddNumberToObject(j, "cost_ratio", ratio(st->cost, st->baseline));
    cJSON_AddNumberToObject(j, "availability", ratio(st->avail_s, st->measured_s));
    cJSON_AddNumberToObject(j, "preemptions", (double)st->preemptions);
    cJSON_AddNumberToObject(j, "launches", (double)st->launches);
    cJSON_AddNumberToObject(j, "failed_launches", (double)st->failed_launches);
    cJSON_AddNumberToObject(j, "outages", (double)st->outages);
    cJSON_AddNumberToObject(j, "longest_outage_s", st->longest_outage_s);
    cJSON_AddNumberToObject(j, "spot_hours", st->spot_s / 3600.0);
    cJSON_AddNumberToObject(j, "ondemand_hours", st->od_s / 3600.0);
    cJSON_AddNumberToObject(j, "spot_missing_with_room_hours", st->spot_miss_s / 3600.0);
    cJSON_AddNumberToObject(j, "ondemand_hours_with_spot_room", st->od_room_s / 3600.0);
    cJSON_AddNumberToObject(j, "cost_usd", st->cost);
    cJSON_AddNumberToObject(j, "baseline_usd", st->baseline);
    cJSON_AddNumberToObject(j, "wall_s", st->wall_s);
    txt = cJSON_PrintUnformatted(j);
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(j);
}

static void print_header(const opts_t *o, const world_t *w, const load_t *load)
{
    printf("trace %s: %zu zone(s) of %s -> %s, gap %gs, %zu ticks (%.1f h)%s\n", o->world.trace,
           w->nz, w->tag, w->instance_type, w->gap, w->ticks, (double)w->ticks * w->gap / 3600.0,
           w->shortest != w->longest
               ? (o->world.extend ? ", missing ticks = 0 up to the longest file"
                                  : ", ends at the shortest file")
               : "");
    for (size_t i = 0; i < w->nz; i++) {
        const zone_t *z = &w->z[i];
        long zeros = 0;

        for (size_t k = 0; k < w->ticks; k++)
            zeros += (k < z->n ? z->data[k] : 0) == 0;
        printf("  %-18s spot $%.4f/h  on-demand $%.4f/h%s  no spot %.1f%% of ticks\n", z->name,
               z->spot_price, z->od_price,
               z->price_fallback ? " (catalog average: zone not priced)" : "",
               100.0 * (double)zeros / (double)w->ticks);
    }
    if (load)
        printf("load: %zu point(s), %.3g qps/replica, replicas %d..%d\n", load->n,
               o->qps_per_replica, o->min_replicas, o->max_replicas);
    else
        printf("load: constant %d replica(s)\n", o->target);
    printf("model: provision %gs, cold start %gs, drain %gs, step %gs, decisions every %gs "
           "from %gs, launch retry %gs, seed %llu%s\n",
           o->provision_s, o->cold_start_s, o->cfg.drain_seconds, o->step_s,
           o->cfg.decision_interval, o->service_start, o->cfg.launch_retry_initial,
           (unsigned long long)o->seed, o->world.spot_discount >= 0 ? ", flat spot discount" : "");
    printf("spot placer (%s): %s%s\n\n", ctl_placer_kind_name(o->placer),
           o->fallback_placer ? "spothedge, base_fallback, dynamic_fallback (--fallback-placer)"
                              : "spothedge only (as the controller: the reference's rule)",
           o->hedge ? "; hedge: dynamic fallback covers the target only" : "");
    printf("%-17s %10s %12s %11s %9s %7s %8s %11s %9s %9s %7s\n", "policy", "cost_ratio",
           "availability", "preemptions", "launches", "failed", "outages", "max_out_s", "spot_h",
           "od_h", "wall_s");
}

static void print_row(const policy_t *p, const stats_t *st)
{
    printf("%-17s %10.4f %12.5f %11ld %9ld %7ld %8ld %11.0f %9.1f %9.1f %7.3f\n", p->name,
           ratio(st->cost, st->baseline), ratio(st->avail_s, st->measured_s), st->preemptions,
           st->launches, st->failed_launches, st->outages, st->longest_outage_s,
           st->spot_s / 3600.0, st->od_s / 3600.0, st->wall_s);
}

/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(
        f, "usage: policy_replay --trace DIR [--policy NAME|all] [--target-replicas N]\n"
           "         [--provision-delay S] [--cold-start S] [--seed N] [--json]\n"
           "         [--load FILE | --qps X] [--qps-per-replica Q] [--min-replicas N]\n"
           "         [--max-replicas N] [--spot-discount F] [--gpu TAG] [--instance-type T]\n"
           "         [--catalog FILE] [--drain S] [--step S] [--extend] [--preempt newest|random]\n"
           "         [--verbose] [--gap S] [--start-tick N] [--ticks N] [--decision-interval S]\n"
           "         [--launch-retry-initial S] [--service-start S] [--timeline FILE|-]\n"
           "         [--fallback-placer|--no-fallback-placer]\n"
           "         [--placer dynamic_fallback|spread_backoff] [--hedge on|off]\n"
           "         [--notice on|off] [--notice-seconds S] [--launch-api-latency S]\n"
           "policies: ondemand spot base_fallback dynamic_fallback spothedge (default all)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    double d;

    if (core_parse_num(s, lo, hi, &d) < 0 || d != floor(d))
        return -EINVAL;
    *out = (int)d;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        O_TRACE = 1000,
        O_POLICY,
        O_TARGET,
        O_PROV,
        O_COLD,
        O_SEED,
        O_JSON,
        O_LOAD,
        O_QPS,
        O_QPR,
        O_MIN,
        O_MAX,
        O_DISC,
        O_GPU,
        O_ITYPE,
        O_CATALOG,
        O_DRAIN,
        O_STEP,
        O_EXTEND,
        O_PREEMPT,
        O_VERBOSE,
        O_GAP,
        O_START_TICK,
        O_TICKS,
        O_DECISION,
        O_RETRY,
        O_SVC_START,
        O_TIMELINE,
        O_FALLBACK_PLACER,
        O_NO_FALLBACK_PLACER,
        O_PLACER,
        O_HEDGE,
        O_NOTICE,
        O_NOTICE_S,
        O_API_LATENCY,
        O_HELP,
    };
    static const struct option longopts[] = {
        {"trace", required_argument, NULL, O_TRACE},
        {"policy", required_argument, NULL, O_POLICY},
        {"target-replicas", required_argument, NULL, O_TARGET},
        {"provision-delay", required_argument, NULL, O_PROV},
        {"cold-start", required_argument, NULL, O_COLD},
        {"seed", required_argument, NULL, O_SEED},
        {"json", no_argument, NULL, O_JSON},
        {"load", required_argument, NULL, O_LOAD},
        {"qps", required_argument, NULL, O_QPS},
        {"qps-per-replica", required_argument, NULL, O_QPR},
        {"min-replicas", required_argument, NULL, O_MIN},
        {"max-replicas", required_argument, NULL, O_MAX},
        {"spot-discount", required_argument, NULL, O_DISC},
        {"gpu", required_argument, NULL, O_GPU},
        {"instance-type", required_argument, NULL, O_ITYPE},
        {"catalog", required_argument, NULL, O_CATALOG},
        {"drain", required_argument, NULL, O_DRAIN},
        {"step", required_argument, NULL, O_STEP},
        {"extend", no_argument, NULL, O_EXTEND},
        {"preempt", required_argument, NULL, O_PREEMPT},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"gap", required_argument, NULL, O_GAP},
        {"start-tick", required_argument, NULL, O_START_TICK},
        {"ticks", required_argument, NULL, O_TICKS},
        {"decision-interval", required_argument, NULL, O_DECISION},
        {"launch-retry-initial", required_argument, NULL, O_RETRY},
        {"service-start", required_argument, NULL, O_SVC_START},
        {"timeline", required_argument, NULL, O_TIMELINE},
        {"fallback-placer", no_argument, NULL, O_FALLBACK_PLACER},
        {"no-fallback-placer", no_argument, NULL, O_NO_FALLBACK_PLACER},
        {"placer", required_argument, NULL, O_PLACER},
        {"hedge", required_argument, NULL, O_HEDGE},
        {"notice", required_argument, NULL, O_NOTICE},
        {"notice-seconds", required_argument, NULL, O_NOTICE_S},
        {"launch-api-latency", required_argument, NULL, O_API_LATENCY},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opts_t o = {
        .policy = "all",
        .world = {.spot_discount = -1},
        .target = 2,
        .provision_s = 120,
        .cold_start_s = 60,
        .step_s = 0,
        .qps = -1,
        .qps_per_replica = 1,
        .min_replicas = 1,
        .max_replicas = 10,
        .fallback_placer = false,
        .notice_s = -1,
        .api_latency_s = 20,
    };
    core_catalog_t *cat = NULL;
    world_t w;
    load_t load = {0};
    bool have_load = false;
    char *err = NULL;
    int c, rc, bad = 0, ran = 0, n = 0;
    double d;

    core_log_init("policy_replay", CORE_LOG_WARN);
    ctl_serve_cfg_default(&o.cfg);
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_TRACE:
            o.world.trace = optarg;
            break;
        case O_POLICY:
            o.policy = optarg;
            break;
        case O_TARGET:
            bad |= parse_int(optarg, 1, 10000, &o.target);
            break;
        case O_PROV:
            bad |= core_parse_num(optarg, 0, 1e6, &o.provision_s);
            break;
        case O_COLD:
            bad |= core_parse_num(optarg, 0, 1e6, &o.cold_start_s);
            break;
        case O_SEED:
            bad |= core_parse_num(optarg, 0, 1.8e19, &d);
            o.seed = (uint64_t)d;
            break;
        case O_JSON:
            o.json = true;
            break;
        case O_LOAD:
            o.load_file = optarg;
            break;
        case O_QPS:
            bad |= core_parse_num(optarg, 0, 1e9, &o.qps);
            break;
        case O_QPR:
            bad |= core_parse_num(optarg, 1e-9, 1e9, &o.qps_per_replica);
            break;
        case O_MIN:
            bad |= parse_int(optarg, 0, 10000, &o.min_replicas);
            break;
        case O_MAX:
            bad |= parse_int(optarg, 1, 10000, &o.max_replicas);
            break;
        case O_DISC:
            bad |= core_parse_num(optarg, 0, 10, &o.world.spot_discount);
            break;
        case O_GPU:
            o.world.gpu = optarg;
            break;
        case O_ITYPE:
            o.world.instance_type = optarg;
            break;
        case O_CATALOG:
            o.catalog = optarg;
            break;
        case O_DRAIN:
            bad |= core_parse_num(optarg, 0, 1e6, &o.cfg.drain_seconds);
            break;
        case O_STEP:
            bad |= core_parse_num(optarg, 0.1, 86400, &o.step_s);
            break;
        case O_EXTEND:
            o.world.extend = true;
            break;
        case O_PREEMPT:
            if (strcmp(optarg, "random") == 0)
                o.preempt_random = true;
            else if (strcmp(optarg, "newest") != 0)
                bad = -1;
            break;
        case O_VERBOSE:
            o.verbose = true;
            break;
        case O_GAP:
            bad |= core_parse_num(optarg, 0.01, 86400, &o.world.gap);
            break;
        case O_START_TICK:
            bad |= parse_int(optarg, 0, TRACE_MAX_TICKS, &n);
            o.world.start_tick = n;
            break;
        case O_TICKS:
            bad |= parse_int(optarg, 1, TRACE_MAX_TICKS, &n);
            o.world.n_ticks = n;
            break;
        case O_DECISION:
            /* set as the controller's config would set it, with its bounds */
            bad |= ctl_serve_cfg_set(&o.cfg, "decision_interval", optarg);
            break;
        case O_RETRY:
            bad |= ctl_serve_cfg_set(&o.cfg, "launch_retry_initial", optarg);
            break;
        case O_SVC_START:
            bad |= core_parse_num(optarg, 0, 1e9, &o.service_start);
            break;
        case O_TIMELINE:
            o.timeline = optarg;
            break;
        case O_FALLBACK_PLACER:
            o.fallback_placer = true;
            break;
        case O_NO_FALLBACK_PLACER:
            o.fallback_placer = false;
            break;
        case O_PLACER:
            if (strcmp(optarg, "dynamic_fallback") == 0)
                o.placer = CTL_PLACER_DYNAMIC_FALLBACK;
            else if (strcmp(optarg, "spread_backoff") == 0)
                o.placer = CTL_PLACER_SPREAD_BACKOFF;
            else
                bad = -1;
            break;
        case O_HEDGE:
            if (strcmp(optarg, "on") == 0 || strcmp(optarg, "off") == 0)
                o.hedge = strcmp(optarg, "on") == 0;
            else
                bad = -1;
            break;
        case O_NOTICE:
            if (strcmp(optarg, "on") == 0 || strcmp(optarg, "off") == 0)
                o.notice = strcmp(optarg, "on") == 0;
            else
                bad = -1;
            break;
        case O_NOTICE_S:
            bad |= core_parse_num(optarg, 0, 86400, &o.notice_s);
            break;
        case O_API_LATENCY:
            bad |= core_parse_num(optarg, 0, 3600, &o.api_latency_s);
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "policy_replay: bad value for --%s: '%s'\n", longopts[c - O_TRACE].name,
                    optarg);
            return 2;
        }
    }
    if (!o.world.trace || optind != argc || (o.load_file && o.qps >= 0) ||
        o.min_replicas > o.max_replicas) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; strcmp(o.policy, "all") != 0; i++) {
        if (i == sizeof(POLICIES) / sizeof(POLICIES[0])) {
            fprintf(stderr, "policy_replay: unknown policy '%s'\n", o.policy);
            usage(stderr);
            return 2;
        }
        if (strcmp(POLICIES[i].name, o.policy) == 0)
            break;
    }
    if ((rc = core_catalog_load(o.catalog, &cat, &err)) < 0) {
        fprintf(stderr, "policy_replay: %s\n", err ? err : core_strerror(rc));
        free(err);
        return 1;
    }
    if ((rc = trace_world_load(&w, &o.world, cat, &err)) < 0) {
        fprintf(stderr, "policy_replay: %s\n", err ? err : core_strerror(rc));
        free(err);
        core_catalog_free(cat);
        return 1;
    }
    core_catalog_free(cat);
    if (o.step_s == 0) {
        /* The probe interval, shrunk so that ticks start on a step. */
        o.step_s = w.gap / ceil(w.gap / o.cfg.probe_interval);
    } else if (fmod(w.gap, o.step_s) != 0) {
        fprintf(stderr, "policy_replay: --step must divide gap_seconds (%g)\n", w.gap);
        trace_world_free(&w);
        return 2;
    }
    if (o.timeline) {
        o.tl = strcmp(o.timeline, "-") == 0 ? stdout : fopen(o.timeline, "w");
        if (!o.tl) {
            fprintf(stderr, "policy_replay: %s: %s\n", o.timeline, strerror(errno));
            trace_world_free(&w);
            return 1;
        }
    }
    if (o.load_file) {
        if ((rc = load_read(&load, o.load_file, &err)) < 0) {
            fprintf(stderr, "policy_replay: %s\n", err);
            free(err);
            trace_world_free(&w);
            return 1;
        }
        have_load = true;
    } else if (o.qps >= 0) {
        load.n = 1;
        load.t = core_xmalloc(sizeof(double));
        load.qps = core_xmalloc(sizeof(double));
        load.t[0] = 0;
        load.qps[0] = o.qps;
        have_load = true;
    }
    if (w.n_fallback)
        CORE_WARN("%d zone(s) not priced in the catalog for %s: using the catalog average",
                  w.n_fallback, w.instance_type);
    if (!o.json)
        print_header(&o, &w, have_load ? &load : NULL);
    for (size_t i = 0; i < sizeof(POLICIES) / sizeof(POLICIES[0]); i++) {
        stats_t st;

        if (strcmp(o.policy, "all") != 0 && strcmp(o.policy, POLICIES[i].name) != 0)
            continue;
        if ((rc = run_policy(&o, &w, have_load ? &load : NULL, &POLICIES[i], &st, &err)) < 0) {
            fprintf(stderr, "policy_replay: %s: %s\n", POLICIES[i].name,
                    err ? err : core_strerror(rc));
            free(err);
            err = NULL;
            continue;
        }
        ran++;
        if (o.json)
            print_json(&o, &w, &POLICIES[i], &st);
        else
            print_row(&POLICIES[i], &st);
    }
    free(load.t);
    free(load.qps);
    trace_world_free(&w);
    if (o.tl && o.tl != stdout && fclose(o.tl) != 0) {
        fprintf(stderr, "policy_replay: %s: %s\n", o.timeline, strerror(errno));
        return 1;
    }
    return ran ? 0 : 1;
}
