#include "ctl_placer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/mem.h"

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void ctl_location_set(ctl_location_t *l, const char *cloud, const char *region, const char *zone)
{
    copy_field(l->cloud, sizeof(l->cloud), cloud);
    copy_field(l->region, sizeof(l->region), region);
    copy_field(l->zone, sizeof(l->zone), zone);
}

void ctl_location_from_candidate(ctl_location_t *l, const core_candidate_t *c)
{
    ctl_location_set(l, c->cloud, c->region, c->zone);
}

bool ctl_location_equal(const ctl_location_t *a, const ctl_location_t *b)
{
    return strcmp(a->cloud, b->cloud) == 0 && strcmp(a->region, b->region) == 0 &&
           strcmp(a->zone, b->zone) == 0;
}

const char *ctl_placer_kind_name(ctl_placer_kind_t k)
{
    return k == CTL_PLACER_SPREAD_BACKOFF ? "spread_backoff" : "dynamic_fallback";
}

void ctl_placer_init(ctl_placer_t *p)
{
    p->locs = NULL;
    p->n = 0;
    p->kind = CTL_PLACER_DYNAMIC_FALLBACK;
    p->decision_interval_s = CTL_PLACER_DEFAULT_DECISION_S;
}

void ctl_placer_set_kind(ctl_placer_t *p, ctl_placer_kind_t kind, double decision_interval_s)
{
    p->kind = kind;
    if (decision_interval_s > 0 && isfinite(decision_interval_s))
        p->decision_interval_s = decision_interval_s;
}

void ctl_placer_destroy(ctl_placer_t *p)
{
    free(p->locs);
    p->locs = NULL;
    p->n = 0;
}

static ctl_placer_loc_t *find(const ctl_placer_t *p, const ctl_location_t *loc)
{
    for (size_t i = 0; i < p->n; i++)
        if (ctl_location_equal(&p->locs[i].loc, loc))
            return &p->locs[i];
    return NULL;
}

void ctl_placer_add(ctl_placer_t *p, const ctl_location_t *loc, double cost)
{
    ctl_placer_loc_t *l = find(p, loc);

    if (l != NULL) {
        if (cost < l->cost)
            l->cost = cost;
        return;
    }
    p->locs = core_xrealloc(p->locs, (p->n + 1) * sizeof(*p->locs));
    p->locs[p->n].loc = *loc;
    p->locs[p->n].cost = cost;
    p->locs[p->n].status = CTL_LOC_ACTIVE;
    p->locs[p->n].failures = 0;
    p->locs[p->n].failed_at = 0;
    p->locs[p->n].retry_at = 0;
    p->n++;
}

void ctl_placer_init_from_candidates(ctl_placer_t *p, const core_candidate_t *c, size_t n)
{
    ctl_placer_init(p);
    for (size_t i = 0; i < n; i++) {
        ctl_location_t l;

        if (!c[i].spot)
            continue;
        ctl_location_from_candidate(&l, &c[i]);
        ctl_placer_add(p, &l, c[i].price);
    }
}

static size_t count_in(const ctl_location_t *l, const ctl_location_t *list, size_t n)
{
    size_t c = 0;

    for (size_t i = 0; i < n; i++)
        c += ctl_location_equal(l, &list[i]);
    return c;
}

static bool in_list(const ctl_location_t *l, const ctl_location_t *list, size_t n)
{
    return count_in(l, list, n) > 0;
}

/*
 * Over the locations not backing off: spread first (fewest replicas), so the
 * zones in use get another replica only when every other zone is backing off;
 * then the least evidence of no room (fewest failures), so every zone, dearer
 * ones too, is tried before a failed one is tried again; then the cheapest.
 * Nothing at all while every zone backs off: the caller waits rather than
 * cycle through zones known to be full.
 */
static int select_spread_backoff(const ctl_placer_t *p, const ctl_location_t *in_use,
                                 size_t n_in_use, double now, ctl_location_t *out,
                                 double *retry_at)
{
    const ctl_placer_loc_t *best = NULL;
    size_t best_n = 0;
    double first_free = INFINITY;

    for (size_t i = 0; i < p->n; i++) {
        const ctl_placer_loc_t *l = &p->locs[i];
        size_t n;

        if (l->retry_at > now) {
            if (l->retry_at < first_free)
                first_free = l->retry_at;
            continue;
        }
        n = count_in(&l->loc, in_use, n_in_use);
        if (best == NULL || n < best_n ||
            (n == best_n && (l->failures < best->failures ||
                             (l->failures == best->failures && l->cost < best->cost)))) {
            best = l;
            best_n = n;
        }
    }
    if (best != NULL) {
        *out = best->loc;
        return 0;
    }
    if (p->n == 0)
        return CORE_ENOTFOUND;
    if (retry_at != NULL)
        *retry_at = first_free;
    return -EAGAIN;
}

int ctl_placer_select_at(const ctl_placer_t *p, const ctl_location_t *in_use, size_t n_in_use,
                         double now, ctl_location_t *out, double *retry_at)
{
    const ctl_placer_loc_t *best = NULL;

    if (p->kind == CTL_PLACER_SPREAD_BACKOFF)
        return select_spread_backoff(p, in_use, n_in_use, now, out, retry_at);

    /* Spreading across unused locations first is what hedges correlated preemptions. */
    for (size_t i = 0; i < p->n; i++) {
        const ctl_placer_loc_t *l = &p->locs[i];

        if (l->status != CTL_LOC_ACTIVE || in_list(&l->loc, in_use, n_in_use))
            continue;
        if (best == NULL || l->cost < best->cost)
            best = l;
    }
    if (best == NULL) {
        for (size_t i = 0; i < p->n; i++) {
            const ctl_placer_loc_t *l = &p->locs[i];

            if (l->status != CTL_LOC_ACTIVE)
                continue;
            if (best == NULL || l->cost < best->cost)
                best = l;
        }
    }
    if (best == NULL)
        return CORE_ENOTFOUND;
    *out = best->loc;
    return 0;
}

int ctl_placer_select(const ctl_placer_t *p, const ctl_location_t *in_use, size_t n_in_use,
                      ctl_location_t *out)
{
    return ctl_placer_select_at(p, in_use, n_in_use, 0, out, NULL);
}

size_t ctl_placer_num_active(const ctl_placer_t *p)
{
    size_t n = 0;

    for (size_t i = 0; i < p->n; i++)
        n += p->locs[i].status == CTL_LOC_ACTIVE;
    return n;
}

int ctl_placer_set_active_at(ctl_placer_t *p, const ctl_location_t *loc, double when)
{
    ctl_placer_loc_t *l = find(p, loc);

    if (l == NULL)
        return CORE_ENOTFOUND;
    if (p->kind == CTL_PLACER_SPREAD_BACKOFF && l->failures > 0 && when < l->failed_at)
        return 0;
    l->status = CTL_LOC_ACTIVE;
    l->failures = 0;
    l->retry_at = 0;
    return 0;
}

double ctl_placer_backoff_s(const ctl_placer_t *p, int failures)
{
    double d = p->decision_interval_s, first, b;
    size_t round = p->n + 1;

    if (round < CTL_PLACER_BACKOFF_MIN_DECISIONS)
        round = CTL_PLACER_BACKOFF_MIN_DECISIONS;
    first = d * (double)round;
    /* The cap is reached long before 2^60. */
    b = first * ldexp(1.0, failures < 1 ? 0 : failures > 60 ? 59 : failures - 1);
    if (b > d * CTL_PLACER_BACKOFF_MAX_DECISIONS)
        b = d * CTL_PLACER_BACKOFF_MAX_DECISIONS;
    return b < first ? first : b;
}

int ctl_placer_set_preemptive_at(ctl_placer_t *p, const ctl_location_t *loc, double now)
{
    ctl_placer_loc_t *l = find(p, loc);

    if (l == NULL)
        return CORE_ENOTFOUND;
    l->status = CTL_LOC_PREEMPTED;
    if (p->kind == CTL_PLACER_SPREAD_BACKOFF) {
        if (l->failures < 1000000)
            l->failures++;
        l->failed_at = now;
        l->retry_at = now + ctl_placer_backoff_s(p, l->failures);
        return 0;
    }
    /* With fewer than two choices left there is nothing to hedge with: start over. */
    if (ctl_placer_num_active(p) < 2)
        for (size_t i = 0; i < p->n; i++)
            p->locs[i].status = CTL_LOC_ACTIVE;
    return 0;
}

int ctl_placer_set_active(ctl_placer_t *p, const ctl_location_t *loc)
{
    return ctl_placer_set_active_at(p, loc, 0);
}

int ctl_placer_set_preemptive(ctl_placer_t *p, const ctl_location_t *loc)
{
    return ctl_placer_set_preemptive_at(p, loc, 0);
}

int ctl_placer_status(const ctl_placer_t *p, const ctl_location_t *loc, ctl_location_status_t *out)
{
    const ctl_placer_loc_t *l = find(p, loc);

    if (l == NULL)
        return CORE_ENOTFOUND;
    *out = l->status;
    return 0;
}

cJSON *ctl_placer_to_json(const ctl_placer_t *p)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t i = 0; i < p->n; i++) {
        const ctl_placer_loc_t *l = &p->locs[i];
        cJSON *o = cJSON_CreateObject();

        cJSON_AddStringToObject(o, "cloud", l->loc.cloud);
        cJSON_AddStringToObject(o, "region", l->loc.region);
        cJSON_AddStringToObject(o, "zone", l->loc.zone);
        cJSON_AddNumberToObject(o, "cost", l->cost);
        cJSON_AddStringToObject(o, "status", l->status == CTL_LOC_ACTIVE ? "ACTIVE" : "PREEMPTED");
        cJSON_AddNumberToObject(o, "failures", l->failures);
        cJSON_AddNumberToObject(o, "failed_at", l->failed_at);
        cJSON_AddNumberToObject(o, "retry_at", l->retry_at);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

int ctl_placer_from_json(ctl_placer_t *p, const cJSON *j)
{
    const cJSON *o;

    if (!cJSON_IsArray(j))
        return CORE_EJSON;
    /* Validate everything first so a bad document leaves the placer untouched. */
    cJSON_ArrayForEach(o, j)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cloud");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "region");
        const cJSON *z = cJSON_GetObjectItemCaseSensitive(o, "zone");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "status");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "failures");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "retry_at");
        const cJSON *fa = cJSON_GetObjectItemCaseSensitive(o, "failed_at");

        if (!cJSON_IsString(c) || !cJSON_IsString(r) || !cJSON_IsString(z) || !cJSON_IsString(s))
            return CORE_EJSON;
        if (strcmp(s->valuestring, "ACTIVE") != 0 && strcmp(s->valuestring, "PREEMPTED") != 0)
            return CORE_EJSON;
        /* Optional (written since spread_backoff); bounded so that a bad file cannot wedge a zone. */
        if (f != NULL && (!cJSON_IsNumber(f) || !(f->valuedouble >= 0 && f->valuedouble <= 1e6)))
            return CORE_EJSON;
        if ((t != NULL && (!cJSON_IsNumber(t) || !isfinite(t->valuedouble))) ||
            (fa != NULL && (!cJSON_IsNumber(fa) || !isfinite(fa->valuedouble))))
            return CORE_EJSON;
    }
    cJSON_ArrayForEach(o, j)
    {
        const cJSON *f, *t, *fa;
        ctl_location_t loc;
        ctl_placer_loc_t *l;

        ctl_location_set(&loc, cJSON_GetObjectItemCaseSensitive(o, "cloud")->valuestring,
                         cJSON_GetObjectItemCaseSensitive(o, "region")->valuestring,
                         cJSON_GetObjectItemCaseSensitive(o, "zone")->valuestring);
        l = find(p, &loc);
        if (l == NULL)
            continue;
        l->status =
            strcmp(cJSON_GetObjectItemCaseSensitive(o, "status")->valuestring, "ACTIVE") == 0
                ? CTL_LOC_ACTIVE
                : CTL_LOC_PREEMPTED;
        f = cJSON_GetObjectItemCaseSensitive(o, "failures");
        t = cJSON_GetObjectItemCaseSensitive(o, "retry_at");
        fa = cJSON_GetObjectItemCaseSensitive(o, "failed_at");
        l->failures = f != NULL ? (int)f->valuedouble : 0;
        l->retry_at = t != NULL ? t->valuedouble : 0;
        l->failed_at = fa != NULL ? fa->valuedouble : 0;
    }
    /* A catalog change may leave < 2 active: apply the same reset rule. */
    if (p->kind == CTL_PLACER_DYNAMIC_FALLBACK && p->n > 0 && ctl_placer_num_active(p) < 2)
        for (size_t i = 0; i < p->n; i++)
            p->locs[i].status = CTL_LOC_ACTIVE;
    return 0;
}
