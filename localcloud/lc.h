#ifndef LOCALCLOUD_LC_H
#define LOCALCLOUD_LC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "core/catalog.h"
#include "core/http.h"
#include "core/prov.h"

/*
 * sky-localcloud: a local "cloud" whose instances are network namespaces
 * (or, without root, process groups on 127.0.0.x), with a simulated spot
 * market. Everything below runs on the daemon's loop thread except the
 * lc_net_* calls, which block and run in the libuv thread pool.
 */

#define LC_AGENT_PORT 8790
#define LC_BRIDGE     "skybr0"
#define LC_BRIDGE_IP  "198.18.0.1"
#define LC_PREFIX_LEN 16
#define LC_MAX_ZONES  256

enum lc_mode {
    LC_MODE_NETNS = 0, /* root: one network namespace per instance */
    LC_MODE_PROCESS,   /* fallback: one session per instance on 127.0.0.x */
};

/* ---------------------------------------------------------------- market */

/*
 * The spot market is pure logic: capacities per zone, a seeded RNG that
 * chooses victims, and the trace arithmetic. The daemon feeds it facts and
 * the clock and applies its decisions.
 */
typedef struct lc_rng {
    uint64_t s;
} lc_rng_t;

void lc_rng_seed(lc_rng_t *r, uint64_t seed);
uint64_t lc_rng_next(lc_rng_t *r);
/* Uniform in [0, n). */
size_t lc_rng_below(lc_rng_t *r, size_t n);

typedef struct lc_zone_cap {
    char zone[40];
    long capacity; /* < 0: unlimited */
} lc_zone_cap_t;

typedef struct lc_market {
    long default_capacity; /* < 0: unlimited; applies to zones without an entry */
    lc_zone_cap_t zones[LC_MAX_ZONES];
    size_t nzones;
    lc_rng_t rng;
} lc_market_t;

void lc_market_init(lc_market_t *m, uint64_t seed);
/* Effective spot capacity of <zone>, < 0 when unlimited. */
long lc_market_capacity(const lc_market_t *m, const char *zone);
/* capacity < 0 means unlimited. -ENOSPC when the zone table is full. */
int lc_market_set(lc_market_t *m, const char *zone, long capacity);
/* Sets the default and forgets every per-zone value. */
void lc_market_set_all(lc_market_t *m, long capacity);
/* 1 if one more spot instance fits in <zone> holding <in_use> already. */
int lc_market_can_launch(const lc_market_t *m, const char *zone, size_t in_use);

/*
 * Chooses which of the <n> spot instances alive in one zone (ids[], in any
 * order) must go so that at most <capacity> remain. Victims are drawn by
 * the market's RNG after sorting ids, so that a seed and the same set give
 * the same answer. Writes victim indexes (into ids[]) to out[] and returns
 * their count (0 when capacity < 0 or n <= capacity).
 */
size_t lc_market_pick_victims(lc_market_t *m, const char *const *ids, size_t n, long capacity,
                              size_t *out);

/* ----------------------------------------------------------------- trace */

typedef struct lc_trace {
    char file[256]; /* base name */
    char zone[40];  /* catalog zone it drives */
    double gap_seconds;
    long *data;
    size_t n;
} lc_trace_t;

/* Parses {"metadata":{"gap_seconds":N},"data":[...]}; *err gets a sentence. */
int lc_trace_parse(const char *text, lc_trace_t *out, char **err);
void lc_trace_free(lc_trace_t *t);
/* The zone part of "<zone>_<gpu>_<count>.json". */
void lc_trace_file_zone(const char *file, char *out, size_t outlen);

/*
 * Tick index at <now> of a replay started at <start> (seconds) where each
 * tick lasts gap/speed seconds; *next gets the time the following tick
 * starts. Before start it is tick 0.
 */
long lc_trace_tick(double start, double now, double gap, double speed, double *next);

/*
 * Maps sorted trace files to zones. With <zones> (nz > 0) file i drives
 * zones[i] (extra files are ignored). Otherwise each file drives the
 * catalog zone of the same name (first file wins). Writes to out_zone[i]
 * ("" when file i drives nothing) and returns the number of files mapped.
 */
size_t lc_trace_map(char *const *files, size_t nfiles, char *const *zones, size_t nz,
                    char *const *catalog_zones, size_t ncat, char (*out_zone)[40]);

/* ------------------------------------------------------------- instances */

typedef struct lc_daemon lc_daemon_t;
typedef struct lc_waiter lc_waiter_t;

typedef struct lc_inst {
    core_instance_t super;
    long num;
    double ended_at;              /* 0 while alive */
    char netns[64];               /* netns mode */
    char veth[16];                /* host side of the veth pair */
    unsigned long long netns_ino; /* finds its processes even once the name is gone */
    int agent_pid;
    int agent_sid;    /* its session: every process of a process-mode host */
    char reason[160]; /* why it is PREEMPTED/FAILED */
    double delay;     /* provisioning delay of this launch */
    double preempt_at; /* a preemption notice's deadline (epoch s); 0 = none */
    /* Loop-thread bookkeeping, not persisted. */
    int busy;                         /* phase: idle, setup, delay, health, teardown */
    void *job;                        /* the thread-pool job in flight, if any */
    int want_teardown;                /* tear down once the current job ends */
    int torn_down;                    /* resources released */
    enum core_inst_state final_state; /* state to settle in after teardown */
    core_http_conn_t *launch_conn;
    lc_waiter_t *waiters; /* replies pending on the teardown */
    uv_timer_t delay_timer;
    int delay_timer_init;
    struct lc_inst *next;
} lc_inst_t;

/* Groups replies waiting for several teardowns (e.g. capacity changes). */
typedef struct lc_barrier {
    int pending;
    core_http_conn_t *conn;
    cJSON *reply;
    int status;
    int exit_after; /* POST /v1/down: stop the loop once answered */
    lc_daemon_t *d;
} lc_barrier_t;

struct lc_waiter {
    lc_barrier_t *b;
    lc_waiter_t *next;
};

typedef struct lc_replay {
    int active;
    char dir[1024];
    double speed;
    double start;
    long tick;
    long ticks; /* longest trace */
    lc_trace_t *traces;
    size_t ntraces;
    uv_timer_t timer;
} lc_replay_t;

struct lc_daemon {
    uv_loop_t *loop;
    char *home; /* $SKY_HOME */
    char *dir;  /* $SKY_HOME/localcloud */
    char *token;
    char *agent_path;
    enum lc_mode mode;
    double provision_delay;
    char tag[8]; /* distinguishes this daemon's namespaces from others' */
    struct core_store *store;
    core_http_server_t *http;
    core_catalog_t *catalog; /* may be NULL */
    lc_market_t market;
    lc_replay_t replay;
    lc_inst_t *insts; /* every instance ever, newest first */
    long next_num;
    uv_timer_t check_timer;
    uv_timer_t notice_timer; /* armed at the earliest preemption notice's deadline */
    uv_timer_t stop_timer;
    uv_signal_t sigterm, sigint;
    int lock_fd;
    int stopping;
    int jobs; /* thread-pool jobs in flight */
};

/* lc_store.c: SQLite persistence (loop thread only). */
int lc_store_open(lc_daemon_t *d, const char *path);
void lc_store_close(lc_daemon_t *d);
int lc_store_put(lc_daemon_t *d, const lc_inst_t *in);
int lc_store_load(lc_daemon_t *d);
int lc_store_meta_get(lc_daemon_t *d, const char *key, char *out, size_t outlen);
int lc_store_meta_set(lc_daemon_t *d, const char *key, const char *val);
int lc_store_put_capacity(lc_daemon_t *d, const char *zone, long capacity);
int lc_store_clear_capacities(lc_daemon_t *d);

/* lc_net.c: blocking host plumbing (thread pool). */
int lc_run(char *const argv[], char *out, size_t outlen);
int lc_net_global_lock(enum lc_mode mode);
void lc_net_global_unlock(int fd);
int lc_net_ensure_bridge(void);
/* Removes the bridge if no interface is attached any more. */
int lc_net_remove_bridge_if_unused(void);
/* Claims a free address for <owner> (global across daemons). */
int lc_net_claim_ip(enum lc_mode mode, const char *owner, char *ip, size_t iplen, int *index);
void lc_net_release_ip(enum lc_mode mode, const char *ip);
int lc_net_create(lc_inst_t *in, char *err, size_t errlen);
int lc_net_spawn_agent(lc_daemon_t *d, lc_inst_t *in, char *err, size_t errlen);
/* Kills every process of the instance and removes its namespace and veth. */
int lc_net_destroy(lc_daemon_t *d, lc_inst_t *in);
/* 1 if the netns (or, in process mode, nothing) still exists. */
int lc_net_netns_exists(const char *netns);
/* 1 if the agent lives and, if <strict>, is still ours (in the session it
 * was started in; without a recorded session, in the instance's netns). */
int lc_net_agent_alive(const lc_daemon_t *d, const lc_inst_t *in, int strict);
/* Number of live processes in the instance. */
size_t lc_net_count_pids(const lc_daemon_t *d, const lc_inst_t *in);
/* Lists namespaces named sky-<tag>-* (for cleanup of strays). */
int lc_net_list_netns(const char *prefix, char ***out, size_t *n);

/* lc_inst.c: lifecycle. */
void lc_inst_to_json(const lc_inst_t *in, cJSON *obj, double now);
cJSON *lc_inst_json(const lc_inst_t *in, double now);
lc_inst_t *lc_inst_find(lc_daemon_t *d, const char *id);
int lc_inst_alive(const lc_inst_t *in); /* PENDING or RUNNING */
size_t lc_inst_spot_in_use(lc_daemon_t *d, const char *zone);
/* Starts a launch; replies on <conn> when done. */
void lc_inst_launch(lc_daemon_t *d, core_http_conn_t *conn, cJSON *req);
/* Moves <in> to <state> (TERMINATED/PREEMPTED/FAILED) and tears it down;
 * <b> (may be NULL) is released once resources are gone. */
void lc_inst_stop(lc_daemon_t *d, lc_inst_t *in, enum core_inst_state state, const char *reason,
                  lc_barrier_t *b);
/* Applies the market to <zone> (NULL: every zone); victims join <b>. */
size_t lc_inst_enforce(lc_daemon_t *d, const char *zone, lc_barrier_t *b, cJSON *victims);
/*
 * A preemption notice: <in> (spot, RUNNING) is preempted at now + <seconds>;
 * meanwhile the instance JSON and the agent's metadata (GET /notice) say so.
 * A second notice can only bring the deadline closer.
 */
int lc_inst_notice(lc_daemon_t *d, lc_inst_t *in, double seconds);
/* Preempts the instances whose notice ran out; arms the timer for the next one. */
void lc_inst_notice_tick(lc_daemon_t *d);
/* The folder whose files the instance's agent serves as its metadata (GET /notice). */
char *lc_inst_metadata_dir(const lc_daemon_t *d, const lc_inst_t *in);
/* Vanished netns/agent detection; a notice whose deadline passed preempts. */
void lc_inst_check(lc_daemon_t *d, lc_inst_t *in);
void lc_inst_recover(lc_daemon_t *d);
lc_barrier_t *lc_barrier_new(lc_daemon_t *d, core_http_conn_t *conn, int status, cJSON *reply);
/* Drops one reference; answers when it reaches zero. */
void lc_barrier_done(lc_barrier_t *b);

/* lc_replay.c: trace replay driving the market. */
int lc_replay_start(lc_daemon_t *d, const char *dir, double speed, char *const *zones, size_t nz,
                    cJSON *reply, char **err);
void lc_replay_stop(lc_daemon_t *d);
int lc_replay_resume(lc_daemon_t *d);
cJSON *lc_replay_status(lc_daemon_t *d);

/* lc_api.c */
void lc_api_handle(core_http_conn_t *conn, const core_http_req_t *req, void *ud);
void lc_daemon_stop(lc_daemon_t *d);
void lc_down_cleanup(lc_daemon_t *d);

#endif
