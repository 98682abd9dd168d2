#ifndef CORE_HTTP_ASYNC_H
#define CORE_HTTP_ASYNC_H

#include <stddef.h>
#include <uv.h>

/*
 * HTTP client transfers on a libuv loop: libcurl's multi interface driven
 * by the loop (CURLMOPT_SOCKETFUNCTION -> one uv_poll_t per socket,
 * CURLMOPT_TIMERFUNCTION -> one uv_timer_t), so a daemon runs many requests
 * (readiness probes) and follows many long responses (log streams) without a
 * thread each. Never through a proxy from the environment; https:// (the SSH
 * pool agents) trusts only the product's CA, as core_http_call does. Loop
 * thread only.
 */
typedef struct core_http_async core_http_async_t;
typedef struct core_http_xfer core_http_xfer_t;

typedef struct core_http_xfer_opts {
    const char *url;
    const char *body;           /* NULL: GET; else POSTed as application/json (copied) */
    const char *const *headers; /* "Name: value" lines (copied) */
    size_t n_headers;
    const char *bearer;         /* Authorization: Bearer <bearer>, or NULL */
    long connect_timeout_ms;    /* 0: 5 s */
    long timeout_ms;            /* whole transfer; 0: none (a follow stream) */
    /* The body of a 2xx answer as it arrives (any other answer's body is
     * dropped); NULL drops every body. Returning nonzero ends the transfer
     * (on_done gets -ECANCELED). It must not cancel the transfer itself. */
    int (*on_data)(void *arg, const char *data, size_t len);
    /* Once, when the transfer ends: rc 0 (then status is the HTTP status) or
     * a negative errno (-ECONNREFUSED, -ETIMEDOUT, -ECONNRESET, -ECANCELED,
     * -EPROTO for a TLS peer that is not ours, -EIO) with <err> saying why
     * (NULL on success). The transfer is freed after it returns. */
    void (*on_done)(void *arg, int rc, long status, const char *err);
    void *arg;
} core_http_xfer_opts_t;

int core_http_async_new(uv_loop_t *loop, core_http_async_t **out);
/* Cancels every transfer (their on_done does not run) and frees <a> once
 * its handles have closed. */
void core_http_async_close(core_http_async_t *a);

/* Starts a request. *out (may be NULL) identifies it for
 * core_http_xfer_cancel until on_done runs. */
int core_http_async_start(core_http_async_t *a, const core_http_xfer_opts_t *o,
                          core_http_xfer_t **out);
/* Transfers in flight. */
size_t core_http_async_in_flight(const core_http_async_t *a);
/* Stops a transfer in flight; its on_done does not run. Not from within its
 * own callbacks. */
void core_http_xfer_cancel(core_http_xfer_t *x);

#endif
