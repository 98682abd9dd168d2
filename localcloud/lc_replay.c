#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "lc.h"

/*
 * Trace replay: each file of a trace folder drives one zone's spot
 * capacity, tick by tick (gap_seconds / speed of wall time per tick). The
 * arithmetic is in lc_market.c; this file owns the timer and applies the
 * values. The replay (folder, speed, zones, start) is persisted so that a
 * restarted daemon resumes it where the clock says it is.
 */

#define TRACE_MAX_BYTES (64u << 20)
#define TRACE_MAX_FILES 64

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int collect_zone(const char *cloud, const char *region, const char *zone, void *arg)
{
    struct {
        char **v;
        size_t n, cap;
    } *acc = arg;
    if (acc->n == acc->cap) {
        acc->cap = acc->cap ? acc->cap * 2 : 16;
        acc->v = core_xrealloc(acc->v, acc->cap * sizeof(char *));
    }
    acc->v[acc->n++] = core_xstrdup(zone);
    return 0;
}

static void apply_tick(lc_daemon_t *d, int force);

static void on_replay_timer(uv_timer_t *t)
{
    lc_daemon_t *d = t->data;
    apply_tick(d, 0);
}

static void free_traces(lc_replay_t *r)
{
    for (size_t i = 0; i < r->ntraces; i++)
        lc_trace_free(&r->traces[i]);
    free(r->traces);
    r->traces = NULL;
    r->ntraces = 0;
}

/* Sets every mapped zone to its value at the current tick and re-arms the timer. */
static void apply_tick(lc_daemon_t *d, int force)
{
    lc_replay_t *r = &d->replay;
    if (!r->active)
        return;
    double now = core_now();
    double next_at = INFINITY;
    int any_left = 0;
    long max_tick = 0;
    for (size_t i = 0; i < r->ntraces; i++) {
        lc_trace_t *t = &r->traces[i];
        double next;
        long tick = lc_trace_tick(r->start, now, t->gap_seconds, r->speed, &next);
        if (tick > max_tick)
            max_tick = tick;
        long idx = tick < (long)t->n ? tick : (long)t->n - 1;
        if (tick < (long)t->n - 1) {
            any_left = 1;
            if (next < next_at)
                next_at = next;
        }
        long cap = t->data[idx];
        if (force || lc_market_capacity(&d->market, t->zone) != cap) {
            lc_market_set(&d->market, t->zone, cap);
            lc_store_put_capacity(d, t->zone, cap);
            size_t n = lc_inst_enforce(d, t->zone, NULL, NULL);
            CORE_DEBUG("replay tick %ld: %s capacity %ld (%zu preempted)", tick, t->zone, cap, n);
            if (n)
                CORE_INFO("replay tick %ld: %s capacity %ld, preempted %zu", tick, t->zone, cap, n);
        }
    }
    r->tick = max_tick;
    if (!any_left) {
        CORE_INFO("replay of %s finished after %ld ticks; capacities stay at the last values",
                  r->dir, r->ticks);
        r->active = 0;
        uv_timer_stop(&r->timer);
        lc_store_meta_set(d, "replay", "");
        return;
    }
    double ms = ceil((next_at - now) * 1000.0);
    if (ms < 1)
        ms = 1;
    uv_timer_start(&r->timer, on_replay_timer, (uint64_t)ms, 0);
}

static int replay_load(lc_daemon_t *d, const char *dir, double speed, char *const *zones, size_t nz,
                       double start, cJSON *reply, char **err)
{
    DIR *dh = opendir(dir);
    char **files = NULL;
    size_t nfiles = 0;
    char **cat = NULL;
    size_t ncat = 0;
    char(*map)[40] = NULL;
    lc_trace_t *traces = NULL;
    size_t ntr = 0;
    int rc = -EINVAL;
    if (!dh) {
        *err = core_xasprintf("cannot open trace folder %s: %s", dir, strerror(errno));
        return -EINVAL;
    }
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.')
            continue;
        if (nfiles == TRACE_MAX_FILES)
            break;
        files = core_xrealloc(files, (nfiles + 1) * sizeof(char *));
        files[nfiles++] = core_xstrdup(de->d_name);
    }
    closedir(dh);
    if (nfiles == 0) {
        *err = core_xasprintf("no <zone>_<gpu>_<count>.json files in %s", dir);
        goto out;
    }
    qsort(files, nfiles, sizeof(char *), cmp_str);

    if (d->catalog) {
        struct {
            char **v;
            size_t n, cap;
        } acc = {0};
        core_catalog_each_zone(d->catalog, collect_zone, &acc);
        cat = acc.v;
        ncat = acc.n;
        for (size_t i = 0; i < nz; i++) {
            int found = 0;
            for (size_t k = 0; k < ncat && !found; k++)
                found = strcmp(cat[k], zones[i]) == 0;
            if (!found) {
                *err = core_xasprintf("zone \"%s\" is not in the catalog", zones[i]);
                goto out;
            }
        }
    }
    for (size_t i = 0; i < nz; i++) {
        if (strlen(zones[i]) >= 40 || !zones[i][0]) {
            *err = core_xasprintf("bad zone name \"%s\"", zones[i]);
            goto out;
        }
    }
    map = core_xcalloc(nfiles, sizeof(*map));
    size_t mapped = lc_trace_map(files, nfiles, zones, nz, cat, ncat, map);
    if (mapped == 0) {
        *err = core_xasprintf("no trace file of %s maps to a zone: pass \"zones\" (catalog zones "
                              "to drive, in the files' sorted order)",
                              dir);
        goto out;
    }
    traces = core_xcalloc(mapped, sizeof(*traces));
    long ticks = 0;
    cJSON *arr = reply ? cJSON_AddArrayToObject(reply, "mapping") : NULL;
    for (size_t i = 0; i < nfiles; i++) {
        if (!map[i][0])
            continue;
        char *path = core_xasprintf("%s/%s", dir, files[i]);
        char *text = NULL;
        size_t len = 0;
        int r = core_read_file(path, TRACE_MAX_BYTES, &text, &len);
        free(path);
        if (r < 0) {
            *err = core_xasprintf("cannot read %s/%s: %s", dir, files[i], strerror(-r));
            goto out;
        }
        char *perr = NULL;
        r = lc_trace_parse(text, &traces[ntr], &perr);
        free(text);
        if (r < 0) {
            *err = core_xasprintf("%s/%s: %s", dir, files[i], perr ? perr : "invalid");
            free(perr);
            goto out;
        }
        snprintf(traces[ntr].file, sizeof(traces[ntr].file), "%s", files[i]);
        snprintf(traces[ntr].zone, sizeof(traces[ntr].zone), "%s", map[i]);
        if ((long)traces[ntr].n > ticks)
            ticks = (long)traces[ntr].n;
        if (arr) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "file", files[i]);
            cJSON_AddStringToObject(m, "zone", map[i]);
            cJSON_AddNumberToObject(m, "gap_seconds", traces[ntr].gap_seconds);
            cJSON_AddNumberToObject(m, "ticks", (double)traces[ntr].n);
            cJSON_AddNumberToObject(m, "tick_seconds", traces[ntr].gap_seconds / speed);
            cJSON_AddItemToArray(arr, m);
        }
        ntr++;
    }

    lc_replay_stop(d);
    lc_replay_t *rp = &d->replay;
    rp->active = 1;
    snprintf(rp->dir, sizeof(rp->dir), "%s", dir);
    rp->speed = speed;
    rp->start = start;
    rp->tick = 0;
    rp->ticks = ticks;
    rp->traces = traces;
    rp->ntraces = ntr;
    traces = NULL;
    ntr = 0;

    cJSON *saved = cJSON_CreateObject();
    cJSON_AddStringToObject(saved, "dir", dir);
    cJSON_AddNumberToObject(saved, "speed", speed);
    cJSON_AddNumberToObject(saved, "start", start);
    cJSON *zs = cJSON_AddArrayToObject(saved, "zones");
    for (size_t i = 0; i < nz; i++)
        cJSON_AddItemToArray(zs, cJSON_CreateString(zones[i]));
    char *txt = cJSON_PrintUnformatted(saved);
    lc_store_meta_set(d, "replay", txt);
    free(txt);
    cJSON_Delete(saved);
    CORE_INFO("replaying %s at speed %g over %zu zone(s), %ld ticks", dir, speed, rp->ntraces,
              ticks);
    apply_tick(d, 1);
    rc = 0;
out:
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    for (size_t i = 0; i < ncat; i++)
        free(cat[i]);
    free(cat);
    free(map);
    for (size_t i = 0; i < ntr; i++)
        lc_trace_free(&traces[i]);
    free(traces);
    return rc;
}

int lc_replay_start(lc_daemon_t *d, const char *dir, double speed, char *const *zones, size_t nz,
                    cJSON *reply, char **err)
{
    if (!(speed > 0) || !isfinite(speed)) {
        *err = core_xstrdup("speed must be a positive number");
        return -EINVAL;
    }
    return replay_load(d, dir, speed, zones, nz, core_now(), reply, err);
}

/* Resumes a replay persisted by a previous daemon process. */
int lc_replay_resume(lc_daemon_t *d)
{
    char buf[8192];
    if (lc_store_meta_get(d, "replay", buf, sizeof(buf)) < 0 || !buf[0])
        return 0;
    cJSON *doc = cJSON_Parse(buf);
    if (!doc)
        return 0;
    cJSON *dir = cJSON_GetObjectItemCaseSensitive(doc, "dir");
    cJSON *speed = cJSON_GetObjectItemCaseSensitive(doc, "speed");
    cJSON *start = cJSON_GetObjectItemCaseSensitive(doc, "start");
    cJSON *zs = cJSON_GetObjectItemCaseSensitive(doc, "zones");
    int rc = 0;
    if (cJSON_IsString(dir) && cJSON_IsNumber(speed) && cJSON_IsNumber(start) &&
        speed->valuedouble > 0) {
        size_t nz = cJSON_IsArray(zs) ? (size_t)cJSON_GetArraySize(zs) : 0;
        char **zones = core_xcalloc(nz + 1, sizeof(char *));
        size_t k = 0;
        cJSON *z;
        cJSON_ArrayForEach(z, zs)
        {
            if (cJSON_IsString(z))
                zones[k++] = z->valuestring;
        }
        char *err = NULL;
        rc = replay_load(d, dir->valuestring, speed->valuedouble, zones, k, start->valuedouble,
                         NULL, &err);
        if (rc < 0)
            CORE_WARN("cannot resume replay: %s", err ? err : "?");
        else
            CORE_INFO("resumed replay of %s", dir->valuestring);
        free(err);
        free(zones);
    }
    cJSON_Delete(doc);
    return rc;
}

void lc_replay_stop(lc_daemon_t *d)
{
    lc_replay_t *r = &d->replay;
    if (r->active)
        CORE_INFO("replay of %s stopped at tick %ld", r->dir, r->tick);
    r->active = 0;
    uv_timer_stop(&r->timer);
    free_traces(r);
    lc_store_meta_set(d, "replay", "");
}

cJSON *lc_replay_status(lc_daemon_t *d)
{
    lc_replay_t *r = &d->replay;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "active", r->active);
    if (!r->active)
        return o;
    cJSON_AddStringToObject(o, "dir", r->dir);
    cJSON_AddNumberToObject(o, "speed", r->speed);
    cJSON_AddNumberToObject(o, "start", r->start);
    cJSON_AddNumberToObject(o, "tick", (double)r->tick);
    cJSON_AddNumberToObject(o, "ticks", (double)r->ticks);
    cJSON *arr = cJSON_AddArrayToObject(o, "zones");
    for (size_t i = 0; i < r->ntraces; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "file", r->traces[i].file);
        cJSON_AddStringToObject(m, "zone", r->traces[i].zone);
        cJSON_AddNumberToObject(m, "capacity", lc_market_capacity(&d->market, r->traces[i].zone));
        cJSON_AddItemToArray(arr, m);
    }
    return o;
}
