/*
 * Readiness probes: requests on the loop (core_http_async), so hundreds of
 * probes run concurrently on the loop thread without blocking it. Success is
 * HTTP 200 exactly (reference §3.3).
 */
#include <stdlib.h>
#include <string.h>

#include "core/http_async.h"
#include "core/mem.h"
#include "ctl_probe.h"

/* Probe bodies are read and dropped; a replica's answer must not grow memory. */
#define PROBE_MAX_BODY (64 * 1024)

struct ctl_prober {
    core_http_async_t *http;
    struct probe *probes; /* in flight, for close */
};

typedef struct probe {
    ctl_prober_t *p;
    size_t got;
    ctl_probe_cb cb;
    void *arg;
    struct probe *prev, *next;
} probe_t;

static void unlink_probe(probe_t *pr)
{
    if (pr->prev)
        pr->prev->next = pr->next;
    else
        pr->p->probes = pr->next;
    if (pr->next)
        pr->next->prev = pr->prev;
}

static int on_body(void *arg, const char *data, size_t len)
{
    probe_t *pr = arg;

    (void)data;
    pr->got += len;
    return pr->got > PROBE_MAX_BODY; /* stops the transfer: a readiness answer is small */
}

static void on_done(void *arg, int rc, long status, const char *err)
{
    probe_t *pr = arg;

    unlink_probe(pr);
    pr->cb(pr->arg, rc == 0 && status == 200, rc == 0 ? status : 0, err);
    free(pr);
}

int ctl_prober_new(uv_loop_t *loop, ctl_prober_t **out)
{
    ctl_prober_t *p = core_xcalloc(1, sizeof(*p));
    int rc = core_http_async_new(loop, &p->http);

    if (rc < 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int ctl_prober_start(ctl_prober_t *p, const ctl_probe_req_t *req, ctl_probe_cb cb, void *arg)
{
    probe_t *pr = core_xcalloc(1, sizeof(*pr));
    char **hdrs = core_xcalloc(req->n_headers + 1, sizeof(*hdrs));
    long ms = (long)(req->timeout_s * 1000);
    int rc;

    if (ms < 1)
        ms = 1;
    pr->p = p;
    pr->cb = cb;
    pr->arg = arg;
    for (size_t i = 0; i < req->n_headers; i++)
        hdrs[i] = core_xasprintf("%s: %s", req->headers[i].key,
                                 req->headers[i].value ? req->headers[i].value : "");
    core_http_xfer_opts_t o = {
        .url = req->url,
        .body = req->post_data,
        .headers = (const char *const *)hdrs,
        .n_headers = req->n_headers,
        .connect_timeout_ms = ms,
        .timeout_ms = ms,
        .on_data = on_body,
        .on_done = on_done,
        .arg = pr,
    };
    rc = core_http_async_start(p->http, &o, NULL);
    for (size_t i = 0; i < req->n_headers; i++)
        free(hdrs[i]);
    free(hdrs);
    if (rc < 0) {
        free(pr);
        return rc;
    }
    pr->next = p->probes;
    if (p->probes)
        p->probes->prev = pr;
    p->probes = pr;
    return 0;
}

size_t ctl_prober_in_flight(const ctl_prober_t *p)
{
    return core_http_async_in_flight(p->http);
}

void ctl_prober_close(ctl_prober_t *p)
{
    if (!p)
        return;
    /* The probes in flight are cancelled: they never call back. */
    core_http_async_close(p->http);
    while (p->probes) {
        probe_t *pr = p->probes;

        p->probes = pr->next;
        free(pr);
    }
    free(p);
}
