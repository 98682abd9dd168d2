#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "lc.h"

/*
 * Host plumbing: namespaces, veths, the bridge, address claims, processes.
 * Every function here blocks (it runs `ip` and waits), so the daemon calls
 * them from the thread pool, never from its loop.
 *
 * Several daemons (one per SKY_HOME: tests run side by side) share the
 * bridge and the 198.18.0.0/16 block, so address claims are files under a
 * machine-wide directory, taken under a machine-wide flock.
 */

extern char **environ;

static const char *ip_path(void)
{
    static const char *cands[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < CORE_ARRAY_SIZE(cands); i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return "ip";
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Runs argv, capturing stdout+stderr into <out> (may be NULL). Returns the
 * exit status (0 = success), or a negative errno if it could not run. */
int lc_run(char *const argv[], char *out, size_t outlen)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) == -1)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -rc;
    }
    size_t len = 0;
    char sink[512];
    for (;;) {
        char *dst = sink;
        size_t room = sizeof(sink);
        if (out && len + 1 < outlen) {
            dst = out + len;
            room = outlen - len - 1;
        }
        ssize_t n = read(fds[0], dst, room);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (dst != sink)
            len += (size_t)n;
    }
    if (out && outlen)
        out[len] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) == -1) {
        if (errno != EINTR)
            return -errno;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Runs `ip ARGS...` (NULL-terminated); logs failures at debug level. */
static int ipcmd(char *out, size_t outlen, ...)
{
    char *argv[24];
    size_t n = 0;
    argv[n++] = (char *)ip_path();
    va_list ap;
    va_start(ap, outlen);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < CORE_ARRAY_SIZE(argv) - 1)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char buf[512];
    if (!out) {
        out = buf;
        outlen = sizeof(buf);
    }
    int rc = lc_run(argv, out, outlen);
    if (rc != 0) {
        char cmd[256] = "";
        size_t off = 0;
        for (size_t i = 1; i < n && off < sizeof(cmd); i++)
            off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, "%s ", argv[i]);
        CORE_DEBUG("ip %sfailed (%d): %.200s", cmd, rc, out);
    }
    return rc;
}

static const char *run_dir(enum lc_mode mode, char *buf, size_t len)
{
    if (mode == LC_MODE_NETNS)
        snprintf(buf, len, "/run/sky-localcloud");
    else
        snprintf(buf, len, "/tmp/sky-localcloud-%u", (unsigned)getuid());
    return buf;
}

int lc_net_global_lock(enum lc_mode mode)
{
    char dir[128], path[160];
    run_dir(mode, dir, sizeof(dir));
    core_mkdir_p(dir, 0700);
    snprintf(path, sizeof(path), "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1)
        return -errno;
    while (flock(fd, LOCK_EX) == -1) {
        if (errno != EINTR) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    return fd;
}

void lc_net_global_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

int lc_net_ensure_bridge(void)
{
    if (access("/sys/class/net/" LC_BRIDGE, F_OK) != 0) {
        if (ipcmd(NULL, 0, "link", "add", LC_BRIDGE, "type", "bridge", NULL) != 0 &&
            access("/sys/class/net/" LC_BRIDGE, F_OK) != 0)
            return -EIO;
    }
    char out[2048];
    if (ipcmd(out, sizeof(out), "-4", "addr", "show", "dev", LC_BRIDGE, NULL) == 0 &&
        !strstr(out, " " LC_BRIDGE_IP "/")) {
        if (ipcmd(NULL, 0, "addr", "add", LC_BRIDGE_IP "/16", "dev", LC_BRIDGE, NULL) != 0)
            return -EIO;
    }
    if (ipcmd(NULL, 0, "link", "set", LC_BRIDGE, "up", NULL) != 0)
        return -EIO;
    return 0;
}

static int remove_bridge_locked(void);

int lc_net_remove_bridge_if_unused(void)
{
    /* Under the machine-wide lock: another daemon may be between creating
     * the bridge and attaching its first veth. */
    int lock = lc_net_global_lock(LC_MODE_NETNS);
    int rc = remove_bridge_locked();
    lc_net_global_unlock(lock);
    return rc;
}

static int remove_bridge_locked(void)
{
    DIR *dir = opendir("/sys/class/net/" LC_BRIDGE "/brif");
    if (!dir)
        return 0;
    struct dirent *de;
    int ports = 0;
    while ((de = readdir(dir)) != NULL)
        if (de->d_name[0] != '.')
            ports++;
    closedir(dir);
    if (ports > 0) {
        CORE_INFO("bridge %s still has %d port(s) of other local clouds; keeping it", LC_BRIDGE,
                  ports);
        return 0;
    }
    return ipcmd(NULL, 0, "link", "del", LC_BRIDGE, NULL) == 0 ? 0 : -EIO;
}

static int pid_alive(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    /* Zombies count as gone: PID 1 may never reap orphans in containers. */
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* A claim is stale when what it names no longer exists. */
static int claim_stale(enum lc_mode mode, const char *path)
{
    char *txt = NULL;
    size_t len = 0;
    if (core_read_file(path, 256, &txt, &len) < 0)
        return 0;
    int stale = 0;
    if (mode == LC_MODE_NETNS) {
        char ns[300];
        snprintf(ns, sizeof(ns), "/run/netns/%s", txt);
        stale = len > 0 && access(ns, F_OK) != 0;
    } else {
        stale = len > 0 && !pid_alive((pid_t)strtol(txt, NULL, 10));
    }
    free(txt);
    return stale;
}

static void index_to_ip(enum lc_mode mode, int idx, char *ip, size_t iplen)
{
    if (mode == LC_MODE_NETNS) {
        /* idx 0 -> 198.18.0.2; skip .0/.255 of every /24 for tools that dislike them. */
        int host = idx + 2;
        int third = host / 254, fourth = host % 254 + 1;
        if (third == 0)
            fourth = host; /* 198.18.0.2 .. 198.18.0.253 */
        snprintf(ip, iplen, "198.18.%d.%d", third, fourth);
    } else {
        snprintf(ip, iplen, "127.0.0.%d", idx + 2);
    }
}

/* Caller holds the global lock. <owner> is the netns name or "" (process mode: pid later). */
int lc_net_claim_ip(enum lc_mode mode, const char *owner, char *ip, size_t iplen, int *index)
{
    char dir[128], cdir[160];
    run_dir(mode, dir, sizeof(dir));
    snprintf(cdir, sizeof(cdir), "%s/ip", dir);
    core_mkdir_p(cdir, 0700);
    int max = mode == LC_MODE_NETNS ? 60000 : 253;
    /* Round robin, not lowest-free: a just-released address may still sit
     * in neighbour caches with the old host's MAC, stalling new connections. */
    char nextpath[200];
    snprintf(nextpath, sizeof(nextpath), "%s/next", dir);
    int start = 0;
    char *txt = NULL;
    size_t tlen = 0;
    if (core_read_file(nextpath, 32, &txt, &tlen) == 0) {
        start = atoi(txt);
        free(txt);
    }
    if (start < 0 || start >= max)
        start = 0;
    for (int k = 0; k < max; k++) {
        int i = (start + k) % max;
        char cand[64], path[256];
        index_to_ip(mode, i, cand, sizeof(cand));
        snprintf(path, sizeof(path), "%s/%s", cdir, cand);
        if (access(path, F_OK) == 0) {
            if (!claim_stale(mode, path))
                continue;
            unlink(path);
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd == -1)
            continue;
        ssize_t w = write(fd, owner, strlen(owner));
        (void)w;
        close(fd);
        snprintf(ip, iplen, "%s", cand);
        if (index)
            *index = i;
        char nbuf[32];
        int nlen = snprintf(nbuf, sizeof(nbuf), "%d", (i + 1) % max);
        core_write_file(nextpath, nbuf, (size_t)nlen, 0600);
        return 0;
    }
    return -EADDRNOTAVAIL;
}

static void claim_set(enum lc_mode mode, const char *ip, const char *owner)
{
    char dir[128], path[256];
    run_dir(mode, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/ip/%s", dir, ip);
    core_write_file(path, owner, strlen(owner), 0600);
}

void lc_net_release_ip(enum lc_mode mode, const char *ip)
{
    if (!ip[0])
        return;
    char dir[128], path[256];
    run_dir(mode, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/ip/%s", dir, ip);
    unlink(path);
}

int lc_net_netns_exists(const char *netns)
{
    char path[300];
    snprintf(path, sizeof(path), "/run/netns/%s", netns);
    return access(path, F_OK) == 0;
}

static void netns_cleanup(const lc_inst_t *in)
{
    if (in->veth[0] && access("/sys/class/net", F_OK) == 0) {
        char p[128];
        snprintf(p, sizeof(p), "/sys/class/net/%s", in->veth);
        if (access(p, F_OK) == 0)
            ipcmd(NULL, 0, "link", "del", in->veth, NULL);
    }
    if (in->netns[0] && lc_net_netns_exists(in->netns))
        ipcmd(NULL, 0, "netns", "del", in->netns, NULL);
    if (in->super.ip[0])
        ipcmd(NULL, 0, "neigh", "flush", "to", in->super.ip, NULL);
}

int lc_net_create(lc_inst_t *in, char *err, size_t errlen)
{
    enum lc_mode mode = in->netns[0] ? LC_MODE_NETNS : LC_MODE_PROCESS;
    int lock = lc_net_global_lock(mode);
    if (lock < 0) {
        snprintf(err, errlen, "global lock: %s", strerror(-lock));
        return lock;
    }
    int rc;
    int idx = 0;
    if (mode == LC_MODE_PROCESS) {
        rc = lc_net_claim_ip(mode, "", in->super.ip, sizeof(in->super.ip), &idx);
        if (rc < 0) {
            snprintf(err, errlen, "no free 127.0.0.x address");
            goto out;
        }
        /* Distinct offsets keep wildcard binds of two instances apart too. */
        in->super.port_offset = 100 * (idx % 400) + 100;
        in->super.agent_port = LC_AGENT_PORT + in->super.port_offset;
        goto out;
    }
    rc = lc_net_ensure_bridge();
    if (rc < 0) {
        snprintf(err, errlen, "cannot set up bridge %s", LC_BRIDGE);
        goto out;
    }
    rc = lc_net_claim_ip(mode, in->netns, in->super.ip, sizeof(in->super.ip), &idx);
    if (rc < 0) {
        snprintf(err, errlen, "no free address in 198.18.0.0/16");
        goto out;
    }
    in->super.agent_port = LC_AGENT_PORT;
    in->super.port_offset = 0;
    char peer[16], cidr[80];
    snprintf(peer, sizeof(peer), "sp%s", in->veth + 2);
    snprintf(cidr, sizeof(cidr), "%s/%d", in->super.ip, LC_PREFIX_LEN);
    const char *step = "netns add";
    if (ipcmd(NULL, 0, "netns", "add", in->netns, NULL) != 0)
        goto fail;
    char nspath[300];
    struct stat nst;
    snprintf(nspath, sizeof(nspath), "/run/netns/%s", in->netns);
    if (stat(nspath, &nst) == 0)
        in->netns_ino = (unsigned long long)nst.st_ino;
    step = "veth add";
    if (ipcmd(NULL, 0, "link", "add", in->veth, "type", "veth", "peer", "name", peer, NULL) != 0)
        goto fail;
    step = "veth move";
    if (ipcmd(NULL, 0, "link", "set", peer, "netns", in->netns, NULL) != 0)
        goto fail;
    step = "veth rename";
    if (ipcmd(NULL, 0, "-n", in->netns, "link", "set", peer, "name", "eth0", NULL) != 0)
        goto fail;
    step = "addr add";
    if (ipcmd(NULL, 0, "-n", in->netns, "addr", "add", cidr, "dev", "eth0", NULL) != 0)
        goto fail;
    step = "link up";
    if (ipcmd(NULL, 0, "-n", in->netns, "link", "set", "eth0", "up", NULL) != 0 ||
        ipcmd(NULL, 0, "-n", in->netns, "link", "set", "lo", "up", NULL) != 0)
        goto fail;
    step = "route";
    if (ipcmd(NULL, 0, "-n", in->netns, "route", "add", "default", "via", LC_BRIDGE_IP, NULL) != 0)
        goto fail;
    step = "bridge attach";
    if (ipcmd(NULL, 0, "link", "set", in->veth, "master", LC_BRIDGE, NULL) != 0 ||
        ipcmd(NULL, 0, "link", "set", in->veth, "up", NULL) != 0)
        goto fail;
    /* Forget whatever MAC an earlier holder of this address had. */
    ipcmd(NULL, 0, "neigh", "flush", "to", in->super.ip, NULL);
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "network setup failed at %s", step);
    netns_cleanup(in);
    lc_net_release_ip(mode, in->super.ip);
    in->super.ip[0] = '\0';
    rc = -EIO;
out:
    lc_net_global_unlock(lock);
    return rc;
}

static int read_stat_session(pid_t pid, pid_t *sid);

int lc_net_spawn_agent(lc_daemon_t *d, lc_inst_t *in, char *err, size_t errlen)
{
    char *disk = core_xasprintf("%s/instances/%s/disk", d->dir, in->super.id);
    char *log = core_xasprintf("%s/instances/%s/agent.log", d->dir, in->super.id);
    char *listen = core_xasprintf("%s:%d", in->super.ip, in->super.agent_port);
    char *meta = lc_inst_metadata_dir(d, in);
    int rc = core_mkdir_p(disk, 0700);
    if (rc < 0) {
        snprintf(err, errlen, "mkdir %s: %s", disk, strerror(-rc));
        goto out;
    }
    /* The host's facts reach the agent (and its tasks) through the environment:
     * in process mode a task must add SKY_PORT_OFFSET to the ports it binds. */
    char env_ip[96], env_off[48], env_id[96];
    snprintf(env_ip, sizeof(env_ip), "SKY_INSTANCE_IP=%s", in->super.ip);
    snprintf(env_off, sizeof(env_off), "SKY_PORT_OFFSET=%d", in->super.port_offset);
    snprintf(env_id, sizeof(env_id), "SKY_INSTANCE_ID=%s", in->super.id);
    char *argv[20];
    size_t n = 0;
    if (d->mode == LC_MODE_NETNS) {
        argv[n++] = (char *)ip_path();
        argv[n++] = "netns";
        argv[n++] = "exec";
        argv[n++] = in->netns;
    }
    if (access("/usr/bin/env", X_OK) == 0) {
        argv[n++] = "/usr/bin/env";
        argv[n++] = env_ip;
        argv[n++] = env_off;
        argv[n++] = env_id;
    }
    argv[n++] = d->agent_path;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--home";
    argv[n++] = disk;
    argv[n++] = "--metadata-dir";
    argv[n++] = meta;
    argv[n] = NULL;
    pid_t pid = core_spawn_daemon(argv, log);
    if (pid < 0) {
        rc = pid;
        snprintf(err, errlen, "cannot start %s: %s", d->agent_path, strerror(-rc));
        goto out;
    }
    in->agent_pid = (int)pid;
    /* core_spawn_daemon's first child made the session; the agent is in it. */
    pid_t sid = 0;
    if (read_stat_session(pid, &sid) == 0)
        in->agent_sid = (int)sid;
    if (d->mode == LC_MODE_PROCESS) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%d", (int)pid);
        claim_set(d->mode, in->super.ip, buf);
    }
    rc = 0;
out:
    free(meta);
    free(disk);
    free(listen);
    free(log);
    return rc;
}

static int read_stat_session(pid_t pid, pid_t *sid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    char state;
    int ppid, pgrp, session;
    if (sscanf(p + 2, "%c %d %d %d", &state, &ppid, &pgrp, &session) != 4)
        return -1;
    if (state == 'Z' || state == 'X')
        return -1;
    *sid = session;
    return 0;
}

/* The namespace's inode: recorded at creation (it outlives `ip netns del`
 * while processes hold it), else looked up by name. */
/*
 * The inode of the instance's namespace while it still has its name. Once
 * the name is gone (deleted, or a host that vanished) the namespace may be
 * gone too and its inode number reused by another one, so it is no way to
 * find the instance's processes any more: the agent's session is.
 */
static int netns_ino(const lc_inst_t *in, unsigned long long *ino)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof(path), "/run/netns/%s", in->netns);
    if (!in->netns[0] || stat(path, &st) == -1)
        return -ENOENT;
    if (in->netns_ino && (unsigned long long)st.st_ino != in->netns_ino)
        return -ENOENT; /* the name now belongs to another namespace */
    *ino = (unsigned long long)st.st_ino;
    return 0;
}

/*
 * Lists the live pids belonging to an instance: processes in its network
 * namespace (what `ip netns pids` does), or in process mode those in the
 * agent's session. Returns the count; fills pids[] up to max.
 */
static size_t instance_pids(enum lc_mode mode, const lc_inst_t *in, pid_t *pids, size_t max)
{
    unsigned long long ino = 0;
    int have_ns = mode == LC_MODE_NETNS && netns_ino(in, &ino) == 0;
    int have_sid = in->agent_sid > 1;
    if (!have_ns && !have_sid)
        return 0;
    DIR *dir = opendir("/proc");
    if (!dir)
        return 0;
    size_t n = 0;
    struct dirent *de;
    pid_t self = getpid();
    while ((de = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self)
            continue;
        /* In its namespace, or in the agent's session: the latter also
         * catches an agent still booting through `ip netns exec` (not yet
         * in the namespace) and tasks that wandered out of it. */
        int match = 0;
        pid_t sid;
        if (have_sid)
            match = read_stat_session((pid_t)pid, &sid) == 0 && sid == in->agent_sid;
        if (!match && have_ns) {
            char p[64];
            struct stat st;
            snprintf(p, sizeof(p), "/proc/%ld/ns/net", pid);
            match =
                stat(p, &st) == 0 && (unsigned long long)st.st_ino == ino && pid_alive((pid_t)pid);
        }
        if (match) {
            if (n < max)
                pids[n] = (pid_t)pid;
            n++;
        }
    }
    closedir(dir);
    return n;
}

size_t lc_net_count_pids(const lc_daemon_t *d, const lc_inst_t *in)
{
    pid_t pids[1];
    return instance_pids(d->mode, in, pids, 0);
}

int lc_net_destroy(lc_daemon_t *d, lc_inst_t *in)
{
    pid_t pids[512];
    /* Kill until nothing is left: a dying process may have forked. Bounded. */
    for (int round = 0; round < 100; round++) {
        size_t n = instance_pids(d->mode, in, pids, CORE_ARRAY_SIZE(pids));
        if (n > CORE_ARRAY_SIZE(pids))
            n = CORE_ARRAY_SIZE(pids);
        /* The agent first: it is what answers for the host. Only if the pid
         * still is ours (same netns or session), never a recycled one. */
        if (round == 0 && lc_net_agent_alive(d, in, 1))
            kill(in->agent_pid, SIGKILL);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            kill(pids[i], SIGKILL);
        msleep(20);
    }
    /* SIGKILL is not instantaneous: a host is gone once its agent is. (The
     * agent is never our child: core_spawn_daemon double-forks, so there is
     * nothing to reap, and waitpid on a recycled pid could steal lc_run's.) */
    for (int i = 0; i < 100 && lc_net_agent_alive(d, in, 1); i++) {
        kill(in->agent_pid, SIGKILL);
        msleep(20);
    }
    if (d->mode == LC_MODE_NETNS) {
        int lock = lc_net_global_lock(d->mode);
        netns_cleanup(in);
        lc_net_release_ip(d->mode, in->super.ip);
        lc_net_global_unlock(lock);
    } else {
        lc_net_release_ip(d->mode, in->super.ip);
    }
    return 0;
}

int lc_net_agent_alive(const lc_daemon_t *d, const lc_inst_t *in, int strict)
{
    if (in->agent_pid <= 0 || !pid_alive(in->agent_pid))
        return 0;
    if (!strict)
        return 1;
    /* Ours while still in the session core_spawn_daemon made for it (also
     * while `ip netns exec` is still entering the namespace); a recycled pid
     * would not be. Rows without a session fall back to the namespace. */
    pid_t sid;
    if (in->agent_sid > 1)
        return read_stat_session(in->agent_pid, &sid) == 0 && sid == in->agent_sid;
    if (d->mode != LC_MODE_NETNS)
        return 0;
    char p[64];
    struct stat st;
    unsigned long long ino;
    snprintf(p, sizeof(p), "/proc/%d/ns/net", in->agent_pid);
    if (netns_ino(in, &ino) < 0 || stat(p, &st) == -1)
        return 0;
    return (unsigned long long)st.st_ino == ino;
}

int lc_net_list_netns(const char *prefix, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *dir = opendir("/run/netns");
    if (!dir)
        return 0;
    struct dirent *de;
    size_t cap = 0;
    while ((de = readdir(dir)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = core_xrealloc(*out, cap * sizeof(char *));
        }
        (*out)[(*n)++] = core_xstrdup(de->d_name);
    }
    closedir(dir);
    return 0;
}
