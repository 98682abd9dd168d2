#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "lc.h"

/*
 * Instance lifecycle. An instance moves
 *
 *   PENDING --setup--> (network + agent) --delay--> --health--> RUNNING
 *      |                                                          |
 *      +-------------- stop (TERMINATED | PREEMPTED | FAILED) ----+
 *
 * Each blocking step (namespace setup, waiting for the agent's /health,
 * teardown) runs in the thread pool on a snapshot of the instance; results
 * are applied here on the loop thread. At most one job runs per instance:
 * a stop that arrives while a job runs is remembered (want_teardown) and
 * carried out when the job returns. The state changes at once, though, so
 * describe answers PREEMPTED the moment the market decides it.
 */

enum job_kind {
    JOB_SETUP = 0,
    JOB_HEALTH,
    JOB_TEARDOWN,
};

typedef struct job {
    uv_work_t req;
    lc_daemon_t *d;
    lc_inst_t *in;
    enum job_kind kind;
    lc_inst_t snap; /* what the worker reads and writes */
    atomic_int cancel;
    int rc;
    char err[256];
} job_t;

enum {
    PHASE_IDLE = 0,
    PHASE_SETUP,
    PHASE_DELAY,
    PHASE_HEALTH,
    PHASE_TEARDOWN,
};

#define PHASE(in) ((in)->busy)

static void start_job(lc_daemon_t *d, lc_inst_t *in, enum job_kind kind);
static void start_teardown(lc_daemon_t *d, lc_inst_t *in);

int lc_inst_alive(const lc_inst_t *in)
{
    return in->super.state == CORE_INST_PENDING || in->super.state == CORE_INST_RUNNING;
}

lc_inst_t *lc_inst_find(lc_daemon_t *d, const char *id)
{
    for (lc_inst_t *in = d->insts; in; in = in->next)
        if (strcmp(in->super.id, id) == 0)
            return in;
    return NULL;
}

size_t lc_inst_spot_in_use(lc_daemon_t *d, const char *zone)
{
    size_t n = 0;
    for (lc_inst_t *in = d->insts; in; in = in->next)
        if (in->super.spot && lc_inst_alive(in) && strcmp(in->super.zone, zone) == 0)
            n++;
    return n;
}

void lc_inst_to_json(const lc_inst_t *in, cJSON *o, double now)
{
    const core_instance_t *s = &in->super;
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "cloud", s->cloud);
    cJSON_AddStringToObject(o, "region", s->region);
    cJSON_AddStringToObject(o, "zone", s->zone);
    cJSON_AddStringToObject(o, "instance_type", s->instance_type);
    cJSON_AddBoolToObject(o, "spot", s->spot);
    cJSON_AddStringToObject(o, "state", core_inst_state_name(s->state));
    cJSON_AddStringToObject(o, "ip", s->ip);
    cJSON_AddNumberToObject(o, "agent_port", s->agent_port);
    cJSON_AddNumberToObject(o, "port_offset", s->port_offset);
    cJSON_AddNumberToObject(o, "price", s->price);
    cJSON_AddNumberToObject(o, "launched_at", s->launched_at);
    if (in->ended_at > 0)
        cJSON_AddNumberToObject(o, "ended_at", in->ended_at);
    else
        cJSON_AddNullToObject(o, "ended_at");
    double end = in->ended_at > 0 ? in->ended_at : now;
    double secs = end > s->launched_at ? end - s->launched_at : 0;
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "cost", secs * s->price / 3600.0);
    cJSON_AddStringToObject(o, "owner", s->owner);
    cJSON_AddStringToObject(o, "netns", in->netns);
    cJSON_AddNumberToObject(o, "agent_pid", in->agent_pid);
    cJSON_AddStringToObject(o, "reason", in->reason);
    if (in->preempt_at > 0 && lc_inst_alive(in))
        cJSON_AddNumberToObject(o, "preempt_at", in->preempt_at);
}

cJSON *lc_inst_json(const lc_inst_t *in, double now)
{
    cJSON *o = cJSON_CreateObject();
    lc_inst_to_json(in, o, now);
    return o;
}

/* ------------------------------------------------------------ barriers */

static void on_barrier_conn_close(core_http_conn_t *c, void *arg)
{
    lc_barrier_t *b = arg;
    b->conn = NULL;
}

lc_barrier_t *lc_barrier_new(lc_daemon_t *d, core_http_conn_t *conn, int status, cJSON *reply)
{
    lc_barrier_t *b = core_xcalloc(1, sizeof(*b));
    b->pending = 1;
    b->d = d;
    b->conn = conn;
    b->status = status;
    b->reply = reply;
    if (conn)
        core_http_conn_on_close(conn, on_barrier_conn_close, b);
    return b;
}

void lc_barrier_done(lc_barrier_t *b)
{
    if (--b->pending > 0)
        return;
    if (b->exit_after)
        lc_down_cleanup(b->d);
    if (b->conn) {
        core_http_conn_on_close(b->conn, NULL, NULL);
        core_http_respond_json(b->conn, b->status, b->reply);
        b->reply = NULL;
    }
    cJSON_Delete(b->reply);
    if (b->exit_after)
        lc_daemon_stop(b->d);
    free(b);
}

static void add_waiter(lc_inst_t *in, lc_barrier_t *b)
{
    if (!b)
        return;
    lc_waiter_t *w = core_xcalloc(1, sizeof(*w));
    w->b = b;
    b->pending++;
    w->next = in->waiters;
    in->waiters = w;
}

static void release_waiters(lc_inst_t *in)
{
    lc_waiter_t *w = in->waiters;
    in->waiters = NULL;
    while (w) {
        lc_waiter_t *next = w->next;
        lc_barrier_done(w->b);
        free(w);
        w = next;
    }
}

/* --------------------------------------------------------- launch reply */

static void on_launch_conn_close(core_http_conn_t *c, void *arg)
{
    lc_inst_t *in = arg;
    in->launch_conn = NULL;
}

static void reply_launch(lc_daemon_t *d, lc_inst_t *in)
{
    core_http_conn_t *c = in->launch_conn;
    if (!c)
        return;
    in->launch_conn = NULL;
    core_http_conn_on_close(c, NULL, NULL);
    cJSON *doc;
    int status;
    switch (in->super.state) {
    case CORE_INST_RUNNING:
        doc = lc_inst_json(in, core_now());
        status = 200;
        break;
    case CORE_INST_PREEMPTED:
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "error", "no capacity (preempted while provisioning)");
        cJSON_AddStringToObject(doc, "code", "no_capacity");
        cJSON_AddStringToObject(doc, "id", in->super.id);
        status = 409;
        break;
    case CORE_INST_TERMINATED:
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "error", "terminated while provisioning");
        cJSON_AddStringToObject(doc, "code", "terminated");
        cJSON_AddStringToObject(doc, "id", in->super.id);
        status = 409;
        break;
    default:
        doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "error", in->reason[0] ? in->reason : "launch failed");
        cJSON_AddStringToObject(doc, "code", "failed");
        cJSON_AddStringToObject(doc, "id", in->super.id);
        status = 500;
        break;
    }
    core_http_respond_json(c, status, doc);
}

/* ---------------------------------------------------------------- jobs */

static void work_cb(uv_work_t *req)
{
    job_t *j = req->data;
    lc_daemon_t *d = j->d;
    switch (j->kind) {
    case JOB_SETUP:
        j->rc = lc_net_create(&j->snap, j->err, sizeof(j->err));
        if (j->rc == 0) {
            j->rc = lc_net_spawn_agent(d, &j->snap, j->err, sizeof(j->err));
            if (j->rc < 0)
                lc_net_destroy(d, &j->snap);
        }
        break;
    case JOB_HEALTH: {
        /* Bounded: an agent that does not answer in 30 s fails the launch. */
        char *url =
            core_xasprintf("http://%s:%d/health", j->snap.super.ip, j->snap.super.agent_port);
        unsigned long long deadline = core_mono_ms() + 30000;
        j->rc = -ETIMEDOUT;
        while (!atomic_load(&j->cancel) && core_mono_ms() < deadline) {
            core_http_resp_t resp = {0};
            int rc = core_http_call("GET", url, NULL, NULL, 1000, &resp);
            long status = resp.status;
            core_http_resp_free(&resp);
            if (rc == 0 && status == 200) {
                j->rc = 0;
                break;
            }
            if (!lc_net_agent_alive(d, &j->snap, 0)) {
                snprintf(j->err, sizeof(j->err), "agent exited during boot (see agent.log)");
                j->rc = -ECHILD;
                break;
            }
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (j->rc == -ETIMEDOUT)
            snprintf(j->err, sizeof(j->err), "agent did not answer %s within 30 s", url);
        free(url);
        break;
    }
    case JOB_TEARDOWN:
        j->rc = lc_net_destroy(d, &j->snap);
        break;
    }
}

static void on_delay_timer(uv_timer_t *t);

static void after_work_cb(uv_work_t *req, int status)
{
    job_t *j = req->data;
    lc_daemon_t *d = j->d;
    lc_inst_t *in = j->in;
    d->jobs--;
    PHASE(in) = PHASE_IDLE;
    in->job = NULL;
    /* Network facts come back from the worker's snapshot. */
    if (j->kind == JOB_SETUP) {
        memcpy(in->super.ip, j->snap.super.ip, sizeof(in->super.ip));
        in->super.agent_port = j->snap.super.agent_port;
        in->super.port_offset = j->snap.super.port_offset;
        in->agent_pid = j->snap.agent_pid;
        in->agent_sid = j->snap.agent_sid;
        in->netns_ino = j->snap.netns_ino;
    }
    enum job_kind kind = j->kind;
    int rc = j->rc;
    char err[256];
    memcpy(err, j->err, sizeof(err));
    free(j);

    if (kind == JOB_TEARDOWN) {
        in->torn_down = 1;
        lc_store_put(d, in);
        CORE_INFO("%s %s: resources released", in->super.id, core_inst_state_name(in->super.state));
        release_waiters(in);
        return;
    }
    if (rc < 0 && in->super.state == CORE_INST_PENDING) {
        CORE_WARN("%s: launch failed: %s", in->super.id, err);
        snprintf(in->reason, sizeof(in->reason), "%.159s", err);
        in->super.state = CORE_INST_FAILED;
        in->ended_at = core_now();
    }
    lc_store_put(d, in);
    if (in->super.state != CORE_INST_PENDING) {
        reply_launch(d, in);
        start_teardown(d, in);
        return;
    }
    if (kind == JOB_SETUP) {
        double elapsed = core_now() - in->super.launched_at;
        double left = in->delay - elapsed;
        uint64_t ms = left > 0 ? (uint64_t)(left * 1000.0) : 0;
        if (!in->delay_timer_init) {
            uv_timer_init(d->loop, &in->delay_timer);
            in->delay_timer.data = d;
            in->delay_timer_init = 1;
        }
        PHASE(in) = PHASE_DELAY;
        uv_timer_start(&in->delay_timer, on_delay_timer, ms, 0);
        return;
    }
    /* JOB_HEALTH succeeded. */
    in->super.state = CORE_INST_RUNNING;
    lc_store_put(d, in);
    CORE_INFO("%s RUNNING at %s:%d (%s%s, %s)", in->super.id, in->super.ip, in->super.agent_port,
              in->super.spot ? "spot " : "", in->super.zone, in->super.instance_type);
    reply_launch(d, in);
}

static void on_delay_timer(uv_timer_t *t)
{
    lc_daemon_t *d = t->data;
    lc_inst_t *in = (lc_inst_t *)((char *)t - offsetof(lc_inst_t, delay_timer));
    PHASE(in) = PHASE_IDLE;
    if (in->super.state != CORE_INST_PENDING) {
        reply_launch(d, in);
        start_teardown(d, in);
        return;
    }
    start_job(d, in, JOB_HEALTH);
}

static void start_job(lc_daemon_t *d, lc_inst_t *in, enum job_kind kind)
{
    job_t *j = core_xcalloc(1, sizeof(*j));
    j->req.data = j;
    j->d = d;
    j->in = in;
    j->kind = kind;
    j->snap = *in;
    j->snap.next = NULL;
    j->snap.waiters = NULL;
    j->snap.launch_conn = NULL;
    atomic_init(&j->cancel, 0);
    PHASE(in) = kind == JOB_SETUP    ? PHASE_SETUP
                : kind == JOB_HEALTH ? PHASE_HEALTH
                                     : PHASE_TEARDOWN;
    in->want_teardown = 0;
    in->job = j;
    d->jobs++;
    int rc = uv_queue_work(d->loop, &j->req, work_cb, after_work_cb);
    if (rc < 0) {
        /* Only fails on invalid arguments; run it inline rather than lose it. */
        CORE_ERROR("uv_queue_work: %s", uv_strerror(rc));
        work_cb(&j->req);
        after_work_cb(&j->req, 0);
    }
}

static void start_teardown(lc_daemon_t *d, lc_inst_t *in)
{
    start_job(d, in, JOB_TEARDOWN);
}

/* ---------------------------------------------------------------- stop */

void lc_inst_stop(lc_daemon_t *d, lc_inst_t *in, enum core_inst_state state, const char *reason,
                  lc_barrier_t *b)
{
    add_waiter(in, b);
    int changed = 0;
    if (lc_inst_alive(in)) {
        in->super.state = state;
        in->ended_at = core_now();
        snprintf(in->reason, sizeof(in->reason), "%s", reason ? reason : "");
        changed = 1;
        CORE_INFO("%s -> %s%s%s", in->super.id, core_inst_state_name(state),
                  reason && *reason ? ": " : "", reason ? reason : "");
    } else if (state == CORE_INST_TERMINATED && in->super.state != CORE_INST_TERMINATED) {
        in->super.state = CORE_INST_TERMINATED;
        changed = 1;
    }
    if (changed)
        lc_store_put(d, in);

    switch (PHASE(in)) {
    case PHASE_SETUP:
    case PHASE_HEALTH:
    case PHASE_TEARDOWN:
        /* after_work_cb sees the new state and finishes the job. A
         * teardown already under way releases the waiters when done. */
        if (PHASE(in) != PHASE_TEARDOWN)
            in->want_teardown = 1;
        if (PHASE(in) == PHASE_HEALTH && in->job)
            atomic_store(&((job_t *)in->job)->cancel, 1);
        return;
    case PHASE_DELAY:
        uv_timer_stop(&in->delay_timer);
        PHASE(in) = PHASE_IDLE;
        reply_launch(d, in);
        start_teardown(d, in);
        return;
    default:
        break;
    }
    if (in->torn_down) {
        /* Released already (terminating a preempted instance, `cloud down`): only
         * its state changes. Tearing down again would look for the processes of
         * a namespace that is gone, by an inode number the kernel may have
         * given to another namespace since: someone else's host. */
        release_waiters(in);
        return;
    }
    start_teardown(d, in);
}

size_t lc_inst_enforce(lc_daemon_t *d, const char *zone, lc_barrier_t *b, cJSON *victims)
{
    size_t total = 0;
    /* Collect the zones to look at: <zone>, or every zone with live spot instances. */
    char zones[LC_MAX_ZONES][40];
    size_t nz = 0;
    if (zone) {
        snprintf(zones[nz++], 40, "%s", zone);
    } else {
        for (lc_inst_t *in = d->insts; in && nz < LC_MAX_ZONES; in = in->next) {
            if (!in->super.spot || !lc_inst_alive(in))
                continue;
            int seen = 0;
            for (size_t k = 0; k < nz && !seen; k++)
                seen = strcmp(zones[k], in->super.zone) == 0;
            if (!seen)
                snprintf(zones[nz++], 40, "%s", in->super.zone);
        }
    }
    for (size_t z = 0; z < nz; z++) {
        long cap = lc_market_capacity(&d->market, zones[z]);
        if (cap < 0)
            continue;
        size_t n = lc_inst_spot_in_use(d, zones[z]);
        if ((long)n <= cap)
            continue;
        lc_inst_t **arr = core_xmalloc(n * sizeof(*arr));
        const char **ids = core_xmalloc(n * sizeof(*ids));
        size_t *vict = core_xmalloc(n * sizeof(*vict));
        size_t k = 0;
        for (lc_inst_t *in = d->insts; in; in = in->next) {
            if (in->super.spot && lc_inst_alive(in) && strcmp(in->super.zone, zones[z]) == 0) {
                arr[k] = in;
                ids[k] = in->super.id;
                k++;
            }
        }
        size_t nv = lc_market_pick_victims(&d->market, ids, n, cap, vict);
        char reason[160];
        snprintf(reason, sizeof(reason), "spot capacity of %s dropped to %ld", zones[z], cap);
        for (size_t i = 0; i < nv; i++) {
            if (victims)
                cJSON_AddItemToArray(victims, cJSON_CreateString(arr[vict[i]]->super.id));
            lc_inst_stop(d, arr[vict[i]], CORE_INST_PREEMPTED, reason, b);
        }
        total += nv;
        free(arr);
        free(ids);
        free(vict);
    }
    return total;
}

/* ------------------------------------------------------------- launch */

static int zone_cb(const char *cloud, const char *region, const char *zone, void *arg)
{
    const char *want = arg;
    return strcmp(zone, want) == 0 ? 1 : 0;
}

static int get_str(cJSON *req, const char *key, char *out, size_t outlen, int required,
                   const char *def, char *why, size_t whylen)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) {
            snprintf(why, whylen, "missing \"%s\"", key);
            return -EINVAL;
        }
        snprintf(out, outlen, "%s", def);
        return 0;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= outlen ||
        (required && !v->valuestring[0])) {
        snprintf(why, whylen, "\"%s\" must be a string of 1..%zu characters", key, outlen - 1);
        return -EINVAL;
    }
    snprintf(out, outlen, "%s", v->valuestring);
    return 0;
}

static void respond_invalid(core_http_conn_t *conn, const char *why)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", why);
    cJSON_AddStringToObject(doc, "code", "invalid");
    core_http_respond_json(conn, 400, doc);
}

void lc_inst_launch(lc_daemon_t *d, core_http_conn_t *conn, cJSON *req)
{
    char why[200] = "";
    lc_inst_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    core_instance_t *s = &tmp.super;
    if (get_str(req, "zone", s->zone, sizeof(s->zone), 1, "", why, sizeof(why)) < 0 ||
        get_str(req, "instance_type", s->instance_type, sizeof(s->instance_type), 1, "", why,
                sizeof(why)) < 0 ||
        get_str(req, "cloud", s->cloud, sizeof(s->cloud), 0, "local", why, sizeof(why)) < 0 ||
        get_str(req, "region", s->region, sizeof(s->region), 0, "", why, sizeof(why)) < 0 ||
        get_str(req, "owner", s->owner, sizeof(s->owner), 0, "", why, sizeof(why)) < 0) {
        respond_invalid(conn, why);
        return;
    }
    cJSON *spot = cJSON_GetObjectItemCaseSensitive(req, "spot");
    if (spot && !cJSON_IsBool(spot) && !cJSON_IsNumber(spot) && !cJSON_IsNull(spot)) {
        respond_invalid(conn, "\"spot\" must be a boolean");
        return;
    }
    s->spot = cJSON_IsTrue(spot) || (cJSON_IsNumber(spot) && spot->valuedouble != 0);
    cJSON *price = cJSON_GetObjectItemCaseSensitive(req, "price");
    if (price && !cJSON_IsNull(price) &&
        (!cJSON_IsNumber(price) || price->valuedouble < 0 || !isfinite(price->valuedouble))) {
        respond_invalid(conn, "\"price\" must be a non-negative number");
        return;
    }
    s->price = cJSON_IsNumber(price) ? price->valuedouble : 0;
    tmp.delay = d->provision_delay;
    cJSON *delay = cJSON_GetObjectItemCaseSensitive(req, "provision_delay");
    if (delay && !cJSON_IsNull(delay)) {
        if (!cJSON_IsNumber(delay) || delay->valuedouble < 0 || delay->valuedouble > 3600) {
            respond_invalid(conn, "\"provision_delay\" must be a number of seconds in 0..3600");
            return;
        }
        tmp.delay = delay->valuedouble;
    }
    if (d->catalog && core_catalog_each_zone(d->catalog, zone_cb, s->zone) != 1) {
        snprintf(why, sizeof(why), "unknown zone \"%s\" (not in the catalog)", s->zone);
        respond_invalid(conn, why);
        return;
    }
    if (d->stopping) {
        core_http_respond_error(conn, 503, "shutting down");
        return;
    }
    if (s->spot && !lc_market_can_launch(&d->market, s->zone, lc_inst_spot_in_use(d, s->zone))) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "error", "no capacity");
        cJSON_AddStringToObject(doc, "code", "no_capacity");
        cJSON_AddStringToObject(doc, "zone", s->zone);
        core_http_respond_json(conn, 409, doc);
        CORE_INFO("spot launch in %s refused: no capacity", s->zone);
        return;
    }

    lc_inst_t *in = core_xmalloc(sizeof(*in));
    *in = tmp;
    in->num = d->next_num++;
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", d->next_num);
    lc_store_meta_set(d, "next_num", buf);
    s = &in->super;
    snprintf(s->id, sizeof(s->id), "i-%06ld", in->num);
    if (d->mode == LC_MODE_NETNS) {
        snprintf(in->netns, sizeof(in->netns), "sky-%s-%06ld", d->tag, in->num);
        snprintf(in->veth, sizeof(in->veth), "sv%s%06ld", d->tag, in->num);
    }
    s->state = CORE_INST_PENDING;
    s->launched_at = core_now();
    in->launch_conn = conn;
    core_http_conn_on_close(conn, on_launch_conn_close, in);
    in->next = d->insts;
    d->insts = in;
    lc_store_put(d, in);
    CORE_INFO("%s PENDING (%s%s %s, owner %s, delay %.2fs)", s->id, s->spot ? "spot " : "", s->zone,
              s->instance_type, s->owner[0] ? s->owner : "-", in->delay);
    start_job(d, in, JOB_SETUP);
}

/* ---------------------------------------------------- preemption notices */

char *lc_inst_metadata_dir(const lc_daemon_t *d, const lc_inst_t *in)
{
    return core_xasprintf("%s/instances/%s/metadata", d->dir, in->super.id);
}

/*
 * The notice as the agent serves it (GET /notice): EC2's instance-action
 * document ({"action": "terminate", "time": ISO 8601 UTC}) plus the deadline
 * in epoch seconds. Written atomically, read by the agent on every request.
 */
static int write_notice(const lc_daemon_t *d, const lc_inst_t *in)
{
    char *dir = lc_inst_metadata_dir(d, in), *path = NULL, *text = NULL;
    char iso[32];
    time_t secs = (time_t)in->preempt_at;
    struct tm tm;
    int rc;

    gmtime_r(&secs, &tm);
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if ((rc = core_mkdir_p(dir, 0755)) == 0) {
        path = core_xasprintf("%s/instance-action", dir);
        text = core_xasprintf("{\"action\":\"terminate\",\"time\":\"%s\",\"deadline\":%.3f}\n", iso,
                              in->preempt_at);
        rc = core_write_file(path, text, strlen(text), 0644);
    }
    if (rc < 0)
        CORE_WARN("%s: cannot write the preemption notice for its agent: %s", in->super.id,
                  strerror(-rc));
    free(text);
    free(path);
    free(dir);
    return rc;
}

int lc_inst_notice(lc_daemon_t *d, lc_inst_t *in, double seconds)
{
    double at = core_now() + seconds;

    if (in->super.state != CORE_INST_RUNNING)
        return -EINVAL;
    if (in->preempt_at > 0 && in->preempt_at <= at)
        return 0;
    in->preempt_at = at;
    lc_store_put(d, in);
    write_notice(d, in);
    CORE_INFO("%s: preemption notice, preempted in %.1f s", in->super.id, seconds);
    lc_inst_notice_tick(d);
    return 0;
}

static void on_notice_timer(uv_timer_t *t)
{
    lc_inst_notice_tick(t->data);
}

void lc_inst_notice_tick(lc_daemon_t *d)
{
    double now = core_now(), next = 0;

    for (lc_inst_t *in = d->insts; in; in = in->next) {
        if (in->preempt_at <= 0 || !lc_inst_alive(in))
            continue;
        if (in->preempt_at <= now)
            lc_inst_stop(d, in, CORE_INST_PREEMPTED, "preempted after its notice", NULL);
        else if (next == 0 || in->preempt_at < next)
            next = in->preempt_at;
    }
    uv_timer_stop(&d->notice_timer);
    if (next > 0)
        uv_timer_start(&d->notice_timer, on_notice_timer, (uint64_t)((next - now) * 1000) + 1, 0);
}

/* ---------------------------------------------------------- monitoring */

void lc_inst_check(lc_daemon_t *d, lc_inst_t *in)
{
    if (in->super.state != CORE_INST_RUNNING || PHASE(in) != PHASE_IDLE)
        return;
    if (d->mode == LC_MODE_NETNS && !lc_net_netns_exists(in->netns)) {
        /* A host that vanishes: what a preemption looks like from outside. */
        lc_inst_stop(d, in, in->super.spot ? CORE_INST_PREEMPTED : CORE_INST_FAILED,
                     "network namespace vanished", NULL);
        return;
    }
    if (!lc_net_agent_alive(d, in, 1))
        lc_inst_stop(d, in, CORE_INST_FAILED, "sky-agent exited", NULL);
}

/*
 * After a (re)start: instances that were RUNNING must still have their
 * namespace and agent; PENDING ones lost their launch request with the old
 * process, so they fail and are cleaned; dead ones not yet cleaned are.
 */
void lc_inst_recover(lc_daemon_t *d)
{
    size_t running = 0;
    for (lc_inst_t *in = d->insts; in; in = in->next) {
        if (in->super.state == CORE_INST_PENDING) {
            lc_inst_stop(d, in, CORE_INST_FAILED, "daemon restarted while provisioning", NULL);
            continue;
        }
        if (in->super.state == CORE_INST_RUNNING) {
            lc_inst_check(d, in);
            if (in->super.state == CORE_INST_RUNNING)
                running++;
            continue;
        }
        if (!in->torn_down)
            lc_inst_stop(d, in, in->super.state, NULL, NULL);
    }
    if (running)
        CORE_INFO("recovered %zu running instance(s)", running);
}
