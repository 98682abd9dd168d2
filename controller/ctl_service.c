/*
 * Services: their versions (the YAML as given, parsed and validated), the
 * API's actions (up, update, down, terminate a replica), the service status
 * and active versions, the views (sky serve status), persistence of what the
 * fleet changed, and the recovery of every service at startup.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/taskrun.h"
#include "core/util.h"
#include "ctl_serve.h"
#include "ctl_serve_lb.h"
#include "ctl_serve_replica.h"
#include "ctl_serve_store.h"
#include "ctl_service.h"

/* SHUTTING_DOWN, or FAILED_CLEANUP after a down whose terminations failed. */
bool ctl_service_going_down(const ctl_service_t *svc)
{
    return svc->row.status == CTL_SERVICE_SHUTTING_DOWN ||
           svc->row.status == CTL_SERVICE_FAILED_CLEANUP;
}

ctl_service_t *ctl_serve_find(ctl_serve_t *s, const char *name)
{
    for (ctl_service_t *svc = s->services; svc; svc = svc->next)
        if (!svc->deleted && strcmp(svc->row.name, name) == 0)
            return svc;
    return NULL;
}

ctl_replica_t *ctl_service_replica(ctl_service_t *svc, int id)
{
    CTL_FOR_EACH_REPLICA(svc, r)
    if (r->fr.row.id == id)
        return r;
    return NULL;
}

ctl_version_t *ctl_service_version(ctl_service_t *svc, int version)
{
    for (size_t i = 0; i < svc->n_versions; i++)
        if (svc->versions[i].row.version == version)
            return &svc->versions[i];
    return NULL;
}

ctl_version_t *ctl_service_latest(ctl_service_t *svc)
{
    return svc->n_versions ? &svc->versions[svc->n_versions - 1] : NULL;
}

void ctl_replica_save(ctl_replica_t *r)
{
    ctl_store_put_replica(r->svc->s->store, r->svc->row.name, &r->fr.row);
    r->fr.dirty = false;
}

void ctl_service_save(ctl_service_t *svc)
{
    ctl_store_put_service(svc->s->store, &svc->row);
}

void ctl_service_save_meta(ctl_service_t *svc)
{
    cJSON *j;
    char *sj, *pj = NULL;

    svc->fleet.meta_dirty = false;
    if (!svc->fleet.scaler_ok)
        return;
    j = ctl_scaler_state_to_json(&svc->fleet.scaler, NULL, true);
    sj = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (svc->fleet.has_placer) {
        j = ctl_placer_to_json(&svc->fleet.placer);
        pj = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    }
    /* Most decisions move nothing (a steady service): do not rewrite the row. */
    if (svc->saved_scaler && strcmp(sj, svc->saved_scaler) == 0 &&
        ((!pj && !svc->saved_placer) ||
         (pj && svc->saved_placer && strcmp(pj, svc->saved_placer) == 0))) {
        free(sj);
        free(pj);
        return;
    }
    free(svc->saved_scaler);
    free(svc->saved_placer);
    svc->saved_scaler = svc->saved_placer = NULL;
    if (ctl_store_put_meta(svc->s->store, svc->row.name, sj, pj) == 0) {
        svc->saved_scaler = sj;
        svc->saved_placer = pj;
        return;
    }
    free(sj);
    free(pj);
}

/* Writes what the fleet changed: replica rows, the autoscaler and placer state. */
void ctl_service_save_fleet(ctl_service_t *svc)
{
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        if (r->fr.dirty)
            ctl_replica_save(r);
    }
    if (svc->fleet.meta_dirty)
        ctl_service_save_meta(svc);
}

static char *task_fingerprint(const core_task_t *t, const char *cwd, int port)
{
    cJSON *o = cJSON_CreateObject(), *envs, *fms, *res;
    char *wd = core_resolve_path(t->workdir, cwd), *out;
    const core_resources_t *rs = &t->resources;

    cJSON_AddStringToObject(o, "setup", t->setup ? t->setup : "");
    cJSON_AddStringToObject(o, "run", t->run ? t->run : "");
    cJSON_AddStringToObject(o, "workdir", wd ? wd : "");
    free(wd);
    cJSON_AddNumberToObject(o, "num_nodes", t->num_nodes);
    cJSON_AddNumberToObject(o, "port", port);
    envs = cJSON_AddObjectToObject(o, "envs");
    for (size_t i = 0; i < t->n_envs; i++)
        cJSON_AddStringToObject(envs, t->envs[i].key, t->envs[i].value ? t->envs[i].value : "");
    for (size_t i = 0; i < t->n_secrets; i++)
        cJSON_AddStringToObject(envs, t->secrets[i].key,
                                t->secrets[i].value ? t->secrets[i].value : "");
    fms = cJSON_AddArrayToObject(o, "file_mounts");
    for (size_t i = 0; i < t->n_file_mounts; i++)
        cJSON_AddItemToArray(fms, cJSON_CreateString(t->file_mounts[i].dst));
    res = cJSON_AddArrayToObject(o, "resources");
    for (size_t i = 0; i <= rs->n_any_of; i++) {
        const core_resources_t *e = rs->n_any_of ? (i < rs->n_any_of ? &rs->any_of[i] : NULL) : rs;
        char *d;

        if (!e)
            break;
        d = core_xasprintf("%s/%s/%s/%g%s/%g%s/%s:%d/%s/%d", e->cloud ? e->cloud : "",
                           e->region ? e->region : "", e->zone ? e->zone : "", e->cpus,
                           e->cpus_plus ? "+" : "", e->memory_gb, e->memory_plus ? "+" : "",
                           e->accelerator ? e->accelerator : "", e->accelerator_count,
                           e->instance_type ? e->instance_type : "", e->use_spot);
        cJSON_AddItemToArray(res, cJSON_CreateString(d));
        free(d);
        if (!rs->n_any_of)
            break;
    }
    out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* Parses and validates a version's YAML. 0, or CORE_ESPEC with *err. */
static int version_load(ctl_version_t *v, char **err)
{
    int rc, port;
    const char *fname = v->row.yaml_path ? v->row.yaml_path : "<service.yaml>";

    cJSON *envs = v->row.envs ? cJSON_Parse(v->row.envs) : NULL;
    cJSON *over = v->row.overrides ? cJSON_Parse(v->row.overrides) : NULL;

    rc = core_task_parse_with(v->row.yaml, strlen(v->row.yaml), fname, envs, over, &v->task, err);
    cJSON_Delete(envs);
    cJSON_Delete(over);
    if (rc < 0)
        return rc;
    if (!v->task->service) {
        *err = core_xasprintf("%s: the task YAML has no `service:` section", fname);
        goto fail;
    }
    port = core_task_validate_service(v->task, err);
    if (port < 0)
        goto fail;
    v->port = port;
    v->fingerprint = task_fingerprint(v->task, v->row.cwd, port);
    return 0;
fail:
    core_task_free(v->task);
    v->task = NULL;
    return CORE_ESPEC;
}

static void version_set(ctl_version_t *v, int version, const ctl_task_src_t *src,
                        ctl_update_mode_t mode)
{
    v->row.version = version;
    v->row.yaml = core_xstrdup(src->yaml);
    v->row.yaml_path = src->yaml_path ? core_xstrdup(src->yaml_path) : NULL;
    v->row.cwd = src->cwd ? core_xstrdup(src->cwd) : NULL;
    v->row.envs = src->envs ? core_xstrdup(src->envs) : NULL;
    v->row.overrides = src->overrides ? core_xstrdup(src->overrides) : NULL;
    v->row.mode = mode;
}

static void version_clear(ctl_version_t *v)
{
    ctl_version_row_clear(&v->row);
    core_task_free(v->task);
    v->task = NULL;
    free(v->fingerprint);
    v->fingerprint = NULL;
}

/* The spot placer of <t>: every zone with a spot candidate, at its cheapest price. */
static void placer_build(ctl_serve_t *s, ctl_service_t *svc, const core_task_t *t)
{
    core_resolve_opts_t o = CORE_RESOLVE_OPTS_INIT;
    core_candidate_t *c = NULL;
    size_t n = 0;
    char *err = NULL;

    o.use_spot = 1;
    if (!s->catalog || core_catalog_resolve_ex(s->catalog, &t->resources, &o, &c, &n, &err) < 0)
        CORE_WARN("%s: spot placer: no spot location: %s", svc->row.name, err ? err : "?");
    ctl_fleet_use_placer(&svc->fleet, t, c, n);
    free(err);
    free(c);
}

void ctl_service_update_status(ctl_service_t *svc)
{
    ctl_replica_info_t *infos;
    size_t n = ctl_fleet_infos(&svc->fleet, &infos);
    ctl_version_min_t *mins = core_xcalloc(svc->n_versions + 1, sizeof(*mins));
    int act[CTL_MAX_ACTIVE_VERSIONS];
    size_t na;
    ctl_service_status_t st = svc->row.status;
    bool changed = false;

    for (size_t i = 0; i < svc->n_versions; i++) {
        mins[i].version = svc->versions[i].row.version;
        mins[i].min_replicas =
            svc->versions[i].task ? svc->versions[i].task->service->policy.min_replicas : 1;
    }
    na = ctl_active_versions(infos, n, svc->fleet.scaler.st.update_mode, mins, svc->n_versions, act,
                             CTL_MAX_ACTIVE_VERSIONS);
    if (na != svc->row.n_active || memcmp(act, svc->row.active_versions, na * sizeof(int))) {
        memcpy(svc->row.active_versions, act, na * sizeof(int));
        svc->row.n_active = na;
        changed = true;
    }
    /* The reference's observable status: from the READY replicas only
     * (READY or NO_REPLICA), CONTROLLER_INIT until the first probe round. */
    if (!ctl_service_going_down(svc) && svc->probed_once)
        st = ctl_service_status_from_replicas(infos, n, true);
    if (st != svc->row.status) {
        CORE_INFO("%s: service %s -> %s", svc->row.name, ctl_service_status_name(svc->row.status),
                  ctl_service_status_name(st));
        svc->row.status = st;
        changed = true;
    }
    if (changed)
        ctl_service_save(svc);
    free(mins);
    free(infos);
}

static void service_free(ctl_service_t *svc)
{
    ctl_fleet_destroy(&svc->fleet);
    free(svc->saved_scaler);
    free(svc->saved_placer);
    for (size_t i = 0; i < svc->n_versions; i++)
        version_clear(&svc->versions[i]);
    free(svc->versions);
    if (svc->lb_proc)
        svc->lb_proc->data = NULL;
    free(svc);
}

static void service_link(ctl_serve_t *s, ctl_service_t *svc)
{
    ctl_service_t **pp = &s->services;

    while (*pp && strcmp((*pp)->row.name, svc->row.name) < 0)
        pp = &(*pp)->next;
    svc->next = *pp;
    *pp = svc;
}

static void service_unlink(ctl_serve_t *s, ctl_service_t *svc)
{
    for (ctl_service_t **pp = &s->services; *pp; pp = &(*pp)->next) {
        if (*pp == svc) {
            *pp = svc->next;
            return;
        }
    }
}

void ctl_service_maybe_finish_down(ctl_service_t *svc)
{
    ctl_serve_t *s = svc->s;
    bool blocked = false;

    if (!ctl_service_going_down(svc) || svc->deleted)
        return;
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        if (r->fr.row.f.down == CTL_PROC_FAILED && svc->row.purge)
            continue;
        blocked = true;
    }
    if (blocked) {
        /* Only replicas whose termination failed remain: FAILED_CLEANUP. */
        bool all_failed = ctl_replica_first(svc) != NULL;

        CTL_FOR_EACH_REPLICA(svc, r)
        all_failed &= r->fr.row.f.down == CTL_PROC_FAILED && !r->fr.busy;
        if (all_failed && svc->row.status != CTL_SERVICE_FAILED_CLEANUP) {
            svc->row.status = CTL_SERVICE_FAILED_CLEANUP;
            ctl_service_save(svc);
            CORE_ERROR("%s: FAILED_CLEANUP (replicas could not be terminated)", svc->row.name);
        }
        return;
    }
    ctl_lb_stop(s, svc);
    ctl_store_delete_service(s->store, svc->row.name);
    CORE_INFO("%s: service removed", svc->row.name);
    svc->deleted = 1;
    service_unlink(s, svc);
    service_free(svc);
}

int ctl_serve_down(ctl_serve_t *s, ctl_service_t *svc, bool purge)
{
    (void)s;
    svc->row.status = CTL_SERVICE_SHUTTING_DOWN;
    svc->row.purge = svc->row.purge || purge;
    ctl_service_save(svc);
    ctl_lb_stop(s, svc);
    {
        ctl_fleet_replica_t **done = NULL;
        size_t n = ctl_fleet_down_all(&svc->fleet, purge, core_now(), &done);

        for (size_t i = 0; i < n; i++)
            ctl_replica_remove(svc, (ctl_replica_t *)done[i]);
        free(done);
    }
    ctl_service_save_fleet(svc);
    ctl_service_maybe_finish_down(svc);
    return 0;
}

int ctl_serve_terminate_replica(ctl_serve_t *s, ctl_service_t *svc, int id, bool purge, char **err)
{
    ctl_replica_t *r = ctl_service_replica(svc, id);
    ctl_replica_status_t st;

    if (!r) {
        *err = core_xasprintf("Replica %d of service %s does not exist.", id, svc->row.name);
        return CORE_ENOTFOUND;
    }
    st = ctl_replica_row_status(&r->fr.row);
    if (st == CTL_REPLICA_SHUTTING_DOWN) {
        *err =
            core_xasprintf("Replica %d of service %s is already shutting down.", id, svc->row.name);
        return CORE_ECONFLICT;
    }
    if (ctl_replica_status_is_failed(st) || st == CTL_REPLICA_PREEMPTED) {
        if (!purge) {
            *err = core_xasprintf("Replica %d of service %s is in failed status (%s). Use "
                                  "--purge to remove it.",
                                  id, svc->row.name, ctl_replica_status_name(st));
            return CORE_ECONFLICT;
        }
        if (r->fr.row.f.down != CTL_PROC_NONE && !r->fr.busy) {
            ctl_replica_remove(svc, r);
            ctl_service_update_status(svc);
            return 0;
        }
    }
    CORE_INFO("%s: terminating replica %d on request%s", svc->row.name, id,
              purge ? " (purge)" : "");
    ctl_fleet_scale_down(&svc->fleet, &r->fr, purge, s->cfg.drain_seconds, core_now());
    ctl_replica_save(r);
    ctl_service_update_status(svc);
    return 0;
}

static int alloc_replica_id(void *arg, int *out)
{
    ctl_service_t *svc = arg;

    return ctl_store_alloc_replica_id(svc->s->store, svc->row.name, out);
}

/* Sets up the in-memory side of a service whose rows exist (new or recovered). */
static int service_init_runtime(ctl_serve_t *s, ctl_service_t *svc, const char *scaler_json,
                                const char *placer_json)
{
    ctl_version_t *v = ctl_service_latest(svc);
    char *err = NULL;

    svc->s = s;
    ctl_fleet_init(&svc->fleet, svc->row.name, &s->cfg, sizeof(ctl_replica_t), alloc_replica_id,
                   svc, ctl_rng_uniform, &s->rng);
    ctl_backoff_init(&svc->lb_backoff, s->cfg.lb_restart_initial, 10, ctl_rng_uniform, &s->rng);
    if (!v || !v->task) {
        CORE_ERROR("%s: no usable version", svc->row.name);
        return CORE_ESPEC;
    }
    if (ctl_fleet_start(&svc->fleet, v->task, v->row.version, &err) < 0) {
        CORE_ERROR("%s: autoscaler: %s", svc->row.name, err ? err : "?");
        free(err);
        return CORE_ESPEC;
    }
    svc->fleet.scaler.st.update_mode = v->row.mode;
    /* The placer: the first version's spot candidates and kind. */
    if (ctl_fleet_wants_placer(v->task))
        placer_build(s, svc, svc->versions[0].task ? svc->versions[0].task : v->task);
    if (scaler_json) {
        cJSON *j = cJSON_Parse(scaler_json);

        if (ctl_scaler_state_from_json(&svc->fleet.scaler, NULL, j, core_now()) < 0)
            CORE_WARN("%s: stored autoscaler state unreadable; starting fresh", svc->row.name);
        cJSON_Delete(j);
    }
    if (placer_json && svc->fleet.has_placer) {
        cJSON *j = cJSON_Parse(placer_json);

        if (ctl_placer_from_json(&svc->fleet.placer, j) < 0)
            CORE_WARN("%s: stored placer state unreadable", svc->row.name);
        cJSON_Delete(j);
    }
    return 0;
}

static void requested_label(ctl_serve_t *s, ctl_version_t *v, char *out, size_t outlen)
{
    core_candidate_t *c = NULL;
    size_t n = 0;

    snprintf(out, outlen, "-");
    if (s->catalog && core_catalog_resolve(s->catalog, &v->task->resources, &c, &n, NULL) == 0 &&
        n > 0)
        core_candidate_label(&c[0], out, outlen);
    free(c);
}

static void gen_name(ctl_serve_t *s, char *out, size_t outlen)
{
    do {
        snprintf(out, outlen, "sky-service-%04x",
                 (unsigned)(ctl_rng_uniform(&s->rng) * 65536) & 0xffff);
    } while (ctl_serve_find(s, out));
}

int ctl_serve_up(ctl_serve_t *s, const char *name, const ctl_task_src_t *src, ctl_service_t **out,
                 char **err)
{
    ctl_service_t *svc;
    ctl_version_t *v;
    core_candidate_t *c = NULL;
    size_t nc = 0;
    char gen[CTL_SVC_NAME_MAX];
    int rc, port_lock = -1;

    if (!name || !*name) {
        gen_name(s, gen, sizeof(gen));
        name = gen;
    }
    if (!ctl_serve_valid_name(name)) {
        *err = core_xasprintf("Invalid service name '%s': use lowercase letters, digits and "
                              "dashes, starting with a letter (at most %d characters).",
                              name, CTL_SVC_NAME_MAX - 1);
        return CORE_ESPEC;
    }
    s->stop_when_empty = false; /* a new service after `down -a`: keep running */
    if (ctl_serve_find(s, name)) {
        *err = core_xasprintf("Service %s already exists.", name);
        return CORE_ECONFLICT;
    }
    svc = core_xcalloc(1, sizeof(*svc));
    svc->s = s;
    snprintf(svc->row.name, sizeof(svc->row.name), "%s", name);
    svc->versions = core_xcalloc(1, sizeof(*svc->versions));
    v = &svc->versions[0];
    version_set(v, CTL_INITIAL_VERSION, src, CTL_UPDATE_ROLLING);
    svc->n_versions = 1;
    if ((rc = version_load(v, err)) < 0)
        goto fail;
    /* Refuse what can never launch now rather than failing every replica later. */
    if (s->catalog &&
        (rc = core_catalog_resolve(s->catalog, &v->task->resources, &c, &nc, err)) < 0)
        goto fail;
    free(c);
    svc->row.status = CTL_SERVICE_CONTROLLER_INIT;
    svc->row.created_at = core_now();
    snprintf(svc->row.lb_policy, sizeof(svc->row.lb_policy), "%s",
             core_lb_policy_name(v->task->service->lb_policy));
    requested_label(s, v, svc->row.requested_resources, sizeof(svc->row.requested_resources));
    if ((rc = service_init_runtime(s, svc, NULL, NULL)) < 0) {
        *err = core_xstrdup("invalid replica policy");
        goto fail;
    }
    port_lock = ctl_lb_port_lock();
    if ((rc = ctl_lb_pick_port(s, 0)) > 0) {
        svc->row.lb_port = rc;
        rc = ctl_lb_pick_port(s, svc->row.lb_port);
    }
    if (rc < 0) {
        *err = core_xstrdup("no free port for the load balancer");
        goto fail;
    }
    svc->row.lb_admin_port = rc;
    {
        char *dir = ctl_serve_log_path(s, name, "");

        core_mkdir_p(dir, 0755);
        free(dir);
    }
    /* Stale rows from an earlier service of the same name must not leak in. */
    ctl_store_delete_service(s->store, name);
    if ((rc = ctl_store_put_service(s->store, &svc->row)) < 0 ||
        (rc = ctl_store_put_version(s->store, name, &v->row)) < 0) {
        *err = core_xstrdup("cannot write the service database");
        goto fail;
    }
    ctl_service_save_meta(svc);
    service_link(s, svc);
    svc->next_probe = core_now();
    svc->next_decision = core_now();
    ctl_lb_ensure(s, svc);
    ctl_lb_port_unlock(port_lock, svc->lb_proc ? svc->row.lb_port : 0,
                       svc->lb_proc ? svc->row.lb_admin_port : 0);
    CORE_INFO("%s: service up (version 1, LB port %d)", name, svc->row.lb_port);
    *out = svc;
    return 0;
fail:
    ctl_lb_port_unlock(port_lock, 0, 0);
    service_free(svc);
    return rc < 0 ? rc : CORE_ESPEC;
}

int ctl_serve_update(ctl_serve_t *s, ctl_service_t *svc, const ctl_task_src_t *src,
                     ctl_update_mode_t mode, int *version, char **err)
{
    ctl_version_t nv, *old;
    ctl_scaler_spec_t sp;
    int rc, next;

    if (ctl_service_going_down(svc)) {
        *err = core_xasprintf("Service %s is shutting down.", svc->row.name);
        return CORE_ECONFLICT;
    }
    memset(&nv, 0, sizeof(nv));
    if ((rc = ctl_store_next_version(s->store, svc->row.name, &next)) < 0)
        return rc;
    old = ctl_service_latest(svc);
    if (old && next <= old->row.version)
        next = old->row.version + 1;
    version_set(&nv, next, src, mode);
    if ((rc = version_load(&nv, err)) < 0)
        goto fail;
    ctl_fleet_scaler_spec(&s->cfg, nv.task->service, &sp);
    if ((rc = ctl_scaler_spec_validate(&sp, err)) < 0)
        goto fail;
    if (old && old->task && nv.task->service->lb_policy != old->task->service->lb_policy)
        CORE_WARN("%s: load_balancing_policy cannot be changed by update; ignored", svc->row.name);
    if ((rc = ctl_store_put_version(s->store, svc->row.name, &nv.row)) < 0) {
        *err = core_xstrdup("cannot write the service database");
        goto fail;
    }
    /* Replica reuse: only `service:` changed -> relabel, no relaunch. */
    if (old && old->fingerprint && nv.task->n_file_mounts == 0 &&
        strcmp(old->fingerprint, nv.fingerprint) == 0) {
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            if (ctl_replica_status_is_terminal(ctl_replica_row_status(&r->fr.row)))
                continue;
            r->fr.row.version = next;
            ctl_replica_save(r);
            CORE_INFO("%s replica %d: reused for version %d", svc->row.name, r->fr.row.id, next);
        }
    }
    svc->versions = core_xrealloc(svc->versions, (svc->n_versions + 1) * sizeof(*svc->versions));
    svc->versions[svc->n_versions++] = nv;
    svc->fleet.version = next;
    svc->fleet.spot = core_task_uses_spot(nv.task);
    rc = ctl_scaler_update_version(&svc->fleet.scaler, next, &sp, mode, core_now(), err);
    if (rc < 0)
        CORE_WARN("%s: autoscaler update: %s", svc->row.name, err && *err ? *err : "?");
    free(*err);
    *err = NULL;
    ctl_service_save_meta(svc);
    svc->next_decision = core_now();
    ctl_service_update_status(svc);
    *version = next;
    CORE_INFO("%s: updated to version %d (%s)", svc->row.name, next, ctl_update_mode_name(mode));
    return 0;
fail:
    version_clear(&nv);
    return rc < 0 ? rc : CORE_ESPEC;
}

/* Old versions nobody runs any more are forgotten (the reference does the same). */
void ctl_service_prune_versions(ctl_service_t *svc)
{
    int minv = ctl_service_latest(svc) ? ctl_service_latest(svc)->row.version : 0;
    size_t k = 0;

    CTL_FOR_EACH_REPLICA(svc, r)
    if (r->fr.row.version < minv)
        minv = r->fr.row.version;
    while (k + 1 < svc->n_versions && svc->versions[k].row.version < minv)
        k++;
    if (k == 0)
        return;
    for (size_t i = 0; i < k; i++)
        version_clear(&svc->versions[i]);
    memmove(svc->versions, svc->versions + k, (svc->n_versions - k) * sizeof(*svc->versions));
    svc->n_versions -= k;
    ctl_store_delete_versions_below(svc->s->store, svc->row.name, minv);
}

char *ctl_serve_endpoint(ctl_serve_t *s, ctl_service_t *svc)
{
    ctl_version_t *v = ctl_service_latest(svc);
    /* The seed shows a plain endpoint as HOST:PORT; one that takes only TLS
     * says so, as the reference does with https://. */
    int tls = v && v->task && v->task->service && v->task->service->tls_certfile;

    return core_xasprintf("%s%s:%d", tls ? "https://" : "", s->host_ip, svc->row.lb_port);
}

static cJSON *replica_json(ctl_replica_t *r)
{
    cJSON *o = cJSON_CreateObject();
    ctl_replica_status_t st = ctl_replica_row_status(&r->fr.row);

    cJSON_AddNumberToObject(o, "replica_id", r->fr.row.id);
    cJSON_AddNumberToObject(o, "version", r->fr.row.version);
    cJSON_AddStringToObject(o, "status", ctl_replica_status_name(st));
    if (r->fr.row.ip[0] &&
        (st == CTL_REPLICA_READY || st == CTL_REPLICA_NOT_READY || st == CTL_REPLICA_STARTING)) {
        char *u = core_xasprintf("http://%s:%d", r->fr.row.ip,
                                 r->fr.row.replica_port + r->fr.row.port_offset);

        cJSON_AddStringToObject(o, "endpoint", u);
        free(u);
    } else {
        cJSON_AddNullToObject(o, "endpoint");
    }
    cJSON_AddNumberToObject(o, "launched_at", r->fr.row.launched_at);
    cJSON_AddStringToObject(o, "resources", r->fr.row.resources);
    cJSON_AddBoolToObject(o, "is_spot", r->fr.row.is_spot);
    cJSON_AddNumberToObject(o, "price", r->fr.row.price); /* dollars per hour */
    cJSON_AddStringToObject(o, "cloud", r->fr.row.cloud[0] ? r->fr.row.cloud : r->fr.row.loc.cloud);
    cJSON_AddStringToObject(o, "region",
                            r->fr.row.region[0] ? r->fr.row.region : r->fr.row.loc.region);
    cJSON_AddStringToObject(o, "zone", r->fr.row.zone[0] ? r->fr.row.zone : r->fr.row.loc.zone);
    cJSON_AddStringToObject(o, "instance_id", r->fr.row.instance_id);
    cJSON_AddStringToObject(o, "ip", r->fr.row.ip);
    if (r->fr.preempt_at > 0) /* under a preemption notice */
        cJSON_AddNumberToObject(o, "preempt_at", r->fr.preempt_at);
    return o;
}

cJSON *ctl_serve_service_json(ctl_serve_t *s, ctl_service_t *svc)
{
    cJSON *o = cJSON_CreateObject(), *av, *reps;
    ctl_version_t *v = ctl_service_latest(svc);
    char *ep = ctl_serve_endpoint(s, svc), *repr;
    int ready = 0, total = 0;

    cJSON_AddStringToObject(o, "name", svc->row.name);
    cJSON_AddStringToObject(o, "status", ctl_service_status_name(svc->row.status));
    if (svc->row.uptime > 0)
        cJSON_AddNumberToObject(o, "uptime", svc->row.uptime);
    else
        cJSON_AddNullToObject(o, "uptime");
    cJSON_AddNumberToObject(o, "version", v ? v->row.version : 0);
    av = cJSON_AddArrayToObject(o, "active_versions");
    for (size_t i = 0; i < svc->row.n_active; i++)
        cJSON_AddItemToArray(av, cJSON_CreateNumber(svc->row.active_versions[i]));
    cJSON_AddStringToObject(o, "endpoint", ep);
    free(ep);
    cJSON_AddNumberToObject(o, "lb_port", svc->row.lb_port);
    if (svc->row.lb_admin_port > 0) {
        /* Scraped with the same bearer token as the controller's API. */
        char *u = core_xasprintf("http://127.0.0.1:%d/metrics", svc->row.lb_admin_port);

        cJSON_AddStringToObject(o, "lb_metrics_url", u);
        free(u);
    } else {
        cJSON_AddNullToObject(o, "lb_metrics_url");
    }
    cJSON_AddStringToObject(o, "load_balancing_policy", svc->row.lb_policy);
    repr = v && v->task ? core_service_repr(v->task->service) : NULL;
    if (repr) {
        /* The "Replica autoscaling policy:" line of the repr. */
        char *line = strstr(repr, "Replica autoscaling policy:");

        if (line) {
            char *val = line + strlen("Replica autoscaling policy:"), *nl;

            while (*val == ' ')
                val++;
            nl = strchr(val, '\n');
            if (nl)
                *nl = '\0';
            cJSON_AddStringToObject(o, "autoscaling_policy", val);
        } else {
            cJSON_AddStringToObject(o, "autoscaling_policy", "");
        }
        free(repr);
    } else {
        cJSON_AddStringToObject(o, "autoscaling_policy", "");
    }
    cJSON_AddStringToObject(o, "requested_resources", svc->row.requested_resources);
    cJSON_AddNumberToObject(o, "target_num_replicas",
                            svc->fleet.scaler_ok ? ctl_scaler_final_target(&svc->fleet.scaler) : 0);
    reps = cJSON_AddArrayToObject(o, "replicas");
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        ctl_replica_status_t st = ctl_replica_row_status(&r->fr.row);

        ready += st == CTL_REPLICA_READY;
        total += !ctl_replica_status_is_failed(st);
        cJSON_AddItemToArray(reps, replica_json(r));
    }
    cJSON_AddNumberToObject(o, "ready", ready);
    cJSON_AddNumberToObject(o, "total", total);
    return o;
}

int ctl_serve_load_services(ctl_serve_t *s)
{
    ctl_service_row_t *rows = NULL;
    size_t n = 0;
    int rc = ctl_store_list_services(s->store, &rows, &n);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        ctl_service_t *svc = core_xcalloc(1, sizeof(*svc));
        ctl_version_row_t *vr = NULL;
        ctl_replica_row_t *rr = NULL;
        size_t nv = 0, nr = 0;
        char *sj = NULL, *pj = NULL;
        int next_id;

        svc->row = rows[i];
        svc->s = s;
        ctl_store_list_versions(s->store, svc->row.name, &vr, &nv);
        svc->versions = core_xcalloc(nv ? nv : 1, sizeof(*svc->versions));
        for (size_t k = 0; k < nv; k++) {
            char *err = NULL;

            svc->versions[k].row = vr[k];
            if (version_load(&svc->versions[k], &err) < 0) {
                CORE_ERROR("%s: version %d: %s", svc->row.name, vr[k].version, err ? err : "?");
                free(err);
            }
        }
        free(vr);
        svc->n_versions = nv;
        ctl_store_get_meta(s->store, svc->row.name, &next_id, &sj, &pj);
        if (service_init_runtime(s, svc, sj, pj) < 0 &&
            svc->row.status != CTL_SERVICE_SHUTTING_DOWN) {
            CORE_ERROR("%s: cannot recover the service; it will be shut down", svc->row.name);
            svc->row.status = CTL_SERVICE_SHUTTING_DOWN;
        }
        free(sj);
        free(pj);
        ctl_store_list_replicas(s->store, svc->row.name, &rr, &nr);
        for (size_t k = 0; k < nr; k++) {
            ctl_replica_t *r = (ctl_replica_t *)ctl_fleet_add(&svc->fleet, &rr[k]);

            r->svc = svc;
            ctl_fleet_recover(&svc->fleet, &r->fr, core_now());
            if (r->fr.row.f.launch == CTL_PROC_SUCCEEDED)
                r->next_job_poll = core_now() + 1;
            CORE_INFO("%s replica %d: recovered as %s", svc->row.name, r->fr.row.id,
                      ctl_replica_status_name(ctl_replica_row_status(&r->fr.row)));
        }
        free(rr);
        ctl_service_save_fleet(svc);
        /* A restart must not reset uptime or status (reference §9). The
         * service shows its last status until the first probe round. */
        svc->probed_once = svc->row.status != CTL_SERVICE_CONTROLLER_INIT;
        svc->next_probe = core_now();
        svc->next_decision =
            core_now() + (svc->fleet.scaler_ok ? ctl_scaler_next_interval(&svc->fleet.scaler) : 5);
        service_link(s, svc);
        CORE_INFO("%s: recovered (%s, %zu version(s))", svc->row.name,
                  ctl_service_status_name(svc->row.status), svc->n_versions);
        if (ctl_service_going_down(svc))
            ctl_serve_down(s, svc, svc->row.purge);
    }
    free(rows);
    return 0;
}

bool ctl_serve_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= CTL_SVC_NAME_MAX)
        return false;
    if (!islower((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];

        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-'))
            return false;
    }
    return name[n - 1] != '-';
}
