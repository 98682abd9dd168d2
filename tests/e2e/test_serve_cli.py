"""`sky serve` CLI against a fake serve controller (docs/serve-api.md).

Checks the CLI's own contract without the real daemon: argument handling and
exit codes, what it sends, the tables and messages it prints. The fake
speaks the documented API on loopback; its port and token are written where
the CLI looks for them ($SKY_HOME/serve/controller.port, $SKY_HOME/token), so
the CLI never starts a daemon here.
"""
import http.server
import json
import os
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

from serve_util import parse_status
from skytest.paths import SKY, SLOW

TOKEN = "f" * 64


def replica(rid, spot=True, status="READY", ep=None, launched=60.0, zone="local-a1a",
            version=1):
    return {"replica_id": rid, "version": version, "status": status,
            "endpoint": ep, "launched_at": time.time() - launched,
            "resources": "1x Local([Spot]vCPU=2)" if spot else "1x Local(vCPU=2)",
            "is_spot": spot, "cloud": "local", "region": "local-a", "zone": zone,
            "instance_id": "i-%04d" % rid, "ip": "198.18.0.%d" % (rid + 1)}


def service(name, replicas=(), status="READY", uptime=77.4, versions=(1,), endpoint=None):
    reps = list(replicas)
    return {"name": name, "status": status,
            "uptime": None if uptime is None else time.time() - uptime,
            "version": max(versions) if versions else 1, "active_versions": list(versions),
            "endpoint": endpoint or "203.0.113.7:30001", "lb_port": 30001,
            "load_balancing_policy": "least_load",
            "autoscaling_policy": "Autoscaling from 2 to 3 replicas (target QPS per replica: 1)",
            "requested_resources": "1x Local([Spot]vCPU=2+)",
            "ready": sum(1 for r in reps if r["status"] == "READY"),
            "total": len(reps), "replicas": reps}


class Fake:
    """State and request log of the fake controller."""

    def __init__(self):
        self.services = {}
        self.requests = []
        self.up_reply = None       # (status, body) override for POST /api/services
        self.down_status = {}      # name -> status for POST .../down
        self.logs_body = "line 1\nline 2\n"
        self.register_polls = 1    # GETs before a new service leaves CONTROLLER_INIT
        self.lock = threading.Lock()


def make_handler(fake):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _json(self, code, doc):
            data = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            return json.loads(raw) if raw else None

        def _handle(self, method):
            url = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(url.query)
            body = self._body() if method == "POST" else None
            with fake.lock:
                fake.requests.append((method, url.path, q, body))
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                return self._json(401, {"error": "missing or wrong bearer token"})
            parts = url.path.strip("/").split("/")
            if url.path in ("/health", "/v1/health"):  # the controller's and the local cloud's
                return self._json(200, {"status": "ok", "pid": os.getpid()})
            if url.path == "/api/services" and method == "GET":
                names = q.get("names", [""])[0]
                with fake.lock:
                    svcs = [s for n, s in sorted(fake.services.items())
                            if not names or n in names.split(",")]
                    for s in svcs:
                        if s["status"] == "CONTROLLER_INIT":
                            s["_polls"] = s.get("_polls", 0) + 1
                            if s["_polls"] > fake.register_polls:
                                s["status"] = "NO_REPLICA"
                    out = [{k: v for k, v in s.items() if not k.startswith("_")} for s in svcs]
                return self._json(200, {"services": out})
            if url.path == "/api/services" and method == "POST":
                if fake.up_reply:
                    return self._json(*fake.up_reply)
                name = body["name"]
                with fake.lock:
                    if name in fake.services:
                        return self._json(409, {"error": "Service %s already exists." % name})
                    fake.services[name] = service(name, status="CONTROLLER_INIT", uptime=None)
                return self._json(200, {"name": name, "endpoint": "203.0.113.7:30001",
                                        "lb_port": 30001,
                                        "spec_repr": "Readiness probe method:           GET "
                                                     "/health\nLoad Balancing Policy:"
                                                     "            least_load\n"})
            if len(parts) == 4 and parts[:2] == ["api", "services"] and method == "POST":
                name, action = parts[2], parts[3]
                if name not in fake.services:
                    return self._json(404, {"error": "Service %s does not exist." % name})
                if action == "down":
                    code = fake.down_status.get(name, 200)
                    if code != 200:
                        return self._json(code, {"error": "Service %s is in status "
                                                 "FAILED_CLEANUP; use --purge" % name})
                    return self._json(200, {})
                if action == "update":
                    return self._json(200, {"version": 2})
                if action == "terminate_replica":
                    ids = [r["replica_id"] for r in fake.services[name]["replicas"]]
                    if body["replica_id"] not in ids:
                        return self._json(404, {"error": "Replica %d of service %s does not "
                                                "exist." % (body["replica_id"], name)})
                    return self._json(200, {})
            if len(parts) == 4 and parts[3] == "logs" and method == "GET":
                if parts[2] not in fake.services:
                    return self._json(404, {"error": "Service %s does not exist." % parts[2]})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for line in fake.logs_body.splitlines(True):
                    data = line.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                return None
            return self._json(404, {"error": "no route %s %s" % (method, url.path)})

        def do_GET(self):  # noqa: N802
            self._handle("GET")

        def do_POST(self):  # noqa: N802
            self._handle("POST")

    return H


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture
def env():
    if not os.path.exists(SKY):
        pytest.fail("missing %s (build the tree first)" % SKY)
    home = tempfile.mkdtemp(prefix="sky-e2e-servecli-")
    fake = Fake()
    srv = Server(("127.0.0.1", 0), make_handler(fake))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    os.makedirs(os.path.join(home, "serve"))
    with open(os.path.join(home, "token"), "w") as f:
        f.write(TOKEN)
    with open(os.path.join(home, "serve", "controller.port"), "w") as f:
        f.write("%d\n" % srv.server_address[1])
    # `sky serve up` makes sure the local cloud runs: the fake answers its health check too.
    os.makedirs(os.path.join(home, "localcloud"))
    with open(os.path.join(home, "localcloud", "port"), "w") as f:
        f.write("%d\n" % srv.server_address[1])
    e = {k: v for k, v in os.environ.items() if k != "SKY_HOME"}
    e["SKY_HOME"] = home

    class Env:
        pass

    x = Env()
    x.home, x.fake, x.env = home, fake, e

    def run(*args, rc=0, cwd=None):
        p = subprocess.run([SKY] + list(args), env=e, cwd=cwd or home, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=60 * SLOW)
        print("$ sky %s (rc %d)\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        if rc is not None:
            assert p.returncode == rc, (p.stdout, p.stderr)
        return p

    x.run = run
    yield x
    srv.shutdown()
    srv.server_close()
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("args", [
    ["serve"],
    ["serve", "nope"],
    ["serve", "up"],
    ["serve", "up", "a.yaml", "b.yaml"],
    ["serve", "up", "a.yaml", "-n"],
    ["serve", "up", "a.yaml", "-n", "Bad_Name"],
    ["serve", "status", "--bogus"],
    ["serve", "status", "--endpoint", "--json"],
    ["serve", "update", "svc"],
    ["serve", "update", "svc", "a.yaml", "--mode", "sideways"],
    ["serve", "down"],
    ["serve", "down", "a", "-a"],
    ["serve", "down", "a", "b", "--replica-id", "1"],
    ["serve", "down", "-a", "--replica-id", "1"],
    ["serve", "down", "a", "--replica-id", "x"],
    ["serve", "logs"],
    ["serve", "logs", "svc"],
    ["serve", "logs", "svc", "1", "--controller"],
    ["serve", "logs", "svc", "--controller", "--load-balancer"],
    ["serve", "logs", "svc", "1", "2"],
    ["serve", "logs", "svc", "0"],
    ["serve", "logs", "svc", "1", "--tail", "-3"],
])
def test_usage_errors(env, args):
    p = env.run(*args, rc=2)
    assert "usage: sky serve" in p.stderr
    assert p.stdout == ""
    # Nothing but (at most) discovery reached the controller.
    assert all(r[1] == "/health" for r in env.fake.requests)


def test_help(env):
    p = env.run("serve", "--help")
    for c in ("up", "status", "update", "down", "logs"):
        assert re.search(r"^  %s\s" % c, p.stdout, re.M)
    assert "usage: sky serve up" in env.run("serve", "up", "--help").stdout


def test_up(env):
    spec = os.path.join(env.home, "svc.yaml")
    text = "service:\n  readiness_probe: /health\n  replicas: 2\nresources:\n  ports: 8081\n" \
           "run: python3 server.py\n"
    with open(spec, "w") as f:
        f.write(text)
    p = env.run("serve", "up", "svc.yaml", "-n", "http-server", "-y")
    posts = [r for r in env.fake.requests if r[0] == "POST"]
    assert len(posts) == 1 and posts[0][1] == "/api/services"
    body = posts[0][3]
    assert body == {"name": "http-server", "yaml": text, "yaml_path": spec,
                    "cwd": os.path.realpath(env.home)}
    out = p.stdout
    assert out.startswith("Service spec:\nReadiness probe method:           GET /health\n"
                          "Load Balancing Policy:            least_load\n\n")
    assert "Waiting for service 'http-server' to register...\n" in out
    assert "Service name: http-server\nEndpoint URL: 203.0.113.7:30001\n" in out
    for hint in ("sky serve status http-server\n", "sky serve status http-server --endpoint\n",
                 "sky serve logs http-server [REPLICA_ID]\n",
                 "sky serve logs http-server --controller\n",
                 "sky serve logs http-server --load-balancer\n",
                 "sky serve down http-server\n", "watch -n10 sky serve status http-server\n",
                 "curl 203.0.113.7:30001\n"):
        assert hint in out
    assert out.index("Waiting for") < out.index("Service name:")
    # It waited for registration: at least two status polls.
    polls = [r for r in env.fake.requests if r[:2] == ("GET", "/api/services")]
    assert len(polls) >= 2 and polls[0][2] == {"names": ["http-server"]}

    # Same name again: the controller's 409 as one line, rc 1.
    p = env.run("serve", "up", "svc.yaml", "-n", "http-server", "-y", rc=1)
    assert p.stderr.strip().count("\n") == 0 and "already exists" in p.stderr

    # Without -n: sky-service-<4 hex>. --env-file, then --env on top, go as "envs".
    with open(os.path.join(env.home, "svc.env"), "w") as f:
        f.write("# tokens\nHF_TOKEN='from file'\nMODEL=a\n")
    p = env.run("serve", "up", spec, "-y", "--env", "MODEL=b", "--env-file", "svc.env")
    m = re.search(r"^Service name: (\S+)$", p.stdout, re.M)
    assert m and re.fullmatch(r"sky-service-[0-9a-f]{4}", m.group(1)), p.stdout
    body = [r for r in env.fake.requests if r[0] == "POST"][-1][3]
    assert body["envs"] == {"HF_TOKEN": "from file", "MODEL": "b"}, body


def test_up_errors(env):
    p = env.run("serve", "up", "missing.yaml", "-y", rc=1)
    assert "missing.yaml" in p.stderr and p.stderr.count("\n") == 1
    p = env.run("serve", "up", "missing.yaml", "-y", "--env-file", "missing.env", rc=1)
    assert p.stderr.startswith("sky serve: --env-file: cannot read missing.env: "), p.stderr
    p = env.run("serve", "up", "missing.yaml", "-y", "--env", "=x", rc=2)
    assert "--env expects KEY=VALUE" in p.stderr, p.stderr
    assert not [r for r in env.fake.requests if r[0] == "POST"]
    spec = os.path.join(env.home, "bad.yaml")
    with open(spec, "w") as f:
        f.write("service:\n  replicas: x\n")
    # The CLI reads the YAML first: its errors show at once, and nothing is sent.
    p = env.run("serve", "up", "bad.yaml", "-n", "bad", "-y", rc=1)
    assert p.stderr == "bad.yaml:2:13: service.replicas: expected an integer, got 'x'\n"
    assert not [r for r in env.fake.requests if r[0] == "POST"]
    with open(spec, "w") as f:
        f.write("service:\n  replicas: 1\nresources:\n  ports: 8080\n")
    env.fake.up_reply = (400, {"error": "%s:2:13: replicas must be an integer" % spec})
    p = env.run("serve", "up", "bad.yaml", "-n", "bad", "-y", rc=1)
    # Spec errors the controller finds are printed as it wrote them: file:line:col: message.
    assert p.stderr == "%s:2:13: replicas must be an integer\n" % spec
    assert p.stdout == ""


def seed_services():
    return {
        "http-server": service("http-server", [
            replica(1, True, "READY", "http://198.18.0.2:8081", 185, "local-a1a"),
            replica(2, True, "READY", "http://198.18.0.3:8081", 185, "local-b1a"),
            replica(3, False, "SHUTTING_DOWN", None, 185, "local-a1a"),
            replica(4, False, "SHUTTING_DOWN", None, 185, "local-b1a"),
        ], status="READY", uptime=77.4),
    }


def test_status_tables(env):
    env.fake.services = seed_services()
    p = env.run("serve", "status")
    services, replicas, hints = parse_status(p.stdout)
    assert len(services) == 1 and hints == []
    s = services[0]
    assert (s["NAME"], s["VERSION"], s["STATUS"], s["REPLICAS"], s["ENDPOINT"]) == (
        "http-server", "1", "READY", "2/4", "203.0.113.7:30001")
    assert re.fullmatch(r"1m 1[78]s", s["UPTIME"])
    assert [r["ID"] for r in replicas] == ["1", "2", "3", "4"]
    r1 = replicas[0]
    assert (r1["SERVICE_NAME"], r1["VERSION"], r1["ENDPOINT"], r1["RESOURCES"], r1["STATUS"],
            r1["REGION"]) == ("http-server", "1", "http://198.18.0.2:8081",
                              "1x Local([Spot]vCPU=2)", "READY", "local-a")
    assert re.fullmatch(r"3 mins ago", r1["LAUNCHED"])
    assert replicas[2]["ENDPOINT"] == "-" and replicas[2]["RESOURCES"] == "1x Local(vCPU=2)"
    lines = p.stdout.split("\n")
    # Exactly the seed's columns and header spacing for this content.
    assert lines[1] == "NAME         VERSION  UPTIME  STATUS  REPLICAS  ENDPOINT"
    assert lines[5] == ("SERVICE_NAME  ID  VERSION  ENDPOINT                LAUNCHED    "
                        "RESOURCES               STATUS         REGION")
    assert lines[8] == ("http-server   3   1        -                       3 mins ago  "
                        "1x Local(vCPU=2)        SHUTTING_DOWN  local-a")

    p = env.run("serve", "status", "-v")
    services, replicas, _ = parse_status(p.stdout, verbose=True)
    assert replicas[0]["ZONE"] == "local-a1a"
    assert services[0]["AUTOSCALING_POLICY"].startswith("Autoscaling from 2 to 3 replicas")
    assert services[0]["LOAD_BALANCING_POLICY"] == "least_load"
    assert services[0]["REQUESTED_RESOURCES"] == "1x Local([Spot]vCPU=2+)"


def test_status_filters_json_endpoint(env):
    env.fake.services = seed_services()
    env.fake.services["other"] = service("other", [], status="NO_REPLICA", uptime=None,
                                         versions=(), endpoint="203.0.113.7:30002")
    p = env.run("serve", "status")
    services, replicas, _ = parse_status(p.stdout)
    assert [s["NAME"] for s in services] == ["http-server", "other"]
    assert services[1]["UPTIME"] == "-" and services[1]["VERSION"] == "-"
    assert services[1]["REPLICAS"] == "0/0"

    p = env.run("serve", "status", "other")
    services, replicas, _ = parse_status(p.stdout)
    assert [s["NAME"] for s in services] == ["other"]
    assert "Service Replicas\nNo existing replicas.\n" in p.stdout

    doc = json.loads(env.run("serve", "status", "http-server", "--json").stdout)
    assert [s["name"] for s in doc["services"]] == ["http-server"]
    assert doc["services"][0]["replicas"][0]["instance_id"] == "i-0001"

    assert env.run("serve", "status", "other", "--endpoint").stdout == "203.0.113.7:30002\n"
    p = env.run("serve", "status", "--endpoint", rc=2)
    assert "Multiple services found" in p.stderr
    p = env.run("serve", "status", "nope", "--endpoint", rc=2)
    assert "No service found" in p.stderr

    env.fake.services = {}
    assert env.run("serve", "status").stdout == "Services\nNo existing services.\n"
    assert json.loads(env.run("serve", "status", "--json").stdout) == {"services": []}


def test_status_truncates_replicas(env):
    reps = [replica(i, i % 2 == 0, "PROVISIONING") for i in range(1, 13)]
    env.fake.services = {"big": service("big", reps), "small": service("small", reps[:3])}
    p = env.run("serve", "status")
    _, replicas, hints = parse_status(p.stdout)
    assert [r["ID"] for r in replicas if r["SERVICE_NAME"] == "big"] == [
        str(i) for i in range(1, 11)]
    assert len([r for r in replicas if r["SERVICE_NAME"] == "small"]) == 3
    assert hints == ["... (use -v to show all replicas)"]
    assert p.stdout.endswith("... (use -v to show all replicas)\n")
    p = env.run("serve", "status", "-v")
    _, replicas, hints = parse_status(p.stdout, verbose=True)
    assert len(replicas) == 15 and hints == []


def test_down(env):
    env.fake.services = seed_services()
    env.fake.services["b-svc"] = service("b-svc")
    p = env.run("serve", "down", "http-server", "-y")
    assert p.stdout == "Service 'http-server' is scheduled to be terminated.\n"
    downs = [r for r in env.fake.requests if r[0] == "POST"]
    assert downs == [("POST", "/api/services/http-server/down", {}, {"purge": False})]

    env.fake.requests.clear()
    p = env.run("serve", "down", "-a", "-y", "-p")
    assert p.stdout == "Services 'b-svc', 'http-server' are scheduled to be terminated.\n"
    assert [(r[1], r[3]) for r in env.fake.requests if r[0] == "POST"] == [
        # -a: the controller exits once every service is gone (test_serve_options).
        ("/api/services/b-svc/down", {"purge": True, "stop_when_empty": True}),
        ("/api/services/http-server/down", {"purge": True, "stop_when_empty": True})]

    p = env.run("serve", "down", "nope", "-y")
    assert p.stdout == "No service to terminate.\n"
    p = env.run("serve", "down", "http-*", "-y")
    assert p.stdout == "Service 'http-server' is scheduled to be terminated.\n"

    env.fake.down_status["b-svc"] = 409
    p = env.run("serve", "down", "b-svc", "http-server", "-y", rc=1)
    assert "use --purge" in p.stderr
    assert p.stdout == "Service 'http-server' is scheduled to be terminated.\n"

    env.fake.requests.clear()
    p = env.run("serve", "down", "http-server", "--replica-id", "3", "-y")
    assert p.stdout == "Replica 3 of service 'http-server' is scheduled to be terminated.\n"
    assert [(r[1], r[3]) for r in env.fake.requests if r[0] == "POST"] == [
        ("/api/services/http-server/terminate_replica", {"replica_id": 3, "purge": False})]
    p = env.run("serve", "down", "http-server", "--replica-id", "9", "-y", rc=1)
    assert "Replica 9 of service http-server does not exist." in p.stderr

    env.fake.services = {}
    assert env.run("serve", "down", "-a", "-y").stdout == "No service to terminate.\n"


def test_update(env):
    env.fake.services = seed_services()
    spec = os.path.join(env.home, "v2.yaml")
    with open(spec, "w") as f:
        f.write("service:\n  replicas: 2\nrun: echo v2\n")
    p = env.run("serve", "update", "http-server", "v2.yaml", "--mode", "blue_green", "-y")
    assert "Service 'http-server' update scheduled: version 2, blue_green." in p.stdout
    post = [r for r in env.fake.requests if r[0] == "POST"][-1]
    assert post[1] == "/api/services/http-server/update"
    assert post[3]["mode"] == "blue_green" and post[3]["yaml_path"] == spec
    assert post[3]["yaml"].endswith("run: echo v2\n")
    assert "envs" not in post[3]
    env.run("serve", "update", "http-server", "v2.yaml", "-y", "--env", "A=1")
    post = [r for r in env.fake.requests if r[0] == "POST"][-1]
    assert post[3]["mode"] == "rolling" and post[3]["envs"] == {"A": "1"}
    p = env.run("serve", "update", "nope", "v2.yaml", "-y", rc=1)
    assert "does not exist" in p.stderr


def test_logs(env):
    env.fake.services = seed_services()
    p = env.run("serve", "logs", "http-server", "2")
    assert p.stdout == "line 1\nline 2\n"
    q = [r for r in env.fake.requests if r[1].endswith("/logs")][-1][2]
    assert q == {"target": ["replica"], "replica_id": ["2"], "follow": ["1"]}
    env.run("serve", "logs", "http-server", "--controller", "--tail", "5")
    q = [r for r in env.fake.requests if r[1].endswith("/logs")][-1][2]
    assert q == {"target": ["controller"], "follow": ["0"], "tail": ["5"]}
    env.run("serve", "logs", "http-server", "--load-balancer", "--no-follow")
    q = [r for r in env.fake.requests if r[1].endswith("/logs")][-1][2]
    assert q == {"target": ["load_balancer"], "follow": ["0"]}
    p = env.run("serve", "logs", "nope", "--controller", rc=1)
    assert p.stdout == "" and "Service nope does not exist." in p.stderr


def test_wrong_token_is_one_clear_error(env):
    with open(os.path.join(env.home, "token"), "w") as f:
        f.write("0" * 64)
    p = env.run("serve", "status", rc=1)
    assert p.stdout == "" and p.stderr.count("\n") == 1 and "token" in p.stderr
