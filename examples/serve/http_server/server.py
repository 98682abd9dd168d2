#!/usr/bin/env python3
"""A tiny HTTP server for the serve examples (Python 3 standard library only).

GET /health answers 200 "ok" (the readiness probe); GET /stream?n=N&interval=S
streams N lines (chunked), one every S seconds (defaults 10 and 0.1; at most
1000 lines and 1 s apart), each naming the replica; every other path answers
200 with a short text naming the host, so one can see which replica served a
request. Listens on 0.0.0.0:8081, or on $PORT when set.
"""
import http.server
import os
import socket
import socketserver
import time
import urllib.parse

HOST = socket.gethostname()


def _replica_suffix():
    replica = os.environ.get('SKYPILOT_SERVE_REPLICA_ID', '')
    return f' (replica {replica})' if replica else ''


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def _reply(self, code, body, head_only=False):
        data = body.encode()
        self.send_response(code)
        self.send_header('Content-Type', 'text/plain; charset=utf-8')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def _stream(self, query):
        q = urllib.parse.parse_qs(query)
        try:
            n = min(max(int(q.get('n', ['10'])[0]), 0), 1000)
            interval = min(max(float(q.get('interval', ['0.1'])[0]), 0.0), 1.0)
        except ValueError:
            self._reply(400, 'n must be an integer and interval a number\n')
            return
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; charset=utf-8')
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        for i in range(n):
            line = f'line {i} from {HOST}{_replica_suffix()}\n'.encode()
            self.wfile.write(b'%x\r\n%s\r\n' % (len(line), line))
            self.wfile.flush()
            time.sleep(interval)
        self.wfile.write(b'0\r\n\r\n')

    def _route(self, head_only=False):
        path, _, query = self.path.partition('?')
        if path == '/health':
            self._reply(200, 'ok\n', head_only)
        elif path == '/stream' and not head_only:
            self._stream(query)
        else:
            self._reply(200, f'Hello from {HOST}{_replica_suffix()}\n', head_only)

    def do_GET(self):  # noqa: N802 (http.server naming)
        self._route()

    def do_HEAD(self):  # noqa: N802
        self._route(head_only=True)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get('Content-Length') or 0)
        if length > 0:
            self.rfile.read(min(length, 1 << 20))
        self._route()

    def log_message(self, fmt, *args):
        # One line per request on stderr, as the default handler does, but without
        # a reverse DNS lookup.
        print(f'{self.client_address[0]} {fmt % args}', flush=True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port = int(os.environ.get('PORT') or 8081)
    with Server(('0.0.0.0', port), Handler) as httpd:
        print(f'Serving on 0.0.0.0:{port} (host {HOST})', flush=True)
        httpd.serve_forever()


if __name__ == '__main__':
    main()
