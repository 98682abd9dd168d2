"""sky-lb failover: a replica dies under load (every policy) and a replica that
never accepts; retries go to a replica not tried yet, so clients see no error."""
import threading
import time

import pytest

import lb_util as U
from lb_util import procs  # noqa: F401  (fixture)

POLICIES = ["round_robin", "least_load", "power_of_two"]


def _load(port, threads, per_thread, pace, stats, stop_at):
    """Runs threads x per_thread keep-alive GETs; records results in stats."""
    lock = threading.Lock()
    deadline = time.monotonic() + stop_at

    def worker(k):
        c = None
        for i in range(per_thread):
            if time.monotonic() > deadline:
                with lock:
                    stats["timeout"] += 1
                return
            try:
                if c is None:
                    c = U.Conn(port, timeout=20 * U.SLOW)
                c.request("GET", "/name")
                r = c.read_response()
                ok = r.status == 200 and r.body in (b"a", b"b")
                if (r.header("Connection") or "").lower() == "close":
                    c.close()
                    c = None
                with lock:
                    stats["done"] += 1
                    if not ok:
                        stats["failed"] += 1
                        stats["errors"].append("status %d body %r" % (r.status, r.body[:100]))
            except Exception as e:  # noqa: BLE001 - a failed client request
                with lock:
                    stats["done"] += 1
                    stats["failed"] += 1
                    stats["errors"].append(repr(e))
                if c:
                    c.close()
                c = None
            if pace:
                time.sleep(pace)
        if c:
            c.close()

    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    return ts


@pytest.mark.parametrize("policy", POLICIES)
def test_replica_killed_under_load(procs, policy):
    a, b = procs.backend("a"), procs.backend("b")
    lb = procs.lb([a, b], args=["--policy", policy])
    threads, per = 4, 500
    total = threads * per
    stats = {"done": 0, "failed": 0, "timeout": 0, "errors": []}
    ts = _load(lb.port, threads, per, 0.004, stats, stop_at=60 * U.SLOW)
    U.wait_until(lambda: stats["done"] >= total // 3, 30 * U.SLOW, what="a third of the load")
    b.proc.kill()  # SIGKILL, mid-load
    killed_at = stats["done"]
    for t in ts:
        t.join(90 * U.SLOW)
    assert not any(t.is_alive() for t in ts), "load threads stuck"
    assert stats["timeout"] == 0, stats
    assert stats["done"] == total, stats
    assert killed_at < total, "the kill happened after the load ended"
    assert stats["failed"] == 0, "%d failed client requests, e.g. %s" % (
        stats["failed"], stats["errors"][:5])
    # after the kill every answer comes from the survivor
    for _ in range(5):
        assert U.get(lb.port, "/name", timeout=20 * U.SLOW).body == b"a"


@pytest.mark.parametrize("policy", POLICIES)
def test_dead_replica_never_fails_a_request(procs, policy):
    a = procs.backend("a")
    dead = "http://127.0.0.1:%d" % U.free_port()
    lb = procs.lb([dead, a], args=["--policy", policy])
    t0 = time.monotonic()
    for _ in range(20):
        r = U.get(lb.port, "/name", timeout=20 * U.SLOW)
        assert r.status == 200 and r.body == b"a", r
    with U.Conn(lb.port) as c:
        for _ in range(20):
            c.request("GET", "/name")
            r = c.read_response()
            assert r.status == 200 and r.body == b"a", r
    # retries after a refused connect must not sleep seconds each time
    assert time.monotonic() - t0 < 20 * U.SLOW


def test_post_with_body_retried_on_refused_connect(procs):
    a = procs.backend("a")
    dead = "http://127.0.0.1:%d" % U.free_port()
    lb = procs.lb([dead, a], args=["--policy", "round_robin"])
    for i in range(6):
        body = b"payload-%d" % i * 100
        r = U.get(lb.port, "/echo", method="POST", body=body, timeout=20 * U.SLOW)
        assert r.status == 200 and r.body == body
