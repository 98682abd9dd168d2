/*
 * HTTP transfers driven by a libuv loop (see include/core/http_async.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/http_async.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/tls.h"

struct core_http_async {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    core_http_xfer_t *xfers; /* in flight */
    size_t n_xfers;
};

struct core_http_xfer {
    core_http_async_t *a;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    core_http_xfer_opts_t o; /* its strings are not kept past the start */
    char errbuf[CURL_ERROR_SIZE];
    core_http_xfer_t *prev, *next;
};

typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    core_http_async_t *a;
} sock_t;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void unlink_xfer(core_http_xfer_t *x)
{
    x->a->n_xfers--;
    if (x->prev)
        x->prev->next = x->next;
    else
        x->a->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

static void free_xfer(core_http_xfer_t *x)
{
    curl_multi_remove_handle(x->a->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->body);
    free(x);
}

static int map_result(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_WRITE_ERROR:
        return -ECANCELED; /* on_data asked to stop */
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
        return -EPROTO; /* not the agent we set up, or no CA here */
    default:
        return -EIO;
    }
}

static void check_done(core_http_async_t *a)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(a->multi, &left)) != NULL) {
        core_http_xfer_t *x = NULL;
        long status = 0;

        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode res = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        unlink_xfer(x);
        const char *err = NULL;
        if (res != CURLE_OK)
            err = x->errbuf[0] ? x->errbuf : curl_easy_strerror(res);
        x->o.on_done(x->o.arg, map_result(res), res == CURLE_OK ? status : 0, err);
        free_xfer(x);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(s->a->multi, s->fd, flags, &running);
    check_done(s->a);
}

static void on_timer(uv_timer_t *t)
{
    core_http_async_t *a = t->data;
    int running;

    curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(a);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    core_http_async_t *a = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&a->timer);
    else
        uv_timer_start(&a->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void free_handle_data(uv_handle_t *h)
{
    free(h->data);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    core_http_async_t *a = userp;
    sock_t *s = socketp;
    int events = 0;

    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, free_handle_data);
            curl_multi_assign(a->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = core_xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->a = a;
        if (uv_poll_init_socket(a->loop, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(a->multi, fd, s);
    }
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    core_http_xfer_t *x = arg;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (x->o.on_data && status >= 200 && status < 300 && n > 0 &&
        x->o.on_data(x->o.arg, data, n) != 0)
        return 0; /* CURLE_WRITE_ERROR */
    return n;
}

int core_http_async_new(uv_loop_t *loop, core_http_async_t **out)
{
    pthread_once(&g_once, global_init);
    core_http_async_t *a = core_xcalloc(1, sizeof(*a));
    a->loop = loop;
    a->multi = curl_multi_init();
    if (!a->multi) {
        free(a);
        return -ENOMEM;
    }
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
    *out = a;
    return 0;
}

void core_http_async_close(core_http_async_t *a)
{
    if (!a)
        return;
    while (a->xfers) {
        core_http_xfer_t *x = a->xfers;
        unlink_xfer(x);
        free_xfer(x);
    }
    curl_multi_cleanup(a->multi);
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, free_handle_data);
}

size_t core_http_async_in_flight(const core_http_async_t *a)
{
    return a->n_xfers;
}

int core_http_async_start(core_http_async_t *a, const core_http_xfer_opts_t *o,
                          core_http_xfer_t **out)
{
    core_http_xfer_t *x = core_xcalloc(1, sizeof(*x));

    x->a = a;
    x->o = *o;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return -ENOMEM;
    }
    curl_easy_setopt(x->easy, CURLOPT_URL, o->url);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000L);
    if (o->timeout_ms > 0)
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Loopback and namespace hosts only: never a proxy from the environment. */
    curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
    if (strncmp(o->url, "https://", 8) == 0) {
        /* As core_http_call: only our SSH pool agents speak TLS, so trust our CA
         * alone and check the name. */
        char *ca = core_tls_ca_path();
        curl_easy_setopt(x->easy, CURLOPT_CAINFO, ca);
        curl_easy_setopt(x->easy, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 2L);
        free(ca); /* libcurl copies string options */
    }
    curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
    for (size_t i = 0; i < o->n_headers; i++)
        x->hdrs = curl_slist_append(x->hdrs, o->headers[i]);
    if (o->bearer) {
        char *h = core_xasprintf("Authorization: Bearer %s", o->bearer);
        x->hdrs = curl_slist_append(x->hdrs, h);
        free(h);
    }
    if (o->body) {
        x->body = core_xstrdup(o->body);
        x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
        curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
    }
    if (x->hdrs)
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    if (curl_multi_add_handle(a->multi, x->easy) != CURLM_OK) {
        curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->hdrs);
        free(x->body);
        free(x);
        return -EIO;
    }
    a->n_xfers++;
    x->next = a->xfers;
    if (a->xfers)
        a->xfers->prev = x;
    a->xfers = x;
    if (out)
        *out = x;
    return 0;
}

void core_http_xfer_cancel(core_http_xfer_t *x)
{
    if (!x)
        return;
    unlink_xfer(x);
    free_xfer(x);
}
