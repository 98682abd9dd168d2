/*
 * Instance catalog (data/catalog.yaml) and resources -> candidates resolution.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include "core/catalog.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/prov_ssh.h"
#include "core/spec.h"

#define CATALOG_MAX_BYTES (8 * 1024 * 1024)

/* SkyPilot's default when a task names no cpus/memory/accelerators/type:
 * 8+ vCPUs with 4 GB per vCPU. */
#define DEFAULT_VCPUS     8.0
#define DEFAULT_MEMORY_GB 32.0

typedef struct itype {
    char name[48];
    double vcpus;
    double memory_gb;
    char acc[24];
    int acc_count;
} itype_t;

typedef struct offer {
    const itype_t *type;
    double on_demand;
    double spot;
    int has_spot;
} offer_t;

typedef struct zone {
    char name[40];
    offer_t *offers;
    size_t n;
} zone_t;

typedef struct region {
    char name[40];
    zone_t *zones;
    size_t n;
} region_t;

typedef struct cloud {
    char name[24];
    itype_t *types;
    size_t ntypes;
    region_t *regions;
    size_t n;
} cloud_t;

struct core_catalog {
    cloud_t *clouds;
    size_t n;
};

/* ------------------------------------------------------------------ */
/* loading */

typedef struct lctx {
    yaml_document_t *doc;
    const char *file;
    char **err;
} lctx_t;

static int lfail(lctx_t *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lfail(lctx_t *c, const yaml_node_t *n, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    if (!c->err)
        return CORE_ESPEC;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    free(*c->err);
    if (n)
        *c->err = core_xasprintf("%s:%zu:%zu: %s", c->file, n->start_mark.line + 1,
                                 n->start_mark.column + 1, msg);
    else
        *c->err = core_xasprintf("%s: %s", c->file, msg);
    free(msg);
    return CORE_ESPEC;
}

static const char *sv(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static yaml_node_t *nd(lctx_t *c, yaml_node_item_t id)
{
    return yaml_document_get_node(c->doc, id);
}

static int expect_map(lctx_t *c, const yaml_node_t *n, const char *what)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return lfail(c, n, "%s: expected a mapping", what);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = nd(c, p->key);
        if (k->type != YAML_SCALAR_NODE || !k->data.scalar.length)
            return lfail(c, k, "%s: keys must be non-empty strings", what);
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(sv(k), sv(nd(c, q->key))))
                return lfail(c, k, "duplicate key '%s' in %s", sv(k), what);
    }
    return 0;
}

static size_t map_len(const yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static int copy_name(lctx_t *c, const yaml_node_t *k, char *dst, size_t cap)
{
    if (k->data.scalar.length >= cap || strlen(sv(k)) != k->data.scalar.length)
        return lfail(c, k, "name '%s' too long (at most %zu characters)", sv(k), cap - 1);
    memcpy(dst, sv(k), k->data.scalar.length + 1);
    return 0;
}

static int get_number(lctx_t *c, const yaml_node_t *n, const char *what, double *out)
{
    char *end;
    if (n->type != YAML_SCALAR_NODE || !n->data.scalar.length)
        return lfail(c, n, "%s: expected a number", what);
    errno = 0;
    double v = strtod(sv(n), &end);
    if (errno || *end || !isfinite(v) || v < 0)
        return lfail(c, n, "%s: expected a non-negative number, got '%s'", what, sv(n));
    *out = v;
    return 0;
}

static int parse_type(lctx_t *c, const yaml_node_t *k, const yaml_node_t *v, itype_t *t)
{
    int rc, have_v = 0, have_m = 0;
    if ((rc = copy_name(c, k, t->name, sizeof(t->name))))
        return rc;
    if ((rc = expect_map(c, v, t->name)))
        return rc;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *fk = nd(c, p->key), *fv = nd(c, p->value);
        if (!strcmp(sv(fk), "vcpus")) {
            rc = get_number(c, fv, "vcpus", &t->vcpus);
            have_v = 1;
        } else if (!strcmp(sv(fk), "memory")) {
            rc = get_number(c, fv, "memory", &t->memory_gb);
            have_m = 1;
        } else if (!strcmp(sv(fk), "accelerators")) {
            char *end;
            const char *s = fv->type == YAML_SCALAR_NODE ? sv(fv) : "";
            const char *colon = strrchr(s, ':');
            long cnt = colon ? strtol(colon + 1, &end, 10) : 0;
            size_t nl = colon ? (size_t)(colon - s) : 0;
            if (!colon || nl == 0 || nl >= sizeof(t->acc) || *end || cnt < 1 || cnt > 1024)
                return lfail(c, fv, "accelerators: expected \"NAME:COUNT\", got '%s'", s);
            memcpy(t->acc, s, nl);
            t->acc[nl] = '\0';
            t->acc_count = (int)cnt;
        } else {
            rc = lfail(c, fk, "unknown key '%s' in instance type %s", sv(fk), t->name);
        }
        if (rc)
            return rc;
    }
    if (!have_v || !have_m || !(t->vcpus > 0))
        return lfail(c, v, "instance type %s: vcpus (> 0) and memory are required", t->name);
    return 0;
}

static int parse_offer(lctx_t *c, const cloud_t *cl, const yaml_node_t *k, const yaml_node_t *v,
                       offer_t *o)
{
    int rc, have_od = 0;
    for (size_t i = 0; i < cl->ntypes; i++)
        if (!strcmp(cl->types[i].name, sv(k)))
            o->type = &cl->types[i];
    if (!o->type)
        return lfail(c, k, "instance type '%s' is not declared in %s.instance_types", sv(k),
                     cl->name);
    if ((rc = expect_map(c, v, sv(k))))
        return rc;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *fk = nd(c, p->key), *fv = nd(c, p->value);
        if (!strcmp(sv(fk), "on_demand")) {
            rc = get_number(c, fv, "on_demand", &o->on_demand);
            have_od = 1;
        } else if (!strcmp(sv(fk), "spot")) {
            rc = get_number(c, fv, "spot", &o->spot);
            o->has_spot = 1;
        } else {
            rc = lfail(c, fk, "unknown key '%s' in offer %s", sv(fk), sv(k));
        }
        if (rc)
            return rc;
    }
    if (!have_od)
        return lfail(c, v, "offer %s: on_demand price is required", sv(k));
    return 0;
}

static int parse_region(lctx_t *c, const cloud_t *cl, const yaml_node_t *k, const yaml_node_t *v,
                        region_t *r)
{
    int rc;
    const yaml_node_t *zones = NULL;
    if ((rc = copy_name(c, k, r->name, sizeof(r->name))))
        return rc;
    if ((rc = expect_map(c, v, r->name)))
        return rc;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *fk = nd(c, p->key);
        if (strcmp(sv(fk), "zones"))
            return lfail(c, fk, "unknown key '%s' in region %s", sv(fk), r->name);
        zones = nd(c, p->value);
    }
    if (!zones)
        return lfail(c, v, "region %s: zones are required", r->name);
    if ((rc = expect_map(c, zones, "zones")))
        return rc;
    r->zones = core_xcalloc(map_len(zones) + 1, sizeof(*r->zones));
    for (yaml_node_pair_t *p = zones->data.mapping.pairs.start; p < zones->data.mapping.pairs.top;
         p++) {
        yaml_node_t *zk = nd(c, p->key), *zv = nd(c, p->value);
        zone_t *z = &r->zones[r->n++];
        if ((rc = copy_name(c, zk, z->name, sizeof(z->name))))
            return rc;
        if ((rc = expect_map(c, zv, z->name)))
            return rc;
        z->offers = core_xcalloc(map_len(zv) + 1, sizeof(*z->offers));
        for (yaml_node_pair_t *q = zv->data.mapping.pairs.start; q < zv->data.mapping.pairs.top;
             q++) {
            if ((rc = parse_offer(c, cl, nd(c, q->key), nd(c, q->value), &z->offers[z->n])))
                return rc;
            z->n++;
        }
    }
    return 0;
}

static int parse_cloud(lctx_t *c, const yaml_node_t *k, const yaml_node_t *v, cloud_t *cl)
{
    int rc;
    const yaml_node_t *types = NULL, *regions = NULL;
    if ((rc = copy_name(c, k, cl->name, sizeof(cl->name))))
        return rc;
    if ((rc = expect_map(c, v, cl->name)))
        return rc;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *fk = nd(c, p->key);
        if (!strcmp(sv(fk), "instance_types"))
            types = nd(c, p->value);
        else if (!strcmp(sv(fk), "regions"))
            regions = nd(c, p->value);
        else
            return lfail(c, fk, "unknown key '%s' in cloud %s", sv(fk), cl->name);
    }
    if (!types || !regions)
        return lfail(c, v, "cloud %s: instance_types and regions are required", cl->name);
    if ((rc = expect_map(c, types, "instance_types")) || (rc = expect_map(c, regions, "regions")))
        return rc;
    cl->types = core_xcalloc(map_len(types) + 1, sizeof(*cl->types));
    for (yaml_node_pair_t *p = types->data.mapping.pairs.start; p < types->data.mapping.pairs.top;
         p++) {
        if ((rc = parse_type(c, nd(c, p->key), nd(c, p->value), &cl->types[cl->ntypes])))
            return rc;
        cl->ntypes++;
    }
    cl->regions = core_xcalloc(map_len(regions) + 1, sizeof(*cl->regions));
    for (yaml_node_pair_t *p = regions->data.mapping.pairs.start;
         p < regions->data.mapping.pairs.top; p++) {
        region_t *r = &cl->regions[cl->n++];
        if ((rc = parse_region(c, cl, nd(c, p->key), nd(c, p->value), r)))
            return rc;
    }
    return 0;
}

void core_catalog_free(core_catalog_t *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n; i++) {
        cloud_t *cl = &cat->clouds[i];
        for (size_t r = 0; r < cl->n; r++) {
            for (size_t z = 0; z < cl->regions[r].n; z++)
                free(cl->regions[r].zones[z].offers);
            free(cl->regions[r].zones);
        }
        free(cl->regions);
        free(cl->types);
    }
    free(cat->clouds);
    free(cat);
}

static int parse_catalog(const char *text, size_t len, const char *file, core_catalog_t *cat,
                         char **err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = 0;
    lctx_t c = {.doc = &doc, .file = file, .err = err};
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        if (err) {
            free(*err);
            *err = core_xasprintf("%s:%zu:%zu: YAML syntax error: %s", file,
                                  parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                  parser.problem ? parser.problem : "invalid YAML");
        }
        yaml_parser_delete(&parser);
        return CORE_ESPEC;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc), *clouds = NULL;
    if (!root) {
        rc = lfail(&c, NULL, "empty catalog");
        goto out;
    }
    if ((rc = expect_map(&c, root, "catalog")))
        goto out;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = nd(&c, p->key);
        if (strcmp(sv(k), "clouds")) {
            rc = lfail(&c, k, "unknown key '%s' in catalog", sv(k));
            goto out;
        }
        clouds = nd(&c, p->value);
    }
    if (!clouds) {
        rc = lfail(&c, root, "catalog: clouds is required");
        goto out;
    }
    if ((rc = expect_map(&c, clouds, "clouds")))
        goto out;
    cat->clouds = core_xcalloc(map_len(clouds) + 1, sizeof(*cat->clouds));
    for (yaml_node_pair_t *p = clouds->data.mapping.pairs.start; p < clouds->data.mapping.pairs.top;
         p++) {
        cloud_t *cl = &cat->clouds[cat->n++];
        if ((rc = parse_cloud(&c, nd(&c, p->key), nd(&c, p->value), cl)))
            goto out;
    }
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char *buf = core_xmalloc(CATALOG_MAX_BYTES + 1);
    size_t n = fread(buf, 1, CATALOG_MAX_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > CATALOG_MAX_BYTES) {
        free(buf);
        return bad ? -EIO : -EFBIG;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* $SKY_HOME/catalog.yaml (SKY_HOME default ~/.sky), else the shipped copy. Caller frees. */
static char *default_catalog_path(void)
{
    const char *home = getenv("SKY_HOME");
    char *p;
    if (home && *home) {
        p = core_xasprintf("%s/catalog.yaml", home);
    } else {
        const char *h = getenv("HOME");
        p = core_xasprintf("%s/.sky/catalog.yaml", h && *h ? h : "/");
    }
    if (!access(p, R_OK))
        return p;
    free(p);
#ifdef SKY_SOURCE_DIR
    p = core_xstrdup(SKY_SOURCE_DIR "/data/catalog.yaml");
    if (!access(p, R_OK))
        return p;
    free(p);
#endif
    return NULL;
}

int core_catalog_load(const char *path, core_catalog_t **out, char **err)
{
    char *owned = NULL, *text = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    if (!path) {
        owned = default_catalog_path();
        if (!owned) {
            if (err) {
                free(*err);
                *err = core_xstrdup("no catalog: neither $SKY_HOME/catalog.yaml nor the shipped "
                                    "data/catalog.yaml is readable");
            }
            return -ENOENT;
        }
        path = owned;
    }
    if ((rc = read_all(path, &text, &len))) {
        if (err) {
            free(*err);
            *err = core_xasprintf("%s: cannot read catalog: %s", path,
                                  rc == -EFBIG ? "file too large" : strerror(-rc));
        }
        free(owned);
        return rc;
    }
    core_catalog_t *cat = core_xcalloc(1, sizeof(*cat));
    rc = parse_catalog(text, len, path, cat, err);
    free(text);
    free(owned);
    if (rc) {
        core_catalog_free(cat);
        return rc;
    }
    *out = cat;
    return 0;
}

/* ------------------------------------------------------------------ */
/* resolution */

typedef struct cvec {
    core_candidate_t *v;
    size_t n;
    size_t cap;
} cvec_t;

static void cvec_push(cvec_t *cv, const core_candidate_t *c)
{
    if (cv->n == cv->cap) {
        cv->cap = cv->cap ? cv->cap * 2 : 32;
        cv->v = core_xrealloc(cv->v, cv->cap * sizeof(*cv->v));
    }
    cv->v[cv->n++] = *c;
}

static int cand_cmp(const void *x, const void *y)
{
    const core_candidate_t *a = x, *b = y;
    int r;
    if (a->price != b->price)
        return a->price < b->price ? -1 : 1;
    if ((r = strcmp(a->cloud, b->cloud)) || (r = strcmp(a->region, b->region)) ||
        (r = strcmp(a->zone, b->zone)) || (r = strcmp(a->instance_type, b->instance_type)))
        return r;
    return a->spot - b->spot;
}

static int same_choice(const core_candidate_t *a, const core_candidate_t *b)
{
    return a->spot == b->spot && !strcmp(a->cloud, b->cloud) && !strcmp(a->region, b->region) &&
           !strcmp(a->zone, b->zone) && !strcmp(a->instance_type, b->instance_type);
}

/* The requirements of one resources entry after overrides. */
typedef struct req {
    const char *cloud, *region, *zone;
    double cpus;
    int cpus_plus;
    double mem;
    int mem_plus;
    const char *acc;
    int acc_count;
    const char *type;
    int spot;
} req_t;

/* Which checks apply in a match; lets the infeasibility message find the culprit. */
enum { M_CPUS = 1, M_MEM = 2, M_ACC = 4, M_TYPE = 8, M_SPOT = 16, M_ALL = 31 };

static int amount_ok(double have, double want, int plus)
{
    if (want <= 0)
        return 1;
    return plus ? have + 1e-9 >= want : fabs(have - want) < 1e-9;
}

static int offer_ok(const req_t *q, const offer_t *o, int mask)
{
    const itype_t *t = o->type;
    if ((mask & M_TYPE) && q->type && strcmp(q->type, t->name))
        return 0;
    if ((mask & M_CPUS) && !amount_ok(t->vcpus, q->cpus, q->cpus_plus))
        return 0;
    if ((mask & M_MEM) && !amount_ok(t->memory_gb, q->mem, q->mem_plus))
        return 0;
    if (mask & M_ACC) {
        if (q->acc) {
            if (!t->acc[0] || strcasecmp(q->acc, t->acc) || q->acc_count != t->acc_count)
                return 0;
        } else if (t->acc[0] && !q->type) {
            /* Like the reference, a task that asks for no accelerator gets none. */
            return 0;
        }
    }
    if ((mask & M_SPOT) && q->spot && !o->has_spot)
        return 0;
    return 1;
}

/* Calls <fn> on every offer of every zone within the location filters. */
typedef void (*offer_fn)(const cloud_t *cl, const region_t *r, const zone_t *z, const offer_t *o,
                         void *arg);

static void each_offer(const core_catalog_t *cat, const req_t *q, offer_fn fn, void *arg)
{
    for (size_t ci = 0; ci < cat->n; ci++) {
        const cloud_t *cl = &cat->clouds[ci];
        if (q->cloud && strcasecmp(q->cloud, cl->name))
            continue;
        for (size_t ri = 0; ri < cl->n; ri++) {
            const region_t *r = &cl->regions[ri];
            if (q->region && strcmp(q->region, r->name))
                continue;
            for (size_t zi = 0; zi < r->n; zi++) {
                const zone_t *z = &r->zones[zi];
                if (q->zone && strcmp(q->zone, z->name))
                    continue;
                for (size_t oi = 0; oi < z->n; oi++)
                    fn(cl, r, z, &z->offers[oi], arg);
            }
        }
    }
}

typedef struct collect {
    const req_t *q;
    int mask;
    cvec_t *out;
    size_t count;
} collect_t;

static void collect_fn(const cloud_t *cl, const region_t *r, const zone_t *z, const offer_t *o,
                       void *arg)
{
    collect_t *c = arg;
    if (!offer_ok(c->q, o, c->mask))
        return;
    c->count++;
    if (!c->out)
        return;
    core_candidate_t cd;
    memset(&cd, 0, sizeof(cd));
    snprintf(cd.cloud, sizeof(cd.cloud), "%s", cl->name);
    snprintf(cd.region, sizeof(cd.region), "%s", r->name);
    snprintf(cd.zone, sizeof(cd.zone), "%s", z->name);
    snprintf(cd.instance_type, sizeof(cd.instance_type), "%s", o->type->name);
    cd.spot = c->q->spot;
    cd.price = c->q->spot ? o->spot : o->on_demand;
    cd.vcpus = o->type->vcpus;
    cd.memory_gb = o->type->memory_gb;
    snprintf(cd.accelerator, sizeof(cd.accelerator), "%s", o->type->acc);
    cd.accelerator_count = o->type->acc_count;
    cvec_push(c->out, &cd);
}

static size_t count_matches(const core_catalog_t *cat, const req_t *q, int mask)
{
    collect_t c = {.q = q, .mask = mask};
    each_offer(cat, q, collect_fn, &c);
    return c.count;
}

static void fmt_amount(char *out, size_t len, double v, int plus, const char *unit)
{
    snprintf(out, len, "%g%s %s", v, plus ? "+" : "", unit);
}

static void describe_reqs(const req_t *q, int mask, char *out, size_t len)
{
    char part[96];
    size_t n = 0;
    out[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        snprintf(part, sizeof(part), __VA_ARGS__);                                                 \
        n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s", n ? " and " : "", part);     \
    } while (0)
    if ((mask & M_TYPE) && q->type)
        ADD("name %s", q->type);
    if ((mask & M_CPUS) && q->cpus > 0) {
        fmt_amount(part, sizeof(part), q->cpus, q->cpus_plus, "vCPUs");
        char tmp[96];
        snprintf(tmp, sizeof(tmp), "%s", part);
        ADD("%s", tmp);
    }
    if ((mask & M_MEM) && q->mem > 0) {
        fmt_amount(part, sizeof(part), q->mem, q->mem_plus, "GB memory");
        char tmp[96];
        snprintf(tmp, sizeof(tmp), "%s", part);
        ADD("%s", tmp);
    }
    if ((mask & M_ACC) && q->acc)
        ADD("%s:%d", q->acc, q->acc_count);
    if ((mask & M_SPOT) && q->spot)
        ADD("a spot offer");
#undef ADD
    if (!out[0])
        snprintf(out, len, "no accelerator");
}

static void describe_loc(const req_t *q, char *out, size_t len)
{
    if (q->zone)
        snprintf(out, len, " in zone %s%s%s of %s", q->zone, q->region ? " of region " : "",
                 q->region ? q->region : "", q->cloud ? q->cloud : "any cloud");
    else if (q->region)
        snprintf(out, len, " in region %s of %s", q->region, q->cloud ? q->cloud : "any cloud");
    else if (q->cloud)
        snprintf(out, len, " in %s", q->cloud);
    else
        out[0] = '\0';
}

/* Message for an entry without candidates: unknown names first, then the failing requirement. */
static char *infeasible_msg(const core_catalog_t *cat, const req_t *q)
{
    const cloud_t *cl = NULL;
    char names[256] = "";
    size_t n = 0;
    if (q->cloud) {
        for (size_t i = 0; i < cat->n; i++) {
            if (!strcasecmp(cat->clouds[i].name, q->cloud))
                cl = &cat->clouds[i];
            n += (size_t)snprintf(names + n, n < sizeof(names) ? sizeof(names) - n : 0, "%s%s",
                                  i ? ", " : "", cat->clouds[i].name);
        }
        if (!cl)
            return core_xasprintf("cloud '%s' is not in the catalog (available: %s)", q->cloud,
                                  names);
    }
    int region_found = !q->region, zone_found = !q->zone, zone_in_region = 0;
    for (size_t i = 0; i < cat->n; i++) {
        if (cl && cl != &cat->clouds[i])
            continue;
        for (size_t r = 0; r < cat->clouds[i].n; r++) {
            const region_t *rg = &cat->clouds[i].regions[r];
            int rmatch = q->region && !strcmp(rg->name, q->region);
            region_found |= rmatch;
            for (size_t z = 0; q->zone && z < rg->n; z++) {
                if (!strcmp(rg->zones[z].name, q->zone)) {
                    zone_found = 1;
                    zone_in_region |= !q->region || rmatch;
                }
            }
        }
    }
    const char *where = q->cloud ? q->cloud : "the catalog";
    if (!region_found)
        return core_xasprintf("region '%s' not found in %s", q->region, where);
    if (!zone_found)
        return core_xasprintf("zone '%s' not found in %s", q->zone, where);
    if (q->zone && !zone_in_region)
        return core_xasprintf("zone '%s' is not in region '%s'", q->zone, q->region);
    if (q->type) {
        int known = 0;
        for (size_t i = 0; i < cat->n; i++)
            for (size_t t = 0; t < cat->clouds[i].ntypes; t++)
                known |= (!cl || cl == &cat->clouds[i]) &&
                         !strcmp(cat->clouds[i].types[t].name, q->type);
        if (!known)
            return core_xasprintf("instance type '%s' not found in %s", q->type, where);
    }

    char loc[200], reqs[400];
    describe_loc(q, loc, sizeof(loc));
    /* A single requirement that nothing in the location satisfies is the clearest culprit. */
    static const int singles[] = {M_TYPE, M_ACC, M_CPUS, M_MEM};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(singles); i++) {
        req_t one = *q;
        one.spot = 0;
        if (singles[i] == M_ACC && !q->acc)
            continue;
        if (count_matches(cat, &one, singles[i]) == 0) {
            describe_reqs(q, singles[i], reqs, sizeof(reqs));
            return core_xasprintf("no instance type with %s%s", reqs, loc);
        }
    }
    req_t od = *q;
    od.spot = 0;
    if (q->spot && count_matches(cat, &od, M_ALL) > 0) {
        describe_reqs(q, M_ALL & ~M_SPOT, reqs, sizeof(reqs));
        return core_xasprintf("no spot offer for an instance type with %s%s", reqs, loc);
    }
    describe_reqs(q, M_ALL & ~M_SPOT, reqs, sizeof(reqs));
    return core_xasprintf("no instance type with %s%s", reqs, loc);
}

/* Location filter of an entry combined with the override; 0 if they contradict. */
static int combine_loc(const char *a, const char *b, const char **out, int ci)
{
    if (a && b && (ci ? strcasecmp(a, b) : strcmp(a, b)))
        return 0;
    *out = b ? b : a;
    return 1;
}

/*
 * `infra: ssh[/POOL[/HOST]]`: owned machines are not in the catalog; their
 * candidates are the pools `sky ssh up` set up with a host that could hold
 * the request (core_prov_ssh_candidates), at price 0, hence first among an
 * unordered any_of's. The location is <q>'s (the entry's with the override).
 */
static int resolve_ssh(const core_resources_t *r, const req_t *q, cvec_t *out, char **msg)
{
    core_resources_t at = *r;
    core_candidate_t *c = NULL;
    size_t n = 0;
    int rc;

    at.region = (char *)q->region;
    at.zone = (char *)q->zone;
    at.use_spot = q->spot;
    if ((rc = core_prov_ssh_candidates(&at, &c, &n, msg)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        cvec_push(out, &c[i]);
    free(c);
    return 0;
}

static int resolve_one(const core_catalog_t *cat, const core_resources_t *r,
                       const core_resolve_opts_t *o, cvec_t *out, char **msg)
{
    req_t q;
    memset(&q, 0, sizeof(q));
    if (!combine_loc(r->cloud, o->cloud, &q.cloud, 1) ||
        !combine_loc(r->region, o->region, &q.region, 0) ||
        !combine_loc(r->zone, o->zone, &q.zone, 0)) {
        *msg =
            core_xasprintf("the requested location %s%s%s%s%s is outside the resources' "
                           "location %s%s%s%s%s",
                           o->cloud ? o->cloud : "*", o->region ? "/" : "",
                           o->region ? o->region : "", o->zone ? "/" : "", o->zone ? o->zone : "",
                           r->cloud ? r->cloud : "*", r->region ? "/" : "",
                           r->region ? r->region : "", r->zone ? "/" : "", r->zone ? r->zone : "");
        return CORE_EINFEASIBLE;
    }
    q.spot = o->use_spot >= 0 ? (o->use_spot != 0) : (r->use_spot == 1);
    if (q.cloud && !strcasecmp(q.cloud, "ssh"))
        return resolve_ssh(r, &q, out, msg);
    q.cpus = r->cpus;
    q.cpus_plus = r->cpus_plus;
    q.mem = r->memory_gb;
    q.mem_plus = r->memory_plus;
    q.acc = r->accelerator;
    q.acc_count = r->accelerator_count;
    q.type = r->instance_type;
    if (!q.cpus && !q.mem && !q.acc && !q.type) {
        q.cpus = DEFAULT_VCPUS;
        q.cpus_plus = 1;
        q.mem = DEFAULT_MEMORY_GB;
        q.mem_plus = 1;
    }
    collect_t c = {.q = &q, .mask = M_ALL, .out = out};
    each_offer(cat, &q, collect_fn, &c);
    if (c.count == 0) {
        *msg = infeasible_msg(cat, &q);
        return CORE_EINFEASIBLE;
    }
    return 0;
}

/* Drops later duplicates (same place, type and spot) keeping order. */
static void dedupe(cvec_t *cv)
{
    size_t w = 0;
    for (size_t i = 0; i < cv->n; i++) {
        size_t j;
        for (j = 0; j < w; j++)
            if (same_choice(&cv->v[j], &cv->v[i]))
                break;
        if (j == w)
            cv->v[w++] = cv->v[i];
    }
    cv->n = w;
}

int core_catalog_resolve_ex(const core_catalog_t *cat, const struct core_resources *res,
                            const core_resolve_opts_t *opts, core_candidate_t **out, size_t *n,
                            char **err)
{
    static const core_resolve_opts_t none = CORE_RESOLVE_OPTS_INIT;
    const core_resources_t *entries = res->n_any_of ? res->any_of : res;
    size_t ne = res->n_any_of ? res->n_any_of : 1;
    cvec_t all = {0};
    char *msgs = NULL;
    *out = NULL;
    *n = 0;
    if (!opts)
        opts = &none;
    for (size_t i = 0; i < ne; i++) {
        cvec_t one = {0};
        char *msg = NULL;
        if (resolve_one(cat, &entries[i], opts, &one, &msg)) {
            char *piece = ne > 1 ? core_xasprintf("any_of[%zu]: %s", i, msg) : msg;
            if (piece != msg)
                free(msg);
            if (msgs) {
                char *joined = core_xasprintf("%s; %s", msgs, piece);
                free(msgs);
                free(piece);
                msgs = joined;
            } else {
                msgs = piece;
            }
            continue;
        }
        /* ordered: each entry's candidates sorted, entries kept in the user's order. */
        if (res->ordered)
            qsort(one.v, one.n, sizeof(*one.v), cand_cmp);
        for (size_t j = 0; j < one.n; j++)
            cvec_push(&all, &one.v[j]);
        free(one.v);
    }
    if (all.n == 0) {
        if (err) {
            free(*err);
            *err = msgs;
        } else {
            free(msgs);
        }
        free(all.v);
        return CORE_EINFEASIBLE;
    }
    free(msgs);
    if (!res->ordered)
        qsort(all.v, all.n, sizeof(*all.v), cand_cmp);
    dedupe(&all);
    *out = all.v;
    *n = all.n;
    return 0;
}

int core_catalog_resolve(const core_catalog_t *cat, const struct core_resources *res,
                         core_candidate_t **out, size_t *n, char **err)
{
    return core_catalog_resolve_ex(cat, res, NULL, out, n, err);
}

int core_catalog_locations(const core_catalog_t *cat, const struct core_resources *res,
                           int use_spot, core_location_t **out, size_t *n, char **err)
{
    core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;
    core_candidate_t *c = NULL;
    size_t nc = 0;
    o.use_spot = use_spot;
    *out = NULL;
    *n = 0;
    int rc = core_catalog_resolve_ex(cat, res, &o, &c, &nc, err);
    if (rc)
        return rc;
    core_location_t *locs = core_xcalloc(nc, sizeof(*locs));
    size_t nl = 0;
    for (size_t i = 0; i < nc; i++) {
        size_t j;
        for (j = 0; j < nl; j++)
            if (!strcmp(locs[j].cloud, c[i].cloud) && !strcmp(locs[j].region, c[i].region) &&
                !strcmp(locs[j].zone, c[i].zone))
                break;
        if (j < nl)
            continue;
        memcpy(locs[nl].cloud, c[i].cloud, sizeof(locs[nl].cloud));
        memcpy(locs[nl].region, c[i].region, sizeof(locs[nl].region));
        memcpy(locs[nl].zone, c[i].zone, sizeof(locs[nl].zone));
        nl++;
    }
    free(c);
    *out = locs;
    *n = nl;
    return 0;
}

int core_catalog_price(const core_catalog_t *cat, const char *cloud, const char *region,
                       const char *zone, const char *instance_type, int spot, double *price)
{
    for (size_t ci = 0; ci < cat->n; ci++) {
        const cloud_t *cl = &cat->clouds[ci];
        if (strcasecmp(cl->name, cloud))
            continue;
        for (size_t ri = 0; ri < cl->n; ri++) {
            const region_t *r = &cl->regions[ri];
            if (strcmp(r->name, region))
                continue;
            for (size_t zi = 0; zi < r->n; zi++) {
                const zone_t *z = &r->zones[zi];
                if (strcmp(z->name, zone))
                    continue;
                for (size_t oi = 0; oi < z->n; oi++) {
                    const offer_t *o = &z->offers[oi];
                    if (strcmp(o->type->name, instance_type))
                        continue;
                    if (spot && !o->has_spot)
                        return CORE_ENOTFOUND;
                    *price = spot ? o->spot : o->on_demand;
                    return 0;
                }
            }
        }
    }
    return CORE_ENOTFOUND;
}

int core_catalog_each_zone(const core_catalog_t *cat, core_catalog_zone_cb cb, void *arg)
{
    for (size_t ci = 0; ci < cat->n; ci++)
        for (size_t ri = 0; ri < cat->clouds[ci].n; ri++)
            for (size_t zi = 0; zi < cat->clouds[ci].regions[ri].n; zi++) {
                int rc = cb(cat->clouds[ci].name, cat->clouds[ci].regions[ri].name,
                            cat->clouds[ci].regions[ri].zones[zi].name, arg);
                if (rc)
                    return rc;
            }
    return 0;
}

const char *core_cloud_display_name(const char *cloud)
{
    /* The reference's repr of each cloud (_REPR in sky/clouds/). */
    static const char *const names[][2] = {
        {"aws", "AWS"},     {"gcp", "GCP"},   {"azure", "Azure"}, {"lambda", "Lambda"},
        {"kubernetes", "Kubernetes"}, {"k8s", "Kubernetes"}, {"ssh", "SSH"},
        {"local", "Local"}, {"oci", "OCI"},   {"ibm", "IBM"},     {"runpod", "RunPod"},
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(names); i++)
        if (!strcasecmp(cloud, names[i][0]))
            return names[i][1];
    return cloud;
}

void core_candidate_label(const core_candidate_t *c, char *out, size_t outlen)
{
    char cloud[80];

    /* A pool is where owned machines are, as a cloud is: "SSH/lab". */
    snprintf(cloud, sizeof(cloud), "%s%s%s", core_cloud_display_name(c->cloud),
             !strcasecmp(c->cloud, "ssh") && c->region[0] ? "/" : "",
             !strcasecmp(c->cloud, "ssh") ? c->region : "");
    if (c->accelerator[0])
        snprintf(out, outlen, "1x %s(%svCPU=%g, %s:%d)", cloud, c->spot ? "[Spot]" : "", c->vcpus,
                 c->accelerator, c->accelerator_count);
    else
        snprintf(out, outlen, "1x %s(%svCPU=%g)", cloud, c->spot ? "[Spot]" : "", c->vcpus);
}
