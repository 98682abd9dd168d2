/*
 * policy_replay: replays a multi-zone spot-availability trace through the
 * controller's own decision code (ctl_scaler_decide, the dynamic_fallback
 * spot placer, the replica facts/status rules, the probe bookkeeping and the
 * seeded backoff) in virtual time, and reports the cost relative to running
 * the target on-demand, the availability (share of time with READY >=
 * target), preemptions and launches of each policy.
 *
 * The cloud is modelled here (see bench/policy/README.md): a spot launch in a
 * zone succeeds iff the zone's trace count for the current tick is above the
 * spot instances already held there; when the count drops below what is held,
 * the excess is preempted (newest first, or seeded random); on-demand always
 * succeeds. A launch takes --provision-delay, then --cold-start before the
 * readiness probe succeeds.
 */
#include <dirent.h>
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
#include "core/util.h"

#include "ctl_backoff.h"
#include "ctl_placer.h"
#include "ctl_replica.h"
#include "ctl_scaler.h"

#define MAX_TRACE_BYTES (64u << 20)
#define MAX_TICKS       (10u * 1000 * 1000)
#define MAX_ZONES       64
#define MAX_LOAD_POINTS (10u * 1000 * 1000)

/* Controller defaults (controller/ctl_serve_cfg.c); --launch-retry-initial, --drain,
 * --decision-interval and --step set them to a live run's SKY_SERVE_* values. */
#define LAUNCH_RETRY_INITIAL_S 60.0
#define DEFAULT_DRAIN_S        120.0
#define DEFAULT_STEP_S         10.0 /* = probe_interval */

typedef struct opts {
    const char *trace;
    const char *policy;
    const char *gpu;
    const char *instance_type;
    const char *catalog;
    const char *load_file;
    int target;
    double provision_s;
    double cold_start_s;
    double drain_s;
    double step_s;
    uint64_t seed;
    bool json;
    bool extend;
    bool preempt_random;
    bool verbose;                /* events on stderr */
    double qps;                  /* < 0: none */
    double qps_per_replica;      /* QPS mode */
    int min_replicas;            /* QPS mode */
    int max_replicas;            /* QPS mode */
    double spot_discount;        /* < 0: catalog prices */
    double gap;                  /* > 0: replaces every file's gap_seconds */
    long start_tick;             /* the window: ticks [start_tick, start_tick + n_ticks) */
    long n_ticks;                /* 0: to the end */
    double decision_interval;    /* 0: the scaler's default (20 s) */
    double launch_retry_initial; /* controller's launch_retry_initial */
    double service_start;        /* first autoscaler decision (the service's `up`) */
    const char *timeline;        /* JSON lines per step, "-" = stdout */
    bool fallback_placer;        /* the controller's placer for every fallback policy (default) */
    ctl_placer_kind_t placer;    /* --placer: the placer of the policies that have one */
    bool hedge;                  /* --hedge on: fallback_covers_overprovision: false */
    FILE *tl;
} opts_t;

typedef struct zone {
    char name[40];
    char cloud[24];
    char region[40];
    int *data;
    size_t n;
    double spot_price, od_price;
    bool price_fallback;
} zone_t;

typedef struct world {
    zone_t *z;
    size_t nz;
    double gap;
    size_t ticks;
    size_t shortest, longest;
    char tag[40];
    char instance_type[48];
    char cloud[24];
    int od_zone;     /* cheapest on-demand zone: where on-demand replicas and the baseline run */
    int *spot_order; /* zones by spot price, cheapest first (the normal failover order) */
    int n_fallback;  /* zones priced from the average */
} world_t;

typedef struct load {
    double *t, *qps; /* piecewise constant from t[i] */
    size_t n;
} load_t;

typedef struct policy {
    const char *name;
    bool spot;   /* what the yaml asks for (RequestRate kinds) */
    int base;    /* base_ondemand_fallback_replicas */
    bool dyn;    /* dynamic_ondemand_fallback */
    bool placer; /* spot_placer: dynamic_fallback */
    int overprovision;
} policy_t;

/* The replica_policy of each --policy; whether a run gets the placer: gets_placer(). */
static const policy_t POLICIES[] = {
    {.name = "ondemand"},
    {.name = "spot", .spot = true},
    {.name = "base_fallback", .spot = true, .base = 1},
    {.name = "dynamic_fallback", .spot = true, .dyn = true},
    {.name = "spothedge", .spot = true, .dyn = true, .placer = true, .overprovision = 1},
};

typedef struct rep {
    int id;
    bool is_spot;
    ctl_replica_facts_t f;
    ctl_probe_state_t ps;
    bool has_loc;
    ctl_location_t loc;
    int loc_zone;       /* zone index of loc, -1 */
    int zone;           /* zone of the held instance, -1 when none */
    uint64_t seq;       /* acquisition order, for newest-first preemption */
    double price;       /* $/h of the held instance */
    double launch_done; /* provisioning finished (launch SUCCEEDED) */
    double ready_at;    /* the probe succeeds from here */
    double down_at;     /* termination after the drain */
    double next_retry;  /* < 0: not waiting for a launch retry */
    bool attempt_now;   /* freshly scaled up: launch in this step */
    ctl_backoff_t bo;
    bool bo_init;
} rep_t;

typedef struct stats {
    double cost, baseline;
    double spot_s, od_s; /* instance-seconds */
    double measured_s, avail_s;
    long preemptions, launches, failed_launches;
    long outages;
    double longest_outage_s, cur_outage_s;
    double spot_miss_s; /* fewer live spot replicas than wanted although some zone had room */
    double od_room_s;   /* on-demand instance-seconds while some zone had spare spot capacity */
    double wall_s;
} stats_t;

typedef struct sim {
    const opts_t *o;
    const world_t *w;
    const policy_t *p;
    const load_t *load;
    ctl_scaler_t sc;
    ctl_placer_t pl;
    ctl_rng_t rng;
    rep_t *r;
    size_t nr, cap;
    int next_id;
    uint64_t seq;
    int *held; /* spot+on-demand instances held per zone (only spot ones are capacity-checked) */
    int *held_spot;
    int *capz;
    double qps_carry;
    /* What the last autoscaler decision asked for (the timeline's targets): live replicas
     * of each kind after applying its scale-ups and scale-downs. -1 before the first one. */
    int spot_target, od_target;
    bool decided; /* a decision ran in this step */
    stats_t st;
} sim_t;

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

static void world_free(world_t *w)
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

static int world_load(world_t *w, const opts_t *o, const core_catalog_t *cat, char **err)
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
    world_free(w);
    return rc;
}

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
/* the simulated cloud + controller glue (mirrors controller/ctl_serve.c) */

static rep_t *rep_new(sim_t *s)
{
    rep_t *r;

    if (s->nr == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->r = core_xrealloc(s->r, s->cap * sizeof(*s->r));
    }
    r = &s->r[s->nr++];
    memset(r, 0, sizeof(*r));
    r->id = ++s->next_id;
    ctl_replica_facts_init(&r->f);
    ctl_probe_state_init(&r->ps);
    r->zone = -1;
    r->loc_zone = -1;
    r->next_retry = -1;
    return r;
}

static void rep_remove(sim_t *s, size_t i)
{
    s->r[i] = s->r[s->nr - 1];
    s->nr--;
}

static rep_t *rep_find(sim_t *s, int id)
{
    for (size_t i = 0; i < s->nr; i++)
        if (s->r[i].id == id)
            return &s->r[i];
    return NULL;
}

static void release(sim_t *s, rep_t *r)
{
    if (r->zone < 0)
        return;
    s->held[r->zone]--;
    if (r->is_spot)
        s->held_spot[r->zone]--;
    r->zone = -1;
}

static void acquire(sim_t *s, rep_t *r, int z, double t)
{
    r->zone = z;
    r->seq = ++s->seq;
    r->price = r->is_spot ? s->w->z[z].spot_price : s->w->z[z].od_price;
    s->held[z]++;
    if (r->is_spot)
        s->held_spot[z]++;
    r->launch_done = t + s->o->provision_s;
    r->ready_at = r->launch_done + s->o->cold_start_s;
    r->next_retry = -1;
}

static bool has_room(const sim_t *s, int z)
{
    return s->capz[z] > s->held_spot[z];
}

/* start_down(): the instance stays (and is billed) until down_at. */
static void start_down(rep_t *r, double t, double drain)
{
    if (r->f.down != CTL_PROC_NONE)
        return;
    if (r->f.launch == CTL_PROC_RUNNING || r->f.launch == CTL_PROC_SCHEDULED ||
        r->f.launch == CTL_PROC_NONE)
        r->f.launch = CTL_PROC_INTERRUPTED;
    r->f.down = CTL_PROC_SCHEDULED;
    r->down_at = t + drain;
    r->next_retry = -1;
}

/* launch_failed(r, true) of a spot replica of a service with a placer: the zone is out of
 * spot; the record goes away, the autoscaler relaunches. (Without a location, which the
 * placer always has here, the record would stay FAILED as in the controller.) */
static void launch_failed_no_capacity(sim_t *s, rep_t *r, double t)
{
    r->f.launch = CTL_PROC_FAILED;
    if (r->has_loc) {
        ctl_placer_set_preemptive_at(&s->pl, &r->loc, t);
        r->f.failed_spot_availability = true;
    }
    start_down(r, t, 0);
}

/* No placer (retry_until_up): stay PROVISIONING, retry after the controller's backoff. */
static void schedule_retry(sim_t *s, rep_t *r, double t)
{
    if (!r->bo_init) {
        ctl_backoff_init(&r->bo, s->o->launch_retry_initial, CTL_BACKOFF_DEFAULT_MAX_FACTOR,
                         ctl_rng_uniform, &s->rng);
        r->bo_init = true;
    }
    r->next_retry = t + ctl_backoff_next(&r->bo);
}

/* One launch attempt: the provisioner's failover over the candidate zones. */
static void try_launch(sim_t *s, rep_t *r, double t)
{
    int z = -1;

    s->st.launches++;
    if (!r->is_spot) {
        z = s->w->od_zone;
    } else if (r->has_loc) {
        if (has_room(s, r->loc_zone))
            z = r->loc_zone;
    } else {
        for (size_t i = 0; i < s->w->nz && z < 0; i++)
            if (has_room(s, s->w->spot_order[i]))
                z = s->w->spot_order[i];
    }
    if (s->o->verbose)
        fprintf(stderr, "%9.0f %s: launch replica %d %s%s%s: %s%s\n", t, s->p->name, r->id,
                r->is_spot ? "spot" : "on-demand", r->has_loc ? " placed in " : "",
                r->has_loc ? r->loc.zone : "", z >= 0 ? "ok in " : "no capacity",
                z >= 0 ? s->w->z[z].name : "");
    if (z >= 0) {
        acquire(s, r, z, t);
        return;
    }
    s->st.failed_launches++;
    if (r->is_spot && s->p->placer)
        launch_failed_no_capacity(s, r, t);
    else
        schedule_retry(s, r, t);
}

static void preempt(sim_t *s, rep_t *r, double t)
{
    if (s->o->verbose)
        fprintf(stderr, "%9.0f %s: preempted replica %d in %s (%s)\n", t, s->p->name, r->id,
                s->w->z[r->zone].name, ctl_replica_status_name(ctl_replica_derive_status(&r->f)));
    s->st.preemptions++;
    release(s, r);
    if (r->f.down != CTL_PROC_NONE) {
        r->down_at = t; /* already going away */
        return;
    }
    if (r->f.launch == CTL_PROC_RUNNING) {
        /* Lost while provisioning: the launch fails for lack of capacity. */
        if (s->p->placer)
            launch_failed_no_capacity(s, r, t);
        else
            schedule_retry(s, r, t);
        return;
    }
    /* handle_gone() */
    r->f.preempted = true;
    r->f.service_ready_now = false;
    r->f.is_scale_down = true;
    if (s->p->placer && r->has_loc)
        ctl_placer_set_preemptive_at(&s->pl, &r->loc, t);
    start_down(r, t, 0);
}

static void apply_capacity(sim_t *s, size_t tick, double t)
{
    for (size_t z = 0; z < s->w->nz; z++) {
        const zone_t *zn = &s->w->z[z];

        s->capz[z] = tick < zn->n ? zn->data[tick] : 0;
        while (s->held_spot[z] > s->capz[z]) {
            rep_t *victim = NULL;
            size_t n_in = 0, pick;

            for (size_t i = 0; i < s->nr; i++)
                if (s->r[i].zone == (int)z && s->r[i].is_spot)
                    n_in++;
            pick = s->o->preempt_random ? (size_t)(ctl_rng_uniform(&s->rng) * (double)n_in) : 0;
            for (size_t i = 0; i < s->nr; i++) {
                rep_t *r = &s->r[i];

                if (r->zone != (int)z || !r->is_spot)
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

/* false when the placer has every zone backing off: no replica this decision. */
static bool scale_up(sim_t *s, int use_spot, double t)
{
    bool spot = use_spot >= 0 ? use_spot == 1 : s->p->spot;
    ctl_location_t loc;
    bool has_loc = false;
    rep_t *r;

    if (spot && s->p->placer) {
        ctl_location_t *in_use = core_xcalloc(s->nr ? s->nr : 1, sizeof(*in_use));
        size_t n = 0;
        int rc;

        for (size_t i = 0; i < s->nr; i++)
            if (s->r[i].is_spot && s->r[i].has_loc)
                in_use[n++] = s->r[i].loc;
        rc = ctl_placer_select_at(&s->pl, in_use, n, t, &loc, NULL);
        free(in_use);
        if (rc == -EAGAIN)
            return false;
        has_loc = rc == 0;
    }
    r = rep_new(s);
    r->is_spot = spot;
    r->f.launch = CTL_PROC_RUNNING; /* queue_launch */
    r->attempt_now = true;
    if (has_loc) {
        r->has_loc = true;
        r->loc = loc;
        for (size_t z = 0; z < s->w->nz; z++)
            if (strcmp(s->w->z[z].name, r->loc.zone) == 0)
                r->loc_zone = (int)z;
    }
    return true;
}

static void decide(sim_t *s, double t)
{
    ctl_replica_info_t *infos = core_xcalloc(s->nr ? s->nr : 1, sizeof(*infos));
    ctl_decision_t *d = NULL;
    size_t nd = 0;
    int active[1] = {CTL_INITIAL_VERSION};
    size_t n_active = 0;

    int n_spot = 0, n_od = 0;

    for (size_t i = 0; i < s->nr; i++) {
        ctl_replica_info_fill(&infos[i], s->r[i].id, CTL_INITIAL_VERSION, s->r[i].is_spot,
                              &s->r[i].f);
        infos[i].has_location = s->r[i].has_loc;
        infos[i].location = s->r[i].loc;
        if (infos[i].status == CTL_REPLICA_READY)
            n_active = 1;
        if (!ctl_replica_status_is_terminal(infos[i].status)) {
            n_spot += s->r[i].is_spot;
            n_od += !s->r[i].is_spot;
        }
    }
    s->decided = true;
    if (ctl_scaler_decide(&s->sc, infos, s->nr, active, n_active, t, &d, &nd) == 0) {
        for (size_t i = 0; i < nd; i++) {
            if (d[i].kind == CTL_SCALE_UP) {
                bool spot = d[i].use_spot >= 0 ? d[i].use_spot == 1 : s->p->spot;

                if (scale_up(s, d[i].use_spot, t)) {
                    n_spot += spot;
                    n_od += !spot;
                }
            } else {
                rep_t *r = rep_find(s, d[i].replica_id);

                if (r && r->f.down == CTL_PROC_NONE) {
                    n_spot -= r->is_spot;
                    n_od -= !r->is_spot;
                    if (s->o->verbose)
                        fprintf(stderr, "%9.0f %s: scale down replica %d (%s %s)\n", t, s->p->name,
                                r->id, r->is_spot ? "spot" : "on-demand",
                                ctl_replica_status_name(ctl_replica_derive_status(&r->f)));
                    r->f.is_scale_down = true;
                    start_down(r, t, s->o->drain_s);
                }
            }
        }
    }
    free(d);
    free(infos);
    s->spot_target = n_spot;
    s->od_target = n_od;
    /* Launch jobs run after the whole batch was placed, as the controller's queue does. */
    for (size_t i = 0; i < s->nr; i++) {
        if (s->r[i].attempt_now) {
            s->r[i].attempt_now = false;
            try_launch(s, &s->r[i], t);
        }
    }
}

static void housekeeping(sim_t *s, double t)
{
    /* terminations (drain over, or immediate downs) */
    for (size_t i = 0; i < s->nr;) {
        rep_t *r = &s->r[i];

        if (r->f.down == CTL_PROC_SCHEDULED && r->down_at <= t) {
            release(s, r);
            r->f.down = CTL_PROC_SUCCEEDED;
            r->f.service_ready_now = false;
            if (ctl_replica_remove_after_down(&r->f, CTL_INITIAL_VERSION, CTL_INITIAL_VERSION)) {
                rep_remove(s, i);
                continue;
            }
        }
        i++;
    }
    for (size_t i = 0; i < s->nr; i++) {
        rep_t *r = &s->r[i];

        if (r->f.down != CTL_PROC_NONE)
            continue;
        if (r->f.launch == CTL_PROC_RUNNING && r->zone < 0 && r->next_retry >= 0 &&
            r->next_retry <= t)
            try_launch(s, r, t);
        if (r->f.launch == CTL_PROC_RUNNING && r->zone >= 0 && r->launch_done <= t) {
            r->f.launch = CTL_PROC_SUCCEEDED;
            r->bo_init = false;
            if (s->p->placer && r->is_spot && r->has_loc)
                ctl_placer_set_active_at(&s->pl, &r->loc, r->launch_done - s->o->provision_s);
        }
    }
}

static void probe_all(sim_t *s, double t)
{
    ctl_probe_params_t pp;

    ctl_probe_params_default(&pp);
    for (size_t i = 0; i < s->nr; i++) {
        rep_t *r = &s->r[i];
        ctl_probe_action_t a;

        if (!ctl_replica_should_track(&r->f))
            continue;
        a = ctl_replica_record_probe(&r->f, &r->ps, &pp, r->zone >= 0 && t >= r->ready_at, t);
        if (a == CTL_PROBE_TERMINATE_FAILED_PROBING ||
            a == CTL_PROBE_TERMINATE_FAILED_INITIAL_DELAY)
            start_down(r, t, 0);
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
        ctl_scaler_add_request_count(&s->sc, t - s->o->step_s / 2, (uint32_t)fmin(floor(n), 4e9),
                                     t);
}

static void account(sim_t *s, double t, double warmup)
{
    double dt = s->o->step_s, end = (double)s->w->ticks * s->w->gap;
    int ready = 0;

    if (t + dt > end)
        dt = end - t;
    for (size_t i = 0; i < s->nr; i++) {
        const rep_t *r = &s->r[i];

        if (r->zone >= 0) {
            s->st.cost += r->price * dt / 3600.0;
            if (r->is_spot)
                s->st.spot_s += dt;
            else
                s->st.od_s += dt;
        }
        if (ctl_replica_derive_status(&r->f) == CTL_REPLICA_READY)
            ready++;
    }
    s->st.baseline += s->sc.st.target * s->w->z[s->w->od_zone].od_price * dt / 3600.0;
    if (s->p->spot) {
        int want = ctl_scaler_final_target(&s->sc) - s->p->base, live = 0, room = 0;

        for (size_t i = 0; i < s->nr; i++)
            live += s->r[i].is_spot && s->r[i].zone >= 0 && s->r[i].f.down == CTL_PROC_NONE;
        for (size_t z = 0; z < s->w->nz; z++)
            room += s->capz[z] > s->held_spot[z] ? s->capz[z] - s->held_spot[z] : 0;
        if (live < want && room > 0)
            s->st.spot_miss_s += dt;
        for (size_t i = 0; i < s->nr && room > 0; i++)
            if (!s->r[i].is_spot && s->r[i].zone >= 0)
                s->st.od_room_s += dt;
    }
    if (t < warmup)
        return;
    s->st.measured_s += dt;
    if (ready >= s->sc.st.target) {
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
        const rep_t *r = &s->r[i];
        ctl_replica_status_t st = ctl_replica_derive_status(&r->f);
        bool live = !ctl_replica_status_is_terminal(st), ready = st == CTL_REPLICA_READY;

        if (r->is_spot) {
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
        fprintf(f, "%s%d", z ? "," : "", s->capz[z]);
    fprintf(f,
            "],\"spot_live\":%d,\"spot_ready\":%d,\"od_live\":%d,\"od_ready\":%d,"
            "\"spot_held\":%d,\"od_held\":%d,\"target\":%d,\"spot_target\":%d,"
            "\"od_target\":%d,\"decision\":%s}\n",
            spot_live, spot_ready, od_live, od_ready, spot_held, od_held,
            ctl_scaler_final_target(&s->sc), s->spot_target, s->od_target,
            s->decided ? "true" : "false");
}

/*
 * service_init_runtime() in controller/ctl_serve.c builds the placer for a service with
 * `spot_placer: dynamic_fallback` and (a deviation from the reference) for one with on-demand
 * fallback (base_ondemand_fallback_replicas > 0 or dynamic_ondemand_fallback, which the spec
 * only accepts with `use_spot: true`); plain spot and on-demand get none.
 * --no-fallback-placer: the reference's rule, the placer only with `spot_placer:`.
 */
static bool gets_placer(const opts_t *o, const policy_t *p)
{
    return p->placer || (o->fallback_placer && p->spot && (p->dyn || p->base > 0));
}

static int run_policy(const opts_t *o, const world_t *w, const load_t *load, const policy_t *policy,
                      stats_t *out, char **err)
{
    policy_t pol = *policy;
    const policy_t *p = &pol;
    sim_t s;
    ctl_scaler_spec_t spec;
    double end = (double)w->ticks * w->gap, t, next_decision = o->service_start, warmup;
    size_t tick = 0, hint = 0;
    long step_i = 0;
    struct timespec a, b;
    int rc;

    pol.placer = gets_placer(o, policy);
    clock_gettime(CLOCK_MONOTONIC, &a);
    memset(&s, 0, sizeof(s));
    s.o = o;
    s.w = w;
    s.p = p;
    s.load = load;
    ctl_rng_seed(&s.rng, o->seed);
    ctl_scaler_spec_default(&spec);
    if (load) {
        spec.min_replicas = o->min_replicas;
        spec.max_replicas = o->max_replicas;
        spec.target_qps_per_replica = o->qps_per_replica;
    } else {
        spec.min_replicas = o->target;
        spec.max_replicas = o->target;
    }
    if (o->decision_interval > 0)
        spec.decision_interval_s = o->decision_interval;
    spec.base_ondemand_fallback_replicas = p->base;
    spec.dynamic_ondemand_fallback = p->dyn;
    spec.num_overprovision = p->overprovision;
    spec.fallback_target_only = o->hedge && p->dyn;
    if ((rc = ctl_scaler_init(&s.sc, &spec, CTL_INITIAL_VERSION, err)) < 0)
        return rc;
    ctl_placer_init(&s.pl);
    ctl_placer_set_kind(&s.pl, o->placer, spec.decision_interval_s);
    if (p->placer) {
        for (size_t i = 0; i < w->nz; i++) {
            const zone_t *z = &w->z[w->spot_order[i]];
            ctl_location_t l;

            ctl_location_set(&l, z->cloud, z->region, z->name);
            ctl_placer_add(&s.pl, &l, z->spot_price);
        }
    }
    s.held = core_xcalloc(w->nz, sizeof(int));
    s.held_spot = core_xcalloc(w->nz, sizeof(int));
    s.capz = core_xcalloc(w->nz, sizeof(int));
    s.spot_target = s.od_target = -1;
    /* The first replicas cannot be READY before this; the on-demand baseline has the same gap. */
    warmup = o->service_start + ceil((o->provision_s + o->cold_start_s) / o->step_s) * o->step_s;

    for (t = 0; t < end; t = (double)(++step_i) * o->step_s) {
        if (t >= (double)tick * w->gap) {
            apply_capacity(&s, tick, t);
            tick++;
        }
        housekeeping(&s, t);
        probe_all(&s, t);
        feed_load(&s, t, &hint);
        s.decided = false;
        /* (the epsilon: a decision interval that is a multiple of the step lands on it) */
        if (t >= next_decision - 1e-9) {
            decide(&s, t);
            next_decision = t + ctl_scaler_next_interval(&s.sc);
        }
        if (t >= o->service_start)
            account(&s, t, warmup);
        if (o->tl)
            timeline_line(&s, t, tick - 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    s.st.wall_s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    *out = s.st;
    ctl_scaler_destroy(&s.sc);
    ctl_placer_destroy(&s.pl);
    free(s.r);
    free(s.held);
    free(s.held_spot);
    free(s.capz);
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
    cJSON_AddStringToObject(j, "trace", o->trace);
    cJSON_AddStringToObject(j, "gpu", w->tag);
    cJSON_AddStringToObject(j, "instance_type", w->instance_type);
    cJSON_AddNumberToObject(j, "zones", (double)w->nz);
    cJSON_AddNumberToObject(j, "hours", (double)w->ticks * w->gap / 3600.0);
    cJSON_AddNumberToObject(j, "ticks", (double)w->ticks);
    cJSON_AddNumberToObject(j, "gap_seconds", w->gap);
    cJSON_AddNumberToObject(j, "start_tick", (double)o->start_tick);
    cJSON_AddBoolToObject(j, "fallback_placer", o->fallback_placer);
    cJSON_AddBoolToObject(j, "placer", gets_placer(o, p));
    cJSON_AddStringToObject(j, "spot_placer", gets_placer(o, p) ? ctl_placer_kind_name(o->placer)
                                                                : "none");
    cJSON_AddBoolToObject(j, "hedge", o->hedge && p->dyn);
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
    printf("trace %s: %zu zone(s) of %s -> %s, gap %gs, %zu ticks (%.1f h)%s\n", o->trace, w->nz,
           w->tag, w->instance_type, w->gap, w->ticks, (double)w->ticks * w->gap / 3600.0,
           w->shortest != w->longest ? (o->extend ? ", missing ticks = 0 up to the longest file"
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
           o->provision_s, o->cold_start_s, o->drain_s, o->step_s,
           o->decision_interval > 0 ? o->decision_interval : CTL_SCALER_DEFAULT_DECISION_INTERVAL_S,
           o->service_start, o->launch_retry_initial, (unsigned long long)o->seed,
           o->spot_discount >= 0 ? ", flat spot discount" : "");
    printf("spot placer (%s): %s%s\n\n", ctl_placer_kind_name(o->placer),
           o->fallback_placer ? "spothedge, base_fallback, dynamic_fallback (as the controller)"
                              : "spothedge only (--no-fallback-placer: the reference's rule)",
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
           "         [--no-fallback-placer] [--placer dynamic_fallback|spread_backoff]\n"
           "         [--hedge on|off]\n"
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
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    opts_t o = {
        .policy = "all",
        .target = 2,
        .provision_s = 120,
        .cold_start_s = 60,
        .drain_s = DEFAULT_DRAIN_S,
        .step_s = 0,
        .qps = -1,
        .qps_per_replica = 1,
        .min_replicas = 1,
        .max_replicas = 10,
        .spot_discount = -1,
        .launch_retry_initial = LAUNCH_RETRY_INITIAL_S,
        .fallback_placer = true,
    };
    core_catalog_t *cat = NULL;
    world_t w;
    load_t load = {0};
    bool have_load = false;
    char *err = NULL;
    int c, rc, bad = 0, ran = 0, n = 0;
    double d;

    core_log_init("policy_replay", CORE_LOG_WARN);
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_TRACE:
            o.trace = optarg;
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
            bad |= core_parse_num(optarg, 0, 10, &o.spot_discount);
            break;
        case O_GPU:
            o.gpu = optarg;
            break;
        case O_ITYPE:
            o.instance_type = optarg;
            break;
        case O_CATALOG:
            o.catalog = optarg;
            break;
        case O_DRAIN:
            bad |= core_parse_num(optarg, 0, 1e6, &o.drain_s);
            break;
        case O_STEP:
            bad |= core_parse_num(optarg, 0.1, 86400, &o.step_s);
            break;
        case O_EXTEND:
            o.extend = true;
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
            bad |= core_parse_num(optarg, 0.01, 86400, &o.gap);
            break;
        case O_START_TICK:
            bad |= parse_int(optarg, 0, MAX_TICKS, &n);
            o.start_tick = n;
            break;
        case O_TICKS:
            bad |= parse_int(optarg, 1, MAX_TICKS, &n);
            o.n_ticks = n;
            break;
        case O_DECISION:
            /* the controller's bounds for decision_interval (ctl_serve_cfg.c) */
            bad |= core_parse_num(optarg, 0.05, 86400, &o.decision_interval);
            break;
        case O_RETRY:
            bad |= core_parse_num(optarg, 0, 86400, &o.launch_retry_initial);
            break;
        case O_SVC_START:
            bad |= core_parse_num(optarg, 0, 1e9, &o.service_start);
            break;
        case O_TIMELINE:
            o.timeline = optarg;
            break;
        case O_FALLBACK_PLACER: /* the default, kept for scripts that ask for it */
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
    if (!o.trace || optind != argc || (o.load_file && o.qps >= 0) ||
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
    if ((rc = world_load(&w, &o, cat, &err)) < 0) {
        fprintf(stderr, "policy_replay: %s\n", err ? err : core_strerror(rc));
        free(err);
        core_catalog_free(cat);
        return 1;
    }
    core_catalog_free(cat);
    if (o.step_s == 0) {
        /* The probe interval, shrunk so that ticks start on a step. */
        o.step_s = w.gap / ceil(w.gap / DEFAULT_STEP_S);
    } else if (fmod(w.gap, o.step_s) != 0) {
        fprintf(stderr, "policy_replay: --step must divide gap_seconds (%g)\n", w.gap);
        world_free(&w);
        return 2;
    }
    if (o.timeline) {
        o.tl = strcmp(o.timeline, "-") == 0 ? stdout : fopen(o.timeline, "w");
        if (!o.tl) {
            fprintf(stderr, "policy_replay: %s: %s\n", o.timeline, strerror(errno));
            world_free(&w);
            return 1;
        }
    }
    if (o.load_file) {
        if ((rc = load_read(&load, o.load_file, &err)) < 0) {
            fprintf(stderr, "policy_replay: %s\n", err);
            free(err);
            world_free(&w);
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
    world_free(&w);
    if (o.tl && o.tl != stdout && fclose(o.tl) != 0) {
        fprintf(stderr, "policy_replay: %s: %s\n", o.timeline, strerror(errno));
        return 1;
    }
    return ran ? 0 : 1;
}
