/*
 * sky-lb supervision: one load balancer process per service, spawned in its
 * own session so that it outlives a controller restart and is re-adopted;
 * restarted at once after a healthy run, with a backoff when it crash-loops.
 * Its sync with the controller (ctl_serve_lb_sync) feeds the autoscaler and
 * returns the ready set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/taskrun.h"
#include "core/util.h"
#include "ctl_serve.h"
#include "ctl_serve_lb.h"
#include "ctl_service.h"

/* A sky-lb that ran this long before exiting is restarted without backoff;
 * one that exits sooner is crash-looping (bad flags, port taken) and backs off. */
#define LB_HEALTHY_RUN_S 2.0

static int port_free(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    if (fd < 0)
        return 0;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int ctl_lb_pick_port(ctl_serve_t *s, int taken)
{
    for (int p = s->cfg.lb_port_start; p < 65536; p++) {
        bool used = p == taken;

        for (ctl_service_t *o = s->services; o; o = o->next)
            used |= !o->deleted && (o->row.lb_port == p || o->row.lb_admin_port == p);
        if (!used && port_free(p))
            return p;
    }
    return -EADDRINUSE;
}

/*
 * Controllers of other SKY_HOMEs pick ports on the same machine, and two
 * sky-lbs that bind one port share it through SO_REUSEPORT. So picking a
 * port and starting the LB that takes it happen under a machine-wide lock,
 * released once the port is in use (or after LB_PORT_WAIT_MS; the LB binds
 * within milliseconds).
 */
#define LB_PORT_LOCK    "sky-serve-lb-ports.lock"
#define LB_PORT_WAIT_MS 3000

int ctl_lb_port_lock(void)
{
    const char *dirs[] = {"/run", "/tmp"};

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dirs[i], LB_PORT_LOCK);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            continue;
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                close(fd);
                return -1;
            }
        }
        return fd;
    }
    return -1;
}

void ctl_lb_port_unlock(int fd, int port, int admin_port)
{
    if (fd < 0)
        return;
    for (int waited = 0; port > 0 && waited < LB_PORT_WAIT_MS && port_free(port); waited += 10)
        usleep(10 * 1000);
    for (int waited = 0; admin_port > 0 && waited < LB_PORT_WAIT_MS && port_free(admin_port);
         waited += 10)
        usleep(10 * 1000);
    close(fd);
}

static int pid_is_lb(int pid, const char *svc)
{
    char path[64], buf[4096];
    ssize_t n;
    int fd, is_lb = 0, has_svc = 0;

    if (pid <= 0 || kill(pid, 0) != 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
        const char *a = buf + i;
        const char *slash = strrchr(a, '/');

        if (i == 0)
            is_lb = strcmp(slash ? slash + 1 : a, "sky-lb") == 0;
        if (strcmp(a, "--service") == 0 && i + (ssize_t)strlen(a) + 1 < n)
            has_svc = strcmp(a + strlen(a) + 1, svc) == 0;
    }
    return is_lb && has_svc;
}

static void lb_proc_closed(uv_handle_t *h)
{
    free(h);
}

static void on_lb_exit(uv_process_t *p, int64_t status, int sig)
{
    ctl_service_t *svc = p->data;

    uv_close((uv_handle_t *)p, lb_proc_closed);
    if (!svc)
        return;
    svc->lb_proc = NULL;
    svc->row.lb_pid = 0;
    if (svc->deleted || ctl_service_going_down(svc) || svc->s->stopping)
        return;
    /* The endpoint is down until the LB is back: after a healthy run restart
     * it at once; only a crash loop waits out the backoff. */
    double wait = 0;
    if (core_now() - svc->lb_spawned_at < LB_HEALTHY_RUN_S)
        wait = ctl_backoff_next(&svc->lb_backoff);
    else
        ctl_backoff_reset(&svc->lb_backoff);
    svc->lb_restart_at = core_now() + wait;
    CORE_WARN("%s: sky-lb exited (status %lld, signal %d); restarting in %.1f s", svc->row.name,
              (long long)status, sig, wait);
    ctl_lb_ensure(svc->s, svc);
}

/* The URL the LB routes to for <r>, or NULL when <r> is not in its ready set. */
char *ctl_lb_url(const ctl_service_t *svc, const ctl_replica_t *r)
{
    bool active = false;

    if (ctl_replica_row_status(&r->fr.row) != CTL_REPLICA_READY || !r->fr.row.ip[0] ||
        !ctl_fleet_routable(&svc->fleet, &r->fr, core_now()))
        return NULL;
    for (size_t i = 0; i < svc->row.n_active; i++)
        active |= svc->row.active_versions[i] == r->fr.row.version;
    if (!active)
        return NULL;
    return core_xasprintf("http://%s:%d", r->fr.row.ip,
                          r->fr.row.replica_port + r->fr.row.port_offset);
}

static int lb_spawn(ctl_serve_t *s, ctl_service_t *svc)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    char listen[32], admin[32], ctrl[256], sync[32], *log = NULL, *cert = NULL, *key = NULL;
    const char **argv;
    char **urls;
    ctl_version_t *v = ctl_service_latest(svc);
    int n = 0, n_urls = 0, n_reps = 0, fd, rc, port_lock = -1;
    uv_process_t *p;

    if (!s->lb_path) {
        CORE_ERROR("%s: cannot find the sky-lb program", svc->row.name);
        return -ENOENT;
    }
    /* Ports stay with the service: a restarted LB serves (and is scraped)
     * where it was. A service from before admin listeners gets one now. */
    if (svc->row.lb_port <= 0 || svc->row.lb_admin_port <= 0) {
        port_lock = ctl_lb_port_lock();
        rc = svc->row.lb_port > 0 ? svc->row.lb_port : ctl_lb_pick_port(s, 0);
        if (rc > 0) {
            svc->row.lb_port = rc;
            rc = svc->row.lb_admin_port > 0 ? svc->row.lb_admin_port
                                            : ctl_lb_pick_port(s, svc->row.lb_port);
        }
        if (rc < 0) {
            ctl_lb_port_unlock(port_lock, 0, 0);
            return rc;
        }
        svc->row.lb_admin_port = rc;
    }
    snprintf(listen, sizeof(listen), "0.0.0.0:%d", svc->row.lb_port);
    snprintf(admin, sizeof(admin), "127.0.0.1:%d", svc->row.lb_admin_port);
    /* The path names the service: the LB posts {controller}/controller/load_balancer_sync. */
    snprintf(ctrl, sizeof(ctrl), "http://127.0.0.1:%d/lb/%s", s->port, svc->row.name);
    snprintf(sync, sizeof(sync), "%g", s->cfg.lb_sync_interval);
    CTL_FOR_EACH_REPLICA(svc, r)
    n_reps++;
    argv = core_xcalloc((size_t)(20 + 2 * n_reps), sizeof(*argv));
    urls = core_xcalloc((size_t)(n_reps + 1), sizeof(*urls));
    argv[n++] = s->lb_path;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--controller";
    argv[n++] = ctrl;
    argv[n++] = "--service";
    argv[n++] = svc->row.name;
    argv[n++] = "--controller-token-file";
    argv[n++] = s->token_path;
    /* /metrics and /-/replicas on loopback, behind the same token. */
    argv[n++] = "--admin";
    argv[n++] = admin;
    argv[n++] = "--sync-interval";
    argv[n++] = sync;
    argv[n++] = "--policy";
    argv[n++] = svc->row.lb_policy[0] ? svc->row.lb_policy : "least_load";
    /* A restarted LB routes from its first request on, not after its first sync. */
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        if ((urls[n_urls] = ctl_lb_url(svc, r)) != NULL) {
            argv[n++] = "--replica";
            argv[n++] = urls[n_urls++];
        }
    }
    if (v && v->task && v->task->service->tls_certfile) {
        /* Relative to the directory the CLI ran in, like the workdir. */
        cert = core_resolve_path(v->task->service->tls_certfile, v->row.cwd);
        key = core_resolve_path(v->task->service->tls_keyfile, v->row.cwd);
        argv[n++] = "--tls-cert";
        argv[n++] = cert;
        argv[n++] = "--tls-key";
        argv[n++] = key;
    }
    argv[n] = NULL;
    log = ctl_serve_log_path(s, svc->row.name, "load_balancer.log");
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(log);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fd;
    o.file = s->lb_path;
    o.args = (char **)argv;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = on_lb_exit;
    /* Its own session: the LB outlives a controller restart and is re-adopted. */
    o.flags = UV_PROCESS_DETACHED;
    p = core_xcalloc(1, sizeof(*p));
    rc = uv_spawn(s->loop, p, &o);
    close(fd);
    if (rc < 0) {
        free(p);
        CORE_ERROR("%s: spawning sky-lb: %s", svc->row.name, uv_strerror(rc));
        goto out;
    }
    p->data = svc;
    svc->lb_proc = p;
    svc->lb_spawned_at = core_now();
    svc->row.lb_pid = p->pid;
    svc->row.lb_ctrl_port = s->port;
    ctl_service_save(svc);
    CORE_INFO("%s: sky-lb pid %d on port %d, admin 127.0.0.1:%d (%d ready replicas)", svc->row.name,
              p->pid, svc->row.lb_port, svc->row.lb_admin_port, n_urls);
out:
    ctl_lb_port_unlock(port_lock, rc == 0 ? svc->row.lb_port : 0,
                       rc == 0 ? svc->row.lb_admin_port : 0);
    for (int i = 0; i < n_urls; i++)
        free(urls[i]);
    free(urls);
    free(argv);
    free(cert);
    free(key);
    return rc;
}

void ctl_lb_ensure(ctl_serve_t *s, ctl_service_t *svc)
{
    if (svc->lb_proc || ctl_service_going_down(svc))
        return;
    if (svc->row.lb_pid > 0) {
        if (pid_is_lb(svc->row.lb_pid, svc->row.name) && svc->row.lb_ctrl_port == s->port)
            return; /* adopted and alive */
        if (pid_is_lb(svc->row.lb_pid, svc->row.name)) {
            /* It syncs with a port we no longer have. */
            kill(svc->row.lb_pid, SIGTERM);
        } else if (svc->lb_restart_at == 0) {
            /* An adopted LB had been running: restart it at once. */
            CORE_WARN("%s: sky-lb (pid %d) is gone", svc->row.name, svc->row.lb_pid);
            svc->lb_restart_at = core_now();
        }
        svc->row.lb_pid = 0;
        ctl_service_save(svc);
    }
    if (svc->lb_restart_at > core_now())
        return;
    svc->lb_restart_at = 0;
    if (lb_spawn(s, svc) < 0)
        svc->lb_restart_at = core_now() + ctl_backoff_next(&svc->lb_backoff);
}

void ctl_lb_stop(ctl_serve_t *s, ctl_service_t *svc)
{
    (void)s;
    if (svc->lb_proc) {
        uv_process_kill(svc->lb_proc, SIGTERM);
    } else if (svc->row.lb_pid > 0 && pid_is_lb(svc->row.lb_pid, svc->row.name)) {
        kill(svc->row.lb_pid, SIGTERM);
    }
}

/* What the LB sent each replica and what came back since its last sync
 * (the /metrics of the controller sums them). */
static void add_replica_stats(ctl_service_t *svc, const ctl_lb_report_t *rep)
{
    for (size_t i = 0; i < rep->n_reps; i++) {
        const ctl_lb_rep_report_t *st = &rep->reps[i];

        /* By address, ready or not: the last requests of a replica that just
         * left the ready set count too. */
        CTL_FOR_EACH_REPLICA(svc, r)
        {
            char u[96];

            if (!r->fr.row.ip[0])
                continue;
            snprintf(u, sizeof(u), "http://%s:%d", r->fr.row.ip,
                     r->fr.row.replica_port + r->fr.row.port_offset);
            if (strcmp(u, st->url) == 0) {
                if (st->has_counts) {
                    r->lb_requests += st->requests;
                    r->lb_failures += st->failures;
                }
                for (int c = 0; c < CTL_LB_CLASSES; c++)
                    r->lb_responses[c] += st->responses[c];
                break;
            }
        }
    }
}

cJSON *ctl_serve_lb_sync(ctl_serve_t *s, ctl_service_t *svc, const cJSON *body)
{
    cJSON *out = cJSON_CreateObject(), *info = cJSON_AddObjectToObject(out, "replica_info");
    ctl_lb_report_t rep;

    (void)s;
    ctl_lb_report_parse(body, &rep);
    if (rep.has_ts && svc->fleet.scaler_ok)
        ctl_scaler_add_requests(&svc->fleet.scaler, rep.ts, rep.n_ts, core_now());
    add_replica_stats(svc, &rep);
    ctl_lb_report_free(&rep);
    if (ctl_service_going_down(svc))
        return out;
    CTL_FOR_EACH_REPLICA(svc, r)
    {
        cJSON *o;
        char *u = ctl_lb_url(svc, r);

        if (!u)
            continue;
        o = cJSON_AddObjectToObject(info, u);
        cJSON_AddNumberToObject(o, "replica_id", r->fr.row.id);
        cJSON_AddNumberToObject(o, "version", r->fr.row.version);
        cJSON_AddStringToObject(o, "gpu_type", "unknown");
        free(u);
    }
    return out;
}
