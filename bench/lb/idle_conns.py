#!/usr/bin/python3
"""Opens N keep-alive connections to 127.0.0.1:PORT; each sends one GET and reads
the whole response, then the connection idles. Prints "ready <ok> <failed>" when
done and holds the connections until stdin closes or --hold seconds pass.

Connections are opened in batches so the proxy's listen backlog never overflows
(an overflow costs a 1 s SYN retransmit and says nothing about memory)."""
import argparse
import selectors
import socket
import sys
import time

REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-bench\r\n\r\n"


def response_complete(buf):
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return False
    head = buf[:i].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(buf) - i - 4 >= int(line.split(b":", 1)[1])
    if b"transfer-encoding: chunked" in head:
        return buf.endswith(b"0\r\n\r\n")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--hold", type=float, default=120.0)
    ap.add_argument("--batch-timeout", type=float, default=20.0)
    a = ap.parse_args()
    sel = selectors.DefaultSelector()
    socks, ok, failed = [], 0, 0
    for start in range(0, a.n, a.batch):
        pending = {}
        for _ in range(min(a.batch, a.n - start)):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", a.port))
            except BlockingIOError:
                pass
            except OSError:
                failed += 1
                s.close()
                continue
            pending[s] = [b"", False]
            sel.register(s, selectors.EVENT_WRITE)
        deadline = time.monotonic() + a.batch_timeout
        while pending and time.monotonic() < deadline:
            for key, ev in sel.select(timeout=0.5):
                s = key.fileobj
                st = pending.get(s)
                if st is None:
                    continue
                try:
                    if not st[1]:
                        s.send(REQ)
                        st[1] = True
                        sel.modify(s, selectors.EVENT_READ)
                        continue
                    d = s.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    failed += 1
                    sel.unregister(s)
                    s.close()
                    del pending[s]
                    continue
                st[0] += d
                if response_complete(st[0]):
                    ok += 1
                    sel.unregister(s)
                    socks.append(s)
                    del pending[s]
        for s in pending:
            failed += 1
            sel.unregister(s)
            s.close()
    print("ready %d %d" % (ok, failed), flush=True)
    end = time.monotonic() + a.hold
    sel2 = selectors.DefaultSelector()
    sel2.register(sys.stdin, selectors.EVENT_READ)
    while time.monotonic() < end:
        if sel2.select(timeout=0.5):
            if not sys.stdin.read(1):
                break
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
