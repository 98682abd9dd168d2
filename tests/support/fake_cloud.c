/*
 * The scripted cloud of fake_cloud.h: a table of instances and zones under
 * one mutex; PENDING instances turn RUNNING lazily, when a call looks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"
#include "fake_cloud.h"

typedef struct zone {
    char name[40];
    int spot_cap, od_cap; /* -1: no limit */
    int fail_n, fail_rc;
} zone_t;

typedef struct inst {
    core_instance_t in;
    double ready_at; /* PENDING until then */
    double busy_until;
    unsigned long seq; /* launch order: the newest go first */
} inst_t;

struct fake_cloud {
    pthread_mutex_t mu;
    fake_cloud_opts_t o;
    char ip[64];
    zone_t *zones;
    size_t n_zones;
    inst_t *insts;
    size_t n_insts, cap_insts;
    unsigned long next_seq;
    fake_cloud_stats_t st;
};

typedef struct handle {
    core_prov_t super;
    fake_cloud_t *f;
} handle_t;

static double now(fake_cloud_t *f)
{
    return f->o.clock ? f->o.clock(f->o.clock_arg) : core_now();
}

static bool live(const inst_t *i)
{
    return i->in.state == CORE_INST_PENDING || i->in.state == CORE_INST_RUNNING;
}

static void refresh(fake_cloud_t *f)
{
    double t = now(f);

    for (size_t i = 0; i < f->n_insts; i++)
        if (f->insts[i].in.state == CORE_INST_PENDING && t >= f->insts[i].ready_at)
            f->insts[i].in.state = CORE_INST_RUNNING;
}

static zone_t *zone_get(fake_cloud_t *f, const char *name)
{
    for (size_t i = 0; i < f->n_zones; i++)
        if (strcmp(f->zones[i].name, name) == 0)
            return &f->zones[i];
    f->zones = core_xrealloc(f->zones, (f->n_zones + 1) * sizeof(*f->zones));
    memset(&f->zones[f->n_zones], 0, sizeof(*f->zones));
    snprintf(f->zones[f->n_zones].name, sizeof(f->zones[0].name), "%s", name);
    f->zones[f->n_zones].spot_cap = f->zones[f->n_zones].od_cap = -1;
    return &f->zones[f->n_zones++];
}

static int held(const fake_cloud_t *f, const char *zone, int spot)
{
    int n = 0;

    for (size_t i = 0; i < f->n_insts; i++)
        n += live(&f->insts[i]) && f->insts[i].in.spot == spot &&
             strcmp(f->insts[i].in.zone, zone) == 0;
    return n;
}

static inst_t *find(fake_cloud_t *f, const char *id)
{
    for (size_t i = 0; i < f->n_insts; i++)
        if (strcmp(f->insts[i].in.id, id) == 0)
            return &f->insts[i];
    return NULL;
}

static inst_t *add(fake_cloud_t *f)
{
    inst_t *i;

    if (f->n_insts == f->cap_insts) {
        f->cap_insts = f->cap_insts ? f->cap_insts * 2 : 64;
        f->insts = core_xrealloc(f->insts, f->cap_insts * sizeof(*f->insts));
    }
    i = &f->insts[f->n_insts++];
    memset(i, 0, sizeof(*i));
    i->seq = ++f->next_seq;
    return i;
}

static void preempt(fake_cloud_t *f, inst_t *i)
{
    i->in.state = CORE_INST_PREEMPTED;
    f->st.preemptions++;
}

static int fk_launch(core_prov_t *p, const core_candidate_t *c, const char *owner,
                     core_instance_t *out, char **err)
{
    fake_cloud_t *f = ((handle_t *)p)->f;
    zone_t *z;
    inst_t *i;
    int cap, rc = 0;

    pthread_mutex_lock(&f->mu);
    refresh(f);
    f->st.launches++;
    z = zone_get(f, c->zone);
    cap = c->spot ? z->spot_cap : z->od_cap;
    if (z->fail_n > 0) {
        z->fail_n--;
        rc = z->fail_rc;
    } else if (cap >= 0 && held(f, c->zone, c->spot) >= cap) {
        rc = CORE_ENOCAPACITY;
    }
    if (rc < 0) {
        f->st.failed++;
        pthread_mutex_unlock(&f->mu);
        if (err)
            *err = core_xasprintf("%s: %s in %s", rc == CORE_ENOCAPACITY ? "no_capacity" : "error",
                                  c->spot ? "spot" : "on-demand", c->zone);
        return rc;
    }
    i = add(f);
    snprintf(i->in.id, sizeof(i->in.id), "fake-%06lu", i->seq);
    snprintf(i->in.cloud, sizeof(i->in.cloud), "%s", c->cloud);
    snprintf(i->in.region, sizeof(i->in.region), "%s", c->region);
    snprintf(i->in.zone, sizeof(i->in.zone), "%s", c->zone);
    snprintf(i->in.instance_type, sizeof(i->in.instance_type), "%s", c->instance_type);
    snprintf(i->in.ip, sizeof(i->in.ip), "%s", f->ip);
    snprintf(i->in.owner, sizeof(i->in.owner), "%s", owner ? owner : "");
    i->in.spot = c->spot;
    i->in.price = c->price;
    i->in.agent_port = f->o.agent_port;
    i->in.port_offset = f->o.port_offset;
    i->in.launched_at = now(f);
    i->ready_at = i->in.launched_at + f->o.launch_delay;
    i->in.state = f->o.launch_delay > 0 ? CORE_INST_PENDING : CORE_INST_RUNNING;
    *out = i->in;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fk_terminate(core_prov_t *p, const char *id)
{
    fake_cloud_t *f = ((handle_t *)p)->f;
    inst_t *i;

    pthread_mutex_lock(&f->mu);
    i = find(f, id);
    if (i && i->in.state != CORE_INST_TERMINATED) {
        f->st.terminations++;
        if (live(i) && now(f) < i->busy_until)
            f->st.cut++;
        i->in.state = CORE_INST_TERMINATED;
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fk_describe(core_prov_t *p, const char *id, core_instance_t *out)
{
    fake_cloud_t *f = ((handle_t *)p)->f;
    inst_t *i;

    pthread_mutex_lock(&f->mu);
    refresh(f);
    i = find(f, id);
    if (i)
        *out = i->in;
    pthread_mutex_unlock(&f->mu);
    return i ? 0 : CORE_ENOTFOUND;
}

static int fk_list(core_prov_t *p, core_instance_t **out, size_t *n)
{
    fake_cloud_t *f = ((handle_t *)p)->f;

    pthread_mutex_lock(&f->mu);
    refresh(f);
    *out = core_xcalloc(f->n_insts ? f->n_insts : 1, sizeof(**out));
    *n = 0;
    for (size_t i = 0; i < f->n_insts; i++)
        if (f->insts[i].in.state != CORE_INST_TERMINATED)
            (*out)[(*n)++] = f->insts[i].in;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static void fk_destroy(core_prov_t *p)
{
    free(p);
}

static const core_prov_ops_t fake_ops = {
    .name = "fake",
    .launch = fk_launch,
    .terminate = fk_terminate,
    .describe = fk_describe,
    .list = fk_list,
    .destroy = fk_destroy,
};

int fake_cloud_new(const fake_cloud_opts_t *o, fake_cloud_t **out)
{
    fake_cloud_t *f = core_xcalloc(1, sizeof(*f));

    if (o)
        f->o = *o;
    snprintf(f->ip, sizeof(f->ip), "%s", f->o.ip ? f->o.ip : "127.0.0.1");
    f->o.ip = NULL;
    pthread_mutex_init(&f->mu, NULL);
    *out = f;
    return 0;
}

void fake_cloud_free(fake_cloud_t *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f->zones);
    free(f->insts);
    free(f);
}

core_prov_t *fake_cloud_prov(fake_cloud_t *f)
{
    handle_t *h = core_xcalloc(1, sizeof(*h));

    h->super.ops = &fake_ops;
    h->f = f;
    return &h->super;
}

static int driver_open(void *arg, core_prov_t **out, char **err)
{
    (void)err;
    *out = fake_cloud_prov(arg);
    return 0;
}

core_prov_driver_t fake_cloud_driver(fake_cloud_t *f, const char *const *clouds)
{
    core_prov_driver_t d = {.name = "fake", .clouds = clouds, .open = driver_open, .arg = f};

    return d;
}

void fake_cloud_set_capacity(fake_cloud_t *f, const char *zone, int spot, int ondemand)
{
    zone_t *z;

    pthread_mutex_lock(&f->mu);
    refresh(f);
    z = zone_get(f, zone);
    z->spot_cap = spot;
    z->od_cap = ondemand;
    while (spot >= 0 && held(f, zone, 1) > spot) {
        inst_t *victim = NULL;

        for (size_t i = 0; i < f->n_insts; i++) {
            inst_t *c = &f->insts[i];

            if (live(c) && c->in.spot && strcmp(c->in.zone, zone) == 0 &&
                (!victim || c->seq > victim->seq))
                victim = c;
        }
        preempt(f, victim);
    }
    pthread_mutex_unlock(&f->mu);
}

void fake_cloud_fail_next(fake_cloud_t *f, const char *zone, int n, int rc)
{
    zone_t *z;

    pthread_mutex_lock(&f->mu);
    z = zone_get(f, zone);
    z->fail_n = n;
    z->fail_rc = rc;
    pthread_mutex_unlock(&f->mu);
}

int fake_cloud_preempt(fake_cloud_t *f, const char *id)
{
    inst_t *i;
    int rc = CORE_ENOTFOUND;

    pthread_mutex_lock(&f->mu);
    refresh(f);
    i = find(f, id);
    if (i && live(i)) {
        preempt(f, i);
        rc = 0;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void fake_cloud_plant(fake_cloud_t *f, const core_instance_t *in)
{
    inst_t *i;

    pthread_mutex_lock(&f->mu);
    i = add(f);
    i->in = *in;
    i->ready_at = now(f) + f->o.launch_delay;
    pthread_mutex_unlock(&f->mu);
}

void fake_cloud_busy_until(fake_cloud_t *f, const char *id, double until)
{
    inst_t *i;

    pthread_mutex_lock(&f->mu);
    i = find(f, id);
    if (i && until > i->busy_until)
        i->busy_until = until;
    pthread_mutex_unlock(&f->mu);
}

void fake_cloud_stats(fake_cloud_t *f, fake_cloud_stats_t *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->st;
    pthread_mutex_unlock(&f->mu);
}

int fake_cloud_get(fake_cloud_t *f, const char *id, core_instance_t *out)
{
    handle_t h = {.super.ops = &fake_ops, .f = f};

    return fk_describe(&h.super, id, out);
}

size_t fake_cloud_live(fake_cloud_t *f, const char *owner, const char *zone)
{
    size_t n = 0;

    pthread_mutex_lock(&f->mu);
    refresh(f);
    for (size_t i = 0; i < f->n_insts; i++)
        n += live(&f->insts[i]) && (!owner || strcmp(f->insts[i].in.owner, owner) == 0) &&
             (!zone || strcmp(f->insts[i].in.zone, zone) == 0);
    pthread_mutex_unlock(&f->mu);
    return n;
}
