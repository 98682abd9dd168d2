/*
 * core/tls.c and the TLS side of core/http_server.c + core/http_client.c:
 * a CA in a temporary SKY_HOME, a server with a certificate it issued, and
 * the blocking client trusting that CA only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/http.h"
#include "core/mem.h"
#include "core/tls.h"
#include "core/util.h"

typedef struct {
    char home[64];
    char *ssh_dir;
    uv_loop_t loop;
    uv_async_t stop;
    core_http_server_t *srv;
    pthread_t thread;
    int port;
    uv_timer_t timer;
    core_http_conn_t *streaming;
    int left;
} fixture_t;

static void on_tick(uv_timer_t *t)
{
    fixture_t *f = t->data;
    char line[32];
    int n = snprintf(line, sizeof(line), "line %d\n", f->left);
    if (core_http_stream_write(f->streaming, line, (size_t)n) < 0 || --f->left == 0) {
        uv_timer_stop(t);
        core_http_stream_end(f->streaming);
        f->streaming = NULL;
    }
}

static void handler(core_http_conn_t *c, const core_http_req_t *req, void *ud)
{
    fixture_t *f = ud;
    if (strcmp(req->path, "/stream") == 0) {
        core_http_stream_begin(c, 200, "text/plain");
        f->streaming = c;
        f->left = 3;
        uv_timer_start(&f->timer, on_tick, 5, 5);
        return;
    }
    cJSON *doc = req->body_len ? core_http_body_json(req) : cJSON_CreateObject();
    if (!doc) {
        core_http_respond_error(c, 400, "bad json");
        return;
    }
    cJSON_AddStringToObject(doc, "path", req->path);
    core_http_respond_json(c, 200, doc);
}

static void on_stop(uv_async_t *a)
{
    fixture_t *f = a->data;
    core_http_server_close(f->srv);
    uv_close((uv_handle_t *)&f->stop, NULL);
    uv_close((uv_handle_t *)&f->timer, NULL);
}

static void *run_loop(void *arg)
{
    fixture_t *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = core_xasprintf("%s/%s", dir, name);
    assert_int_equal(core_write_file(p, text, strlen(text), 0600), 0);
    free(p);
}

/* A server on 127.0.0.1 with a certificate the CA issued for <cert_host>. */
static int start(fixture_t *f, const char *cert_host)
{
    char *err = NULL, *cert = NULL, *key = NULL;
    if (core_tls_issue(f->ssh_dir, cert_host, &cert, &key, &err) != 0) {
        fprintf(stderr, "issue: %s\n", err);
        return -1;
    }
    write_text(f->ssh_dir, "srv.crt", cert);
    write_text(f->ssh_dir, "srv.key", key);
    free(cert);
    free(key);
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->stop, on_stop);
    uv_timer_init(&f->loop, &f->timer);
    f->stop.data = f->timer.data = f;
    char *c = core_xasprintf("%s/srv.crt", f->ssh_dir), *k = core_xasprintf("%s/srv.key", f->ssh_dir);
    core_http_server_opts_t o = {.token = "tok", .tls_cert = c, .tls_key = k};
    int rc = core_http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, &f->srv);
    free(c);
    free(k);
    if (rc != 0)
        return -1;
    f->port = core_http_server_port(f->srv);
    pthread_create(&f->thread, NULL, run_loop, f);
    return 0;
}

static void stop(fixture_t *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static int setup(void **state)
{
    fixture_t *f = core_xcalloc(1, sizeof(*f));
    strcpy(f->home, "/tmp/sky-test-tls-XXXXXX");
    if (!mkdtemp(f->home))
        return -1;
    setenv("SKY_HOME", f->home, 1);
    f->ssh_dir = core_xasprintf("%s/ssh", f->home);
    char *err = NULL;
    if (core_tls_ca_ensure(f->ssh_dir, &err) != 0) {
        fprintf(stderr, "ca: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    core_rm_rf(f->home);
    free(f->ssh_dir);
    free(f);
    return 0;
}

static char *url(fixture_t *f, const char *host, const char *path)
{
    return core_xasprintf("https://%s:%d%s", host, f->port, path);
}

static void test_ca_is_kept_and_private(void **state)
{
    fixture_t *f = *state;
    char *key = core_xasprintf("%s/ca.key", f->ssh_dir), *crt = core_tls_ca_path();
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char before[65], after[65];
    assert_int_equal(core_sha256_file(crt, before), 0);
    assert_int_equal(core_tls_ca_ensure(f->ssh_dir, NULL), 0); /* idempotent */
    assert_int_equal(core_sha256_file(crt, after), 0);
    assert_string_equal(before, after);
    free(key);
    free(crt);
}

typedef struct {
    char buf[128];
    size_t len;
} sink_t;

static int collect(const char *d, size_t n, void *arg)
{
    sink_t *s = arg;
    if (s->len + n < sizeof(s->buf)) {
        memcpy(s->buf + s->len, d, n);
        s->len += n;
    }
    return 0;
}

static void test_round_trip_over_tls(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(start(f, "127.0.0.1"), 0);
    char *u = url(f, "127.0.0.1", "/echo");
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    cJSON_AddNumberToObject(req, "x", 7);
    long status = 0;
    for (int i = 0; i < 3; i++) { /* new connections, several handshakes */
        assert_int_equal(core_http_json("POST", u, "tok", req, 5000, &status, &resp), 0);
        assert_int_equal(cJSON_GetObjectItem(resp, "x")->valueint, 7);
        cJSON_Delete(resp);
        resp = NULL;
    }
    assert_int_equal(core_http_json("POST", u, "bad", req, 5000, &status, NULL), CORE_EHTTP);
    assert_int_equal(status, 401);
    cJSON_Delete(req);
    free(u);
    /* A chunked stream through TLS. */
    u = url(f, "127.0.0.1", "/stream");
    sink_t s = {"", 0};
    assert_int_equal(core_http_stream_get(u, "tok", 5000, collect, &s, &status), 0);
    assert_string_equal(s.buf, "line 3\nline 2\nline 1\n");
    free(u);
    /* Plain HTTP to a TLS port gets nothing useful. */
    char *plain = core_xasprintf("http://127.0.0.1:%d/echo", f->port);
    assert_true(core_http_json("GET", plain, "tok", NULL, 2000, &status, NULL) < 0);
    free(plain);
    stop(f);
}

static void test_certificate_for_another_address_is_refused(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(start(f, "127.0.0.2"), 0);
    char *u = url(f, "127.0.0.1", "/echo");
    long status = 0;
    assert_int_equal(core_http_json("GET", u, "tok", NULL, 5000, &status, NULL), -EPROTO);
    free(u);
    stop(f);
}

static void test_certificate_of_another_ca_is_refused(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(start(f, "127.0.0.1"), 0);
    /* Another SKY_HOME has a CA of its own: it must not trust our agents. */
    char other[] = "/tmp/sky-test-tls2-XXXXXX";
    assert_non_null(mkdtemp(other));
    char *dir = core_xasprintf("%s/ssh", other);
    assert_int_equal(core_tls_ca_ensure(dir, NULL), 0);
    setenv("SKY_HOME", other, 1);
    char *u = url(f, "127.0.0.1", "/echo");
    long status = 0;
    assert_int_equal(core_http_json("GET", u, "tok", NULL, 5000, &status, NULL), -EPROTO);
    setenv("SKY_HOME", f->home, 1);
    assert_int_equal(core_http_json("GET", u, "tok", NULL, 5000, &status, NULL), 0);
    free(u);
    core_rm_rf(other);
    free(dir);
    stop(f);
}

static void test_sha256(void **state)
{
    fixture_t *f = *state;
    char hex[65];
    core_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    write_text(f->home, "f", "abc");
    char *p = core_xasprintf("%s/f", f->home);
    assert_int_equal(core_sha256_file(p, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(p);
    assert_int_equal(core_sha256_file("/nonexistent", hex), -ENOENT);
}

static void test_host_tokens(void **state)
{
    (void)state;
    char a[65], b[65], a2[65];
    core_host_token("pool-secret", "10.0.0.1", a);
    core_host_token("pool-secret", "10.0.0.2", b);
    core_host_token("pool-secret", "10.0.0.1", a2);
    assert_string_equal(a, a2);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), 64);
    /* HMAC-SHA256("pool-secret", "sky-agent:10.0.0.1"), as Python's hmac computes it. */
    assert_string_equal(a, "734ba7f04ad1d3f6b0ec1e62bb456efd8e9db82aa1303d2dc8ef6406fc6f0da6");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_is_kept_and_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_over_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_for_another_address_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_certificate_of_another_ca_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sha256, setup, teardown),
        cmocka_unit_test(test_host_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
