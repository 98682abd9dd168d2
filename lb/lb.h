#ifndef LB_LB_H
#define LB_LB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <llhttp.h>
#include <uv.h>

#include "core/log.h"
#include "lb_algo.h"

/*
 * sky-lb internals shared by the lb_*.c files. One lb_worker_t per thread,
 * each with its own loop, listener, buffer pool, algorithm state and
 * upstream pools; nothing on the request path is shared between workers.
 */

#define LB_BLOCK_SIZE   65536
#define LB_URL_MAX      128
#define LB_STATS_MAX    1024 /* distinct replica URLs ever seen */
#define LB_MAX_HEAD_CAP 61440
#define LB_HEAD_EXTRA   160 /* generated header bytes per head */

/* ---- configuration (lb_config.c) ---- */

typedef struct lb_config {
    char listen_host[256];
    int listen_port;
    int workers;
    char policy[32];
    char **replicas; /* normalised "http://IP:PORT" */
    size_t n_replicas;
    char *controller; /* without trailing '/' */
    char *service;
    char *token;       /* bearer token read from --controller-token-file */
    char *admin_token; /* required on the admin listener (--admin-token-file, else token) */
    char *token_file;
    char *admin_token_file;
    double sync_interval;
    char admin_host[256];
    int admin_port; /* -1: no admin listener */
    char *tls_cert;
    char *tls_key;
    enum core_log_level log_level;
    size_t max_head;
    size_t max_uri;     /* request-target bytes; longer -> 414 */
    size_t max_headers; /* request header fields; more -> 431 */
    uint64_t max_body;  /* request body bytes; more -> 413 (0: unlimited) */
    double head_timeout;
    double upstream_timeout;      /* request sent -> first response byte */
    double upstream_read_timeout; /* between two reads once the response started */
    double client_send_timeout;   /* a write to the client making no progress */
    double client_body_timeout;   /* between two reads of the request body */
    double connect_timeout;
    double keepalive_timeout;
    double pool_idle_timeout;
    double drain_timeout;
    size_t high_wm;
    size_t low_wm;
    int max_conns;       /* per process; split evenly between workers */
    size_t retry_buffer; /* request bytes held for a retry */
    int max_attempts;
    int pool_size; /* idle upstream conns kept per replica per worker */
    int access_log;
} lb_config_t;

void lb_config_defaults(lb_config_t *cfg);
/*
 * Parses argv into <cfg> (defaults applied first). Returns 0, 1 when --help
 * was asked (usage in *err), or -EINVAL with a sentence in *err (caller
 * frees). Reads --controller-token-file and checks the TLS files are readable.
 */
int lb_config_parse(lb_config_t *cfg, int argc, char **argv, char **err);
/* The two halves of lb_config_parse: argv only (no file or network access
 * besides resolving a --replica given by name; fuzzed), then the files it names. */
int lb_config_parse_args(lb_config_t *cfg, int argc, char **argv, char **err);
int lb_config_load_files(lb_config_t *cfg, char **err);
void lb_config_free(lb_config_t *cfg);
/* "http://IP:PORT[/]" -> sockaddr and the canonical "http://IP:PORT". */
int lb_parse_url(const char *url, struct sockaddr_storage *addr, char *norm, size_t normlen);
/* "HOST:PORT" or "[v6]:PORT" -> host and port. */
int lb_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* ---- buffer pool (lb_pool.c) ---- */

typedef struct lb_pool lb_pool_t;
typedef struct lb_buf {
    struct lb_buf *next; /* free list link */
    lb_pool_t *pool;
    uint32_t refs;
    uint32_t _pad;
    char data[LB_BLOCK_SIZE];
} lb_buf_t;

struct lb_pool {
    lb_buf_t *free;
    size_t n_free;
    size_t max_free; /* blocks kept cached; the rest go back to malloc */
    size_t n_out;    /* blocks handed out and not yet released */
    size_t n_total;  /* blocks allocated and not freed */
};

void lb_pool_init(lb_pool_t *p, size_t max_free);
/* A block with one reference. Never NULL (aborts on OOM). */
lb_buf_t *lb_pool_get(lb_pool_t *p);
static inline lb_buf_t *lb_buf_ref(lb_buf_t *b)
{
    b->refs++;
    return b;
}
void lb_buf_unref(lb_buf_t *b);
/* Frees the cached blocks; blocks still out are leaked on purpose (bug). */
void lb_pool_destroy(lb_pool_t *p);

/* ---- HTTP heads as bytes (lb_head.c), pure ---- */

/* The header names sky-lb acts on, recognised once by lb_head_scan. */
enum lb_hdr_kind {
    LB_H_OTHER = 0,
    LB_H_CONNECTION,
    LB_H_KEEP_ALIVE,
    LB_H_PROXY_CONNECTION,
    LB_H_TE,
    LB_H_TRAILER,
    LB_H_UPGRADE,
    LB_H_TRANSFER_ENCODING,
    LB_H_CONTENT_LENGTH,
    LB_H_HOST,
    LB_H_X_FORWARDED_FOR,
    LB_H_X_FORWARDED_PROTO,
};

typedef struct lb_hdr {
    uint16_t line_off; /* offset of the name */
    uint16_t line_len; /* up to and including CRLF */
    uint16_t name_len;
    uint16_t val_off;
    uint16_t val_len;   /* trimmed */
    uint8_t kind;       /* enum lb_hdr_kind, from the name (case-insensitive) */
    uint8_t underscore; /* the name has a '_' */
} lb_hdr_t;

typedef struct lb_head {
    const char *base;
    size_t len;
    size_t sl; /* start line, up to and including its LF */
    lb_hdr_t *hdrs;
    size_t n;
} lb_head_t;

/* Header lines a head of <len> bytes can hold: each takes at least "a:\r\n". */
#define LB_HDRS_FOR(len) ((len) / 4 + 1)

/*
 * Splits a complete head (already validated by llhttp, ending in CRLFCRLF)
 * into the start line and header lines. Rejects what llhttp 8 lets through:
 * obsolete line folding and whitespace before the colon (-EINVAL). More than
 * <max> headers is -ENOSPC.
 */
int lb_head_scan(const char *head, size_t len, lb_hdr_t *hdrs, size_t max, lb_head_t *out);

/* The checks of a response head's status line that llhttp does not make:
 * 0 or -EINVAL (then the response is a 502). */
int lb_resp_check(const lb_head_t *h);

/* What the request parser found in a request head. */
typedef struct lb_req_meta {
    uint8_t method; /* llhttp_method_t */
    uint8_t http_major, http_minor;
    uint8_t keep_alive; /* llhttp_should_keep_alive */
    uint8_t upgrade;    /* llhttp's: Upgrade, or CONNECT */
    uint8_t has_cl;     /* a Content-Length: content_length is the body's length */
    uint64_t content_length;
} lb_req_meta_t;

/* The same, from llhttp paused at the end of a request head. */
static inline void lb_req_meta_of(const llhttp_t *p, lb_req_meta_t *m)
{
    m->method = p->method;
    m->http_major = p->http_major;
    m->http_minor = p->http_minor;
    m->keep_alive = (uint8_t)llhttp_should_keep_alive(p);
    m->upgrade = p->upgrade;
    m->has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    m->content_length = p->content_length;
}

/*
 * The common request, as lb_resp_fast takes the common response: an
 * origin-form GET, HEAD, POST, PUT, DELETE, OPTIONS or PATCH in HTTP/1.1 or
 * 1.0, its head complete in <buf> and valid for llhttp's strict mode, with
 * at most one Content-Length, no Upgrade or Transfer-Encoding, and no
 * Connection but "close" or "keep-alive". 0 with <h> and <m> filled, or
 * -EAGAIN (llhttp's).
 */
int lb_req_fast(const char *buf, size_t len, lb_hdr_t *hdrs, size_t max, lb_head_t *h,
                lb_req_meta_t *m);

/* What lb_resp_fast found in a response head. */
typedef struct lb_resp_fast {
    uint32_t head_len;       /* up to and including the blank line */
    uint16_t status;         /* 200-599, not 204 or 304 */
    uint8_t keep_alive;      /* no "Connection: close" */
    uint64_t content_length; /* the body's length: exactly one Content-Length */
} lb_resp_fast_t;

/*
 * The common response without llhttp: an HTTP/1.1 head, complete in
 * <buf>, every byte of it valid for llhttp's strict mode, framed by one
 * Content-Length, with no Upgrade or Transfer-Encoding, and no Connection
 * but "close" or "keep-alive". Scans it into <h> (at most <max> header
 * lines) as lb_head_scan does, in the same pass.
 * -EAGAIN for anything else: then llhttp parses the message, as it does
 * every message this path does not take (fuzz_lb_fast checks that
 * llhttp reads each head taken here the same way).
 */
int lb_resp_fast(const char *buf, size_t len, lb_hdr_t *hdrs, size_t max, lb_head_t *h,
                 lb_resp_fast_t *f);

/* What lb_req_check found in a request head. */
typedef struct lb_req_info {
    int status;      /* local answer when the request is refused (400, 414, 431, 505) */
    const char *why; /* for the log */
    uint16_t method_len;
    uint16_t target_off, target_len; /* origin-form (the path part of an absolute-form) */
    uint16_t auth_off, auth_len;     /* absolute-form authority */
    unsigned absolute : 1;           /* forward as origin-form with Host: authority */
    unsigned respace : 1;            /* odd request-line spacing: rebuild it */
    unsigned http10 : 1;
} lb_req_info_t;

/*
 * The checks RFC 9110/9112 ask of a server that llhttp (strict) does not
 * make, on a scanned request head and what its parser found. Returns 0
 * or -EINVAL with o->status and o->why set.
 */
int lb_req_check(const lb_head_t *h, const lb_req_meta_t *m, size_t max_uri, size_t max_headers,
                 lb_req_info_t *o);

enum lb_conn_hdr {
    LB_CONN_HDR_NONE = 0,
    LB_CONN_HDR_CLOSE,
    LB_CONN_HDR_KEEPALIVE,
    LB_CONN_HDR_UPGRADE,
};

typedef struct lb_rewrite {
    int is_request;
    const char *client_ip; /* request: appended to X-Forwarded-For */
    int tls;               /* request: X-Forwarded-Proto https */
    int upgrade;           /* keep Upgrade (request with upgrade, or 101 response) */
    enum lb_conn_hdr conn; /* Connection header to add */
    int drop_te;           /* response re-framed: drop Transfer-Encoding */
    const lb_req_info_t *req; /* request: from lb_req_check */
} lb_rewrite_t;

/*
 * Builds the forwarded head as pieces of the original head plus generated
 * bytes copied into <extra> (<extra_cap> bytes). Drops hop-by-hop headers and
 * the headers named by Connection, appends X-Forwarded-For/-Proto to
 * requests and normalises their request line. <iov> receives at most
 * <max_iov> pieces pointing into the head or extra. -ENOBUFS when the pieces
 * or <extra> run out: then call again with <copy> set and a larger <extra>,
 * which receives the whole head (one piece).
 */
int lb_head_rewrite(const lb_head_t *h, const lb_rewrite_t *rw, uv_buf_t *iov, size_t max_iov,
                    size_t *n_iov, char *extra, size_t extra_cap, size_t *extra_len, int copy);

/* ---- stats (lb_metrics.c): per worker, single writer, summed on read ---- */

#define LB_LAT_BUCKETS 14
/* Status classes 1xx..5xx of the final responses relayed from a replica. */
#define LB_RESP_CLASSES 5

enum lb_timeout {
    LB_TO_HEAD = 0,      /* request head not complete in time (408) */
    LB_TO_CLIENT_BODY,   /* request body stalled (408 or close) */
    LB_TO_CONNECT,       /* connect to a replica (retried, then 502) */
    LB_TO_RESPONSE,      /* no response byte after the request (504) */
    LB_TO_UPSTREAM_READ, /* response stalled after its first byte (504 or close) */
    LB_TO_CLIENT_SEND,   /* client not reading the response (close) */
    LB_TO_N,
};
extern const char *const lb_timeout_names[LB_TO_N];

typedef struct lb_wstats {
    _Atomic uint64_t codes[600];
    _Atomic uint64_t rep_requests[LB_STATS_MAX];
    _Atomic uint64_t rep_failures[LB_STATS_MAX];
    /* By status class (index status/100 - 1); a response past 599 counts in none. */
    _Atomic uint64_t rep_responses[LB_STATS_MAX][LB_RESP_CLASSES];
    _Atomic int64_t rep_inflight[LB_STATS_MAX];
    _Atomic uint64_t lat_bucket[LB_LAT_BUCKETS + 1];
    _Atomic uint64_t lat_sum_us;
    _Atomic uint64_t lat_count;
    _Atomic int64_t open_conns;
    _Atomic uint64_t ts_dropped;
    _Atomic uint64_t timeouts[LB_TO_N]; /* by enum lb_timeout */
    /* Request timestamps: single-producer (worker) single-consumer (sync). */
    double *ts;
    uint32_t ts_cap; /* power of two */
    _Atomic uint64_t ts_head;
    _Atomic uint64_t ts_tail;
} lb_wstats_t;

typedef struct lb_stats {
    pthread_mutex_t mu; /* inserts into urls only */
    _Atomic uint32_t n_urls;
    char urls[LB_STATS_MAX][LB_URL_MAX];
    lb_wstats_t *w;
    int nw;
} lb_stats_t;

extern const double lb_lat_bounds[LB_LAT_BUCKETS];

int lb_stats_init(lb_stats_t *s, int nworkers, uint32_t ts_cap);
void lb_stats_destroy(lb_stats_t *s);
/* Id of <url>, inserted if new; -ENOSPC past LB_STATS_MAX. */
int lb_stats_url_id(lb_stats_t *s, const char *url);

/* Single-writer counters: a relaxed load+store, no locked instruction. */
static inline void lb_ctr_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}
static inline void lb_gauge_add(_Atomic int64_t *c, int64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}
static inline uint64_t lb_ctr_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}
void lb_stats_push_ts(lb_wstats_t *w, double ts);
void lb_stats_observe_latency(lb_wstats_t *w, double seconds);
/* Drains every worker's timestamps into <out> (grown as needed, capped at
 * <cap>; the oldest are dropped). */
void lb_stats_drain_ts(lb_stats_t *s, double **out, size_t *n, size_t *alloc, size_t cap);

/* Prometheus text. Caller frees. */
char *lb_metrics_render(lb_stats_t *s, size_t *len);

/* ---- ready-set snapshots (lb_sync.c) ---- */

typedef struct lb_snap_rep {
    char url[LB_URL_MAX];
    struct sockaddr_storage addr;
    int stat_id;
} lb_snap_rep_t;

typedef struct lb_snapshot {
    _Atomic int refs;
    uint64_t version;
    size_t n;
    lb_snap_rep_t reps[];
} lb_snapshot_t;

lb_snapshot_t *lb_snapshot_new(size_t n);
void lb_snapshot_unref(lb_snapshot_t *s);

typedef struct lb_worker lb_worker_t;

typedef struct lb_ctx {
    lb_config_t *cfg;
    lb_stats_t stats;
    lb_worker_t **workers;
    int nworkers;
    pthread_mutex_t snap_mu;
    lb_snapshot_t *snap; /* latest; guarded by snap_mu */
    _Atomic int stopping;
    void *tls; /* SSL_CTX * when --tls-cert is given */
} lb_ctx_t;

/* Replaces the ready set and wakes every worker. Takes ownership of <snap>. */
void lb_ctx_publish(lb_ctx_t *ctx, lb_snapshot_t *snap);
/* A new reference to the latest snapshot (may be NULL). */
lb_snapshot_t *lb_ctx_snapshot(lb_ctx_t *ctx);
/* Builds a snapshot from URLs (invalid ones skipped with a warning). */
lb_snapshot_t *lb_snapshot_from_urls(lb_ctx_t *ctx, const char *const *urls, size_t n);

/* Sync thread. */
typedef struct lb_sync lb_sync_t;
int lb_sync_start(lb_ctx_t *ctx, lb_sync_t **out);
void lb_sync_stop(lb_sync_t *s);
/* Pure helpers, unit tested. Caller frees the results. <responses> (NULL:
 * left out of the body) holds n_urls rows of status-class counts. */
char *lb_sync_build_body(const double *ts, size_t n_ts, const char *const *urls,
                         const uint64_t *requests, const uint64_t *failures,
                         const uint64_t (*responses)[LB_RESP_CLASSES], size_t n_urls);
/* Parses {"replica_info":{url:{...}}}; *urls allocated (free each and the array). */
int lb_sync_parse_reply(const char *body, char ***urls, size_t *n);

/* ---- workers (lb_conn.c) ---- */

int lb_worker_create(lb_ctx_t *ctx, int id, int listen_fd, lb_worker_t **out);
int lb_worker_start(lb_worker_t *w);
/* Asks the worker to drain and exit (thread-safe). */
void lb_worker_stop(lb_worker_t *w);
/* Wakes the worker to pick up the latest snapshot (thread-safe). */
void lb_worker_notify(lb_worker_t *w);
void lb_worker_join(lb_worker_t *w);
void lb_worker_destroy(lb_worker_t *w);

/* SO_REUSEPORT listening socket bound to host:port; *port updated if 0. */
int lb_listen_socket(const char *host, int *port, int backlog);

/* ---- TLS (lb_tls.c) ---- */

int lb_tls_ctx_new(const char *cert, const char *key, void **out, char **err);
void lb_tls_ctx_free(void *ctx);

/* ---- admin listener (lb_admin.c) ---- */

typedef struct lb_admin lb_admin_t;
int lb_admin_start(lb_ctx_t *ctx, const char *host, int port, lb_admin_t **out);
void lb_admin_stop(lb_admin_t *a);

#endif
