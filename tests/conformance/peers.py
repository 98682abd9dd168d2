"""Raw-socket peers for the HTTP conformance suite: a scripted upstream that
records exactly the bytes it receives, and nginx / HAProxy started on loopback
with configs written here, so that a case can be run against all three proxies.

Self-contained (stdlib + pytest); the sky-lb process handling comes from
tests/integration/lb_util.py.
"""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_head(sock, buf=b"", limit=1 << 20):
    """Reads until CRLFCRLF; returns (head, rest). Raises EOFError on close."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > limit:
            raise AssertionError("head over %d bytes" % limit)
        d = sock.recv(65536)
        if not d:
            raise EOFError(buf)
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def head_headers(head):
    lines = head.decode("latin-1").split("\r\n")
    out = []
    for ln in lines[1:]:
        if ln:
            k, _, v = ln.partition(":")
            out.append((k.strip().lower(), v.strip()))
    return lines[0], out


def read_body(sock, head, rest):
    """Reads the request body framed by Content-Length or chunked; returns (raw body, rest)."""
    _, hdrs = head_headers(head)
    te = ",".join(v for k, v in hdrs if k == "transfer-encoding").lower()
    cl = [v for k, v in hdrs if k == "content-length"]
    buf = rest
    if "chunked" in te:
        while True:
            end = buf.find(b"0\r\n\r\n")
            # good enough for the suite: bodies it sends have no "0\r\n\r\n" inside
            if end >= 0 and (end == 0 or buf[end - 2:end] == b"\r\n"):
                return buf[:end + 5], buf[end + 5:]
            d = sock.recv(65536)
            if not d:
                return buf, b""
            buf += d
    n = int(cl[0]) if cl else 0
    while len(buf) < n:
        d = sock.recv(65536)
        if not d:
            break
        buf += d
    return buf[:n], buf[n:]


class Upstream:
    """A scripted HTTP/1.1 upstream on 127.0.0.1.

    handler(conn, head, body, upstream) is called for every request and writes
    whatever bytes the case needs with conn.sendall (it may also close, stall or
    return "close"). Every request received is appended to .requests as
    (head bytes, body bytes); .conns counts accepted connections."""

    def __init__(self, handler=None, name="up"):
        self.handler = handler or ok_handler
        self.name = name
        self.requests = []
        self.conns = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.stop = threading.Event()
        self.threads = []
        self.open = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.conns += 1
                self.open.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    def _serve(self, c):
        c.settimeout(30)
        rest = b""
        try:
            while not self.stop.is_set():
                try:
                    head, rest = read_head(c, rest)
                except (EOFError, OSError):
                    return
                body, rest = read_body(c, head, rest)
                with self.lock:
                    self.requests.append((head, body))
                if self.handler(c, head, body, self) == "close":
                    return
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def received(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.open:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()


def ok_handler(conn, head, body, up):
    b = up.name.encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))


@pytest.fixture
def upstreams():
    made = []

    def make(handler=None, name="up"):
        u = Upstream(handler, name)
        made.append(u)
        return u

    yield make
    for u in made:
        u.close()


# ---------------------------------------------------------------- nginx and HAProxy

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream u {{ server 127.0.0.1:{up}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        client_header_timeout {timeout}s;
        client_body_timeout {timeout}s;
        send_timeout {timeout}s;
        keepalive_timeout 75s;
        location / {{
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout {timeout}s;
            proxy_send_timeout {timeout}s;
        }}
    }}
}}
"""

HAPROXY_CONF = """
global
    maxconn 1024
defaults
    mode http
    option forwardfor
    option http-keep-alive
    timeout connect 5s
    timeout client {timeout}s
    timeout server {timeout}s
    timeout http-request {timeout}s
    timeout http-keep-alive 75s
frontend f
    bind 127.0.0.1:{port}
    default_backend b
backend b
    http-reuse always
    server s1 127.0.0.1:{up}
"""


class External:
    """nginx or HAProxy in front of one upstream; .port is where clients go."""

    def __init__(self, kind, tmp, up_port, timeout=5):
        self.kind = kind
        self.tmp = str(tmp / kind)
        os.makedirs(self.tmp, exist_ok=True)
        self.port = _free_port()
        conf = os.path.join(self.tmp, kind + ".conf")
        text = (NGINX_CONF if kind == "nginx" else HAPROXY_CONF).format(
            tmp=self.tmp, up=up_port, port=self.port, timeout=timeout)
        with open(conf, "w") as f:
            f.write(text)
        argv = [NGINX, "-c", conf, "-e", os.path.join(self.tmp, "err.log")] if kind == "nginx" \
            else [HAPROXY, "-db", "-f", conf]
        self.log = open(os.path.join(self.tmp, "out.log"), "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.p.poll() is not None:
                    break
                time.sleep(0.05)
        self.close()
        raise AssertionError("%s did not start: %s" % (kind, open(
            os.path.join(self.tmp, "out.log"), "rb").read()[-2000:]))

    def close(self):
        # The whole session: nginx's workers outlive a killed master otherwise.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


def have_external():
    return os.path.exists(NGINX) and os.path.exists(HAPROXY)
