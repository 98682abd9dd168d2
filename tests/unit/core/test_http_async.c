/*
 * core/http_async.c: transfers driven by the loop the server also runs on (one
 * thread): a chunked stream arrives whole, a 404's body is dropped, a refused
 * connection says so, a cancelled transfer never calls back, closing the
 * client with transfers in flight leaves nothing behind, and https (an SSH
 * pool agent) trusts the product's CA and checks the address.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "core/http_async.h"
#include "core/mem.h"
#include "core/tls.h"
#include "core/util.h"

typedef struct fx {
    uv_loop_t loop;
    core_http_server_t *srv;
    core_http_async_t *cli;
    int port;
    uv_timer_t stream_timer;
    core_http_conn_t *streaming;
    int stream_left;
    /* the transfer under test */
    char got[4096];
    size_t n_got;
    int done, rc;
    long status;
    char err[256];
    size_t stop_after; /* on_data stops the transfer after this many bytes */
    uv_timer_t cancel_timer;
    core_http_xfer_t *xfer;
} fx_t;

static void on_stream_tick(uv_timer_t *t)
{
    fx_t *f = t->data;
    char line[32];
    int n = snprintf(line, sizeof(line), "line %d\n", f->stream_left);
    if (core_http_stream_write(f->streaming, line, (size_t)n) < 0 || --f->stream_left == 0) {
        uv_timer_stop(t);
        core_http_stream_end(f->streaming);
        f->streaming = NULL;
    }
}

static void handler(core_http_conn_t *c, const core_http_req_t *req, void *ud)
{
    fx_t *f = ud;
    if (strcmp(req->path, "/stream") == 0 || strcmp(req->path, "/forever") == 0) {
        core_http_stream_begin(c, 200, "text/plain");
        f->streaming = c;
        f->stream_left = strcmp(req->path, "/stream") == 0 ? 5 : 1000000;
        uv_timer_start(&f->stream_timer, on_stream_tick, 5, 5);
    } else {
        core_http_respond_error(c, 404, "no route %s", req->path);
    }
}

static int setup(void **state)
{
    fx_t *f = core_xcalloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    core_http_server_opts_t o = {0};
    assert_int_equal(core_http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, &f->srv), 0);
    f->port = core_http_server_port(f->srv);
    assert_int_equal(core_http_async_new(&f->loop, &f->cli), 0);
    uv_timer_init(&f->loop, &f->stream_timer);
    f->stream_timer.data = f;
    uv_timer_init(&f->loop, &f->cancel_timer);
    f->cancel_timer.data = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->cli)
        core_http_async_close(f->cli);
    /* A stream the test left going is the handler's to end (see core/http.h). */
    uv_timer_stop(&f->stream_timer);
    if (f->streaming)
        core_http_stream_end(f->streaming);
    core_http_server_close(f->srv);
    uv_close((uv_handle_t *)&f->stream_timer, NULL);
    uv_close((uv_handle_t *)&f->cancel_timer, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static int on_data(void *arg, const char *data, size_t len)
{
    fx_t *f = arg;
    assert_true(f->n_got + len < sizeof(f->got));
    memcpy(f->got + f->n_got, data, len);
    f->n_got += len;
    return f->stop_after && f->n_got >= f->stop_after;
}

static void on_done(void *arg, int rc, long status, const char *err)
{
    fx_t *f = arg;
    f->done++;
    f->rc = rc;
    f->status = status;
    snprintf(f->err, sizeof(f->err), "%s", err ? err : "");
    f->xfer = NULL;
}

static void get(fx_t *f, const char *url)
{
    core_http_xfer_opts_t o = {.url = url, .on_data = on_data, .on_done = on_done, .arg = f};
    assert_int_equal(core_http_async_start(f->cli, &o, &f->xfer), 0);
    assert_int_equal(core_http_async_in_flight(f->cli), 1);
}

/* Runs the loop until the transfer under test is done (bounded). */
static void run_until_done(fx_t *f)
{
    for (int i = 0; i < 10000 && !f->done; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void test_stream(void **state)
{
    fx_t *f = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream", f->port);
    get(f, url);
    run_until_done(f);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    f->got[f->n_got] = '\0';
    assert_string_equal(f->got, "line 5\nline 4\nline 3\nline 2\nline 1\n");
}

static void test_error_body_dropped(void **state)
{
    fx_t *f = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/nope", f->port);
    get(f, url);
    run_until_done(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 404);
    assert_int_equal(f->n_got, 0);
}

static void test_refused(void **state)
{
    fx_t *f = *state;
    char url[64];
    /* A port that was just free: nothing listens there. */
    core_http_server_t *tmp = NULL;
    core_http_server_opts_t o = {0};
    assert_int_equal(core_http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, &tmp), 0);
    int port = core_http_server_port(tmp);
    core_http_server_close(tmp);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream", port);
    get(f, url);
    run_until_done(f);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->rc, -ECONNREFUSED);
    assert_int_equal(f->status, 0);
    assert_true(strlen(f->err) > 0);
    assert_int_equal(core_http_async_in_flight(f->cli), 0);
}

/* on_data can end a transfer (a body larger than the caller wants). */
static void test_stop_from_on_data(void **state)
{
    fx_t *f = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/forever", f->port);
    f->stop_after = 20;
    get(f, url);
    run_until_done(f);
    assert_int_equal(f->done, 1);
    assert_int_equal(f->rc, -ECANCELED);
    assert_true(f->n_got >= 20);
}

static void on_cancel(uv_timer_t *t)
{
    fx_t *f = t->data;
    assert_non_null(f->xfer);
    core_http_xfer_cancel(f->xfer);
    f->xfer = NULL;
    f->done = 100; /* ends run_until_done; on_done must not add to it */
}

static void test_cancel(void **state)
{
    fx_t *f = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/forever", f->port);
    get(f, url);
    uv_timer_start(&f->cancel_timer, on_cancel, 100, 0);
    run_until_done(f);
    assert_int_equal(f->done, 100);
    assert_true(f->n_got > 0);
    /* The server sees the peer go and stops streaming; nothing calls back. */
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->done, 100);
}

/* Closing the client with a transfer in flight: no callback, no leak. */
static void test_close_in_flight(void **state)
{
    fx_t *f = *state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/forever", f->port);
    get(f, url);
    for (int i = 0; i < 20 && f->n_got == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    core_http_async_close(f->cli);
    f->cli = NULL;
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->done, 0);
}

/* A TLS server on the fixture's loop whose certificate the CA of a fresh
 * $SKY_HOME issued for <cert_host>; returns its port. */
static int tls_server(fx_t *f, const char *home, const char *cert_host, core_http_server_t **out)
{
    char *dir = core_xasprintf("%s/ssh", home), *err = NULL, *cert = NULL, *key = NULL;
    assert_int_equal(core_mkdir_p(dir, 0700), 0);
    assert_int_equal(core_tls_ca_ensure(dir, &err), 0);
    assert_int_equal(core_tls_issue(dir, cert_host, &cert, &key, &err), 0);
    char *c = core_xasprintf("%s/srv.crt", dir), *k = core_xasprintf("%s/srv.key", dir);
    assert_int_equal(core_write_file(c, cert, strlen(cert), 0600), 0);
    assert_int_equal(core_write_file(k, key, strlen(key), 0600), 0);
    core_http_server_opts_t o = {.tls_cert = c, .tls_key = k};
    assert_int_equal(core_http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, out), 0);
    free(c);
    free(k);
    free(cert);
    free(key);
    free(dir);
    return core_http_server_port(*out);
}

static void test_https(void **state)
{
    fx_t *f = *state;
    char home[] = "/tmp/test-http-async-tls-XXXXXX", url[64];
    core_http_server_t *srv = NULL;
    assert_non_null(mkdtemp(home));
    setenv("SKY_HOME", home, 1);
    int port = tls_server(f, home, "127.0.0.1", &srv);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/stream", port);
    get(f, url);
    run_until_done(f);
    assert_int_equal(f->rc, 0);
    assert_int_equal(f->status, 200);
    f->got[f->n_got] = '\0';
    assert_string_equal(f->got, "line 5\nline 4\nline 3\nline 2\nline 1\n");
    core_http_server_close(srv);
    /* A certificate for another address is not that agent's. */
    memset(f->got, 0, sizeof(f->got));
    f->n_got = 0;
    f->done = 0;
    port = tls_server(f, home, "10.9.9.9", &srv);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/stream", port);
    get(f, url);
    run_until_done(f);
    assert_int_equal(f->rc, -EPROTO);
    assert_int_equal(f->n_got, 0);
    core_http_server_close(srv);
    core_rm_rf(home);
    unsetenv("SKY_HOME");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_body_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_from_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_https, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
