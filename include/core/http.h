#ifndef CORE_HTTP_H
#define CORE_HTTP_H

#include <stddef.h>
#include <uv.h>
#include <cjson/cJSON.h>

/*
 * Control-plane HTTP/1.1 on libuv + llhttp: the JSON APIs of the controller,
 * the local cloud, the agent and the LB's admin port. Not the data path
 * (sky-lb has its own zero-copy proxy). One request at a time per
 * connection, keep-alive, bodies bounded by opts.max_body.
 */
typedef struct core_http_server core_http_server_t;
typedef struct core_http_conn core_http_conn_t;

typedef struct core_http_req {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* raw path without the query, NUL-terminated */
    const char *query;         /* raw query without '?', "" when absent */
    const char *body;          /* NUL-terminated, body_len bytes ("" when none) */
    size_t body_len;
    const char *authorization; /* Authorization header value or NULL */
    const char *peer_ip;       /* textual peer address */
} core_http_req_t;

/*
 * Called on the loop thread once per complete request. The handler must end
 * the exchange exactly once, now or later from another callback on the same
 * loop: core_http_respond*() or core_http_stream_begin() ... _end(). The
 * request's strings are valid only during the call; copy what a later reply
 * needs.
 */
typedef void (*core_http_handler_cb)(core_http_conn_t *conn, const core_http_req_t *req,
                                     void *ud);

typedef struct core_http_server_opts {
    size_t max_body;       /* default 1 MiB; larger -> 413 */
    size_t max_head;       /* default 16 KiB; larger -> 431 */
    const char *token;     /* if set, "Authorization: Bearer <token>" is required (401) */
    /* Exact paths that GET may fetch without the token (NULL-terminated; may be
     * NULL): a web page's static files, which then call the API with the token. */
    const char *const *public_paths;
    unsigned idle_timeout_ms; /* default 60 s for idle keep-alive connections */
    /* Both set: TLS (1.2+) with this PEM certificate chain and key (the SSH
     * pool agents, so that their token never crosses a network in clear). */
    const char *tls_cert;
    const char *tls_key;
} core_http_server_opts_t;

/* Binds host:port (port 0 picks one; see core_http_server_port). -EINVAL
 * also when the TLS certificate or key cannot be used. */
int core_http_server_start(uv_loop_t *loop, const char *host, int port,
                           const core_http_server_opts_t *opts, core_http_handler_cb cb, void *ud,
                           core_http_server_t **out);
int core_http_server_port(const core_http_server_t *s);
/* Stops listening and closes every connection; frees <s> once all handles closed. */
void core_http_server_close(core_http_server_t *s);

/* Complete responses. <body> is copied. Content-Length framing. */
void core_http_respond(core_http_conn_t *c, int status, const char *content_type, const char *body,
                       size_t len);
/* Takes ownership of <doc> (may be NULL for an empty object). */
void core_http_respond_json(core_http_conn_t *c, int status, cJSON *doc);
/* {"error": "<formatted message>"} */
void core_http_respond_error(core_http_conn_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Streaming (chunked) responses, e.g. log follow. stream_write returns
 * -EPIPE once the peer has gone; the handler must still call stream_end,
 * which releases the exchange. write_queue tells how many bytes wait in the
 * kernel-bound queue so producers can pause.
 */
int core_http_stream_begin(core_http_conn_t *c, int status, const char *content_type);
int core_http_stream_write(core_http_conn_t *c, const char *data, size_t len);
void core_http_stream_end(core_http_conn_t *c);
size_t core_http_conn_write_queue(const core_http_conn_t *c);
int core_http_conn_is_closed(const core_http_conn_t *c);
/* Called once if the peer goes away while the handler still holds <c>. */
void core_http_conn_on_close(core_http_conn_t *c, void (*cb)(core_http_conn_t *c, void *arg),
                             void *arg);

/* URL-decoded value of <key> in a query string; -ENOENT if absent, -ENOSPC if too long. */
int core_http_query_get(const char *query, const char *key, char *out, size_t outlen);
/* Parses a request body as a JSON object; NULL on malformed JSON or non-object. */
cJSON *core_http_body_json(const core_http_req_t *req);

/*
 * Blocking client (libcurl easy), for the CLI and for calls run off the event
 * loop (uv_queue_work). Response bodies are capped at 64 MiB. https:// URLs
 * (SSH pool agents) trust only the product's CA, core_tls_ca_path(), never
 * the system's store, and check that the certificate names the URL's host.
 */
typedef struct core_http_resp {
    long status;
    char *body; /* NUL-terminated, owned; free with core_http_resp_free */
    size_t len;
} core_http_resp_t;

/* <bearer> and <body> may be NULL. Returns 0 when any HTTP status arrived,
 * or a negative errno (-ECONNREFUSED, -ETIMEDOUT, -EIO) when none did. */
int core_http_call(const char *method, const char *url, const char *bearer, const char *body,
                   long timeout_ms, core_http_resp_t *out);
void core_http_resp_free(core_http_resp_t *r);
/*
 * JSON round trip: sends <req> (may be NULL), parses the reply into *resp
 * (if resp != NULL; NULL when the reply is not JSON). Returns 0 on 2xx,
 * CORE_EHTTP on another status (with *status set), or a transport errno.
 */
int core_http_json(const char *method, const char *url, const char *bearer, const cJSON *req,
                   long timeout_ms, long *status, cJSON **resp);
/* Streams a GET's body to <cb> until the server ends it or <cb> returns non-zero.
 * While the stream is idle <cb> is also called with ("", 0) about once a
 * second, so that it can give up on a follow whose peer vanished.
 * timeout_ms 0 means no overall timeout (follow mode). */
int core_http_stream_get(const char *url, const char *bearer, long timeout_ms,
                         int (*cb)(const char *data, size_t len, void *arg), void *arg,
                         long *status);

#endif
