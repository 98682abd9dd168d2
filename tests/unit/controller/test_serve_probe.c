/* Readiness probes through curl multi on the libuv loop, against a real
 * core_http_server on loopback: 200 = ready, anything else (or no answer
 * within the timeout) = not ready; POST bodies and headers reach the replica. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/http.h"
#include "core/mem.h"
#include "ctl_probe.h"

typedef struct result {
    int done;
    bool ok;
    long status;
    char err[256];
} result_t;

typedef struct srv_state {
    char last_body[256];
    char last_auth[128];
    core_http_conn_t *held; /* a request never answered (timeout case) */
} srv_state_t;

typedef struct ctx {
    uv_loop_t loop;
    core_http_server_t *srv;
    srv_state_t st;
    int port;
    ctl_prober_t *p;
    result_t res[8];
    int pending;
    uv_timer_t guard;
} ctx_t;

static void handler(core_http_conn_t *c, const core_http_req_t *req, void *ud)
{
    srv_state_t *st = ud;

    if (strcmp(req->path, "/ok") == 0) {
        core_http_respond(c, 200, "text/plain", "ok", 2);
    } else if (strcmp(req->path, "/bad") == 0) {
        core_http_respond(c, 503, "text/plain", "no", 2);
    } else if (strcmp(req->path, "/created") == 0) {
        core_http_respond(c, 201, "text/plain", "", 0);
    } else if (strcmp(req->path, "/post") == 0) {
        snprintf(st->last_body, sizeof(st->last_body), "%s", req->body);
        snprintf(st->last_auth, sizeof(st->last_auth), "%s",
                 req->authorization ? req->authorization : "");
        core_http_respond(c, strcmp(req->method, "POST") == 0 ? 200 : 405, "text/plain", "", 0);
    } else if (strcmp(req->path, "/hang") == 0) {
        st->held = c; /* answered after the probe gave up */
    } else {
        core_http_respond(c, 404, "text/plain", "", 0);
    }
}

static void on_result(void *arg, bool ok, long status, const char *err)
{
    result_t *r = arg;

    r->done = 1;
    r->ok = ok;
    r->status = status;
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
}

static void on_guard(uv_timer_t *t)
{
    uv_stop(t->loop); /* bounded: never wait forever for a lost callback */
}

static int setup(void **state)
{
    ctx_t *c = core_xcalloc(1, sizeof(*c));
    core_http_server_opts_t o;

    uv_loop_init(&c->loop);
    memset(&o, 0, sizeof(o));
    if (core_http_server_start(&c->loop, "127.0.0.1", 0, &o, handler, &c->st, &c->srv) < 0)
        return -1;
    c->port = core_http_server_port(c->srv);
    if (ctl_prober_new(&c->loop, &c->p) < 0)
        return -1;
    uv_timer_init(&c->loop, &c->guard);
    *state = c;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    ctx_t *c = *state;

    if (c->st.held)
        core_http_respond(c->st.held, 200, "text/plain", "", 0);
    ctl_prober_close(c->p);
    core_http_server_close(c->srv);
    uv_close((uv_handle_t *)&c->guard, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_walk(&c->loop, close_walk, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    free(c);
    return 0;
}

static void run_until_done(ctx_t *c, int n)
{
    uv_timer_start(&c->guard, on_guard, 10000, 0);
    while (1) {
        int done = 0;

        for (int i = 0; i < n; i++)
            done += c->res[i].done;
        if (done == n)
            break;
        if (uv_run(&c->loop, UV_RUN_ONCE) == 0)
            break;
        if (!uv_is_active((uv_handle_t *)&c->guard))
            break;
    }
    uv_timer_stop(&c->guard);
}

static void probe(ctx_t *c, int i, const char *path, const char *post, const core_kv_t *h,
                  size_t nh, double timeout)
{
    char url[128];
    ctl_probe_req_t req;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->port, path);
    memset(&req, 0, sizeof(req));
    req.url = url;
    req.post_data = post;
    req.headers = h;
    req.n_headers = nh;
    req.timeout_s = timeout;
    assert_int_equal(ctl_prober_start(c->p, &req, on_result, &c->res[i]), 0);
}

static void test_statuses_in_parallel(void **state)
{
    ctx_t *c = *state;

    probe(c, 0, "/ok", NULL, NULL, 0, 5);
    probe(c, 1, "/bad", NULL, NULL, 0, 5);
    probe(c, 2, "/created", NULL, NULL, 0, 5);
    probe(c, 3, "/missing", NULL, NULL, 0, 5);
    assert_int_equal(ctl_prober_in_flight(c->p), 4);
    run_until_done(c, 4);
    assert_true(c->res[0].done && c->res[0].ok);
    assert_int_equal(c->res[0].status, 200);
    assert_true(c->res[1].done && !c->res[1].ok);
    assert_int_equal(c->res[1].status, 503);
    assert_true(c->res[2].done && !c->res[2].ok); /* 200 exactly, not 2xx */
    assert_int_equal(c->res[3].status, 404);
    assert_int_equal(ctl_prober_in_flight(c->p), 0);
}

static void test_post_with_headers(void **state)
{
    ctx_t *c = *state;
    core_kv_t h[1] = {{.key = "Authorization", .value = "Bearer s3cret"}};

    probe(c, 0, "/post", "{\"max_tokens\": 1}", h, 1, 5);
    run_until_done(c, 1);
    assert_true(c->res[0].ok);
    assert_string_equal(c->st.last_body, "{\"max_tokens\": 1}");
    assert_string_equal(c->st.last_auth, "Bearer s3cret");
}

static void test_timeout_and_refused(void **state)
{
    ctx_t *c = *state;

    probe(c, 0, "/hang", NULL, NULL, 0, 0.3);
    {
        ctl_probe_req_t req;

        memset(&req, 0, sizeof(req));
        req.url = "http://127.0.0.1:1/health"; /* nobody listens on port 1 */
        req.timeout_s = 2;
        assert_int_equal(ctl_prober_start(c->p, &req, on_result, &c->res[1]), 0);
    }
    run_until_done(c, 2);
    assert_true(c->res[0].done && !c->res[0].ok);
    assert_int_equal(c->res[0].status, 0);
    assert_true(strlen(c->res[0].err) > 0);
    assert_true(c->res[1].done && !c->res[1].ok);
    assert_int_equal(c->res[1].status, 0);
}

static void test_close_with_probes_in_flight(void **state)
{
    ctx_t *c = *state;

    probe(c, 0, "/hang", NULL, NULL, 0, 30);
    /* Let the request reach the server, then abort: no callback may run. */
    for (int i = 0; i < 50 && !c->st.held; i++)
        uv_run(&c->loop, UV_RUN_NOWAIT);
    ctl_prober_close(c->p);
    c->p = NULL;
    assert_int_equal(ctl_prober_new(&c->loop, &c->p), 0);
    assert_false(c->res[0].done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_statuses_in_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_with_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_and_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_probes_in_flight, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
