#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"

/*
 * sky-agent --listen HOST:PORT --home DIR [--token-file F] [--log-level L]
 *           [--kill-tasks-on-exit] [--tls-cert F --tls-key F] [--port-file F]
 *           [--metadata-dir DIR] [--version]
 * --tls-cert/--tls-key serve HTTPS (SSH pool hosts: the token never crosses
 * the network in clear). --port-file gets the bound port (useful with port 0)
 * once the agent listens. --version prints the version and exits: `sky ssh up`
 * runs it to check that the copied binary can start on the host.
 * --kill-tasks-on-exit SIGKILLs the live task's process group on SIGTERM/SIGINT:
 * for the unprivileged local cloud, where no namespace teardown kills the
 * task's own session (uv_spawn DETACHED = setsid) when the instance goes.
 * --metadata-dir is where the cloud leaves this instance's metadata (the local
 * cloud's preemption notice, served as GET /notice).
 * Exit codes: 0 after SIGTERM/SIGINT, 1 on a runtime failure (cannot bind,
 * cannot use DIR), 2 on bad flags.
 */

typedef struct main_ctx {
    agent_t agent;
    core_http_server_t *server;
    uv_signal_t sigterm, sigint;
    int kill_tasks;
} main_ctx_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: sky-agent --listen HOST:PORT --home DIR [--token-file FILE]"
               " [--log-level debug|info|warn|error] [--kill-tasks-on-exit]"
               " [--tls-cert FILE --tls-key FILE] [--port-file FILE] [--metadata-dir DIR]"
               " [--version]\n");
}

/* "HOST:PORT" or "[V6]:PORT"; port 0..65535. */
static int parse_listen(const char *s, char **host, int *port)
{
    const char *colon;
    const char *hs = s;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return -EINVAL;
        hs = s + 1;
        hl = (size_t)(rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -EINVAL;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || colon[1] == '\0')
        return -EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p < 0 || p > 65535)
        return -EINVAL;
    *host = core_xstrndup(hs, hl);
    *port = (int)p;
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    main_ctx_t *m = h->data;
    if (m->agent.stopping)
        return;
    agent_task_t *t = m->agent.active;
    if (m->kill_tasks && t != NULL && t->pgid > 0 && !core_agent_status_is_terminal(t->status)) {
        /* Without a network namespace nothing else would stop the task's session. */
        CORE_INFO("signal %d: killing task %d (process group %d)", signum, t->id, (int)t->pgid);
        kill(-t->pgid, SIGKILL);
    }
    CORE_INFO("signal %d: shutting down (%s)", signum,
              m->kill_tasks ? "tasks killed" : "tasks are left running");
    agent_close(&m->agent);
    core_http_server_close(m->server);
    m->server = NULL;
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"home", required_argument, NULL, 'H'},
        {"token-file", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'v'},
        {"kill-tasks-on-exit", no_argument, NULL, 'k'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'K'},
        {"port-file", required_argument, NULL, 'p'},
        {"metadata-dir", required_argument, NULL, 'M'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = NULL, *home_arg = NULL, *token_file = NULL;
    const char *tls_cert = NULL, *tls_key = NULL, *port_file = NULL, *metadata_dir = NULL;
    enum core_log_level level = CORE_LOG_INFO;
    char *host = NULL, *token = NULL, *home = NULL;
    int port = 0, opt, rc = 1, lock_fd = -1;
    main_ctx_t m;
    uv_loop_t loop;
    memset(&m, 0, sizeof(m));

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen = optarg;
            break;
        case 'H':
            home_arg = optarg;
            break;
        case 't':
            token_file = optarg;
            break;
        case 'v':
            if (core_log_parse_level(optarg, &level) < 0) {
                fprintf(stderr, "sky-agent: invalid --log-level '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'k':
            m.kill_tasks = 1;
            break;
        case 'c':
            tls_cert = optarg;
            break;
        case 'K':
            tls_key = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'M':
            metadata_dir = optarg;
            break;
        case 'V':
            printf("sky-agent %s\n", AGENT_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "sky-agent: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sky-agent: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (listen == NULL || home_arg == NULL || *home_arg == '\0') {
        fprintf(stderr, "sky-agent: --listen and --home are required\n");
        usage(stderr);
        return 2;
    }
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "sky-agent: --tls-cert and --tls-key go together\n");
        usage(stderr);
        return 2;
    }
    if (parse_listen(listen, &host, &port) < 0) {
        fprintf(stderr, "sky-agent: --listen wants HOST:PORT, got '%s'\n", listen);
        usage(stderr);
        return 2;
    }
    core_log_init("sky-agent", level);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = core_mkdir_p(home_arg, 0755)) < 0) {
        fprintf(stderr, "sky-agent: cannot create --home %s: %s\n", home_arg, core_strerror(rc));
        rc = 1;
        goto out;
    }
    home = realpath(home_arg, NULL);
    if (home == NULL) {
        fprintf(stderr, "sky-agent: --home %s: %s\n", home_arg, strerror(errno));
        rc = 1;
        goto out;
    }
    /* Before anything can start a thread: unshare(CLONE_NEWNS) needs a single thread. */
    agent_mountns_init(&m.agent);
    int can_mount = m.agent.can_mount;
    if (token_file != NULL && (rc = core_token_load(token_file, &token)) < 0) {
        fprintf(stderr, "sky-agent: --token-file %s: %s\n", token_file, core_strerror(rc));
        rc = 1;
        goto out;
    }

    /*
     * One agent per home: a second one would run tasks twice and fight over
     * status files. flock dies with the process, so kill -9 + restart works;
     * O_CLOEXEC keeps tasks from inheriting (and holding) the lock.
     */
    char *lockdir = core_xasprintf("%s/.sky_agent", home);
    char *lockpath = core_xasprintf("%s/lock", lockdir);
    core_mkdir_p(lockdir, 0700);
    lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lockdir);
    free(lockpath);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "sky-agent: another sky-agent is using --home %s (%s)\n", home,
                strerror(errno));
        rc = 1;
        goto out;
    }

    uv_loop_init(&loop);
    if ((rc = agent_init(&m.agent, &loop, home, host)) < 0) {
        fprintf(stderr, "sky-agent: cannot use %s: %s\n", home, core_strerror(rc));
        agent_free(&m.agent);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        rc = 1;
        goto out;
    }
    m.agent.can_mount = can_mount;
    m.agent.metadata_dir = metadata_dir;
    core_http_server_opts_t opts = {
        .max_body = AGENT_MAX_BODY,
        .token = token,
        .tls_cert = tls_cert,
        .tls_key = tls_key,
    };
    rc = core_http_server_start(&loop, host, port, &opts, agent_api_handle, &m.agent, &m.server);
    if (rc < 0) {
        fprintf(stderr, "sky-agent: cannot listen on %s: %s\n", listen, core_strerror(rc));
        agent_close(&m.agent);
        uv_run(&loop, UV_RUN_DEFAULT);
        agent_free(&m.agent);
        uv_loop_close(&loop);
        rc = 1;
        goto out;
    }
    uv_signal_init(&loop, &m.sigterm);
    uv_signal_init(&loop, &m.sigint);
    m.sigterm.data = m.sigint.data = &m;
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_signal, SIGINT);

    agent_schedule(&m.agent);
    if (port_file) {
        char txt[16];
        int n = snprintf(txt, sizeof(txt), "%d\n", core_http_server_port(m.server));
        if ((rc = core_write_file(port_file, txt, (size_t)n, 0644)) < 0)
            CORE_WARN("cannot write --port-file %s: %s", port_file, core_strerror(rc));
    }
    if (strchr(host, ':') != NULL)
        fprintf(stderr, "sky-agent listening on [%s]:%d\n", host, core_http_server_port(m.server));
    else
        fprintf(stderr, "sky-agent listening on %s:%d\n", host, core_http_server_port(m.server));
    fflush(stderr);

    uv_run(&loop, UV_RUN_DEFAULT);
    agent_free(&m.agent);
    if (uv_loop_close(&loop) != 0)
        CORE_WARN("event loop closed with handles still open");
    rc = 0;
out:
    if (lock_fd >= 0)
        close(lock_fd);
    free(host);
    free(home);
    free(token);
    return rc;
}
