"""sky-lb HTTP/1.1 conformance, over raw sockets, each case citing the RFC 9110 /
9112 section it follows. Upstreams are scripted (peers.Upstream) so that a case
can make a replica do exactly the wrong thing. Cases where nginx and HAProxy
behave differently also run against both (test_compare), which writes the
three-way table to $SKY_BUILD_DIR/conformance/compare.md (docs/lb-http.md).

Timeouts are configured short (0.5-1 s) so the whole file runs in well under a
minute; the sanitizer build multiplies them by lb_util.SLOW."""
import json
import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import lb_util as U  # noqa: E402
from lb_util import procs  # noqa: E402,F401  (fixture)
from peers import External, Upstream, have_external, upstreams  # noqa: E402,F401

S = U.SLOW


def lb_for(procs, ups, args=()):
    return procs.lb([u.url for u in ups], args=list(args), admin=True)


def metric(lb, name, labels):
    text = U.admin_get(lb.admin_port, "/metrics").body.decode()
    return U.metric_value(text, name, labels) or 0


def read_status_line(c):
    """Reads one head (1xx included) from a lb_util.Conn: (status, headers dict)."""
    status, _, headers = c.read_head()
    return status, {k.lower(): v for k, v in headers}


def still_usable(c, path="/after"):
    """The connection answers one more request (keep-alive after the previous one)."""
    c.request("GET", path)
    r = c.read_response()
    assert r.status == 200, r
    return r


# ---------------------------------------------------------------- scripted replicas

def answer(conn, body=b"ok", extra=b""):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))


def by_path(routes):
    """Handler dispatching on the request path; unknown paths get 200 "ok"."""
    def h(conn, head, body, up):
        path = head.split(b" ", 2)[1].split(b"?")[0].decode()
        fn = routes.get(path)
        if fn is None:
            answer(conn)
            return None
        return fn(conn, head, body, up)
    return h


def close_silently(conn, head, body, up):
    """Reads the whole request, then closes without a byte of response."""
    return "close"


def stall(seconds):
    def h(conn, head, body, up):
        time.sleep(seconds)
        return "close"
    return h


# ---------------------------------------------------------------- item 1: no double POST

def test_non_idempotent_request_is_never_sent_twice(procs, upstreams):
    """RFC 9110 9.2.2 / RFC 9112 9.3.1: a POST that a replica may have processed
    (it read the whole request, then closed) is not retried on another one."""
    a = upstreams(close_silently, "a")
    b = upstreams(by_path({}), "b")
    lb = lb_for(procs, [a, b], ["--policy", "round_robin"])
    codes = []
    for i in range(4):
        r = U.get(lb.port, "/pay?i=%d" % i, method="POST", body=b"charge=%d" % i,
                  timeout=10 * S)
        codes.append(r.status)
    posts = [h for h, _ in a.received() + b.received() if h.startswith(b"POST")]
    assert len(posts) == 4, "a POST reached the replicas %d times for 4 requests" % len(posts)
    assert sorted(set(codes)) == [200, 502], codes  # a's share failed, b's succeeded
    # An idempotent request that failed the same way is retried (RFC 9110 9.2.2).
    for _ in range(4):
        assert U.get(lb.port, "/get", timeout=10 * S).status == 200


def test_post_retried_when_it_cannot_have_been_processed(procs, upstreams):
    """A refused connect never reached a replica: retrying the POST is safe."""
    b = upstreams(by_path({}), "b")
    dead = "http://127.0.0.1:%d" % U.free_port()
    lb = procs.lb([dead, b.url], args=["--policy", "round_robin"])
    for i in range(4):
        r = U.get(lb.port, "/pay", method="POST", body=b"x=%d" % i, timeout=10 * S)
        assert r.status == 200, r
    assert len(b.received()) == 4


def test_post_on_a_pooled_connection_the_replica_closed(procs, upstreams):
    """RFC 9112 9.3.1: a pooled connection the replica has since closed is
    detected before the request is written (h2o's MSG_PEEK), so the POST goes
    out once, on a fresh connection, and succeeds."""
    def answer_then_close(conn, head, body, up):
        answer(conn)
        time.sleep(0.05)
        return "close"  # a keep-alive timeout on the replica's side
    a = upstreams(answer_then_close, "a")
    lb = procs.lb([a.url])
    with U.Conn(lb.port) as c:
        for i in range(3):
            c.request("POST", "/p", body=b"n=%d" % i)
            assert c.read_response().status == 200
            time.sleep(0.2)
    assert len(a.received()) == 3


# ---------------------------------------------------------------- item 2: keep-alive after local errors

def test_keepalive_after_local_502_503_504(procs, upstreams):
    """RFC 9112 9.3: a locally generated 502/504 leaves a well-framed client
    connection usable; the next request on it is answered at once."""
    a = upstreams(by_path({"/close": close_silently, "/slow": stall(3)}), "a")
    lb = lb_for(procs, [a], ["--upstream-timeout", "0.5"])
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.request("GET", "/close")
        r = c.read_response()
        assert r.status == 502 and r.header("Connection") is None, r
        t0 = time.monotonic()
        still_usable(c)
        assert time.monotonic() - t0 < 2 * S
        c.request("POST", "/slow", body=b"abc")
        assert c.read_response().status == 504
        still_usable(c)
    empty = procs.lb([])
    with U.Conn(empty.port, timeout=5 * S) as c:
        for _ in range(3):
            c.request("POST", "/x", body=b"abc")
            assert c.read_response().status == 503


LOCAL_CLOSE_CASES = {
    # RFC 9112 9.6: after a 4xx that leaves the framing unknown, close.
    "400 bad framing": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nab", 400),
    "408 head timeout": (b"GET / HTTP/1.1\r\nHost: x\r\n", 408),
    "414 long target": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "431 large head": (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    "505 HTTP/2.0": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "413 body over the cap": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413),
}


@pytest.mark.parametrize("case", sorted(LOCAL_CLOSE_CASES))
def test_local_errors_say_close_and_close(procs, upstreams, case):
    """Every locally generated 4xx/5xx that ends the connection says so
    (Connection: close, RFC 9112 9.6) and is a complete JSON response."""
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url], args=["--head-timeout", "0.5", "--max-body-bytes", "1000"])
    data, code = LOCAL_CLOSE_CASES[case]
    r, closed = U.raw_exchange(lb.port, data, timeout=5 * S)
    assert r is not None and r.status == code, r
    assert (r.header("Connection") or "").lower() == "close"
    assert r.header("Content-Type") == "application/json" and json.loads(r.body)["detail"]
    assert closed
    assert not a.received(), "a refused request reached the replica"


# ---------------------------------------------------------------- item 3: 1xx

def test_interim_and_final_response_in_one_write(procs, upstreams):
    """RFC 9110 15.2: 1xx responses are forwarded and the final response that
    follows in the same read is not lost."""
    def cont(conn, head, body, up):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"
                     b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
    a = upstreams(cont, "a")
    lb = lb_for(procs, [a])
    with U.Conn(lb.port, timeout=5 * S) as c:
        for _ in range(2):
            c.request("POST", "/", headers=[("Expect", "100-continue")], body=b"abc")
            assert read_status_line(c)[0] == 100
            st, h = read_status_line(c)
            assert st == 103 and h["link"] == "</s.css>; rel=preload"
            st, h = read_status_line(c)
            assert st == 200 and c.read_exact(4) == b"done"
    # RFC 9110 15.2: no 1xx to an HTTP/1.0 client.
    r, _ = U.raw_exchange(lb.port, b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nx", 5 * S)
    assert r.status == 200 and r.body == b"done"
    # By status class, only the final responses count: three 2xx, no 1xx.
    U.wait_until(lambda: metric(lb, "sky_lb_replica_responses_total", {"code": "2xx"}) == 3,
                 3 * S, what="three 2xx responses counted")
    assert metric(lb, "sky_lb_replica_responses_total", {"code": "1xx"}) == 0


def test_interim_then_stall_is_504(procs, upstreams):
    """RFC 9110 15.6.5: a replica that sent only a 100 and then nothing is a
    gateway timeout (the client has no final response yet)."""
    def cont_then_stall(conn, head, body, up):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        time.sleep(4)
        return "close"
    a = upstreams(cont_then_stall, "a")
    lb = lb_for(procs, [a], ["--upstream-read-timeout", "0.5"])
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.request("POST", "/", body=b"abc")
        assert read_status_line(c)[0] == 100
        t0 = time.monotonic()
        r = c.read_response()
        assert r.status == 504 and time.monotonic() - t0 < 3 * S
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "upstream_read"}) == 1


# ---------------------------------------------------------------- item 4: X-Forwarded-For

def test_connection_header_cannot_hide_the_client_address(procs, upstreams):
    """RFC 9110 7.6.1 lets Connection name hop-by-hop fields, but not the ones
    the proxy itself adds: X-Forwarded-For still carries the client."""
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url])
    for conn_value, xff in (("close, x-forwarded-for", "6.6.6.6"), ("X-Forwarded-For", None)):
        hdrs = [("Connection", conn_value)] + ([("X-Forwarded-For", xff)] if xff else [])
        with U.Conn(lb.port) as c:
            c.request("GET", "/", headers=hdrs)
            assert c.read_response().status == 200
    heads = [h.decode("latin-1").lower() for h, _ in a.received()]
    assert "x-forwarded-for: 6.6.6.6, 127.0.0.1\r\n" in heads[0], heads[0]
    assert "x-forwarded-for: 127.0.0.1\r\n" in heads[1], heads[1]


# ---------------------------------------------------------------- item 5: chunked framing

def test_chunk_data_not_followed_by_crlf(procs, upstreams):
    """RFC 9112 7.1: chunk-data is followed by CRLF. Anything else is a framing
    error: 400 on a request (never forwarded), 502 on a response."""
    a = upstreams(by_path({"/bad": lambda conn, *x: conn.sendall(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n") or "close"}),
        "a")
    lb = procs.lb([a.url])
    r, closed = U.raw_exchange(lb.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                               b"chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 5 * S)
    assert r.status == 400 and closed
    assert not a.received()
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.request("GET", "/bad")
        status, _, _ = c.read_head()
        assert status == 200
        assert c.wait_closed(5 * S), "a malformed chunked response was not cut"
        assert b"XX" not in c.buf


# ---------------------------------------------------------------- item 6: leading empty lines

@pytest.mark.parametrize("n", [1, 2, 5])
def test_empty_lines_before_the_request_line(procs, upstreams, n):
    """RFC 9112 2.2: a server SHOULD ignore at least one empty line before the
    request-line; the replica sees a normal request."""
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url])
    with U.Conn(lb.port) as c:
        c.request("GET", "/first")
        assert c.read_response().status == 200
        c.send(b"\r\n" * n + b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        assert c.read_response().status == 200
    head = a.received()[-1][0]
    assert head.startswith(b"GET /x HTTP/1.1\r\nHost: h\r\n"), head


# ---------------------------------------------------------------- item 7: Host, versions

@pytest.mark.parametrize("req,code", [
    (b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),                # RFC 9112 3.2: no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),  # RFC 9112 3.2: two Hosts
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),           # RFC 9112 3.2: invalid Host
    (b"GET /a\r\n\r\n", 400),                                # HTTP/0.9 (RFC 9112 2.3)
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),             # RFC 9110 15.6.6
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),  # RFC 9112 6.1
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),             # RFC 9112 3.2.4
    (b"GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n", 400),           # RFC 9112 3 (nginx: 400)
], ids=["no_host", "two_hosts", "bad_host", "http09", "http2", "te_http10", "asterisk",
        "tabs"])
def test_request_refused(procs, upstreams, req, code):
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url])
    r, closed = U.raw_exchange(lb.port, req, 5 * S)
    assert r is not None and r.status == code and closed, r
    assert not a.received()


def test_request_line_normalised(procs, upstreams):
    """RFC 9112 3.2.2: absolute-form goes upstream as origin-form with the
    target's authority as Host; RFC 9112 3: odd spacing is rebuilt as single SP;
    nginx drops header names with '_' (X_Forwarded_For = X-Forwarded-For in CGI)."""
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url])
    for req in (b"GET http://a.example:81/p?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n",
                b"GET  /sp   HTTP/1.1\r\nHost: h\r\n\r\n",
                b"GET /u HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX-Ok: 1\r\n\r\n"):
        r, _ = U.raw_exchange(lb.port, req[:-2] + b"Connection: close\r\n\r\n", 5 * S)
        assert r.status == 200, (req, r)
    got = [h.decode("latin-1") for h, _ in a.received()]
    assert got[0].startswith("GET /p?q=1 HTTP/1.1\r\n") and "Host: a.example:81\r\n" in got[0]
    assert "b.example" not in got[0]
    assert got[1].startswith("GET /sp HTTP/1.1\r\n")
    assert "X_Forwarded_For" not in got[2] and "X-Ok: 1" in got[2]
    assert "X-Forwarded-For: 127.0.0.1\r\n" in got[2]


# ---------------------------------------------------------------- item 8: caps

def test_many_hop_by_hop_headers_are_not_a_400(procs, upstreams):
    """A valid 1.3 KB request with 50 dropped headers interleaved with kept ones."""
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url])
    hdrs = []
    for i in range(50):
        hdrs += [("Connection", "x-drop%d" % i), ("X-Drop%d" % i, "1"), ("X-Keep%d" % i, "2")]
    r = U.get(lb.port, "/", headers=hdrs)
    assert r.status == 200, r
    head = a.received()[0][0].decode()
    assert head.count("X-Keep") == 50 and "X-Drop" not in head and "x-drop" not in head


def test_header_count_and_size_caps(procs, upstreams):
    """RFC 6585 5 / RFC 9110 15.5.14-15: too many fields -> 431, a long target ->
    414, a body over --max-body-bytes -> 413 (declared or chunked); a response
    with many fields is forwarded (bounded by bytes only)."""
    many_resp = b"".join(b"X-R%d: v\r\n" % i for i in range(400))
    a = upstreams(by_path({"/many": lambda conn, *x: answer(conn, b"m", many_resp)}), "a")
    lb = procs.lb([a.url], args=["--max-headers", "100", "--max-body-bytes", "100",
                                 "--max-uri-bytes", "1024"])
    ok = U.get(lb.port, "/", headers=[("X-%d" % i, "v") for i in range(90)])
    assert ok.status == 200
    r, _ = U.raw_exchange(lb.port, b"GET / HTTP/1.1\r\nHost: x\r\n" +
                          b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n")
    assert r.status == 431
    r, _ = U.raw_exchange(lb.port, b"GET /" + b"u" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 414
    r, _ = U.raw_exchange(lb.port, b"GET /" + b"u" * 3000)  # still arriving: 414 at once
    assert r.status == 414
    r, _ = U.raw_exchange(lb.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
    assert r.status == 413
    chunks = b"".join(b"20\r\n" + b"c" * 32 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    r, closed = U.raw_exchange(lb.port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                               b"chunked\r\n\r\n" + chunks)
    assert r is None or r.status == 413  # 413, or cut if the replica answered first
    assert closed
    r = U.get(lb.port, "/many")
    assert r.status == 200 and r.header("X-R399") == "v" and r.body == b"m"


# ---------------------------------------------------------------- item 9: timeouts at every phase

def test_replica_stalls_after_the_head(procs, upstreams):
    """nginx proxy_read_timeout / HAProxy timeout server: a response that stops
    after its first bytes is cut (the status has gone out) and counted."""
    def head_then_stall(conn, head, body, up):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(4)
        return "close"
    a = upstreams(head_then_stall, "a")
    lb = lb_for(procs, [a], ["--upstream-read-timeout", "0.5"])
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.request("GET", "/")
        t0 = time.monotonic()
        assert c.read_head()[0] == 200
        assert c.wait_closed(4 * S)
        assert 0.4 <= time.monotonic() - t0 < 3 * S
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "upstream_read"}) == 1
    U.wait_until(lambda: U.admin_get_json(lb.admin_port, "/-/replicas")["replicas"][0]
                 ["in_flight"] == 0, 3 * S, what="the stalled replica released")


def test_client_that_never_reads(procs, upstreams):
    """nginx send_timeout / HAProxy timeout client: a client that stops reading
    a large response is closed, and the replica connection with it."""
    big = b"z" * (8 << 20)
    a = upstreams(by_path({"/big": lambda conn, *x: answer(conn, big)}), "a")
    lb = lb_for(procs, [a], ["--client-send-timeout", "0.5",
                             "--high-watermark", "65536", "--low-watermark", "16384"])
    s = socket.create_connection(("127.0.0.1", lb.port), timeout=5 * S)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        U.wait_until(lambda: metric(lb, "sky_lb_timeouts_total", {"phase": "client_send"}) == 1,
                     6 * S, what="the send timeout")
        U.wait_until(lambda: U.admin_get_json(lb.admin_port, "/-/replicas")["replicas"][0]
                     ["in_flight"] == 0, 3 * S, what="the replica released")
    finally:
        s.close()


def test_request_body_that_stops(procs, upstreams):
    """nginx client_body_timeout: a body that stops arriving gets 408 (nothing
    of the response was sent yet), then the connection closes."""
    a = upstreams(by_path({}), "a")
    lb = lb_for(procs, [a], ["--client-body-timeout", "0.5"])
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        t0 = time.monotonic()
        r = c.read_response()
        assert r.status == 408 and 0.4 <= time.monotonic() - t0 < 3 * S
        assert c.wait_closed(3 * S)
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "client_body"}) == 1


def test_timeouts_before_the_response(procs, upstreams):
    """Head (408, RFC 9110 15.5.9), first response byte (504, 15.6.5), and the
    idle keep-alive connection (closed) each time out at its configured value."""
    a = upstreams(by_path({"/slow": stall(3)}), "a")
    lb = lb_for(procs, [a], ["--head-timeout", "0.5", "--upstream-timeout", "0.5",
                             "--keepalive-timeout", "0.5"])
    r, closed = U.raw_exchange(lb.port, b"GET / HTTP/1.1\r\nHost:", 5 * S)
    assert r.status == 408 and closed
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.request("GET", "/slow")
        assert c.read_response().status == 504
        t0 = time.monotonic()
        assert c.wait_closed(3 * S) and time.monotonic() - t0 >= 0.3
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "response"}) == 1
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "head"}) == 1


# sky-lb's timers are lazy (a deadline that moves later re-arms nothing; the
# timer re-arms for what is left when it fires early): these cases pin that
# every wait is still timed from its own start, after a connection has been
# busy with other phases.

def test_keepalive_timeout_counts_from_the_last_response(procs, upstreams):
    """A connection busy for longer than --keepalive-timeout stays open; once
    idle it is closed about --keepalive-timeout after its last response."""
    a = upstreams(by_path({}), "a")
    lb = lb_for(procs, [a], ["--keepalive-timeout", "1"])
    with U.Conn(lb.port, timeout=5 * S) as c:
        t_first = time.monotonic()
        while True:
            still_usable(c, "/busy")
            t_last = time.monotonic()
            if t_last - t_first >= 2.5:
                break
            time.sleep(0.25)
        assert c.wait_closed(5 * S)
        assert 0.8 <= time.monotonic() - t_last < 4 * S


def test_head_timeout_on_a_keepalive_connection(procs, upstreams):
    """RFC 9110 15.5.9: the second request's head, arriving in part, gets 408
    at --head-timeout, not at the (longer) keep-alive timeout."""
    a = upstreams(by_path({}), "a")
    lb = lb_for(procs, [a], ["--head-timeout", "0.5", "--keepalive-timeout", "30"])
    with U.Conn(lb.port, timeout=10 * S) as c:
        still_usable(c, "/first")
        time.sleep(0.8)  # idle longer than the head timeout: keep-alive, not head
        c.send(b"GET /second HTTP/1.1\r\nHost:")
        t0 = time.monotonic()
        assert c.read_response().status == 408
        assert 0.4 <= time.monotonic() - t0 < 3 * S
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "head"}) == 1


def test_timeouts_on_a_reused_replica_connection(procs, upstreams):
    """A pooled replica connection, reused by several requests, still times its
    response (504) and then its body (cut) from their own starts; an idle one
    is closed after --pool-idle-timeout (the next request opens a new one)."""
    def head_then_stall(conn, head, body, up):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(3)
        return "close"
    a = upstreams(by_path({"/slow": stall(3), "/partial": head_then_stall}), "a")
    lb = lb_for(procs, [a], ["--upstream-timeout", "0.6", "--upstream-read-timeout", "0.6",
                             "--pool-idle-timeout", "0.8"])
    with U.Conn(lb.port, timeout=10 * S) as c:
        for _ in range(5):
            still_usable(c, "/fast")
            time.sleep(0.2)
        assert a.conns == 1  # one pooled connection served them all
        time.sleep(1.5)  # idle past --pool-idle-timeout: sky-lb closes it
        still_usable(c, "/fast")
        assert a.conns == 2
        c.request("GET", "/slow")
        t0 = time.monotonic()
        assert c.read_response().status == 504
        assert 0.5 <= time.monotonic() - t0 < 3 * S
    with U.Conn(lb.port, timeout=10 * S) as c:
        for _ in range(3):
            still_usable(c, "/fast")
        c.request("GET", "/partial")
        t0 = time.monotonic()
        assert c.read_head()[0] == 200
        assert c.wait_closed(5 * S)
        assert 0.5 <= time.monotonic() - t0 < 3 * S
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "response"}) == 1
    assert metric(lb, "sky_lb_timeouts_total", {"phase": "upstream_read"}) == 1


def test_connect_timeout(procs, upstreams):
    """A replica whose accept queue is full drops our SYNs: the connect times
    out at --connect-timeout, the next replica is tried, and with none left the
    client gets 502 (RFC 9110 15.6.3), counted as a connect timeout."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    filler = [socket.socket() for _ in range(2)]
    try:
        for f in filler:  # fill the accept queue; nobody accepts
            f.setblocking(False)
            f.connect_ex(hole.getsockname())
        time.sleep(0.1)
        b = upstreams(by_path({}), "b")
        url = "http://127.0.0.1:%d" % hole.getsockname()[1]
        lb = procs.lb([url, b.url], args=["--connect-timeout", "0.5", "--policy", "round_robin"],
                      admin=True)
        t0 = time.monotonic()
        for _ in range(2):  # one of them meets the black hole first, then b answers
            assert U.get(lb.port, "/", timeout=5 * S).status == 200
        assert time.monotonic() - t0 < 3 * S
        assert metric(lb, "sky_lb_timeouts_total", {"phase": "connect"}) >= 1
        only = procs.lb([url], args=["--connect-timeout", "0.5"])
        t0 = time.monotonic()
        assert U.get(only.port, "/", timeout=5 * S).status == 502
        assert 0.4 <= time.monotonic() - t0 < 3 * S
    finally:
        for f in filler:
            f.close()
        hole.close()


# ---------------------------------------------------------------- smuggling, pipelining, floods

def test_pipelined_requests_answered_in_order(procs, upstreams):
    """RFC 9112 9.3.2: pipelined requests get their responses in order, with
    bodies, a 1xx and a local 502 among them."""
    a = upstreams(by_path({"/close": close_silently}), "a")
    lb = procs.lb([a.url])
    reqs = b"".join([
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /close HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz",
        b"POST /4 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\n\r\n",
        b"GET /5 HTTP/1.1\r\nHost: x\r\n\r\n",
    ])
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.send(reqs)
        assert [c.read_response().status for _ in range(5)] == [200, 200, 502, 200, 200]
    paths = [h.split(b" ")[1] for h, _ in a.received()]
    assert paths == [b"/1", b"/2", b"/close", b"/4", b"/5"]


def test_request_flood_is_bounded(procs, upstreams):
    """2,000 pipelined requests in one burst are all answered, in order, with
    the LB's memory bounded (reading stops while a response is pending)."""
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url])
    n = 2000
    with U.RssSampler(lb.proc.pid) as rs, U.Conn(lb.port, timeout=20 * S) as c:
        t = threading.Thread(target=c.send,
                             args=(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n" * n,), daemon=True)
        t.start()
        for _ in range(n):
            assert c.read_response().status == 200
        t.join(5)
    assert rs.max_kib < 64 * 1024
    assert len(a.received()) == n


def test_header_flood_is_cut(procs, upstreams):
    """A head that never ends (endless header lines or CRLFs) is cut at the
    head limit with 431 (RFC 6585 5), not buffered."""
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url], args=["--max-head-bytes", "8192"])
    for flood in (b"GET / HTTP/1.1\r\n" + b"X-F: 1\r\n" * 4000, b"\r\n" * 10000):
        r, closed = U.raw_exchange(lb.port, flood, 5 * S)
        assert r is not None and r.status in (400, 431) and closed, r
    assert U.get(lb.port, "/").status == 200


SMUGGLE = {
    # RFC 9112 6.3: CL + TE is an attack vector -> 400 and close.
    "cl_te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked"
             b"\r\n\r\n0\r\n\r\n",
    # RFC 9112 6.3: TE whose final coding is not chunked, in a request.
    "te_gzip": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    # RFC 9112 6.3: differing Content-Length values.
    "cl_cl": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    # RFC 9112 7.1: a chunk size that is not hex.
    "chunk_size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3x\r\nabc\r\n0\r\n\r\n",
    # RFC 9112 7.1.1: chunk extension with a bare LF.
    "chunk_ext_lf": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3;a\nabc\r\n0\r\n\r\n",
    # RFC 9112 5.1: whitespace between the field name and colon.
    "space_colon": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc",
    # RFC 9112 5.2: obs-fold in a request.
    "obs_fold": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n  b\r\n\r\n",
    # RFC 9110 5.5: NUL in a field value.
    "nul_value": b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(SMUGGLE))
def test_smuggling_attempt(procs, upstreams, case):
    a = upstreams(by_path({}), "a")
    lb = procs.lb([a.url])
    r, closed = U.raw_exchange(lb.port, SMUGGLE[case] + b"GET /smuggled HTTP/1.1\r\nHost: x"
                               b"\r\n\r\n", 5 * S)
    assert r is not None and r.status == 400 and closed, r
    assert not any(b"/smuggled" in h for h, _ in a.received())
    assert not a.received()


def test_response_framing_errors_are_502(procs, upstreams):
    """RFC 9112 6.3: a response with both CL and TE, or two differing CLs, is
    unusable: 502 (nothing forwarded)."""
    a = upstreams(by_path({
        "/clte": lambda conn, *x: conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n") or "close",
        "/clcl": lambda conn, *x: conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") or "close",
        "/fold": lambda conn, *x: conn.sendall(
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\nz") or "close",
        # RFC 9112 4: no control bytes in the reason phrase.
        "/ctl": lambda conn, *x: conn.sendall(
            b"HTTP/1.1 200 O\x01K\r\nContent-Length: 1\r\n\r\nz") or "close",
        # Empty lines between an interim and the final response are skipped, not forwarded.
        "/gap": lambda conn, *x: conn.sendall(
            b"HTTP/1.1 100 Continue\r\n\r\n\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
            b"\r\nz"),
    }), "a")
    lb = procs.lb([a.url])
    for p in ("/clte", "/clcl", "/fold", "/ctl"):
        assert U.get(lb.port, p, timeout=5 * S).status == 502, p
    with U.Conn(lb.port, timeout=5 * S) as c:
        c.request("GET", "/gap")
        assert c.read_head()[0] == 100
        assert c.read_exact(17) == b"HTTP/1.1 200 OK\r\n"


def test_half_closed_client_is_an_abort(procs, upstreams):
    """A client that shuts down its sending side while waiting (RFC 9112 9.6 lets
    a server treat it as a close): sky-lb drops the upstream request at once
    and counts a 499, as nginx does (HAProxy, without abortonclose, waits)."""
    a = upstreams(by_path({"/slow": stall(2)}), "a")
    lb = lb_for(procs, [a])
    s = socket.create_connection(("127.0.0.1", lb.port), timeout=5 * S)
    s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    s.shutdown(socket.SHUT_WR)
    U.wait_until(lambda: metric(lb, "sky_lb_requests_total", {"code": "499"}) == 1, 3 * S,
                 what="the abort counted")
    s.close()


# ---------------------------------------------------------------- item 10: admin token

def test_admin_listener_requires_the_token(procs, upstreams):
    a = upstreams(by_path({}), "a")
    lb = lb_for(procs, [a])
    for path in ("/metrics", "/-/replicas", "/-/healthy"):
        for tok in (None, "wrong"):
            r = U.admin_get(lb.admin_port, path, token=tok)
            assert r.status == 401, (path, tok, r)
            assert "error" in json.loads(r.body)
        assert U.admin_get(lb.admin_port, path).status == 200
    # no token, no admin listener
    r = __import__("subprocess").run([U.SKY_LB, "--listen", "127.0.0.1:0", "--admin",
                                      "127.0.0.1:0"], capture_output=True, timeout=10 * S)
    assert r.returncode == 2 and b"token" in r.stderr


# ---------------------------------------------------------------- sky-lb vs nginx vs HAProxy

def _outcome(port, data, wait=1.5):
    """Sends <data>; returns the status codes received, then "close" or
    "reset" if the proxy ended the connection within <wait> seconds."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    out, end = b"", ""
    try:
        s.sendall(data)
        while True:
            d = s.recv(65536)
            if not d:
                end = "close"
                break
            out += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        end = "reset"
    finally:
        s.close()
    codes = [ln.split(b" ")[1].decode() for ln in out.split(b"\r\n")
             if ln.startswith(b"HTTP/1.") and len(ln.split(b" ")) > 1]
    if not codes and out:
        codes = ["(HTTP/0.9 body)"]
    return " ".join(codes + ([end] if end else [])) or "no answer"


COMPARE = [
    # (id, RFC, request bytes, what sky-lb must do)
    ("absolute-form, conflicting Host", "RFC 9112 3.2.2",
     b"GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n", "200"),
    ("HTTP/2.0 request line", "RFC 9110 15.6.6", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505"),
    ("Transfer-Encoding in HTTP/1.0", "RFC 9112 6.1",
     b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"),
    ("double spaces in the request line", "RFC 9112 3", b"GET  /  HTTP/1.1\r\nHost: x\r\n\r\n",
     "200"),
    ("tab in the request line", "RFC 9112 3", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
    ("space before CRLF", "RFC 9112 3", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", "400"),
    ("HTTP/1.1 without Host", "RFC 9112 3.2", b"GET / HTTP/1.1\r\nX: y\r\n\r\n", "400"),
    ("invalid Host", "RFC 9112 3.2", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"),
    ("HTTP/0.9 request", "RFC 9112 2.3", b"GET /a\r\n\r\n", "400"),
    ("GET * (asterisk-form)", "RFC 9112 3.2.4", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
    ("request-target of 9000 bytes", "RFC 9110 15.5.15",
     b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "414"),
    ("300 header fields", "RFC 6585 5",
     b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(300)) +
     b"\r\n", "431"),
    ("bare LF line ends", "RFC 9112 2.2", b"GET / HTTP/1.1\nHost: x\n\n", "400"),
    ("HTTP/1.2 request line", "RFC 9110 2.5", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", "400"),
    ("chunk data without CRLF", "RFC 9112 7.1",
     b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
     "400"),
]


@pytest.fixture(scope="module")
def table_rows():
    rows = []
    yield rows
    out = os.path.join(U.BUILD_DIR, "conformance")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write("| case | RFC | sky-lb | nginx | HAProxy | replica saw (sky-lb) |\n")
        f.write("|---|---|---|---|---|---|\n")
        for r in rows:
            f.write("| %s |\n" % " | ".join(r))
    print("\n".join(" | ".join(r) for r in rows))


@pytest.mark.parametrize("case", COMPARE, ids=[c[0] for c in COMPARE])
def test_compare(procs, upstreams, tmp_path, table_rows, case):
    """Runs one request through sky-lb, nginx and HAProxy (each in front of its
    own recording replica) and records what each answered and forwarded."""
    name, rfc, data, want = case
    if not have_external():
        pytest.fail("nginx and haproxy are required (scripts/install-deps installs them)")
    results, seen = {}, ""
    for kind in ("sky-lb", "nginx", "haproxy"):
        up = upstreams(by_path({}), kind)
        if kind == "sky-lb":
            port = procs.lb([up.url]).port
            ext = None
        else:
            ext = External(kind, tmp_path, up.port, timeout=2)
            port = ext.port
        try:
            results[kind] = _outcome(port, data)
            got = up.received()
            fwd = got[0][0].split(b"\r\n")[0].decode("latin-1")[:40] if got else "-"
            results[kind] += "" if not got else " (fwd)"
            if kind == "sky-lb":
                seen = fwd
        finally:
            if ext:
                ext.close()
    table_rows.append((name, rfc, results["sky-lb"], results["nginx"], results["haproxy"],
                       "`%s`" % seen))
    assert results["sky-lb"].split(" ")[0] == want, results
    if want != "200":
        assert "close" in results["sky-lb"], results  # RFC 9112 9.6: the error ends it
