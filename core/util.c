#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/util.h"

const char *core_enum_name(const char *const *names, size_t n, int v, const char *unknown)
{
    return v >= 0 && (size_t)v < n ? names[v] : unknown;
}

int core_enum_value(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

int core_parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(d) || d < lo || d > hi)
        return -EINVAL;
    *out = d;
    return 0;
}

double core_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

unsigned long long core_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

static char *home_dir(void)
{
    const char *env = getenv("SKY_HOME");
    if (env && *env)
        return core_xstrdup(env);
    const char *home = getenv("HOME");
    return core_xasprintf("%s/.sky", home && *home ? home : "/tmp");
}

char *core_home_dir(void)
{
    char *dir = home_dir();
    core_mkdir_p(dir, 0700);
    return dir;
}

char *core_home_path(const char *rel)
{
    char *dir = core_home_dir();
    char *p = core_xasprintf("%s/%s", dir, rel);
    free(dir);
    return p;
}

char *core_home_peek(const char *rel)
{
    char *dir = home_dir();
    char *p = core_xasprintf("%s/%s", dir, rel);
    free(dir);
    return p;
}

int core_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) == -1 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) == -1 && errno != EEXIST)
        return -errno;
    return 0;
}

int core_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == -1)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d == NULL)
            return -errno;
        struct dirent *e;
        int r = 0;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *child = core_xasprintf("%s/%s", path, e->d_name);
            int rc = core_rm_rf(child);
            free(child);
            if (rc < 0)
                r = rc;
        }
        closedir(d);
        if (rmdir(path) == -1 && r == 0)
            r = -errno;
        return r;
    }
    return unlink(path) == -1 ? -errno : 0;
}

int core_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = core_xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                free(buf);
                close(fd);
                return -EFBIG;
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = core_xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            close(fd);
            return -EFBIG;
        }
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (len)
        *len = n;
    return 0;
}

int core_write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    char *tmp = core_xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    int r = 0;
    if (fd == -1) {
        r = -errno;
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            r = -errno;
            close(fd);
            unlink(tmp);
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) == -1 || close(fd) == -1) {
        r = -errno;
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) == -1) {
        r = -errno;
        unlink(tmp);
    }
out:
    free(tmp);
    return r;
}

int core_token_load(const char *path, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    if (core_read_file(path, 4096, &buf, &len) == 0) {
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
            buf[--len] = '\0';
        if (len > 0) {
            *out = buf;
            return 0;
        }
        free(buf);
    }
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -EIO;
    char hex[65];
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    /* O_EXCL so two processes starting at once agree on one token. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1) {
        if (errno == EEXIST) {
            usleep(50000);
            return core_token_load(path, out);
        }
        return -errno;
    }
    ssize_t w = write(fd, hex, 64);
    close(fd);
    if (w != 64)
        return -EIO;
    *out = core_xstrdup(hex);
    return 0;
}

static int executable(const char *p)
{
    return access(p, X_OK) == 0;
}

char *core_find_program(const char *name)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            char *p = core_xasprintf("%s/%s", self, name);
            if (executable(p))
                return p;
            free(p);
            /* Build tree: programs live in sibling folders of the same build. */
            static const char *subdirs[] = {"lb", "controller", "replica_agent", "localcloud",
                                            "tests", "bench/policy"};
            for (size_t i = 0; i < CORE_ARRAY_SIZE(subdirs); i++) {
                p = core_xasprintf("%s/../%s/%s", self, subdirs[i], name);
                if (executable(p))
                    return p;
                free(p);
            }
        }
    }
#ifdef SKY_BINARY_DIR
    {
        static const char *subdirs[] = {"lb", "controller", "replica_agent", "localcloud"};
        for (size_t i = 0; i < CORE_ARRAY_SIZE(subdirs); i++) {
            char *p = core_xasprintf("%s/%s/%s", SKY_BINARY_DIR, subdirs[i], name);
            if (executable(p))
                return p;
            free(p);
        }
    }
#endif
    const char *path = getenv("PATH");
    if (path) {
        char *copy = core_xstrdup(path), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            char *p = core_xasprintf("%s/%s", d, name);
            if (executable(p)) {
                free(copy);
                return p;
            }
            free(p);
        }
        free(copy);
    }
    return core_xstrdup(name);
}

pid_t core_spawn_daemon(char *const argv[], const char *logfile)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) == -1)
        return -errno;
    pid_t pid = fork();
    if (pid == -1) {
        int e = -errno;
        close(pfd[0]);
        close(pfd[1]);
        return e;
    }
    if (pid == 0) {
        /* Intermediate child: detach and report the daemon's pid. */
        close(pfd[0]);
        setsid();
        pid_t d = fork();
        if (d != 0) {
            ssize_t w = write(pfd[1], &d, sizeof(d));
            (void)w;
            _exit(d == -1 ? 1 : 0);
        }
        close(pfd[1]);
        int in = open("/dev/null", O_RDONLY);
        int out = logfile ? open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644)
                          : open("/dev/null", O_WRONLY);
        if (in >= 0)
            dup2(in, 0);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    pid_t daemon = -1;
    ssize_t r = read(pfd[0], &daemon, sizeof(daemon));
    close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
        ;
    if (r != (ssize_t)sizeof(daemon) || daemon <= 0)
        return -ECHILD;
    return daemon;
}

void core_fmt_duration(double seconds, char *out, size_t outlen)
{
    if (seconds < 0) {
        snprintf(out, outlen, "-");
        return;
    }
    if (seconds < 1) {
        snprintf(out, outlen, "< 1 second");
        return;
    }
    long s = (long)seconds;
    long d = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60, sec = s % 60;
    size_t o = 0;
    out[0] = '\0';
#define PART(v, u)                                                                               \
    if ((v) > 0 && o < outlen)                                                                   \
        o += (size_t)snprintf(out + o, outlen - o, "%s%ld%s", o ? " " : "", (long)(v), u);
    PART(d, "d")
    PART(h, "h")
    PART(m, "m")
    PART(sec, "s")
#undef PART
}

void core_fmt_ago(double seconds, char *out, size_t outlen)
{
    long s = seconds < 0 ? 0 : (long)seconds;
    long v;
    const char *unit;
    if (s < 60) {
        v = s;
        unit = "sec";
    } else if (s < 3600) {
        v = s / 60;
        unit = "min";
    } else if (s < 86400) {
        v = s / 3600;
        unit = "hr";
    } else {
        v = s / 86400;
        unit = "day";
    }
    snprintf(out, outlen, "%ld %s%s ago", v, unit, v == 1 ? "" : "s");
}
