#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/mem.h"
#include "lc.h"

/*
 * The spot market as pure functions: no clock, no I/O. The daemon asks it
 * whether a spot launch fits and which instances a capacity drop evicts,
 * and the trace replay asks it which tick a moment falls in.
 */

void lc_rng_seed(lc_rng_t *r, uint64_t seed)
{
    r->s = seed;
}

/* splitmix64: tiny, seedable, and good enough to pick victims. */
uint64_t lc_rng_next(lc_rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

size_t lc_rng_below(lc_rng_t *r, size_t n)
{
    if (n <= 1)
        return 0;
    return (size_t)(lc_rng_next(r) % n);
}

void lc_market_init(lc_market_t *m, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->default_capacity = -1;
    lc_rng_seed(&m->rng, seed);
}

long lc_market_capacity(const lc_market_t *m, const char *zone)
{
    for (size_t i = 0; i < m->nzones; i++)
        if (strcmp(m->zones[i].zone, zone) == 0)
            return m->zones[i].capacity;
    return m->default_capacity;
}

int lc_market_set(lc_market_t *m, const char *zone, long capacity)
{
    if (capacity < 0)
        capacity = -1;
    for (size_t i = 0; i < m->nzones; i++) {
        if (strcmp(m->zones[i].zone, zone) == 0) {
            m->zones[i].capacity = capacity;
            return 0;
        }
    }
    if (m->nzones >= LC_MAX_ZONES)
        return -ENOSPC;
    snprintf(m->zones[m->nzones].zone, sizeof(m->zones[0].zone), "%s", zone);
    m->zones[m->nzones].capacity = capacity;
    m->nzones++;
    return 0;
}

void lc_market_set_all(lc_market_t *m, long capacity)
{
    m->default_capacity = capacity < 0 ? -1 : capacity;
    m->nzones = 0;
}

int lc_market_can_launch(const lc_market_t *m, const char *zone, size_t in_use)
{
    long cap = lc_market_capacity(m, zone);
    return cap < 0 || (long)in_use < cap;
}

typedef struct {
    const char *id;
    size_t idx;
} idref_t;

static int cmp_idref(const void *a, const void *b)
{
    return strcmp(((const idref_t *)a)->id, ((const idref_t *)b)->id);
}

size_t lc_market_pick_victims(lc_market_t *m, const char *const *ids, size_t n, long capacity,
                              size_t *out)
{
    if (capacity < 0 || (long)n <= capacity)
        return 0;
    size_t nvict = n - (size_t)capacity;
    idref_t *refs = core_xmalloc(sizeof(*refs) * n);
    for (size_t i = 0; i < n; i++) {
        refs[i].id = ids[i];
        refs[i].idx = i;
    }
    qsort(refs, n, sizeof(*refs), cmp_idref);
    /* Partial Fisher-Yates: the first nvict slots become the victims. */
    for (size_t i = 0; i < nvict; i++) {
        size_t j = i + lc_rng_below(&m->rng, n - i);
        idref_t t = refs[i];
        refs[i] = refs[j];
        refs[j] = t;
        out[i] = refs[i].idx;
    }
    free(refs);
    return nvict;
}

int lc_trace_parse(const char *text, lc_trace_t *out, char **err)
{
    memset(out, 0, sizeof(*out));
    cJSON *doc = cJSON_Parse(text);
    if (!doc || !cJSON_IsObject(doc)) {
        if (err)
            *err = core_xstrdup("not a JSON object");
        cJSON_Delete(doc);
        return -EINVAL;
    }
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
    cJSON *gap = meta ? cJSON_GetObjectItemCaseSensitive(meta, "gap_seconds") : NULL;
    cJSON *data = cJSON_GetObjectItemCaseSensitive(doc, "data");
    if (!cJSON_IsNumber(gap) || gap->valuedouble <= 0) {
        if (err)
            *err = core_xstrdup("metadata.gap_seconds must be a positive number");
        goto fail;
    }
    if (!cJSON_IsArray(data) || cJSON_GetArraySize(data) == 0) {
        if (err)
            *err = core_xstrdup("data must be a non-empty array");
        goto fail;
    }
    out->gap_seconds = gap->valuedouble;
    out->n = (size_t)cJSON_GetArraySize(data);
    out->data = core_xmalloc(sizeof(long) * out->n);
    size_t i = 0;
    cJSON *v;
    cJSON_ArrayForEach(v, data)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
            if (err)
                *err = core_xasprintf("data[%zu] must be a non-negative number", i);
            goto fail;
        }
        out->data[i++] = (long)v->valuedouble;
    }
    cJSON_Delete(doc);
    return 0;
fail:
    cJSON_Delete(doc);
    lc_trace_free(out);
    return -EINVAL;
}

void lc_trace_free(lc_trace_t *t)
{
    free(t->data);
    t->data = NULL;
    t->n = 0;
}

void lc_trace_file_zone(const char *file, char *out, size_t outlen)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t len = strcspn(base, "_.");
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, base, len);
    out[len] = '\0';
}

long lc_trace_tick(double start, double now, double gap, double speed, double *next)
{
    double tick_len = gap / speed;
    long tick = 0;
    if (now > start)
        tick = (long)floor((now - start) / tick_len);
    /* Floating point can land a hair before a boundary we already passed. */
    while (start + (double)(tick + 1) * tick_len <= now)
        tick++;
    if (next)
        *next = start + (double)(tick + 1) * tick_len;
    return tick;
}

size_t lc_trace_map(char *const *files, size_t nfiles, char *const *zones, size_t nz,
                    char *const *catalog_zones, size_t ncat, char (*out_zone)[40])
{
    size_t mapped = 0;
    for (size_t i = 0; i < nfiles; i++) {
        out_zone[i][0] = '\0';
        if (nz > 0) {
            if (i < nz) {
                snprintf(out_zone[i], 40, "%s", zones[i]);
                mapped++;
            }
            continue;
        }
        char z[40];
        lc_trace_file_zone(files[i], z, sizeof(z));
        int in_cat = 0;
        for (size_t k = 0; k < ncat && !in_cat; k++)
            in_cat = strcmp(catalog_zones[k], z) == 0;
        int taken = 0;
        for (size_t k = 0; k < i && !taken; k++)
            taken = strcmp(out_zone[k], z) == 0;
        if (in_cat && !taken) {
            snprintf(out_zone[i], 40, "%s", z);
            mapped++;
        }
    }
    return mapped;
}
