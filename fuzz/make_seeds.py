#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/ (run from anywhere; idempotent).
The seeds are committed; this script documents where they came from."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def put(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)


R = b"\r\n"
req = {
    "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "get_10": b"GET /x?y=1 HTTP/1.0\r\n\r\n",
    "post_cl": b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    "post_chunked": b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3;e=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\n"
                 b"Content-Length: 1\r\n\r\nzGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    "hop_by_hop": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-A, x-forwarded-for\r\n"
                  b"Keep-Alive: 5\r\nTE: trailers\r\nX-A: 1\r\nX-Forwarded-For: 1.1.1.1\r\n"
                  b"X-Forwarded-Proto: ftp\r\nProxy-Connection: x\r\nX_U: 1\r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: k\r\n\r\n\x81\x80abcd",
    "absolute": b"GET http://a.example:81/p?q HTTP/1.1\r\nHost: b\r\n\r\n",
    "absolute_nopath": b"OPTIONS http://a.example HTTP/1.0\r\n\r\n",
    "spaces": b"GET   /s   HTTP/1.1\r\nHost: h\r\n\r\n",
    "leading_crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "cl_te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked"
             b"\r\n\r\n0\r\n\r\n",
    "te_10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "http2": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "many": b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(
        b"Connection: x%d\r\nX%d: 1\r\nY%d: 2\r\n" % (i, i, i) for i in range(40)) + R,
    "ipv6_host": b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    "expect": b"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
}
put("lb_request", {k: bytes([i % 16]) + v for i, (k, v) in enumerate(sorted(req.items()))})

resp = {
    "ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "close_delimited": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabcdef",
    "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
    "upgrade": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
               b"\r\n\r\n\x81\x01a",
    "hop": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-B\r\nKeep-Alive: timeout=5\r\nX-B: 1\r\n"
           b"Trailer: X\r\nContent-Length: 0\r\n\r\n",
    "no_content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "http10": b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
    "head_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
    "many": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(300)) +
            b"Content-Length: 0\r\n\r\n",
}
put("lb_response", {k: bytes([i % 32]) + v for i, (k, v) in enumerate(sorted(resp.items()))})


def argv(*a):
    return b"\0".join(x.encode() for x in a)


cfg = {
    "minimal": argv("--listen", "127.0.0.1:8080"),
    "full": argv("--listen", "0.0.0.0:0", "--workers", "2", "--policy", "round_robin",
                 "--replica", "http://127.0.0.1:9001", "--replica", "http://[::1]:80/",
                 "--controller", "http://127.0.0.1:1/", "--service", "s",
                 "--controller-token-file", "/nonexistent", "--sync-interval", "0.5",
                 "--admin", "[::1]:9100", "--max-head-bytes", "8192", "--max-uri-bytes", "100",
                 "--max-headers", "7", "--max-body-bytes", "1000", "--head-timeout", "2",
                 "--upstream-timeout", "3", "--upstream-read-timeout", "1.5",
                 "--client-send-timeout", "2", "--client-body-timeout", "3",
                 "--high-watermark", "65536", "--low-watermark", "1024", "--access-log"),
    "help": argv("--replica", "http://1.2.3.4:5", "--help"),
    "bad": argv("--listen", "x", "--workers", "1e9", "--policy"),
    "abbrev": argv("--lis", "127.0.0.1:1", "--adm", "127.0.0.1:2", "--admin-t", "/t"),
    "name": argv("--listen", "localhost:1", "--replica", "http://replica.example:80"),
}
put("lb_config", cfg)

sync = {
    "ok": b'{"replica_info":{"http://127.0.0.1:8081":{"gpu_type":"unknown"},'
          b'"http://[::1]:80/":{}}}',
    "empty": b'{"replica_info":{}}',
    "bad": b'{"replica_info":[1,2]}',
    "names": b'{"replica_info":{"http://a.example:1":{},"http://1.2.3.4:0":{},"x":{}}}',
    "deep": b'{"replica_info":{"http://1.2.3.4:5":' + b'[' * 50 + b']' * 50 + b'}}',
}
put("lb_sync_reply", sync)

ctl_sync = {
    "full": b'{"request_aggregator":{"timestamps":[1700000000.250000,1700000001.5]},'
            b'"replica_stats":{"http://10.0.0.1:8080":{"requests":7,"failures":1,"responses":'
            b'{"1xx":1,"2xx":4,"3xx":0,"4xx":2,"5xx":3}},"http://10.0.0.2:8080":{"requests":0,'
            b'"failures":0,"responses":{"1xx":0,"2xx":2,"3xx":0,"4xx":0,"5xx":0}}}}',
    "python_lb": b'{"request_aggregator":{"timestamps":[1700000000.25]}}',
    "no_classes": b'{"request_aggregator":{"timestamps":[]},"replica_stats":'
                  b'{"http://10.0.0.1:8080":{"requests":3,"failures":0}}}',
    "bad_values": b'{"request_aggregator":{"timestamps":{}},"replica_stats":{"a":{"requests":-1,'
                  b'"failures":1e15,"responses":{"1xx":"1","2xx":null,"3xx":1e999,"4xx":-0.0,'
                  b'"5xx":999999999999999}},"b":[1],"c":{"responses":[1,2,3,4,5]},"":{}}}',
    "not_object": b'[{"replica_stats":{}}]',
    "dup_keys": b'{"replica_stats":{"u":{"requests":1,"failures":0},"u":{"requests":2,'
                b'"failures":0,"responses":{"2xx":1,"2xx":2}}},"replica_stats":5}',
}
put("ctl_lb_sync", ctl_sync)
