#include "ctl_replica.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

#define XX(name) #name,
static const char *const replica_names[] = {CTL_REPLICA_STATUS_MAP(XX)};
static const char *const proc_names[] = {CTL_PROC_STATUS_MAP(XX)};
static const char *const service_names[] = {CTL_SERVICE_STATUS_MAP(XX)};
#undef XX

const char *ctl_replica_status_name(ctl_replica_status_t s)
{
    return core_enum_name(replica_names, CORE_ARRAY_SIZE(replica_names), (int)s, "?");
}

int ctl_replica_status_parse(const char *name, ctl_replica_status_t *out)
{
    int v = core_enum_value(replica_names, CORE_ARRAY_SIZE(replica_names), name);
    if (v < 0)
        return CORE_ENOTFOUND;
    *out = (ctl_replica_status_t)v;
    return 0;
}

bool ctl_replica_status_is_failed(ctl_replica_status_t s)
{
    switch (s) {
    case CTL_REPLICA_FAILED:
    case CTL_REPLICA_FAILED_CLEANUP:
    case CTL_REPLICA_FAILED_INITIAL_DELAY:
    case CTL_REPLICA_FAILED_PROBING:
    case CTL_REPLICA_FAILED_PROVISION:
    case CTL_REPLICA_UNKNOWN:
        return true;
    default:
        return false;
    }
}

bool ctl_replica_status_is_terminal(ctl_replica_status_t s)
{
    return s == CTL_REPLICA_SHUTTING_DOWN || s == CTL_REPLICA_PREEMPTED ||
           ctl_replica_status_is_failed(s);
}

int ctl_replica_status_scale_down_rank(ctl_replica_status_t s)
{
    switch (s) {
    case CTL_REPLICA_PENDING:
        return 0;
    case CTL_REPLICA_PROVISIONING:
        return 1;
    case CTL_REPLICA_STARTING:
        return 2;
    case CTL_REPLICA_NOT_READY:
        return 3;
    case CTL_REPLICA_READY:
        return 4;
    default:
        return -1;
    }
}

const char *ctl_proc_status_name(ctl_proc_status_t s)
{
    return core_enum_name(proc_names, CORE_ARRAY_SIZE(proc_names), (int)s, "?");
}

int ctl_proc_status_parse(const char *name, ctl_proc_status_t *out)
{
    int v = core_enum_value(proc_names, CORE_ARRAY_SIZE(proc_names), name);
    if (v < 0)
        return CORE_ENOTFOUND;
    *out = (ctl_proc_status_t)v;
    return 0;
}

void ctl_replica_facts_init(ctl_replica_facts_t *f)
{
    memset(f, 0, sizeof(*f));
    f->launch = CTL_PROC_NONE;
    f->down = CTL_PROC_NONE;
    f->first_ready_time = CTL_READY_NEVER;
}

static bool never_ready(double t)
{
    return t < CTL_READY_DELAY_EXCEEDED; /* CTL_READY_NEVER or anything below -1 */
}

ctl_replica_status_t ctl_replica_derive_status(const ctl_replica_facts_t *f)
{
    if (f->launch == CTL_PROC_NONE || f->launch == CTL_PROC_SCHEDULED)
        return CTL_REPLICA_PENDING;
    if (f->launch == CTL_PROC_RUNNING) {
        if (f->down == CTL_PROC_FAILED)
            return CTL_REPLICA_FAILED_CLEANUP;
        if (f->down == CTL_PROC_SUCCEEDED)
            return CTL_REPLICA_UNKNOWN;
        return CTL_REPLICA_PROVISIONING;
    }
    if (f->launch == CTL_PROC_INTERRUPTED)
        return CTL_REPLICA_SHUTTING_DOWN;
    if (f->down != CTL_PROC_NONE) {
        if (f->preempted)
            return CTL_REPLICA_PREEMPTED;
        if (f->down == CTL_PROC_SCHEDULED || f->down == CTL_PROC_RUNNING)
            return CTL_REPLICA_SHUTTING_DOWN;
        if (f->down == CTL_PROC_FAILED)
            return CTL_REPLICA_FAILED_CLEANUP;
        if (f->user_app_failed)
            return CTL_REPLICA_FAILED;
        if (f->launch == CTL_PROC_FAILED)
            return CTL_REPLICA_FAILED_PROVISION;
        if (never_ready(f->first_ready_time))
            return CTL_REPLICA_SHUTTING_DOWN;
        if (f->first_ready_time < 0)
            return CTL_REPLICA_FAILED_INITIAL_DELAY;
        if (!f->service_ready_now)
            return CTL_REPLICA_FAILED_PROBING;
        return CTL_REPLICA_UNKNOWN;
    }
    /* A failed launch should already have a down worker: a possible leak. */
    if (f->launch == CTL_PROC_FAILED)
        return CTL_REPLICA_FAILED_CLEANUP;
    if (f->user_app_failed)
        return CTL_REPLICA_FAILED_CLEANUP;
    if (f->service_ready_now)
        return CTL_REPLICA_READY;
    if (f->first_ready_time >= 0)
        return CTL_REPLICA_NOT_READY;
    return CTL_REPLICA_STARTING;
}

bool ctl_replica_should_track(const ctl_replica_facts_t *f)
{
    return f->launch == CTL_PROC_SUCCEEDED && f->down == CTL_PROC_NONE && !f->user_app_failed &&
           !f->preempted && !f->purged;
}

bool ctl_replica_unrecoverable_failure(const ctl_replica_facts_t *f)
{
    if (!ctl_replica_status_is_terminal(ctl_replica_derive_status(f)))
        return false;
    if (!never_ready(f->first_ready_time))
        return f->first_ready_time < 0; /* -1: the initial delay ran out */
    /* Launch failures are capacity problems, not a broken app: not counted. */
    return f->user_app_failed;
}

bool ctl_replica_remove_after_down(const ctl_replica_facts_t *f, int version, int latest_version)
{
    return f->is_scale_down || version != latest_version || f->purged ||
           f->failed_spot_availability;
}

void ctl_probe_params_default(ctl_probe_params_t *p)
{
    p->initial_delay_s = CTL_DEFAULT_INITIAL_DELAY_S;
    p->consecutive_failure_s = CTL_DEFAULT_CONSECUTIVE_FAILURE_S;
}

void ctl_probe_state_init(ctl_probe_state_t *s)
{
    s->first_not_ready_time = -1;
    s->first_fail_time = -1;
    s->last_fail_time = -1;
    s->n_fail = 0;
}

ctl_probe_action_t ctl_replica_record_probe(ctl_replica_facts_t *f, ctl_probe_state_t *s,
                                            const ctl_probe_params_t *p, bool ok, double t)
{
    if (ok) {
        bool was_ready = f->service_ready_now;

        if (never_ready(f->first_ready_time))
            f->first_ready_time = t;
        f->service_ready_now = true;
        s->n_fail = 0;
        s->first_fail_time = -1;
        s->last_fail_time = -1;
        return was_ready ? CTL_PROBE_NOTHING : CTL_PROBE_MARK_READY;
    }
    f->service_ready_now = false;
    if (s->first_not_ready_time < 0)
        s->first_not_ready_time = t;
    if (f->first_ready_time >= 0) {
        if (s->n_fail++ == 0)
            s->first_fail_time = t;
        s->last_fail_time = t;
        if (s->last_fail_time - s->first_fail_time >= p->consecutive_failure_s)
            return CTL_PROBE_TERMINATE_FAILED_PROBING;
        return CTL_PROBE_MARK_NOT_READY;
    }
    if (never_ready(f->first_ready_time) && t - s->first_not_ready_time > p->initial_delay_s) {
        f->first_ready_time = CTL_READY_DELAY_EXCEEDED;
        return CTL_PROBE_TERMINATE_FAILED_INITIAL_DELAY;
    }
    return CTL_PROBE_NOTHING;
}

void ctl_replica_info_fill(ctl_replica_info_t *r, int id, int version, bool is_spot,
                           const ctl_replica_facts_t *f)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->version = version;
    r->is_spot = is_spot;
    r->status = ctl_replica_derive_status(f);
    r->unrecoverable = ctl_replica_unrecoverable_failure(f);
}

static int scale_down_cmp(const void *a, const void *b)
{
    const ctl_replica_info_t *x = *(const ctl_replica_info_t *const *)a;
    const ctl_replica_info_t *y = *(const ctl_replica_info_t *const *)b;
    int rx = ctl_replica_status_scale_down_rank(x->status);
    int ry = ctl_replica_status_scale_down_rank(y->status);

    if (rx < 0)
        rx = 100;
    if (ry < 0)
        ry = 100;
    if (rx != ry)
        return rx < ry ? -1 : 1;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    /* -replica_id ascending: the newest-launched replica goes first. */
    if (x->id != y->id)
        return x->id > y->id ? -1 : 1;
    return 0;
}

size_t ctl_replica_select_scale_down(const ctl_replica_info_t *cands, size_t n, size_t k,
                                     int *out_ids)
{
    const ctl_replica_info_t **v;

    if (k > n)
        k = n;
    if (k == 0)
        return 0;
    v = core_xmalloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = &cands[i];
    qsort(v, n, sizeof(*v), scale_down_cmp);
    for (size_t i = 0; i < k; i++)
        out_ids[i] = v[i]->id;
    free(v);
    return k;
}

const char *ctl_service_status_name(ctl_service_status_t s)
{
    return core_enum_name(service_names, CORE_ARRAY_SIZE(service_names), (int)s, "?");
}

int ctl_service_status_parse(const char *name, ctl_service_status_t *out)
{
    int v = core_enum_value(service_names, CORE_ARRAY_SIZE(service_names), name);
    if (v < 0)
        return CORE_ENOTFOUND;
    *out = (ctl_service_status_t)v;
    return 0;
}

ctl_service_status_t ctl_service_status_from_statuses(const ctl_replica_status_t *st, size_t n)
{
    bool failed = false;

    for (size_t i = 0; i < n; i++) {
        if (st[i] == CTL_REPLICA_READY)
            return CTL_SERVICE_READY;
        failed |= ctl_replica_status_is_failed(st[i]);
    }
    if (failed)
        return CTL_SERVICE_FAILED;
    return n == 0 ? CTL_SERVICE_NO_REPLICA : CTL_SERVICE_REPLICA_INIT;
}

ctl_service_status_t ctl_service_status_from_replicas(const ctl_replica_info_t *r, size_t n,
                                                      bool ready_only)
{
    ctl_replica_status_t *st = core_xmalloc((n ? n : 1) * sizeof(*st));
    ctl_service_status_t res;
    size_t m = 0;

    for (size_t i = 0; i < n; i++)
        if (!ready_only || r[i].status == CTL_REPLICA_READY)
            st[m++] = r[i].status;
    res = ctl_service_status_from_statuses(st, m);
    free(st);
    return res;
}

const char *ctl_update_mode_name(ctl_update_mode_t m)
{
    return m == CTL_UPDATE_BLUE_GREEN ? "blue_green" : "rolling";
}

int ctl_update_mode_parse(const char *name, ctl_update_mode_t *out)
{
    if (strcmp(name, "rolling") == 0)
        *out = CTL_UPDATE_ROLLING;
    else if (strcmp(name, "blue_green") == 0)
        *out = CTL_UPDATE_BLUE_GREEN;
    else
        return CORE_ENOTFOUND;
    return 0;
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;

    return (x > y) - (x < y);
}

static int min_replicas_of(int version, const ctl_version_min_t *mins, size_t n_mins)
{
    for (size_t i = 0; i < n_mins; i++)
        if (mins[i].version == version)
            return mins[i].min_replicas;
    return 1;
}

size_t ctl_active_versions(const ctl_replica_info_t *r, size_t n, ctl_update_mode_t mode,
                           const ctl_version_min_t *mins, size_t n_mins, int *out, size_t cap)
{
    int *ver = core_xmalloc((n ? n : 1) * sizeof(*ver));
    int *cnt = core_xmalloc((n ? n : 1) * sizeof(*cnt));
    size_t nv = 0, nout = 0;

    /* Distinct READY versions, ascending, with their READY counts. */
    for (size_t i = 0; i < n; i++) {
        size_t j;

        if (r[i].status != CTL_REPLICA_READY)
            continue;
        for (j = 0; j < nv && ver[j] != r[i].version; j++)
            ;
        if (j == nv)
            ver[nv++] = r[i].version;
    }
    qsort(ver, nv, sizeof(*ver), int_cmp);
    for (size_t j = 0; j < nv; j++) {
        cnt[j] = 0;
        for (size_t i = 0; i < n; i++)
            cnt[j] += r[i].status == CTL_REPLICA_READY && r[i].version == ver[j];
    }
    if (mode == CTL_UPDATE_ROLLING) {
        for (size_t j = 0; j < nv && nout < cap; j++)
            out[nout++] = ver[j];
    } else if (nv > 0 && cap > 0) {
        out[nout++] = ver[0]; /* nobody qualifies: the oldest version with a ready replica */
        for (size_t j = nv; j-- > 0;) {
            if (cnt[j] >= min_replicas_of(ver[j], mins, n_mins)) {
                out[0] = ver[j];
                break;
            }
        }
    }
    free(ver);
    free(cnt);
    return nout;
}
