"""sky-lb request path: keep-alive, pipelining, chunked bodies, framing errors
(smuggling, 431, 408), 502/503/504, admin endpoints, SIGTERM drain, CLI errors."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import lb_util as U
from lb_util import procs  # noqa: F401  (fixture)


def test_bad_flags_exit_2(procs, tmp_path):
    if not os.path.exists(U.SKY_LB):
        pytest.fail("missing %s" % U.SKY_LB)
    port = U.free_port()
    cases = [
        ["--no-such-flag"],
        ["--listen", "127.0.0.1:%d" % port, "--policy", "no_such_policy"],
        ["--listen", "127.0.0.1:%d" % port, "--workers", "zero"],
        ["--listen"],
    ]
    for args in cases:
        r = subprocess.run([U.SKY_LB] + args, capture_output=True, timeout=10 * U.SLOW,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (args, r.returncode, r.stderr[-500:])
        assert r.stderr.strip() or r.stdout.strip(), ("no message for", args)


def test_get_and_keepalive(procs):
    be = procs.backend("a")
    lb = procs.lb([be])
    with U.Conn(lb.port) as c:
        for i in range(10):
            c.request("GET", "/" if i % 2 == 0 else "/name")
            r = c.read_response()
            assert r.status == 200
            assert r.body == (b"hello world\n" if i % 2 == 0 else b"a")
            assert (r.header("Connection") or "").lower() != "close"
        # The same socket is still usable after 10 exchanges: the proxy kept it open.
        c.request("GET", "/health")
        assert c.read_response().body == b"ok\n"


def test_multiple_workers(procs):
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b], args=["--workers", "2"], admin=True)
    conns = [U.Conn(lb.port) for _ in range(40)]
    try:
        for rnd in range(3):
            for c in conns:
                c.request("GET", "/")
            for c in conns:
                r = c.read_response()
                assert r.status == 200 and r.body == b"hello world\n"
    finally:
        for c in conns:
            c.close()
    text = U.admin_get(lb.admin_port, "/metrics").body.decode()
    ok = U.metric_value(text, "sky_lb_requests_total", {"code": "200"})
    assert ok is not None and ok >= 120, text[:2000]  # summed over workers


def test_round_robin_is_per_request(procs):
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b], args=["--policy", "round_robin"])
    seen = []
    with U.Conn(lb.port) as c:
        for _ in range(10):
            c.request("GET", "/name")
            seen.append(c.read_response().body)
    assert set(seen) == {b"a", b"b"}, seen


def test_pipelined_100_in_order(procs):
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b])
    n = 100
    req = b"".join(b"GET /headers?i=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))
    with U.Conn(lb.port, timeout=20 * U.SLOW) as c:
        c.send(req)  # one write
        for i in range(n):
            r = c.read_response()
            assert r.status == 200, (i, r)
            assert json.loads(r.body)["url"] == "/headers?i=%d" % i
        c.request("GET", "/name")
        assert c.read_response().body in (b"a", b"b")


def test_request_headers_forwarded(procs):
    be = procs.backend()
    lb = procs.lb([be])
    r = U.get(lb.port, "/headers?x=1", headers=[("X-Custom", "v1"), ("X-Other", "a b c")])
    assert r.status == 200
    j = json.loads(r.body)
    hdrs = {k.lower(): v for k, v in j["headers"]}
    assert j["method"] == "GET" and j["url"] == "/headers?x=1"
    assert hdrs.get("x-custom") == "v1" and hdrs.get("x-other") == "a b c"


def test_upstream_status_returned_as_is(procs):
    be = procs.backend()
    lb = procs.lb([be])
    with U.Conn(lb.port) as c:
        for code in (500, 404, 503, 201):
            c.request("GET", "/status?code=%d" % code)
            assert c.read_response().status == code


def test_chunked_request_and_response(procs):
    be = procs.backend()
    lb = procs.lb([be])
    with U.Conn(lb.port) as c:
        # chunked request -> echoed (the backend answers chunked)
        parts = [b"hello ", b"chunked ", b"x" * 70000, b" world"]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        r = c.read_response()
        assert r.status == 200 and r.body == b"".join(parts)
        # content-length request on the same connection
        c.request("POST", "/echo", body=b"abc" * 1000)
        r = c.read_response()
        assert r.status == 200 and r.body == b"abc" * 1000
        # chunked response from upstream
        c.request("GET", "/big?bytes=300001&chunked=1")
        chk = U.PatternChecker()
        r = c.read_response(on_chunk=chk)
        assert r.status == 200 and chk.off == 300001 and chk.bad_at is None
        # content-length response from upstream
        c.request("GET", "/big?bytes=300001")
        chk = U.PatternChecker()
        r = c.read_response(on_chunk=chk)
        assert r.status == 200 and chk.off == 300001 and chk.bad_at is None
        # an empty chunked body
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b""


SMUGGLING = {
    "cl_and_te": b"POST /headers HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "differing_cl": b"POST /headers HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                    b"Content-Length: 6\r\n\r\nabcdef",
    "bad_chunk_size": b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nabc\r\n0\r\n\r\n",
    "obs_fold": b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
}


# More framing ambiguities that RFC 9112 says a server must reject with 400.
SMUGGLING_RFC = {
    "te_not_chunked": b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
                      b"abc",
    "te_chunked_not_last": b"POST /headers HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "space_before_colon": b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
                          b"Content-Length: 3\r\n\r\nabc",
    "cl_list_differing": b"POST /headers HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n"
                         b"abcd",
    "cl_negative": b"POST /headers HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "chunk_size_overflow": b"POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\n1ffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
}
SMUGGLING.update(SMUGGLING_RFC)


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_smuggling_400_and_close(procs, case):
    be = procs.backend()
    lb = procs.lb([be])
    # A smuggled second request rides behind each case; it must never be answered.
    data = SMUGGLING[case] + b"GET /name HTTP/1.1\r\nHost: x\r\n\r\n"
    r, closed = U.raw_exchange(lb.port, data, timeout=5 * U.SLOW)
    assert r is not None, "connection closed without a response"
    assert r.status == 400, r
    assert closed, "connection not closed after the 400"
    assert b"HTTP/1." not in r.trailing, "a second (smuggled) response: %r" % r.trailing[:200]
    # the proxy still serves other clients
    assert U.get(lb.port, "/").status == 200


def test_mixed_pipeline_in_order(procs):
    """Slow, streamed and bodied requests pipelined in one write, two replicas."""
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b], args=["--policy", "round_robin"])
    body = b"q" * 50000
    reqs = [
        b"GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /headers?i=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        b"GET /big?bytes=200000&chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /sse?n=2&gap_ms=50 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"GET /headers?i=last HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    with U.Conn(lb.port, timeout=10 * U.SLOW) as c:
        c.send(b"".join(reqs))
        assert c.read_response().body == b"slow\n"
        assert json.loads(c.read_response().body)["url"] == "/headers?i=1"
        assert c.read_response().body == body
        chk = U.PatternChecker()
        c.read_response(on_chunk=chk)
        assert chk.off == 200000 and chk.bad_at is None
        assert c.read_response().body == b"data: 0\n\ndata: 1\n\n"
        assert c.read_response().body == b"abc"
        assert json.loads(c.read_response().body)["url"] == "/headers?i=last"


def test_request_sent_byte_by_byte(procs):
    be = procs.backend()
    lb = procs.lb([be])
    req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    with U.Conn(lb.port) as c:
        c.sock.setsockopt(U.socket.IPPROTO_TCP, U.socket.TCP_NODELAY, 1)
        for i in range(len(req)):
            c.send(req[i:i + 1])
            time.sleep(0.002)
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello"


def test_head_request_does_not_hang(procs):
    be = procs.backend()
    lb = procs.lb([be])
    with U.Conn(lb.port, timeout=5 * U.SLOW) as c:
        c.request("HEAD", "/big?bytes=1000")
        r = c.read_response("HEAD")
        # the reference answers 405 to HEAD; proxying it is fine too
        assert r.status in (200, 405), r
        if r.status == 200:
            assert r.header("Content-Length") == "1000"
        c.request("GET", "/name")
        assert c.read_response().body == be.name.encode()


def test_keepalive_timeout_closes_idle_client(procs):
    be = procs.backend()
    lb = procs.lb([be], args=["--keepalive-timeout", "1"])
    with U.Conn(lb.port) as c:
        c.request("GET", "/")
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.wait_closed(6 * U.SLOW), "idle keep-alive connection not closed"
        assert time.monotonic() - t0 >= 0.5


def test_stale_pooled_upstream_connection_is_retried(procs):
    """The replica restarts on the same port: the pooled connection is dead."""
    be = procs.backend("first")
    lb = procs.lb([be])
    with U.Conn(lb.port) as c:
        for _ in range(3):
            c.request("GET", "/name")
            assert c.read_response().body == b"first"
        be.proc.kill()
        p = U.Proc([U.BACKEND, "--listen", "127.0.0.1:%d" % be.port, "--name", "second"],
                   str(procs.tmp / "second.log"))
        procs.procs.append(p)
        p.wait_for(r"listening on", 10 * U.SLOW)
        for _ in range(3):
            c.request("GET", "/name")
            r = c.read_response()
            assert r.status == 200 and r.body == b"second", r


def test_client_abort_releases_upstream(procs):
    be = procs.backend()
    lb = procs.lb([be], admin=True)
    for _ in range(3):
        c = U.Conn(lb.port)
        c.request("GET", "/big?bytes=%d" % U.GIB)
        c.read_head()
        c.sock.recv(65536)
        c.close()  # abort mid-stream

    def idle():
        j = U.admin_get_json(lb.admin_port, "/-/replicas")
        return all(r["in_flight"] == 0 for r in j["replicas"])

    U.wait_until(idle, 5 * U.SLOW, what="in_flight back to 0 after client aborts")
    assert U.get(lb.port, "/").status == 200


def test_client_abort_while_waiting_for_head(procs):
    """Client aborts propagate (reference PR #3395): the upstream request is
    dropped when the client goes away, not when the replica finally answers."""
    be = procs.backend()
    lb = procs.lb([be], admin=True)
    c = U.Conn(lb.port)
    c.request("GET", "/slow?ms=6000")
    time.sleep(0.5)
    j = U.admin_get_json(lb.admin_port, "/-/replicas")
    assert j["replicas"][0]["in_flight"] == 1, j
    c.close()

    def idle():
        j = U.admin_get_json(lb.admin_port, "/-/replicas")
        return all(r["in_flight"] == 0 for r in j["replicas"])

    U.wait_until(idle, 2.5 * U.SLOW, what="in_flight back to 0 after the client left")


def test_upstream_dies_mid_response(procs):
    be = procs.backend()
    lb = procs.lb([be])
    c = U.Conn(lb.port, timeout=10 * U.SLOW)
    try:
        c.request("GET", "/big?bytes=%d" % U.GIB)
        status, _, _ = c.read_head()
        assert status == 200
        got = len(c.buf)
        while got < U.MIB:
            got += len(c.sock.recv(65536))
        be.proc.kill()
        t0 = time.monotonic()
        # the client must see the stream end (EOF or reset), not wait forever
        while True:
            try:
                d = c.sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not d:
                break
            got += len(d)
            assert time.monotonic() - t0 < 10 * U.SLOW, "stream neither ended nor closed"
        assert got < U.GIB
    finally:
        c.close()


def test_431_head_too_large(procs):
    be = procs.backend()
    lb = procs.lb([be], args=["--max-head-bytes", "4096"])
    ok = U.get(lb.port, "/", headers=[("X-Pad", "p" * 2000)])
    assert ok.status == 200
    r, closed = U.raw_exchange(lb.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 8000 +
                               b"\r\n\r\n")
    assert r is not None and r.status == 431, r
    # a head that never ends is cut at the limit too
    r, closed = U.raw_exchange(lb.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000)
    assert r is not None and r.status == 431, r


def test_408_head_timeout(procs):
    be = procs.backend()
    lb = procs.lb([be], args=["--head-timeout", "1"])
    t0 = time.monotonic()
    c = U.Conn(lb.port, timeout=6 * U.SLOW)
    try:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
        r = c.read_response()
        took = time.monotonic() - t0
        assert r.status == 408, r
        assert 0.8 <= took <= 4 * U.SLOW, took
        assert c.wait_closed(3 * U.SLOW)
    finally:
        c.close()


def test_503_no_replicas_exact_body(procs):
    lb = procs.lb([])
    with U.Conn(lb.port) as c:
        for _ in range(2):  # and the connection stays usable
            c.request("GET", "/anything?x=1")
            r = c.read_response()
            assert r.status == 503
            assert r.body == U.NO_REPLICA_BODY, r.body


def test_502_when_every_attempt_fails(procs):
    dead = "http://127.0.0.1:%d" % U.free_port()  # nothing listens there
    lb = procs.lb([dead])
    t0 = time.monotonic()
    r = U.get(lb.port, "/", timeout=30 * U.SLOW)
    assert r.status == 502, r
    assert time.monotonic() - t0 < 20 * U.SLOW


def test_502_when_replica_resets_before_response(procs):
    be = procs.backend()
    lb = procs.lb([be])
    r = U.get(lb.port, "/reset", timeout=30 * U.SLOW)
    assert r.status == 502, r
    assert U.get(lb.port, "/name").body == be.name.encode()


def test_504_upstream_timeout(procs):
    be = procs.backend()
    lb = procs.lb([be], args=["--upstream-timeout", "1"])
    t0 = time.monotonic()
    r = U.get(lb.port, "/slow?ms=8000", timeout=15 * U.SLOW)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert took < 5 * U.SLOW, took
    assert U.get(lb.port, "/slow?ms=10").status == 200


def test_metrics_and_replicas(procs):
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b], admin=True)
    with U.Conn(lb.port) as c:
        for _ in range(6):
            c.request("GET", "/")
            assert c.read_response().status == 200
        for _ in range(3):
            c.request("GET", "/status?code=404")
            assert c.read_response().status == 404
    m = U.admin_get(lb.admin_port, "/metrics")
    assert m.status == 200
    text = m.body.decode()
    ok = U.metric_value(text, "sky_lb_requests_total", {"code": "200"})
    nf = U.metric_value(text, "sky_lb_requests_total", {"code": "404"})
    assert ok is not None and ok >= 6, text[:2000]
    assert nf is not None and nf >= 3, text[:2000]
    # The last response reaches the client a moment before the worker releases the
    # replica and the admin thread sums the counters: poll briefly for in_flight 0.
    deadline = time.time() + 5
    while True:
        j = U.admin_get_json(lb.admin_port, "/-/replicas")
        reps = {r["url"]: r for r in j["replicas"]}
        if all(r["in_flight"] == 0 for r in reps.values()) or time.time() > deadline:
            break
        time.sleep(0.05)
    assert set(reps) == {a.url, b.url}, j
    for r in reps.values():
        for k in ("in_flight", "requests", "failures"):
            assert isinstance(r[k], int), (k, r)
        assert r["in_flight"] == 0
    assert sum(r["requests"] for r in reps.values()) >= 9, j


def test_replicas_counts_failures(procs):
    be = procs.backend()
    dead = "http://127.0.0.1:%d" % U.free_port()
    lb = procs.lb([be, dead], admin=True, args=["--policy", "round_robin"])
    for _ in range(6):
        assert U.get(lb.port, "/", timeout=20 * U.SLOW).status == 200
    j = U.admin_get_json(lb.admin_port, "/-/replicas")
    reps = {r["url"]: r for r in j["replicas"]}
    assert reps[dead]["failures"] >= 1, j
    assert reps[be.url]["requests"] >= 6, j


def test_sigterm_drains_in_flight_request(procs):
    be = procs.backend()
    lb = procs.lb([be], args=["--drain-timeout", "10"])
    result = {}

    def client():
        try:
            result["r"] = U.get(lb.port, "/slow?ms=1500", timeout=15 * U.SLOW)
        except Exception as e:  # noqa: BLE001 - reported below
            result["e"] = e

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.5 * U.SLOW)
    lb.proc.signal(signal.SIGTERM)
    rc = lb.proc.wait(15 * U.SLOW)
    t.join(15 * U.SLOW)
    assert "e" not in result, result.get("e")
    assert result["r"].status == 200 and result["r"].body == b"slow\n"
    assert rc == 0, lb.proc.output()[-2000:]


def test_sigterm_idle_exits_0(procs):
    be = procs.backend()
    lb = procs.lb([be])
    assert U.get(lb.port, "/").status == 200
    t0 = time.monotonic()
    lb.proc.signal(signal.SIGTERM)
    assert lb.proc.wait(10 * U.SLOW) == 0
    assert time.monotonic() - t0 < 5 * U.SLOW


def test_many_concurrent_connections(procs):
    import selectors
    import socket
    n = 1000 if not U.sanitized() else 400
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b])
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", lb.port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE, [b"", False])
        done, deadline = 0, time.monotonic() + 30 * U.SLOW
        while done < n and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                s, st = key.fileobj, key.data
                if not st[1]:
                    s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    st[1] = True
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                d = s.recv(65536)
                assert d, "connection closed before a response"
                st[0] += d
                if st[0].endswith(b"\r\n\r\nhello world\n"):
                    assert st[0].startswith(b"HTTP/1.1 200"), st[0][:100]
                    sel.unregister(s)
                    done += 1
        assert done == n, "%d of %d connections answered" % (done, n)
    finally:
        for s in socks:
            s.close()
    assert U.get(lb.port, "/").status == 200


@pytest.mark.parametrize("policy", ["least_load", "power_of_two"])
def test_load_aware_policy_avoids_busy_replica(procs, policy):
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b], args=["--policy", policy], admin=True)
    busy = U.Conn(lb.port, timeout=10 * U.SLOW)
    try:
        busy.request("GET", "/slow?ms=2500")
        time.sleep(0.3)
        j = U.admin_get_json(lb.admin_port, "/-/replicas")
        loaded = [r["url"] for r in j["replicas"] if r["in_flight"] == 1]
        assert len(loaded) == 1, j
        idle_name = b"b" if loaded[0] == a.url else b"a"
        names = []
        with U.Conn(lb.port) as c:
            for _ in range(10):
                c.request("GET", "/name")
                names.append(c.read_response().body)
        assert names == [idle_name] * 10, names
        assert busy.read_response().body == b"slow\n"
    finally:
        busy.close()


def test_garbage_upstream_response_is_502(procs):
    be = procs.backend()
    lb = procs.lb([be])
    r = U.get(lb.port, "/garbage", timeout=20 * U.SLOW)
    assert r.status == 502, r
    assert U.get(lb.port, "/").status == 200


def test_oversized_upstream_head_is_502_and_bounded(procs):
    be = procs.backend()
    lb = procs.lb([be])
    r = U.get(lb.port, "/bighead?bytes=100")
    assert r.status == 200 and r.header("X-Big") == "h" * 100 and r.body == b"big"
    with U.RssSampler(lb.proc.pid) as rs:
        r = U.get(lb.port, "/bighead?bytes=%d" % (8 * U.MIB), timeout=20 * U.SLOW)
    assert r.status == 502, r
    assert rs.max_kib < 64 * 1024, rs.max_kib
    assert U.get(lb.port, "/").status == 200


def test_client_connection_close_is_honoured(procs):
    be = procs.backend()
    lb = procs.lb([be])
    with U.Conn(lb.port) as c:
        c.request("GET", "/", headers=[("Connection", "close")])
        r = c.read_response()
        assert r.status == 200
        assert c.wait_closed(5 * U.SLOW), "proxy kept a Connection: close client open"
