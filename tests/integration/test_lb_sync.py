"""sky-lb <-> controller sync: POST {controller}/controller/load_balancer_sync with
request timestamps and per-replica stats; the reply's replica_info replaces the
ready set (adds and removes replicas); errors keep the old set."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import lb_util as U
from lb_util import procs  # noqa: F401  (fixture)


class FakeController:
    """A test controller: records every sync, answers with the current ready set."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ready = []
        self.fail = False
        self.closed = False
        self.syncs = []  # (monotonic time, path, headers dict, parsed body or raw)
        ctl = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(n, 64 << 20)) if n else b""
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                with ctl.lock:
                    ctl.syncs.append((time.monotonic(), self.path, dict(self.headers), body))
                    ready, fail = list(ctl.ready), ctl.fail
                if self.path != "/controller/load_balancer_sync":
                    out, code = b'{"detail":"not found"}', 404
                elif fail:
                    out, code = b'{"message":"Error"}', 500
                else:
                    out = json.dumps({"replica_info": {u: {"gpu_type": "unknown"}
                                                       for u in ready}}).encode()
                    code = 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_ready(self, urls, fail=False):
        with self.lock:
            self.ready = list(urls)
            self.fail = fail

    def snapshot(self):
        with self.lock:
            return list(self.syncs)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ctl():
    c = FakeController()
    yield c
    c.close()


def _names(port, n):
    out = []
    with U.Conn(port, timeout=10 * U.SLOW) as c:
        for _ in range(n):
            c.request("GET", "/name")
            r = c.read_response()
            out.append(r.body if r.status == 200 else r.status)
    return out


def _start(procs, ctl, extra=()):
    return procs.lb([], args=["--controller", ctl.url, "--service", "svc",
                              "--sync-interval", "1", "--policy", "round_robin"] + list(extra),
                    admin=True)


def test_sync_adds_and_removes_replicas(procs, ctl):
    a, b = procs.backend("a"), procs.backend("b")
    lb = _start(procs, ctl)
    # no replica yet
    r = U.get(lb.port, "/name")
    assert r.status == 503 and r.body == U.NO_REPLICA_BODY
    U.wait_until(lambda: len(ctl.snapshot()) >= 1, 10 * U.SLOW, what="a first sync")
    ctl.set_ready([a.url])
    U.wait_until(lambda: _names(lb.port, 1) == [b"a"], 10 * U.SLOW, what="replica a added")
    ctl.set_ready([a.url, b.url])
    U.wait_until(lambda: set(_names(lb.port, 6)) == {b"a", b"b"}, 10 * U.SLOW,
                 what="replica b added")
    ctl.set_ready([b.url])
    U.wait_until(lambda: set(_names(lb.port, 6)) == {b"b"}, 10 * U.SLOW, what="replica a removed")
    for _ in range(3):
        assert set(_names(lb.port, 10)) == {b"b"}
    j = U.admin_get_json(lb.admin_port, "/-/replicas")
    assert [r["url"] for r in j["replicas"]] == [b.url], j
    ctl.set_ready([])
    U.wait_until(lambda: _names(lb.port, 1) == [503], 10 * U.SLOW, what="empty ready set")


def test_sync_body_timestamps_and_stats(procs, ctl):
    a = procs.backend("a")
    ctl.set_ready([a.url])
    lb = _start(procs, ctl)
    U.wait_until(lambda: _names(lb.port, 1) == [b"a"], 10 * U.SLOW, what="replica a added")
    t_before = time.time()
    n = 25
    assert _names(lb.port, n) == [b"a"] * n
    sent = n + 1

    def counted():
        ts = []
        for _, _, _, body in ctl.snapshot():
            if isinstance(body, dict):
                ts += body.get("request_aggregator", {}).get("timestamps", [])
        return ts

    U.wait_until(lambda: len(counted()) >= sent, 10 * U.SLOW, what="%d timestamps" % sent)
    ts = counted()
    assert all(isinstance(t, (int, float)) for t in ts)
    recent = [t for t in ts if t >= t_before - 1]
    assert len(recent) >= n, (len(recent), n)
    assert all(abs(t - time.time()) < 120 for t in ts), ts[:5]
    syncs = ctl.snapshot()
    assert all(p == "/controller/load_balancer_sync" for _, p, _, _ in syncs)
    bodies = [b for _, _, _, b in syncs if isinstance(b, dict)]
    assert bodies, syncs[:2]
    # per-replica stats: counts for replica a add up to at least what we sent
    total_req = 0
    for b in bodies:
        st = b.get("replica_stats", {})
        assert isinstance(st, dict), b
        if a.url in st:
            assert isinstance(st[a.url]["requests"], int)
            assert isinstance(st[a.url]["failures"], int)
            total_req += st[a.url]["requests"]
    # stats may be cumulative or per interval: either way they reach n
    cum = max((b.get("replica_stats", {}).get(a.url, {}).get("requests", 0) for b in bodies),
              default=0)
    assert total_req >= n or cum >= n, bodies[-3:]
    # the interval is honoured (1 s), roughly
    times = [t for t, _, _, _ in syncs]
    gaps = [y - x for x, y in zip(times, times[1:])]
    assert gaps and 0.4 <= sorted(gaps)[len(gaps) // 2] <= 3.0 * U.SLOW, gaps


def test_sync_error_keeps_old_set(procs, ctl):
    a = procs.backend("a")
    ctl.set_ready([a.url])
    lb = _start(procs, ctl)
    U.wait_until(lambda: _names(lb.port, 1) == [b"a"], 10 * U.SLOW, what="replica a added")
    ctl.set_ready([], fail=True)  # controller answers 500
    k = len(ctl.snapshot())
    U.wait_until(lambda: len(ctl.snapshot()) >= k + 2, 10 * U.SLOW, what="two failed syncs")
    assert _names(lb.port, 5) == [b"a"] * 5
    ctl.close()  # controller gone entirely
    time.sleep(2.5)
    assert _names(lb.port, 5) == [b"a"] * 5
    assert lb.proc.alive()


def test_sync_sends_controller_token(procs, ctl, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("s3cr3t-token-value\n")
    lb = _start(procs, ctl, extra=["--controller-token-file", str(tok)])
    U.wait_until(lambda: len(ctl.snapshot()) >= 1, 10 * U.SLOW, what="a first sync")
    _, _, headers, _ = ctl.snapshot()[0]
    auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    assert auth == "Bearer s3cr3t-token-value", headers
    assert lb.proc.alive()


def test_removed_replica_drains_in_flight_request(procs, ctl):
    """Removed replicas are drained, not cut: a request in flight on a replica
    that leaves the ready set still completes."""
    a, b = procs.backend("a"), procs.backend("b")
    ctl.set_ready([a.url])
    lb = _start(procs, ctl)
    U.wait_until(lambda: _names(lb.port, 1) == [b"a"], 10 * U.SLOW, what="replica a added")
    res = {}

    def slow():
        try:
            res["r"] = U.get(lb.port, "/slow?ms=3000", timeout=15 * U.SLOW)
        except Exception as e:  # noqa: BLE001
            res["e"] = e

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    ctl.set_ready([b.url])
    U.wait_until(lambda: _names(lb.port, 1) == [b"b"], 10 * U.SLOW, what="a replaced by b")
    t.join(20 * U.SLOW)
    assert "e" not in res, res.get("e")
    assert res["r"].status == 200 and res["r"].body == b"slow\n"
    j = U.admin_get_json(lb.admin_port, "/-/replicas")
    assert [r["url"] for r in j["replicas"]] == [b.url], j


def test_connect_to_removed_replica_moves_on_at_once(procs, ctl):
    """A connect that is never answered (the replica's host vanished, as a
    preempted instance's does) goes to another replica as soon as a sync
    removes the replica, not at the connect timeout."""
    b = procs.backend("b")
    # A listener that never accepts, its one-slot backlog full: SYNs to it are dropped.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(hole.getsockname())
        fillers.append(s)
    hole_url = "http://127.0.0.1:%d" % hole.getsockname()[1]
    try:
        ctl.set_ready([hole_url])
        lb = _start(procs, ctl, extra=["--connect-timeout", "30"])
        U.wait_until(lambda: [r["url"] for r in U.admin_get_json(lb.admin_port, "/-/replicas")
                              ["replicas"]] == [hole_url], 10 * U.SLOW, what="the hole in the set")
        out = {}

        def one():
            t = time.monotonic()
            r = U.get(lb.port, "/name", timeout=40)
            out["r"], out["s"] = r, time.monotonic() - t

        th = threading.Thread(target=one)
        th.start()
        time.sleep(1.0)
        assert th.is_alive(), "the request did not wait on the unanswered connect"
        t_removed = time.monotonic()
        ctl.set_ready([b.url])
        th.join(40)
        assert out["r"].status == 200 and out["r"].body == b"b", out["r"]
        # One sync interval (1 s) plus slack, far below the 30 s connect timeout.
        assert time.monotonic() - t_removed < 5 * U.SLOW, out["s"]
    finally:
        for s in fillers + [hole]:
            s.close()
