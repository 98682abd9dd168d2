"""sky-controller --mode serve against the real local cloud (root: netns hosts).

Drives the controller's HTTP API directly (docs/serve-api.md) with short timings
(SKY_SERVE_* environment variables): a service from examples/serve/http_server
becomes READY and answers through its sky-lb; request load scales it up and the
quiet scales it down; a kill -9 of the controller in the middle of a launch and
a restart duplicate nothing and leak nothing; a preempted replica leaves the
LB's ready set within about a second and is replaced under a new id; a
service-only update relabels replicas; down removes everything. Teardown checks
that no namespace, agent, LB or daemon of the test is left.
"""
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from skytest import api, waits
from skytest.home import HomeMixin
from skytest.paths import BUILD_DIR, SKY_CONTROLLER
from skytest.paths import SOURCE_DIR as SRC
from skytest.procs import pid_alive

# Every wait polls the controller's API; ten times a second is enough.
wait_for = functools.partial(waits.wait_for, interval=0.1)

pytestmark = pytest.mark.root("instances are network namespaces (ip netns)")

SERVICE_YAML = """\
service:
  readiness_probe:
    path: /health
    initial_delay_seconds: 60
  replica_policy:
    min_replicas: 1
    max_replicas: 2
    target_qps_per_replica: 3
    upscale_delay_seconds: 1
    downscale_delay_seconds: 2
resources:
  ports: 8081
  cpus: 2+
workdir: examples/serve/http_server
run: python3 server.py
"""


class Serve(HomeMixin):
    def __init__(self, root):
        self.root = root
        self.home = os.path.join(root, "home")
        os.makedirs(self.home)
        self.proc = None
        self.token = None
        self.base = None
        self.lc_tag = None
        self.lc_base = None
        # Ports of concurrently running tests must not collide with ours.
        self.lb_start = 32000 + (os.getpid() % 500) * 4

    def env(self):
        env = dict(os.environ)
        env.update({
            "SKY_HOME": self.home,
            "SKY_LOCALCLOUD_PROVISION_DELAY": "0.5",
            "SKY_SERVE_PROBE_INTERVAL": "0.5",
            "SKY_SERVE_DECISION_INTERVAL": "1",
            "SKY_SERVE_NO_REPLICA_DECISION_INTERVAL": "0.5",
            "SKY_SERVE_DRAIN_SECONDS": "0.5",
            "SKY_SERVE_JOB_STATUS_INTERVAL": "1",
            "SKY_SERVE_LB_SYNC_INTERVAL": "0.5",
            "SKY_SERVE_PROVIDER_POLL_INTERVAL": "0.5",
            "SKY_SERVE_QPS_WINDOW": "5",
            "SKY_SERVE_LAUNCH_RETRY_INITIAL": "1",
            "SKY_SERVE_LB_PORT_START": str(self.lb_start),
        })
        return env

    def start(self):
        portfile = os.path.join(self.home, "serve", "controller.port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        log = open(os.path.join(self.home, "controller.out"), "ab")
        self.proc = subprocess.Popen(
            [SKY_CONTROLLER, "--mode", "serve", "--log-level", "debug"], cwd=self.root,
            stdout=log, stderr=log, env=self.env(), start_new_session=True)
        log.close()
        wait_for(lambda: os.path.exists(portfile) and open(portfile).read().strip(), 15,
                 what="controller port file")
        self.token = open(os.path.join(self.home, "token")).read().strip()
        self.base = "http://127.0.0.1:%d" % int(open(portfile).read())
        st, h = self.api("GET", "/health")
        assert st == 200 and h["status"] == "ok", h

    def api(self, method, path, body=None, timeout=30):
        return api.request(method, self.base + path, self.token, body, timeout)

    def service(self, name):
        st, out = self.api("GET", "/api/services?names=" + name)
        assert st == 200, out
        return out["services"][0] if out["services"] else None

    def replicas(self, name):
        s = self.service(name)
        return {r["replica_id"]: r for r in s["replicas"]} if s else {}

    def lc(self, method, path, body=None):
        if not self.lc_base:
            port = int(open(os.path.join(self.home, "localcloud", "port")).read())
            self.lc_base = "http://127.0.0.1:%d" % port
            st, h = api.request("GET", self.lc_base + "/v1/health", self.token)
            assert st == 200, h
            self.lc_tag = h.get("tag")
        return api.request(method, self.lc_base + path, self.token, body, timeout=60)

    def instances(self):
        st, out = self.lc("GET", "/v1/instances")
        assert st == 200, out
        items = out["instances"] if isinstance(out, dict) else out
        return [i for i in items if i["state"] in ("PENDING", "RUNNING")]

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def cleanup(self):
        if self.proc and self.proc.poll() is not None:
            # A test that stopped the controller: bring it back to tear services down.
            try:
                self.start()
            except (AssertionError, OSError):
                pass
        if self.proc and self.proc.poll() is None and self.base:
            try:
                st, out = self.api("GET", "/api/services")
                for s in (out or {}).get("services", []):
                    self.api("POST", "/api/services/%s/down" % s["name"], {"purge": True})
                wait_for(lambda: not self.api("GET", "/api/services")[1]["services"], 60,
                         what="services torn down")
            except (OSError, AssertionError):
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.exists(os.path.join(self.home, "localcloud", "port")):
            try:
                self.lc("POST", "/v1/down")
            except OSError:
                pass
        # Anything still running or set up for this SKY_HOME is a leak: report, then remove.
        return self.wait_no_leaks(self.lc_tag, 10)


@pytest.fixture
def serve(request):
    root = tempfile.mkdtemp(prefix="sky-serve-ctl-")
    s = Serve(root)
    before = request.session.testsfailed
    s.start()
    try:
        yield s
    finally:
        failed = request.session.testsfailed > before
        leaks = s.cleanup()
        log = os.path.join(s.home, "controller.out")
        if failed and os.path.exists(log):
            # Kept for the post-mortem: pytest does not show a passing teardown's output.
            keep = os.path.join(BUILD_DIR, "Testing", "serve_controller.%s.log" % request.node.name)
            os.makedirs(os.path.dirname(keep), exist_ok=True)
            shutil.copy(log, keep)
            print("controller log kept in", keep)
        shutil.rmtree(root, ignore_errors=True)
    assert leaks == [], "left behind: %r" % leaks


def up(s, name, yaml=SERVICE_YAML):
    st, out = s.api("POST", "/api/services", {
        "name": name, "yaml": yaml, "yaml_path": os.path.join(SRC, "svc.yaml"), "cwd": SRC})
    assert st == 200, out
    return out


def wait_ready(s, name, n, timeout=60):
    def ok():
        svc = s.service(name)
        if not svc or svc["status"] != "READY":
            return None
        ready = [r for r in svc["replicas"] if r["status"] == "READY"]
        alive = [r for r in svc["replicas"] if r["status"] not in ("SHUTTING_DOWN",)]
        return svc if len(ready) == n and len(alive) == n else None
    return wait_for(ok, timeout, what="%d READY replica(s) of %s" % (n, name))


def lb_get(port, path="/"):
    return api.get("http://127.0.0.1:%d%s" % (port, path), 3)


def wait_lb(port, path, pred, timeout, what):
    """Polls the LB at 2 requests/s: under target_qps_per_replica (3), so that
    waiting for a route can never scale the service up by itself."""
    return wait_for(lambda: pred(*lb_get(port, path)), timeout, interval=0.5, what=what)


def lb_pids(s):
    return sorted(pid for pid, cmd in s.home_processes()
                  if os.path.basename(cmd.split(" ")[0]) == "sky-lb")


def owners_unique(s):
    owners = [i["owner"] for i in s.instances() if i["owner"].startswith("serve:")]
    return len(owners) == len(set(owners)), owners


def test_spec_errors_and_api_contract(serve):
    s = serve
    st, out = s.api("POST", "/api/services", {"name": "bad", "yaml": "service:\n  foo: 1\n",
                                              "yaml_path": "/x/bad.yaml", "cwd": SRC})
    assert st == 400 and "bad.yaml:" in out["error"], out
    st, out = s.api("POST", "/api/services", {"name": "Bad_Name", "yaml": SERVICE_YAML,
                                              "cwd": SRC})
    assert st == 400, out
    st, out = s.api("GET", "/api/services/nope/logs?target=controller")
    assert (st, out) == (404, {"error": "Service nope does not exist."})
    st, out = s.api("POST", "/api/services/nope/down", {})
    assert (st, out) == (404, {"error": "Service nope does not exist."})
    for token in (None, "wrong"):
        st, out = api.request("GET", s.base + "/api/services", token=token)
        assert (st, out) == (401, {"error": "missing or bad token"})
    out = up(s, "contract")
    assert out["name"] == "contract" and out["lb_port"] >= s.lb_start
    assert out["endpoint"].endswith(":%d" % out["lb_port"])
    assert "Readiness probe method:" in out["spec_repr"]
    st, dup = s.api("POST", "/api/services", {"name": "contract", "yaml": SERVICE_YAML,
                                              "cwd": SRC})
    assert (st, dup) == (409, {"error": "Service contract already exists."})
    st, info = s.api("GET", "/autoscaler/info?name=contract")
    assert st == 200 and info["min_replicas"] == 1 and info["max_replicas"] == 2, info


def test_lifecycle_scale_restart_preempt_update_down(serve):
    s = serve
    out = up(s, "web")
    port = out["lb_port"]
    svc = wait_ready(s, "web", 1)
    assert svc["version"] == 1 and svc["active_versions"] == [1]
    assert svc["ready"] == 1 and svc["total"] == 1
    assert svc["uptime"] is not None
    r1 = svc["replicas"][0]
    assert r1["endpoint"].startswith("http://198.18.") and r1["endpoint"].endswith(":8081")
    assert r1["replica_id"] == 1 and r1["instance_id"]
    wait_lb(port, "/hello", lambda st, _: st == 200, 10, what="the LB routes to replica 1")
    st, body = lb_get(port, "/hello")
    assert "(replica 1)" in body, body

    # Load through the LB: 60 requests in a 5 s window = 12 qps > 3 per replica -> 2 replicas.
    for _ in range(60):
        assert lb_get(port, "/load")[0] == 200
    wait_ready(s, "web", 2, timeout=40)
    seen = set()
    for _ in range(20):
        st, body = lb_get(port, "/who")
        assert st == 200
        seen.add(body.strip().rsplit("(replica ", 1)[-1].rstrip(")"))
    assert len(seen) == 2, seen
    # Quiet: the window empties, the downscale delay passes -> back to 1.
    wait_ready(s, "web", 1, timeout=40)

    # kill -9 in the middle of a launch, then restart: nothing twice, nothing lost.
    lb_before = lb_pids(s)
    assert len(lb_before) == 1, lb_before
    keep = sorted(s.replicas("web"))
    st, _ = s.api("POST", "/api/services/web/terminate_replica", {"replica_id": keep[0]})
    assert st == 200
    st, again = s.api("POST", "/api/services/web/terminate_replica", {"replica_id": keep[0]})
    assert st == 409, again
    wait_for(lambda: any(r["status"] == "PROVISIONING" for r in s.replicas("web").values()), 20,
             what="a replacement PROVISIONING")
    s.kill9()
    s.start()
    svc = wait_ready(s, "web", 1, timeout=60)
    assert lb_pids(s) == lb_before  # re-adopted, not restarted
    ids = sorted(r["replica_id"] for r in svc["replicas"])
    assert ids[0] > keep[0], (ids, keep)
    ok, owners = owners_unique(s)
    assert ok, owners
    wait_for(lambda: len(s.instances()) == 1, 20, what="exactly one instance after recovery")
    # The replica-id counter survived: the next id is above every id seen so far.
    wait_lb(port, "/after-restart", lambda _, body: "(replica %d)" % ids[0] in body, 10,
             what="the LB routing to the recovered replica")

    # Preemption: out of the ready set within ~1 s, then replaced under a new id.
    victim = svc["replicas"][0]
    st, _ = s.lc("POST", "/v1/instances/%s/preempt?force=1" % victim["instance_id"])
    assert st == 200
    t0 = time.time()
    wait_for(lambda: s.replicas("web").get(victim["replica_id"]) is None or
             s.replicas("web")[victim["replica_id"]]["status"] != "READY", 5,
             what="the preempted replica leaving READY")
    detect = time.time() - t0
    assert detect < 3.0, detect
    svc = wait_ready(s, "web", 1, timeout=60)
    new_id = svc["replicas"][0]["replica_id"]
    assert new_id > victim["replica_id"], (new_id, victim)
    wait_lb(port, "/x", lambda _, body: "(replica %d)" % new_id in body, 10,
             what="the LB routing to the replacement")

    # Service-only update: version 2, the same replica relabelled (no relaunch).
    yaml2 = SERVICE_YAML.replace("initial_delay_seconds: 60", "initial_delay_seconds: 61")
    st, out = s.api("POST", "/api/services/web/update", {"yaml": yaml2, "cwd": SRC,
                                                         "mode": "rolling"})
    assert st == 200 and out["version"] == 2, out
    svc = wait_for(lambda: (lambda v: v if v["active_versions"] == [2] else None)(
        s.service("web")), 10, what="version 2 active")
    assert [r["replica_id"] for r in svc["replicas"]] == [new_id]
    assert svc["replicas"][0]["version"] == 2

    # Logs: controller, load balancer, replica.
    st, text = s.api("GET", "/api/services/web/logs?target=replica&replica_id=%d" % new_id)
    assert st == 200 and b"submitted to the agent" in text, text[-500:]
    st, text = s.api("GET", "/api/services/web/logs?target=load_balancer&tail=50")
    assert st == 200 and b"sky-lb" in text
    # Persisted autoscaler state knows version 2 (bug #8562 fixed).
    st, info = s.api("GET", "/autoscaler/info?name=web")
    assert info["latest_version"] == 2, info

    # Down: everything goes, the LB too.
    lbs = lb_pids(s)
    assert len(lbs) == 1, lbs
    st, _ = s.api("POST", "/api/services/web/down", {"purge": False})
    assert st == 200
    wait_for(lambda: s.service("web") is None, 30, what="service removed")
    wait_for(lambda: not s.instances(), 20, what="instances terminated")
    wait_for(lambda: not pid_alive(lbs[0]), 10, what="the LB gone")


def test_sigterm_keeps_replicas_and_lb_then_readopts(serve):
    s = serve
    out = up(s, "keep")
    port = out["lb_port"]
    svc = wait_ready(s, "keep", 1)
    rid = svc["replicas"][0]["replica_id"]
    wait_lb(port, "/before", lambda _, body: "(replica %d)" % rid in body, 10,
             what="the LB routing to the replica")
    # The LB's admin listener: on loopback, behind the controller's token.
    metrics = svc["lb_metrics_url"]
    assert metrics.startswith("http://127.0.0.1:") and metrics.endswith("/metrics"), metrics
    assert lb_metric(s, metrics, 'sky_lb_requests_total{code="200"}') >= 1
    assert api.request("GET", metrics)[0] == 401
    assert api.request("GET", metrics, "wrong")[0] == 401
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0
    # Replica and LB keep serving with no controller.
    time.sleep(1.0)
    st, body = lb_get(port, "/still")
    assert st == 200 and "(replica %d)" % rid in body, body
    before = lb_pids(s)
    assert len(before) == 1
    s.start()
    svc = wait_ready(s, "keep", 1)
    assert [r["replica_id"] for r in svc["replicas"]] == [rid]
    time.sleep(1.5)
    assert lb_pids(s) == before
    assert len(s.instances()) == 1
    assert s.service("keep")["lb_metrics_url"] == metrics
    # An LB that dies is restarted, its metrics where they were (fresh counters).
    os.kill(before[0], signal.SIGKILL)
    wait_lb(port, "/back", lambda st, _: st == 200, 20, what="the LB restarted")
    assert s.service("keep")["lb_metrics_url"] == metrics
    assert lb_metric(s, metrics, 'sky_lb_requests_total{code="200"}') >= 1


def lb_metric(s, url, series):
    """The value of one series in the LB's Prometheus text."""
    st, text = api.request("GET", url, s.token)
    assert st == 200, text
    for line in text.decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError("no %s in %s" % (series, text[:2000]))


SPOT_YAML = """\
service:
  readiness_probe:
    path: /health
    initial_delay_seconds: 60
  replica_policy:
    min_replicas: 2
    dynamic_ondemand_fallback: true
    spot_placer: dynamic_fallback
resources:
  ports: 8081
  cpus: 2+
  use_spot: true
workdir: examples/serve/http_server
run: python3 server.py
"""


def test_spot_fallback_and_placer_follow_the_seed(serve):
    """serve_spot_policy.rst: on-demand replicas cover missing spot capacity and are
    scaled down once spot replicas are READY; a preempted spot replica is replaced."""
    s = serve
    # The controller starts the local cloud on first use; make it exist now and
    # take every spot offer away before the service comes up.
    out = up(s, "spot", SPOT_YAML)
    port = out["lb_port"]
    wait_for(lambda: os.path.exists(os.path.join(s.home, "localcloud", "port")), 20,
             what="the local cloud")
    st, cap = s.lc("POST", "/v1/capacity", {"all": True, "capacity": 0})
    assert st == 200, cap

    def od_ready():
        reps = s.replicas("spot").values()
        od = [r for r in reps if not r["is_spot"] and r["status"] == "READY"]
        return len(od) >= 2
    wait_for(od_ready, 60, what="2 on-demand fallback replicas READY")
    svc = s.service("spot")
    assert svc["status"] == "READY"
    wait_for(lambda: lb_get(port, "/od")[0] == 200, 10, what="traffic on on-demand replicas")

    st, cap = s.lc("POST", "/v1/capacity", {"all": True, "capacity": None})
    assert st == 200, cap

    def only_spot():
        reps = list(s.replicas("spot").values())
        ready_spot = [r for r in reps if r["is_spot"] and r["status"] == "READY"]
        od = [r for r in reps if not r["is_spot"]]
        return ready_spot if len(ready_spot) == 2 and not od else None
    spots = wait_for(only_spot, 90, what="2 spot replicas READY and the on-demand ones gone")
    # SpotHedge spreads the spot replicas over different zones.
    assert spots[0]["zone"] != spots[1]["zone"], spots
    ok, owners = owners_unique(s)
    assert ok, owners

    victim = spots[0]
    st, _ = s.lc("POST", "/v1/instances/%s/preempt" % victim["instance_id"])
    assert st == 200
    wait_for(lambda: victim["replica_id"] not in s.replicas("spot"), 10,
             what="the preempted replica removed")
    # The LB drops it at its next sync (every 0.5 s here); then no request may reach it.
    time.sleep(1.5)
    for _ in range(10):
        st, body = lb_get(port, "/after-preempt")
        assert st == 200, body
        assert "(replica %d)" % victim["replica_id"] not in body
    again = wait_for(only_spot, 90, what="spot capacity restored after the preemption")
    assert max(r["replica_id"] for r in again) > max(r["replica_id"] for r in spots)
    st, info = s.api("GET", "/autoscaler/info?name=spot")
    assert info["target_num_replicas"] == 2, info


BACKOFF_YAML = """\
service:
  readiness_probe:
    path: /health
    initial_delay_seconds: 60
  replica_policy:
    min_replicas: 2
    num_overprovision: 1
    dynamic_ondemand_fallback: true
    fallback_covers_overprovision: false
    spot_placer: spread_backoff
resources:
  ports: 8081
  cpus: 2+
  use_spot: true
  any_of:
    - zone: us-east-1a
    - zone: us-east-1b
    - zone: us-east-1f
workdir: examples/serve/http_server
run: python3 server.py
"""


def placer_state(s, name):
    """The controller's persisted spot placer state: {zone: (status, failures)}."""
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(s.home, "serve", "services.db"),
                         uri=True, timeout=10)
    try:
        row = db.execute("SELECT placer_state FROM service_meta WHERE service_name=?",
                         (name,)).fetchone()
    finally:
        db.close()
    return {l["zone"]: (l["status"], l["failures"]) for l in json.loads(row[0])} if row else {}


def test_spread_backoff_stacks_backs_off_and_hedges(serve):
    """spot_placer: spread_backoff with only us-east-1b holding spot: the empty zones
    fail once each and back off (no launch per decision, as dynamic_fallback's cycle
    does), the three spot replicas stack in us-east-1b, and with
    fallback_covers_overprovision: false no on-demand replica runs once two spot
    replicas are READY, nor when one of three is preempted."""
    s = serve
    up(s, "hedge", BACKOFF_YAML)
    wait_for(lambda: os.path.exists(os.path.join(s.home, "localcloud", "port")), 20,
             what="the local cloud")
    for zone, cap in (("us-east-1a", 0), ("us-east-1f", 0), ("us-east-1b", 3)):
        st, out = s.lc("POST", "/v1/capacity", {"zone": zone, "capacity": cap})
        assert st == 200, out

    def stacked():
        reps = list(s.replicas("hedge").values())
        spot = [r for r in reps if r["is_spot"] and r["status"] == "READY"]
        od = [r for r in reps if not r["is_spot"]]
        return spot if len(spot) == 3 and not od else None
    spots = wait_for(stacked, 90, what="3 spot replicas READY and no on-demand")
    assert {r["zone"] for r in spots} == {"us-east-1b"}, spots
    # Each empty zone failed (or lost a replica) a few times at most in those seconds: the
    # first backoff is 15 decisions (15 s here). dynamic_fallback would try one per second.
    st = placer_state(s, "hedge")
    assert st["us-east-1b"] == ("ACTIVE", 0), st
    for z in ("us-east-1a", "us-east-1f"):
        assert st[z][0] == "PREEMPTED" and 1 <= st[z][1] <= 3, st
    # Nothing is missing: no launch, so no failure, while the fleet is whole.
    time.sleep(3)
    assert placer_state(s, "hedge") == st

    # One spot replica is preempted: two READY still meet the target, so no on-demand
    # (the reference's fallback covers the overprovisioned one too); us-east-1b backs
    # off and gets the successor after its backoff, the empty zones being full.
    victim = spots[0]
    st_, _ = s.lc("POST", "/v1/instances/%s/preempt" % victim["instance_id"])
    assert st_ == 200
    deadline = time.time() + 60
    while time.time() < deadline:
        reps = list(s.replicas("hedge").values())
        assert not [r for r in reps if not r["is_spot"]], reps
        if stacked() and victim["replica_id"] not in s.replicas("hedge"):
            break
        time.sleep(0.2)
    again = stacked()
    assert again and {r["zone"] for r in again} == {"us-east-1b"}, again
    assert placer_state(s, "hedge")["us-east-1b"] == ("ACTIVE", 0)
    ok, owners = owners_unique(s)
    assert ok, owners

def test_env_overrides_fill_the_yaml_and_survive_a_restart(serve):
    """`sky serve up --env`: the API's "envs" fill an env the YAML leaves
    empty (here the port the app listens on), and are stored with the
    version, so a restarted controller still has them."""
    s = serve
    yaml = SERVICE_YAML.replace("ports: 8081", "ports: 8093") + "envs:\n  PORT:\n"
    body = {"name": "envs", "yaml": yaml, "yaml_path": "/x/svc.yaml", "cwd": SRC}
    st, out = s.api("POST", "/api/services", body)
    assert st == 400 and "PORT" in out["error"], out  # no value: refused, as the reference does
    for bad in ({"PORT": 8093}, ["PORT=8093"], {"": "x"}):
        st, out = s.api("POST", "/api/services", dict(body, envs=bad))
        assert st == 400 and "envs" in out["error"], (bad, out)
    st, out = s.api("POST", "/api/services", dict(body, envs={"PORT": "8093"}))
    assert st == 200, out
    port = out["lb_port"]
    svc = wait_ready(s, "envs", 1)
    rid = svc["replicas"][0]["replica_id"]
    assert svc["replicas"][0]["endpoint"].endswith(":8093")
    wait_lb(port, "/e", lambda _, body: "(replica %d)" % rid in body, 10,
            what="the LB routing to the replica listening on $PORT")
    s.kill9()
    s.start()
    svc = wait_ready(s, "envs", 1)
    assert [r["replica_id"] for r in svc["replicas"]] == [rid], svc
    # An update without the override is refused; with another value it is a new version.
    st, out = s.api("POST", "/api/services/envs/update", {"yaml": yaml, "cwd": SRC})
    assert st == 400 and "PORT" in out["error"], out
    st, out = s.api("POST", "/api/services/envs/update",
                    {"yaml": yaml, "cwd": SRC, "envs": {"PORT": "8093", "X": "1"}})
    assert st == 200 and out["version"] == 2, out
