/*
 * The trace world (trace files, zones, catalog prices) and the trace cloud, a
 * provider whose spot capacity follows the trace (trace_world.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"
#include "trace_world.h"

#define MAX_TRACE_BYTES (64u << 20)
#define MAX_TICKS       TRACE_MAX_TICKS
#define MAX_ZONES       TRACE_MAX_ZONES

/* ------------------------------------------------------------------ */
/* trace loading */

static int parse_trace_file(const char *path, double *gap, int **data, size_t *n, char **err)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL, *meta, *g, *arr, *v;
    int rc = core_read_file(path, MAX_TRACE_BYTES, &text, &len);
    size_t i = 0;

    if (rc < 0) {
        *err = core_xasprintf("%s: %s", path, strerror(-rc));
        return rc;
    }
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) {
        *err = core_xasprintf("%s: not valid JSON", path);
        return CORE_EJSON;
    }
    meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    g = cJSON_GetObjectItemCaseSensitive(meta, "gap_seconds");
    arr = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsNumber(g) || !(g->valuedouble > 0) || g->valuedouble > 86400 ||
        !cJSON_IsArray(arr)) {
        *err =
            core_xasprintf("%s: expected {\"metadata\":{\"gap_seconds\":N},\"data\":[...]}", path);
        rc = CORE_EJSON;
        goto out;
    }
    *n = (size_t)cJSON_GetArraySize(arr);
    if (*n == 0 || *n > MAX_TICKS) {
        *err = core_xasprintf("%s: data must have 1..%u entries", path, MAX_TICKS);
        rc = CORE_EJSON;
        goto out;
    }
    *gap = g->valuedouble;
    *data = core_xmalloc(*n * sizeof(**data));
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6) {
            *err = core_xasprintf("%s: data[%zu] is not a count >= 0", path, i);
            free(*data);
            *data = NULL;
            rc = CORE_EJSON;
            goto out;
        }
        (*data)[i++] = (int)v->valuedouble;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

typedef struct zone_lookup {
    const char *zone;
    char cloud[24];
    char region[40];
    bool found;
} zone_lookup_t;

static int find_zone_cb(const char *cloud, const char *region, const char *zone, void *arg)
{
    zone_lookup_t *l = arg;

    if (strcmp(zone, l->zone) != 0)
        return 0;
    snprintf(l->cloud, sizeof(l->cloud), "%s", cloud);
    snprintf(l->region, sizeof(l->region), "%s", region);
    l->found = true;
    return 1;
}

typedef struct avg_price {
    const core_catalog_t *cat;
    const char *type;
    double od_sum, spot_sum;
    int n_od, n_spot;
    char cloud[24];
} avg_price_t;

static int avg_price_cb(const char *cloud, const char *region, const char *zone, void *arg)
{
    avg_price_t *a = arg;
    double p;

    if (core_catalog_price(a->cat, cloud, region, zone, a->type, 0, &p) == 0) {
        a->od_sum += p;
        a->n_od++;
        if (!a->cloud[0])
            snprintf(a->cloud, sizeof(a->cloud), "%s", cloud);
    }
    if (core_catalog_price(a->cat, cloud, region, zone, a->type, 1, &p) == 0) {
        a->spot_sum += p;
        a->n_spot++;
    }
    return 0;
}

/* The instance type a trace's "<gpu>_<count>" tag stands for. */
static const char *type_for_tag(const char *tag)
{
    static const struct {
        const char *tag, *type;
    } map[] = {
        {"v100_1", "p3.2xlarge"},          {"v100_4", "p3.8xlarge"},
        {"v100_8", "p3.16xlarge"},         {"k80_1", "p2.xlarge"},
        {"k80_8", "p2.8xlarge"},           {"t4_1", "g4dn.xlarge"},
        {"a100_8", "a2-highgpu-8g"},       {"a100_40gb_8", "a2-highgpu-8g"},
        {"a100_80gb_8", "a2-ultragpu-8g"},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].tag, tag) == 0)
            return map[i].type;
    return NULL;
}

static int cmp_zone_name(const void *a, const void *b)
{
    return strcmp(((const zone_t *)a)->name, ((const zone_t *)b)->name);
}

void trace_world_free(world_t *w)
{
    for (size_t i = 0; i < w->nz; i++)
        free(w->z[i].data);
    free(w->z);
    free(w->spot_order);
    memset(w, 0, sizeof(*w));
}

/* Picks the tag: --gpu, else v100_1 when present, else the tag with most zones. */
static int choose_tag(const char *dir, const char *want, char *out, size_t outlen, char **err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char tags[MAX_ZONES * 4][40];
    int counts[MAX_ZONES * 4];
    size_t nt = 0;
    int best = -1;

    if (!d) {
        *err = core_xasprintf("%s: %s", dir, strerror(errno));
        return -errno;
    }
    while ((e = readdir(d)) != NULL) {
        const char *us = strchr(e->d_name, '_');
        size_t l = strlen(e->d_name);
        char tag[40];
        size_t i;

        if (!us || l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        snprintf(tag, sizeof(tag), "%.*s", (int)(l - 5 - (size_t)(us + 1 - e->d_name)), us + 1);
        for (i = 0; i < nt; i++)
            if (strcmp(tags[i], tag) == 0)
                break;
        if (i == nt) {
            if (nt == sizeof(counts) / sizeof(counts[0]))
                continue;
            snprintf(tags[nt], sizeof(tags[nt]), "%s", tag);
            counts[nt++] = 0;
        }
        counts[i]++;
    }
    closedir(d);
    if (nt == 0) {
        *err = core_xasprintf("%s: no <zone>_<gpu>_<count>.json files", dir);
        return CORE_ENOTFOUND;
    }
    for (size_t i = 0; i < nt; i++) {
        if (want && strcmp(tags[i], want) == 0)
            best = (int)i;
        if (!want && strcmp(tags[i], "v100_1") == 0)
            best = (int)i;
    }
    if (want && best < 0) {
        *err = core_xasprintf("%s: no file for --gpu %s", dir, want);
        return CORE_ENOTFOUND;
    }
    for (size_t i = 0; best < 0 && i < nt; i++) {
        int b = 0;

        for (size_t j = 1; j < nt; j++)
            if (counts[j] > counts[b] || (counts[j] == counts[b] && strcmp(tags[j], tags[b]) < 0))
                b = (int)j;
        best = b;
    }
    snprintf(out, outlen, "%s", tags[best]);
    return 0;
}

/* cand_cmp of core/catalog.c for the spot candidates of one instance type. */
static int spot_order_cmp(const zone_t *a, const zone_t *b)
{
    int r;

    if (a->spot_price != b->spot_price)
        return a->spot_price < b->spot_price ? -1 : 1;
    if ((r = strcmp(a->cloud, b->cloud)) || (r = strcmp(a->region, b->region)))
        return r;
    return strcmp(a->name, b->name);
}

int trace_world_load(world_t *w, const trace_world_opts_t *o, const core_catalog_t *cat, char **err)
{
    DIR *d;
    struct dirent *e;
    char suffix[64];
    const char *type;
    avg_price_t avg;
    int rc;

    memset(w, 0, sizeof(*w));
    w->od_zone = -1;
    if ((rc = choose_tag(o->trace, o->gpu, w->tag, sizeof(w->tag), err)) < 0)
        return rc;
    snprintf(suffix, sizeof(suffix), "_%s.json", w->tag);
    type = o->instance_type ? o->instance_type : type_for_tag(w->tag);
    if (!type) {
        *err = core_xasprintf("no instance type known for trace tag '%s': pass --instance-type",
                              w->tag);
        return CORE_EINVALREQ;
    }
    snprintf(w->instance_type, sizeof(w->instance_type), "%s", type);

    d = opendir(o->trace);
    if (!d) {
        *err = core_xasprintf("%s: %s", o->trace, strerror(errno));
        return -errno;
    }
    w->z = core_xcalloc(MAX_ZONES, sizeof(*w->z));
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        zone_t *z;
        char *path;
        double gap = 0;

        if (l <= sl || strcmp(e->d_name + l - sl, suffix) != 0 ||
            memchr(e->d_name, '_', l - sl) != NULL)
            continue;
        if (w->nz == MAX_ZONES) {
            *err = core_xasprintf("%s: more than %d zones", o->trace, MAX_ZONES);
            rc = CORE_EINVALREQ;
            goto fail;
        }
        z = &w->z[w->nz];
        snprintf(z->name, sizeof(z->name), "%.*s", (int)(l - sl), e->d_name);
        path = core_xasprintf("%s/%s", o->trace, e->d_name);
        rc = parse_trace_file(path, &gap, &z->data, &z->n, err);
        free(path);
        if (rc < 0)
            goto fail;
        w->nz++;
        if (w->gap == 0) {
            w->gap = gap;
        } else if (gap != w->gap) {
            *err = core_xasprintf("%s: zones disagree on gap_seconds (%g vs %g)", o->trace, gap,
                                  w->gap);
            rc = CORE_EINVALREQ;
            goto fail;
        }
    }
    closedir(d);
    d = NULL;
    if (w->nz == 0) {
        *err = core_xasprintf("%s: no <zone>_%s.json files", o->trace, w->tag);
        rc = CORE_ENOTFOUND;
        goto fail;
    }
    qsort(w->z, w->nz, sizeof(*w->z), cmp_zone_name);
    if (o->gap > 0)
        w->gap = o->gap;
    /* The window: tick start_tick of the files becomes tick 0. */
    for (size_t i = 0; i < w->nz && (o->start_tick > 0 || o->n_ticks > 0); i++) {
        zone_t *z = &w->z[i];
        size_t from = (size_t)o->start_tick, n = from < z->n ? z->n - from : 0;

        if (o->n_ticks > 0 && n > (size_t)o->n_ticks)
            n = (size_t)o->n_ticks;
        if (n > 0)
            memmove(z->data, z->data + from, n * sizeof(*z->data));
        z->n = n;
    }
    w->shortest = w->longest = w->z[0].n;
    for (size_t i = 1; i < w->nz; i++) {
        if (w->z[i].n < w->shortest)
            w->shortest = w->z[i].n;
        if (w->z[i].n > w->longest)
            w->longest = w->z[i].n;
    }
    w->ticks = o->extend ? w->longest : w->shortest;
    if (w->ticks == 0) {
        *err = core_xasprintf("%s: --start-tick %ld is past the end of the %s", o->trace,
                              o->start_tick, o->extend ? "longest file" : "shortest file");
        rc = CORE_EINVALREQ;
        goto fail;
    }

    /* Prices: the zone's own catalog entry, else the type's average over the catalog. */
    memset(&avg, 0, sizeof(avg));
    avg.cat = cat;
    avg.type = w->instance_type;
    core_catalog_each_zone(cat, avg_price_cb, &avg);
    if (avg.n_od == 0) {
        *err = core_xasprintf("instance type %s is not in the catalog", w->instance_type);
        rc = CORE_ENOTFOUND;
        goto fail;
    }
    snprintf(w->cloud, sizeof(w->cloud), "%s", avg.cloud);
    for (size_t i = 0; i < w->nz; i++) {
        zone_t *z = &w->z[i];
        zone_lookup_t lk = {.zone = z->name};
        bool od_ok = false, spot_ok = false;

        core_catalog_each_zone(cat, find_zone_cb, &lk);
        if (lk.found) {
            snprintf(z->cloud, sizeof(z->cloud), "%s", lk.cloud);
            snprintf(z->region, sizeof(z->region), "%s", lk.region);
            od_ok = core_catalog_price(cat, lk.cloud, lk.region, z->name, w->instance_type, 0,
                                       &z->od_price) == 0;
            spot_ok = core_catalog_price(cat, lk.cloud, lk.region, z->name, w->instance_type, 1,
                                         &z->spot_price) == 0;
        } else {
            /* Zone unknown to the catalog: region = the name without its last letter. */
            size_t l = strlen(z->name);

            snprintf(z->cloud, sizeof(z->cloud), "%s", avg.cloud);
            snprintf(z->region, sizeof(z->region), "%.*s", (int)(l > 1 ? l - 1 : l), z->name);
        }
        if (!od_ok)
            z->od_price = avg.od_sum / avg.n_od;
        if (!spot_ok)
            z->spot_price = avg.n_spot ? avg.spot_sum / avg.n_spot : z->od_price * 0.3;
        z->price_fallback = !od_ok || !spot_ok;
        w->n_fallback += z->price_fallback;
        if (o->spot_discount >= 0)
            z->spot_price = z->od_price * o->spot_discount;
        if (w->od_zone < 0 || z->od_price < w->z[w->od_zone].od_price)
            w->od_zone = (int)i;
    }
    w->spot_order = core_xmalloc(w->nz * sizeof(int));
    for (size_t i = 0; i < w->nz; i++)
        w->spot_order[i] = (int)i;
    /* insertion sort in the catalog's resolve order (core/catalog.c cand_cmp): the normal
     * failover order, and the placer's insertion order, which breaks its price ties */
    for (size_t i = 1; i < w->nz; i++) {
        int v = w->spot_order[i];
        size_t j = i;

        while (j > 0 && spot_order_cmp(&w->z[w->spot_order[j - 1]], &w->z[v]) > 0) {
            w->spot_order[j] = w->spot_order[j - 1];
            j--;
        }
        w->spot_order[j] = v;
    }
    return 0;
fail:
    if (d)
        closedir(d);
    trace_world_free(w);
    return rc;
}

void trace_world_candidate(const world_t *w, int z, int spot, core_candidate_t *out)
{
    const zone_t *zn = &w->z[z];

    memset(out, 0, sizeof(*out));
    snprintf(out->cloud, sizeof(out->cloud), "%s", zn->cloud);
    snprintf(out->region, sizeof(out->region), "%s", zn->region);
    snprintf(out->zone, sizeof(out->zone), "%s", zn->name);
    snprintf(out->instance_type, sizeof(out->instance_type), "%s", w->instance_type);
    out->spot = spot;
    out->price = spot ? zn->spot_price : zn->od_price;
}

int trace_world_zone(const world_t *w, const char *name)
{
    for (size_t z = 0; z < w->nz; z++)
        if (strcmp(w->z[z].name, name) == 0)
            return (int)z;
    return -1;
}

/* ------------------------------------------------------------------ */
/* the trace cloud */

typedef struct tinst {
    core_instance_t in;
    int zone;
    uint64_t seq;
} tinst_t;

struct trace_cloud {
    const world_t *w;
    int *cap;       /* the tick's spot count per zone */
    int *held_spot; /* live spot instances per zone */
    tinst_t *v;     /* live instances */
    size_t n, alloc;
    uint64_t seq;
};

typedef struct thandle {
    core_prov_t super;
    trace_cloud_t *c;
} thandle_t;

static tinst_t *tfind(const trace_cloud_t *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].in.id, id) == 0)
            return &c->v[i];
    return NULL;
}

/* Drops <id> from the live instances; its spot capacity is free again. */
static bool release(trace_cloud_t *c, const char *id)
{
    tinst_t *t = tfind(c, id);

    if (!t)
        return false;
    if (t->in.spot)
        c->held_spot[t->zone]--;
    *t = c->v[--c->n];
    return true;
}

static int tc_launch(core_prov_t *p, const core_candidate_t *cand, const char *owner,
                     core_instance_t *out, char **err)
{
    trace_cloud_t *c = ((thandle_t *)p)->c;
    int z = trace_world_zone(c->w, cand->zone);
    tinst_t *t;

    if (z < 0 || (cand->spot && c->cap[z] <= c->held_spot[z])) {
        if (err)
            *err = core_xasprintf("no %s capacity in %s", cand->spot ? "spot" : "on-demand",
                                  cand->zone);
        return CORE_ENOCAPACITY;
    }
    if (c->n == c->alloc) {
        c->alloc = c->alloc ? c->alloc * 2 : 16;
        c->v = core_xrealloc(c->v, c->alloc * sizeof(*c->v));
    }
    t = &c->v[c->n++];
    memset(t, 0, sizeof(*t));
    t->zone = z;
    t->seq = ++c->seq;
    snprintf(t->in.id, sizeof(t->in.id), "t-%llu", (unsigned long long)t->seq);
    snprintf(t->in.cloud, sizeof(t->in.cloud), "%s", cand->cloud);
    snprintf(t->in.region, sizeof(t->in.region), "%s", cand->region);
    snprintf(t->in.zone, sizeof(t->in.zone), "%s", cand->zone);
    snprintf(t->in.instance_type, sizeof(t->in.instance_type), "%s", cand->instance_type);
    snprintf(t->in.owner, sizeof(t->in.owner), "%s", owner ? owner : "");
    t->in.spot = cand->spot;
    t->in.price = cand->price;
    t->in.state = CORE_INST_RUNNING;
    if (cand->spot)
        c->held_spot[z]++;
    *out = t->in;
    return 0;
}

static int tc_terminate(core_prov_t *p, const char *id)
{
    release(((thandle_t *)p)->c, id);
    return 0;
}

static int tc_describe(core_prov_t *p, const char *id, core_instance_t *out)
{
    tinst_t *t = tfind(((thandle_t *)p)->c, id);

    if (!t)
        return CORE_ENOTFOUND;
    *out = t->in;
    return 0;
}

static int tc_list(core_prov_t *p, core_instance_t **out, size_t *n)
{
    trace_cloud_t *c = ((thandle_t *)p)->c;

    *out = core_xcalloc(c->n ? c->n : 1, sizeof(**out));
    for (size_t i = 0; i < c->n; i++)
        (*out)[i] = c->v[i].in;
    *n = c->n;
    return 0;
}

static void tc_destroy(core_prov_t *p)
{
    free(p);
}

static const core_prov_ops_t trace_ops = {
    .name = "trace",
    .launch = tc_launch,
    .terminate = tc_terminate,
    .describe = tc_describe,
    .list = tc_list,
    .destroy = tc_destroy,
};

trace_cloud_t *trace_cloud_new(const world_t *w)
{
    trace_cloud_t *c = core_xcalloc(1, sizeof(*c));

    c->w = w;
    c->cap = core_xcalloc(w->nz, sizeof(int));
    c->held_spot = core_xcalloc(w->nz, sizeof(int));
    return c;
}

core_prov_t *trace_cloud_prov(trace_cloud_t *c)
{
    thandle_t *h = core_xcalloc(1, sizeof(*h));

    h->super.ops = &trace_ops;
    h->c = c;
    return &h->super;
}

void trace_cloud_free(trace_cloud_t *c)
{
    if (!c)
        return;
    free(c->cap);
    free(c->held_spot);
    free(c->v);
    free(c);
}

void trace_cloud_set_tick(trace_cloud_t *c, size_t tick)
{
    for (size_t z = 0; z < c->w->nz; z++)
        c->cap[z] = tick < c->w->z[z].n ? c->w->z[z].data[tick] : 0;
}

int trace_cloud_capacity(const trace_cloud_t *c, int z)
{
    return c->cap[z];
}

int trace_cloud_held_spot(const trace_cloud_t *c, int z)
{
    return c->held_spot[z];
}

void trace_cloud_preempt(trace_cloud_t *c, const char *id)
{
    release(c, id);
}

uint64_t trace_cloud_seq(const trace_cloud_t *c, const char *id)
{
    tinst_t *t = tfind(c, id);

    return t ? t->seq : 0;
}
