#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/http.h"
#include "core/localcloud.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/prov.h"
#include "core/util.h"

/*
 * The local provider: a blocking HTTP client of sky-localcloud. The daemon
 * is started on first use and outlives its clients, as a cloud's API does.
 */

#define LC_START_WAIT_MS 10000
/* A launch waits for provisioning (seconds to minutes on a loaded box). */
#define LC_LAUNCH_TIMEOUT_MS (15L * 60 * 1000)
#define LC_CALL_TIMEOUT_MS   60000L

static const char *const state_names[] = {
#define XX(name) #name,
    CORE_INST_STATE_MAP(XX)
#undef XX
};

const char *core_inst_state_name(enum core_inst_state s)
{
    return core_enum_name(state_names, CORE_ARRAY_SIZE(state_names), (int)s, "UNKNOWN");
}

int core_inst_state_parse(const char *s, enum core_inst_state *out)
{
    int v = core_enum_value(state_names, CORE_ARRAY_SIZE(state_names), s);
    if (v < 0)
        return -EINVAL;
    *out = (enum core_inst_state)v;
    return 0;
}

typedef struct prov_local {
    core_prov_t super;
    pthread_mutex_t mu; /* guards base and token: the handle is shared between threads */
    char *base;
    char *token;
} prov_local_t;

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *read_base_url(const char *home)
{
    char *path = core_xasprintf("%s/localcloud/port", home);
    char *txt = NULL;
    size_t len = 0;
    int rc = core_read_file(path, 64, &txt, &len);
    free(path);
    if (rc < 0)
        return NULL;
    long port = strtol(txt, NULL, 10);
    free(txt);
    if (port <= 0 || port > 65535)
        return NULL;
    return core_xasprintf("http://127.0.0.1:%ld", port);
}

static int healthy(const char *base, const char *token)
{
    char *url = core_xasprintf("%s/v1/health", base);
    long status = 0;
    int rc = core_http_json("GET", url, token, NULL, 2000, &status, NULL);
    free(url);
    return rc == 0;
}

/* The daemon's URL from <home>'s port file when it answers its health check. */
static char *answering_url(const char *home, const char *token)
{
    char *base = read_base_url(home);
    if (base && healthy(base, token))
        return base;
    free(base);
    return NULL;
}

/* Starts sky-localcloud for <home> and waits until it answers: 0 and *base_url. */
static int start_daemon(const char *home, const char *token, char **base_url, char **err)
{
    char *prog = core_find_program("sky-localcloud");
    if (!prog) {
        if (err)
            *err = core_xstrdup("cannot find the sky-localcloud program");
        return -ENOENT;
    }
    char *log = core_xasprintf("%s/localcloud/localcloud.log", home);
    char *argv[8];
    size_t n = 0;
    argv[n++] = prog;
    argv[n++] = "--home";
    argv[n++] = (char *)home;
    const char *delay = getenv("SKY_LOCALCLOUD_PROVISION_DELAY");
    if (delay && *delay) {
        argv[n++] = "--provision-delay";
        argv[n++] = (char *)delay;
    }
    argv[n] = NULL;
    pid_t pid = core_spawn_daemon(argv, log);
    free(log);
    free(prog);
    if (pid < 0) {
        if (err)
            *err = core_xasprintf("cannot start sky-localcloud: %s", core_strerror(pid));
        return pid;
    }
    /* Bounded wait: the daemon writes its port once it listens. */
    unsigned long long deadline = core_mono_ms() + LC_START_WAIT_MS;
    while (core_mono_ms() < deadline) {
        if ((*base_url = answering_url(home, token)) != NULL)
            return 0;
        msleep(50);
    }
    if (err)
        *err = core_xasprintf("sky-localcloud did not answer within %d s (see "
                              "%s/localcloud/localcloud.log)",
                              LC_START_WAIT_MS / 1000, home);
    return -ETIMEDOUT;
}

int core_localcloud_connect(int start, char **base_url, char **token, char **err)
{
    *base_url = NULL;
    *token = NULL;
    if (start == CORE_LC_NEVER) {
        /* A question: without a token no daemon of this home can run; create nothing. */
        char *tok = core_home_peek("token");
        int missing = access(tok, F_OK) != 0;
        free(tok);
        if (missing) {
            if (err)
                *err = core_xstrdup("sky-localcloud is not running");
            return -ENOENT;
        }
    }
    char *home = core_home_dir();
    char *tokpath = core_xasprintf("%s/token", home);
    int rc = core_token_load(tokpath, token);
    free(tokpath);
    if (rc < 0) {
        if (err)
            *err = core_xasprintf("cannot read the token in %s: %s", home, core_strerror(rc));
        goto out;
    }
    if ((*base_url = answering_url(home, *token)) != NULL)
        goto out;
    if (start == CORE_LC_NEVER) {
        rc = -ENOENT;
        if (err)
            *err = core_xasprintf("sky-localcloud is not running for %s", home);
        goto out;
    }
    char *down = core_xasprintf("%s/localcloud/down", home);
    int taken_down = access(down, F_OK) == 0;
    free(down);
    if (start == CORE_LC_RESTART && taken_down) {
        rc = -ENOENT;
        if (err)
            *err = core_xstrdup("the local cloud was taken down (sky cloud down): `sky cloud up`, "
                                "or a command that launches, starts it again");
        goto out;
    }
    /*
     * One starter at a time, across processes and threads (flock on a file
     * description of our own): callers that find no daemon at the same moment
     * (a controller launching several jobs at once, a CLI beside it) would
     * each start one, and a daemon that lost the race waits up to 2 s for the
     * lock, long enough to take over after a `sky cloud down`. The others wait
     * here and then find the first one answering.
     */
    char *dir = core_xasprintf("%s/localcloud", home);
    core_mkdir_p(dir, 0700);
    char *lockpath = core_xasprintf("%s/start.lock", dir);
    free(dir);
    int lock = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockpath);
    if (lock >= 0)
        while (flock(lock, LOCK_EX) == -1 && errno == EINTR)
            ;
    if ((*base_url = answering_url(home, *token)) == NULL)
        rc = start_daemon(home, *token, base_url, err);
    if (lock >= 0)
        close(lock);
out:
    if (rc < 0) {
        free(*token);
        *token = NULL;
    }
    free(home);
    return rc;
}

/*
 * One call to the daemon. A daemon that is not there (killed; a new one
 * listens on another port) is found or started again and the call retried
 * once: always when the connection was refused (the request never arrived),
 * and for GET and DELETE, which are idempotent, also when it was cut.
 */
static int call(prov_local_t *pl, const char *method, const char *path, const cJSON *body,
                long timeout_ms, long *status, cJSON **resp)
{
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&pl->mu);
        char *url = core_xasprintf("%s%s", pl->base, path);
        char *token = core_xstrdup(pl->token);
        pthread_mutex_unlock(&pl->mu);
        int rc = core_http_json(method, url, token, body, timeout_ms, status, resp);
        free(url);
        free(token);
        bool lost = rc == -ECONNREFUSED || (rc == -ECONNRESET && strcmp(method, "POST") != 0);
        if (!lost || attempt > 0)
            return rc;
        char *base = NULL, *err = NULL;
        token = NULL;
        if (core_localcloud_connect(CORE_LC_RESTART, &base, &token, &err) < 0) {
            CORE_WARN("local cloud unreachable and not restarted: %s", err ? err : "?");
            free(err);
            return rc;
        }
        pthread_mutex_lock(&pl->mu);
        CORE_WARN("local cloud at %s did not answer; now at %s", pl->base, base);
        free(pl->base);
        free(pl->token);
        pl->base = base;
        pl->token = token;
        pthread_mutex_unlock(&pl->mu);
        if (resp) {
            cJSON_Delete(*resp);
            *resp = NULL;
        }
    }
}

static void copy_str(const cJSON *o, const char *key, char *out, size_t outlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(out, outlen, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static double get_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int core_instance_from_json(const cJSON *o, core_instance_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(o))
        return -EINVAL;
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
    if (!cJSON_IsString(state) || core_inst_state_parse(state->valuestring, &out->state) < 0)
        return -EINVAL;
    copy_str(o, "id", out->id, sizeof(out->id));
    if (!out->id[0])
        return -EINVAL;
    copy_str(o, "cloud", out->cloud, sizeof(out->cloud));
    copy_str(o, "region", out->region, sizeof(out->region));
    copy_str(o, "zone", out->zone, sizeof(out->zone));
    copy_str(o, "instance_type", out->instance_type, sizeof(out->instance_type));
    copy_str(o, "ip", out->ip, sizeof(out->ip));
    copy_str(o, "owner", out->owner, sizeof(out->owner));
    out->spot = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "spot"));
    out->agent_port = (int)get_num(o, "agent_port");
    out->port_offset = (int)get_num(o, "port_offset");
    out->price = get_num(o, "price");
    out->launched_at = get_num(o, "launched_at");
    out->preempt_at = get_num(o, "preempt_at");
    return 0;
}

static char *reply_error(const cJSON *resp, long status)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");
    if (cJSON_IsString(e))
        return core_xstrdup(e->valuestring);
    return core_xasprintf("HTTP %ld from sky-localcloud", status);
}

static int local_launch(core_prov_t *p, const core_candidate_t *cand, const char *owner,
                        core_instance_t *out, char **err)
{
    prov_local_t *pl = (prov_local_t *)p;
    if (err)
        *err = NULL;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "cloud", cand->cloud);
    cJSON_AddStringToObject(req, "region", cand->region);
    cJSON_AddStringToObject(req, "zone", cand->zone);
    cJSON_AddStringToObject(req, "instance_type", cand->instance_type);
    cJSON_AddBoolToObject(req, "spot", cand->spot);
    cJSON_AddNumberToObject(req, "price", cand->price);
    cJSON_AddStringToObject(req, "owner", owner ? owner : "");
    if (cand->accelerator[0]) {
        cJSON_AddStringToObject(req, "accelerator", cand->accelerator);
        cJSON_AddNumberToObject(req, "accelerator_count", cand->accelerator_count);
    }
    long status = 0;
    cJSON *resp = NULL;
    int rc = call(pl, "POST", "/v1/instances", req, LC_LAUNCH_TIMEOUT_MS, &status, &resp);
    cJSON_Delete(req);
    if (rc == 0) {
        rc = core_instance_from_json(resp, out);
        if (rc < 0 && err)
            *err = core_xstrdup("malformed instance in sky-localcloud's reply");
        if (rc < 0)
            rc = CORE_EJSON;
    } else if (rc == CORE_EHTTP) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(resp, "code");
        const char *c = cJSON_IsString(code) ? code->valuestring : "";
        if (status == 409 && strcmp(c, "no_capacity") == 0)
            rc = CORE_ENOCAPACITY;
        else if (status == 400)
            rc = CORE_EINVALREQ;
        if (err)
            *err = reply_error(resp, status);
    } else if (err) {
        *err = core_xasprintf("sky-localcloud unreachable: %s", core_strerror(rc));
    }
    cJSON_Delete(resp);
    return rc;
}

static int local_terminate(core_prov_t *p, const char *id)
{
    prov_local_t *pl = (prov_local_t *)p;
    char *path = core_xasprintf("/v1/instances/%s", id);
    long status = 0;
    int rc = call(pl, "DELETE", path, NULL, LC_CALL_TIMEOUT_MS, &status, NULL);
    free(path);
    if (rc == CORE_EHTTP && status == 404)
        return 0; /* never existed: as gone as can be */
    return rc;
}

static int local_describe(core_prov_t *p, const char *id, core_instance_t *out)
{
    prov_local_t *pl = (prov_local_t *)p;
    char *path = core_xasprintf("/v1/instances/%s", id);
    long status = 0;
    cJSON *resp = NULL;
    int rc = call(pl, "GET", path, NULL, LC_CALL_TIMEOUT_MS, &status, &resp);
    free(path);
    if (rc == 0)
        rc = core_instance_from_json(resp, out) < 0 ? CORE_EJSON : 0;
    else if (rc == CORE_EHTTP && status == 404)
        rc = CORE_ENOTFOUND;
    cJSON_Delete(resp);
    return rc;
}

static int local_list(core_prov_t *p, core_instance_t **out, size_t *n)
{
    prov_local_t *pl = (prov_local_t *)p;
    *out = NULL;
    *n = 0;
    cJSON *resp = NULL;
    int rc = call(pl, "GET", "/v1/instances", NULL, LC_CALL_TIMEOUT_MS, NULL, &resp);
    if (rc < 0) {
        cJSON_Delete(resp);
        return rc;
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(resp, "instances");
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(resp);
        return CORE_EJSON;
    }
    size_t cap = (size_t)cJSON_GetArraySize(arr);
    *out = core_xcalloc(cap ? cap : 1, sizeof(**out));
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        if (core_instance_from_json(o, &(*out)[*n]) == 0)
            (*n)++;
    }
    cJSON_Delete(resp);
    return 0;
}

static void local_destroy(core_prov_t *p)
{
    prov_local_t *pl = (prov_local_t *)p;
    pthread_mutex_destroy(&pl->mu);
    free(pl->base);
    free(pl->token);
    free(pl);
}

static const core_prov_ops_t local_ops = {
    .name = "local",
    .launch = local_launch,
    .terminate = local_terminate,
    .describe = local_describe,
    .list = local_list,
    .destroy = local_destroy,
};

int core_prov_local_open(core_prov_t **out, char **err)
{
    *out = NULL;
    char *base = NULL, *token = NULL, *e = NULL;
    int rc = core_localcloud_connect(CORE_LC_RESTART, &base, &token, &e);
    if (rc < 0) {
        CORE_ERROR("local cloud: %s", e ? e : core_strerror(rc));
        if (err)
            *err = e;
        else
            free(e);
        return rc;
    }
    prov_local_t *pl = core_xcalloc(1, sizeof(*pl));
    pl->super.ops = &local_ops;
    pthread_mutex_init(&pl->mu, NULL);
    pl->base = base;
    pl->token = token;
    *out = &pl->super;
    return 0;
}
