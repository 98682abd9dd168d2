/*
 * core/http_server.c + core/http_client.c: a server loop in a thread, the
 * blocking client in the test thread.
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
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/http.h"
#include "core/mem.h"

typedef struct {
    uv_loop_t loop;
    uv_async_t stop;
    core_http_server_t *srv;
    pthread_t thread;
    int port;
    uv_timer_t stream_timer;
    core_http_conn_t *streaming;
    int stream_left;
} fixture_t;

static void on_stream_tick(uv_timer_t *t)
{
    fixture_t *f = t->data;
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
    fixture_t *f = ud;
    if (strcmp(req->path, "/echo") == 0) {
        cJSON *doc = core_http_body_json(req);
        if (doc == NULL) {
            core_http_respond_error(c, 400, "bad json");
            return;
        }
        core_http_respond_json(c, 200, doc);
    } else if (strcmp(req->path, "/query") == 0) {
        char v[64];
        int r = core_http_query_get(req->query, "name", v, sizeof(v));
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "name", r == 0 ? v : "");
        cJSON_AddStringToObject(doc, "method", req->method);
        core_http_respond_json(c, 200, doc);
    } else if (strcmp(req->path, "/stream") == 0) {
        core_http_stream_begin(c, 200, "text/plain");
        f->streaming = c;
        f->stream_left = 5;
        uv_timer_start(&f->stream_timer, on_stream_tick, 10, 10);
    } else {
        core_http_respond_error(c, 404, "no route %s", req->path);
    }
}

static void on_stop(uv_async_t *a)
{
    fixture_t *f = a->data;
    core_http_server_close(f->srv);
    uv_close((uv_handle_t *)&f->stop, NULL);
    uv_close((uv_handle_t *)&f->stream_timer, NULL);
}

static void *run_loop(void *arg)
{
    fixture_t *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int setup(void **state)
{
    fixture_t *f = core_xcalloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->stop, on_stop);
    uv_timer_init(&f->loop, &f->stream_timer);
    f->stop.data = f;
    f->stream_timer.data = f;
    static const char *const public_paths[] = {"/query", NULL};
    core_http_server_opts_t o = {.max_body = 1024, .token = "sekret", .public_paths = public_paths};
    if (core_http_server_start(&f->loop, "127.0.0.1", 0, &o, handler, f, &f->srv) != 0)
        return -1;
    f->port = core_http_server_port(f->srv);
    pthread_create(&f->thread, NULL, run_loop, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    int r = uv_loop_close(&f->loop);
    free(f);
    return r == 0 ? 0 : -1;
}

static char *url(fixture_t *f, const char *path)
{
    return core_xasprintf("http://127.0.0.1:%d%s", f->port, path);
}

static void test_json_round_trip(void **state)
{
    fixture_t *f = *state;
    char *u = url(f, "/echo");
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    cJSON_AddNumberToObject(req, "x", 42);
    long status = 0;
    assert_int_equal(core_http_json("POST", u, "sekret", req, 2000, &status, &resp), 0);
    assert_int_equal(status, 200);
    assert_non_null(resp);
    assert_int_equal(cJSON_GetObjectItem(resp, "x")->valueint, 42);
    cJSON_Delete(req);
    cJSON_Delete(resp);
    free(u);
}

static void test_token_required(void **state)
{
    fixture_t *f = *state;
    char *u = url(f, "/echo");
    long status = 0;
    assert_int_equal(core_http_json("GET", u, NULL, NULL, 2000, &status, NULL), CORE_EHTTP);
    assert_int_equal(status, 401);
    assert_int_equal(core_http_json("GET", u, "wrong", NULL, 2000, &status, NULL), CORE_EHTTP);
    assert_int_equal(status, 401);
    free(u);
}

/* A public path answers GET without the token, and nothing else. */
static void test_public_paths(void **state)
{
    fixture_t *f = *state;
    char *u = url(f, "/query?name=x"), *e = url(f, "/query/more"), *p = url(f, "/quer");
    long status = 0;
    cJSON *resp = NULL;
    assert_int_equal(core_http_json("GET", u, NULL, NULL, 2000, &status, &resp), 0);
    assert_string_equal(cJSON_GetObjectItem(resp, "name")->valuestring, "x");
    cJSON_Delete(resp);
    assert_int_equal(core_http_json("POST", u, NULL, NULL, 2000, &status, NULL), CORE_EHTTP);
    assert_int_equal(status, 401);
    assert_int_equal(core_http_json("GET", e, NULL, NULL, 2000, &status, NULL), CORE_EHTTP);
    assert_int_equal(status, 401);
    assert_int_equal(core_http_json("GET", p, NULL, NULL, 2000, &status, NULL), CORE_EHTTP);
    assert_int_equal(status, 401);
    free(u);
    free(e);
    free(p);
}

static void test_body_limit(void **state)
{
    fixture_t *f = *state;
    char *u = url(f, "/echo");
    char *big = core_xmalloc(4096);
    memset(big, 'a', 4095);
    big[4095] = '\0';
    core_http_resp_t r;
    assert_int_equal(core_http_call("POST", u, "sekret", big, 2000, &r), 0);
    assert_int_equal(r.status, 413);
    core_http_resp_free(&r);
    free(big);
    free(u);
}

static void test_query_and_404(void **state)
{
    fixture_t *f = *state;
    char *u = url(f, "/query?a=1&name=hello%20w+x&z");
    cJSON *resp = NULL;
    long status = 0;
    assert_int_equal(core_http_json("GET", u, "sekret", NULL, 2000, &status, &resp), 0);
    assert_string_equal(cJSON_GetObjectItem(resp, "name")->valuestring, "hello w x");
    assert_string_equal(cJSON_GetObjectItem(resp, "method")->valuestring, "GET");
    cJSON_Delete(resp);
    free(u);
    u = url(f, "/nope");
    assert_int_equal(core_http_json("GET", u, "sekret", NULL, 2000, &status, &resp), CORE_EHTTP);
    assert_int_equal(status, 404);
    assert_non_null(cJSON_GetObjectItem(resp, "error"));
    cJSON_Delete(resp);
    free(u);
}

typedef struct {
    char buf[256];
    size_t len;
    int chunks;
} collect_t;

static int collect(const char *d, size_t n, void *arg)
{
    collect_t *c = arg;
    if (c->len + n < sizeof(c->buf)) {
        memcpy(c->buf + c->len, d, n);
        c->len += n;
    }
    c->chunks++;
    return 0;
}

static void test_stream(void **state)
{
    fixture_t *f = *state;
    char *u = url(f, "/stream");
    collect_t c = {0};
    long status = 0;
    assert_int_equal(core_http_stream_get(u, "sekret", 5000, collect, &c, &status), 0);
    assert_int_equal(status, 200);
    c.buf[c.len] = '\0';
    assert_string_equal(c.buf, "line 5\nline 4\nline 3\nline 2\nline 1\n");
    free(u);
}

/* A plain TCP connection to the fixture's server. */
static int raw_connect(const fixture_t *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Sends <req> (which asks to close) and reads the whole answer into buf. */
static size_t raw_exchange(const fixture_t *f, const char *req, char *buf, size_t cap)
{
    int fd = raw_connect(f);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
    return n;
}

/* The 401 body is the JSON object, every byte of it and nothing more. */
static void test_unauthorized_body(void **state)
{
    static const char want[] = "{\"error\":\"missing or bad token\"}";
    static const char *const reqs[] = {
        "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        char buf[4096];
        size_t n = raw_exchange(*state, reqs[i], buf, sizeof(buf));
        assert_true(strncmp(buf, "HTTP/1.1 401 Unauthorized\r\n", 27) == 0);
        assert_non_null(strstr(buf, "\r\nContent-Type: application/json\r\n"));
        assert_non_null(strstr(buf, "\r\nContent-Length: 32\r\n"));
        const char *body = strstr(buf, "\r\n\r\n");
        assert_non_null(body);
        body += 4;
        assert_int_equal(n - (size_t)(body - buf), sizeof(want) - 1);
        assert_memory_equal(body, want, sizeof(want) - 1);
    }
}

/* Two pipelined requests in one write get two responses, in order. */
static void test_pipelined_raw(void **state)
{
    const char *req = "GET /query?name=one HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n\r\n"
                      "GET /query?name=two HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
                      "Connection: close\r\n\r\n";
    char buf[4096];
    raw_exchange(*state, req, buf, sizeof(buf));
    char *one = strstr(buf, "\"one\""), *two = strstr(buf, "\"two\"");
    assert_non_null(one);
    assert_non_null(two);
    assert_true(one < two);
}

static void test_malformed_is_400(void **state)
{
    int fd = raw_connect(*state);
    const char *req = "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char buf[1024];
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    assert_true(r > 12);
    buf[r] = '\0';
    assert_memory_equal(buf, "HTTP/1.1 400", 12);
    close(fd);
}

static void test_transport_error(void **state)
{
    (void)state;
    /* Port 1 on loopback: nothing listens there. */
    long status = 0;
    int r = core_http_json("GET", "http://127.0.0.1:1/", NULL, NULL, 1000, &status, NULL);
    assert_int_equal(r, -ECONNREFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unauthorized_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_and_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_is_400, setup, teardown),
        cmocka_unit_test(test_transport_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
