/*
 * The SSH Node Pool provider. State is the claims table (SQLite, shared by
 * the controllers and the CLI of one SKY_HOME); the hosts are what `sky ssh
 * up` recorded. A launch picks a host inside one write transaction, so two
 * processes never claim the same capacity, then starts the instance's agent
 * over SSH outside it.
 */
#include "core/prov_ssh.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/agent.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/spec.h"
#include "core/ssh_deploy.h"
#include "core/store.h"
#include "core/util.h"

#define HEALTH_TIMEOUT_MS   5000L
#define DESCRIBE_TIMEOUT_MS 5000L
/* A TCP connect to a live host's agent completes in the kernel, busy or
 * not: one that takes this long means the host is gone. */
#define CONNECT_TIMEOUT_MS 1000
#define STOP_TIMEOUT_MS     15000L
/* A claim still PENDING after this was left by a launcher that died. */
#define PENDING_STALE_S 300.0
/* A host whose agent did not answer is not asked again for this long: a
 * launch right after a host died must not wait for its timeout. When no
 * other host will do, those found down more than DOWN_RECHECK_S ago are
 * asked again (one found down just now surely still is). */
#define DOWN_MEMORY_S  10.0
#define DOWN_RECHECK_S 3.0

/* ------------------------------------------------------------ placement */

void core_ssh_owner_group(const char *owner, char *out, size_t outlen, int *exclusive)
{
    *exclusive = 0;
    if (strncmp(owner, "serve:", 6) == 0) {
        const char *colon = strchr(owner + 6, ':');
        if (colon) {
            snprintf(out, outlen, "%.*s", (int)(colon - owner + 1), owner);
            *exclusive = 1;
            return;
        }
    }
    snprintf(out, outlen, "%s", owner);
}

static int gpu_matches(const char *have, const char *want)
{
    if (!want || !*want)
        return 1;
    size_t wl = strlen(want);
    for (const char *p = have; *p; p++)
        if (strncasecmp(p, want, wl) == 0)
            return 1;
    return 0;
}

/* 0 when <s> can take <a>; else why not, in <why>. */
static int fits(const core_ssh_slot_t *s, const core_ssh_ask_t *a, char *why, size_t whylen)
{
    const double eps = 1e-9;
    if (!s->usable) {
        snprintf(why, whylen, "not answering");
        return -1;
    }
    if (a->exclusive && s->same_group > 0) {
        snprintf(why, whylen, "already runs a replica of this service (same ports)");
        return -1;
    }
    if (s->cpus - s->used_cpus + eps < a->cpus) {
        snprintf(why, whylen, "%g of %g CPUs free, %g asked", s->cpus - s->used_cpus, s->cpus,
                 a->cpus);
        return -1;
    }
    if (s->memory_gb - s->used_memory_gb + eps < a->memory_gb) {
        snprintf(why, whylen, "%.1f of %.1f GB memory free, %g asked",
                 s->memory_gb - s->used_memory_gb, s->memory_gb, a->memory_gb);
        return -1;
    }
    if (a->accelerator && *a->accelerator) {
        if (!s->gpus || !gpu_matches(s->gpu_name, a->accelerator)) {
            snprintf(why, whylen, "no %s GPU", a->accelerator);
            return -1;
        }
        if (s->gpus - s->used_gpus < a->accelerator_count) {
            snprintf(why, whylen, "%d of %d GPUs free, %d asked", s->gpus - s->used_gpus,
                     s->gpus, a->accelerator_count);
            return -1;
        }
    }
    return 0;
}

int core_ssh_place(const core_ssh_slot_t *slots, size_t n, const core_ssh_ask_t *ask, char *why,
                   size_t whylen)
{
    int best = -1;
    snprintf(why, whylen, "no host");
    for (size_t i = 0; i < n; i++) {
        char w[160];
        const core_ssh_slot_t *s = &slots[i];
        if (fits(s, ask, w, sizeof(w)) < 0) {
            if (i == 0) /* the first host's reason: the pool file's order */
                snprintf(why, whylen, "%s", w);
            continue;
        }
        if (best >= 0) {
            const core_ssh_slot_t *b = &slots[best];
            double fs = s->cpus - s->used_cpus, fb = b->cpus - b->used_cpus;
            if (s->same_group > b->same_group ||
                (s->same_group == b->same_group &&
                 (s->claims > b->claims || (s->claims == b->claims && fs <= fb))))
                continue;
        }
        best = (int)i;
    }
    return best;
}

/* --------------------------------------------------------------- claims */

/* Shared by a registry's threads: one connection, one transaction at a
 * time on it, so every use of <st> holds <mu>. */
typedef struct prov_ssh {
    core_prov_t super;
    pthread_mutex_t mu;
    core_store_t *st;
} prov_ssh_t;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS claims ("
    " id TEXT PRIMARY KEY, pool TEXT NOT NULL, host TEXT NOT NULL, addr TEXT NOT NULL,"
    " owner TEXT NOT NULL, instance_type TEXT NOT NULL, cpus REAL NOT NULL,"
    " memory_gb REAL NOT NULL, gpus INTEGER NOT NULL, agent_port INTEGER NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL, launched_at REAL NOT NULL, ended_at REAL);"
    "CREATE INDEX IF NOT EXISTS claims_live ON claims(state, pool, host);"
    "CREATE TABLE IF NOT EXISTS hosts_down ("
    " pool TEXT NOT NULL, host TEXT NOT NULL, since REAL NOT NULL, PRIMARY KEY (pool, host));";

static const core_store_step_t claims_steps[] = {{SCHEMA, NULL}};
static const core_store_schema_t claims_schema = {"SSH claims", claims_steps,
                                                  CORE_ARRAY_SIZE(claims_steps), NULL};

/* $SKY_HOME/ssh/claims.db, shared by every process of the SKY_HOME. */
static int claims_open(core_store_t **out, char **err)
{
    char *dir = core_home_path("ssh");
    char *path = core_xasprintf("%s/claims.db", dir);
    int rc;

    core_mkdir_p(dir, 0700);
    rc = core_store_open(path, &claims_schema, out, err);
    free(dir);
    free(path);
    return rc;
}

#define CLAIM_COLS "id, pool, host, addr, owner, instance_type, agent_port, state, launched_at"

static void claim_to_inst(sqlite3_stmt *st, core_instance_t *in)
{
    memset(in, 0, sizeof(*in));
    core_store_col_text(st, 0, in->id, sizeof(in->id));
    snprintf(in->cloud, sizeof(in->cloud), "ssh");
    core_store_col_text(st, 1, in->region, sizeof(in->region));
    core_store_col_text(st, 2, in->zone, sizeof(in->zone));
    core_store_col_text(st, 3, in->ip, sizeof(in->ip));
    core_store_col_text(st, 4, in->owner, sizeof(in->owner));
    core_store_col_text(st, 5, in->instance_type, sizeof(in->instance_type));
    in->agent_port = sqlite3_column_int(st, 6);
    const char *state = (const char *)sqlite3_column_text(st, 7);
    state = state ? state : "";
    in->state = !strcmp(state, "RUNNING")   ? CORE_INST_RUNNING
                : !strcmp(state, "PENDING") ? CORE_INST_PENDING
                                            : CORE_INST_TERMINATED;
    in->launched_at = sqlite3_column_double(st, 8);
}

static int claim_get(prov_ssh_t *p, const char *id, core_instance_t *out)
{
    sqlite3_stmt *q;
    int rc = CORE_ESTORE;
    pthread_mutex_lock(&p->mu);
    if ((q = core_store_prepare(p->st, "SELECT " CLAIM_COLS " FROM claims WHERE id = ?"))) {
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        rc = core_store_step(p->st, q);
        if (rc == 1) {
            claim_to_inst(q, out);
            core_store_reset(q);
            rc = 0;
        } else if (rc == 0) {
            rc = CORE_ENOTFOUND;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int claim_set(prov_ssh_t *p, const char *id, const char *state, int port)
{
    sqlite3_stmt *q;
    int ended = strcmp(state, "TERMINATED") == 0;
    int rc = CORE_ESTORE;
    pthread_mutex_lock(&p->mu);
    q = core_store_prepare(p->st, ended
                                      ? "UPDATE claims SET state = ?, ended_at = ? WHERE id = ?"
                                      : "UPDATE claims SET state = ?, agent_port = ? WHERE id = ?");
    if (q) {
        sqlite3_bind_text(q, 1, state, -1, SQLITE_STATIC);
        if (ended)
            sqlite3_bind_double(q, 2, core_now());
        else
            sqlite3_bind_int(q, 2, port);
        sqlite3_bind_text(q, 3, id, -1, SQLITE_STATIC);
        rc = core_store_run(p->st, q);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Remembers (or forgets) that <host>'s agents do not answer. */
static void host_mark(prov_ssh_t *p, const char *pool, const char *host, int down)
{
    sqlite3_stmt *q;
    pthread_mutex_lock(&p->mu);
    q = core_store_prepare(p->st, down ? "INSERT OR REPLACE INTO hosts_down (pool, host, since)"
                                         " VALUES (?, ?, ?)"
                                       : "DELETE FROM hosts_down WHERE pool = ? AND host = ?");
    if (q) {
        sqlite3_bind_text(q, 1, pool, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, host, -1, SQLITE_STATIC);
        if (down)
            sqlite3_bind_double(q, 3, core_now());
        core_store_run(p->st, q);
    }
    pthread_mutex_unlock(&p->mu);
}

/* How long ago <host> was found down; a negative number when it was not, or
 * when `sky ssh up` (at <up_at>) has seen it since. */
static double host_down_for(prov_ssh_t *p, const char *pool, const char *host, double up_at)
{
    sqlite3_stmt *q;
    double age = -1;
    pthread_mutex_lock(&p->mu);
    if ((q = core_store_prepare(p->st,
                                "SELECT since FROM hosts_down WHERE pool = ? AND host = ?"))) {
        sqlite3_bind_text(q, 1, pool, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, host, -1, SQLITE_STATIC);
        if (core_store_step(p->st, q) == 1) {
            if (sqlite3_column_double(q, 0) > up_at)
                age = core_now() - sqlite3_column_double(q, 0);
            core_store_reset(q);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return age;
}

static int host_recently_down(prov_ssh_t *p, const char *pool, const char *host, double up_at)
{
    double age = host_down_for(p, pool, host, up_at);
    return age >= 0 && age < DOWN_MEMORY_S;
}

static void new_id(char *out, size_t outlen)
{
    unsigned char b[6] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
        unsigned long long t = core_mono_ms() ^ (unsigned long long)getpid() << 20;
        memcpy(b, &t, sizeof(b));
    }
    if (fd >= 0)
        close(fd);
    snprintf(out, outlen, "ssh-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

/* --------------------------------------------------------------- launch */

typedef struct hostref {
    char pool[64];
    core_ssh_hostinfo_t info;
    double up_at; /* when `sky ssh up` last wrote the pool's record */
} hostref_t;

/* The set-up hosts of <pool> (NULL: every pool), restricted to <zone> if set. */
static hostref_t *load_hosts(const char *pool, const char *zone, size_t *n)
{
    char **names = NULL;
    size_t n_names = 0;
    hostref_t *out = NULL;
    *n = 0;
    if (pool && *pool) {
        names = core_xcalloc(1, sizeof(*names));
        names[0] = core_xstrdup(pool);
        n_names = 1;
    } else {
        core_ssh_record_pools(&names, &n_names);
    }
    for (size_t i = 0; i < n_names; i++) {
        core_ssh_hostinfo_t *hs = NULL;
        size_t m = 0;
        char *rel = core_xasprintf("ssh/pools/%s/hosts.json", names[i]);
        char *rec = core_home_path(rel);
        struct stat sb;
        double up_at = stat(rec, &sb) == 0 ? (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec / 1e9 : 0;
        free(rel);
        free(rec);
        if (core_ssh_record_load(names[i], &hs, &m) == 0) {
            for (size_t k = 0; k < m; k++) {
                if (hs[k].state != CORE_SSH_HOST_OK || (zone && *zone && strcmp(hs[k].host, zone)))
                    continue;
                out = core_xrealloc(out, (*n + 1) * sizeof(*out));
                snprintf(out[*n].pool, sizeof(out[*n].pool), "%s", names[i]);
                out[*n].up_at = up_at;
                out[(*n)++].info = hs[k];
            }
        }
        free(hs);
        free(names[i]);
    }
    free(names);
    return out;
}

/* Fills used/claims/same_group of <slots> from the live claims. */
static int add_claims(prov_ssh_t *p, const hostref_t *hosts, core_ssh_slot_t *slots, size_t n,
                      const char *group, char **ids_per_host)
{
    sqlite3_stmt *st = core_store_prepare(p->st, "SELECT pool, host, owner, cpus, memory_gb, gpus,"
                                                 " id FROM claims WHERE state != 'TERMINATED'");
    int rc;
    if (!st)
        return CORE_ESTORE;
    while ((rc = core_store_step(p->st, st)) == 1) {
        const char *pool = (const char *)sqlite3_column_text(st, 0);
        const char *host = (const char *)sqlite3_column_text(st, 1);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(hosts[i].pool, pool) || strcmp(hosts[i].info.host, host))
                continue;
            char g[160];
            int excl;
            core_ssh_owner_group((const char *)sqlite3_column_text(st, 2), g, sizeof(g), &excl);
            slots[i].claims++;
            slots[i].same_group += strcmp(g, group) == 0;
            slots[i].used_cpus += sqlite3_column_double(st, 3);
            slots[i].used_memory_gb += sqlite3_column_double(st, 4);
            slots[i].used_gpus += sqlite3_column_int(st, 5);
            /* The ids on this host, space-separated: its keep list. */
            char *prev = ids_per_host[i];
            ids_per_host[i] = core_xasprintf("%s%s%s", prev ? prev : "", prev ? " " : "",
                                             (const char *)sqlite3_column_text(st, 6));
            free(prev);
        }
    }
    return rc;
}

/* Claims a host inside one write transaction; *slot_out, *id_out, *keep (freed by caller). */
static int claim(prov_ssh_t *p, const hostref_t *hosts, core_ssh_slot_t *base, size_t n,
                 const core_ssh_ask_t *ask, const char *owner, const char *group,
                 const core_candidate_t *cand, int *slot_out, char *id, size_t idlen,
                 char **keep, char *why, size_t whylen)
{
    pthread_mutex_lock(&p->mu);
    int rc = core_store_begin(p->st);
    if (rc < 0) {
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    /* Launchers that died mid-launch leave PENDING claims: release them. */
    sqlite3_stmt *gc = core_store_prepare(p->st, "UPDATE claims SET state = 'TERMINATED',"
                                                 " ended_at = ? WHERE state = 'PENDING'"
                                                 " AND launched_at < ?");
    if (gc) {
        sqlite3_bind_double(gc, 1, core_now());
        sqlite3_bind_double(gc, 2, core_now() - PENDING_STALE_S);
        core_store_run(p->st, gc);
    }
    core_ssh_slot_t *slots = core_xcalloc(n + 1, sizeof(*slots));
    char **ids = core_xcalloc(n + 1, sizeof(*ids));
    memcpy(slots, base, n * sizeof(*slots));
    rc = add_claims(p, hosts, slots, n, group, ids);
    int i = rc < 0 ? -1 : core_ssh_place(slots, n, ask, why, whylen);
    if (i >= 0) {
        new_id(id, idlen);
        sqlite3_stmt *st = core_store_prepare(p->st, "INSERT INTO claims (id, pool, host, addr,"
                                                     " owner, instance_type, cpus, memory_gb,"
                                                     " gpus, state, launched_at) VALUES (?, ?,"
                                                     " ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?)");
        if (st) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, hosts[i].pool, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, hosts[i].info.host, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, hosts[i].info.addr, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, owner, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, cand->instance_type[0] ? cand->instance_type : "ssh-host", -1,
                              SQLITE_STATIC);
            sqlite3_bind_double(st, 7, ask->cpus);
            sqlite3_bind_double(st, 8, ask->memory_gb);
            sqlite3_bind_int(st, 9, ask->accelerator && *ask->accelerator ? ask->accelerator_count : 0);
            sqlite3_bind_double(st, 10, core_now());
            rc = core_store_run(p->st, st);
        } else {
            rc = CORE_ESTORE;
        }
        *keep = core_xasprintf("%s%s%s", ids[i] ? ids[i] : "", ids[i] ? " " : "", id);
    }
    if (rc == 0)
        rc = core_store_commit(p->st);
    if (rc < 0)
        core_store_rollback(p->st);
    pthread_mutex_unlock(&p->mu);
    for (size_t k = 0; k < n; k++)
        free(ids[k]);
    free(ids);
    free(slots);
    if (rc < 0)
        return rc;
    *slot_out = i;
    return i >= 0 ? 0 : CORE_ENOCAPACITY;
}

static void claim_drop(prov_ssh_t *p, const char *id)
{
    sqlite3_stmt *q;
    pthread_mutex_lock(&p->mu);
    if ((q = core_store_prepare(p->st, "DELETE FROM claims WHERE id = ?"))) {
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        core_store_run(p->st, q);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The pool file's entry for a recorded host (ssh user, key, port). */
static int ssh_host_of(const core_ssh_pools_t *ps, const char *pool, const char *host,
                       core_ssh_host_t *out)
{
    const core_ssh_pool_t *p = core_ssh_pools_find(ps, pool);
    for (size_t i = 0; p && i < p->n_hosts; i++) {
        if (!strcmp(p->hosts[i].host, host)) {
            *out = p->hosts[i];
            return 0;
        }
    }
    return -ENOENT;
}

static void set_err(char **err, char *msg)
{
    if (err) {
        free(*err);
        *err = msg;
    } else {
        free(msg);
    }
}

/*
 * TCP connections to many ip:port at once: rcs[i] is 0 when the i-th opened
 * within <timeout_ms>, else a negative errno. A live host's kernel answers
 * in milliseconds however loaded the machines are (unlike a TLS handshake
 * with a busy agent), so a host that does not is taken for gone.
 */
static void tcp_reachable_many(const core_ssh_hostinfo_t *hs, size_t n, int timeout_ms, int *rcs)
{
    int *fds = core_xcalloc(n + 1, sizeof(*fds));
    struct pollfd *pfs = core_xcalloc(n + 1, sizeof(*pfs));
    size_t waiting = 0;
    for (size_t i = 0; i < n; i++) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
        char svc[16];
        fds[i] = -1;
        rcs[i] = -EINVAL;
        snprintf(svc, sizeof(svc), "%d", hs[i].agent_port);
        if (getaddrinfo(hs[i].addr, svc, &hints, &ai) != 0)
            continue;
        fds[i] = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fds[i] >= 0 && connect(fds[i], ai->ai_addr, ai->ai_addrlen) == 0) {
            rcs[i] = 0;
        } else if (fds[i] >= 0 && errno == EINPROGRESS) {
            rcs[i] = -ETIMEDOUT; /* unless it answers in time */
            waiting++;
        } else {
            rcs[i] = -errno;
        }
        freeaddrinfo(ai);
    }
    unsigned long long deadline = core_mono_ms() + (unsigned long long)timeout_ms;
    while (waiting > 0 && core_mono_ms() < deadline) {
        for (size_t i = 0; i < n; i++)
            pfs[i] = (struct pollfd){rcs[i] == -ETIMEDOUT ? fds[i] : -1, POLLOUT, 0};
        if (poll(pfs, (nfds_t)n, (int)(deadline - core_mono_ms())) <= 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (pfs[i].fd < 0 || !pfs[i].revents)
                continue;
            int err = 0;
            socklen_t len = sizeof(err);
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
            rcs[i] = err ? -err : 0;
            waiting--;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    free(pfs);
}

static int tcp_reachable(const char *ip, int port, int timeout_ms)
{
    core_ssh_hostinfo_t h;
    memset(&h, 0, sizeof(h));
    snprintf(h.addr, sizeof(h.addr), "%s", ip);
    h.agent_port = port;
    int rc;
    tcp_reachable_many(&h, 1, timeout_ms, &rc);
    return rc;
}

/*
 * Health of <hosts> into alive[] (0 = their agent's port answers). First pass (<again> 0):
 * every host but those found down recently, which get -EHOSTDOWN without a
 * call; returns how many those were. Second pass (<again> 1): those of them
 * found down more than DOWN_RECHECK_S ago.
 */
static size_t check_hosts(prov_ssh_t *p, const hostref_t *hosts, size_t n, int *alive, int again)
{
    core_ssh_hostinfo_t *infos = core_xcalloc(n + 1, sizeof(*infos));
    size_t *asked = core_xcalloc(n + 1, sizeof(*asked)), n_ask = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (!again && host_recently_down(p, hosts[i].pool, hosts[i].info.host, hosts[i].up_at)) {
            alive[i] = -EHOSTDOWN;
            skipped++;
            continue;
        }
        if (again && (alive[i] != -EHOSTDOWN ||
                      host_down_for(p, hosts[i].pool, hosts[i].info.host, hosts[i].up_at) <
                          DOWN_RECHECK_S))
            continue;
        infos[n_ask] = hosts[i].info;
        asked[n_ask++] = i;
    }
    int *rcs = core_xcalloc(n_ask + 1, sizeof(*rcs));
    tcp_reachable_many(infos, n_ask, CONNECT_TIMEOUT_MS, rcs);
    for (size_t k = 0; k < n_ask; k++) {
        alive[asked[k]] = rcs[k];
        host_mark(p, hosts[asked[k]].pool, hosts[asked[k]].info.host, rcs[k] < 0);
    }
    free(rcs);
    free(asked);
    free(infos);
    return skipped;
}

static int ssh_launch(core_prov_t *prov, const core_candidate_t *cand, const char *owner,
                      core_instance_t *out, char **err)
{
    prov_ssh_t *p = (prov_ssh_t *)prov;
    if (err)
        *err = NULL;
    if (strcmp(cand->cloud, "ssh") != 0) {
        set_err(err, core_xasprintf("the SSH provider cannot launch on cloud '%s'", cand->cloud));
        return CORE_EINVALREQ;
    }
    if (cand->spot) {
        set_err(err, core_xasprintf("SSH Node Pool hosts are never spot: use_spot: true cannot "
                                    "be placed on ssh%s%s (list a spot cloud in any_of, and the "
                                    "pool for on-demand)",
                                    cand->region[0] ? "/" : "", cand->region));
        return CORE_EINVALREQ;
    }
    size_t n = 0;
    hostref_t *hosts = load_hosts(cand->region, cand->zone, &n);
    if (n == 0) {
        free(hosts);
        set_err(err, core_xasprintf("no host of ssh%s%s is set up (run `sky ssh up`)",
                                    cand->region[0] ? "/" : "", cand->region));
        return CORE_ENOCAPACITY;
    }
    core_ssh_pools_t *ps = NULL;
    char *perr = NULL;
    if (core_ssh_pools_load(NULL, &ps, &perr) < 0) {
        free(hosts);
        set_err(err, perr);
        return CORE_EINVALREQ;
    }
    /* Who answers now: a dead host is not offered (nor asked again soon,
     * unless no other host will do). */
    int *alive = core_xcalloc(n, sizeof(*alive));
    int recheck = check_hosts(p, hosts, n, alive, 0) > 0;
    core_ssh_slot_t *slots = core_xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < n; i++) {
        slots[i] = (core_ssh_slot_t){.usable = alive[i] == 0,
                                     .cpus = hosts[i].info.cpus,
                                     .memory_gb = hosts[i].info.memory_gb,
                                     .gpus = hosts[i].info.gpus,
                                     .gpu_name = hosts[i].info.gpu_name};
    }
    char group[160], why[256] = "", id[32];
    int exclusive;
    core_ssh_owner_group(owner ? owner : "", group, sizeof(group), &exclusive);
    core_ssh_ask_t ask = {.cpus = cand->vcpus > 0 ? cand->vcpus : 1,
                          .memory_gb = cand->memory_gb,
                          .accelerator = cand->accelerator,
                          .accelerator_count = cand->accelerator_count,
                          .exclusive = exclusive};
    int rc = CORE_ENOCAPACITY;
    char *last = NULL;
    /* Each host that fails us is tried once; the loop ends at the first success. */
    for (size_t failed = 0; failed < n;) {
        int i = -1;
        char *keep = NULL;
        rc = claim(p, hosts, slots, n, &ask, owner ? owner : "", group, cand, &i, id, sizeof(id),
                   &keep, why, sizeof(why));
        if (rc == CORE_ENOCAPACITY && recheck) {
            /* Hosts found down a moment ago may be back: ask them before giving up. */
            recheck = 0;
            check_hosts(p, hosts, n, alive, 1);
            for (size_t k = 0; k < n; k++)
                slots[k].usable = alive[k] == 0;
            continue;
        }
        if (rc < 0) {
            free(keep);
            break;
        }
        hostref_t *h = &hosts[i];
        core_ssh_host_t sh;
        int port = 0;
        char *e = NULL;
        if (ssh_host_of(ps, h->pool, h->info.host, &sh) < 0) {
            e = core_xasprintf("%s is no longer in pool %s of %s", h->info.host, h->pool, ps->file);
            rc = -ENOENT;
        } else {
            rc = core_ssh_instance_start(&sh, h->pool, h->info.addr, id, keep, &port, &e);
        }
        free(keep);
        if (rc == 0) {
            core_ssh_hostinfo_t inst = h->info;
            inst.agent_port = port;
            rc = core_ssh_host_alive(&inst, HEALTH_TIMEOUT_MS);
            if (rc < 0) {
                e = core_xasprintf("the instance's agent on %s:%d does not answer: %s",
                                   h->info.addr, port, core_strerror(rc));
                core_ssh_instance_stop(&sh, h->pool, id, STOP_TIMEOUT_MS, NULL);
            }
        }
        if (rc == 0) {
            claim_set(p, id, "RUNNING", port);
            rc = claim_get(p, id, out);
            out->price = cand->price;
            break;
        }
        /* This host failed us: release the claim, try another. */
        CORE_WARN("ssh/%s: launch on %s failed: %s", h->pool, h->info.host, e ? e : "?");
        claim_drop(p, id);
        slots[i].usable = 0;
        failed++;
        free(last);
        last = core_xasprintf("%s: %s", h->info.host, e ? e : core_strerror(rc));
        free(e);
        rc = CORE_ENOCAPACITY;
    }
    if (rc == CORE_ENOCAPACITY)
        set_err(err, last ? core_xasprintf("no host of ssh%s%s could start it (last: %s)",
                                           cand->region[0] ? "/" : "", cand->region, last)
                          : core_xasprintf("no host of ssh%s%s fits: %s",
                                           cand->region[0] ? "/" : "", cand->region, why));
    else if (rc < 0 && err && !*err)
        set_err(err, core_xasprintf("ssh claims: %s", core_strerror(rc)));
    free(last);
    free(slots);
    free(alive);
    free(hosts);
    core_ssh_pools_free(ps);
    return rc;
}

static int ssh_describe(core_prov_t *prov, const char *id, core_instance_t *out)
{
    prov_ssh_t *p = (prov_ssh_t *)prov;
    int rc = claim_get(p, id, out);
    if (rc < 0 || out->state != CORE_INST_RUNNING)
        return rc;
    /* An instance is its agent: one that does not answer (host dead, link
     * down, agent killed) is gone for good, as an on-demand VM that died. */
    if (tcp_reachable(out->ip, out->agent_port, CONNECT_TIMEOUT_MS) < 0 ||
        core_agent_health(out->ip, out->agent_port, NULL, DESCRIBE_TIMEOUT_MS) < 0) {
        out->state = CORE_INST_FAILED;
        host_mark(p, out->region, out->zone, 1);
    }
    return 0;
}

/* $SKY_HOME/ssh/mounts/<id>-<n>.log: the bucket mounts' (core/ssh_stage.c). */
static void forget_mount_logs(const char *id)
{
    for (int n = 0; n < 256; n++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "ssh/mounts/%s-%d.log", id, n);
        char *path = core_home_path(rel);
        int gone = unlink(path) < 0 && errno == ENOENT;
        free(path);
        if (gone)
            break;
    }
}

static int ssh_terminate(core_prov_t *prov, const char *id)
{
    prov_ssh_t *p = (prov_ssh_t *)prov;
    core_instance_t in;
    int rc = claim_get(p, id, &in);
    if (rc == CORE_ENOTFOUND || (rc == 0 && in.state == CORE_INST_TERMINATED))
        return 0;
    if (rc < 0)
        return rc;
    /* The capacity is free from now on, whatever the host says: a host that
     * cannot be reached has its leftover agent stopped by the next launch
     * there (its keep list) or by `sky ssh down`. */
    if ((rc = claim_set(p, id, "TERMINATED", 0)) < 0)
        return rc;
    forget_mount_logs(id);
    if (host_recently_down(p, in.region, in.zone, 0)) {
        CORE_INFO("ssh/%s: %s is down: %s's agent is stopped at the next launch there", in.region,
                  in.zone, id);
        return 0;
    }
    core_ssh_pools_t *ps = NULL;
    core_ssh_host_t sh;
    char *e = NULL;
    if (core_ssh_pools_load(NULL, &ps, &e) == 0 && ssh_host_of(ps, in.region, in.zone, &sh) == 0 &&
        core_ssh_instance_stop(&sh, in.region, id, STOP_TIMEOUT_MS, &e) < 0)
        CORE_WARN("ssh/%s: stopping %s on %s: %s (its agent is stopped at the next launch there)",
                  in.region, id, in.zone, e ? e : "?");
    free(e);
    core_ssh_pools_free(ps);
    return 0;
}

/*
 * A poll's view, as a cloud's list shows a dead VM: a RUNNING instance
 * whose agent's port does not take a TCP connection (all asked at once,
 * CONNECT_TIMEOUT_MS), or on a host found down a moment ago, is FAILED.
 * A live host answers in milliseconds, so a poll costs a dead host's
 * timeout at most once every DOWN_MEMORY_S.
 */
static void list_health(prov_ssh_t *p, core_instance_t *v, size_t n)
{
    core_ssh_hostinfo_t *ask = core_xcalloc(n + 1, sizeof(*ask));
    size_t *which = core_xcalloc(n + 1, sizeof(*which)), n_ask = 0;
    int *rcs;

    for (size_t i = 0; i < n; i++) {
        if (v[i].state != CORE_INST_RUNNING)
            continue;
        if (host_recently_down(p, v[i].region, v[i].zone, 0)) {
            v[i].state = CORE_INST_FAILED;
            continue;
        }
        snprintf(ask[n_ask].addr, sizeof(ask[n_ask].addr), "%s", v[i].ip);
        ask[n_ask].agent_port = v[i].agent_port;
        which[n_ask++] = i;
    }
    rcs = core_xcalloc(n_ask + 1, sizeof(*rcs));
    tcp_reachable_many(ask, n_ask, CONNECT_TIMEOUT_MS, rcs);
    for (size_t k = 0; k < n_ask; k++) {
        core_instance_t *in = &v[which[k]];
        if (rcs[k] < 0) {
            in->state = CORE_INST_FAILED;
            host_mark(p, in->region, in->zone, 1);
        }
    }
    free(rcs);
    free(which);
    free(ask);
}

static int ssh_list(core_prov_t *prov, core_instance_t **out, size_t *n)
{
    prov_ssh_t *p = (prov_ssh_t *)prov;
    sqlite3_stmt *st;
    int rc = CORE_ESTORE;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&p->mu);
    if ((st = core_store_prepare(p->st, "SELECT " CLAIM_COLS " FROM claims"
                                        " WHERE state != 'TERMINATED' ORDER BY launched_at"))) {
        while ((rc = core_store_step(p->st, st)) == 1) {
            *out = core_xrealloc(*out, (*n + 1) * sizeof(**out));
            claim_to_inst(st, &(*out)[(*n)++]);
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (!*out)
        *out = core_xcalloc(1, sizeof(**out));
    else
        list_health(p, *out, *n);
    return rc;
}

static void ssh_destroy(core_prov_t *prov)
{
    prov_ssh_t *p = (prov_ssh_t *)prov;
    core_store_close(p->st);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static const core_prov_ops_t ssh_ops = {
    .name = "ssh",
    .launch = ssh_launch,
    .terminate = ssh_terminate,
    .describe = ssh_describe,
    .list = ssh_list,
    .destroy = ssh_destroy,
};

int core_prov_ssh_open(core_prov_t **out, char **err)
{
    prov_ssh_t *p;
    core_store_t *st = NULL;
    int rc;

    *out = NULL;
    if (err)
        *err = NULL;
    if ((rc = claims_open(&st, err)) < 0)
        return rc;
    p = core_xcalloc(1, sizeof(*p));
    p->super.ops = &ssh_ops;
    pthread_mutex_init(&p->mu, NULL);
    p->st = st;
    *out = &p->super;
    return 0;
}

int core_prov_ssh_find(const char *ip, int port, core_ssh_claim_t *out)
{
    core_store_t *st = NULL;
    sqlite3_stmt *q;
    int rc = claims_open(&st, NULL);

    if (rc < 0)
        return rc;
    rc = CORE_ESTORE;
    if ((q = core_store_prepare(st, "SELECT id, pool, host FROM claims WHERE addr = ?"
                                    " AND agent_port = ? AND state = 'RUNNING'"))) {
        sqlite3_bind_text(q, 1, ip, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, port);
        rc = core_store_step(st, q);
        if (rc == 1) {
            core_store_col_text(q, 0, out->id, sizeof(out->id));
            core_store_col_text(q, 1, out->pool, sizeof(out->pool));
            core_store_col_text(q, 2, out->host, sizeof(out->host));
            core_store_reset(q);
            rc = 0;
        } else if (rc == 0) {
            rc = CORE_ENOTFOUND;
        }
    }
    core_store_close(st);
    return rc;
}

/* ----------------------------------------------------------- candidates */

int core_prov_ssh_candidates(const core_resources_t *res, core_candidate_t **out, size_t *n,
                             char **err)
{
    *out = NULL;
    *n = 0;
    const char *pool = res->region;
    const char *where = pool ? pool : "";
    if (res->use_spot == 1) {
        *err = core_xasprintf("SSH Node Pool hosts are never spot: use_spot: true cannot be "
                              "placed on ssh%s%s",
                              pool ? "/" : "", where);
        return CORE_EINFEASIBLE;
    }
    size_t nh = 0;
    hostref_t *hosts = load_hosts(pool, res->zone, &nh);
    core_ssh_ask_t ask = {.cpus = res->cpus > 0 ? res->cpus : 1,
                          .memory_gb = res->memory_gb,
                          .accelerator = res->accelerator,
                          .accelerator_count = res->accelerator_count};
    char why[256] = "no host is set up (run `sky ssh up`)";
    for (size_t i = 0; i < nh; i++) {
        core_ssh_slot_t s = {.usable = 1,
                             .cpus = hosts[i].info.cpus,
                             .memory_gb = hosts[i].info.memory_gb,
                             .gpus = hosts[i].info.gpus,
                             .gpu_name = hosts[i].info.gpu_name};
        /* "cpus: 4" (exact) on owned machines: a host with at least 4 will do. */
        char w[160];
        if (fits(&s, &ask, w, sizeof(w)) < 0) {
            snprintf(why, sizeof(why), "%s: %s", hosts[i].info.host, w);
            continue;
        }
        int dup = 0;
        for (size_t k = 0; k < *n; k++)
            dup |= !strcmp((*out)[k].region, hosts[i].pool);
        if (dup)
            continue;
        *out = core_xrealloc(*out, (*n + 1) * sizeof(**out));
        core_candidate_t *c = &(*out)[(*n)++];
        memset(c, 0, sizeof(*c));
        snprintf(c->cloud, sizeof(c->cloud), "ssh");
        snprintf(c->region, sizeof(c->region), "%s", hosts[i].pool);
        snprintf(c->zone, sizeof(c->zone), "%s", res->zone ? res->zone : "");
        snprintf(c->instance_type, sizeof(c->instance_type), "ssh-host");
        c->vcpus = ask.cpus;
        c->memory_gb = ask.memory_gb;
        if (res->accelerator) {
            snprintf(c->accelerator, sizeof(c->accelerator), "%s", res->accelerator);
            c->accelerator_count = res->accelerator_count;
        }
    }
    free(hosts);
    if (*n == 0) {
        *err = core_xasprintf("no host of ssh%s%s can hold the request: %s", pool ? "/" : "",
                              where, why);
        return CORE_EINFEASIBLE;
    }
    return 0;
}
