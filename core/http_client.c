/*
 * Blocking HTTP client on libcurl's easy interface, for the CLI and for
 * provider/agent calls that controllers run off their event loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/err.h"
#include "core/http.h"
#include "core/mem.h"
#include "core/tls.h"

#define MAX_RESPONSE (64u << 20)

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

/* curl_global_init is not thread-safe; run it exactly once. */
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    char *buf;
    size_t len;
    int too_big;
} sink_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    sink_t *s = arg;
    size_t n = size * nmemb;
    if (s->len + n > MAX_RESPONSE) {
        s->too_big = 1;
        return 0;
    }
    s->buf = core_xrealloc(s->buf, s->len + n + 1);
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static int map_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    case CURLE_URL_MALFORMAT:
        return -EINVAL;
    case CURLE_WRITE_ERROR:
        return -EFBIG;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return -ECONNRESET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
        return -EPROTO; /* not the agent we set up, or no CA here */
    default:
        return -EIO;
    }
}

static CURL *prepare(const char *method, const char *url, const char *bearer, const char *body,
                     long timeout_ms, struct curl_slist **hdrs)
{
    pthread_once(&g_curl_once, curl_init_once);
    CURL *h = curl_easy_init();
    if (h == NULL)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 && timeout_ms < 5000 ? timeout_ms : 5000L);
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    /* Loopback and namespace hosts only: never a proxy from the environment. */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (strncmp(url, "https://", 8) == 0) {
        /* Only our pool agents speak TLS: trust our CA alone, check the name. */
        char *ca = core_tls_ca_path();
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        free(ca); /* libcurl copies string options */
    }
    *hdrs = NULL;
    if (bearer) {
        char *a = core_xasprintf("Authorization: Bearer %s", bearer);
        *hdrs = curl_slist_append(*hdrs, a);
        free(a);
    }
    if (body) {
        *hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    *hdrs = curl_slist_append(*hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    return h;
}

int core_http_call(const char *method, const char *url, const char *bearer, const char *body,
                   long timeout_ms, core_http_resp_t *out)
{
    struct curl_slist *hdrs = NULL;
    sink_t sink = {0};
    memset(out, 0, sizeof(*out));
    CURL *h = prepare(method, url, bearer, body, timeout_ms, &hdrs);
    if (h == NULL)
        return -ENOMEM;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(h);
    int r = map_curl(rc);
    if (r == 0 || (rc == CURLE_WRITE_ERROR && sink.too_big)) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        if (sink.too_big)
            r = -EFBIG;
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (r < 0) {
        free(sink.buf);
        return r;
    }
    out->body = sink.buf ? sink.buf : core_xstrdup("");
    out->len = sink.len;
    return 0;
}

void core_http_resp_free(core_http_resp_t *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

int core_http_json(const char *method, const char *url, const char *bearer, const cJSON *req,
                   long timeout_ms, long *status, cJSON **resp)
{
    char *body = req ? cJSON_PrintUnformatted(req) : NULL;
    core_http_resp_t r;
    int rc = core_http_call(method, url, bearer, body, timeout_ms, &r);
    cJSON_free(body);
    if (resp)
        *resp = NULL;
    if (rc < 0)
        return rc;
    if (status)
        *status = r.status;
    if (resp)
        *resp = cJSON_ParseWithLength(r.body, r.len);
    core_http_resp_free(&r);
    return r.status >= 200 && r.status < 300 ? 0 : CORE_EHTTP;
}

typedef struct {
    int (*cb)(const char *data, size_t len, void *arg);
    void *arg;
    int stopped;
} stream_t;

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *arg)
{
    stream_t *s = arg;
    size_t n = size * nmemb;
    if (s->cb(ptr, n, s->arg) != 0) {
        s->stopped = 1;
        return 0;
    }
    return n;
}

/* Called by libcurl about once a second even while no byte arrives, so a
 * consumer can stop an idle follow stream (e.g. to a vanished host). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    stream_t *s = arg;
    if (s->cb("", 0, s->arg) != 0) {
        s->stopped = 1;
        return 1;
    }
    return 0;
}

int core_http_stream_get(const char *url, const char *bearer, long timeout_ms,
                         int (*cb)(const char *data, size_t len, void *arg), void *arg,
                         long *status)
{
    struct curl_slist *hdrs = NULL;
    stream_t st = {cb, arg, 0};
    CURL *h = prepare("GET", url, bearer, NULL, timeout_ms, &hdrs);
    if (h == NULL)
        return -ENOMEM;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &st);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (status)
        *status = code;
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (st.stopped)
        return 0;
    int r = map_curl(rc);
    if (r < 0)
        return r;
    return code >= 200 && code < 300 ? 0 : CORE_EHTTP;
}
