#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/mem.h"
#include "lb_conn.h"

/*
 * TLS termination over memory BIOs: ciphertext read from the socket is fed
 * into the read BIO, SSL_read decrypts into the connection's pooled read
 * block (so the HTTP layer sees plaintext in place as without TLS), and
 * every record SSL_write produces is flushed from the write BIO into pooled
 * blocks written with uv_write. The upstream side stays plain HTTP.
 */
typedef struct lb_tls_conn {
    SSL *ssl;
    BIO *rbio; /* network -> SSL */
    BIO *wbio; /* SSL -> network */
    int handshake_done;
    int pumping;
    char raw[16384 + 512];
} lb_tls_conn_t;

static char *ssl_err_string(void)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    return core_xstrdup(buf);
}

int lb_tls_ctx_new(const char *cert, const char *key, void **out, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        *err = ssl_err_string();
        return -EINVAL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        char *e = ssl_err_string();
        *err = core_xasprintf("cannot load certificate %s: %s", cert, e);
        free(e);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char *e = ssl_err_string();
        *err = core_xasprintf("cannot load private key %s: %s", key, e);
        free(e);
        goto fail;
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -EINVAL;
}

void lb_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* Moves whatever SSL produced to the socket. */
static int flush_wbio(lb_conn_t *c)
{
    lb_tls_conn_t *t = c->tls;
    while (BIO_ctrl_pending(t->wbio) > 0) {
        lb_buf_t *b = lb_pool_get(&c->w->pool);
        int n = BIO_read(t->wbio, b->data, LB_BLOCK_SIZE);
        if (n <= 0) {
            lb_buf_unref(b);
            break;
        }
        lb_seg_t seg = {b, b->data, (uint32_t)n};
        int rc = lb_conn_write_raw(c, &seg, 1);
        lb_buf_unref(b);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int lb_tls_write(lb_conn_t *c, const lb_seg_t *segs, size_t n)
{
    lb_tls_conn_t *t = c->tls;
    /* Small pieces (a rewritten head) are gathered so that they go out as
     * one record instead of one record each. */
    char gather[4096];
    size_t gl = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && segs[i].len == 0)
            continue;
        if (i < n && gl + segs[i].len <= sizeof(gather)) {
            memcpy(gather + gl, segs[i].base, segs[i].len);
            gl += segs[i].len;
            continue;
        }
        if (gl > 0 && SSL_write(t->ssl, gather, (int)gl) <= 0)
            return -EIO;
        gl = 0;
        if (i < n && SSL_write(t->ssl, segs[i].base, (int)segs[i].len) <= 0)
            return -EIO;
    }
    int rc = flush_wbio(c);
    return rc < 0 ? rc : 1;
}

void lb_tls_shutdown(lb_conn_t *c)
{
    lb_tls_conn_t *t = c->tls;
    if (t->handshake_done) {
        SSL_shutdown(t->ssl);
        flush_wbio(c);
    }
}

void lb_tls_pump(lb_conn_t *c)
{
    lb_tls_conn_t *t = c->tls;
    if (!t || t->pumping)
        return;
    t->pumping = 1;
    while (c->state != LB_CS_CLOSING) {
        if (!t->handshake_done) {
            int r = SSL_do_handshake(t->ssl);
            if (flush_wbio(c) < 0) {
                lb_conn_close(c);
                break;
            }
            if (r == 1) {
                t->handshake_done = 1;
                continue;
            }
            int e = SSL_get_error(t->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                CORE_DEBUG("TLS handshake failed from %s", c->client_ip);
                ERR_clear_error();
                lb_conn_close(c);
            }
            break;
        }
        if (!c->reading && c->state != LB_CS_LINGER)
            break; /* backpressure: resumed by lb_tls_pump when reading restarts */
        uv_buf_t buf;
        c->on_alloc((uv_handle_t *)&c->tcp, LB_BLOCK_SIZE, &buf);
        int r = SSL_read(t->ssl, buf.base, (int)buf.len);
        if (r > 0) {
            lb_conn_on_data(c, (size_t)r);
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        flush_wbio(c);
        if (e == SSL_ERROR_WANT_READ)
            break;
        ERR_clear_error();
        lb_conn_on_eof(c, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO);
        break;
    }
    t->pumping = 0;
}

static void on_tls_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf)
{
    lb_conn_t *c = h->data;
    lb_tls_conn_t *t = c->tls;
    *buf = uv_buf_init(t->raw, sizeof(t->raw));
}

static void on_tls_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    lb_conn_t *c = s->data;
    lb_tls_conn_t *t = c->tls;
    if (nread < 0) {
        lb_conn_on_eof(c, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    if (c->state == LB_CS_LINGER)
        return;
    BIO_write(t->rbio, buf->base, (int)nread);
    lb_tls_pump(c);
}

int lb_tls_conn_init(lb_conn_t *c, void *ssl_ctx)
{
    lb_tls_conn_t *t = core_xcalloc(1, sizeof(*t));
    t->ssl = SSL_new(ssl_ctx);
    if (!t->ssl) {
        free(t);
        return -ENOMEM;
    }
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    c->tls = t;
    /* The HTTP layer keeps its own allocator for plaintext (c->on_alloc is
     * called by the pump); the socket reads ciphertext into t->raw. */
    c->on_read = on_tls_read;
    c->tls_alloc = on_tls_alloc;
    return 0;
}

void lb_tls_conn_free(lb_conn_t *c)
{
    lb_tls_conn_t *t = c->tls;
    if (!t)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
    c->tls = NULL;
}
