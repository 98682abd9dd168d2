#include "ctl_scaler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/mem.h"

void ctl_scaler_spec_default(ctl_scaler_spec_t *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->min_replicas = CTL_SCALER_DEFAULT_MIN_REPLICAS;
    spec->max_replicas = -1;
    spec->target_qps_per_replica = -1;
    spec->upscale_delay_s = CTL_SCALER_DEFAULT_UPSCALE_DELAY_S;
    spec->downscale_delay_s = CTL_SCALER_DEFAULT_DOWNSCALE_DELAY_S;
    spec->decision_interval_s = CTL_SCALER_DEFAULT_DECISION_INTERVAL_S;
    spec->no_replica_interval_s = CTL_SCALER_DEFAULT_NO_REPLICA_INTERVAL_S;
    spec->qps_window_s = CTL_SCALER_DEFAULT_QPS_WINDOW_S;
    spec->qps_max_entries = CTL_SCALER_DEFAULT_QPS_MAX_ENTRIES;
}

static int spec_error(char **err, const char *msg)
{
    if (err != NULL)
        *err = core_xstrdup(msg);
    return CORE_ESPEC;
}

int ctl_scaler_spec_validate(const ctl_scaler_spec_t *spec, char **err)
{
    if (spec->min_replicas < 0)
        return spec_error(err, "min_replicas must be >= 0.");
    if (spec->max_replicas >= 0 && spec->max_replicas < spec->min_replicas)
        return spec_error(err, "max_replicas must be >= min_replicas.");
    /* The reference schema accepts 0 and then divides by it on every tick. */
    if (spec->target_qps_per_replica == 0 || isnan(spec->target_qps_per_replica))
        return spec_error(err, "target_qps_per_replica must be > 0.");
    if (spec->upscale_delay_s < 0 || spec->downscale_delay_s < 0)
        return spec_error(err, "upscale_delay_seconds and downscale_delay_seconds must be >= 0.");
    if (!(spec->decision_interval_s > 0) || !(spec->no_replica_interval_s > 0) ||
        !(spec->qps_window_s > 0))
        return spec_error(err, "decision intervals and the QPS window must be > 0.");
    if (spec->num_overprovision < 0 || spec->base_ondemand_fallback_replicas < 0)
        return spec_error(err,
                          "num_overprovision and base_ondemand_fallback_replicas must be >= 0.");
    if (spec->qps_max_entries == 0)
        return spec_error(err, "the QPS window needs room for at least one entry.");
    return 0;
}

ctl_scaler_kind_t ctl_scaler_kind_for_spec(const ctl_scaler_spec_t *spec)
{
    return spec->dynamic_ondemand_fallback || spec->base_ondemand_fallback_replicas > 0
               ? CTL_SCALER_FALLBACK
               : CTL_SCALER_REQUEST_RATE;
}

static int max_replicas(const ctl_scaler_spec_t *spec)
{
    return spec->max_replicas >= 0 ? spec->max_replicas : spec->min_replicas;
}

static int clip(int v, const ctl_scaler_spec_t *spec)
{
    if (v > max_replicas(spec))
        v = max_replicas(spec);
    if (v < spec->min_replicas)
        v = spec->min_replicas;
    return v;
}

static void load_spec(ctl_scaler_t *s, const ctl_scaler_spec_t *spec)
{
    s->spec = *spec;
    s->kind = ctl_scaler_kind_for_spec(spec);
    s->up_threshold = (int)(spec->upscale_delay_s / spec->decision_interval_s);
    s->down_threshold = (int)(spec->downscale_delay_s / spec->decision_interval_s);
}

int ctl_scaler_init(ctl_scaler_t *s, const ctl_scaler_spec_t *spec, int version, char **err)
{
    int r = ctl_scaler_spec_validate(spec, err);

    if (r < 0)
        return r;
    memset(s, 0, sizeof(*s));
    load_spec(s, spec);
    s->st.target = spec->min_replicas;
    s->st.latest_version = version;
    /* Below latest_version so that a broken first version freezes scaling too. */
    s->st.latest_version_ever_ready = version - 1;
    s->st.update_mode = CTL_UPDATE_ROLLING;
    return 0;
}

void ctl_scaler_destroy(ctl_scaler_t *s)
{
    free(s->win.e);
    s->win.e = NULL;
    s->win.start = s->win.len = s->win.cap = 0;
    s->win.total = 0;
}

/* ---- the request window ---- */

static void win_trim(ctl_qps_window_t *w, double cutoff)
{
    /* bisect_left(ts, cutoff): entries at exactly the cutoff stay. */
    while (w->len > 0 && w->e[w->start].t < cutoff) {
        w->total -= w->e[w->start].count;
        w->start++;
        w->len--;
    }
    if (w->len == 0)
        w->start = 0;
}

/*
 * At the size bound, merge neighbours that fall in the same slot of width
 * window / (max/2), keeping the later time: counts stay exact and an entry
 * leaves the window at most one slot (about 2 ms at the defaults) late. That
 * leaves at most max/2 + 1 entries for a window's worth of stamps; only
 * stamps spread wider than the window (future clocks) can still force the
 * oldest out.
 */
static void win_compact(ctl_qps_window_t *w, size_t max_entries, double window_s)
{
    double slot = window_s / (double)(max_entries / 2 ? max_entries / 2 : 1);
    ctl_qps_entry_t *e = w->e + w->start;
    size_t out = 0;

    for (size_t i = 0; i < w->len; i++) {
        if (out > 0 && floor(e[out - 1].t / slot) == floor(e[i].t / slot)) {
            e[out - 1].t = e[i].t;
            e[out - 1].count += e[i].count;
        } else {
            e[out++] = e[i];
        }
    }
    w->len = out;
    w->compactions++;
}

static void win_make_room(ctl_qps_window_t *w, size_t max_entries, double window_s)
{
    if (w->len >= max_entries)
        win_compact(w, max_entries, window_s);
    if (w->len >= max_entries) {
        w->total -= w->e[w->start].count;
        w->start++;
        w->len--;
        w->dropped++;
    }
    if (w->start + w->len < w->cap)
        return;
    if (w->start > 0 && w->start >= w->cap / 2) {
        memmove(w->e, w->e + w->start, w->len * sizeof(*w->e));
        w->start = 0;
        return;
    }
    w->cap = w->cap ? w->cap * 2 : 64;
    if (w->cap < w->start + w->len + 1)
        w->cap = w->start + w->len + 1;
    w->e = core_xrealloc(w->e, w->cap * sizeof(*w->e));
}

static void win_insert(ctl_qps_window_t *w, size_t max_entries, double window_s, double t,
                       uint32_t count)
{
    size_t i;

    if (count == 0 || isnan(t))
        return;
    if (w->len > 0 && w->e[w->start + w->len - 1].t == t) {
        w->e[w->start + w->len - 1].count += count;
        w->total += count;
        return;
    }
    win_make_room(w, max_entries, window_s);
    /* LBs send sorted batches, so this walk is normally zero steps. */
    i = w->len;
    while (i > 0 && w->e[w->start + i - 1].t > t)
        i--;
    if (i > 0 && w->e[w->start + i - 1].t == t) {
        w->e[w->start + i - 1].count += count;
        w->total += count;
        return;
    }
    memmove(&w->e[w->start + i + 1], &w->e[w->start + i], (w->len - i) * sizeof(*w->e));
    w->e[w->start + i].t = t;
    w->e[w->start + i].count = count;
    w->len++;
    w->total += count;
}

void ctl_scaler_add_requests(ctl_scaler_t *s, const double *ts, size_t n, double now)
{
    double cutoff = now - s->spec.qps_window_s;

    for (size_t i = 0; i < n; i++)
        if (ts[i] >= cutoff)
            win_insert(&s->win, s->spec.qps_max_entries, s->spec.qps_window_s, ts[i], 1);
    win_trim(&s->win, cutoff);
}

void ctl_scaler_add_request_count(ctl_scaler_t *s, double t, uint32_t count, double now)
{
    double cutoff = now - s->spec.qps_window_s;

    if (t >= cutoff)
        win_insert(&s->win, s->spec.qps_max_entries, s->spec.qps_window_s, t, count);
    win_trim(&s->win, cutoff);
}

double ctl_scaler_qps(ctl_scaler_t *s, double now)
{
    /* Re-trim here: the reference trims only when the LB syncs, so a silent
     * LB leaves up to 80 s of stale requests in its QPS. */
    win_trim(&s->win, now - s->spec.qps_window_s);
    return (double)s->win.total / s->spec.qps_window_s;
}

/* ---- target computation ---- */

int ctl_scaler_calculate_target(ctl_scaler_t *s, double now)
{
    double qps, raw;

    s->last_qps = ctl_scaler_qps(s, now);
    if (!(s->spec.target_qps_per_replica > 0))
        return s->spec.min_replicas;
    qps = s->last_qps;
    raw = ceil(qps / s->spec.target_qps_per_replica);
    if (raw > (double)max_replicas(&s->spec))
        return max_replicas(&s->spec);
    return clip((int)raw, &s->spec);
}

void ctl_scaler_hysteresis_tick(ctl_scaler_t *s, double now)
{
    int want = ctl_scaler_calculate_target(s, now);
    ctl_scaler_state_t *st = &s->st;

    if (st->target == 0) {
        /* Scale from zero without the upscale delay: nobody is serving. */
        st->target = want;
    } else if (want > st->target) {
        st->upscale_counter++;
        st->downscale_counter = 0;
        if (st->upscale_counter >= s->up_threshold) {
            st->upscale_counter = 0;
            st->target = want;
        }
    } else if (want < st->target) {
        st->downscale_counter++;
        st->upscale_counter = 0;
        if (st->downscale_counter >= s->down_threshold) {
            st->downscale_counter = 0;
            st->target = want;
        }
    } else {
        st->upscale_counter = 0;
        st->downscale_counter = 0;
    }
}

int ctl_scaler_final_target(const ctl_scaler_t *s)
{
    return s->st.target + s->spec.num_overprovision;
}

double ctl_scaler_next_interval(const ctl_scaler_t *s)
{
    return ctl_scaler_final_target(s) == 0 ? s->spec.no_replica_interval_s
                                           : s->spec.decision_interval_s;
}

int ctl_scaler_update_version(ctl_scaler_t *s, int version, const ctl_scaler_spec_t *spec,
                              ctl_update_mode_t mode, double now, char **err)
{
    int r;

    if (version <= s->st.latest_version) {
        if (err != NULL)
            *err = core_xasprintf("Version %d is not newer than the current version %d.", version,
                                  s->st.latest_version);
        return CORE_EINVALREQ;
    }
    if ((r = ctl_scaler_spec_validate(spec, err)) < 0)
        return r;
    load_spec(s, spec);
    s->st.latest_version = version;
    s->st.update_mode = mode;
    s->st.upscale_counter = 0;
    s->st.downscale_counter = 0;
    s->st.target = ctl_scaler_calculate_target(s, now);
    return 0;
}

/* ---- decisions ---- */

typedef struct dvec {
    ctl_decision_t *v;
    size_t n, cap;
} dvec_t;

static void push(dvec_t *d, ctl_decision_kind_t kind, int use_spot, int id)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->v = core_xrealloc(d->v, d->cap * sizeof(*d->v));
    }
    d->v[d->n].kind = kind;
    d->v[d->n].use_spot = use_spot;
    d->v[d->n].replica_id = id;
    d->n++;
}

static void push_ups(dvec_t *d, int k, int use_spot)
{
    for (int i = 0; i < k; i++)
        push(d, CTL_SCALE_UP, use_spot, -1);
}

/* Scale down <k> of <cands> in the §4.5 order. */
static void push_downs(dvec_t *d, const ctl_replica_info_t *cands, size_t n, size_t k)
{
    int *ids;
    size_t m;

    if (k == 0 || n == 0)
        return;
    ids = core_xmalloc(n * sizeof(*ids));
    m = ctl_replica_select_scale_down(cands, n, k, ids);
    for (size_t i = 0; i < m; i++)
        push(d, CTL_SCALE_DOWN, -1, ids[i]);
    free(ids);
}

static bool is_current(const ctl_scaler_t *s, const ctl_replica_info_t *r)
{
    return r->version == s->st.latest_version && !ctl_replica_status_is_terminal(r->status);
}

static void outdated_downs(const ctl_scaler_t *s, const ctl_replica_info_t *r, size_t n,
                           const int *active, size_t n_active, dvec_t *d)
{
    if (s->st.update_mode == CTL_UPDATE_BLUE_GREEN) {
        int oldest_active;

        if (n_active == 0)
            return;
        oldest_active = active[0];
        for (size_t i = 1; i < n_active; i++)
            if (active[i] < oldest_active)
                oldest_active = active[i];
        /* Replicas already being torn down are skipped: re-issuing would only
         * repeat a termination the reference dedups in its replica manager. */
        for (size_t i = 0; i < n; i++)
            if (r[i].version < oldest_active && r[i].status != CTL_REPLICA_SHUTTING_DOWN &&
                r[i].status != CTL_REPLICA_PREEMPTED)
                push(d, CTL_SCALE_DOWN, -1, r[i].id);
        return;
    }

    ctl_replica_info_t *old = core_xmalloc((n ? n : 1) * sizeof(*old));
    size_t n_old = 0;
    int ready_new = 0, target = ctl_scaler_final_target(s);

    for (size_t i = 0; i < n; i++) {
        if (r[i].version < s->st.latest_version && !ctl_replica_status_is_terminal(r[i].status))
            old[n_old++] = r[i];
        else if (r[i].version == s->st.latest_version && r[i].status == CTL_REPLICA_READY)
            ready_new++;
    }
    if (ready_new >= target) {
        for (size_t i = 0; i < n_old; i++)
            push(d, CTL_SCALE_DOWN, -1, old[i].id);
    } else {
        /* Keep just enough old replicas to cover the new ones not yet ready. */
        size_t keep = (size_t)(target - ready_new);

        if (n_old > keep)
            push_downs(d, old, n_old, n_old - keep);
    }
    free(old);
}

static void request_rate_decisions(ctl_scaler_t *s, const ctl_replica_info_t *r, size_t n,
                                   double now, dvec_t *d)
{
    ctl_replica_info_t *cur = core_xmalloc((n ? n : 1) * sizeof(*cur));
    size_t n_cur = 0, target;

    ctl_scaler_hysteresis_tick(s, now);
    for (size_t i = 0; i < n; i++)
        if (is_current(s, &r[i]))
            cur[n_cur++] = r[i];
    target = (size_t)ctl_scaler_final_target(s);
    if (n_cur < target)
        push_ups(d, (int)(target - n_cur), -1);
    else if (n_cur > target)
        push_downs(d, cur, n_cur, n_cur - target);
    free(cur);
}

static void fallback_decisions(ctl_scaler_t *s, const ctl_replica_info_t *r, size_t n, double now,
                               dvec_t *d)
{
    ctl_replica_info_t *spot = core_xmalloc((n ? n : 1) * sizeof(*spot));
    ctl_replica_info_t *od = core_xmalloc((n ? n : 1) * sizeof(*od));
    size_t n_spot = 0, n_od = 0;
    int ready_spot = 0, base = s->spec.base_ondemand_fallback_replicas;
    int spot_needed, od_needed;

    ctl_scaler_hysteresis_tick(s, now);
    for (size_t i = 0; i < n; i++) {
        if (!is_current(s, &r[i]))
            continue;
        if (r[i].is_spot) {
            spot[n_spot++] = r[i];
            ready_spot += r[i].status == CTL_REPLICA_READY;
        } else {
            od[n_od++] = r[i];
        }
    }
    /* Clamped: with base > final target the reference asks to remove more
     * spot replicas than exist, its assert throws, and that tick is lost. */
    spot_needed = ctl_scaler_final_target(s) - base;
    if (spot_needed < 0)
        spot_needed = 0;
    if ((int)n_spot < spot_needed)
        push_ups(d, spot_needed - (int)n_spot, 1);
    else if ((int)n_spot > spot_needed)
        push_downs(d, spot, n_spot, n_spot - (size_t)spot_needed);

    od_needed = base;
    if (s->spec.dynamic_ondemand_fallback) {
        /* Spot the on-demand replicas stand in for. The reference covers the
         * hedge too (only capped at the target below), so one on-demand replica
         * runs whenever the overprovisioned one is not READY; the hedge option
         * covers the target's share alone, as the SpotHedge paper describes. */
        int covered = spot_needed;

        if (s->spec.fallback_target_only && covered > s->st.target - base)
            covered = s->st.target - base > 0 ? s->st.target - base : 0;
        if (covered > ready_spot)
            od_needed += covered - ready_spot; /* READY spot only: cover the launching ones */
    }
    /* Never more on-demand than the target. */
    if (od_needed > s->st.target)
        od_needed = s->st.target;
    if (od_needed > (int)n_od)
        push_ups(d, od_needed - (int)n_od, 0);
    else if ((int)n_od > od_needed)
        push_downs(d, od, n_od, n_od - (size_t)od_needed);
    free(spot);
    free(od);
}

int ctl_scaler_decide(ctl_scaler_t *s, const ctl_replica_info_t *r, size_t n, const int *active,
                      size_t n_active, double now, ctl_decision_t **out, size_t *n_out)
{
    dvec_t d = {0};
    bool latest_ready = false, latest_broken = false;

    for (size_t i = 0; i < n; i++) {
        if (r[i].version != s->st.latest_version)
            continue;
        latest_ready |= r[i].status == CTL_REPLICA_READY;
        latest_broken |= r[i].unrecoverable;
    }
    if (latest_ready)
        s->st.latest_version_ever_ready = s->st.latest_version;
    s->last_frozen = s->st.latest_version_ever_ready < s->st.latest_version && latest_broken;
    if (s->last_frozen) {
        /* The user's app is broken in a version never seen working: relaunching
         * would crash-loop. Wait for an update (no rollback, as upstream). */
        *out = NULL;
        *n_out = 0;
        return 0;
    }
    outdated_downs(s, r, n, active, n_active, &d);
    if (s->kind == CTL_SCALER_FALLBACK)
        fallback_decisions(s, r, n, now, &d);
    else
        request_rate_decisions(s, r, n, now, &d);
    *out = d.v;
    *n_out = d.n;
    return 0;
}

/* ---- persistence ---- */

cJSON *ctl_scaler_state_to_json(const ctl_scaler_t *s, const ctl_placer_t *placer,
                                bool include_window)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "target", s->st.target);
    cJSON_AddNumberToObject(o, "upscale_counter", s->st.upscale_counter);
    cJSON_AddNumberToObject(o, "downscale_counter", s->st.downscale_counter);
    cJSON_AddNumberToObject(o, "latest_version", s->st.latest_version);
    cJSON_AddNumberToObject(o, "latest_version_ever_ready", s->st.latest_version_ever_ready);
    cJSON_AddStringToObject(o, "update_mode", ctl_update_mode_name(s->st.update_mode));
    if (include_window) {
        cJSON *arr = cJSON_AddArrayToObject(o, "requests");

        for (size_t i = 0; i < s->win.len; i++) {
            const ctl_qps_entry_t *e = &s->win.e[s->win.start + i];
            cJSON *pair = cJSON_CreateArray();

            cJSON_AddItemToArray(pair, cJSON_CreateNumber(e->t));
            cJSON_AddItemToArray(pair, cJSON_CreateNumber(e->count));
            cJSON_AddItemToArray(arr, pair);
        }
    }
    if (placer != NULL)
        cJSON_AddItemToObject(o, "placer", ctl_placer_to_json(placer));
    return o;
}

static int get_int(const cJSON *o, const char *key, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < -1e9 ||
        v->valuedouble > 1e9)
        return CORE_EJSON;
    *out = (int)v->valuedouble;
    return 0;
}

int ctl_scaler_state_from_json(ctl_scaler_t *s, ctl_placer_t *placer, const cJSON *j, double now)
{
    ctl_scaler_state_t st;
    const cJSON *mode, *reqs, *pl, *pair;

    if (!cJSON_IsObject(j))
        return CORE_EJSON;
    if (get_int(j, "target", &st.target) < 0 ||
        get_int(j, "upscale_counter", &st.upscale_counter) < 0 ||
        get_int(j, "downscale_counter", &st.downscale_counter) < 0 ||
        get_int(j, "latest_version", &st.latest_version) < 0 ||
        get_int(j, "latest_version_ever_ready", &st.latest_version_ever_ready) < 0)
        return CORE_EJSON;
    mode = cJSON_GetObjectItemCaseSensitive(j, "update_mode");
    if (!cJSON_IsString(mode) || ctl_update_mode_parse(mode->valuestring, &st.update_mode) < 0)
        return CORE_EJSON;
    if (st.target < 0 || st.upscale_counter < 0 || st.downscale_counter < 0)
        return CORE_EJSON;
    reqs = cJSON_GetObjectItemCaseSensitive(j, "requests");
    if (reqs != NULL) {
        if (!cJSON_IsArray(reqs))
            return CORE_EJSON;
        cJSON_ArrayForEach(pair, reqs)
        {
            if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 ||
                !cJSON_IsNumber(cJSON_GetArrayItem(pair, 0)) ||
                !cJSON_IsNumber(cJSON_GetArrayItem(pair, 1)) ||
                cJSON_GetArrayItem(pair, 1)->valuedouble < 0 ||
                cJSON_GetArrayItem(pair, 1)->valuedouble > 4294967295.0)
                return CORE_EJSON;
        }
    }
    pl = cJSON_GetObjectItemCaseSensitive(j, "placer");
    if (pl != NULL && placer != NULL && ctl_placer_from_json(placer, pl) < 0)
        return CORE_EJSON;

    st.target = clip(st.target, &s->spec);
    s->st = st;
    if (reqs != NULL) {
        cJSON_ArrayForEach(pair, reqs)
        {
            ctl_scaler_add_request_count(s, cJSON_GetArrayItem(pair, 0)->valuedouble,
                                         (uint32_t)cJSON_GetArrayItem(pair, 1)->valuedouble, now);
        }
    }
    return 0;
}
