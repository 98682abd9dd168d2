#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "lb.h"

const char *const lb_timeout_names[LB_TO_N] = {
    "head", "client_body", "connect", "response", "upstream_read", "client_send",
};

const double lb_lat_bounds[LB_LAT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,  0.5,    1,     2.5,  5,     10,   30};

int lb_stats_init(lb_stats_t *s, int nworkers, uint32_t ts_cap)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->nw = nworkers;
    s->w = core_xcalloc((size_t)nworkers, sizeof(lb_wstats_t));
    uint32_t cap = 1;
    while (cap < ts_cap)
        cap <<= 1;
    for (int i = 0; i < nworkers; i++) {
        s->w[i].ts_cap = cap;
        s->w[i].ts = core_xmalloc(cap * sizeof(double));
    }
    return 0;
}

void lb_stats_destroy(lb_stats_t *s)
{
    for (int i = 0; i < s->nw; i++)
        free(s->w[i].ts);
    free(s->w);
    s->w = NULL;
    pthread_mutex_destroy(&s->mu);
}

int lb_stats_url_id(lb_stats_t *s, const char *url)
{
    uint32_t n = atomic_load(&s->n_urls);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(s->urls[i], url) == 0)
            return (int)i;
    pthread_mutex_lock(&s->mu);
    n = atomic_load(&s->n_urls);
    int id = -ENOSPC;
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(s->urls[i], url) == 0)
            id = (int)i;
    if (id < 0 && n < LB_STATS_MAX && strlen(url) < LB_URL_MAX) {
        strcpy(s->urls[n], url);
        atomic_store(&s->n_urls, n + 1); /* publishes the string */
        id = (int)n;
    }
    pthread_mutex_unlock(&s->mu);
    return id;
}

void lb_stats_push_ts(lb_wstats_t *w, double ts)
{
    uint64_t head = atomic_load_explicit(&w->ts_head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&w->ts_tail, memory_order_acquire);
    if (head - tail >= w->ts_cap) {
        lb_ctr_add(&w->ts_dropped, 1);
        return;
    }
    w->ts[head & (w->ts_cap - 1)] = ts;
    atomic_store_explicit(&w->ts_head, head + 1, memory_order_release);
}

void lb_stats_observe_latency(lb_wstats_t *w, double sec)
{
    int b = 0;
    while (b < LB_LAT_BUCKETS && sec > lb_lat_bounds[b])
        b++;
    lb_ctr_add(&w->lat_bucket[b], 1);
    lb_ctr_add(&w->lat_sum_us, (uint64_t)(sec * 1e6));
    lb_ctr_add(&w->lat_count, 1);
}

void lb_stats_drain_ts(lb_stats_t *s, double **out, size_t *n, size_t *alloc, size_t cap)
{
    for (int i = 0; i < s->nw; i++) {
        lb_wstats_t *w = &s->w[i];
        uint64_t tail = atomic_load_explicit(&w->ts_tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&w->ts_head, memory_order_acquire);
        for (; tail < head; tail++) {
            if (*n == cap) {
                /* Bounded: drop the oldest half rather than one at a time. */
                size_t keep = cap / 2;
                memmove(*out, *out + (*n - keep), keep * sizeof(double));
                *n = keep;
            }
            if (*n == *alloc) {
                *alloc = *alloc ? *alloc * 2 : 1024;
                if (*alloc > cap)
                    *alloc = cap;
                *out = core_xrealloc(*out, *alloc * sizeof(double));
            }
            (*out)[(*n)++] = w->ts[tail & (w->ts_cap - 1)];
        }
        atomic_store_explicit(&w->ts_tail, tail, memory_order_release);
    }
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        b->p = core_xrealloc(b->p, b->cap);
    }
}

static uint64_t sum_u(lb_stats_t *s, size_t off)
{
    uint64_t t = 0;
    for (int i = 0; i < s->nw; i++)
        t += atomic_load_explicit((_Atomic uint64_t *)((char *)&s->w[i] + off),
                                  memory_order_relaxed);
    return t;
}

static int64_t sum_i(lb_stats_t *s, size_t off)
{
    int64_t t = 0;
    for (int i = 0; i < s->nw; i++)
        t +=
            atomic_load_explicit((_Atomic int64_t *)((char *)&s->w[i] + off), memory_order_relaxed);
    return t;
}

#define OFF(field) offsetof(lb_wstats_t, field)

char *lb_metrics_render(lb_stats_t *s, size_t *len)
{
    sbuf_t b = {core_xmalloc(4096), 0, 4096};
    sb_printf(&b, "# HELP sky_lb_requests_total Responses sent to clients, by status code.\n"
                  "# TYPE sky_lb_requests_total counter\n");
    for (int code = 100; code < 600; code++) {
        uint64_t v = sum_u(s, OFF(codes[code]));
        if (v)
            sb_printf(&b, "sky_lb_requests_total{code=\"%d\"} %llu\n", code, (unsigned long long)v);
    }
    sb_printf(&b,
              "# HELP sky_lb_open_connections Open client connections.\n"
              "# TYPE sky_lb_open_connections gauge\nsky_lb_open_connections %lld\n",
              (long long)sum_i(s, OFF(open_conns)));
    uint32_t n = atomic_load(&s->n_urls);
    sb_printf(&b, "# HELP sky_lb_replica_in_flight Requests in flight per replica.\n"
                  "# TYPE sky_lb_replica_in_flight gauge\n");
    for (uint32_t i = 0; i < n; i++)
        sb_printf(&b, "sky_lb_replica_in_flight{replica=\"%s\"} %lld\n", s->urls[i],
                  (long long)sum_i(s, OFF(rep_inflight[i])));
    sb_printf(&b, "# HELP sky_lb_replica_requests_total Attempts sent to each replica.\n"
                  "# TYPE sky_lb_replica_requests_total counter\n");
    for (uint32_t i = 0; i < n; i++)
        sb_printf(&b, "sky_lb_replica_requests_total{replica=\"%s\"} %llu\n", s->urls[i],
                  (unsigned long long)sum_u(s, OFF(rep_requests[i])));
    sb_printf(&b, "# HELP sky_lb_replica_failures_total Failed attempts per replica.\n"
                  "# TYPE sky_lb_replica_failures_total counter\n");
    for (uint32_t i = 0; i < n; i++)
        sb_printf(&b, "sky_lb_replica_failures_total{replica=\"%s\"} %llu\n", s->urls[i],
                  (unsigned long long)sum_u(s, OFF(rep_failures[i])));
    sb_printf(&b, "# HELP sky_lb_replica_responses_total Final responses relayed from each "
                  "replica, by status class.\n# TYPE sky_lb_replica_responses_total counter\n");
    for (uint32_t i = 0; i < n; i++)
        for (int c = 0; c < LB_RESP_CLASSES; c++)
            sb_printf(&b, "sky_lb_replica_responses_total{replica=\"%s\",code=\"%dxx\"} %llu\n",
                      s->urls[i], c + 1, (unsigned long long)sum_u(s, OFF(rep_responses[i][c])));
    sb_printf(&b, "# HELP sky_lb_upstream_latency_seconds Time from request sent to response "
                  "complete.\n# TYPE sky_lb_upstream_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < LB_LAT_BUCKETS; i++) {
        cum += sum_u(s, OFF(lat_bucket[i]));
        sb_printf(&b, "sky_lb_upstream_latency_seconds_bucket{le=\"%g\"} %llu\n", lb_lat_bounds[i],
                  (unsigned long long)cum);
    }
    cum += sum_u(s, OFF(lat_bucket[LB_LAT_BUCKETS]));
    sb_printf(&b, "sky_lb_upstream_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
              (unsigned long long)cum);
    sb_printf(&b, "sky_lb_upstream_latency_seconds_sum %.6f\n",
              (double)sum_u(s, OFF(lat_sum_us)) / 1e6);
    sb_printf(&b, "sky_lb_upstream_latency_seconds_count %llu\n",
              (unsigned long long)sum_u(s, OFF(lat_count)));
    sb_printf(&b,
              "# HELP sky_lb_timestamps_dropped_total Request timestamps dropped (buffer "
              "full).\n# TYPE sky_lb_timestamps_dropped_total counter\n"
              "sky_lb_timestamps_dropped_total %llu\n",
              (unsigned long long)sum_u(s, OFF(ts_dropped)));
    sb_printf(&b, "# HELP sky_lb_timeouts_total Timeouts, by phase.\n"
                  "# TYPE sky_lb_timeouts_total counter\n");
    for (int i = 0; i < LB_TO_N; i++)
        sb_printf(&b, "sky_lb_timeouts_total{phase=\"%s\"} %llu\n", lb_timeout_names[i],
                  (unsigned long long)sum_u(s, OFF(timeouts[i])));
    *len = b.len;
    return b.p;
}
