#ifndef CTL_LB_REPORT_H
#define CTL_LB_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

/*
 * sky-lb's sync body, parsed (ctl_lb_report.c), apart from any service state
 * so that fuzz/fuzz_ctl_lb_sync.c runs it alone: the body is network input.
 *
 *   {"request_aggregator": {"timestamps": [t, ...]},
 *    "replica_stats": {"<url>": {"requests": N, "failures": M,
 *                                "responses": {"1xx": a, ..., "5xx": e}}}}
 *
 * The counts are deltas since the LB's last acknowledged sync. Only
 * request_aggregator is required in practice (the reference Python LB sends
 * nothing else); anything malformed is left out, never an error.
 */

#define CTL_LB_CLASSES 5 /* status classes 1xx..5xx */
/* A count at or past this is not a delta one sync can carry: ignored. */
#define CTL_LB_COUNT_MAX 1e15

typedef struct ctl_lb_rep_report {
    const char *url; /* points into the parsed body */
    /* requests and failures, both valid or both left at 0. sky-lb counts an
     * attempt when it starts and a failure when it ends, so one sync may
     * carry more failures than requests. */
    bool has_counts;
    unsigned long long requests, failures;
    /* each class valid or left at 0 */
    unsigned long long responses[CTL_LB_CLASSES];
} ctl_lb_rep_report_t;

typedef struct ctl_lb_report {
    bool has_ts; /* request_aggregator.timestamps is an array */
    double *ts;  /* its numbers (others skipped) */
    size_t n_ts;
    ctl_lb_rep_report_t *reps; /* one per replica_stats member with a name */
    size_t n_reps;
} ctl_lb_report_t;

/* Fills <out> from <body> (any JSON value, NULL included). The URLs point
 * into <body>: free <out> with ctl_lb_report_free before deleting it. */
void ctl_lb_report_parse(const cJSON *body, ctl_lb_report_t *out);
void ctl_lb_report_free(ctl_lb_report_t *r);

#endif
