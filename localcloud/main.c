#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "lc.h"

/*
 * sky-localcloud: the local cloud daemon. One per $SKY_HOME (flock on
 * $SKY_HOME/localcloud/lock). Instances outlive it: SIGTERM or kill -9
 * leave them running, and the next daemon reloads them from state.db.
 */

static void usage(FILE *f)
{
    fprintf(f, "usage: sky-localcloud [--home DIR] [--listen 127.0.0.1:PORT] "
               "[--provision-delay S] [--seed N] [--log-level debug|info|warn|error]\n");
}

static void on_signal(uv_signal_t *s, int signum)
{
    lc_daemon_t *d = s->data;
    CORE_INFO("signal %d: exiting, instances keep running", signum);
    d->stopping = 2;
    uv_stop(d->loop);
}

static void on_check_timer(uv_timer_t *t)
{
    lc_daemon_t *d = t->data;
    for (lc_inst_t *in = d->insts; in; in = in->next)
        lc_inst_check(d, in);
}

/* A tag unique on this machine keeps two daemons' namespaces apart. */
static int choose_tag(lc_daemon_t *d)
{
    char buf[16];
    if (lc_store_meta_get(d, "tag", buf, sizeof(buf)) == 0 && strlen(buf) == 4) {
        snprintf(d->tag, sizeof(d->tag), "%.4s", buf);
        return 0;
    }
    unsigned seed = (unsigned)(getpid() ^ (unsigned)time(NULL) ^ (unsigned)core_mono_ms());
    for (int tries = 0; tries < 1000; tries++) {
        seed = seed * 1103515245u + 12345u;
        snprintf(buf, sizeof(buf), "%04x", (seed >> 8) & 0xffff);
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "sky-%.4s-", buf);
        char **names = NULL;
        size_t n = 0;
        lc_net_list_netns(prefix, &names, &n);
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        if (n == 0)
            break;
    }
    snprintf(d->tag, sizeof(d->tag), "%.4s", buf);
    return lc_store_meta_set(d, "tag", buf);
}

int main(int argc, char **argv)
{
    const char *home_arg = NULL, *listen = "127.0.0.1:0";
    double delay = 2.0;
    unsigned long long seed = 0;
    int have_seed = 0, force_process = 0;
    enum core_log_level level = CORE_LOG_INFO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--process-mode") == 0) {
            /* Testing aid: the non-root fallback even as root. */
            force_process = 1;
            continue;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        char *end = NULL;
        if (strcmp(a, "--home") == 0) {
            home_arg = v;
        } else if (strcmp(a, "--listen") == 0) {
            listen = v;
        } else if (strcmp(a, "--provision-delay") == 0) {
            if (core_parse_num(v, 0, 3600, &delay) < 0) {
                fprintf(stderr, "sky-localcloud: bad --provision-delay %s\n", v);
                return 2;
            }
        } else if (strcmp(a, "--seed") == 0) {
            seed = strtoull(v, &end, 10);
            if (*end) {
                fprintf(stderr, "sky-localcloud: bad --seed %s\n", v);
                return 2;
            }
            have_seed = 1;
        } else if (strcmp(a, "--log-level") == 0) {
            if (core_log_parse_level(v, &level) < 0) {
                fprintf(stderr, "sky-localcloud: bad --log-level %s\n", v);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
        i++;
    }
    core_log_init("localcloud", level);
    /* Launch setup and health waits hold thread-pool threads; allow many at once. */
    setenv("UV_THREADPOOL_SIZE", "32", 0);
    signal(SIGPIPE, SIG_IGN);

    char host[64];
    int port = 0;
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof(host) || (port = atoi(colon + 1)) < 0 ||
        port > 65535) {
        fprintf(stderr, "sky-localcloud: bad --listen %s (want HOST:PORT)\n", listen);
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';

    static lc_daemon_t dd;
    lc_daemon_t *d = &dd;
    d->lock_fd = -1;
    if (home_arg) {
        setenv("SKY_HOME", home_arg, 1);
        core_mkdir_p(home_arg, 0700);
    }
    d->home = core_home_dir();
    d->dir = core_xasprintf("%s/localcloud", d->home);
    d->provision_delay = delay;
    d->mode = (geteuid() == 0 && !force_process) ? LC_MODE_NETNS : LC_MODE_PROCESS;
    if (core_mkdir_p(d->dir, 0700) < 0) {
        CORE_ERROR("cannot create %s", d->dir);
        return 1;
    }
    char *lockpath = core_xasprintf("%s/lock", d->dir);
    d->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    /* A daemon that was just told to go down may need a moment to exit. */
    int locked = 0;
    for (int i = 0; d->lock_fd != -1 && i < 40 && !locked; i++) {
        locked = flock(d->lock_fd, LOCK_EX | LOCK_NB) == 0;
        if (!locked)
            usleep(50000);
    }
    if (!locked) {
        CORE_ERROR("another sky-localcloud runs for %s (lock %s)", d->home, lockpath);
        return 1;
    }
    free(lockpath);

    char *tokpath = core_xasprintf("%s/token", d->home);
    int rc = core_token_load(tokpath, &d->token);
    free(tokpath);
    if (rc < 0) {
        CORE_ERROR("cannot load token: %s", core_strerror(rc));
        return 1;
    }
    char *dbpath = core_xasprintf("%s/state.db", d->dir);
    rc = lc_store_open(d, dbpath);
    free(dbpath);
    if (rc < 0)
        return 1;
    if (!have_seed)
        seed = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 16);
    lc_market_init(&d->market, seed);
    if (lc_store_load(d) < 0)
        return 1;
    choose_tag(d);

    char *cerr = NULL;
    if (core_catalog_load(NULL, &d->catalog, &cerr) < 0) {
        CORE_WARN("no catalog (%s): zones are not validated", cerr ? cerr : "?");
        free(cerr);
        d->catalog = NULL;
    }
    d->agent_path = core_find_program("sky-agent");
    if (!d->agent_path)
        CORE_WARN("sky-agent not found next to sky-localcloud, in the build tree or on PATH: "
                  "launches will fail");

    uv_loop_t *loop = uv_default_loop();
    d->loop = loop;
    uv_timer_init(loop, &d->replay.timer);
    d->replay.timer.data = d;
    uv_timer_init(loop, &d->notice_timer);
    d->notice_timer.data = d;

    core_http_server_opts_t opts = {0};
    opts.token = d->token;
    rc = core_http_server_start(loop, host, port, &opts, lc_api_handle, d, &d->http);
    if (rc < 0) {
        CORE_ERROR("cannot listen on %s: %s", listen, core_strerror(rc));
        return 1;
    }
    int bound = core_http_server_port(d->http);
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", bound);
    char *portpath = core_xasprintf("%s/port", d->dir);
    core_write_file(portpath, buf, (size_t)n, 0600);
    free(portpath);
    n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    char *pidpath = core_xasprintf("%s/pid", d->dir);
    core_write_file(pidpath, buf, (size_t)n, 0600);
    free(pidpath);
    char *downpath = core_xasprintf("%s/down", d->dir);
    unlink(downpath);
    free(downpath);

    if (d->mode == LC_MODE_PROCESS)
        CORE_WARN("not root (or --process-mode): instances are process groups on 127.0.0.x "
                  "with remapped ports, not network namespaces");
    CORE_INFO("sky-localcloud listening on %s:%d (home %s, mode %s, tag %s, delay %.2fs, seed "
              "%llu)",
              host, bound, d->home, d->mode == LC_MODE_NETNS ? "netns" : "process", d->tag, delay,
              seed);

    lc_inst_recover(d);
    lc_inst_notice_tick(d);
    lc_replay_resume(d);

    uv_timer_init(loop, &d->check_timer);
    d->check_timer.data = d;
    uv_timer_start(&d->check_timer, on_check_timer, 1000, 1000);
    uv_signal_init(loop, &d->sigterm);
    d->sigterm.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &d->sigint);
    d->sigint.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);

    uv_run(loop, UV_RUN_DEFAULT);
    CORE_INFO("sky-localcloud exiting");
    /* Clients must not find a port nobody listens on any more. */
    char *pp = core_xasprintf("%s/port", d->dir);
    unlink(pp);
    free(pp);
    pp = core_xasprintf("%s/pid", d->dir);
    unlink(pp);
    free(pp);
    lc_store_close(d);
    /* Jobs may still run in the pool; their instances are recovered next start. */
    _exit(0);
}
