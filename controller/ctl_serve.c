/*
 * The serve controller daemon: one libuv loop for every service.
 *
 * Facts live in SQLite rows (ctl_serve_store.c); statuses are derived from
 * them (ctl_replica). Decisions are the fleet's (ctl_fleet.c). Blocking
 * provider and agent calls run in the thread pool (ctl_serve_work.c); their
 * results are applied on the loop thread (ctl_serve_replica.c), looking
 * replicas up by (service, id) so that a record deleted meanwhile is never
 * touched. A 200 ms tick drives the per-service schedules: readiness probe
 * rounds (ctl_serve_probe.c), autoscaler decisions, launch retries, drained
 * terminations, sky-lb supervision (ctl_serve_lb.c), and the provider poll
 * that detects preemptions within about a second. Services, their versions
 * and the HTTP API's actions: ctl_service.c and ctl_api.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "ctl_api.h"
#include "ctl_dash.h"
#include "ctl_probe.h"
#include "ctl_serve.h"
#include "ctl_serve_lb.h"
#include "ctl_serve_probe.h"
#include "ctl_serve_replica.h"
#include "ctl_serve_store.h"
#include "ctl_service.h"

#define TICK_MS 200

ctl_replica_t *ctl_serve_find_replica(ctl_serve_t *s, const char *svcname, int id,
                                      ctl_service_t **svc_out)
{
    ctl_service_t *svc = ctl_serve_find(s, svcname);

    if (svc_out)
        *svc_out = svc;
    return svc ? ctl_service_replica(svc, id) : NULL;
}

char *ctl_serve_log_path(ctl_serve_t *s, const char *svc, const char *file)
{
    if (!svc)
        return core_xasprintf("%s/%s", s->serve_dir, file);
    return core_xasprintf("%s/%s/%s", s->serve_dir, svc, file);
}

/* Thread-safe: each line is one O_APPEND write. */
void ctl_serve_vlog(const char *path, const char *fmt, va_list ap)
{
    char ts[32], *msg, *line;
    time_t t = time(NULL);
    struct tm tm;
    int fd;

    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    if (vasprintf(&msg, fmt, ap) < 0)
        return;
    line = core_xasprintf("%s %s\n", ts, msg);
    free(msg);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, line, strlen(line));
        (void)w;
        close(fd);
    }
    free(line);
}

void ctl_serve_replica_log_path(ctl_serve_t *s, const char *svc, int id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s/replica_%d.log", s->serve_dir, svc, id);
}

void ctl_serve_replica_log(ctl_serve_t *s, const char *svc, int id, const char *fmt, ...)
{
    char path[1024];
    va_list ap;

    ctl_serve_replica_log_path(s, svc, id, path, sizeof(path));
    va_start(ap, fmt);
    ctl_serve_vlog(path, fmt, ap);
    va_end(ap);
}

static void record_tick(ctl_tick_stats_t *st, double ms, bool decided)
{
    size_t i = (size_t)(st->count++ % CTL_TICK_SAMPLES);

    st->ms[i] = (float)ms;
    st->decided[i] = decided;
    if (ms > st->max_ms)
        st->max_ms = ms;
}

static bool has_services(void *arg);
static void stop(void *arg);

static void on_tick(uv_timer_t *timer)
{
    ctl_serve_t *s = timer->data;
    double t = core_now();
    uint64_t start = uv_hrtime();
    bool decided = false;

    for (ctl_service_t *svc = s->services, *next; svc; svc = next) {
        next = svc->next;
        if (!ctl_service_going_down(svc)) {
            ctl_lb_ensure(s, svc);
            ctl_service_probe_tick(svc, t);
            if (t >= svc->next_decision && svc->fleet.scaler_ok) {
                ctl_service_autoscale(svc);
                decided = true;
            }
        }
        CTL_FOR_EACH_REPLICA(svc, r)
        ctl_replica_tick(r, t);
        if (ctl_service_going_down(svc))
            ctl_service_maybe_finish_down(svc);
        else
            ctl_service_prune_versions(svc);
    }
    ctl_serve_poll(s, t);
    ctl_dash_sample(s->dash, s, t);
    record_tick(&s->ticks, (double)(uv_hrtime() - start) / 1e6, decided);
    /* A service is removed only once its replicas are terminated: nothing is left behind. */
    if (s->stop_when_empty && !s->stopping && !has_services(s)) {
        CORE_INFO("every service is down (sky serve down -a): exiting");
        stop(s);
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return x < y ? -1 : x > y;
}

/* p50/p99 of the ticks recorded from number <since> on (all, or only those that decided). */
static cJSON *tick_json(const ctl_tick_stats_t *st, unsigned long long since, bool decided_only)
{
    unsigned long long from = st->count > CTL_TICK_SAMPLES ? st->count - CTL_TICK_SAMPLES : 0;
    float *v = core_xcalloc(CTL_TICK_SAMPLES, sizeof(*v));
    cJSON *o = cJSON_CreateObject();
    size_t k = 0;

    for (unsigned long long i = since > from ? since : from; i < st->count; i++)
        if (!decided_only || st->decided[i % CTL_TICK_SAMPLES])
            v[k++] = st->ms[i % CTL_TICK_SAMPLES];
    qsort(v, k, sizeof(*v), cmp_float);
    cJSON_AddNumberToObject(o, "count", (double)k);
    cJSON_AddNumberToObject(o, "p50_ms", k ? v[(k - 1) / 2] : 0);
    cJSON_AddNumberToObject(o, "p99_ms", k ? v[(k - 1) * 99 / 100] : 0);
    free(v);
    return o;
}

cJSON *ctl_serve_stats_json(ctl_serve_t *s, unsigned long long since)
{
    cJSON *o = cJSON_CreateObject(), *tick;
    size_t services = 0, replicas = 0;

    for (ctl_service_t *svc = s->services; svc; svc = svc->next) {
        services++;
        CTL_FOR_EACH_REPLICA(svc, r)
        replicas++;
    }
    cJSON_AddNumberToObject(o, "pid", getpid());
    cJSON_AddNumberToObject(o, "services", (double)services);
    cJSON_AddNumberToObject(o, "replicas", (double)replicas);
    tick = tick_json(&s->ticks, since, false);
    cJSON_AddNumberToObject(tick, "total", (double)s->ticks.count);
    cJSON_AddNumberToObject(tick, "max_ms", s->ticks.max_ms);
    cJSON_AddItemToObject(tick, "decision", tick_json(&s->ticks, since, true));
    cJSON_AddItemToObject(o, "tick", tick);
    return o;
}

static void host_ip(char *out, size_t outlen)
{
    struct ifaddrs *ifa = NULL;

    snprintf(out, outlen, "127.0.0.1");
    if (getifaddrs(&ifa) != 0)
        return;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        /* The local cloud's bridge and veths are not how users reach us. */
        if (strncmp(i->ifa_name, "skybr", 5) == 0 || strncmp(i->ifa_name, "veth", 4) == 0 ||
            strncmp(i->ifa_name, "sky", 3) == 0)
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)outlen);
        break;
    }
    freeifaddrs(ifa);
}

static bool has_services(void *arg)
{
    ctl_serve_t *s = arg;

    for (ctl_service_t *svc = s->services; svc; svc = svc->next)
        if (!svc->deleted)
            return true;
    return false;
}

/* Replicas and LBs keep running; a restart re-adopts them. */
static void stop(void *arg)
{
    ctl_serve_t *s = arg;

    /* With nothing left, questions are answered without starting us again. */
    ctl_stopped_mark(s->serve_dir, !has_services(s));
    s->stopping = 1;
    uv_stop(s->loop);
}

static void on_signal(uv_signal_t *h, int sig)
{
    CORE_INFO("signal %d: exiting (replicas and load balancers keep running)", sig);
    stop(h->data);
}

static int read_port_file(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int port = 0;

    if (core_read_file(path, 64, &text, &len) == 0)
        port = atoi(text);
    free(text);
    return port > 0 && port < 65536 ? port : 0;
}

int ctl_serve_main(const ctl_serve_opts_t *opts)
{
    ctl_serve_t *s = core_xcalloc(1, sizeof(*s));
    core_http_server_opts_t ho;
    char *cfgpath, *dbpath, *lockpath, *portpath, *prevpath, *err = NULL, buf[32];
    int rc, port;

    s->loop = uv_default_loop();
    s->lock_fd = -1;
    ctl_rng_seed(&s->rng, (uint64_t)core_mono_ms() ^ ((uint64_t)getpid() << 32));
    s->home = core_home_dir();
    s->serve_dir = core_xasprintf("%s/serve", s->home);
    core_mkdir_p(s->serve_dir, 0700);
    ctl_serve_cfg_default(&s->cfg);
    cfgpath = core_xasprintf("%s/config.yaml", s->home);
    rc = ctl_serve_cfg_load(&s->cfg, cfgpath, &err);
    free(cfgpath);
    if (rc < 0) {
        fprintf(stderr, "sky-controller: %s\n", err ? err : "bad configuration");
        free(err);
        return 2;
    }
    lockpath = core_xasprintf("%s/controller.lock", s->serve_dir);
    s->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockpath);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "sky-controller: another serve controller runs for %s\n", s->home);
        return 1;
    }
    s->token_path = core_xasprintf("%s/token", s->home);
    if ((rc = core_token_load(s->token_path, &s->token)) < 0) {
        fprintf(stderr, "sky-controller: token %s: %s\n", s->token_path, core_strerror(rc));
        return 1;
    }
    if ((rc = core_catalog_load(NULL, &s->catalog, &err)) < 0) {
        CORE_ERROR("catalog: %s", err ? err : core_strerror(rc));
        free(err);
        err = NULL;
        s->catalog = NULL;
    }
    s->lb_path = core_find_program("sky-lb");
    s->provs = opts->provs;
    if (!s->provs && (rc = core_prov_registry_new(NULL, 0, &s->provs)) < 0) {
        fprintf(stderr, "sky-controller: providers: %s\n", core_strerror(rc));
        return 1;
    }
    dbpath = core_xasprintf("%s/services.db", s->serve_dir);
    rc = ctl_store_open(dbpath, &s->store);
    free(dbpath);
    if (rc < 0) {
        fprintf(stderr, "sky-controller: cannot open the service database\n");
        return 1;
    }
    if ((rc = ctl_prober_new(s->loop, &s->prober)) < 0)
        return 1;
    if (s->cfg.endpoint_host[0])
        snprintf(s->host_ip, sizeof(s->host_ip), "%s", s->cfg.endpoint_host);
    else
        host_ip(s->host_ip, sizeof(s->host_ip));
    memset(&ho, 0, sizeof(ho));
    ho.token = s->token;
    ho.public_paths = ctl_dash_public_paths;
    ho.max_body = 4 << 20;
    portpath = core_xasprintf("%s/controller.port", s->serve_dir);
    prevpath = core_xasprintf("%s/controller.prev_port", s->serve_dir);
    port = opts->port;
    rc = -1;
    if (port == 0) {
        /* Keep the previous port so re-adopted LBs still reach us (the CLI
         * removes controller.port when it finds it stale, hence a copy). */
        int prev = read_port_file(prevpath);

        if (prev > 0)
            rc = core_http_server_start(s->loop, "127.0.0.1", prev, &ho, ctl_api_handle, s,
                                        &s->http);
    }
    if (rc < 0)
        rc = core_http_server_start(s->loop, "127.0.0.1", port, &ho, ctl_api_handle, s, &s->http);
    if (rc < 0) {
        fprintf(stderr, "sky-controller: listen 127.0.0.1:%d: %s\n", port, core_strerror(rc));
        return 1;
    }
    s->port = core_http_server_port(s->http);
    ctl_metrics_proc_start(&s->proc, s->serve_dir);
    s->dash = ctl_dash_new();
    if ((rc = ctl_serve_load_services(s)) < 0) {
        fprintf(stderr, "sky-controller: cannot load services: %s\n", core_strerror(rc));
        return 1;
    }
    snprintf(buf, sizeof(buf), "%d\n", s->port);
    core_write_file(prevpath, buf, strlen(buf), 0644);
    core_write_file(portpath, buf, strlen(buf), 0644);
    free(portpath);
    free(prevpath);
    CORE_INFO("serve controller listening on 127.0.0.1:%d (pid %d, home %s)", s->port, getpid(),
              s->home);
    uv_timer_init(s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 0, TICK_MS);
    uv_signal_init(s->loop, &s->sigterm);
    s->sigterm.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_init(s->loop, &s->sigint);
    s->sigint.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    ctl_stopped_mark(s->serve_dir, false);
    ctl_idle_start(&s->idle, s->loop, s->cfg.controller_idle_seconds, has_services, stop, s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    /* Jobs may still block in the thread pool (a launch takes minutes);
     * their effects are idempotent on restart, so do not wait for them. */
    ctl_store_close(s->store);
    ctl_dash_free(s->dash);
    return 0;
}
