#include "ctl_placer.h"

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

void ctl_placer_init(ctl_placer_t *p)
{
    p->locs = NULL;
    p->n = 0;
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

static bool in_list(const ctl_location_t *l, const ctl_location_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ctl_location_equal(l, &list[i]))
            return true;
    return false;
}

int ctl_placer_select(const ctl_placer_t *p, const ctl_location_t *in_use, size_t n_in_use,
                      ctl_location_t *out)
{
    const ctl_placer_loc_t *best = NULL;

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

size_t ctl_placer_num_active(const ctl_placer_t *p)
{
    size_t n = 0;

    for (size_t i = 0; i < p->n; i++)
        n += p->locs[i].status == CTL_LOC_ACTIVE;
    return n;
}

int ctl_placer_set_active(ctl_placer_t *p, const ctl_location_t *loc)
{
    ctl_placer_loc_t *l = find(p, loc);

    if (l == NULL)
        return CORE_ENOTFOUND;
    l->status = CTL_LOC_ACTIVE;
    return 0;
}

int ctl_placer_set_preemptive(ctl_placer_t *p, const ctl_location_t *loc)
{
    ctl_placer_loc_t *l = find(p, loc);

    if (l == NULL)
        return CORE_ENOTFOUND;
    l->status = CTL_LOC_PREEMPTED;
    /* With fewer than two choices left there is nothing to hedge with: start over. */
    if (ctl_placer_num_active(p) < 2)
        for (size_t i = 0; i < p->n; i++)
            p->locs[i].status = CTL_LOC_ACTIVE;
    return 0;
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

        if (!cJSON_IsString(c) || !cJSON_IsString(r) || !cJSON_IsString(z) || !cJSON_IsString(s))
            return CORE_EJSON;
        if (strcmp(s->valuestring, "ACTIVE") != 0 && strcmp(s->valuestring, "PREEMPTED") != 0)
            return CORE_EJSON;
    }
    cJSON_ArrayForEach(o, j)
    {
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
    }
    /* A catalog change may leave < 2 active: apply the same reset rule. */
    if (p->n > 0 && ctl_placer_num_active(p) < 2)
        for (size_t i = 0; i < p->n; i++)
            p->locs[i].status = CTL_LOC_ACTIVE;
    return 0;
}
