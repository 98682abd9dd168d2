"""Helpers for the sky-lb integration tests (stdlib + pytest only).

Binaries: $SKY_BUILD_DIR/lb/sky-lb and $SKY_BUILD_DIR/tests/lbtest_backend
(skytest.paths). Every process started through a ProcGroup is killed when the
test ends; every socket has a timeout.
"""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
from skytest.paths import BUILD_DIR, SKY_LB, sanitized
from skytest.procs import rss_kib
from skytest.waits import wait_for as wait_until  # noqa: F401  (U.wait_until in the tests)

BACKEND = os.path.join(BUILD_DIR, "tests", "lbtest_backend")

NO_REPLICA_BODY = (b'{"detail":"No ready replicas. Use \\"sky serve status [SERVICE_NAME]\\" '
                   b'to check the replica status."}')

MIB = 1024 * 1024
GIB = 1024 * MIB

SLOW = 3.0 if sanitized() else 1.0

# Bearer token of the admin listener (sky-lb refuses --admin without one).
ADMIN_TOKEN = "lb-admin-test-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RssSampler:
    """Samples a process's VmRSS in a thread; .max_kib is the peak seen."""

    def __init__(self, pid, period=0.02):
        self.pid, self.period = pid, period
        self.max_kib = 0
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            v = rss_kib(self.pid)
            self.samples.append(v)
            self.max_kib = max(self.max_kib, v)
            self._stop.wait(self.period)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)


class Proc:
    def __init__(self, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pid = self.p.pid

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for(self, pattern, timeout):
        """Waits for a regex in the output; returns the match or raises with the log."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            m = rx.search(self.output())
            if m:
                return m
            if self.p.poll() is not None:
                m = rx.search(self.output())
                if m:
                    return m
                raise AssertionError("%s exited with %s before printing %r; output:\n%s" % (
                    self.argv[0], self.p.returncode, pattern, self.output()[-4000:]))
            time.sleep(0.01)
        raise AssertionError("%s did not print %r within %ss; output:\n%s" % (
            self.argv[0], pattern, timeout, self.output()[-4000:]))

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout):
        return self.p.wait(timeout)

    def kill(self):
        if self.p.poll() is None:
            try:
                self.p.kill()
            except ProcessLookupError:
                pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


class Backend:
    def __init__(self, proc, port, name):
        self.proc, self.port, self.name = proc, port, name
        self.url = "http://127.0.0.1:%d" % port


class Lb:
    def __init__(self, proc, port, admin_port=None):
        self.proc, self.port, self.admin_port = proc, port, admin_port


class ProcGroup:
    """Starts backends and sky-lb for one test, and kills them all at the end."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.procs = []
        self.n = 0

    def _log(self, name):
        self.n += 1
        return str(self.tmp / ("%02d-%s.log" % (self.n, name)))

    def backend(self, name=None):
        if not os.path.exists(BACKEND):
            pytest.fail("missing %s (build the tree first)" % BACKEND)
        name = name or "be%d" % (self.n + 1)
        p = Proc([BACKEND, "--listen", "127.0.0.1:0", "--name", name], self._log(name))
        self.procs.append(p)
        m = p.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 10 * SLOW)
        return Backend(p, int(m.group(1)), name)

    def lb_env(self):
        env = dict(os.environ)
        if sanitized():
            # A small quarantine keeps the RSS figures meaningful under ASan.
            extra = "quarantine_size_mb=8:thread_local_quarantine_size_kb=64"
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":" + extra).lstrip(":")
        return env

    def lb(self, replicas=(), args=(), admin=False, ready=True, timeout=None):
        """Starts sky-lb on a free port with --replica URL for each replica."""
        if not os.path.exists(SKY_LB):
            pytest.fail("missing %s (sky-lb not built yet)" % SKY_LB)
        last = None
        for _ in range(3):  # free_port() can race with another process
            port = free_port()
            admin_port = free_port() if admin else None
            argv = [SKY_LB, "--listen", "127.0.0.1:%d" % port]
            for r in replicas:
                argv += ["--replica", r.url if isinstance(r, Backend) else r]
            if admin:
                tok = self.tmp / "admin-token"
                tok.write_text(ADMIN_TOKEN + "\n")
                argv += ["--admin", "127.0.0.1:%d" % admin_port, "--admin-token-file", str(tok)]
            argv += list(args)
            p = Proc(argv, self._log("sky-lb"), env=self.lb_env())
            p.is_lb = True
            self.procs.append(p)
            if not ready:
                return Lb(p, port, admin_port)
            try:
                p.wait_for(r"sky-lb listening on 127\.0\.0\.1:%d" % port, timeout or 10 * SLOW)
            except AssertionError as e:
                last = e
                if p.alive() or "in use" not in p.output().lower():
                    raise
                continue
            return Lb(p, port, admin_port)
        raise last

    def cleanup(self):
        """Stops sky-lb gracefully (so LeakSanitizer runs), kills the rest, and fails
        the test if a sanitizer reported anything in a sky-lb log."""
        lbs = [p for p in self.procs if getattr(p, "is_lb", False) and p.alive()]
        for p in lbs:
            p.signal(signal.SIGTERM)
        deadline = time.monotonic() + 5 * SLOW
        for p in lbs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            p.kill()
        reports = []
        for p in self.procs:
            if getattr(p, "is_lb", False):
                out = p.output()
                for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error:"):
                    i = out.find(marker)
                    if i >= 0:
                        reports.append("%s:\n%s" % (p.log_path, out[max(0, i - 200):i + 3000]))
                        break
        if reports:
            pytest.fail("sanitizer report from sky-lb:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def procs(tmp_path):
    g = ProcGroup(tmp_path)
    yield g
    g.cleanup()


# ---------------------------------------------------------------- raw HTTP client

class HttpResponse:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "HttpResponse(%d %s, %d body bytes)" % (self.status, self.reason, len(self.body))


class Conn:
    """A blocking HTTP/1.1 client connection over a raw socket."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, sock=None):
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, headers=(), body=None, host="localhost"):
        h = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
        for k, v in headers:
            h += "%s: %s\r\n" % (k, v)
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                        for k, _ in headers):
            h += "Content-Length: %d\r\n" % len(body)
        self.send(h.encode() + b"\r\n" + (body or b""))

    def _fill(self):
        if self.eof:
            return False
        d = self.sock.recv(1 << 20)
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_until(self, sep, limit=1 << 20):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i + len(sep)], self.buf[i + len(sep):]
                return out
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (sep, limit))
            if not self._fill():
                raise EOFError("connection closed while waiting for %r (have %r)" % (
                    sep, self.buf[:200]))

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed with %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n", 1 << 20).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for ln in lines[1:]:
            if ln:
                k, _, v = ln.partition(":")
                headers.append((k.strip(), v.strip()))
        return status, reason, headers

    def read_response(self, method="GET", on_chunk=None, max_body=256 * MIB):
        """Reads one response (skipping 1xx except 101). on_chunk(bytes) sees body pieces
        as they arrive; the body is then not kept."""
        while True:
            status, reason, headers = self.read_head()
            if 100 <= status < 200 and status != 101:
                continue
            break
        resp = HttpResponse(status, reason, headers, b"")
        if method == "HEAD" or status in (101, 204, 304):
            return resp
        parts = []
        kept = [0]

        def sink(b):
            if on_chunk:
                on_chunk(b)
            else:
                kept[0] += len(b)
                if kept[0] > max_body:
                    raise AssertionError("body larger than %d" % max_body)
                parts.append(b)

        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            while True:
                line = self.read_until(b"\r\n", 4096)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_until(b"\r\n", 65536) != b"\r\n":
                        pass
                    break
                left = size
                while left:
                    if not self.buf and not self._fill():
                        raise EOFError("closed inside a chunk")
                    take = self.buf[:left]
                    self.buf = self.buf[len(take):]
                    left -= len(take)
                    sink(take)
                assert self.read_exact(2) == b"\r\n", "bad chunk terminator"
        elif cl is not None:
            left = int(cl)
            while left:
                if not self.buf and not self._fill():
                    raise EOFError("closed with %d body bytes missing" % left)
                take = self.buf[:left]
                self.buf = self.buf[len(take):]
                left -= len(take)
                sink(take)
        else:
            while True:
                if self.buf:
                    sink(self.buf)
                    self.buf = b""
                if not self._fill():
                    break
        resp.body = b"".join(parts)
        return resp

    def wait_closed(self, timeout=5.0):
        """True if the peer closes (EOF or reset) within timeout, reading any leftovers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not d:
                return True
            self.buf += d
        return False


def get(port, path="/", headers=(), timeout=10.0, method="GET", body=None):
    with Conn(port, timeout=timeout) as c:
        c.request(method, path, headers=list(headers) + [("Connection", "close")], body=body)
        return c.read_response(method)


def raw_exchange(port, data, timeout=5.0):
    """Sends raw bytes, reads one response head+body, and reports whether the
    connection was closed afterwards: (HttpResponse or None, closed). Bytes that
    arrived after the first response are in response.trailing."""
    c = Conn(port, timeout=timeout)
    try:
        c.send(data)
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError):
            return None, True
        closed = c.wait_closed(timeout)
        r.trailing = c.buf
        return r, closed
    finally:
        c.close()


# ---------------------------------------------------------------- /big pattern

PAT_SIZE = 65536
PATTERN = bytes(((k * 7 + (k >> 8)) & 0xFF) for k in range(PAT_SIZE))
PATTERN2 = PATTERN * 2


class PatternChecker:
    """Checks bytes of a /big body incrementally against the generator's pattern."""

    def __init__(self):
        self.off = 0
        self.bad_at = None

    def __call__(self, data):
        mv = memoryview(data)
        i = 0
        while i < len(mv):
            o = self.off % PAT_SIZE
            n = min(len(mv) - i, PAT_SIZE - o)
            if self.bad_at is None and mv[i:i + n] != PATTERN2[o:o + n]:
                self.bad_at = self.off
            self.off += n
            i += n


# ---------------------------------------------------------------- WebSocket client

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload, fin=True):
    mask = os.urandom(4)
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        h = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        h = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        h = struct.pack("!BBQ", b0, 0x80 | 127, n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload)) if n < 4096 else \
        _xor_mask(payload, mask)
    return h + mask + masked


def _xor_mask(payload, mask):
    n = len(payload)
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


def ws_read_frame(conn):
    """Reads one server frame from a Conn: (fin, opcode, payload)."""
    b0, b1 = conn.read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", conn.read_exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", conn.read_exact(8))[0]
    assert not b1 & 0x80, "server frames must not be masked"
    return bool(b0 & 0x80), b0 & 0x0F, conn.read_exact(n)


# ---------------------------------------------------------------- TLS

def make_cert(tmp_path):
    """Self-signed cert for 127.0.0.1/localhost; returns (cert, key) paths."""
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tls_conn(port, cafile, timeout=10.0):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    return Conn(port, sock=s, timeout=timeout)


# ---------------------------------------------------------------- admin

def admin_get(port, path, token=ADMIN_TOKEN):
    """GET on sky-lb's admin listener with the bearer token."""
    return get(port, path, headers=[("Authorization", "Bearer " + token)] if token else ())


def admin_get_json(port, path):
    r = admin_get(port, path)
    assert r.status == 200, (path, r.status, r.body[:300])
    return json.loads(r.body)


def metric_value(text, name, labels):
    """Sum of samples of `name` whose label set includes every labels item."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            found = True
    return total if found else None


def term_and_wait(proc, timeout):
    proc.signal(signal.SIGTERM)
    return proc.wait(timeout)
