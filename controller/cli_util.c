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
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli_util.h"
#include "core/dotenv.h"
#include "core/err.h"
#include "core/http.h"
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
