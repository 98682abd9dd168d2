/*
 * serve_scale: one serve controller driving many replicas (issue #11).
 *
 * The controller is the real one (ctl_serve_main, linked from skyctl) with
 * its real store, probes, sky-lb processes and HTTP API; only the cloud is
 * fake. Its provider registry holds one driver, the scripted cloud of
 * tests/support/fake_cloud.c, handed in through ctl_serve_opts.provs the way
 * sky-controller hands in this build's drivers: no switch in the product
 * selects it. Every fake instance answers at one fast in-process HTTP server,
 * which plays both the agent (health, task list/submit/status) and the
 * replica (the readiness probe). The benchmark brings up <services> services
 * of <replicas> replicas each, waits until every replica is READY, then
 * measures over a steady window: the controller's tick (GET /api/controller),
 * `sky serve status` (the CLI binary, end to end) and GET /api/services, and
 * the resident memory the replicas added. Then it takes every service down.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "core/err.h"
#include "core/http.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/prov_registry.h"
#include "core/util.h"
#include "ctl_serve.h"
#include "fake_cloud.h"

#define REPLICA_PORT 8080 /* the services' port; instances add the offset to reach the fake */

extern char **environ;

typedef struct opts {
    int services;
    int replicas;
    double window_s;
    int status_runs;
    const char *sky; /* the CLI binary */
} opts_t;

/* ---- the fake agent + replica: one HTTP server on its own loop ---- */

static void fake_handle(core_http_conn_t *conn, const core_http_req_t *req, void *ud)
{
    (void)ud;
    if (strcmp(req->path, "/health") == 0) {
        core_http_respond(conn, 200, "application/json",
                          "{\"status\":\"ok\",\"tasks\":1,\"running\":1}", 37);
    } else if (strcmp(req->path, "/tasks") == 0 && strcmp(req->method, "POST") == 0) {
        core_http_respond(conn, 200, "application/json", "{\"task_id\":1}", 13);
    } else if (strcmp(req->path, "/tasks") == 0) {
        core_http_respond(conn, 200, "application/json", "{\"tasks\":[]}", 12);
    } else if (strncmp(req->path, "/tasks/", 7) == 0) {
        static const char task[] = "{\"task_id\":1,\"name\":\"t\",\"status\":\"RUNNING\","
                                   "\"exit_code\":null,\"submitted_at\":1,\"started_at\":1,"
                                   "\"ended_at\":null,\"failure_reason\":null}";
        core_http_respond(conn, 200, "application/json", task, sizeof(task) - 1);
    } else {
        core_http_respond(conn, 200, "text/plain", "ok\n", 3); /* the readiness probe */
    }
}

typedef struct fake_server {
    uv_loop_t loop;
    core_http_server_t *http;
    pthread_t thread;
    int port;
} fake_server_t;

static void *fake_run(void *arg)
{
    fake_server_t *f = arg;

    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int fake_start(fake_server_t *f)
{
    core_http_server_opts_t o;
    int rc;

    memset(&o, 0, sizeof(o));
    uv_loop_init(&f->loop);
    if ((rc = core_http_server_start(&f->loop, "127.0.0.1", 0, &o, fake_handle, NULL, &f->http)) <
        0)
        return rc;
    f->port = core_http_server_port(f->http);
    return pthread_create(&f->thread, NULL, fake_run, f) == 0 ? 0 : -EAGAIN;
}

/* ---- the controller, in its own thread ---- */

typedef struct controller {
    ctl_serve_opts_t o;
    pthread_t thread;
    int rc;
} controller_t;

static void *controller_run(void *arg)
{
    controller_t *c = arg;

    c->rc = ctl_serve_main(&c->o);
    return NULL;
}

/* ---- helpers ---- */

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

static long rss_kb(void)
{
    char *text = NULL, *p;
    size_t len = 0;
    long kb = -1;

    if (core_read_file("/proc/self/status", 1 << 16, &text, &len) == 0 &&
        (p = strstr(text, "VmRSS:")) != NULL)
        kb = strtol(p + 6, NULL, 10);
    free(text);
    return kb;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, int p)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n ? v[(n - 1) * (size_t)p / 100] : 0;
}

typedef struct api {
    char base[64];
    char *token;
} api_t;

static int call(const api_t *a, const char *method, const char *path, const cJSON *body,
                cJSON **resp)
{
    char *url = core_xasprintf("%s%s", a->base, path);
    long status = 0;
    int rc = core_http_json(method, url, a->token, body, 30000, &status, resp);

    free(url);
    return rc;
}

/* READY replicas over every service, or -1. */
static int ready_replicas(const api_t *a, int *services)
{
    cJSON *resp = NULL, *svc;
    int ready = 0;

    if (call(a, "GET", "/api/services", NULL, &resp) < 0) {
        cJSON_Delete(resp);
        return -1;
    }
    *services = 0;
    cJSON_ArrayForEach(svc, cJSON_GetObjectItem(resp, "services"))
    {
        (*services)++;
        ready += cJSON_GetObjectItem(svc, "ready")->valueint;
    }
    cJSON_Delete(resp);
    return ready;
}

static double run_status(const opts_t *o)
{
    char *argv[] = {(char *)o->sky, "serve", "status", NULL};
    posix_spawn_file_actions_t fa;
    double t0 = now_ms();
    pid_t pid;
    int st;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, o->sky, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? now_ms() - t0 : -1;
}

/* A service of <n> replicas listening on REPLICA_PORT (the fake answers for them). */
static char *service_yaml(int n)
{
    return core_xasprintf("service:\n"
                          "  readiness_probe: /\n"
                          "  replicas: %d\n"
                          "resources:\n"
                          "  ports: %d\n"
                          "  cpus: 2\n"
                          "run: python3 -m http.server %d\n",
                          n, REPLICA_PORT, REPLICA_PORT);
}

static int bench(const opts_t *o, const char *home)
{
    fake_server_t fs;
    fake_cloud_t *cloud = NULL;
    fake_cloud_opts_t fo;
    core_prov_registry_t *reg = NULL;
    core_prov_driver_t drv;
    controller_t ctl;
    api_t a;
    char *path, *text = NULL;
    size_t len = 0;
    int total = o->services * o->replicas, n_svc = 0, ready = 0, rc = 1, started = 0;
    long rss0, rss1;
    size_t heap0 = 0, heap1;
    double t_up, since, *lat_cli, *lat_api;
    cJSON *stats = NULL, *tick, *dec;

    memset(&a, 0, sizeof(a));
    if (fake_start(&fs) < 0) {
        fprintf(stderr, "serve_scale: cannot start the fake agent\n");
        return 1;
    }
    memset(&fo, 0, sizeof(fo));
    fo.agent_port = fs.port;
    fo.port_offset = fs.port - REPLICA_PORT;
    fake_cloud_new(&fo, &cloud);
    drv = fake_cloud_driver(cloud, NULL);
    core_prov_registry_new(&drv, 1, &reg);
    memset(&ctl, 0, sizeof(ctl));
    ctl.o.provs = reg;
    pthread_create(&ctl.thread, NULL, controller_run, &ctl);

    /* The controller writes its port once it listens. */
    path = core_xasprintf("%s/serve/controller.port", home);
    for (int i = 0; i < 200 && core_read_file(path, 64, &text, &len) < 0; i++)
        usleep(50 * 1000);
    free(path);
    if (!text) {
        fprintf(stderr, "serve_scale: the controller did not start\n");
        goto out;
    }
    snprintf(a.base, sizeof(a.base), "http://127.0.0.1:%ld", strtol(text, NULL, 10));
    free(text);
    started = 1;
    path = core_xasprintf("%s/token", home);
    core_token_load(path, &a.token);
    free(path);

    /* Half the replicas, then the other half by `sky serve update`: the memory of
     * the second half is what a replica costs, services and start-up aside. */
    t_up = now_ms();
    for (int half = 0; half < 2; half++) {
        int want;

        if (half) {
            rss0 = rss_kb();
            heap0 = mallinfo2().uordblks;
        }
        for (int i = 0; i < o->services; i++) {
            cJSON *body = cJSON_CreateObject(), *resp = NULL;
            char path2[64], name[32];
            char *yaml = service_yaml(half ? o->replicas : (o->replicas + 1) / 2);

            snprintf(name, sizeof(name), "svc-%02d", i);
            snprintf(path2, sizeof(path2), "/api/services/%s/update", name);
            if (!half)
                cJSON_AddStringToObject(body, "name", name);
            cJSON_AddStringToObject(body, "yaml", yaml);
            cJSON_AddStringToObject(body, "cwd", home);
            if (call(&a, "POST", half ? path2 : "/api/services", body, &resp) < 0) {
                fprintf(stderr, "serve_scale: sky serve %s %s failed\n", half ? "update" : "up",
                        name);
                cJSON_Delete(body);
                cJSON_Delete(resp);
                free(yaml);
                goto down;
            }
            cJSON_Delete(body);
            cJSON_Delete(resp);
            free(yaml);
        }
        want = half ? total : o->services * ((o->replicas + 1) / 2);
        for (int i = 0; i < 600 && (ready = ready_replicas(&a, &n_svc)) < want; i++)
            usleep(500 * 1000);
        if (ready < want) {
            fprintf(stderr, "serve_scale: %d of %d replicas READY after 300 s\n", ready, want);
            goto down;
        }
    }
    t_up = (now_ms() - t_up) / 1000;
    rss1 = rss_kb();
    heap1 = mallinfo2().uordblks;

    /* The steady window: ticks from now on. */
    call(&a, "GET", "/api/controller", NULL, &stats);
    since = cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "tick"), "total")->valuedouble;
    cJSON_Delete(stats);
    stats = NULL;
    lat_cli = core_xcalloc((size_t)o->status_runs, sizeof(double));
    lat_api = core_xcalloc((size_t)o->status_runs, sizeof(double));
    {
        double end = now_ms() + o->window_s * 1000, gap = o->window_s * 1000 / o->status_runs;

        for (int i = 0; i < o->status_runs; i++) {
            double t0 = now_ms();
            cJSON *resp = NULL;

            lat_cli[i] = run_status(o);
            t0 = now_ms();
            call(&a, "GET", "/api/services", NULL, &resp);
            lat_api[i] = now_ms() - t0;
            cJSON_Delete(resp);
            while (now_ms() < t0 + gap && now_ms() < end)
                usleep(20 * 1000);
        }
        while (now_ms() < end)
            usleep(50 * 1000);
    }
    {
        char q[64];

        snprintf(q, sizeof(q), "/api/controller?since=%.0f", since);
        call(&a, "GET", q, NULL, &stats);
    }
    tick = cJSON_GetObjectItem(stats, "tick");
    dec = cJSON_GetObjectItem(tick, "decision");
    ready = ready_replicas(&a, &n_svc);
    printf("serve_scale: %d services x %d replicas = %d replicas (%d READY at the end), "
           "all READY %.1f s after the first sky serve up (half at up, half by update)\n",
           o->services, o->replicas, total, ready, t_up);
    printf("  tick (every 200 ms), %.0f s window: %.0f ticks p50 %.3f ms p99 %.3f ms; "
           "the %.0f with an autoscaler decision p50 %.3f ms p99 %.3f ms; max since start %.1f "
           "ms\n",
           o->window_s, cJSON_GetObjectItem(tick, "count")->valuedouble,
           cJSON_GetObjectItem(tick, "p50_ms")->valuedouble,
           cJSON_GetObjectItem(tick, "p99_ms")->valuedouble,
           cJSON_GetObjectItem(dec, "count")->valuedouble,
           cJSON_GetObjectItem(dec, "p50_ms")->valuedouble,
           cJSON_GetObjectItem(dec, "p99_ms")->valuedouble,
           cJSON_GetObjectItem(tick, "max_ms")->valuedouble);
    {
        int bad = 0;

        for (int i = 0; i < o->status_runs; i++)
            bad += lat_cli[i] < 0;
        printf("  sky serve status (CLI process, %d runs%s): p50 %.1f ms p99 %.1f ms\n",
               o->status_runs, bad ? ", some FAILED" : "", pct(lat_cli, (size_t)o->status_runs, 50),
               pct(lat_cli, (size_t)o->status_runs, 99));
    }
    printf("  GET /api/services (%d runs): p50 %.1f ms p99 %.1f ms\n", o->status_runs,
           pct(lat_api, (size_t)o->status_runs, 50), pct(lat_api, (size_t)o->status_runs, 99));
    {
        int added = total - o->services * ((o->replicas + 1) / 2);

        printf("  memory for the last %d replicas: heap in use +%.2f KiB per replica, RSS +%.2f "
               "KiB per replica (the fake cloud's record of its instance included; "
               "sizeof(ctl_replica_t) = %zu B)\n",
               added, added ? ((double)heap1 - (double)heap0) / 1024 / added : 0,
               added ? (double)(rss1 - rss0) / added : 0, sizeof(ctl_replica_t));
    }
    free(lat_cli);
    free(lat_api);
    rc = ready == total ? 0 : 1;
down:
    for (int i = 0; i < o->services; i++) {
        char p2[64];
        cJSON *resp = NULL;

        snprintf(p2, sizeof(p2), "/api/services/svc-%02d/down", i);
        call(&a, "POST", p2, NULL, &resp);
        cJSON_Delete(resp);
    }
    /* The LBs stop with their services; a service row goes once its replicas are terminated. */
    for (int i = 0; i < 240 && (ready_replicas(&a, &n_svc) < 0 || n_svc > 0); i++)
        usleep(500 * 1000);
    if (n_svc > 0) {
        fprintf(stderr, "serve_scale: %d services still up after down\n", n_svc);
        rc = 1;
    }
out:
    cJSON_Delete(stats);
    free(a.token);
    if (started)
        kill(getpid(), SIGTERM); /* the controller's own signal handling stops its loop */
    pthread_join(ctl.thread, NULL);
    core_prov_registry_free(reg);
    fake_cloud_free(cloud);
    return rc;
}

/* A whole number in [1, hi]. */
static int whole(const char *s, double hi, int *out)
{
    double d;

    if (core_parse_num(s, 1, hi, &d) < 0 || d != floor(d))
        return -EINVAL;
    *out = (int)d;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: serve_scale [--services N] [--replicas N] [--window S] [--status-runs N]\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"services", required_argument, NULL, 's'}, {"replicas", required_argument, NULL, 'r'},
        {"window", required_argument, NULL, 'w'},   {"status-runs", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    opts_t o = {.services = 50, .replicas = 20, .window_s = 60, .status_runs = 20};
    char home[] = "/tmp/sky-serve-scale-XXXXXX";
    int c, rc;

    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        int bad = 0;

        switch (c) {
        case 's':
            bad = whole(optarg, 1000, &o.services) < 0;
            break;
        case 'r':
            bad = whole(optarg, 1000, &o.replicas) < 0;
            break;
        case 'w':
            bad = core_parse_num(optarg, 1, 3600, &o.window_s) < 0;
            break;
        case 'n':
            bad = whole(optarg, 1000, &o.status_runs) < 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "serve_scale: bad value '%s'\n", optarg);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    core_log_init("serve_scale", CORE_LOG_WARN);
    if (!(o.sky = core_find_program("sky"))) {
        fprintf(stderr, "serve_scale: cannot find the sky CLI\n");
        return 1;
    }
    if (!mkdtemp(home)) {
        perror("serve_scale: mkdtemp");
        return 1;
    }
    setenv("SKY_HOME", home, 1);
    /* Away from the ports the tests start at; picked under the machine-wide lock anyway. */
    setenv("SKY_SERVE_LB_PORT_START", "36001", 0);
    rc = bench(&o, home);
    core_rm_rf(home);
    return rc;
}
