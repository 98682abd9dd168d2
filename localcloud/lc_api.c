#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "lc.h"

/*
 * The HTTP API (all under /v1, bearer token required):
 *
 *   GET    /v1/health
 *   GET    /v1/instances[?all=1][&owner=O]  not yet TERMINATED (all=1: every one)
 *   POST   /v1/instances                launch; answers once RUNNING
 *   GET    /v1/instances/ID             describe
 *   DELETE /v1/instances/ID             terminate (idempotent)
 *   POST   /v1/instances/ID/preempt     operator preemption (?force=1: on-demand too;
 *                                        ?notice=S: announced, preempted S seconds later)
 *   GET    /v1/capacity                 spot capacities and usage per zone
 *   POST   /v1/capacity                 {"zone":Z|"all":true,"capacity":N|null}
 *   GET    /v1/replay   POST /v1/replay {"dir","speed","zones"}   DELETE /v1/replay
 *   GET    /v1/usage                    instance-seconds and cost
 *   POST   /v1/down                     terminate everything, remove the bridge, exit
 *
 * Errors are {"error": sentence, "code": word} with code one of invalid,
 * not_found, no_capacity, conflict.
 */

static void respond_code(core_http_conn_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void respond_code(core_http_conn_t *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", msg);
    cJSON_AddStringToObject(doc, "code", code);
    core_http_respond_json(c, status, doc);
}

static void on_stop_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

void lc_daemon_stop(lc_daemon_t *d)
{
    if (d->stopping > 1)
        return;
    d->stopping = 2;
    lc_replay_stop(d);
    /* Let the last response reach the socket before the loop ends. */
    uv_timer_init(d->loop, &d->stop_timer);
    uv_timer_start(&d->stop_timer, on_stop_timer, 150, 0);
}

static void handle_health(lc_daemon_t *d, core_http_conn_t *c)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "ok", 1);
    cJSON_AddNumberToObject(doc, "pid", getpid());
    cJSON_AddStringToObject(doc, "mode", d->mode == LC_MODE_NETNS ? "netns" : "process");
    cJSON_AddStringToObject(doc, "tag", d->tag);
    cJSON_AddStringToObject(doc, "agent", d->agent_path ? d->agent_path : "");
    core_http_respond_json(c, 200, doc);
}

static void handle_list(lc_daemon_t *d, core_http_conn_t *c, const core_http_req_t *req)
{
    char all[8] = "";
    core_http_query_get(req->query, "all", all, sizeof(all));
    int want_all = all[0] == '1' || strcmp(all, "true") == 0;
    char owner[128] = "";
    int by_owner = core_http_query_get(req->query, "owner", owner, sizeof(owner)) == 0;
    double now = core_now();
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "instances");
    /* Oldest first reads naturally in tables; the list is kept newest first. */
    size_t n = 0;
    for (lc_inst_t *in = d->insts; in; in = in->next)
        n++;
    lc_inst_t **v = core_xmalloc((n + 1) * sizeof(*v));
    size_t k = 0;
    for (lc_inst_t *in = d->insts; in; in = in->next)
        v[k++] = in;
    for (size_t i = k; i-- > 0;) {
        if (!want_all && v[i]->super.state == CORE_INST_TERMINATED)
            continue;
        if (by_owner && strcmp(v[i]->super.owner, owner) != 0)
            continue;
        cJSON_AddItemToArray(arr, lc_inst_json(v[i], now));
    }
    free(v);
    core_http_respond_json(c, 200, doc);
}

static void handle_describe(lc_daemon_t *d, core_http_conn_t *c, lc_inst_t *in)
{
    lc_inst_check(d, in);
    core_http_respond_json(c, 200, lc_inst_json(in, core_now()));
}

static void handle_stop(lc_daemon_t *d, core_http_conn_t *c, lc_inst_t *in,
                        enum core_inst_state state, const char *reason)
{
    lc_barrier_t *b = lc_barrier_new(d, c, 200, NULL);
    lc_inst_stop(d, in, state, reason, b);
    /* The state is final already; the answer waits for the teardown. */
    b->reply = lc_inst_json(in, core_now());
    lc_barrier_done(b);
}

/* POST /v1/down's last step, once every instance is gone: strays and the bridge. */
void lc_down_cleanup(lc_daemon_t *d)
{
    /* Taken down on purpose: a client restarts it only when a user asks for it again. */
    char *mark = core_xasprintf("%s/down", d->dir);
    core_write_file(mark, "", 0, 0600);
    free(mark);
    if (d->mode != LC_MODE_NETNS)
        return;
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "sky-%s-", d->tag);
    char **names = NULL;
    size_t n = 0;
    lc_net_list_netns(prefix, &names, &n);
    for (size_t i = 0; i < n; i++) {
        lc_inst_t tmp;
        memset(&tmp, 0, sizeof(tmp));
        snprintf(tmp.netns, sizeof(tmp.netns), "%s", names[i]);
        snprintf(tmp.veth, sizeof(tmp.veth), "sv%.4s%.8s", d->tag, names[i] + strlen(prefix));
        CORE_INFO("removing stray namespace %s", names[i]);
        lc_net_destroy(d, &tmp);
        free(names[i]);
    }
    free(names);
    lc_net_remove_bridge_if_unused();
}

static int parse_capacity(cJSON *v, long *out)
{
    if (!v || cJSON_IsNull(v)) {
        *out = -1;
        return 0;
    }
    if (cJSON_IsString(v) && strcmp(v->valuestring, "unlimited") == 0) {
        *out = -1;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
        v->valuedouble != floor(v->valuedouble))
        return -EINVAL;
    *out = (long)v->valuedouble;
    return 0;
}

static cJSON *capacity_doc(lc_daemon_t *d)
{
    cJSON *doc = cJSON_CreateObject();
    if (d->market.default_capacity < 0)
        cJSON_AddNullToObject(doc, "default");
    else
        cJSON_AddNumberToObject(doc, "default", (double)d->market.default_capacity);
    cJSON *zones = cJSON_AddObjectToObject(doc, "zones");
    for (size_t i = 0; i < d->market.nzones; i++) {
        if (d->market.zones[i].capacity < 0)
            cJSON_AddNullToObject(zones, d->market.zones[i].zone);
        else
            cJSON_AddNumberToObject(zones, d->market.zones[i].zone,
                                    (double)d->market.zones[i].capacity);
    }
    cJSON *use = cJSON_AddObjectToObject(doc, "spot_in_use");
    for (lc_inst_t *in = d->insts; in; in = in->next) {
        if (!in->super.spot || !lc_inst_alive(in))
            continue;
        cJSON *cur = cJSON_GetObjectItemCaseSensitive(use, in->super.zone);
        if (cur)
            cJSON_SetNumberValue(cur, cur->valuedouble + 1);
        else
            cJSON_AddNumberToObject(use, in->super.zone, 1);
    }
    return doc;
}

static void handle_set_capacity(lc_daemon_t *d, core_http_conn_t *c, cJSON *body)
{
    cJSON *zone = cJSON_GetObjectItemCaseSensitive(body, "zone");
    cJSON *all = cJSON_GetObjectItemCaseSensitive(body, "all");
    long cap;
    if (!cJSON_HasObjectItem(body, "capacity") ||
        parse_capacity(cJSON_GetObjectItemCaseSensitive(body, "capacity"), &cap) < 0) {
        respond_code(c, 400, "invalid",
                     "\"capacity\" must be a non-negative integer or null (unlimited)");
        return;
    }
    int is_all = cJSON_IsTrue(all);
    if (!is_all &&
        (!cJSON_IsString(zone) || !zone->valuestring[0] || strlen(zone->valuestring) >= 40)) {
        respond_code(c, 400, "invalid", "give \"zone\" or \"all\": true");
        return;
    }
    if (is_all) {
        lc_market_set_all(&d->market, cap);
        lc_store_clear_capacities(d);
        lc_store_put_capacity(d, "*", cap);
        CORE_INFO("spot capacity of every zone set to %ld%s", cap, cap < 0 ? " (unlimited)" : "");
    } else {
        if (lc_market_set(&d->market, zone->valuestring, cap) < 0) {
            respond_code(c, 400, "invalid", "too many zones");
            return;
        }
        lc_store_put_capacity(d, zone->valuestring, cap);
        CORE_INFO("spot capacity of %s set to %ld%s", zone->valuestring, cap,
                  cap < 0 ? " (unlimited)" : "");
    }
    cJSON *reply = capacity_doc(d);
    cJSON *victims = cJSON_AddArrayToObject(reply, "preempted");
    lc_barrier_t *b = lc_barrier_new(d, c, 200, reply);
    lc_inst_enforce(d, is_all ? NULL : zone->valuestring, b, victims);
    lc_barrier_done(b);
}

static void handle_replay(lc_daemon_t *d, core_http_conn_t *c, cJSON *body)
{
    cJSON *dir = cJSON_GetObjectItemCaseSensitive(body, "dir");
    cJSON *speed = cJSON_GetObjectItemCaseSensitive(body, "speed");
    cJSON *zones = cJSON_GetObjectItemCaseSensitive(body, "zones");
    if (!cJSON_IsString(dir) || !dir->valuestring[0] || strlen(dir->valuestring) >= 1000) {
        respond_code(c, 400, "invalid", "\"dir\" must name a trace folder");
        return;
    }
    double sp = 1.0;
    if (speed && !cJSON_IsNull(speed)) {
        if (!cJSON_IsNumber(speed) || !(speed->valuedouble > 0)) {
            respond_code(c, 400, "invalid", "\"speed\" must be a positive number");
            return;
        }
        sp = speed->valuedouble;
    }
    size_t nz = 0;
    char **zv = NULL;
    if (zones && !cJSON_IsNull(zones)) {
        if (!cJSON_IsArray(zones) || cJSON_GetArraySize(zones) > LC_MAX_ZONES) {
            respond_code(c, 400, "invalid", "\"zones\" must be an array of zone names");
            return;
        }
        zv = core_xcalloc((size_t)cJSON_GetArraySize(zones) + 1, sizeof(char *));
        cJSON *z;
        cJSON_ArrayForEach(z, zones)
        {
            if (!cJSON_IsString(z)) {
                free(zv);
                respond_code(c, 400, "invalid", "\"zones\" must be an array of zone names");
                return;
            }
            zv[nz++] = z->valuestring;
        }
    }
    cJSON *reply = cJSON_CreateObject();
    char *err = NULL;
    int rc = lc_replay_start(d, dir->valuestring, sp, zv, nz, reply, &err);
    free(zv);
    if (rc < 0) {
        cJSON_Delete(reply);
        respond_code(c, 400, "invalid", "%s", err ? err : "invalid replay");
        free(err);
        return;
    }
    cJSON_AddBoolToObject(reply, "active", d->replay.active);
    core_http_respond_json(c, 200, reply);
}

static void add_usage(cJSON *o, double n, double secs, double cost)
{
    cJSON_AddNumberToObject(o, "instances", n);
    cJSON_AddNumberToObject(o, "instance_seconds", secs);
    cJSON_AddNumberToObject(o, "instance_hours", secs / 3600.0);
    cJSON_AddNumberToObject(o, "cost", cost);
}

static void handle_usage(lc_daemon_t *d, core_http_conn_t *c)
{
    double now = core_now();
    double n[2] = {0, 0}, secs[2] = {0, 0}, cost[2] = {0, 0};
    for (lc_inst_t *in = d->insts; in; in = in->next) {
        int k = in->super.spot ? 1 : 0;
        double end = in->ended_at > 0 ? in->ended_at : now;
        double s = end > in->super.launched_at ? end - in->super.launched_at : 0;
        n[k] += 1;
        secs[k] += s;
        cost[k] += s * in->super.price / 3600.0;
    }
    cJSON *doc = cJSON_CreateObject();
    add_usage(cJSON_AddObjectToObject(doc, "spot"), n[1], secs[1], cost[1]);
    add_usage(cJSON_AddObjectToObject(doc, "on_demand"), n[0], secs[0], cost[0]);
    add_usage(cJSON_AddObjectToObject(doc, "total"), n[0] + n[1], secs[0] + secs[1],
              cost[0] + cost[1]);
    cJSON_AddNumberToObject(doc, "now", now);
    core_http_respond_json(c, 200, doc);
}

static void handle_down(lc_daemon_t *d, core_http_conn_t *c)
{
    lc_replay_stop(d);
    d->stopping = 1;
    cJSON *reply = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(reply, "terminated");
    lc_barrier_t *b = lc_barrier_new(d, c, 200, reply);
    b->exit_after = 1;
    for (lc_inst_t *in = d->insts; in; in = in->next) {
        if (lc_inst_alive(in))
            cJSON_AddItemToArray(ids, cJSON_CreateString(in->super.id));
        if (lc_inst_alive(in) || !in->torn_down || in->super.state != CORE_INST_TERMINATED)
            lc_inst_stop(d, in, CORE_INST_TERMINATED, "cloud down", b);
    }
    CORE_INFO("down: terminating %d instance(s)", cJSON_GetArraySize(ids));
    lc_barrier_done(b);
}

/* Calls <h> with the request's JSON object body, or answers 400 without one. */
static void with_json_body(lc_daemon_t *d, core_http_conn_t *conn, const core_http_req_t *req,
                           void (*h)(lc_daemon_t *, core_http_conn_t *, cJSON *))
{
    cJSON *body = core_http_body_json(req);
    if (!body) {
        respond_code(conn, 400, "invalid", "body must be a JSON object");
        return;
    }
    h(d, conn, body);
    cJSON_Delete(body);
}

void lc_api_handle(core_http_conn_t *conn, const core_http_req_t *req, void *ud)
{
    lc_daemon_t *d = ud;
    const char *m = req->method, *p = req->path;
    CORE_DEBUG("%s %s", m, p);
    if (strcmp(p, "/v1/health") == 0 && strcmp(m, "GET") == 0) {
        handle_health(d, conn);
        return;
    }
    if (strcmp(p, "/v1/instances") == 0) {
        if (strcmp(m, "GET") == 0) {
            handle_list(d, conn, req);
            return;
        }
        if (strcmp(m, "POST") == 0) {
            with_json_body(d, conn, req, lc_inst_launch);
            return;
        }
        respond_code(conn, 405, "invalid", "method not allowed");
        return;
    }
    if (strncmp(p, "/v1/instances/", 14) == 0) {
        char id[64];
        const char *rest = p + 14;
        size_t len = strcspn(rest, "/");
        if (len == 0 || len >= sizeof(id)) {
            respond_code(conn, 404, "not_found", "no such instance");
            return;
        }
        memcpy(id, rest, len);
        id[len] = '\0';
        const char *sub = rest + len;
        lc_inst_t *in = lc_inst_find(d, id);
        if (!in) {
            respond_code(conn, 404, "not_found", "no instance %s", id);
            return;
        }
        if (!*sub && strcmp(m, "GET") == 0) {
            handle_describe(d, conn, in);
            return;
        }
        if (!*sub && strcmp(m, "DELETE") == 0) {
            handle_stop(d, conn, in, CORE_INST_TERMINATED, "terminated");
            return;
        }
        if (strcmp(sub, "/preempt") == 0 && strcmp(m, "POST") == 0) {
            char force[8] = "";
            core_http_query_get(req->query, "force", force, sizeof(force));
            if (!in->super.spot && force[0] != '1') {
                respond_code(conn, 409, "conflict",
                             "%s is on-demand; on-demand instances are not preempted "
                             "(add ?force=1 to kill it anyway)",
                             id);
                return;
            }
            if (!lc_inst_alive(in)) {
                respond_code(conn, 409, "conflict", "%s is already %s", id,
                             core_inst_state_name(in->super.state));
                return;
            }
            char notice[32] = "";
            double secs = 0;
            if (core_http_query_get(req->query, "notice", notice, sizeof(notice)) == 0 &&
                (core_parse_num(notice, 0, 86400, &secs) < 0)) {
                respond_code(conn, 400, "invalid", "notice must be 0 to 86400 seconds");
                return;
            }
            if (secs > 0 && in->super.state == CORE_INST_RUNNING) {
                lc_inst_notice(d, in, secs);
                core_http_respond_json(conn, 200, lc_inst_json(in, core_now()));
                return;
            }
            handle_stop(d, conn, in, CORE_INST_PREEMPTED, "preempted by operator");
            return;
        }
        respond_code(conn, 404, "not_found", "no route %s %s", m, p);
        return;
    }
    if (strcmp(p, "/v1/capacity") == 0) {
        if (strcmp(m, "GET") == 0) {
            core_http_respond_json(conn, 200, capacity_doc(d));
            return;
        }
        if (strcmp(m, "POST") == 0) {
            with_json_body(d, conn, req, handle_set_capacity);
            return;
        }
    }
    if (strcmp(p, "/v1/replay") == 0) {
        if (strcmp(m, "GET") == 0) {
            core_http_respond_json(conn, 200, lc_replay_status(d));
            return;
        }
        if (strcmp(m, "DELETE") == 0) {
            lc_replay_stop(d);
            core_http_respond_json(conn, 200, lc_replay_status(d));
            return;
        }
        if (strcmp(m, "POST") == 0) {
            with_json_body(d, conn, req, handle_replay);
            return;
        }
    }
    if (strcmp(p, "/v1/usage") == 0 && strcmp(m, "GET") == 0) {
        handle_usage(d, conn);
        return;
    }
    if (strcmp(p, "/v1/down") == 0 && strcmp(m, "POST") == 0) {
        handle_down(d, conn);
        return;
    }
    respond_code(conn, 404, "not_found", "no route %s %s", m, p);
}
