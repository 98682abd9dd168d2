"""sky-localcloud: instances as network-namespace hosts, the spot market, the CLI.

Real processes as root: each test runs its own daemon on a temporary SKY_HOME
and cleans up every namespace, veth, agent and daemon it caused (finally:
POST /v1/down, then kill + `ip netns del` for anything left).
"""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from skytest import api
from skytest.paths import BUILD_DIR, SKY, SKY_AGENT, SKY_LOCALCLOUD, require_binaries
from skytest.procs import links, netns_list, netns_pids, pid_alive
from skytest.waits import wait_for

LCPROV = os.path.join(BUILD_DIR, "tests", "lcprov")  # tests/support/prog_lcprov.c
DELAY = "0.2"
ZONE_A = "us-east-1a"  # catalog zones (data/catalog.yaml)
ZONE_B = "us-east-1b"

pytestmark = pytest.mark.root("instances are network namespaces (ip netns)")

# A tiny HTTP server naming itself, for "two hosts on one port" checks.
# (python3 -m http.server does a reverse DNS lookup at bind, slow in a netns.)
NAMED_SERVER = r"""
import http.server, socketserver, sys
name = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a):
        pass
class S(socketserver.TCPServer):
    allow_reuse_address = True
S(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


def reachable(ip, port, path="/health", timeout=1):
    return api.get("http://%s:%d%s" % (ip, port, path), timeout)[0] == 200


class Cloud:
    def __init__(self, home):
        self.home = home
        self.proc = None
        self.tag = None
        self.token = None
        self.base = None
        self.children = []

    def env(self):
        env = dict(os.environ)
        env["SKY_HOME"] = self.home
        env["SKY_LOCALCLOUD_PROVISION_DELAY"] = DELAY
        return env

    def start(self, *extra):
        portfile = os.path.join(self.home, "localcloud", "port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        log = open(os.path.join(self.home, "daemon.log"), "ab")
        self.proc = subprocess.Popen(
            [SKY_LOCALCLOUD, "--home", self.home, "--provision-delay", DELAY, "--seed", "7",
             "--log-level", "debug"] + list(extra),
            stdout=log, stderr=log, env=self.env(), start_new_session=True)
        log.close()
        wait_for(lambda: os.path.exists(portfile) and open(portfile).read().strip(), 10,
                 what="port file")
        self.attach()

    def attach(self):
        port = int(open(os.path.join(self.home, "localcloud", "port")).read())
        self.token = open(os.path.join(self.home, "token")).read().strip()
        self.base = "http://127.0.0.1:%d" % port
        st, h = self.api("GET", "/v1/health")
        assert st == 200, h
        self.tag = h["tag"]
        self.mode = h["mode"]

    def api(self, method, path, body=None, timeout=60):
        return api.request(method, self.base + path, self.token, body, timeout)

    def launch(self, zone=ZONE_A, spot=True, price=0.1, owner="test:x", itype="m6i.large"):
        return self.api("POST", "/v1/instances", {
            "cloud": "aws", "region": zone[:-1], "zone": zone, "instance_type": itype,
            "spot": spot, "price": price, "owner": owner})

    def launch_ok(self, **kw):
        st, inst = self.launch(**kw)
        assert st == 200, inst
        assert inst["state"] == "RUNNING"
        return inst

    def describe(self, iid):
        st, inst = self.api("GET", "/v1/instances/" + iid)
        assert st == 200, inst
        return inst

    def sky(self, *args, timeout=60):
        return subprocess.run([SKY, "cloud"] + list(args), capture_output=True, text=True,
                              env=self.env(), timeout=timeout)

    def our_netns(self):
        return [n for n in netns_list() if self.tag and n.startswith("sky-%s-" % self.tag)]

    def our_veths(self):
        return [n for n in links() if self.tag and n.startswith("sv%s" % self.tag)]

    def cleanup(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait()
        if self.base:
            try:
                self.api("POST", "/v1/down", timeout=30)
            except OSError:
                pass
        if self.proc:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pidfile = os.path.join(self.home, "localcloud", "pid")
        if os.path.exists(pidfile):
            try:
                pid = int(open(pidfile).read())
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if b"sky-localcloud" in f.read():
                        os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        # Belt and braces: nothing of ours may outlive the test.
        for ns in self.our_netns():
            for pid in netns_pids(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for v in self.our_veths():
            subprocess.run(["ip", "link", "del", v], capture_output=True)


@pytest.fixture
def cloud():
    require_binaries(SKY_LOCALCLOUD, SKY_AGENT)
    home = tempfile.mkdtemp(prefix="sky-lc-test-")
    c = Cloud(home)
    try:
        yield c
    finally:
        c.cleanup()
        reports = []
        for log in ("daemon.log", "localcloud/localcloud.log"):
            path = os.path.join(home, log)
            if os.path.exists(path):
                text = open(path, errors="replace").read()
                if "runtime error:" in text or "Sanitizer" in text:
                    reports.append(text[-6000:])
        shutil.rmtree(home, ignore_errors=True)
        assert not reports, "sanitizer report in the daemon's log:\n" + "\n".join(reports)


def test_launch_and_terminate(cloud):
    cloud.start()
    t0 = time.time()
    inst = cloud.launch_ok(owner="serve:svc:1")
    assert time.time() - t0 >= float(DELAY)
    assert inst["id"] == "i-000001"
    assert inst["ip"].startswith("198.18.")
    assert inst["agent_port"] == 8790 and inst["port_offset"] == 0
    ns = inst["netns"]
    assert ns in netns_list()
    assert reachable(inst["ip"], 8790)
    # The agent lives in the instance's namespace.
    assert inst["agent_pid"] in netns_pids(ns)
    st, lst = cloud.api("GET", "/v1/instances")
    assert [i["id"] for i in lst["instances"]] == ["i-000001"]
    assert lst["instances"][0]["owner"] == "serve:svc:1"

    st, out = cloud.api("DELETE", "/v1/instances/" + inst["id"])
    assert st == 200 and out["state"] == "TERMINATED"
    assert ns not in netns_list()
    assert not cloud.our_veths()
    assert not pid_alive(inst["agent_pid"])
    assert not reachable(inst["ip"], 8790)
    assert cloud.describe(inst["id"])["state"] == "TERMINATED"
    st, lst = cloud.api("GET", "/v1/instances")
    assert lst["instances"] == []
    # Idempotent.
    st, out = cloud.api("DELETE", "/v1/instances/" + inst["id"])
    assert st == 200 and out["state"] == "TERMINATED"
    st, out = cloud.api("GET", "/v1/instances/i-999999")
    assert st == 404 and out["code"] == "not_found"
    # Ids are monotonic.
    assert cloud.launch_ok()["id"] == "i-000002"


def test_invalid_requests(cloud):
    cloud.start()
    st, out = cloud.api("POST", "/v1/instances", {"instance_type": "m6i.large"})
    assert st == 400 and out["code"] == "invalid"
    st, out = cloud.launch(zone="no-such-zone")
    assert st == 400 and out["code"] == "invalid"
    st, out = cloud.api("POST", "/v1/instances", {"zone": ZONE_A, "instance_type": "x",
                                                  "price": -1})
    assert st == 400 and out["code"] == "invalid"
    st, out = cloud.api("POST", "/v1/capacity", {"zone": ZONE_A, "capacity": -3})
    assert st == 400
    # Token required: the 401's body is the error object, every byte of it.
    for token in (None, "wrong"):
        st, out = api.request("GET", cloud.base + "/v1/instances", token=token)
        assert (st, out) == (401, {"error": "missing or bad token"})


def test_two_instances_same_port(cloud):
    cloud.start()
    a = cloud.launch_ok()
    b = cloud.launch_ok(spot=False)
    assert a["ip"] != b["ip"]
    for inst, name in ((a, "alpha"), (b, "beta")):
        p = subprocess.Popen(["ip", "netns", "exec", inst["netns"], sys.executable, "-c",
                              NAMED_SERVER, "8081", name], start_new_session=True)
        cloud.children.append(p)
    wait_for(lambda: reachable(a["ip"], 8081, "/") and reachable(b["ip"], 8081, "/"), 30,
             what="both servers on 8081")
    assert api.get("http://%s:8081/" % a["ip"], 2)[1] == "alpha"
    assert api.get("http://%s:8081/" % b["ip"], 2)[1] == "beta"
    # Terminating a host kills what runs on it.
    cloud.api("DELETE", "/v1/instances/" + a["id"])
    wait_for(lambda: cloud.children[0].poll() is not None, 10, what="server alpha killed")
    assert api.get("http://%s:8081/" % b["ip"], 2)[1] == "beta"


def test_preempt(cloud):
    cloud.start()
    inst = cloud.launch_ok()
    ondemand = cloud.launch_ok(spot=False)
    ns = inst["netns"]
    p = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"], start_new_session=True)
    cloud.children.append(p)
    wait_for(lambda: p.pid in netns_pids(ns), 5, what="sleep in the namespace")

    r = cloud.sky("preempt", inst["id"])
    assert r.returncode == 0, r.stderr
    assert inst["id"] in r.stdout
    assert cloud.describe(inst["id"])["state"] == "PREEMPTED"
    assert not reachable(inst["ip"], 8790)
    assert ns not in netns_list()
    assert not [v for v in cloud.our_veths() if v.endswith(inst["id"][2:])]
    assert not pid_alive(inst["agent_pid"])
    p.wait(timeout=5)  # killed with the host
    # Still listed (not TERMINATED) until the owner terminates it.
    st, lst = cloud.api("GET", "/v1/instances")
    assert {i["id"]: i["state"] for i in lst["instances"]}[inst["id"]] == "PREEMPTED"
    # On-demand instances are not preempted.
    st, out = cloud.api("POST", "/v1/instances/%s/preempt" % ondemand["id"])
    assert st == 409
    assert cloud.describe(ondemand["id"])["state"] == "RUNNING"
    assert cloud.sky("preempt").returncode == 2
    # Its owner terminates it: only the state changes. Its resources went with
    # the preemption, and tearing it down again would look for its processes by
    # a namespace inode the kernel may have given to someone else's host since.
    st, out = cloud.api("DELETE", "/v1/instances/" + inst["id"])
    assert st == 200 and out["state"] == "TERMINATED"
    log = open(os.path.join(cloud.home, "daemon.log")).read()
    assert log.count("%s PREEMPTED: resources released" % inst["id"]) == 1, log
    assert "%s TERMINATED: resources released" % inst["id"] not in log, log


def test_vanished_host_detected(cloud):
    cloud.start()
    a = cloud.launch_ok()
    b = cloud.launch_ok(spot=False)
    # Someone removes a's namespace behind the daemon's back: the VM vanished.
    # Its processes still hold the (now nameless) namespace; the daemon finds
    # them by the namespace's inode and kills them.
    subprocess.run(["ip", "netns", "del", a["netns"]], check=True)
    assert cloud.describe(a["id"])["state"] == "PREEMPTED"
    wait_for(lambda: not pid_alive(a["agent_pid"]), 5, what="orphaned agent killed")
    wait_for(lambda: not reachable(a["ip"], 8790), 5, what="a unreachable")
    wait_for(lambda: not [v for v in cloud.our_veths() if v.endswith(a["id"][2:])], 5,
             what="a's veth removed")
    # b's agent dies: the instance failed.
    os.kill(b["agent_pid"], signal.SIGKILL)
    wait_for(lambda: cloud.describe(b["id"])["state"] == "FAILED", 5, what="FAILED")
    wait_for(lambda: b["netns"] not in netns_list(), 5, what="b cleaned up")


def test_zero_capacity_fails_fast(cloud):
    cloud.start()
    r = cloud.sky("capacity", ZONE_A, "0")
    assert r.returncode == 0, r.stderr
    t0 = time.time()
    st, out = cloud.launch(zone=ZONE_A, spot=True)
    assert st == 409 and out["code"] == "no_capacity", out
    assert time.time() - t0 < 1.0
    # Other zones and on-demand are unaffected.
    cloud.launch_ok(zone=ZONE_B, spot=True)
    cloud.launch_ok(zone=ZONE_A, spot=False)
    # Capacity 1 -> one fits, the second does not; unlimited lifts it.
    assert cloud.sky("capacity", ZONE_A, "1").returncode == 0
    cloud.launch_ok(zone=ZONE_A)
    assert cloud.launch(zone=ZONE_A)[0] == 409
    assert cloud.sky("capacity", ZONE_A, "unlimited").returncode == 0
    cloud.launch_ok(zone=ZONE_A)
    # --all 0 preempts every spot instance, leaves on-demand alone.
    r = cloud.sky("capacity", "--all", "0")
    assert r.returncode == 0 and "Preempted 3" in r.stdout, r.stdout
    st, lst = cloud.api("GET", "/v1/instances")
    states = sorted((i["spot"], i["state"]) for i in lst["instances"])
    assert states == [(False, "RUNNING")] + [(True, "PREEMPTED")] * 3
    assert cloud.sky("capacity", ZONE_A).returncode == 2
    assert cloud.sky("capacity", ZONE_A, "-1").returncode == 2


def test_preempted_while_provisioning(cloud):
    """Capacity drops while launches are in every phase (namespace setup, agent
    boot, provisioning delay): each launch fails with no_capacity and leaves
    no agent, namespace or veth behind."""
    cloud.start()
    results = []

    def go(delay):
        results.append(cloud.api("POST", "/v1/instances", {
            "zone": ZONE_A, "instance_type": "m6i.large", "spot": True,
            "provision_delay": delay}))

    threads = [threading.Thread(target=go, args=(0.05 * (i % 4),)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    st, out = cloud.api("POST", "/v1/capacity", {"zone": ZONE_A, "capacity": 0})
    assert st == 200
    for t in threads:
        t.join(60)
    assert len(results) == 8
    for st, r in results:
        assert (st, r["code"]) == (409, "no_capacity") or r.get("state") == "RUNNING", r
    st, lst = cloud.api("GET", "/v1/instances?all=1")
    for i in lst["instances"]:
        assert i["state"] == "PREEMPTED", i
        wait_for(lambda: not pid_alive(i["agent_pid"]) if i["agent_pid"] else True, 5,
                 what="agent of %s gone" % i["id"])
    wait_for(lambda: not cloud.our_netns() and not cloud.our_veths(), 5,
             what="no namespace or veth left")
    # No agent of this cloud still runs (their command lines name their disks).
    mark = cloud.home.encode() + b"/localcloud/instances/"
    for pid in os.listdir("/proc"):
        if pid.isdigit() and pid_alive(int(pid)):
            try:
                cmd = open("/proc/%s/cmdline" % pid, "rb").read()
            except OSError:
                continue
            assert mark not in cmd, (pid, cmd)


def test_capacity_drop_preempts_deterministically(cloud):
    cloud.start()
    ids = [cloud.launch_ok()["id"] for _ in range(4)]
    st, out = cloud.api("POST", "/v1/capacity", {"zone": ZONE_A, "capacity": 1})
    assert st == 200 and len(out["preempted"]) == 3
    assert set(out["preempted"]) < set(ids)
    alive = [i for i in ids if cloud.describe(i)["state"] == "RUNNING"]
    assert len(alive) == 1
    # Preempted hosts are gone by the time the call returns.
    for i in out["preempted"]:
        assert cloud.describe(i)["netns"] not in netns_list()


def write_trace(d, name, data, gap=300):
    with open(os.path.join(d, name), "w") as f:
        json.dump({"metadata": {"gap_seconds": gap}, "data": data}, f)


def test_trace_replay(cloud, tmp_path):
    cloud.start()
    tdir = tmp_path / "trace"
    tdir.mkdir()
    write_trace(str(tdir), "zz-test-1a_v100_1.json", [2, 2, 0, 0, 2])
    tick = 2.0  # gap 300 s at speed 150
    # Two spot hosts before the replay starts; tick 0 allows exactly those two.
    a = cloud.launch_ok()
    b = cloud.launch_ok()
    r = cloud.sky("replay", str(tdir), "--speed", "150", "--zones", ZONE_A)
    assert r.returncode == 0, r.stderr
    assert ZONE_A in r.stdout
    t0 = cloud.api("GET", "/v1/replay")[1]["start"]  # the daemon's clock is ours

    def at(k):  # sleep until the middle of tick k
        time.sleep(max(0, t0 + k * tick + tick / 2 - time.time()))

    # Tick 0: capacity 2, both held, a third fails fast.
    st, out = cloud.launch()
    assert st == 409 and out["code"] == "no_capacity"
    assert time.time() - t0 < tick, "test machine too slow for the tick length"
    assert cloud.describe(a["id"])["state"] == "RUNNING"
    # Tick 2: capacity 0 -> both preempted, launches fail.
    at(2)
    wait_for(lambda: all(cloud.describe(i["id"])["state"] == "PREEMPTED" for i in (a, b)), 1,
             what="preemption at tick 2")
    assert time.time() < t0 + 4 * tick, "test machine too slow for the tick length"
    wait_for(lambda: a["netns"] not in netns_list() and b["netns"] not in netns_list(), 5,
             what="preempted hosts removed")
    st, out = cloud.launch()
    assert st == 409
    st, rs = cloud.api("GET", "/v1/replay")
    assert rs["active"] and rs["tick"] in (2, 3)
    # Tick 4: capacity 2 again.
    at(4)
    c = cloud.launch_ok()
    d = cloud.launch_ok()
    assert cloud.launch()[0] == 409
    # Past the last tick the replay ends and the last values stay.
    wait_for(lambda: not cloud.api("GET", "/v1/replay")[1]["active"], 5, what="replay end")
    assert cloud.describe(c["id"])["state"] == "RUNNING"
    assert cloud.describe(d["id"])["state"] == "RUNNING"

    # Files map to catalog zones of the same name without --zones; --stop stops.
    t2 = tmp_path / "trace2"
    t2.mkdir()
    write_trace(str(t2), ZONE_B + "_v100_1.json", [0] * 100)
    write_trace(str(t2), "nowhere-9z_v100_1.json", [0] * 100)
    st, out = cloud.api("POST", "/v1/replay", {"dir": str(t2), "speed": 1})
    assert st == 200, out
    assert [(m["file"], m["zone"]) for m in out["mapping"]] == [(ZONE_B + "_v100_1.json", ZONE_B)]
    assert cloud.launch(zone=ZONE_B)[0] == 409
    r = cloud.sky("replay", "--stop")
    assert r.returncode == 0, r.stderr
    assert not cloud.api("GET", "/v1/replay")[1]["active"]
    st, out = cloud.api("POST", "/v1/replay", {"dir": str(tmp_path / "missing")})
    assert st == 400 and out["code"] == "invalid"
    assert cloud.sky("replay").returncode == 2


def test_kill9_restart_keeps_instances(cloud):
    cloud.start()
    a = cloud.launch_ok(owner="job:1")
    b = cloud.launch_ok(spot=False, owner="serve:s:2")
    gone = cloud.launch_ok()
    cloud.api("DELETE", "/v1/instances/" + gone["id"])
    cloud.proc.send_signal(signal.SIGKILL)
    cloud.proc.wait()
    # Hosts outlive the API process.
    assert reachable(a["ip"], 8790) and reachable(b["ip"], 8790)
    cloud.start()
    st, lst = cloud.api("GET", "/v1/instances")
    got = {i["id"]: i for i in lst["instances"]}
    assert sorted(got) == sorted([a["id"], b["id"]])
    for i in (a, b):
        assert got[i["id"]]["state"] == "RUNNING"
        assert got[i["id"]]["ip"] == i["ip"]
        assert got[i["id"]]["owner"] == i["owner"]
        assert reachable(i["ip"], 8790)
    assert cloud.describe(gone["id"])["state"] == "TERMINATED"
    # The id counter survived; the restarted daemon still manages the old hosts.
    assert cloud.launch_ok()["id"] == "i-000004"
    st, out = cloud.api("POST", "/v1/instances/%s/preempt" % a["id"])
    assert st == 200 and out["state"] == "PREEMPTED"
    assert a["netns"] not in netns_list()
    # SIGTERM: exits 0, instances keep running, and the next daemon has them.
    cloud.proc.send_signal(signal.SIGTERM)
    assert cloud.proc.wait(timeout=5) == 0
    assert reachable(b["ip"], 8790)
    cloud.start()
    assert cloud.describe(b["id"])["state"] == "RUNNING"


def test_cli_up_status_and_down(cloud):
    # No daemon yet: a question does not start one; `sky cloud up` does.
    r = cloud.sky("status")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "No instances.\n"
    assert not os.path.exists(os.path.join(cloud.home, "localcloud", "port"))
    r = cloud.sky("up")
    assert r.returncode == 0 and r.stdout.startswith("The local cloud is up (http://127.0.0.1:")
    cloud.attach()
    a = cloud.launch_ok(owner="cluster:c1")
    b = cloud.launch_ok(spot=False, zone=ZONE_B, owner="job:7")
    r = cloud.sky("status")
    assert r.returncode == 0
    head = r.stdout.splitlines()[0].split()
    assert head == ["ID", "CLOUD", "REGION", "ZONE", "TYPE", "SPOT", "IP", "STATE", "AGE", "$/h"]
    assert a["id"] in r.stdout and b["ip"] in r.stdout and "RUNNING" in r.stdout
    r = cloud.sky("status", "--json")
    owners = {i["id"]: i["owner"] for i in json.loads(r.stdout)["instances"]}
    assert owners == {a["id"]: "cluster:c1", b["id"]: "job:7"}
    st, lst = cloud.api("GET", "/v1/instances?owner=job%3A7")
    assert [i["id"] for i in lst["instances"]] == [b["id"]]
    assert cloud.sky("status", "--bogus").returncode == 2
    assert cloud.sky("frobnicate").returncode == 2

    pidfile = os.path.join(cloud.home, "localcloud", "pid")
    daemon_pid = int(open(pidfile).read())
    r = cloud.sky("down")
    assert r.returncode == 0, r.stderr
    assert "Terminated 2" in r.stdout
    assert not cloud.our_netns()
    assert not cloud.our_veths()
    assert not pid_alive(a["agent_pid"]) and not pid_alive(b["agent_pid"])
    wait_for(lambda: not pid_alive(daemon_pid), 5, what="daemon exit")
    # The bridge goes too, unless another local cloud on this machine still uses it
    # (checked under the daemons' machine-wide lock, as they attach veths under it).
    with open("/run/sky-localcloud/lock", "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.exists("/sys/class/net/skybr0"):
            assert os.listdir("/sys/class/net/skybr0/brif"), "bridge left without ports"
    cloud.base = None


def test_usage_accrues(cloud):
    cloud.start()
    # $3600/h = $1/s makes the arithmetic visible.
    od = cloud.launch_ok(spot=False, price=3600.0)
    sp = cloud.launch_ok(spot=True, price=360.0)
    time.sleep(1.0)
    st, u1 = cloud.api("GET", "/v1/usage")
    assert u1["on_demand"]["instances"] == 1 and u1["spot"]["instances"] == 1
    assert u1["on_demand"]["cost"] >= 1.0
    assert u1["spot"]["cost"] >= 0.1
    assert abs(u1["total"]["cost"] - u1["on_demand"]["cost"] - u1["spot"]["cost"]) < 1e-6
    cloud.api("DELETE", "/v1/instances/" + od["id"])
    cloud.api("POST", "/v1/instances/%s/preempt" % sp["id"])
    st, u2 = cloud.api("GET", "/v1/usage")
    time.sleep(0.5)
    st, u3 = cloud.api("GET", "/v1/usage")
    assert u2["on_demand"]["cost"] > u1["on_demand"]["cost"]
    # Stopped instances no longer accrue.
    assert abs(u3["total"]["cost"] - u2["total"]["cost"]) < 1e-6
    assert abs(u3["on_demand"]["instance_seconds"] - u2["on_demand"]["instance_seconds"]) < 1e-6
    r = cloud.sky("usage")
    assert r.returncode == 0 and "on-demand" in r.stdout and "spot" in r.stdout, r.stdout


def test_process_mode_fallback(cloud):
    """The non-root fallback (forced with --process-mode): same API, hosts are
    process sessions on 127.0.0.x with remapped ports."""
    cloud.start("--process-mode")
    assert cloud.mode == "process"
    log = open(os.path.join(cloud.home, "daemon.log")).read()
    assert " WARN " in log and "127.0.0.x" in log
    a = cloud.launch_ok()
    b = cloud.launch_ok(spot=False)
    for i in (a, b):
        assert i["ip"].startswith("127.0.0.") and i["ip"] != "127.0.0.1"
        assert i["port_offset"] > 0 and i["agent_port"] == 8790 + i["port_offset"]
        assert reachable(i["ip"], i["agent_port"])
        assert i["netns"] == ""
    assert a["ip"] != b["ip"] and a["port_offset"] != b["port_offset"]
    assert not cloud.our_netns()
    st, out = cloud.api("POST", "/v1/instances/%s/preempt" % a["id"])
    assert st == 200 and out["state"] == "PREEMPTED"
    assert not pid_alive(a["agent_pid"])
    assert not reachable(a["ip"], a["agent_port"])
    st, out = cloud.api("POST", "/v1/capacity", {"zone": ZONE_A, "capacity": 0})
    assert cloud.launch()[0] == 409
    st, out = cloud.api("POST", "/v1/down")
    assert st == 200 and out["terminated"] == [b["id"]]
    assert not pid_alive(b["agent_pid"])
    cloud.base = None


def test_provider_client_failover(cloud):
    """core/prov_local.c: starts the daemon, maps 409/400/404, fails over."""

    def prov(*args):
        r = subprocess.run([LCPROV] + list(args), capture_output=True, text=True,
                           env=cloud.env(), timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    out = prov("list")  # no daemon yet: the client starts it
    assert out["rc"] == 0 and out["instances"] == []
    cloud.attach()
    cloud.api("POST", "/v1/capacity", {"zone": ZONE_A, "capacity": 0})
    out = prov("failover", "job:42", ZONE_A + ":spot", ZONE_B + ":spot", ZONE_A + ":od")
    assert out["rc"] == 0, out
    assert out["chosen"] == 1
    inst = out["instance"]
    assert inst["zone"] == ZONE_B and inst["state"] == "RUNNING" and inst["spot"]
    assert inst["owner"] == "job:42"
    assert reachable(inst["ip"], inst["agent_port"])
    # Every candidate out of capacity -> CORE_ENOCAPACITY.
    out = prov("failover", "job:43", ZONE_A + ":spot", ZONE_A + ":spot")
    assert out["err_name"] == "CORE_ENOCAPACITY" and "capacity" in out["error"]
    # An invalid request stops the failover at once.
    out = prov("failover", "job:44", "no-such-zone:spot", ZONE_B + ":spot")
    assert out["err_name"] == "CORE_EINVALREQ"
    out = prov("list")
    assert [i["id"] for i in out["instances"]] == [inst["id"]]
    assert prov("describe", inst["id"])["instance"]["state"] == "RUNNING"
    assert prov("describe", "i-424242")["err_name"] == "CORE_ENOTFOUND"
    assert prov("terminate", inst["id"])["rc"] == 0
    assert prov("describe", inst["id"])["instance"]["state"] == "TERMINATED"
    assert prov("terminate", inst["id"])["rc"] == 0
    assert prov("terminate", "i-424242")["rc"] == 0
    assert prov("list")["instances"] == []


def test_concurrent_clients_start_one_daemon(cloud):
    """Clients that find no daemon at the same moment (a controller launching
    several jobs at once) start one between them: a second daemon would wait
    for the first one's lock and take over when it goes down."""
    procs = [subprocess.Popen([LCPROV, "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=cloud.env()) for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert json.loads(out)["rc"] == 0
    time.sleep(2.5)  # a daemon that lost the race gives up on the lock after 2 s
    log = open(os.path.join(cloud.home, "localcloud", "localcloud.log")).read()
    assert log.count("sky-localcloud listening on") == 1, log
    assert "another sky-localcloud runs" not in log, log
    cloud.attach()

