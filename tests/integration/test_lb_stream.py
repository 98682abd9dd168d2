"""sky-lb streaming: 1 GiB response under an RSS bound, a client that stops
reading, bodies streamed both ways, SSE spacing, WebSocket tunnelling, TLS."""
import base64
import hashlib
import os
import socket
import subprocess
import threading
import time

import lb_util as U
from lb_util import procs  # noqa: F401  (fixture)

RSS_BOUND_KIB = 64 * 1024


def test_1gib_stream_rss_bounded(procs):
    size = U.GIB if not U.sanitized() else 256 * U.MIB
    be = procs.backend()
    lb = procs.lb([be])
    c = U.Conn(lb.port, timeout=30 * U.SLOW)
    chk = U.PatternChecker()
    t0 = time.monotonic()
    with U.RssSampler(lb.proc.pid) as rs:
        c.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % size)
        status, _, headers = c.read_head()
        assert status == 200
        te = dict((k.lower(), v.lower()) for k, v in headers).get("transfer-encoding", "")
        got = 0
        if "chunked" in te:  # allowed, though the upstream sent a Content-Length
            c.buf = b"HTTP/1.1 200 OK\r\n" + b"\r\n".join(
                ("%s: %s" % kv).encode() for kv in headers) + b"\r\n\r\n" + c.buf
            c.read_response(on_chunk=chk)
            got = chk.off
        else:
            if c.buf:
                chk(c.buf)
                got = len(c.buf)
                c.buf = b""
            buf = bytearray(1 << 20)
            mv = memoryview(buf)
            while got < size:
                n = c.sock.recv_into(mv)
                if n == 0:
                    break
                chk(mv[:n])
                got += n
    took = time.monotonic() - t0
    c.close()
    assert got == size, (got, size)
    assert chk.bad_at is None, "corrupt byte near offset %d" % chk.bad_at
    assert rs.max_kib > 0
    assert rs.max_kib < RSS_BOUND_KIB, "proxy RSS peaked at %d KiB" % rs.max_kib
    print("1 GiB-class stream: %.2fs, %.0f MiB/s, peak RSS %d KiB" % (
        took, size / U.MIB / took, rs.max_kib))


def test_slow_reader_does_not_grow_rss(procs):
    size = 512 * U.MIB
    be = procs.backend()
    lb = procs.lb([be], args=["--high-watermark", "1048576", "--low-watermark", "262144"])
    assert U.get(lb.port, "/").status == 200  # warm up
    base = U.rss_kib(lb.proc.pid)
    c = U.Conn(lb.port, timeout=30 * U.SLOW)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    chk = U.PatternChecker()
    c.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    status, _, headers = c.read_head()
    assert status == 200
    assert "chunked" not in (dict((k.lower(), v) for k, v in headers)
                             .get("transfer-encoding", "")).lower()
    got = len(c.buf)
    chk(c.buf)
    c.buf = b""
    while got < U.MIB:
        d = c.sock.recv(65536)
        assert d
        chk(d)
        got += len(d)
    # stop reading for a while; the proxy must stop reading from the replica
    with U.RssSampler(lb.proc.pid) as rs:
        time.sleep(4)
    grew = rs.max_kib - base
    bound = (16 if not U.sanitized() else 48) * 1024
    assert grew < bound, "proxy RSS grew by %d KiB while the client did not read" % grew
    # then read the rest: nothing was lost
    while got < size:
        d = c.sock.recv(1 << 20)
        if not d:
            break
        chk(d)
        got += len(d)
    c.close()
    assert got == size and chk.bad_at is None
    assert lb.proc.alive()


def test_streamed_bodies_both_ways(procs):
    """A large chunked upload to /echo is echoed while it is still being sent."""
    total = 64 * U.MIB if not U.sanitized() else 16 * U.MIB
    be = procs.backend()
    lb = procs.lb([be])
    c = U.Conn(lb.port, timeout=30 * U.SLOW)
    piece = os.urandom(65536)
    sent_hash = hashlib.sha256()
    err = []

    def sender():
        try:
            c.sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            n = 0
            while n < total:
                p = piece[: (n // 65536) % 997 + 1000] if n % 3 else piece
                p = p[: total - n]
                c.sock.sendall(b"%x\r\n%s\r\n" % (len(p), p))
                sent_hash.update(p)
                n += len(p)
            c.sock.sendall(b"0\r\n\r\n")
        except Exception as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got_hash = hashlib.sha256()
    count = [0]

    def sink(b):
        got_hash.update(b)
        count[0] += len(b)

    r = c.read_response(on_chunk=sink)
    t.join(30)
    c.close()
    assert not err, err
    assert r.status == 200
    assert count[0] == total
    assert got_hash.digest() == sent_hash.digest()


def test_sse_events_arrive_one_at_a_time(procs):
    be = procs.backend()
    lb = procs.lb([be])
    n, gap = 5, 0.4
    stamps = []
    pending = [b""]

    def sink(b):
        pending[0] += b
        while b"\n\n" in pending[0]:
            ev, _, pending[0] = pending[0].partition(b"\n\n")
            stamps.append((time.monotonic(), ev))

    with U.Conn(lb.port, timeout=10 * U.SLOW) as c:
        c.request("GET", "/sse?n=%d&gap_ms=%d" % (n, gap * 1000), headers=[("Accept",
                                                                             "text/event-stream")])
        r = c.read_response(on_chunk=sink)
        assert r.status == 200
        assert "text/event-stream" in (r.header("Content-Type") or "")
        # the connection is still usable after the stream ended
        c.request("GET", "/health")
        assert c.read_response().body == b"ok\n"
    assert [e for _, e in stamps] == [b"data: %d" % i for i in range(n)]
    gaps = [stamps[i][0] - stamps[i - 1][0] for i in range(1, n)]
    assert min(gaps) >= gap * 0.5, "events were batched: gaps %s" % gaps
    assert stamps[-1][0] - stamps[0][0] >= gap * (n - 1) * 0.75, gaps


def test_websocket_echo(procs):
    be = procs.backend()
    lb = procs.lb([be], admin=True)
    key = base64.b64encode(os.urandom(16)).decode()
    with U.Conn(lb.port, timeout=10 * U.SLOW) as c:
        c.send(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        r = c.read_response()
        assert r.status == 101, r
        assert r.header("Sec-WebSocket-Accept") == U.ws_accept(key)
        c.send(U.ws_frame(0x1, b"hello"))
        assert U.ws_read_frame(c) == (True, 0x1, b"hello")
        big = os.urandom(300000)
        c.send(U.ws_frame(0x2, big))
        assert U.ws_read_frame(c) == (True, 0x2, big)
        c.send(U.ws_frame(0x9, b"pingdata"))
        assert U.ws_read_frame(c) == (True, 0xA, b"pingdata")
        c.send(U.ws_frame(0x1, b"frag1-", fin=False) + U.ws_frame(0x0, b"frag2"))
        assert U.ws_read_frame(c) == (False, 0x1, b"frag1-")
        assert U.ws_read_frame(c) == (True, 0x0, b"frag2")
        # many small frames in both directions at once
        msgs = [b"m%d" % i for i in range(200)]
        c.send(b"".join(U.ws_frame(0x1, m) for m in msgs))
        for m in msgs:
            assert U.ws_read_frame(c) == (True, 0x1, m)
        c.send(U.ws_frame(0x8, b"\x03\xe8bye"))
        assert U.ws_read_frame(c) == (True, 0x8, b"\x03\xe8bye")
        assert c.wait_closed(5 * U.SLOW), "tunnel not closed after the replica closed"
    # The 101 that switched is the request's final response: one 1xx.
    text = U.admin_get(lb.admin_port, "/metrics").body.decode()
    assert U.metric_value(text, "sky_lb_replica_responses_total", {"code": "1xx"}) == 1, text
    assert U.metric_value(text, "sky_lb_replica_responses_total", {"code": "2xx"}) == 0, text


def test_https_with_curl(procs, tmp_path):
    cert, key = U.make_cert(tmp_path)
    be = procs.backend("tlsbe")
    lb = procs.lb([be], args=["--tls-cert", cert, "--tls-key", key])
    base = "https://127.0.0.1:%d" % lb.port

    def curl(*args):
        return subprocess.run(["curl", "-sS", "--max-time", str(int(30 * U.SLOW)),
                               "--cacert", cert] + list(args),
                              capture_output=True, timeout=60 * U.SLOW)

    r = curl(base + "/name")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"tlsbe"
    # several requests on one TLS connection, a streamed body, and an upload
    out = tmp_path / "big.bin"
    r = curl("-o", str(out), base + "/big?bytes=20000000", "-o", "/dev/null", base + "/health",
             "-w", "%{num_connects} ")
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == 20000000
    chk = U.PatternChecker()
    chk(out.read_bytes())
    assert chk.bad_at is None
    assert r.stdout.split() == [b"1", b"0"], r.stdout  # the second request reused it
    up = tmp_path / "up.bin"
    up.write_bytes(os.urandom(3 * U.MIB))
    r = curl("--data-binary", "@" + str(up), "-H", "Content-Type: application/octet-stream",
             base + "/echo")
    assert r.returncode == 0, r.stderr
    assert r.stdout == up.read_bytes()
    # plain HTTP on the TLS port is refused, and the proxy survives it
    c = U.Conn(lb.port, timeout=5)
    try:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.wait_closed(5)
    finally:
        c.close()
    # a python TLS client with keep-alive
    tc = U.tls_conn(lb.port, cert)
    try:
        for _ in range(3):
            tc.request("GET", "/")
            assert tc.read_response().body == b"hello world\n"
    finally:
        tc.close()


def test_upload_with_unread_echo_keeps_rss_bounded(procs):
    """Client uploads fast but does not read the echo: the replica stops reading,
    so the proxy must stop reading the client too (no unbounded buffering)."""
    size = 256 * U.MIB
    be = procs.backend()
    lb = procs.lb([be], args=["--high-watermark", "1048576", "--low-watermark", "262144"])
    assert U.get(lb.port, "/").status == 200
    base = U.rss_kib(lb.proc.pid)
    c = U.Conn(lb.port, timeout=30 * U.SLOW)
    piece = U.PATTERN
    sent = [0]
    err = []

    def sender():
        try:
            c.sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            while sent[0] < size:
                n = min(len(piece), size - sent[0])
                c.sock.sendall(piece[:n])
                sent[0] += n
        except Exception as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    with U.RssSampler(lb.proc.pid) as rs:
        time.sleep(4)
    stalled_at = sent[0]
    assert stalled_at < size, "the whole upload went through without anyone reading"
    grew = rs.max_kib - base
    bound = (16 if not U.sanitized() else 48) * 1024
    assert grew < bound, "proxy RSS grew by %d KiB with an unread echo" % grew
    chk = U.PatternChecker()
    r = c.read_response(on_chunk=chk)
    t.join(30 * U.SLOW)
    c.close()
    assert not err, err
    assert r.status == 200 and chk.off == size and chk.bad_at is None


def test_websocket_over_tls(procs, tmp_path):
    cert, key = U.make_cert(tmp_path)
    be = procs.backend()
    lb = procs.lb([be], args=["--tls-cert", cert, "--tls-key", key])
    k = base64.b64encode(os.urandom(16)).decode()
    c = U.tls_conn(lb.port, cert)
    try:
        c.send(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % k).encode())
        r = c.read_response()
        assert r.status == 101 and r.header("Sec-WebSocket-Accept") == U.ws_accept(k)
        big = os.urandom(200000)
        c.send(U.ws_frame(0x2, big))
        assert U.ws_read_frame(c) == (True, 0x2, big)
        c.send(U.ws_frame(0x8, b"\x03\xe8"))
        assert U.ws_read_frame(c)[1] == 0x8
    finally:
        c.close()


def test_close_delimited_upstream_body(procs):
    """An upstream body ended by FIN (no length, no chunking) is relayed whole."""
    size = 5 * U.MIB
    be = procs.backend()
    lb = procs.lb([be])
    for _ in range(2):
        with U.Conn(lb.port, timeout=10 * U.SLOW) as c:
            c.request("GET", "/raw?bytes=%d" % size)
            chk = U.PatternChecker()
            r = c.read_response(on_chunk=chk)
            assert r.status == 200
            assert chk.off == size and chk.bad_at is None, chk.off
            if (r.header("Connection") or "").lower() != "close" and not c.eof:
                # the proxy re-framed the body and kept the client connection
                c.request("GET", "/name")
                assert c.read_response().body == be.name.encode()


def test_http10_client_gets_no_chunked_framing(procs):
    be = procs.backend()
    lb = procs.lb([be])
    n = 100000
    with U.Conn(lb.port, timeout=10 * U.SLOW) as c:
        c.send(b"GET /big?bytes=%d&chunked=1 HTTP/1.0\r\nHost: x\r\n\r\n" % n)
        status, _, headers = c.read_head()
        assert status == 200
        h = {k.lower(): v.lower() for k, v in headers}
        assert "chunked" not in h.get("transfer-encoding", ""), headers
        body = c.buf
        c.buf = b""
        while c._fill():
            body += c.buf
            c.buf = b""
            if "content-length" in h and len(body) >= int(h["content-length"]):
                break
        chk = U.PatternChecker()
        chk(body)
        assert chk.off == n and chk.bad_at is None, (len(body), body[:40])
    # HTTP/1.0 without keep-alive: answered, then closed
    with U.Conn(lb.port, timeout=10 * U.SLOW) as c:
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello world\n"
        assert c.wait_closed(5 * U.SLOW)
