/*
 * Readiness probes: libcurl's multi interface driven by the libuv loop
 * (CURLMOPT_SOCKETFUNCTION -> uv_poll_t per socket, CURLMOPT_TIMERFUNCTION
 * -> one uv_timer_t), so hundreds of probes run concurrently on the loop
 * thread without blocking it. Success is HTTP 200 exactly (reference §3.3).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "core/log.h"
#include "core/mem.h"
#include "ctl_probe.h"

/* Probe bodies are read and dropped; a replica's answer must not grow memory. */
#define PROBE_MAX_BODY (64 * 1024)

struct ctl_prober {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    size_t in_flight;
    int closing;
    struct probe *probes; /* in flight, for close */
};

typedef struct probe {
    ctl_prober_t *p;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    size_t got;
    ctl_probe_cb cb;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
    struct probe *prev, *next;
} probe_t;

typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    ctl_prober_t *p;
} sock_ctx_t;

static void check_done(ctl_prober_t *p)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
        probe_t *pr = NULL;
        long status = 0;
        CURLcode res;

        if (msg->msg != CURLMSG_DONE)
            continue;
        res = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&pr);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(p->multi, msg->easy_handle);
        if (pr->prev)
            pr->prev->next = pr->next;
        else
            p->probes = pr->next;
        if (pr->next)
            pr->next->prev = pr->prev;
        p->in_flight--;
        if (res != CURLE_OK)
            status = status ? status : 0;
        pr->cb(pr->arg, res == CURLE_OK && status == 200, res == CURLE_OK ? status : 0,
               res == CURLE_OK ? NULL : (pr->errbuf[0] ? pr->errbuf : curl_easy_strerror(res)));
        curl_easy_cleanup(pr->easy);
        curl_slist_free_all(pr->hdrs);
        free(pr->body);
        free(pr);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx_t *sc = h->data;
    ctl_prober_t *p = sc->p;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(p->multi, sc->fd, flags, &running);
    check_done(p);
}

static void on_timer(uv_timer_t *t)
{
    ctl_prober_t *p = t->data;
    int running;

    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(p);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ctl_prober_t *p = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&p->timer);
    else
        uv_timer_start(&p->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void free_sock(uv_handle_t *h)
{
    free(h->data);
}

static int socket_cb(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp)
{
    ctl_prober_t *p = userp;
    sock_ctx_t *sc = socketp;
    int events = 0;

    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (sc) {
            uv_poll_stop(&sc->poll);
            uv_close((uv_handle_t *)&sc->poll, free_sock);
            curl_multi_assign(p->multi, s, NULL);
        }
        return 0;
    }
    if (!sc) {
        sc = core_xcalloc(1, sizeof(*sc));
        sc->fd = s;
        sc->p = p;
        if (uv_poll_init_socket(p->loop, &sc->poll, s) < 0) {
            free(sc);
            return -1;
        }
        sc->poll.data = sc;
        curl_multi_assign(p->multi, s, sc);
    }
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    probe_t *pr = arg;
    size_t n = size * nmemb;

    pr->got += n;
    if (pr->got > PROBE_MAX_BODY)
        return 0; /* aborts the transfer: a readiness answer is small */
    return n;
}

int ctl_prober_new(uv_loop_t *loop, ctl_prober_t **out)
{
    ctl_prober_t *p = core_xcalloc(1, sizeof(*p));

    p->loop = loop;
    p->multi = curl_multi_init();
    if (!p->multi) {
        free(p);
        return -ENOMEM;
    }
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
    *out = p;
    return 0;
}

int ctl_prober_start(ctl_prober_t *p, const ctl_probe_req_t *req, ctl_probe_cb cb, void *arg)
{
    probe_t *pr = core_xcalloc(1, sizeof(*pr));
    long ms = (long)(req->timeout_s * 1000);

    if (ms < 1)
        ms = 1;
    pr->p = p;
    pr->cb = cb;
    pr->arg = arg;
    pr->easy = curl_easy_init();
    if (!pr->easy) {
        free(pr);
        return -ENOMEM;
    }
    curl_easy_setopt(pr->easy, CURLOPT_URL, req->url);
    curl_easy_setopt(pr->easy, CURLOPT_PRIVATE, pr);
    curl_easy_setopt(pr->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(pr->easy, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(pr->easy, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(pr->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(pr->easy, CURLOPT_WRITEDATA, pr);
    curl_easy_setopt(pr->easy, CURLOPT_ERRORBUFFER, pr->errbuf);
    curl_easy_setopt(pr->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(pr->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A probe must see the replica itself, never a proxy from the environment. */
    curl_easy_setopt(pr->easy, CURLOPT_NOPROXY, "*");
    for (size_t i = 0; i < req->n_headers; i++) {
        char *h = core_xasprintf("%s: %s", req->headers[i].key,
                                 req->headers[i].value ? req->headers[i].value : "");

        pr->hdrs = curl_slist_append(pr->hdrs, h);
        free(h);
    }
    if (req->post_data) {
        pr->body = core_xstrdup(req->post_data);
        pr->hdrs = curl_slist_append(pr->hdrs, "Content-Type: application/json");
        curl_easy_setopt(pr->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(pr->easy, CURLOPT_POSTFIELDS, pr->body);
        curl_easy_setopt(pr->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(pr->body));
    }
    if (pr->hdrs)
        curl_easy_setopt(pr->easy, CURLOPT_HTTPHEADER, pr->hdrs);
    if (curl_multi_add_handle(p->multi, pr->easy) != CURLM_OK) {
        curl_easy_cleanup(pr->easy);
        curl_slist_free_all(pr->hdrs);
        free(pr->body);
        free(pr);
        return -EIO;
    }
    pr->next = p->probes;
    if (p->probes)
        p->probes->prev = pr;
    p->probes = pr;
    p->in_flight++;
    return 0;
}

size_t ctl_prober_in_flight(const ctl_prober_t *p)
{
    return p->in_flight;
}

static void free_prober(uv_handle_t *h)
{
    free(h->data);
}

void ctl_prober_close(ctl_prober_t *p)
{
    if (!p)
        return;
    while (p->probes) {
        probe_t *pr = p->probes;

        p->probes = pr->next;
        curl_multi_remove_handle(p->multi, pr->easy);
        curl_easy_cleanup(pr->easy);
        curl_slist_free_all(pr->hdrs);
        free(pr->body);
        free(pr);
    }
    curl_multi_cleanup(p->multi);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, free_prober);
}
