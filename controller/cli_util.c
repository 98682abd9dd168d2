/*
 * Shared helpers of the `sky` CLI: tables, controller discovery and start,
 * JSON calls, streaming, prompts. See cli_util.h.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli_util.h"
#include "core/catalog.h"
#include "core/dotenv.h"
#include "core/err.h"
#include "core/http.h"
#include "core/localcloud.h"
#include "core/mem.h"
#include "core/util.h"

/* ------------------------------------------------------------------ tables */

struct ctl_table {
    size_t ncols;
    size_t nrows; /* header included */
    size_t cap;
    char ***rows;
};

size_t ctl_utf8_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xC0) != 0x80)
            w++;
    }
    return w;
}

static void table_push(ctl_table_t *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->rows = core_xrealloc(t->rows, t->cap * sizeof(*t->rows));
    }
    char **row = core_xcalloc(t->ncols, sizeof(*row));
    for (size_t i = 0; i < t->ncols; i++)
        row[i] = core_xstrdup(cells[i] && cells[i][0] ? cells[i] : "-");
    t->rows[t->nrows++] = row;
}

ctl_table_t *ctl_table_new(size_t ncols, const char *const *headers)
{
    ctl_table_t *t = core_xcalloc(1, sizeof(*t));
    t->ncols = ncols;
    table_push(t, headers);
    return t;
}

void ctl_table_add_row(ctl_table_t *t, const char *const *cells)
{
    table_push(t, cells);
}

size_t ctl_table_nrows(const ctl_table_t *t)
{
    return t->nrows - 1;
}

char *ctl_table_render(const ctl_table_t *t)
{
    size_t *width = core_xcalloc(t->ncols, sizeof(*width));
    size_t total = 1;
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = ctl_utf8_width(t->rows[r][c]);
            if (w > width[c])
                width[c] = w;
            total += strlen(t->rows[r][c]) + 2;
        }
    }
    for (size_t c = 0; c < t->ncols; c++)
        total += (width[c] + 2) * t->nrows;
    total += t->nrows;
    char *out = core_xmalloc(total);
    size_t o = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        size_t line_start = o;
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->rows[r][c];
            size_t len = strlen(cell);
            memcpy(out + o, cell, len);
            o += len;
            if (c + 1 < t->ncols) {
                size_t pad = width[c] - ctl_utf8_width(cell) + 2;
                memset(out + o, ' ', pad);
                o += pad;
            }
        }
        /* Short last cells leave blanks behind earlier padding: drop them. */
        while (o > line_start && out[o - 1] == ' ')
            o--;
        out[o++] = '\n';
    }
    out[o] = '\0';
    free(width);
    return out;
}

void ctl_table_print(const ctl_table_t *t, FILE *f)
{
    char *s = ctl_table_render(t);
    fputs(s, f);
    free(s);
}

void ctl_table_free(ctl_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++)
            free(t->rows[r][c]);
        free(t->rows[r]);
    }
    free(t->rows);
    free(t);
}

/* ------------------------------------------------------------------ daemon */

#define HEALTH_TIMEOUT_MS 3000L
#define POLL_MS           100

static char *mode_file(const char *mode, const char *name)
{
    char *rel = core_xasprintf("%s/%s", mode, name);
    char *p = core_home_path(rel);
    free(rel);
    return p;
}

static int read_port(const char *mode, int *port)
{
    char *path = mode_file(mode, "controller.port");
    char *buf = NULL;
    size_t len = 0;
    int rc = core_read_file(path, 64, &buf, &len);
    free(path);
    if (rc < 0)
        return rc;
    long v = 0;
    char *end = NULL;
    errno = 0;
    v = strtol(buf, &end, 10);
    int bad = errno != 0 || end == buf || v <= 0 || v > 65535;
    free(buf);
    if (bad)
        return -EINVAL;
    *port = (int)v;
    return 0;
}

/* 0 when GET /health answers 200; the transport errno otherwise. */
static int health(const char *base, const char *token, int *pid)
{
    char *url = core_xasprintf("%s/health", base);
    long status = 0;
    cJSON *resp = NULL;
    int rc = core_http_json("GET", url, token, NULL, HEALTH_TIMEOUT_MS, &status, &resp);
    free(url);
    if (rc == 0 && pid) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(resp, "pid");
        *pid = cJSON_IsNumber(p) ? (int)p->valuedouble : 0;
    }
    cJSON_Delete(resp);
    return rc;
}

static int load_token(char **out)
{
    char *path = core_home_path("token");
    int rc = core_token_load(path, out);
    free(path);
    return rc;
}

/* Probes the daemon named by the port file. *probe_rc gets health()'s result. */
static int try_find(const char *mode, const char *token, ctl_cli_daemon_t *out, int *probe_rc)
{
    int port = 0;
    int rc = read_port(mode, &port);
    if (rc < 0) {
        *probe_rc = rc;
        return -ENOENT;
    }
    char *base = core_xasprintf("http://127.0.0.1:%d", port);
    int pid = 0;
    rc = health(base, token, &pid);
    *probe_rc = rc;
    if (rc != 0) {
        free(base);
        return -ENOENT;
    }
    out->mode = core_xstrdup(mode);
    out->base_url = base;
    out->token = core_xstrdup(token);
    out->pid = pid;
    return 0;
}

int ctl_cli_daemon_find(const char *mode, ctl_cli_daemon_t *out)
{
    memset(out, 0, sizeof(*out));
    /* Without a token no daemon of this home can run: create nothing to find that out. */
    char *tok = core_home_peek("token");
    int missing = access(tok, F_OK) != 0;
    free(tok);
    if (missing)
        return -ENOENT;
    char *token = NULL;
    int rc = load_token(&token);
    if (rc < 0)
        return rc;
    int probe = 0;
    rc = try_find(mode, token, out, &probe);
    free(token);
    return rc;
}

/* 1 if a daemon holds <mode>'s controller.lock, 0 if not, -ENOENT without the file. */
static int lock_held(const char *mode)
{
    char *path = mode_file(mode, "controller.lock");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    free(path);
    if (fd == -1)
        return -ENOENT;
    int held = flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK;
    /* Closing drops the lock if we got it. */
    close(fd);
    return held;
}

static int proc_alive(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *buf = NULL;
    size_t len = 0;
    if (core_read_file(path, 4096, &buf, &len) < 0)
        return 0;
    /* "pid (comm) S ...": a zombie has exited already. */
    const char *rp = strrchr(buf, ')');
    int alive = !(rp && rp[1] == ' ' && rp[2] == 'Z');
    free(buf);
    return alive;
}

/* The last non-empty line of the daemon's log, to say why it died. */
static char *log_last_line(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *last = NULL;
    char line[1024];
    if (fseek(f, -4096, SEEK_END) != 0)
        rewind(f);
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n) {
            free(last);
            last = core_xstrdup(line);
        }
    }
    fclose(f);
    return last;
}

int ctl_cli_daemon_connect(const char *mode, long wait_ms, ctl_cli_daemon_t *out, char **err)
{
    memset(out, 0, sizeof(*out));
    char *token = NULL, *dir = NULL, *lock_path = NULL, *log_path = NULL, *prog = NULL;
    int lock_fd = -1;
    int rc = load_token(&token);
    if (rc < 0) {
        *err = core_xasprintf("cannot read or create the API token in $SKY_HOME: %s",
                              core_strerror(rc));
        return rc;
    }
    int probe = 0;
    if (try_find(mode, token, out, &probe) == 0)
        goto done;

    dir = core_home_path(mode);
    rc = core_mkdir_p(dir, 0700);
    if (rc < 0) {
        *err = core_xasprintf("cannot create %s: %s", dir, core_strerror(rc));
        goto fail;
    }
    /* Two CLIs started at once must not start two daemons. */
    lock_path = core_xasprintf("%s/cli_start.lock", dir);
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd == -1 || flock(lock_fd, LOCK_EX) == -1) {
        rc = -errno;
        *err = core_xasprintf("cannot lock %s: %s", lock_path, core_strerror(rc));
        goto fail;
    }
    if (try_find(mode, token, out, &probe) == 0)
        goto done;
    /*
     * A live daemon holds $SKY_HOME/<mode>/controller.lock. That tells a dead
     * one (stale port file, its port perhaps reused by another program since)
     * from a live one that is slow, still starting, or refuses our token.
     */
    int held = lock_held(mode);
    bool start = held == 0 || (held < 0 && probe != -ETIMEDOUT && probe != CORE_EHTTP);
    if (!start && probe == CORE_EHTTP) {
        rc = -EACCES;
        *err = core_xasprintf("the %s controller on the port in $SKY_HOME/%s/controller.port "
                              "rejected the health check (is $SKY_HOME/token its token?)",
                              mode, mode);
        goto fail;
    }

    log_path = core_xasprintf("%s/controller.log", dir);
    unsigned long long deadline = core_mono_ms() + (unsigned long long)wait_ms;
    pid_t pid = 0;
    if (start) {
        char *port_path = mode_file(mode, "controller.port");
        unlink(port_path);
        free(port_path);
        prog = core_find_program("sky-controller");
        /* A bare name back means it was found nowhere. */
        if (prog == NULL || strchr(prog, '/') == NULL) {
            rc = -ENOENT;
            *err = core_xstrdup("cannot find the sky-controller program (next to sky, in "
                                "the build tree or on $PATH)");
            goto fail;
        }
        char *argv[] = {prog, "--mode", (char *)mode, NULL};
        pid = core_spawn_daemon(argv, log_path);
        if (pid < 0) {
            rc = pid;
            *err = core_xasprintf("cannot start %s: %s", prog, core_strerror(rc));
            goto fail;
        }
    }
    for (;;) {
        if (try_find(mode, token, out, &probe) == 0)
            goto done;
        if (pid > 0 && !proc_alive(pid)) {
            char *why = log_last_line(log_path);
            rc = -ECHILD;
            *err = core_xasprintf("the %s controller exited during start-up%s%s (see %s)", mode,
                                  why ? ": " : "", why ? why : "", log_path);
            free(why);
            goto fail;
        }
        if (core_mono_ms() >= deadline) {
            rc = -ETIMEDOUT;
            *err = core_xasprintf("the %s controller did not answer within %ld s (see %s)", mode,
                                  (wait_ms + 999) / 1000, log_path);
            goto fail;
        }
        usleep(POLL_MS * 1000);
    }

done:
    rc = 0;
fail:
    if (lock_fd >= 0)
        close(lock_fd);
    free(token);
    free(dir);
    free(lock_path);
    free(log_path);
    free(prog);
    if (rc < 0)
        ctl_cli_daemon_free(out);
    return rc;
}

int ctl_cli_connect(const char *group, const char *mode, long wait_ms, ctl_cli_daemon_t *out)
{
    char *err = NULL;
    int rc = ctl_cli_daemon_connect(mode, wait_ms, out, &err);
    if (rc < 0) {
        ctl_cli_fail(group, "%s", err ? err : core_strerror(rc));
        free(err);
        return 1;
    }
    return 0;
}

/* 1 if $SKY_HOME/<mode>/<name> exists; creates nothing. */
static int mode_file_exists(const char *mode, const char *name)
{
    struct stat st;
    char *rel = core_xasprintf("%s/%s", mode, name);
    char *path = core_home_peek(rel);
    int exists = stat(path, &st) == 0;
    free(rel);
    free(path);
    return exists;
}

int ctl_cli_connect_read(const char *group, const char *mode, const char *db, bool refresh,
                         long wait_ms, ctl_cli_daemon_t *out)
{
    if (ctl_cli_daemon_find(mode, out) == 0)
        return 0;
    if (!refresh && mode_file_exists(mode, "controller.stopped"))
        return CTL_CLI_STOPPED;
    /* Neither state nor a daemon's port: it never ran here. A port file left by a
     * daemon that does not answer (or refuses our token) is for connect to explain. */
    if (!refresh && !mode_file_exists(mode, db) && !mode_file_exists(mode, "controller.port"))
        return CTL_CLI_NONE;
    return ctl_cli_connect(group, mode, wait_ms, out);
}

static bool wait_gone(pid_t pid, long wait_ms)
{
    unsigned long long deadline = core_mono_ms() + (unsigned long long)wait_ms;
    while (proc_alive(pid)) {
        if (core_mono_ms() >= deadline)
            return false;
        usleep(POLL_MS * 1000);
    }
    return true;
}

int ctl_cli_stop_daemon(const char *mode, long wait_ms)
{
    ctl_cli_daemon_t d;
    if (ctl_cli_daemon_find(mode, &d) != 0)
        return 0;
    pid_t pid = d.pid;
    ctl_cli_daemon_free(&d);
    if (pid <= 0)
        return -ESRCH;
    if (kill(pid, SIGTERM) != 0)
        return errno == ESRCH ? 1 : -errno;
    if (!wait_gone(pid, wait_ms)) {
        /* Its state is on disk after every change: a kill loses nothing. */
        kill(pid, SIGKILL);
        if (!wait_gone(pid, 10000))
            return -ETIMEDOUT;
    }
    return 1;
}

int ctl_cli_cloud_up(const char *group)
{
    char *base = NULL, *token = NULL, *err = NULL;
    int rc = core_localcloud_connect(CORE_LC_START, &base, &token, &err);
    if (rc < 0)
        ctl_cli_fail(group, "%s", err ? err : core_strerror(rc));
    free(base);
    free(token);
    free(err);
    return rc < 0 ? 1 : 0;
}

void ctl_cli_daemon_free(ctl_cli_daemon_t *d)
{
    free(d->mode);
    d->mode = NULL;
    free(d->base_url);
    d->base_url = NULL;
    free(d->token);
    d->token = NULL;
}

static char *reply_error(const cJSON *resp, long status)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");
    if (cJSON_IsString(e) && e->valuestring[0])
        return core_xstrdup(e->valuestring);
    e = cJSON_GetObjectItemCaseSensitive(resp, "detail");
    if (cJSON_IsString(e) && e->valuestring[0])
        return core_xstrdup(e->valuestring);
    return core_xasprintf("the controller answered HTTP %ld", status);
}

int ctl_cli_api(const ctl_cli_daemon_t *d, const char *method, const char *path, const cJSON *req,
                long timeout_ms, long *status, cJSON **resp, char **err)
{
    char *url = core_xasprintf("%s%s", d->base_url, path);
    long st = 0;
    cJSON *r = NULL;
    int rc = core_http_json(method, url, d->token, req, timeout_ms, &st, &r);
    free(url);
    if (status)
        *status = st;
    if (rc == CORE_EHTTP) {
        *err = reply_error(r, st);
    } else if (rc < 0) {
        *err = core_xasprintf("cannot reach the %s controller at %s: %s", d->mode, d->base_url,
                              core_strerror(rc));
    }
    if (resp && rc == 0)
        *resp = r;
    else
        cJSON_Delete(r);
    return rc;
}

typedef struct {
    CURL *h;
    FILE *out;
    long status;
    char *errbuf; /* body of a non-2xx reply, bounded */
    size_t errlen;
} stream_ctx_t;

#define STREAM_ERR_MAX 65536

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *arg)
{
    stream_ctx_t *s = arg;
    size_t n = size * nmemb;
    if (s->status == 0)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status >= 200 && s->status < 300) {
        if (fwrite(ptr, 1, n, s->out) != n)
            return 0;
        fflush(s->out);
        return n;
    }
    size_t keep = s->errlen + n > STREAM_ERR_MAX ? STREAM_ERR_MAX - s->errlen : n;
    s->errbuf = core_xrealloc(s->errbuf, s->errlen + keep + 1);
    memcpy(s->errbuf + s->errlen, ptr, keep);
    s->errlen += keep;
    s->errbuf[s->errlen] = '\0';
    return n;
}

int ctl_cli_stream(const ctl_cli_daemon_t *d, const char *path, long timeout_ms, FILE *out,
                   long *status, char **err)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    stream_ctx_t s = {0};
    s.out = out;
    s.h = curl_easy_init();
    if (s.h == NULL) {
        *err = core_xstrdup("cannot initialise libcurl");
        return -ENOMEM;
    }
    char *url = core_xasprintf("%s%s", d->base_url, path);
    char *auth = core_xasprintf("Authorization: Bearer %s", d->token);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    curl_easy_setopt(s.h, CURLOPT_URL, url);
    curl_easy_setopt(s.h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(s.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s.h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(s.h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    if (timeout_ms > 0)
        curl_easy_setopt(s.h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(s.h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(s.h, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(s.h);
    long code = 0;
    curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &code);
    if (status)
        *status = code;
    int rc = 0;
    if (code != 0 && (code < 200 || code >= 300)) {
        cJSON *doc = s.errbuf ? cJSON_Parse(s.errbuf) : NULL;
        *err = reply_error(doc, code);
        cJSON_Delete(doc);
        rc = CORE_EHTTP;
    } else if (cc != CURLE_OK) {
        rc = cc == CURLE_COULDNT_CONNECT      ? -ECONNREFUSED
             : cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
                                              : -EIO;
        *err = code == 0 ? core_xasprintf("cannot reach the %s controller at %s: %s", d->mode,
                                          d->base_url, curl_easy_strerror(cc))
                         : core_xasprintf("log stream interrupted: %s", curl_easy_strerror(cc));
    }
    curl_easy_cleanup(s.h);
    curl_slist_free_all(hdrs);
    free(auth);
    free(url);
    free(s.errbuf);
    return rc;
}

/* --------------------------------------------------------------- utilities */

char *ctl_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = core_xmalloc(3 * n + 1);
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return out;
}

void ctl_cli_print_json(FILE *f, const cJSON *doc)
{
    char *s = cJSON_Print(doc);
    if (s) {
        fputs(s, f);
        fputc('\n', f);
    }
    cJSON_free(s);
}

int ctl_cli_fail(const char *group, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", group);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

bool ctl_cli_confirm(const char *question, bool default_yes)
{
    if (!isatty(STDIN_FILENO))
        return true;
    printf("%s [%s]: ", question, default_yes ? "Y/n" : "y/N");
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof(line), stdin) == NULL) {
        putchar('\n');
        return false;
    }
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\n' || *p == '\0')
        return default_yes;
    return *p == 'y' || *p == 'Y';
}

void ctl_random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (n > sizeof(raw))
        n = sizeof(raw);
    if (getrandom(raw, n, 0) != (ssize_t)n) {
        /* getrandom on Linux does not fail for small sizes; keep a fallback anyway. */
        unsigned long long t = core_mono_ms() ^ (unsigned long long)getpid();
        for (size_t i = 0; i < n; i++)
            raw[i] = (unsigned char)(t >> ((i % 8) * 8));
    }
    for (size_t i = 0; i < n; i++)
        out[i] = hex[raw[i] & 15];
    out[n] = '\0';
}

static void env_put(cJSON *envs, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(envs, key);
    cJSON_AddStringToObject(envs, key, value);
}

static int file_env(const char *key, const char *value, void *arg)
{
    env_put(arg, key, value);
    return cJSON_GetArraySize(arg) > CTL_CLI_MAX_ENVS ? -E2BIG : 0;
}

int ctl_cli_envs(const ctl_cli_env_t *env, cJSON **out, char **err)
{
    cJSON *envs = cJSON_CreateObject();
    int code = 1;

    if (env->file) {
        int rc = core_dotenv_load(env->file, file_env, envs, err);
        if (rc < 0) {
            char *why = *err;
            *err = rc == -E2BIG ? core_xasprintf("--env-file: %s: more than %d variables",
                                                 env->file, CTL_CLI_MAX_ENVS)
                                : core_xasprintf("--env-file: %s", why);
            free(why);
            goto fail;
        }
    }
    code = 2;
    for (size_t i = 0; i < env->n; i++) {
        const char *kv = env->kv[i];
        const char *eq = strchr(kv, '=');
        if (eq == kv) {
            *err = core_xasprintf("--env expects KEY=VALUE, got '%s'", kv);
            goto fail;
        }
        if (eq == NULL) {
            const char *v = getenv(kv);
            if (v == NULL) {
                *err = core_xasprintf("--env %s: no such variable in the environment", kv);
                goto fail;
            }
            env_put(envs, kv, v);
        } else {
            char *k = core_xstrndup(kv, (size_t)(eq - kv));
            env_put(envs, k, eq + 1);
            free(k);
        }
    }
    if (cJSON_GetArraySize(envs) > CTL_CLI_MAX_ENVS) {
        code = 1;
        *err = core_xasprintf("more than %d environment variables", CTL_CLI_MAX_ENVS);
        goto fail;
    }
    *out = envs;
    return 0;
fail:
    cJSON_Delete(envs);
    return code;
}

/* ------------------------------------------------------------- task flags */

/* A location flag's JSON: null for 'none' and '*' (reset), else the string. */
static cJSON *reset_or_str(const char *v, bool star_resets)
{
    if (strcasecmp(v, "none") == 0 || (star_resets && strcmp(v, "*") == 0))
        return cJSON_CreateNull();
    return cJSON_CreateString(v);
}

/* KEY=VALUE, or KEY with its value from this environment (flags.py _parse_secret_var). */
static int add_secrets(const ctl_cli_t *cli, const ctl_cli_task_t *t, cJSON *ov)
{
    if (t->n_secrets == 0)
        return CTL_CLI_RUN;
    cJSON *sec = cJSON_AddObjectToObject(ov, "secrets");
    for (size_t i = 0; i < t->n_secrets; i++) {
        const char *kv = t->secrets[i], *eq = strchr(kv, '=');
        if (eq == kv)
            return ctl_cli_usage_error(cli, "Invalid secret var: %s. Must be in the form of "
                                            "KEY=VAL or KEY.", kv);
        char *key = eq ? core_xstrndup(kv, (size_t)(eq - kv)) : core_xstrdup(kv);
        const char *val = eq ? eq + 1 : getenv(kv);
        if (val == NULL) {
            free(key);
            return ctl_cli_usage_error(cli, "%s is not set in local environment.", kv);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(sec, key);
        cJSON_AddStringToObject(sec, key, val);
        free(key);
    }
    return CTL_CLI_RUN;
}

int ctl_cli_task_overrides(const ctl_cli_t *cli, const ctl_cli_task_t *t, cJSON **out)
{
    cJSON *ov = cJSON_CreateObject(), *res = cJSON_CreateObject();
    int rc = CTL_CLI_RUN;
    if (t->infra && (t->cloud || t->region || t->zone)) {
        rc = ctl_cli_usage_error(cli, "Cannot specify both --infra and --cloud, --region, or "
                                      "--zone.");
        goto out;
    }
    if (t->cloud || t->region || t->zone)
        fprintf(cli->err, "%s: warning: The --cloud, --region, and --zone options are "
                          "deprecated. Use --infra instead.\n", cli->prog);
    const struct {
        const char *key, *val;
        bool star;
    } strs[] = {
        {"infra", t->infra, false},         {"cloud", t->cloud, true},
        {"region", t->region, true},        {"zone", t->zone, true},
        {"cpus", t->cpus, false},           {"memory", t->memory, false},
        {"accelerators", t->gpus, false},   {"instance_type", t->instance_type, false},
        {"image_id", t->image_id, false},   {"disk_tier", t->disk_tier, false},
        {"network_tier", t->network_tier, false},
    };
    for (size_t i = 0; i < CORE_ARRAY_SIZE(strs); i++) {
        if (strs[i].val == NULL)
            continue;
        /* --infra '*' is "any cloud": the spec reads the wildcard itself. */
        if (strcmp(strs[i].key, "infra") == 0)
            cJSON_AddStringToObject(res, "infra", strs[i].val);
        else
            cJSON_AddItemToObject(res, strs[i].key, reset_or_str(strs[i].val, strs[i].star));
    }
    if (t->use_spot >= 0)
        cJSON_AddBoolToObject(res, "use_spot", t->use_spot);
    if (t->disk_size > 0)
        cJSON_AddNumberToObject(res, "disk_size", (double)t->disk_size);
    if (t->n_ports > 0) {
        bool none = false;
        for (size_t i = 0; i < t->n_ports; i++)
            none |= strcasecmp(t->ports[i], "none") == 0;
        if (none && t->n_ports > 1) {
            rc = ctl_cli_usage_error(cli, "Cannot specify both \"none\" and other ports.");
            goto out;
        }
        if (none) {
            cJSON_AddNullToObject(res, "ports");
        } else {
            cJSON *arr = cJSON_AddArrayToObject(res, "ports");
            for (size_t i = 0; i < t->n_ports; i++)
                cJSON_AddItemToArray(arr, cJSON_CreateString(t->ports[i]));
        }
    }
    if (t->workdir) {
        char abs[PATH_MAX];
        struct stat st;
        if (realpath(t->workdir, abs) == NULL || stat(abs, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rc = ctl_cli_usage_error(cli, "Invalid value for '--workdir': Directory '%s' does "
                                          "not exist.", t->workdir);
            goto out;
        }
        cJSON_AddStringToObject(ov, "workdir", abs);
    }
    if (t->num_nodes > 0)
        cJSON_AddNumberToObject(ov, "num_nodes", (double)t->num_nodes);
    if ((rc = add_secrets(cli, t, ov)) != CTL_CLI_RUN)
        goto out;
    if (cJSON_GetArraySize(res) > 0) {
        cJSON_AddItemToObject(ov, "resources", res);
        res = NULL;
    }
    *out = ov;
    ov = NULL;
out:
    cJSON_Delete(res);
    cJSON_Delete(ov);
    return rc;
}

/* ---------------------------------------------------------- task sources */

static bool is_yaml_name(const char *p)
{
    size_t n = strlen(p);
    return (n > 5 && strcmp(p + n - 5, ".yaml") == 0) || (n > 4 && strcmp(p + n - 4, ".yml") == 0);
}

/* A YAML task whose run is <cmd> (JSON strings are YAML double-quoted scalars). */
static char *command_yaml(const char *cmd)
{
    cJSON *s = cJSON_CreateString(cmd);
    char *q = cJSON_PrintUnformatted(s);
    char *yaml = core_xasprintf("name: sky-cmd\nrun: %s\n", q);
    cJSON_free(q);
    cJSON_Delete(s);
    return yaml;
}

static char *join_words(char **w, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(w[i]) + 1;
    char *s = core_xmalloc(len);
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, w[i]);
    }
    return s;
}

/*
 * The entrypoint's YAML text: a file that is a task (by its name, or because
 * it parses as one), else the words as a command (command.py _check_yaml).
 */
static int read_entrypoint(const char *group, char **entry, int n, ctl_cli_src_t *s)
{
    struct stat st;
    if (n == 1 && stat(entry[0], &st) == 0 && S_ISREG(st.st_mode)) {
        size_t len = 0;
        int rc = core_read_file(entry[0], CORE_SPEC_MAX_BYTES, &s->yaml, &len);
        if (rc < 0) {
            if (rc == -EFBIG)
                return ctl_cli_fail(group, "%s: larger than %d bytes", entry[0],
                                    CORE_SPEC_MAX_BYTES);
            return ctl_cli_fail(group, "cannot read %s: %s", entry[0], core_strerror(rc));
        }
        if (memchr(s->yaml, '\0', len))
            return ctl_cli_fail(group, "%s: not a text file", entry[0]);
        core_task_t *probe = NULL;
        if (is_yaml_name(entry[0]) || core_task_parse(s->yaml, len, entry[0], &probe, NULL) == 0) {
            core_task_free(probe);
            char abs[PATH_MAX];
            s->yaml_path = core_xstrdup(realpath(entry[0], abs) ? abs : entry[0]);
            return 0;
        }
        free(s->yaml);
        s->yaml = NULL;
    } else if (n == 1 && is_yaml_name(entry[0])) {
        return ctl_cli_fail(group, "cannot read %s: %s", entry[0], strerror(errno));
    }
    char *cmd = join_words(entry, n);
    s->yaml = command_yaml(cmd);
    free(cmd);
    return 0;
}

int ctl_cli_src_load(const ctl_cli_t *cli, const char *group, char **entry, int n,
                     const ctl_cli_env_t *env, const ctl_cli_task_t *flags, const cJSON *extra,
                     ctl_cli_src_t *out)
{
    char *err = NULL, cwd[PATH_MAX];
    memset(out, 0, sizeof(*out));
    int code = ctl_cli_task_overrides(cli, flags, &out->overrides);
    if (code != CTL_CLI_RUN)
        return code;
    const cJSON *e;
    cJSON_ArrayForEach(e, extra)
    {
        cJSON *res = cJSON_GetObjectItemCaseSensitive(out->overrides, "resources");
        if (res == NULL)
            res = cJSON_AddObjectToObject(out->overrides, "resources");
        cJSON_DeleteItemFromObjectCaseSensitive(res, e->string);
        cJSON_AddItemToObject(res, e->string, cJSON_Duplicate(e, 1));
    }
    if ((code = ctl_cli_envs(env, &out->envs, &err)) != 0) {
        ctl_cli_fail(group, "%s", err);
        free(err);
        return code;
    }
    if (read_entrypoint(group, entry, n, out) != 0)
        return 1;
    out->cwd = core_xstrdup(getcwd(cwd, sizeof(cwd)) ? cwd : "/");
    if (core_task_parse_with(out->yaml, strlen(out->yaml),
                             out->yaml_path ? entry[0] : "<command>", out->envs, out->overrides,
                             &out->task, &err) < 0) {
        fprintf(stderr, "%s\n", err ? err : "invalid task");
        free(err);
        return 1;
    }
    for (size_t i = 0; i < out->task->n_warnings; i++)
        fprintf(stderr, "%s\n", out->task->warnings[i]);
    return 0;
}

void ctl_cli_src_to_json(const ctl_cli_src_t *s, cJSON *req)
{
    cJSON_AddStringToObject(req, "yaml", s->yaml);
    if (s->yaml_path)
        cJSON_AddStringToObject(req, "yaml_path", s->yaml_path);
    cJSON_AddStringToObject(req, "cwd", s->cwd);
    if (cJSON_GetArraySize(s->envs) > 0)
        cJSON_AddItemToObject(req, "envs", cJSON_Duplicate(s->envs, 1));
    if (cJSON_GetArraySize(s->overrides) > 0)
        cJSON_AddItemToObject(req, "overrides", cJSON_Duplicate(s->overrides, 1));
}

void ctl_cli_src_free(ctl_cli_src_t *s)
{
    free(s->yaml);
    free(s->yaml_path);
    free(s->cwd);
    cJSON_Delete(s->envs);
    cJSON_Delete(s->overrides);
    core_task_free(s->task);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ plans */

int ctl_cli_print_plan(FILE *f, const char *group, const core_task_t *t)
{
    core_catalog_t *cat = NULL;
    core_candidate_t *c = NULL;
    size_t n = 0;
    char *err = NULL;
    if (core_catalog_load(NULL, &cat, &err) < 0 ||
        core_catalog_resolve(cat, &t->resources, &c, &n, &err) < 0) {
        ctl_cli_fail(group, "%s", err ? err : "no instance fits the task");
        free(err);
        core_catalog_free(cat);
        return 1;
    }
    static const char *hdr[] = {"CLOUD",        "INSTANCE",    "vCPUs",    "Mem(GB)",
                                "ACCELERATORS", "REGION/ZONE", "COST ($)", "CHOSEN"};
    ctl_table_t *tab = ctl_table_new(CORE_ARRAY_SIZE(hdr), hdr);
    /* Cheapest first: each cloud's first candidate is its best (the optimizer's rows). */
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(c[j].cloud, c[i].cloud) == 0;
        if (seen)
            continue;
        char inst[80], cpus[16], mem[16], acc[40], where[96], cost[32];
        snprintf(inst, sizeof(inst), "%s%s", c[i].instance_type, c[i].spot ? "[Spot]" : "");
        snprintf(cpus, sizeof(cpus), "%g", c[i].vcpus);
        snprintf(mem, sizeof(mem), "%g", c[i].memory_gb);
        if (c[i].accelerator[0])
            snprintf(acc, sizeof(acc), "%s:%d", c[i].accelerator, c[i].accelerator_count);
        else
            snprintf(acc, sizeof(acc), "-");
        snprintf(where, sizeof(where), "%s/%s", c[i].region, c[i].zone);
        snprintf(cost, sizeof(cost), "%.3f", c[i].price);
        const char *row[] = {core_cloud_display_name(c[i].cloud), inst, cpus, mem, acc,
                             where, cost, i == 0 ? "\u2714" : " "};
        ctl_table_add_row(tab, row);
    }
    char label[160];
    core_candidate_label(&c[0], label, sizeof(label));
    fprintf(f, "Considered resources (1 node):\n");
    ctl_table_print(tab, f);
    fprintf(f, "Chosen: %s (%s%s) in %s/%s at $%.3f/hour.\n", label, c[0].instance_type,
            c[0].spot ? ", spot" : "", c[0].region, c[0].zone, c[0].price);
    ctl_table_free(tab);
    free(c);
    core_catalog_free(cat);
    return 0;
}
