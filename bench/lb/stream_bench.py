#!/usr/bin/python3
"""Large bodies and streaming through sky-lb, against the same backend direct.

    bench/lb/stream_bench.py [--build DIR] [--bytes N] [--events N] [--gap-ms M]

- a response of --bytes (default 1 GiB) read to the end (GET /big),
- an upload of --bytes (POST /sink with Content-Length, sent in 1 MiB writes),
each once direct and once through sky-lb, with sky-lb's RSS sampled every
20 ms during the transfer (flat RSS: the proxy holds at most its watermarks
plus a block per direction, whatever the body size);
- an SSE stream of --events events --gap-ms apart (GET /sse?ts=1): each event
carries the CLOCK_MONOTONIC time the backend wrote it, so its latency is the
time it was read minus that, direct and through sky-lb.

sky-lb runs pinned to CPU 0, the backend and this client to CPU 1 (as in
run_bench.sh). One lbtest_backend, sky-lb with its defaults. Prints a table
(and --json a JSON object)."""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from skytest.procs import rss_kib  # noqa: E402

MIB = 1 << 20


class Sampler:
    """Samples a process's RSS every 20 ms while in a with block."""

    def __init__(self, pid):
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def __enter__(self):
        self.before = rss_kib(self.pid) if self.pid else 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def _run(self):
        while not self.stop.wait(0.02):
            if self.pid:
                self.samples.append(rss_kib(self.pid))

    def __exit__(self, *a):
        self.stop.set()
        self.t.join()
        self.after = rss_kib(self.pid) if self.pid else 0

    def summary(self):
        if not self.pid:
            return {}
        return {"rss_before_kib": self.before, "rss_max_kib": max(self.samples + [self.after]),
                "rss_after_kib": self.after, "rss_samples": len(self.samples)}


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before the head")
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def download(port, nbytes):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /big?bytes=%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % nbytes)
    head, rest = read_head(s)
    assert head.startswith(b"HTTP/1.1 200"), head
    got = len(rest)
    buf = bytearray(MIB)
    while True:
        n = s.recv_into(buf)
        if not n:
            break
        got += n
    s.close()
    assert got == nbytes, "got %d of %d bytes" % (got, nbytes)
    return got


def upload(port, nbytes):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n" % nbytes)
    chunk = b"\0" * MIB
    left = nbytes
    while left:
        k = min(left, len(chunk))
        s.sendall(chunk[:k] if k < len(chunk) else chunk)
        left -= k
    head, rest = read_head(s)
    while True:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    s.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert int(rest.strip()) == nbytes, rest
    return nbytes


def sse(port, n, gap_ms):
    """Latency (ms) of every event: read time minus the time the backend wrote it."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /sse?n=%d&gap_ms=%d&ts=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              % (n, gap_ms))
    head, buf = read_head(s)
    assert head.startswith(b"HTTP/1.1 200"), head
    lat = []
    pat = re.compile(rb"data: (\d+) (\d+)\n\n")
    while len(lat) < n:
        for m in pat.finditer(buf):
            lat.append((time.monotonic_ns() - int(m.group(2))) / 1e6)
        last = buf.rfind(b"\n\n")
        buf = buf[last + 2:] if last >= 0 else buf
        if len(lat) >= n:
            break
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    assert len(lat) == n, "%d of %d events" % (len(lat), n)
    return lat


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("SKY_BUILD_DIR", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")))
    ap.add_argument("--bytes", type=int, default=1 << 30)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--gap-ms", type=int, default=2)
    ap.add_argument("--skylb", help="sky-lb binary (default: BUILD/lb/sky-lb)")
    ap.add_argument("--lb-cpu", type=int, default=0,
                    help="sky-lb's CPU (the backend and this client run on CPU 1)")
    ap.add_argument("--skip-bulk", action="store_true", help="only the SSE stream")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    os.sched_setaffinity(0, {1})
    tmp = tempfile.mkdtemp(prefix="skylb-stream.")
    procs = []
    try:
        be_log = open(os.path.join(tmp, "backend.log"), "w+")
        be = subprocess.Popen(["taskset", "-c", "1", os.path.join(a.build, "tests", "lbtest_backend"),
                               "--listen", "127.0.0.1:0", "--name", "b"], stderr=be_log)
        procs.append(be)
        be_port = None
        for _ in range(200):
            be_log.seek(0)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", be_log.read())
            if m:
                be_port = int(m.group(1))
                break
            time.sleep(0.02)
        assert be_port, "backend did not start"
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            lb_port = t.getsockname()[1]
        lb = subprocess.Popen(["taskset", "-c", str(a.lb_cpu), a.skylb or os.path.join(a.build, "lb", "sky-lb"),
                               "--listen", "127.0.0.1:%d" % lb_port, "--workers", "1",
                               "--replica", "http://127.0.0.1:%d" % be_port],
                              stderr=open(os.path.join(tmp, "lb.log"), "w"))
        procs.append(lb)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", lb_port), 0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        out = {"load_before": os.getloadavg()[0], "bytes": a.bytes}
        for name, fn in (() if a.skip_bulk else (("download", download), ("upload", upload))):
            for via, port, pid in (("direct", be_port, None), ("sky-lb", lb_port, lb.pid)):
                with Sampler(pid) as smp:
                    t0 = time.monotonic()
                    fn(port, a.bytes)
                    dt = time.monotonic() - t0
                r = {"seconds": round(dt, 3), "MiB_per_s": round(a.bytes / MIB / dt, 1)}
                r.update(smp.summary())
                out["%s_%s" % (name, via)] = r
        for via, port in (("direct", be_port), ("sky-lb", lb_port)):
            lat = sse(port, a.events, a.gap_ms)
            out["sse_%s" % via] = {"events": len(lat), "mean_ms": round(statistics.mean(lat), 3),
                                   "median_ms": round(statistics.median(lat), 3),
                                   "p99_ms": round(pct(lat, 99), 3), "max_ms": round(max(lat), 3)}
        out["sse_added_mean_ms"] = round(out["sse_sky-lb"]["mean_ms"] - out["sse_direct"]["mean_ms"], 3)
        out["sse_added_median_ms"] = round(out["sse_sky-lb"]["median_ms"] -
                                           out["sse_direct"]["median_ms"], 3)
        out["sse_added_p99_ms"] = round(out["sse_sky-lb"]["p99_ms"] - out["sse_direct"]["p99_ms"], 3)
        out["load_after"] = os.getloadavg()[0]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", tmp])
    if a.json:
        print(json.dumps(out))
        return
    print("load average %.2f before, %.2f after" % (out["load_before"], out["load_after"]))
    if not a.skip_bulk:
        print("%-20s %9s %9s %12s %12s %12s" % ("transfer", "seconds", "MiB/s", "RSS before",
                                                "RSS max", "RSS after"))
        for k in ("download_direct", "download_sky-lb", "upload_direct", "upload_sky-lb"):
            r = out[k]
            print("%-20s %9.2f %9.1f %12s %12s %12s" % (
                k, r["seconds"], r["MiB_per_s"], r.get("rss_before_kib", "-"),
                r.get("rss_max_kib", "-"), r.get("rss_after_kib", "-")))
        print("(RSS in KiB, of sky-lb; %d bytes each way)" % a.bytes)
    print("%-20s %9s %9s %9s %9s %9s" % ("SSE", "events", "mean ms", "p50 ms", "p99 ms", "max ms"))
    for k in ("sse_direct", "sse_sky-lb"):
        r = out[k]
        print("%-20s %9d %9.3f %9.3f %9.3f %9.3f" % (k, r["events"], r["mean_ms"], r["median_ms"],
                                                     r["p99_ms"], r["max_ms"]))
    print("added by sky-lb per event: mean %.3f ms, median %.3f ms, p99 %.3f ms "
          "(%d events, %d ms apart, sky-lb on CPU %d)" % (
              out["sse_added_mean_ms"], out["sse_added_median_ms"], out["sse_added_p99_ms"],
              a.events, a.gap_ms, a.lb_cpu))


if __name__ == "__main__":
    sys.exit(main())
