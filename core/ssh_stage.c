/*
 * A task's local paths, brought to an SSH pool host before its agent gets it.
 *
 * The agent reads workdir and file_mounts from paths of its own machine: on
 * the local cloud that is this machine; on a pool host it is not. So before
 * submitting (core_agent_submit calls core_ssh_stage_task for pool agents):
 *  - workdir and COPY sources are copied (tar over SSH) into the instance's
 *    directory on the host;
 *  - each MOUNT bucket is mounted there with sshfs in slave mode, served
 *    from here by OpenSSH's sftp-server through the same SSH connection. The
 *    sftp-server runs chrooted to the bucket in a user namespace: the host
 *    reaches that bucket and nothing else of this machine. Writes reach the
 *    bucket when the task's write() returns (sshfs has no write-back cache by
 *    default), renames are atomic and fsync goes through: a job recovered
 *    elsewhere sees every checkpoint its predecessor finished writing.
 * and the task's paths are rewritten to the host's copies.
 *
 * The mount lives in a small keeper process of this machine (its own
 * session, outliving the controller that started it): it runs the sandboxed
 * sftp-server and the ssh that runs sshfs, piped to each other, and exits
 * with them: when the instance is stopped (its stop script kills sshfs), or
 * when the host stops answering (ssh's keepalive gives up after ~10 s).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/prov_ssh.h"
#include "core/ssh.h"
#include "core/ssh_deploy.h"
#include "core/ssh_stage.h"
#include "core/util.h"

#define COPY_TIMEOUT_MS  (10L * 60 * 1000)
#define MOUNT_TIMEOUT_MS 20000L

extern char **environ;

typedef struct target {
    char id[64];
    char pool[64];
    char host[256];
    core_ssh_host_t ssh;
    core_ssh_pools_t *pools;
    char idir[1024]; /* the instance's directory on the host, once known */
} target_t;

/* Which instance listens at ip:port (the claims of core/prov_ssh.c). */
static int find_instance(const char *ip, int port, target_t *t, char **err)
{
    core_ssh_claim_t c;
    int rc = core_prov_ssh_find(ip, port, &c);
    if (rc == 0) {
        snprintf(t->id, sizeof(t->id), "%s", c.id);
        snprintf(t->pool, sizeof(t->pool), "%s", c.pool);
        snprintf(t->host, sizeof(t->host), "%s", c.host);
    }
    if (rc < 0) {
        *err = core_xasprintf("no SSH Node Pool instance listens at %s:%d", ip, port);
        return rc;
    }
    char *e = NULL;
    if (core_ssh_pools_load(NULL, &t->pools, &e) < 0) {
        *err = e;
        return CORE_EINVALREQ;
    }
    const core_ssh_pool_t *p = core_ssh_pools_find(t->pools, t->pool);
    for (size_t i = 0; p && i < p->n_hosts; i++)
        if (!strcmp(p->hosts[i].host, t->host))
            t->ssh = p->hosts[i];
    if (!t->ssh.host) {
        *err = core_xasprintf("host %s is no longer in pool %s of %s", t->host, t->pool,
                              t->pools->file);
        return CORE_EINVALREQ;
    }
    return 0;
}

/* "dir=<path>" in <text> -> t->idir. */
static void take_dir(target_t *t, const char *text)
{
    const char *d = strstr(text, "dir=");
    if (!d)
        return;
    d += 4;
    snprintf(t->idir, sizeof(t->idir), "%.*s", (int)strcspn(d, "\n"), d);
}

static const char COPY_SCRIPT[] =
    "set -e\n"
    "I=\"$HOME/.sky-agent/%s/instances/%s\"\n"
    "[ -d \"$I\" ] || { echo 'the instance is gone from this host' >&2; exit 3; }\n"
    "rm -rf \"$I/%s\" && mkdir -p \"$I/%s\" && tar -xf - -C \"$I/%s\"\n"
    "echo \"dir=$I\"\n";

/* Copies <src> (file or directory) to <I>/<name>/<basename>; *remote gets that path. */
static int copy_path(target_t *t, const char *dir, const char *src, const char *name,
                     char **remote, char **err)
{
    struct stat sb;
    if (stat(src, &sb) < 0) {
        *err = core_xasprintf("%s: %s", src, strerror(errno));
        return CORE_EINVALREQ;
    }
    char *a = core_xstrdup(src), *b = core_xstrdup(src);
    char *parent = dirname(a), *base = basename(b);
    /* tar -c here | ssh tar -x there, through a pipe. */
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        free(a);
        free(b);
        return -errno;
    }
    /* posix_spawn, not fork: a controller calls this from a thread pool. */
    pid_t tar = -1;
    char *targv[] = {"tar", "-cf", "-", "-C", parent, "--", base, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    int sr = posix_spawnp(&tar, "tar", &fa, NULL, targv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    char *script = core_xasprintf(COPY_SCRIPT, dir, t->id, name, name, name);
    core_ssh_result_t r;
    memset(&r, 0, sizeof(r));
    int rc = sr != 0 ? -sr : core_ssh_run_fd(&t->ssh, script, fds[0], COPY_TIMEOUT_MS, &r);
    if (sr != 0)
        tar = -1;
    close(fds[0]);
    free(script);
    int st = 0;
    if (tar > 0)
        while (waitpid(tar, &st, 0) < 0 && errno == EINTR)
            ;
    if (rc == 0 && r.status != CORE_SSH_OK) {
        char why[400];
        core_ssh_reason(r.err, why, sizeof(why));
        *err = core_xasprintf("copying %s to %s: %s: %s", src, t->host,
                              core_ssh_status_name(r.status), why);
        rc = r.status == CORE_SSH_FAILED ? CORE_EINVALREQ : -EHOSTUNREACH;
    } else if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        *err = core_xasprintf("copying %s: tar failed", src);
        rc = CORE_EINVALREQ;
    } else if (rc < 0) {
        *err = core_xasprintf("copying %s: %s", src, core_strerror(rc));
    }
    if (rc == 0) {
        take_dir(t, r.out);
        *remote = core_xasprintf("%s/%s/%s", t->idir, name, base);
    }
    core_ssh_result_free(&r);
    free(a);
    free(b);
    return rc;
}

/* The sftp-server side ($1 sandbox dir, $2 bucket, $3 sftp-server): chrooted
 * to the bucket inside a user namespace, with just what it needs to run
 * (/usr, /dev/null, a passwd line). */
static const char SANDBOX[] =
    "set -e\n"
    "R=\"$1\"; B=\"$2\"\n"
    "mount -t tmpfs -o mode=755 sky-sftp \"$R\"\n"
    "mkdir -p \"$R/usr\" \"$R/bucket\" \"$R/dev\" \"$R/etc\"\n"
    "touch \"$R/dev/null\" && mount --bind /dev/null \"$R/dev/null\"\n"
    "mount --rbind /usr \"$R/usr\"\n"
    "for d in lib lib64 bin; do if [ -L /$d ]; then ln -s \"usr/$d\" \"$R/$d\"; fi; done\n"
    "echo 'root:x:0:0:root:/bucket:/bin/sh' > \"$R/etc/passwd\"\n"
    "echo 'root:x:0:' > \"$R/etc/group\"\n"
    "mount --bind \"$B\" \"$R/bucket\"\n"
    "exec chroot \"$R\" \"$3\" -d /bucket -e\n";

/* The keeper ($1 log, $2 fifo, $3 sandbox dir, $4 bucket, $5 sftp-server,
 * $6 the sandbox script, then ssh's argv): in the background, the sandboxed
 * sftp-server and ssh piped both ways (a pipe one way, a fifo back), and a
 * last line in the log when ssh ends. The shell that starts it returns at
 * once, so its caller has nothing to reap later. */
static const char KEEPER[] =
    "LOG=$1; F=$2; R=$3; B=$4; SFTP=$5; SB=$6; shift 6\n"
    "(\n"
    "  rm -f \"$F\"; mkfifo -m 600 \"$F\" || exit 1\n"
    "  unshare --user --map-root-user --mount sh -c \"$SB\" sky-sftp \"$R\" \"$B\" \"$SFTP\""
    " < \"$F\" | \"$@\" > \"$F\"\n"
    "  echo \"sky-keeper: ssh ended ($?)\"\n"
    "  rm -f \"$F\"\n"
    ") </dev/null >>\"$LOG\" 2>&1 &\n";

/* The host side: sshfs in slave mode on the SSH channel, inside the
 * instance agent's mount namespace (it bind-mounts the bucket for the task
 * there), its pid kept so that stopping the instance unmounts it. */
static const char MOUNT_SCRIPT[] =
    "I=\"$HOME/.sky-agent/%s/instances/%s\"; M=\"$I/mounts/%d\"\n"
    "[ -d \"$I\" ] || { echo 'the instance is gone from this host' >&2; exit 3; }\n"
    "command -v sshfs >/dev/null 2>&1 || { echo 'sshfs is not installed on this host"
    " (apt-get install sshfs)' >&2; exit 3; }\n"
    "mkdir -p \"$M\"\n"
    /* As root the agent has a mount namespace of its own: the mount must be
     * made there, or its task would see an empty directory. */
    "N=; pid=$(cut -d' ' -f1 \"$I/agent.pid\" 2>/dev/null)\n"
    "if [ \"$(id -u)\" = 0 ]; then\n"
    "  [ -n \"$pid\" ] && [ -r /proc/$pid/ns/mnt ] ||"
    " { echo \"the instance's agent is not running\" >&2; exit 3; }\n"
    "  N=\"nsenter --mount=/proc/$pid/ns/mnt --\"\n"
    "fi\n"
    "exec 3<&0\n"
    "$N sshfs -f -o slave -o noatime :/bucket \"$M\" <&3 &\n"
    /* "PID STARTTIME": stopping the instance kills it only if it is still ours */
    "echo \"$! $(sed 's/^.*) //' /proc/$!/stat | cut -d' ' -f20)\" > \"$M.pid\"; i=0\n"
    "until $N mountpoint -q \"$M\"; do\n"
    "  kill -0 $! 2>/dev/null || { echo 'sshfs exited before mounting' >&2; exit 4; }\n"
    "  i=$((i+1)); [ $i -lt 600 ] || { kill $!; echo 'sshfs did not mount' >&2; exit 4; }\n"
    "  sleep 0.025\n"
    "done\n"
    "echo \"sky-mounted dir=$I\" >&2\n"
    "wait\n";

static char *find_sftp_server(void)
{
    static const char *cands[] = {"/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server",
                                  "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server"};
    /* Under /usr: the sandbox has /usr and nothing else of this machine. */
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
        if (access(cands[i], X_OK) == 0)
            return core_xstrdup(cands[i]);
    return NULL;
}

int core_ssh_sftp_sandbox_argv(const char *bucket, char ***out)
{
    char *sftp = find_sftp_server();
    *out = NULL;
    if (!sftp)
        return -ENOENT;
    char *sandbox = core_home_path("ssh/sandbox");
    core_mkdir_p(sandbox, 0700);
    const char *fixed[] = {"unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           SANDBOX, "sky-sftp", sandbox, bucket, sftp};
    size_t n = sizeof(fixed) / sizeof(fixed[0]);
    char **argv = core_xcalloc(n + 1, sizeof(*argv));
    for (size_t i = 0; i < n; i++)
        argv[i] = core_xstrdup(fixed[i]);
    free(sandbox);
    free(sftp);
    *out = argv;
    return 0;
}

static int mount_bucket(target_t *t, const char *dir, int n, const char *bucket, char **remote,
                        char **err)
{
    char *sftp = find_sftp_server();
    if (!sftp) {
        *err = core_xstrdup("MOUNT buckets on SSH pools need OpenSSH's sftp-server on this "
                            "machine (apt-get install openssh-sftp-server)");
        return CORE_EINVALREQ;
    }
    char *sandbox = core_home_path("ssh/sandbox"), *mdir = core_home_path("ssh/mounts");
    core_mkdir_p(sandbox, 0700);
    core_mkdir_p(mdir, 0700);
    char *log = core_xasprintf("%s/%s-%d.log", mdir, t->id, n);
    char *fifo = core_xasprintf("%s/%s-%d.fifo", mdir, t->id, n);
    unlink(log);
    char *script = core_xasprintf(MOUNT_SCRIPT, dir, t->id, n);
    char **ssh_argv = core_ssh_argv(&t->ssh, script);
    free(script);
    size_t na = 0;
    while (ssh_argv[na])
        na++;
    char **argv = core_xcalloc(na + 11, sizeof(*argv)); /* NULL-terminated */
    char *fixed[] = {"sh", "-c", (char *)KEEPER, "sky-keeper", log, fifo, sandbox,
                     (char *)bucket, sftp, (char *)SANDBOX};
    memcpy(argv, fixed, sizeof(fixed));
    memcpy(argv + 10, ssh_argv, na * sizeof(*argv));
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID); /* outlives its starter's group */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t k = -1;
    int sr = posix_spawnp(&k, "sh", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (sr == 0)
        while (waitpid(k, NULL, 0) < 0 && errno == EINTR)
            ;
    free(argv);
    core_ssh_argv_free(ssh_argv);
    int rc = sr != 0 ? -sr : -ETIMEDOUT;
    unsigned long long deadline = core_mono_ms() + MOUNT_TIMEOUT_MS;
    char *text = NULL;
    while (rc == -ETIMEDOUT && core_mono_ms() < deadline) {
        size_t len = 0;
        free(text);
        text = NULL;
        if (core_read_file(log, 1 << 20, &text, &len) == 0) {
            if (strstr(text, "sky-mounted dir=")) {
                take_dir(t, strstr(text, "sky-mounted ") + 12);
                rc = 0;
                break;
            }
            if (strstr(text, "sky-keeper: ssh ended")) {
                rc = CORE_EINVALREQ;
                break;
            }
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == 0) {
        *remote = core_xasprintf("%s/mounts/%d", t->idir, n);
    } else {
        char why[400];
        core_ssh_reason(text ? text : "", why, sizeof(why));
        *err = core_xasprintf("mounting bucket %s on %s: %s", bucket, t->host,
                              rc == -ETIMEDOUT ? "no answer in time" : why);
        if (rc == CORE_EINVALREQ && core_ssh_classify(255, text ? text : "") != CORE_SSH_FAILED &&
            !strstr(text ? text : "", "sshfs"))
            rc = -EHOSTUNREACH;
    }
    free(text);
    free(fifo);
    free(log);
    free(sandbox);
    free(mdir);
    free(sftp);
    return rc;
}

int core_ssh_stage_task(const char *ip, int port, const cJSON *task, cJSON **out, char **err)
{
    *out = NULL;
    *err = NULL;
    const cJSON *wd = cJSON_GetObjectItemCaseSensitive(task, "workdir");
    const cJSON *fms = cJSON_GetObjectItemCaseSensitive(task, "file_mounts");
    int has_fms = cJSON_IsArray(fms) && cJSON_GetArraySize(fms) > 0;
    if (!cJSON_IsString(wd) && !has_fms) {
        *out = cJSON_Duplicate(task, 1);
        return 0;
    }
    target_t t;
    memset(&t, 0, sizeof(t));
    char dir[128];
    int rc = find_instance(ip, port, &t, err);
    if (rc == 0 && (rc = core_ssh_install_dir(t.pool, dir, sizeof(dir))) < 0)
        *err = core_xasprintf("SSH Node Pool '%s' is not set up here", t.pool);
    cJSON *copy = cJSON_Duplicate(task, 1);
    if (rc == 0 && cJSON_IsString(wd)) {
        char *remote = NULL;
        rc = copy_path(&t, dir, wd->valuestring, "workdir", &remote, err);
        if (rc == 0) {
            cJSON_ReplaceItemInObjectCaseSensitive(copy, "workdir", cJSON_CreateString(remote));
            free(remote);
        }
    }
    cJSON *cfms = cJSON_GetObjectItemCaseSensitive(copy, "file_mounts");
    int i = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, cfms)
    {
        if (rc < 0)
            break;
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(m, "src");
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(m, "mode");
        if (!cJSON_IsString(src)) {
            i++;
            continue;
        }
        char *remote = NULL;
        if (cJSON_IsString(mode) && !strcmp(mode->valuestring, "MOUNT")) {
            rc = mount_bucket(&t, dir, i, src->valuestring, &remote, err);
        } else {
            char name[32];
            snprintf(name, sizeof(name), "copies/%d", i);
            rc = copy_path(&t, dir, src->valuestring, name, &remote, err);
        }
        if (rc == 0)
            cJSON_ReplaceItemInObjectCaseSensitive(m, "src", cJSON_CreateString(remote));
        free(remote);
        i++;
    }
    core_ssh_pools_free(t.pools);
    if (rc < 0) {
        cJSON_Delete(copy);
        return rc;
    }
    *out = copy;
    return 0;
}
