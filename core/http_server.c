/*
 * Control-plane HTTP/1.1 server: JSON APIs of the controller, the local
 * cloud, the agent and the LB's admin port. One request at a time per
 * connection; while a handler holds a request the connection keeps reading
 * (so a peer that goes away is noticed) but parses nothing until the reply
 * has been written.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "core/http.h"
#include "core/log.h"
#include "core/mem.h"

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_MAX_HEAD (16u << 10)
#define DEFAULT_IDLE_MS 60000u
#define READ_CHUNK 65536
/* Bytes a peer may send ahead while its previous request is handled. */
#define MAX_LEFTOVER (256u << 10)

enum conn_state {
    CONN_READING = 0, /* parsing a request */
    CONN_HANDLING,    /* handler holds the request */
    CONN_STREAMING,   /* chunked response in progress */
    CONN_FLUSHING,    /* reply queued; next request once written */
};

struct core_http_server {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    core_http_handler_cb cb;
    void *ud;
    size_t max_body;
    size_t max_head;
    unsigned idle_ms;
    char *token;
    const char *const *public_paths;
    int port;
    SSL_CTX *tls; /* NULL: plain HTTP */
    core_http_conn_t *conns; /* doubly linked */
};

struct core_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    llhttp_t parser;
    core_http_server_t *srv;
    core_http_conn_t *prev, *next;
    enum conn_state state;
    int refs;          /* socket + handler */
    int closing;       /* uv_close started */
    int keep_alive;
    int handles_open;  /* tcp + timer */
    /* Request being parsed. */
    char method[24];
    char *url;
    size_t url_len;
    char hdr_name[32];
    size_t hdr_name_len;
    int in_auth;       /* current header value is Authorization */
    int hdr_value_seen;
    char *auth;
    size_t auth_len;
    char *body;
    size_t body_len;
    size_t head_bytes;
    int error_status;  /* set by callbacks to reply with instead of 400 */
    int complete;
    char peer_ip[64];
    /* Bytes received while the previous request was being handled. */
    char *leftover;
    size_t leftover_len;
    void (*on_close)(core_http_conn_t *c, void *arg);
    void *on_close_arg;
    /* TLS over memory BIOs: ciphertext from the socket goes into rbio, what
     * SSL produces is taken from wbio and written with uv_write. */
    SSL *ssl;
    BIO *rbio, *wbio;
};

typedef struct {
    uv_write_t req;
    core_http_conn_t *conn;
    char *buf;
    int last; /* completes the exchange */
} write_req_t;

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    }
    return "Unknown";
}

static void conn_unref(core_http_conn_t *c)
{
    if (--c->refs > 0)
        return;
    free(c->url);
    free(c->auth);
    free(c->body);
    free(c->leftover);
    SSL_free(c->ssl); /* frees the BIOs too */
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    core_http_conn_t *c = h->data;
    if (--c->handles_open == 0)
        conn_unref(c); /* the socket's reference */
}

static void unlink_conn(core_http_conn_t *c)
{
    core_http_server_t *s = c->srv;
    if (s == NULL)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->srv = NULL;
}

/* Idempotent (h2o do_close): may be called from several paths. */
static void conn_close(core_http_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    unlink_conn(c);
    if (c->on_close) {
        void (*cb)(core_http_conn_t *, void *) = c->on_close;
        c->on_close = NULL;
        cb(c, c->on_close_arg);
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void reset_request(core_http_conn_t *c)
{
    c->method[0] = '\0';
    free(c->url);
    c->url = NULL;
    c->url_len = 0;
    c->hdr_name_len = 0;
    c->in_auth = 0;
    c->hdr_value_seen = 0;
    free(c->auth);
    c->auth = NULL;
    c->auth_len = 0;
    free(c->body);
    c->body = NULL;
    c->body_len = 0;
    c->head_bytes = 0;
    c->error_status = 0;
    c->complete = 0;
}

static int append(char **buf, size_t *len, const char *at, size_t n)
{
    *buf = core_xrealloc(*buf, *len + n + 1);
    memcpy(*buf + *len, at, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int head_grow(core_http_conn_t *c, size_t n)
{
    c->head_bytes += n;
    if (c->srv && c->head_bytes > c->srv->max_head) {
        c->error_status = 431;
        return -1;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    core_http_conn_t *c = p->data;
    if (head_grow(c, n))
        return -1;
    return append(&c->url, &c->url_len, at, n);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    core_http_conn_t *c = p->data;
    if (head_grow(c, n))
        return -1;
    if (c->hdr_value_seen) {
        c->hdr_name_len = 0;
        c->hdr_value_seen = 0;
    }
    size_t room = sizeof(c->hdr_name) - 1 - c->hdr_name_len;
    size_t take = n < room ? n : room;
    memcpy(c->hdr_name + c->hdr_name_len, at, take);
    c->hdr_name_len += take;
    c->hdr_name[c->hdr_name_len] = '\0';
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    core_http_conn_t *c = p->data;
    if (head_grow(c, n))
        return -1;
    if (!c->hdr_value_seen) {
        c->hdr_value_seen = 1;
        c->in_auth = strcasecmp(c->hdr_name, "authorization") == 0;
        if (c->in_auth) {
            free(c->auth);
            c->auth = NULL;
            c->auth_len = 0;
        }
    }
    if (c->in_auth)
        append(&c->auth, &c->auth_len, at, n);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    core_http_conn_t *c = p->data;
    snprintf(c->method, sizeof(c->method), "%s", llhttp_method_name(p->method));
    if ((p->flags & F_CONTENT_LENGTH) && c->srv && p->content_length > c->srv->max_body) {
        c->error_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    core_http_conn_t *c = p->data;
    if (c->srv == NULL || c->body_len + n > c->srv->max_body) {
        c->error_status = 413;
        return -1;
    }
    return append(&c->body, &c->body_len, at, n);
}

static int on_message_complete(llhttp_t *p)
{
    core_http_conn_t *c = p->data;
    c->complete = 1;
    c->keep_alive = llhttp_should_keep_alive(p);
    return HPE_PAUSED;
}

static const llhttp_settings_t g_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void conn_next(core_http_conn_t *c);

static void after_write(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    core_http_conn_t *c = wr->conn;
    int last = wr->last;
    free(wr->buf);
    free(wr);
    if (last && !c->closing) {
        if (status < 0 || !c->keep_alive) {
            conn_close(c);
        } else {
            /* Ready for the next request: parse what arrived meanwhile. */
            conn_next(c);
        }
    }
    conn_unref(c); /* the write's reference */
}

static void raw_write(core_http_conn_t *c, char *buf, size_t len, int last)
{
    if (c->closing) {
        free(buf);
        return;
    }
    write_req_t *wr = core_xcalloc(1, sizeof(*wr));
    wr->conn = c;
    wr->buf = buf;
    wr->last = last;
    c->refs++;
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, after_write) < 0) {
        free(buf);
        free(wr);
        c->refs--;
        conn_close(c);
    }
}

/* Sends what SSL produced (handshake records, encrypted data). */
static void tls_flush(core_http_conn_t *c, int last)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0 && !last)
        return;
    char *buf = core_xmalloc(n ? n : 1);
    int got = n ? BIO_read(c->wbio, buf, (int)n) : 0;
    raw_write(c, buf, got > 0 ? (size_t)got : 0, last);
}

static void queue_write(core_http_conn_t *c, char *buf, size_t len, int last)
{
    if (c->ssl == NULL || c->closing) {
        raw_write(c, buf, len, last);
        return;
    }
    /* Memory BIOs grow as needed: SSL_write takes everything at once. */
    if (len > 0 && SSL_write(c->ssl, buf, (int)len) <= 0) {
        free(buf);
        ERR_clear_error();
        conn_close(c);
        return;
    }
    free(buf);
    tls_flush(c, last);
}

static void send_simple(core_http_conn_t *c, int status, const char *ctype, const char *body,
                        size_t len, int close_after)
{
    if (close_after)
        c->keep_alive = 0;
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                      status, reason(status), ctype ? ctype : "text/plain", len,
                      c->keep_alive ? "" : "Connection: close\r\n");
    char *buf = core_xmalloc((size_t)hl + len);
    memcpy(buf, head, (size_t)hl);
    if (len)
        memcpy(buf + hl, body, len);
    c->state = CONN_FLUSHING;
    queue_write(c, buf, (size_t)hl + len, 1);
}

static void send_error_and_close(core_http_conn_t *c, int status, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", msg);
    send_simple(c, status, "application/json", body, (size_t)n, 1);
}

static int token_ok(const core_http_server_t *s, const char *auth)
{
    if (s->token == NULL)
        return 1;
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
        return 0;
    const char *t = auth + 7;
    size_t a = strlen(t), b = strlen(s->token);
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < a && i < b; i++)
        diff |= (unsigned char)(t[i] ^ s->token[i]);
    return diff == 0;
}

static int is_public(const core_http_server_t *s, const core_http_conn_t *c)
{
    if (!s->public_paths || strcmp(c->method, "GET") != 0)
        return 0;
    size_t n = c->url ? strcspn(c->url, "?") : 0;
    for (const char *const *p = s->public_paths; *p; p++)
        if (strlen(*p) == n && strncmp(*p, c->url, n) == 0)
            return 1;
    return 0;
}

static void dispatch(core_http_conn_t *c)
{
    core_http_server_t *s = c->srv;
    uv_timer_stop(&c->timer);
    if (!token_ok(s, c->auth) && !is_public(s, c)) {
        static const char body[] = "{\"error\":\"missing or bad token\"}";
        send_simple(c, 401, "application/json", body, sizeof(body) - 1, 0);
        return;
    }
    char *q = c->url ? strchr(c->url, '?') : NULL;
    if (q)
        *q++ = '\0';
    core_http_req_t req = {
        .method = c->method,
        .path = c->url ? c->url : "/",
        .query = q ? q : "",
        .body = c->body ? c->body : "",
        .body_len = c->body_len,
        .authorization = c->auth,
        .peer_ip = c->peer_ip,
    };
    c->state = CONN_HANDLING;
    c->refs++; /* the handler's reference */
    s->cb(c, &req, s->ud);
}

static void on_idle_timeout(uv_timer_t *t)
{
    core_http_conn_t *c = t->data;
    if (c->state != CONN_READING)
        return;
    if (c->head_bytes > 0 || c->body_len > 0)
        send_error_and_close(c, 408, "request timeout");
    else
        conn_close(c);
}

/* Feeds <data> to the parser; dispatches at most one request. */
static void parse(core_http_conn_t *c, const char *data, size_t len)
{
    enum llhttp_errno e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_PAUSED) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (used < len) {
            size_t rest = len - used;
            char *nb = core_xmalloc(rest);
            memcpy(nb, data + used, rest);
            free(c->leftover);
            c->leftover = nb;
            c->leftover_len = rest;
        }
        dispatch(c);
        return;
    }
    if (e != HPE_OK) {
        int status = c->error_status ? c->error_status : 400;
        send_error_and_close(c, status, status == 431 ? "request head too large"
                                        : status == 413 ? "request body too large"
                                                        : "malformed request");
        return;
    }
    if (c->srv)
        uv_timer_start(&c->timer, on_idle_timeout, c->srv->idle_ms, 0);
}

static void conn_next(core_http_conn_t *c)
{
    c->state = CONN_READING;
    reset_request(c);
    llhttp_resume(&c->parser);
    if (c->srv)
        uv_timer_start(&c->timer, on_idle_timeout, c->srv->idle_ms, 0);
    if (c->leftover_len) {
        char *buf = c->leftover;
        size_t len = c->leftover_len;
        c->leftover = NULL;
        c->leftover_len = 0;
        parse(c, buf, len);
        free(buf);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    buf->base = core_xmalloc(READ_CHUNK);
    buf->len = READ_CHUNK;
}

/* Request bytes (decrypted when TLS), as they arrive. */
static void on_plain(core_http_conn_t *c, const char *data, size_t n)
{
    if (c->state != CONN_READING) {
        /* Pipelined bytes: keep them for after the reply, bounded. */
        if (c->leftover_len + n > MAX_LEFTOVER) {
            conn_close(c);
            return;
        }
        c->leftover = core_xrealloc(c->leftover, c->leftover_len + n);
        memcpy(c->leftover + c->leftover_len, data, n);
        c->leftover_len += n;
        return;
    }
    parse(c, data, n);
}

static void tls_read(core_http_conn_t *c, const char *data, size_t n)
{
    if (BIO_write(c->rbio, data, (int)n) != (int)n) {
        conn_close(c);
        return;
    }
    char plain[16384];
    c->refs++; /* a handler may close <c> while we decrypt */
    while (!c->closing) {
        int r = SSL_read(c->ssl, plain, sizeof(plain));
        if (r > 0) {
            on_plain(c, plain, (size_t)r);
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        ERR_clear_error();
        tls_flush(c, 0); /* handshake replies, session tickets */
        if (e != SSL_ERROR_WANT_READ)
            conn_close(c); /* bad handshake, close_notify, garbage */
        break;
    }
    conn_unref(c);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    core_http_conn_t *c = st->data;
    if (n < 0) {
        free(buf->base);
        conn_close(c);
        return;
    }
    if (n > 0 && c->ssl)
        tls_read(c, buf->base, (size_t)n);
    else if (n > 0)
        on_plain(c, buf->base, (size_t)n);
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    core_http_server_t *s = server->data;
    if (status < 0)
        return;
    core_http_conn_t *c = core_xcalloc(1, sizeof(*c));
    c->srv = s;
    c->refs = 1;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->handles_open = 2;
    c->tcp.data = c;
    c->timer.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof(c->peer_ip));
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->tls) {
        c->ssl = SSL_new(s->tls);
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        if (!c->ssl || !c->rbio || !c->wbio) {
            BIO_free(c->rbio);
            BIO_free(c->wbio);
            c->rbio = c->wbio = NULL;
            conn_close(c);
            return;
        }
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_accept_state(c->ssl);
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
    c->parser.data = c;
    c->state = CONN_READING;
    uv_timer_start(&c->timer, on_idle_timeout, s->idle_ms, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int tls_ctx(core_http_server_t *s, const core_http_server_opts_t *o)
{
    s->tls = SSL_CTX_new(TLS_server_method());
    if (!s->tls)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(s->tls, TLS1_2_VERSION);
    SSL_CTX_set_mode(s->tls, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(s->tls, o->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->tls, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->tls) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        ERR_clear_error();
        CORE_ERROR("TLS certificate %s / key %s: %s", o->tls_cert, o->tls_key, buf);
        return -EINVAL;
    }
    return 0;
}

int core_http_server_start(uv_loop_t *loop, const char *host, int port,
                           const core_http_server_opts_t *opts, core_http_handler_cb cb, void *ud,
                           core_http_server_t **out)
{
    struct sockaddr_storage addr;
    int r;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0)
        return -EINVAL;
    core_http_server_t *s = core_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cb = cb;
    s->ud = ud;
    s->max_body = opts && opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    s->max_head = opts && opts->max_head ? opts->max_head : DEFAULT_MAX_HEAD;
    s->idle_ms = opts && opts->idle_timeout_ms ? opts->idle_timeout_ms : DEFAULT_IDLE_MS;
    s->token = opts && opts->token ? core_xstrdup(opts->token) : NULL;
    s->public_paths = opts ? opts->public_paths : NULL; /* static storage */
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    if (opts && opts->tls_cert && opts->tls_key && (r = tls_ctx(s, opts)) < 0)
        goto fail;
    if ((r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&addr, 0)) < 0)
        goto fail;
    if ((r = uv_listen((uv_stream_t *)&s->tcp, 511, on_connection)) < 0)
        goto fail;
    struct sockaddr_storage bound;
    int bl = sizeof(bound);
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &bl);
    s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                               : ((struct sockaddr_in6 *)&bound)->sin6_port);
    *out = s;
    return 0;
fail:
    core_http_server_close(s);
    return r;
}

int core_http_server_port(const core_http_server_t *s)
{
    return s->port;
}

static void on_server_closed(uv_handle_t *h)
{
    core_http_server_t *s = h->data;
    SSL_CTX_free(s->tls);
    free(s->token);
    free(s);
}

void core_http_server_close(core_http_server_t *s)
{
    while (s->conns)
        conn_close(s->conns); /* unlinks itself */
    uv_close((uv_handle_t *)&s->tcp, on_server_closed);
}

void core_http_respond(core_http_conn_t *c, int status, const char *content_type, const char *body,
                       size_t len)
{
    if (!c->closing && c->state == CONN_HANDLING)
        send_simple(c, status, content_type, body, len, 0);
    conn_unref(c); /* the handler's reference */
}

void core_http_respond_json(core_http_conn_t *c, int status, cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (text == NULL)
        text = core_xstrdup("{}");
    core_http_respond(c, status, "application/json", text, strlen(text));
    cJSON_free(text);
}

void core_http_respond_error(core_http_conn_t *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", msg);
    core_http_respond_json(c, status, doc);
}

int core_http_stream_begin(core_http_conn_t *c, int status, const char *content_type)
{
    if (c->closing)
        return -EPIPE;
    if (c->state != CONN_HANDLING)
        return -EINVAL;
    char *head = core_xasprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                                "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n",
                                status, reason(status), content_type ? content_type : "text/plain");
    c->state = CONN_STREAMING;
    queue_write(c, head, strlen(head), 0);
    return c->closing ? -EPIPE : 0;
}

int core_http_stream_write(core_http_conn_t *c, const char *data, size_t len)
{
    if (c->closing)
        return -EPIPE;
    if (c->state != CONN_STREAMING)
        return -EINVAL;
    if (len == 0)
        return 0;
    char pre[24];
    int pl = snprintf(pre, sizeof(pre), "%zx\r\n", len);
    char *buf = core_xmalloc((size_t)pl + len + 2);
    memcpy(buf, pre, (size_t)pl);
    memcpy(buf + pl, data, len);
    memcpy(buf + pl + len, "\r\n", 2);
    queue_write(c, buf, (size_t)pl + len + 2, 0);
    return c->closing ? -EPIPE : 0;
}

void core_http_stream_end(core_http_conn_t *c)
{
    if (!c->closing && c->state == CONN_STREAMING) {
        c->state = CONN_FLUSHING;
        queue_write(c, core_xstrdup("0\r\n\r\n"), 5, 1);
    } else if (!c->closing && c->state == CONN_HANDLING) {
        send_simple(c, 500, "text/plain", "", 0, 1);
    }
    conn_unref(c); /* the handler's reference */
}

size_t core_http_conn_write_queue(const core_http_conn_t *c)
{
    if (c->closing)
        return 0;
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

int core_http_conn_is_closed(const core_http_conn_t *c)
{
    return c->closing;
}

void core_http_conn_on_close(core_http_conn_t *c, void (*cb)(core_http_conn_t *c, void *arg),
                             void *arg)
{
    c->on_close = cb;
    c->on_close_arg = arg;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int core_http_query_get(const char *query, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        if ((size_t)(end - p) >= klen && strncmp(p, key, klen) == 0 &&
            (p[klen] == '=' || p + klen == end)) {
            const char *v = p[klen] == '=' ? p + klen + 1 : end;
            size_t o = 0;
            while (v < end) {
                int ch = *v;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    ch = hexval(v[1]) * 16 + hexval(v[2]);
                    v += 2;
                }
                if (o + 1 >= outlen)
                    return -ENOSPC;
                out[o++] = (char)ch;
                v++;
            }
            out[o] = '\0';
            return 0;
        }
        p = amp ? amp + 1 : NULL;
    }
    return -ENOENT;
}

cJSON *core_http_body_json(const core_http_req_t *req)
{
    cJSON *doc = cJSON_ParseWithLength(req->body, req->body_len);
    if (doc && !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}
