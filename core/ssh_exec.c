/*
 * The system OpenSSH client as a subprocess: argv, stdin/stdout/stderr
 * pumped with poll() (a large stdin and a chatty command cannot deadlock),
 * an overall deadline, and the failure classified from ssh's stderr.
 */
#include "core/ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/util.h"

extern char **environ;

const char *core_ssh_status_name(core_ssh_status_t s)
{
    switch (s) {
    case CORE_SSH_OK: return "ok";
    case CORE_SSH_FAILED: return "failed";
    case CORE_SSH_UNREACHABLE: return "unreachable";
    case CORE_SSH_AUTH: return "auth failed";
    case CORE_SSH_HOSTKEY: return "host key changed";
    }
    return "?";
}

core_ssh_status_t core_ssh_classify(int exit_code, const char *err)
{
    if (exit_code == 0)
        return CORE_SSH_OK;
    if (exit_code != 255)
        return CORE_SSH_FAILED;
    if (strstr(err, "REMOTE HOST IDENTIFICATION HAS CHANGED") ||
        strstr(err, "Host key verification failed"))
        return CORE_SSH_HOSTKEY;
    if (strstr(err, "Permission denied") || strstr(err, "Too many authentication failures") ||
        strstr(err, "no matching host key type") || strstr(err, "Authentication failed"))
        return CORE_SSH_AUTH;
    /* Timeouts, refusals, resets, DNS, a command that killed ssh: no session. */
    return CORE_SSH_UNREACHABLE;
}

void core_ssh_reason(const char *err, char *out, size_t outlen)
{
    /* The last non-empty line that is not one of ssh's warnings. */
    const char *best = NULL, *best_end = NULL, *p = err;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        const char *end = e ? e : p + strlen(p);
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\r'))
            q++;
        const char *tail = end;
        while (tail > q && (tail[-1] == '\r' || tail[-1] == ' '))
            tail--;
        if (tail > q && strncmp(q, "Warning: Permanently added", 26) != 0) {
            best = q;
            best_end = tail;
        }
        p = e ? e + 1 : NULL;
    }
    if (!best) {
        snprintf(out, outlen, "no message from ssh");
        return;
    }
    snprintf(out, outlen, "%.*s", (int)(best_end - best), best);
}

static void add(char ***argv, size_t *n, char *s)
{
    *argv = core_xrealloc(*argv, (*n + 2) * sizeof(**argv));
    (*argv)[(*n)++] = s;
    (*argv)[*n] = NULL;
}

char **core_ssh_argv(const core_ssh_host_t *h, const char *script)
{
    char **argv = NULL;
    size_t n = 0;
    char *kh = core_home_path("ssh/known_hosts");
    add(&argv, &n, core_xstrdup("ssh"));
    add(&argv, &n, core_xstrdup("-T"));
    const char *opts[] = {
        "BatchMode=yes",
        "StrictHostKeyChecking=accept-new",
        "LogLevel=ERROR", /* "Permanently added" notes are no news */
        "ServerAliveInterval=5",
        "ServerAliveCountMax=2",
        "ControlMaster=no",
        "ControlPath=none",
        "ForwardAgent=no",
        "ForwardX11=no",
        "RequestTTY=no",
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        add(&argv, &n, core_xstrdup("-o"));
        add(&argv, &n, core_xstrdup(opts[i]));
    }
    add(&argv, &n, core_xstrdup("-o"));
    add(&argv, &n, core_xasprintf("ConnectTimeout=%d", CORE_SSH_CONNECT_TIMEOUT_S));
    add(&argv, &n, core_xstrdup("-o"));
    add(&argv, &n, core_xasprintf("UserKnownHostsFile=%s", kh));
    if (h->identity_file) {
        add(&argv, &n, core_xstrdup("-o"));
        add(&argv, &n, core_xstrdup("IdentitiesOnly=yes"));
        add(&argv, &n, core_xstrdup("-i"));
        add(&argv, &n, core_xstrdup(h->identity_file));
    }
    if (h->user) {
        add(&argv, &n, core_xstrdup("-l"));
        add(&argv, &n, core_xstrdup(h->user));
    }
    if (h->port) {
        add(&argv, &n, core_xstrdup("-p"));
        add(&argv, &n, core_xasprintf("%d", h->port));
    }
    add(&argv, &n, core_xstrdup("--"));
    add(&argv, &n, core_xstrdup(h->host));
    /* One argument: the remote login shell runs it; `sh -c` makes it POSIX. */
    char *quoted = core_xmalloc(strlen(script) * 4 + 3);
    char *q = quoted;
    *q++ = '\'';
    for (const char *s = script; *s; s++) {
        if (*s == '\'') {
            memcpy(q, "'\\''", 4);
            q += 4;
        } else {
            *q++ = *s;
        }
    }
    *q++ = '\'';
    *q = '\0';
    add(&argv, &n, core_xasprintf("exec sh -c %s", quoted));
    free(quoted);
    free(kh);
    return argv;
}

void core_ssh_argv_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

void core_ssh_result_free(core_ssh_result_t *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

typedef struct sink {
    char *buf;
    size_t len;
} sink_t;

static void take(sink_t *s, int fd, int *open)
{
    char tmp[16384];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        *open = 0;
        return;
    }
    size_t keep = (size_t)n;
    if (s->len + keep > CORE_SSH_MAX_OUTPUT)
        keep = CORE_SSH_MAX_OUTPUT - s->len;
    if (keep) {
        s->buf = core_xrealloc(s->buf, s->len + keep + 1);
        memcpy(s->buf + s->len, tmp, keep);
        s->len += keep;
        s->buf[s->len] = '\0';
    }
}

/* stdin from <input> (a buffer), or from <in_fd> when >= 0. */
static int run(const core_ssh_host_t *h, const char *script, const void *input, size_t in_len,
               int in_fd, long timeout_ms, core_ssh_result_t *res)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rc = 0;
    memset(res, 0, sizeof(*res));
    char *khdir = core_home_path("ssh");
    core_mkdir_p(khdir, 0700);
    free(khdir);
    if ((in_fd < 0 && pipe2(in, O_CLOEXEC)) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
        rc = -errno;
        goto out;
    }
    char **argv = core_ssh_argv(h, script);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_fd >= 0 ? in_fd : in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    /* Its own process group: a deadline kills ssh and anything it started. */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid;
    int sr = posix_spawnp(&pid, "ssh", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    core_ssh_argv_free(argv);
    if (in[0] >= 0)
        close(in[0]);
    close(out[1]);
    close(err[1]);
    in[0] = out[1] = err[1] = -1;
    if (sr != 0) {
        rc = -sr;
        goto out;
    }
    sink_t so = {0}, se = {0};
    size_t sent = 0;
    int out_open = 1, err_open = 1, timed_out = 0;
    if (in[1] >= 0)
        fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (in[1] >= 0 && (!input || in_len == 0)) {
        close(in[1]);
        in[1] = -1;
    }
    unsigned long long deadline = core_mono_ms() + (unsigned long long)timeout_ms;
    while (out_open || err_open) {
        struct pollfd p[3];
        int np = 0, io = -1, ie = -1, ii = -1;
        if (out_open) {
            p[np] = (struct pollfd){out[0], POLLIN, 0};
            io = np++;
        }
        if (err_open) {
            p[np] = (struct pollfd){err[0], POLLIN, 0};
            ie = np++;
        }
        if (in[1] >= 0) {
            p[np] = (struct pollfd){in[1], POLLOUT, 0};
            ii = np++;
        }
        unsigned long long now = core_mono_ms();
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        int pr = poll(p, (nfds_t)np, (int)(deadline - now));
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (io >= 0 && p[io].revents)
            take(&so, out[0], &out_open);
        if (ie >= 0 && p[ie].revents)
            take(&se, err[0], &err_open);
        if (ii >= 0 && p[ii].revents) {
            ssize_t w = (p[ii].revents & POLLOUT)
                            ? write(in[1], (const char *)input + sent, in_len - sent)
                            : -1;
            if (w > 0)
                sent += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == in_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    if (timed_out)
        kill(-pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    res->out = so.buf ? so.buf : core_xstrdup("");
    res->out_len = so.len;
    res->err = se.buf ? se.buf : core_xstrdup("");
    if (timed_out) {
        res->exit_code = 255;
        res->status = CORE_SSH_UNREACHABLE;
        char *e = core_xasprintf("%sno answer within %ld s\n", res->err, timeout_ms / 1000);
        free(res->err);
        res->err = e;
    } else {
        res->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
        res->status = core_ssh_classify(res->exit_code, res->err);
    }
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    return rc;
}

int core_ssh_run(const core_ssh_host_t *h, const char *script, const void *input, size_t in_len,
                 long timeout_ms, core_ssh_result_t *res)
{
    return run(h, script, input, in_len, -1, timeout_ms, res);
}

int core_ssh_run_fd(const core_ssh_host_t *h, const char *script, int in_fd, long timeout_ms,
                    core_ssh_result_t *res)
{
    return run(h, script, NULL, 0, in_fd, timeout_ms, res);
}
