/*
 * `sky ssh up` / `down`: per host, one SSH round trip to look (probe), one
 * to install and start when something differs, then a TLS health check
 * from here, which proves the whole path the controllers will use.
 */
#include "core/ssh_deploy.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/tls.h"
#include "core/util.h"

#define PROBE_TIMEOUT_MS   20000L
#define INSTALL_TIMEOUT_MS 120000L /* a few MB over a slow link */
#define HEALTH_TIMEOUT_MS  5000L
#define MAX_PARALLEL       16

const char *core_ssh_host_state_name(core_ssh_host_state_t s)
{
    static const char *names[] = {"ok",         "unreachable", "auth failed", "host key changed",
                                  "wrong arch", "no bash",     "no python3",  "error"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "error";
}

/* ------------------------------------------------------------ agent binary */

void core_ssh_elf_arch(const void *data, size_t len, char *out, size_t outlen)
{
    const unsigned char *e = data;
    snprintf(out, outlen, "%s", "");
    if (len < 20 || memcmp(e, "\177ELF", 4) != 0)
        return;
    unsigned m = e[5] == 2 ? (unsigned)(e[18] << 8 | e[19]) : (unsigned)(e[19] << 8 | e[18]);
    const char *name;
    switch (m) {
    case 62: name = "x86_64"; break;
    case 183: name = "aarch64"; break;
    case 3: name = "i686"; break;
    case 40: name = "armv7l"; break;
    case 243: name = "riscv64"; break;
    case 21: name = "ppc64le"; break;
    case 22: name = "s390x"; break;
    default: snprintf(out, outlen, "elf-machine-%u", m); return;
    }
    snprintf(out, outlen, "%s", name);
}

int core_ssh_agent_bin_load(core_ssh_agent_bin_t *b, char **err)
{
    memset(b, 0, sizeof(*b));
    b->path = core_find_program("sky-agent");
    if (!b->path) {
        *err = core_xstrdup("cannot find the sky-agent program to install");
        return -ENOENT;
    }
    int rc = core_read_file(b->path, 256u << 20, &b->data, &b->len);
    if (rc < 0) {
        *err = core_xasprintf("cannot read %s: %s", b->path, core_strerror(rc));
        goto fail;
    }
    core_sha256_hex(b->data, b->len, b->sha);
    /* The build wrote the binary's hash next to it: a truncated or altered
     * file must not be spread to every host. */
    char *sumpath = core_xasprintf("%s.sha256", b->path), *want = NULL;
    size_t wl = 0;
    rc = core_read_file(sumpath, 256, &want, &wl);
    if (rc < 0) {
        *err = core_xasprintf("cannot read %s (written when sky-agent is built): %s", sumpath,
                              core_strerror(rc));
    } else if (wl < 64 || strncmp(want, b->sha, 64) != 0) {
        *err = core_xasprintf("%s does not match its checksum in %s: rebuild it", b->path,
                              sumpath);
        rc = -EBADMSG;
    }
    free(want);
    free(sumpath);
    if (rc < 0)
        goto fail;
    core_ssh_elf_arch(b->data, b->len, b->arch, sizeof(b->arch));
    if (!b->arch[0]) {
        *err = core_xasprintf("%s is not an ELF executable", b->path);
        rc = -ENOEXEC;
        goto fail;
    }
    return 0;
fail:
    core_ssh_agent_bin_free(b);
    return rc;
}

void core_ssh_agent_bin_free(core_ssh_agent_bin_t *b)
{
    free(b->path);
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------------ ustar */

typedef struct tarbuf {
    char *p;
    size_t len;
} tarbuf_t;

/* One regular file in POSIX ustar format (names are short and ours). */
static void tar_add(tarbuf_t *t, const char *name, const void *data, size_t len, unsigned mode)
{
    size_t pad = (512 - len % 512) % 512;
    t->p = core_xrealloc(t->p, t->len + 512 + len + pad);
    char *h = t->p + t->len;
    memset(h, 0, 512);
    snprintf(h, 100, "%s", name);
    snprintf(h + 100, 8, "%07o", mode);
    snprintf(h + 108, 8, "%07o", 0);
    snprintf(h + 116, 8, "%07o", 0);
    snprintf(h + 124, 12, "%011llo", (unsigned long long)len);
    snprintf(h + 136, 12, "%011llo", (unsigned long long)core_now());
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    memcpy(h + 512, data, len);
    memset(h + 512 + len, 0, pad);
    t->len += 512 + len + pad;
}

static void tar_end(tarbuf_t *t)
{
    t->p = core_xrealloc(t->p, t->len + 1024);
    memset(t->p + t->len, 0, 1024);
    t->len += 1024;
}

/* ------------------------------------------------------------------ record */

static char *pool_dir(const char *pool)
{
    char *rel = core_xasprintf("ssh/pools/%s", pool);
    char *p = core_home_path(rel);
    free(rel);
    return p;
}

static cJSON *host_to_json(const core_ssh_hostinfo_t *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "host", h->host);
    cJSON_AddStringToObject(o, "addr", h->addr);
    cJSON_AddNumberToObject(o, "agent_port", h->agent_port);
    cJSON_AddStringToObject(o, "arch", h->arch);
    cJSON_AddNumberToObject(o, "cpus", h->cpus);
    cJSON_AddNumberToObject(o, "memory_gb", h->memory_gb);
    cJSON_AddNumberToObject(o, "gpus", h->gpus);
    cJSON_AddStringToObject(o, "gpu_name", h->gpu_name);
    cJSON_AddStringToObject(o, "state", core_ssh_host_state_name(h->state));
    cJSON_AddStringToObject(o, "reason", h->reason);
    return o;
}

static void jstr(const cJSON *o, const char *k, char *out, size_t outlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    snprintf(out, outlen, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void host_from_json(const cJSON *o, core_ssh_hostinfo_t *h)
{
    memset(h, 0, sizeof(*h));
    jstr(o, "host", h->host, sizeof(h->host));
    jstr(o, "addr", h->addr, sizeof(h->addr));
    h->agent_port = (int)jnum(o, "agent_port");
    jstr(o, "arch", h->arch, sizeof(h->arch));
    h->cpus = (int)jnum(o, "cpus");
    h->memory_gb = jnum(o, "memory_gb");
    h->gpus = (int)jnum(o, "gpus");
    jstr(o, "gpu_name", h->gpu_name, sizeof(h->gpu_name));
    jstr(o, "reason", h->reason, sizeof(h->reason));
    char st[32];
    jstr(o, "state", st, sizeof(st));
    h->state = CORE_SSH_HOST_ERROR;
    for (int s = CORE_SSH_HOST_OK; s <= CORE_SSH_HOST_ERROR; s++)
        if (!strcmp(st, core_ssh_host_state_name((core_ssh_host_state_t)s)))
            h->state = (core_ssh_host_state_t)s;
}

int core_ssh_record_load(const char *pool, core_ssh_hostinfo_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char *dir = pool_dir(pool), *path = core_xasprintf("%s/hosts.json", dir), *text = NULL;
    size_t len = 0;
    int rc = core_read_file(path, 16u << 20, &text, &len);
    free(dir);
    free(path);
    if (rc < 0)
        return rc;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *hosts = cJSON_GetObjectItemCaseSensitive(doc, "hosts");
    if (!cJSON_IsArray(hosts)) {
        cJSON_Delete(doc);
        return CORE_EJSON;
    }
    *out = core_xcalloc((size_t)cJSON_GetArraySize(hosts) + 1, sizeof(**out));
    const cJSON *h;
    cJSON_ArrayForEach(h, hosts) host_from_json(h, &(*out)[(*n)++]);
    cJSON_Delete(doc);
    return 0;
}

static int record_save(const char *pool, const core_ssh_hostinfo_t *hs, size_t n)
{
    char *dir = pool_dir(pool), *path = core_xasprintf("%s/hosts.json", dir);
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "hosts");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, host_to_json(&hs[i]));
    char *text = cJSON_Print(doc);
    core_mkdir_p(dir, 0700);
    int rc = core_write_file(path, text, strlen(text), 0600);
    cJSON_free(text);
    cJSON_Delete(doc);
    free(dir);
    free(path);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int core_ssh_record_pools(char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    char *dir = core_home_path("ssh/pools");
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return errno == ENOENT ? 0 : -errno;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !core_ssh_pool_name_valid(e->d_name))
            continue;
        char *p = core_xasprintf("%s/%s/hosts.json", dir, e->d_name);
        if (access(p, R_OK) == 0) {
            *names = core_xrealloc(*names, (*n + 1) * sizeof(**names));
            (*names)[(*n)++] = core_xstrdup(e->d_name);
        }
        free(p);
    }
    closedir(d);
    free(dir);
    if (*n)
        qsort(*names, *n, sizeof(**names), cmp_str);
    return 0;
}

/* $SKY_HOME/ssh/agents/<addr>: the agent client's "this one speaks TLS". */
static int agent_mark(const char *addr, const char *pool)
{
    char *rel = core_xasprintf("ssh/agents/%s", addr);
    char *path = core_home_path(rel);
    char *dir = core_home_path("ssh/agents");
    core_mkdir_p(dir, 0700);
    int rc = pool ? core_write_file(path, pool, strlen(pool), 0600)
                  : (unlink(path) == 0 || errno == ENOENT ? 0 : -errno);
    free(rel);
    free(path);
    free(dir);
    return rc;
}

int core_ssh_host_alive(const core_ssh_hostinfo_t *h, long timeout_ms)
{
    if (!h->addr[0] || h->agent_port <= 0)
        return -ENOENT;
    return core_agent_health(h->addr, h->agent_port, NULL, timeout_ms);
}

typedef struct alive_job {
    const core_ssh_hostinfo_t *h;
    long timeout_ms;
    int rc;
} alive_job_t;

static void *alive_thread(void *arg)
{
    alive_job_t *a = arg;
    a->rc = core_ssh_host_alive(a->h, a->timeout_ms);
    return NULL;
}

void core_ssh_hosts_alive(const core_ssh_hostinfo_t *hs, size_t n, long timeout_ms, int *rcs)
{
    for (size_t base = 0; base < n; base += MAX_PARALLEL) {
        size_t m = n - base < MAX_PARALLEL ? n - base : MAX_PARALLEL;
        alive_job_t jobs[MAX_PARALLEL];
        pthread_t th[MAX_PARALLEL];
        int started[MAX_PARALLEL];
        for (size_t i = 0; i < m; i++) {
            jobs[i] = (alive_job_t){&hs[base + i], timeout_ms, 0};
            started[i] = pthread_create(&th[i], NULL, alive_thread, &jobs[i]) == 0;
            if (!started[i])
                alive_thread(&jobs[i]);
        }
        for (size_t i = 0; i < m; i++) {
            if (started[i])
                pthread_join(th[i], NULL);
            rcs[base + i] = jobs[i].rc;
        }
    }
}

/* "<tag>-<pool>": the install directory's name on hosts. */
static int install_name(const char *ssh_dir, const char *pool, char *out, size_t outlen)
{
    char *ca = core_xasprintf("%s/ca.crt", ssh_dir), sha[65];
    int rc = core_sha256_file(ca, sha);
    free(ca);
    if (rc < 0)
        return rc;
    snprintf(out, outlen, "%.8s-%s", sha, pool);
    return 0;
}

/* The agent's --listen host: IPv6 literals in brackets. */
static void listen_addr(const char *addr, char *out, size_t outlen)
{
    snprintf(out, outlen, strchr(addr, ':') ? "[%s]" : "%s", addr);
}

/* ------------------------------------------------------------------- probe */

static void sha_of_line(const char *v, char out[65])
{
    size_t n = strspn(v, "0123456789abcdef");
    snprintf(out, 65, "%.*s", n == 64 ? 64 : 0, v);
}

int core_ssh_parse_probe(const char *out, core_ssh_hostinfo_t *h, core_ssh_probe_t *p)
{
    memset(p, 0, sizeof(*p));
    int seen_arch = 0;
    double mem_kb = 0;
    for (const char *line = out; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), line);
        line = nl ? nl + 1 : NULL;
        char *eq = strchr(buf, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *k = buf, *v = eq + 1;
        if (!strcmp(k, "arch")) {
            snprintf(h->arch, sizeof(h->arch), "%s", v);
            seen_arch = v[0] != '\0';
        } else if (!strcmp(k, "cpus")) {
            h->cpus = atoi(v);
        } else if (!strcmp(k, "mem_kb")) {
            mem_kb = strtod(v, NULL);
        } else if (!strcmp(k, "gpu")) {
            /* nvidia-smi --query-gpu=name,memory.total: "NVIDIA A100-SXM4-80GB, 81920" */
            if (h->gpus++ == 0) {
                const char *comma = strchr(v, ',');
                snprintf(h->gpu_name, sizeof(h->gpu_name), "%.*s",
                         (int)(comma ? (size_t)(comma - v) : strlen(v)), v);
            }
        } else if (!strcmp(k, "addr")) {
            snprintf(h->addr, sizeof(h->addr), "%s", v);
        } else if (!strcmp(k, "bash")) {
            p->bash = atoi(v);
        } else if (!strcmp(k, "python3")) {
            p->python3 = atoi(v);
        } else if (!strcmp(k, "agent_sha")) {
            sha_of_line(v, p->agent_sha);
        } else if (!strcmp(k, "cert_sha")) {
            sha_of_line(v, p->cert_sha);
        } else if (!strcmp(k, "token_sha")) {
            sha_of_line(v, p->token_sha);
        } else if (!strcmp(k, "agent_port")) {
            p->agent_port = atoi(v);
            p->agent_running = p->agent_port > 0;
        }
    }
    h->memory_gb = mem_kb / (1024.0 * 1024.0);
    return seen_arch && h->addr[0] ? 0 : -EINVAL;
}

/* ------------------------------------------------------------- one host */

typedef struct job {
    const core_ssh_host_t *host;
    const char *pool;
    const char *dirname; /* <tag>-<pool> */
    const char *ssh_dir;
    const core_ssh_agent_bin_t *bin;
    const char *token; /* the pool's: hosts get core_host_token() of it */
    int prev_port; /* the port an earlier up recorded, 0 = any */
    core_ssh_hostinfo_t *out;
    int down;
} job_t;

/*
 * Shell functions shared by the scripts below ($D: the pool's install dir,
 * $ADDR: the address agents listen on). An agent's directory holds its
 * agent.pid, port and agent.log. A zombie counts as gone: the host's init
 * may be slow to reap (or, in containers, never).
 */
#define FUNCS                                                                                    \
    "starttime() { [ -r /proc/$1/stat ] && sed 's/^.*) //' /proc/$1/stat | cut -d' ' -f20; }\n" \
    /* a pid file's "PID STARTTIME" names a live process we started (pids get reused) */       \
    "ours() {\n"                                                                                \
    "  set -- $(cat \"$1\" 2>/dev/null)\n"                                                      \
    "  [ -n \"$2\" ] && [ \"$(starttime \"$1\")\" = \"$2\" ] &&"                                 \
    " ! grep -q '^[^)]*) Z' /proc/$1/stat 2>/dev/null\n"                                        \
    "}\n"                                                                                       \
    "kill_ours() {\n" /* pidfile: TERM, up to 5 s, then KILL */                                \
    "  if ours \"$1\"; then\n"                                                                  \
    "    pid=$(cut -d' ' -f1 \"$1\"); kill -TERM \"$pid\" 2>/dev/null; i=0\n"                    \
    "    while ours \"$1\" && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n"               \
    "    ours \"$1\" && kill -KILL \"$pid\" 2>/dev/null\n"                                      \
    "  fi\n"                                                                                    \
    "  rm -f \"$1\"\n"                                                                          \
    "}\n"                                                                                       \
    "stop() {\n" /* an agent's dir: the agent (so its tasks), then its buckets' sshfs */       \
    "  kill_ours \"$1/agent.pid\"; rm -f \"$1/port\"\n"                                         \
    "  for m in \"$1\"/mounts/*.pid; do [ -f \"$m\" ] && kill_ours \"$m\"; done\n"              \
    "  return 0\n"                                                                              \
    "}\n"                                                                                       \
    "S=; command -v setsid >/dev/null 2>&1 && S=setsid\n"                                      \
    "start() {\n" /* dir home port */                                                          \
    "  rm -f \"$1/port\"\n"                                                                     \
    "  $S \"$D/sky-agent\" --listen \"$ADDR:$3\" --home \"$2\" --token-file \"$D/token\""       \
    " --tls-cert \"$D/agent.crt\" --tls-key \"$D/agent.key\" --port-file \"$1/port\""           \
    " --kill-tasks-on-exit </dev/null >>\"$1/agent.log\" 2>&1 &\n"                              \
    "  echo \"$! $(starttime $!)\" > \"$1/agent.pid\"; i=0\n"                                  \
    "  while [ ! -s \"$1/port\" ] && [ $i -lt 400 ] && ours \"$1/agent.pid\"; do"               \
    " sleep 0.025; i=$((i+1)); done\n"                                                          \
    "  [ -s \"$1/port\" ] || { echo 'sky-agent did not start:' >&2;"                            \
    " tail -n 5 \"$1/agent.log\" >&2; return 1; }\n"                                            \
    "}\n"                                                                                       \
    "stop_instances() {\n" /* every instance agent but those named */                          \
    "  for d in \"$D\"/instances/*; do\n"                                                       \
    "    [ -d \"$d\" ] || continue\n"                                                           \
    "    case \" $* \" in *\" ${d##*/} \"*) continue;; esac\n"                                  \
    "    stop \"$d\"; rm -rf \"$d\"\n"                                                          \
    "  done\n"                                                                                  \
    "}\n"

static const char PROBE[] =
    "D=\"$HOME/.sky-agent/%s\"\n" FUNCS
    "echo \"arch=$(uname -m)\"\n"
    "echo \"cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 0)\"\n"
    "echo \"mem_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo 2>/dev/null)\"\n"
    "set -- $SSH_CONNECTION; echo \"addr=$3\"\n"
    "if bash -c : >/dev/null 2>&1; then echo bash=1; else echo bash=0; fi\n"
    "if python3 -c '' >/dev/null 2>&1; then echo python3=1; else echo python3=0; fi\n"
    "if command -v nvidia-smi >/dev/null 2>&1; then\n"
    "  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null"
    " | sed 's/^/gpu=/'\n"
    "fi\n"
    "for f in sky-agent:agent agent.crt:cert token:token; do\n"
    "  [ -f \"$D/${f%%:*}\" ] && echo \"${f#*:}_sha=$(sha256sum < \"$D/${f%%:*}\" | cut -d' ' -f1)\"\n"
    "done\n"
    "ours \"$D/agent.pid\" && echo \"agent_port=$(cat \"$D/port\" 2>/dev/null)\"\n"
    "exit 0\n";

static const char INSTALL[] =
    "set -e\n"
    "umask 077\n"
    "D=\"$HOME/.sky-agent/%s\"; ADDR=%s\n" FUNCS
    "mkdir -p \"$D\" && cd \"$D\"\n"
    "rm -rf .new && mkdir .new && tar -xf - -C .new\n"
    "if [ -f .new/sky-agent ]; then\n"
    "  got=$(sha256sum < .new/sky-agent | cut -d' ' -f1)\n"
    "  [ \"$got\" = %s ] || { echo \"sky-agent arrived damaged (sha256 $got)\" >&2; exit 3; }\n"
    "  chmod 755 .new/sky-agent\n"
    "  if ! out=$(.new/sky-agent --version 2>&1); then\n"
    "    echo \"sky-agent cannot run on this host: $out\" >&2; exit 4\n"
    "  fi\n"
    "fi\n"
    "stop \"$D\"\n"
    "for f in .new/*; do [ -e \"$f\" ] && mv -f \"$f\" .; done\n"
    "rmdir .new\n"
    "mkdir -p home instances\n"
    "start \"$D\" \"$D/home\" %d || { [ %d != 0 ] && start \"$D\" \"$D/home\" 0; }\n"
    "echo \"agent_port=$(cat port)\"\n";

static const char REMOVE[] =
    "D=\"$HOME/.sky-agent/%s\"\n" FUNCS
    "[ -d \"$D\" ] || { echo state=absent; exit 0; }\n"
    "stop_instances\n"
    "stop \"$D\"\n"
    "cd / && rm -rf \"$D\" && { rmdir \"$HOME/.sky-agent\" 2>/dev/null || true; }\n"
    "echo state=removed\n";

/* An instance: an agent of its own in instances/<id>, on a port of its own.
 * Instances of this pool not in the keep list (their claims were released
 * while the host could not be reached) are stopped first. */
static const char INSTANCE_START[] =
    "set -e\n"
    "umask 077\n"
    "D=\"$HOME/.sky-agent/%s\"; ADDR=%s\n" FUNCS
    "[ -x \"$D/sky-agent\" ] || { echo 'sky-agent is not installed: run sky ssh up' >&2;"
    " exit 3; }\n"
    "stop_instances %s\n"
    "I=\"$D/instances/%s\"\n"
    "mkdir -p \"$I/home\"\n"
    "stop \"$I\"\n"
    "start \"$I\" \"$I/home\" 0\n"
    "echo \"agent_port=$(cat \"$I/port\")\"\n";

static const char INSTANCE_STOP[] =
    "D=\"$HOME/.sky-agent/%s\"\n" FUNCS
    "I=\"$D/instances/%s\"\n"
    "[ -d \"$I\" ] || exit 0\n"
    "stop \"$I\"; rm -rf \"$I\"\n";

static void set_state(core_ssh_hostinfo_t *o, core_ssh_host_state_t s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_state(core_ssh_hostinfo_t *o, core_ssh_host_state_t s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    o->state = s;
    vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
    va_end(ap);
}

/* An ssh failure (no session, refused key, changed key) as the host's state. */
static int ssh_failed(core_ssh_hostinfo_t *o, const core_ssh_result_t *r, const char *what)
{
    char why[400];
    core_ssh_reason(r->err, why, sizeof(why));
    switch (r->status) {
    case CORE_SSH_OK:
        return 0;
    case CORE_SSH_UNREACHABLE:
        set_state(o, CORE_SSH_HOST_UNREACHABLE, "%s", why);
        break;
    case CORE_SSH_AUTH:
        set_state(o, CORE_SSH_HOST_AUTH, "%s", why);
        break;
    case CORE_SSH_HOSTKEY:
        set_state(o, CORE_SSH_HOST_HOSTKEY,
                  "the host's SSH key is not the one recorded in $SKY_HOME/ssh/known_hosts "
                  "(remove its line there if the host was reinstalled)");
        break;
    case CORE_SSH_FAILED:
        set_state(o, CORE_SSH_HOST_ERROR, "%s failed (exit %d): %s", what, r->exit_code, why);
        break;
    }
    return -1;
}

static char *file_sha(const char *path, char out[65])
{
    if (core_sha256_file(path, out) < 0)
        out[0] = '\0';
    return out;
}

static void host_up(job_t *j)
{
    core_ssh_hostinfo_t *o = j->out;
    const core_ssh_host_t *h = j->host;
    core_ssh_result_t r;
    snprintf(o->host, sizeof(o->host), "%s", h->host);
    if (h->identity_file && access(h->identity_file, R_OK) != 0) {
        set_state(o, CORE_SSH_HOST_AUTH, "identity_file %s: %s (line %d)", h->identity_file,
                  strerror(errno), h->identity_mark.line);
        return;
    }
    char *script = core_xasprintf(PROBE, j->dirname);
    int rc = core_ssh_run(h, script, NULL, 0, PROBE_TIMEOUT_MS, &r);
    free(script);
    if (rc < 0) {
        set_state(o, CORE_SSH_HOST_ERROR, "cannot run ssh: %s", core_strerror(rc));
        return;
    }
    core_ssh_probe_t p;
    if (ssh_failed(o, &r, "looking at the host") < 0 ||
        core_ssh_parse_probe(r.out, o, &p) < 0) {
        if (o->state == CORE_SSH_HOST_OK)
            set_state(o, CORE_SSH_HOST_ERROR, "unexpected answer from the host: %.200s", r.out);
        core_ssh_result_free(&r);
        return;
    }
    core_ssh_result_free(&r);
    if (strcmp(o->arch, j->bin->arch) != 0) {
        set_state(o, CORE_SSH_HOST_WRONG_ARCH, "the host is %s; this sky-agent is built for %s",
                  o->arch, j->bin->arch);
        return;
    }
    if (!p.bash) {
        set_state(o, CORE_SSH_HOST_NO_BASH, "bash is not installed (sky-agent runs tasks with it)");
        return;
    }
    if (!p.python3) {
        set_state(o, CORE_SSH_HOST_NO_PYTHON,
                  "python3 is not installed (tasks and services' programs expect it)");
        return;
    }

    /* What differs from what should be there. */
    tarbuf_t tar = {0};
    char want[65], tok_sha[65], host_tok[65];
    core_host_token(j->token, o->addr, host_tok);
    core_sha256_hex(host_tok, strlen(host_tok), tok_sha);
    int restart = !p.agent_running;
    if (strcmp(p.agent_sha, j->bin->sha) != 0) {
        tar_add(&tar, "sky-agent", j->bin->data, j->bin->len, 0755);
        restart = 1;
    }
    if (strcmp(p.token_sha, tok_sha) != 0) {
        tar_add(&tar, "token", host_tok, strlen(host_tok), 0600);
        restart = 1;
    }
    char *certdir = core_xasprintf("%s/pools/%s/certs", j->ssh_dir, j->pool);
    char *certpath = core_xasprintf("%s/%s.crt", certdir, o->addr);
    if (strcmp(file_sha(certpath, want), p.cert_sha) != 0 || !want[0]) {
        char *cert = NULL, *key = NULL, *e = NULL;
        if (core_tls_issue(j->ssh_dir, o->addr, &cert, &key, &e) < 0) {
            set_state(o, CORE_SSH_HOST_ERROR, "%s", e);
            free(e);
            goto out;
        }
        core_mkdir_p(certdir, 0700);
        core_write_file(certpath, cert, strlen(cert), 0644);
        tar_add(&tar, "agent.crt", cert, strlen(cert), 0644);
        tar_add(&tar, "agent.key", key, strlen(key), 0600);
        memset(key, 0, strlen(key));
        free(cert);
        free(key);
        restart = 1;
    }
    o->agent_port = p.agent_port;
    if (restart) {
        tar_end(&tar);
        char addr[80];
        listen_addr(o->addr, addr, sizeof(addr));
        int port = p.agent_port ? p.agent_port : j->prev_port;
        script = core_xasprintf(INSTALL, j->dirname, addr, j->bin->sha, port, port);
        rc = core_ssh_run(h, script, tar.p, tar.len, INSTALL_TIMEOUT_MS, &r);
        free(script);
        if (rc < 0) {
            set_state(o, CORE_SSH_HOST_ERROR, "cannot run ssh: %s", core_strerror(rc));
            goto out;
        }
        if (ssh_failed(o, &r, "installing sky-agent") < 0) {
            core_ssh_result_free(&r);
            goto out;
        }
        core_ssh_hostinfo_t tmp = *o;
        core_ssh_probe_t p2;
        core_ssh_parse_probe(r.out, &tmp, &p2);
        o->agent_port = p2.agent_port;
        core_ssh_result_free(&r);
    }
    agent_mark(o->addr, j->pool);
    rc = core_ssh_host_alive(o, HEALTH_TIMEOUT_MS);
    if (rc < 0) {
        set_state(o, CORE_SSH_HOST_ERROR, "sky-agent on %s:%d does not answer over TLS: %s",
                  o->addr, o->agent_port, core_strerror(rc));
        goto out;
    }
    char gpu[96] = "no GPU";
    if (o->gpus)
        snprintf(gpu, sizeof(gpu), "%dx %s", o->gpus, o->gpu_name);
    set_state(o, CORE_SSH_HOST_OK, "%s, %d CPUs, %.1f GB memory, %s; agent %s %s:%d", o->arch,
              o->cpus, o->memory_gb, gpu, restart ? "started on" : "already running on", o->addr,
              o->agent_port);
out:
    free(tar.p);
    free(certdir);
    free(certpath);
}

int core_ssh_install_dir(const char *pool, char *out, size_t outlen)
{
    char *ssh_dir = core_home_path("ssh");
    int rc = install_name(ssh_dir, pool, out, outlen);
    free(ssh_dir);
    return rc;
}

static int remote_error(const core_ssh_result_t *r, const char *what, char **err)
{
    char why[400];
    core_ssh_reason(r->err, why, sizeof(why));
    if (err)
        *err = core_xasprintf("%s: %s: %s", what, core_ssh_status_name(r->status), why);
    return r->status == CORE_SSH_FAILED ? CORE_EINVALREQ : -EHOSTUNREACH;
}

int core_ssh_instance_start(const core_ssh_host_t *h, const char *pool, const char *addr,
                            const char *id, const char *keep, int *port, char **err)
{
    char dir[128], la[80];
    int rc = core_ssh_install_dir(pool, dir, sizeof(dir));
    if (rc < 0) {
        if (err)
            *err = core_xasprintf("SSH Node Pool '%s' is not set up (no CA)", pool);
        return CORE_EINVALREQ;
    }
    listen_addr(addr, la, sizeof(la));
    char *script = core_xasprintf(INSTANCE_START, dir, la, keep ? keep : "", id);
    core_ssh_result_t r;
    rc = core_ssh_run(h, script, NULL, 0, PROBE_TIMEOUT_MS, &r);
    free(script);
    if (rc < 0) {
        if (err)
            *err = core_xasprintf("cannot run ssh: %s", core_strerror(rc));
        return rc;
    }
    if (r.status != CORE_SSH_OK) {
        rc = remote_error(&r, "starting the instance's agent", err);
    } else {
        core_ssh_hostinfo_t tmp;
        core_ssh_probe_t p;
        memset(&tmp, 0, sizeof(tmp));
        core_ssh_parse_probe(r.out, &tmp, &p);
        *port = p.agent_port;
        if (*port <= 0) {
            rc = CORE_EJSON;
            if (err)
                *err = core_xasprintf("no agent port in the host's answer: %.200s", r.out);
        }
    }
    core_ssh_result_free(&r);
    return rc;
}

int core_ssh_instance_stop(const core_ssh_host_t *h, const char *pool, const char *id,
                           long timeout_ms, char **err)
{
    char dir[128];
    if (core_ssh_install_dir(pool, dir, sizeof(dir)) < 0)
        return 0; /* nothing was ever installed from here */
    char *script = core_xasprintf(INSTANCE_STOP, dir, id);
    core_ssh_result_t r;
    int rc = core_ssh_run(h, script, NULL, 0, timeout_ms, &r);
    free(script);
    if (rc < 0) {
        if (err)
            *err = core_xasprintf("cannot run ssh: %s", core_strerror(rc));
        return rc;
    }
    if (r.status != CORE_SSH_OK)
        rc = remote_error(&r, "stopping the instance's agent", err);
    core_ssh_result_free(&r);
    return rc;
}

static void host_down(job_t *j)
{
    core_ssh_hostinfo_t *o = j->out;
    core_ssh_result_t r;
    char *script = core_xasprintf(REMOVE, j->dirname);
    int rc = core_ssh_run(j->host, script, NULL, 0, PROBE_TIMEOUT_MS, &r);
    free(script);
    if (rc < 0) {
        set_state(o, CORE_SSH_HOST_ERROR, "cannot run ssh: %s", core_strerror(rc));
        return;
    }
    if (ssh_failed(o, &r, "removing sky-agent") == 0)
        set_state(o, CORE_SSH_HOST_OK, "%s",
                  strstr(r.out, "state=removed") ? "removed" : "nothing installed");
    core_ssh_result_free(&r);
}

static void *run_job(void *arg)
{
    job_t *j = arg;
    if (j->down)
        host_down(j);
    else
        host_up(j);
    return NULL;
}

static void run_jobs(job_t *jobs, size_t n)
{
    for (size_t base = 0; base < n; base += MAX_PARALLEL) {
        size_t m = n - base < MAX_PARALLEL ? n - base : MAX_PARALLEL;
        pthread_t th[MAX_PARALLEL];
        int started[MAX_PARALLEL];
        for (size_t i = 0; i < m; i++)
            started[i] = pthread_create(&th[i], NULL, run_job, &jobs[base + i]) == 0;
        for (size_t i = 0; i < m; i++) {
            if (started[i])
                pthread_join(th[i], NULL);
            else
                run_job(&jobs[base + i]);
        }
    }
}

static int in_pool(const core_ssh_pool_t *pool, const char *name)
{
    for (size_t i = 0; pool && i < pool->n_hosts; i++)
        if (!strcmp(pool->hosts[i].host, name))
            return 1;
    return 0;
}

/* The host entry of <pool> for a recorded host, or a bare one. */
static core_ssh_host_t host_for(const core_ssh_pool_t *pool, const char *name)
{
    for (size_t i = 0; pool && i < pool->n_hosts; i++)
        if (!strcmp(pool->hosts[i].host, name))
            return pool->hosts[i];
    core_ssh_host_t h = {.host = (char *)name};
    return h;
}

int core_ssh_pool_up(const core_ssh_pool_t *pool, const core_ssh_agent_bin_t *bin,
                     core_ssh_hostinfo_t **out, size_t *n, char **err)
{
    *out = NULL;
    *n = 0;
    char *ssh_dir = core_home_path("ssh"), *tokpath = NULL, *token = NULL, *e = NULL;
    core_ssh_hostinfo_t *old = NULL;
    size_t n_old = 0;
    char dirname[128];
    int rc = core_tls_ca_ensure(ssh_dir, &e);
    if (rc < 0) {
        *err = e;
        goto out;
    }
    char *pdir = pool_dir(pool->name);
    core_mkdir_p(pdir, 0700);
    tokpath = core_xasprintf("%s/token", pdir);
    free(pdir);
    if ((rc = core_token_load(tokpath, &token)) < 0) {
        *err = core_xasprintf("cannot create the pool's token %s: %s", tokpath,
                              core_strerror(rc));
        goto out;
    }
    if ((rc = install_name(ssh_dir, pool->name, dirname, sizeof(dirname))) < 0) {
        *err = core_xasprintf("cannot read the pool CA: %s", core_strerror(rc));
        goto out;
    }
    core_ssh_record_load(pool->name, &old, &n_old);

    /* Hosts that left the pool file since the last up: take them down. */
    size_t n_gone = 0;
    job_t *jobs = core_xcalloc(pool->n_hosts + n_old + 1, sizeof(*jobs));
    core_ssh_hostinfo_t *res = core_xcalloc(pool->n_hosts + n_old + 1, sizeof(*res));
    core_ssh_host_t *gone_hosts = core_xcalloc(n_old + 1, sizeof(*gone_hosts));
    for (size_t i = 0; i < pool->n_hosts; i++) {
        jobs[i] = (job_t){.host = &pool->hosts[i], .pool = pool->name, .dirname = dirname,
                          .ssh_dir = ssh_dir, .bin = bin, .token = token,
                          .out = &res[i]};
        for (size_t k = 0; k < n_old; k++)
            if (!strcmp(old[k].host, pool->hosts[i].host))
                jobs[i].prev_port = old[k].agent_port;
    }
    for (size_t k = 0; k < n_old; k++) {
        if (in_pool(pool, old[k].host))
            continue;
        gone_hosts[n_gone] = host_for(NULL, old[k].host);
        size_t at = pool->n_hosts + n_gone;
        res[at] = old[k];
        jobs[at] = (job_t){.host = &gone_hosts[n_gone], .dirname = dirname, .out = &res[at],
                           .down = 1};
        n_gone++;
    }
    run_jobs(jobs, pool->n_hosts + n_gone);
    for (size_t k = 0; k < n_gone; k++) {
        core_ssh_hostinfo_t *g = &res[pool->n_hosts + k];
        if (g->state == CORE_SSH_HOST_OK && g->addr[0])
            agent_mark(g->addr, NULL);
    }
    rc = record_save(pool->name, res, pool->n_hosts);
    if (rc < 0)
        *err = core_xasprintf("cannot write the pool's record: %s", core_strerror(rc));
    *out = res;
    *n = pool->n_hosts;
    free(jobs);
    free(gone_hosts);
out:
    free(old);
    free(ssh_dir);
    free(tokpath);
    if (token)
        memset(token, 0, strlen(token));
    free(token);
    return rc;
}

int core_ssh_pool_down(const char *name, const core_ssh_pool_t *pool, core_ssh_hostinfo_t **out,
                       size_t *n, char **err)
{
    *out = NULL;
    *n = 0;
    char *ssh_dir = core_home_path("ssh");
    char dirname[128];
    core_ssh_hostinfo_t *rec = NULL;
    size_t n_rec = 0;
    core_ssh_record_load(name, &rec, &n_rec);
    int rc = install_name(ssh_dir, name, dirname, sizeof(dirname));
    if (rc < 0) {
        /* No CA: nothing was ever installed from here. */
        free(ssh_dir);
        free(rec);
        if (!pool) {
            *err = core_xasprintf("SSH Node Pool '%s' is not set up", name);
            return -ENOENT;
        }
        *out = core_xcalloc(pool->n_hosts + 1, sizeof(**out));
        for (size_t i = 0; i < pool->n_hosts; i++) {
            snprintf((*out)[i].host, sizeof((*out)[i].host), "%s", pool->hosts[i].host);
            set_state(&(*out)[i], CORE_SSH_HOST_OK, "nothing installed");
        }
        *n = pool->n_hosts;
        return 0;
    }
    /* The recorded hosts, then the pool file's others. */
    size_t cap = n_rec + (pool ? pool->n_hosts : 0) + 1, m = 0;
    core_ssh_hostinfo_t *res = core_xcalloc(cap, sizeof(*res));
    core_ssh_host_t *hosts = core_xcalloc(cap, sizeof(*hosts));
    job_t *jobs = core_xcalloc(cap, sizeof(*jobs));
    for (size_t k = 0; k < n_rec; k++) {
        res[m] = rec[k];
        hosts[m] = host_for(pool, rec[k].host);
        m++;
    }
    for (size_t i = 0; pool && i < pool->n_hosts; i++) {
        int known = 0;
        for (size_t k = 0; k < n_rec; k++)
            known |= !strcmp(rec[k].host, pool->hosts[i].host);
        if (known)
            continue; /* already listed from the record */
        memset(&res[m], 0, sizeof(res[m]));
        snprintf(res[m].host, sizeof(res[m].host), "%s", pool->hosts[i].host);
        hosts[m] = pool->hosts[i];
        m++;
    }
    for (size_t i = 0; i < m; i++)
        jobs[i] = (job_t){.host = &hosts[i], .dirname = dirname, .out = &res[i], .down = 1};
    run_jobs(jobs, m);
    /* Keep the record of the hosts that could not be cleaned. */
    size_t left = 0;
    for (size_t i = 0; i < m; i++) {
        if (res[i].state == CORE_SSH_HOST_OK) {
            if (res[i].addr[0]) {
                agent_mark(res[i].addr, NULL);
                char *c = core_xasprintf("%s/pools/%s/certs/%s.crt", ssh_dir, name, res[i].addr);
                unlink(c);
                free(c);
            }
        } else if (i < n_rec) {
            rec[left++] = rec[i];
        }
    }
    char *pdir = pool_dir(name);
    if (left) {
        rc = record_save(name, rec, left);
    } else {
        rc = core_rm_rf(pdir);
    }
    if (rc < 0)
        *err = core_xasprintf("cannot update %s: %s", pdir, core_strerror(rc));
    free(pdir);
    free(hosts);
    free(jobs);
    free(rec);
    free(ssh_dir);
    *out = res;
    *n = m;
    return rc;
}
