/*
 * Provider registry: which driver launches in which cloud, each driver's
 * handle opened on first use and shared by every thread afterwards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/prov_registry.h"
#include "core/prov_ssh.h"

static int local_open(void *arg, core_prov_t **out, char **err)
{
    (void)arg;
    return core_prov_local_open(out, err);
}

static int ssh_open(void *arg, core_prov_t **out, char **err)
{
    (void)arg;
    return core_prov_ssh_open(out, err);
}

static const char *const ssh_clouds[] = {"ssh", NULL};

static const core_prov_driver_t builtin[] = {
    {.name = "local", .clouds = NULL, .open = local_open},
    {.name = "ssh", .clouds = ssh_clouds, .open = ssh_open},
};

const core_prov_driver_t *core_prov_builtin_drivers(size_t *n)
{
    *n = CORE_ARRAY_SIZE(builtin);
    return builtin;
}

static bool serves(const core_prov_driver_t *d, const char *cloud)
{
    for (size_t i = 0; d->clouds && d->clouds[i]; i++)
        if (cloud && strcmp(d->clouds[i], cloud) == 0)
            return true;
    return false;
}

/* The driver naming <cloud>, else the default one. */
static const core_prov_driver_t *driver_for(const core_prov_driver_t *d, size_t n,
                                            const char *cloud)
{
    const core_prov_driver_t *def = NULL;

    for (size_t i = 0; i < n; i++) {
        if (serves(&d[i], cloud))
            return &d[i];
        if (!d[i].clouds)
            def = &d[i];
    }
    return def;
}

static int no_driver(const char *cloud, char **err)
{
    if (err)
        *err = core_xasprintf("no provider launches in cloud '%s'", cloud ? cloud : "");
    return CORE_ENOTFOUND;
}

int core_prov_open(const char *cloud, core_prov_t **out, char **err)
{
    size_t n = 0;
    const core_prov_driver_t *all = core_prov_builtin_drivers(&n);
    const core_prov_driver_t *d = driver_for(all, n, cloud);

    *out = NULL;
    if (err)
        *err = NULL;
    return d ? d->open(d->arg, out, err) : no_driver(cloud, err);
}

typedef struct slot {
    core_prov_driver_t drv;
    pthread_mutex_t mu;  /* guards the lazy open: one slow provider does not hold up another */
    core_prov_t *handle; /* NULL until opened */
} slot_t;

struct core_prov_registry {
    slot_t *slots;
    size_t n;
};

int core_prov_registry_new(const core_prov_driver_t *drivers, size_t n, core_prov_registry_t **out)
{
    core_prov_registry_t *r;
    size_t n_default = 0;

    *out = NULL;
    if (!drivers)
        drivers = core_prov_builtin_drivers(&n);
    for (size_t i = 0; i < n; i++) {
        n_default += drivers[i].clouds == NULL;
        for (size_t k = 0; drivers[i].clouds && drivers[i].clouds[k]; k++)
            for (size_t j = 0; j < i; j++)
                if (serves(&drivers[j], drivers[i].clouds[k]))
                    return -EINVAL;
    }
    if (n_default > 1)
        return -EINVAL;
    r = core_xcalloc(1, sizeof(*r));
    r->slots = core_xcalloc(n ? n : 1, sizeof(*r->slots));
    for (size_t i = 0; i < n; i++) {
        r->slots[i].drv = drivers[i];
        pthread_mutex_init(&r->slots[i].mu, NULL);
    }
    r->n = n;
    *out = r;
    return 0;
}

void core_prov_registry_free(core_prov_registry_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        core_prov_destroy(r->slots[i].handle);
        pthread_mutex_destroy(&r->slots[i].mu);
    }
    free(r->slots);
    free(r);
}

static slot_t *slot_for(const core_prov_registry_t *r, const char *cloud)
{
    slot_t *def = NULL;

    for (size_t i = 0; i < r->n; i++) {
        if (serves(&r->slots[i].drv, cloud))
            return &r->slots[i];
        if (!r->slots[i].drv.clouds)
            def = &r->slots[i];
    }
    return def;
}

const core_prov_driver_t *core_prov_registry_driver(const core_prov_registry_t *r,
                                                    const char *cloud)
{
    slot_t *s = slot_for(r, cloud);

    return s ? &s->drv : NULL;
}

static int slot_get(slot_t *s, core_prov_t **out, char **err)
{
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    if (!s->handle)
        rc = s->drv.open(s->drv.arg, &s->handle, err);
    *out = s->handle;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int core_prov_registry_get(core_prov_registry_t *r, const char *cloud, core_prov_t **out,
                           char **err)
{
    slot_t *s = slot_for(r, cloud);

    *out = NULL;
    if (err)
        *err = NULL;
    return s ? slot_get(s, out, err) : no_driver(cloud, err);
}

/* The provider of one candidate: a fixed handle, or the registry's per cloud. */
typedef int (*prov_for_fn)(void *arg, const core_candidate_t *c, core_prov_t **out, char **err);

static int fixed_prov(void *arg, const core_candidate_t *c, core_prov_t **out, char **err)
{
    (void)c;
    (void)err;
    *out = arg;
    return 0;
}

static int registry_prov(void *arg, const core_candidate_t *c, core_prov_t **out, char **err)
{
    return core_prov_registry_get(arg, c->cloud, out, err);
}

static int failover(prov_for_fn prov_for, void *arg, const core_candidate_t *cands, size_t n,
                    const unsigned char *skip, const char *owner, core_instance_t *out,
                    size_t *chosen, char **err)
{
    int rc = CORE_ENOCAPACITY;
    size_t tried = 0;

    if (err)
        *err = NULL;
    for (size_t i = 0; i < n; i++) {
        core_prov_t *p = NULL;
        char *e = NULL;

        if (skip && skip[i])
            continue;
        tried++;
        rc = prov_for(arg, &cands[i], &p, &e);
        if (rc == 0)
            rc = core_prov_launch(p, &cands[i], owner, out, &e);
        if (rc == 0) {
            if (chosen)
                *chosen = i;
            free(e);
            if (err) {
                free(*err);
                *err = NULL;
            }
            return 0;
        }
        CORE_INFO("launch in %s/%s (%s%s) failed: %s", cands[i].region, cands[i].zone,
                  cands[i].spot ? "spot " : "", cands[i].instance_type, e ? e : core_strerror(rc));
        if (err) {
            free(*err);
            *err = e;
            e = NULL;
        }
        free(e);
        if (rc != CORE_ENOCAPACITY)
            return rc;
    }
    if (tried == 0 && err && !*err)
        *err = core_xstrdup("no candidate left to try");
    return CORE_ENOCAPACITY;
}

int core_prov_launch_failover(core_prov_t *p, const core_candidate_t *cands, size_t n,
                              const unsigned char *skip, const char *owner, core_instance_t *out,
                              size_t *chosen, char **err)
{
    return failover(fixed_prov, p, cands, n, skip, owner, out, chosen, err);
}

int core_prov_registry_launch(core_prov_registry_t *r, const core_candidate_t *cands, size_t n,
                              const unsigned char *skip, const char *owner, core_instance_t *out,
                              size_t *chosen, char **err)
{
    return failover(registry_prov, r, cands, n, skip, owner, out, chosen, err);
}

int core_prov_registry_list(core_prov_registry_t *r, core_instance_t **out, size_t *n)
{
    core_instance_t *all = NULL;
    size_t n_all = 0;

    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < r->n; i++) {
        core_instance_t *v = NULL;
        core_prov_t *p;
        size_t nv = 0;
        char *err = NULL;
        int rc = slot_get(&r->slots[i], &p, &err);

        if (rc == 0)
            rc = core_prov_list(p, &v, &nv);
        if (rc < 0) {
            CORE_DEBUG("provider %s: %s", r->slots[i].drv.name, err ? err : core_strerror(rc));
            free(err);
            free(all);
            return rc;
        }
        if (nv) {
            all = core_xrealloc(all, (n_all + nv) * sizeof(*all));
            memcpy(all + n_all, v, nv * sizeof(*v));
            n_all += nv;
        }
        free(v);
    }
    *out = all;
    *n = n_all;
    return 0;
}

int core_prov_registry_terminate(core_prov_registry_t *r, const char *cloud, const char *id)
{
    core_prov_t *p;
    int rc = core_prov_registry_get(r, cloud, &p, NULL);

    return rc < 0 ? rc : core_prov_terminate(p, id);
}

int core_prov_registry_describe(core_prov_registry_t *r, const char *cloud, const char *id,
                                core_instance_t *out)
{
    core_prov_t *p;
    int rc = core_prov_registry_get(r, cloud, &p, NULL);

    return rc < 0 ? rc : core_prov_describe(p, id, out);
}
