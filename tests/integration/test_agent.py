"""Integration tests for sky-agent: the real binary on 127.0.0.1 with a tmp home.

Every agent started here is stopped (SIGTERM, then SIGKILL) at teardown, after
its live tasks are cancelled; tests that leave processes behind on purpose
(restart) check and kill them themselves.
"""
import http.client
import json
import os
import pwd
import signal
import sqlite3
import subprocess
import time
import urllib.error

import shutil
import tempfile

import pytest
from skytest import api
from skytest.paths import BUILD_DIR, SKY_AGENT as AGENT
from skytest.procs import pid_alive, rss_kib
TERMINAL = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "CANCELLED"}


class Agent:
    def __init__(self, home, tmp_path, extra=(), prefix=()):
        self.home = str(home)
        self.prefix = list(prefix)
        self.errpath = str(tmp_path / ("agent-%d.err" % time.monotonic_ns()))
        self.extra = list(extra)
        self.proc = None
        self.port = None
        self.token = None

    def start(self, timeout=10):
        err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(
            self.prefix + [AGENT, "--listen", "127.0.0.1:0", "--home", self.home] + self.extra,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.errpath) as f:
                for line in f:
                    if line.startswith("sky-agent listening on "):
                        self.port = int(line.strip().rsplit(":", 1)[1])
                        return self
            if self.proc.poll() is not None:
                raise AssertionError("sky-agent exited %d: %s" % (self.proc.returncode, self.stderr()))
            time.sleep(0.02)
        raise AssertionError("sky-agent did not start: " + self.stderr())

    def stderr(self):
        with open(self.errpath) as f:
            return f.read()

    def request(self, method, path, body=None, raw=None, token=None, timeout=10):
        return api.request(method, "http://127.0.0.1:%d%s" % (self.port, path),
                           token if token is not None else self.token, body, timeout, raw)

    def submit(self, **task):
        status, doc = self.request("POST", "/tasks", task)
        assert status == 200, doc
        return doc["task_id"]

    def task(self, tid):
        status, doc = self.request("GET", "/tasks/%d" % tid)
        assert status == 200, doc
        return doc

    def wait(self, tid, statuses=TERMINAL, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.task(tid)
            if t["status"] in statuses:
                return t
            time.sleep(0.05)
        raise AssertionError("task %d stuck in %s" % (tid, self.task(tid)))

    def logs(self, tid, follow=0, tail=None):
        q = "follow=%d" % follow + ("&tail=%d" % tail if tail is not None else "")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", "/tasks/%d/logs?%s" % (tid, q))
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, body.decode()

    def kill9(self):
        self.proc.kill()
        self.proc.wait(5)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        try:
            _, doc = self.request("GET", "/tasks", timeout=3)
            for t in doc.get("tasks", []):
                if t["status"] not in TERMINAL:
                    self.request("POST", "/tasks/%d/cancel" % t["task_id"], timeout=3)
            for t in doc.get("tasks", []):
                if t["status"] not in TERMINAL:
                    self.wait(t["task_id"], timeout=10)
        except Exception:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None


@pytest.fixture
def agents(tmp_path):
    started = []

    def make(home=None, extra=(), prefix=()):
        a = Agent(home or (tmp_path / "home"), tmp_path, extra, prefix)
        started.append(a)
        return a.start()

    yield make
    problems = []
    for a in started:
        rc = a.stop()
        if rc not in (0, -signal.SIGKILL):
            problems.append("sky-agent exited %s" % rc)
        text = a.stderr()
        # Under -DSANITIZE=address,undefined the agent reports leaks and UB on stderr.
        if "Sanitizer" in text or "runtime error:" in text:
            problems.append(text[-4000:])
    assert not problems, "\n".join(problems)


@pytest.fixture
def agent(agents):
    return agents()


def wait_file(path, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.read().strip()
        time.sleep(0.05)
    raise AssertionError("%s never written" % path)


def test_health(agent):
    status, doc = agent.request("GET", "/health")
    assert status == 200
    assert doc == {"status": "ok", "tasks": 0, "running": 0}


def test_env_and_logs(agent, tmp_path):
    tid = agent.submit(
        name="env", setup="echo setup-out",
        run='echo "MY_VAR=$MY_VAR"; echo "HOME=$HOME"; echo "TID=$SKYPILOT_TASK_ID"; '
            'echo "RANK=$SKYPILOT_NODE_RANK"; echo to-stderr >&2',
        envs={"MY_VAR": "hello world", "SKYPILOT_TASK_ID": "sky-managed-2024_x_1-0"})
    assert tid == 1
    t = agent.wait(tid)
    assert t["status"] == "SUCCEEDED", t
    assert t["exit_code"] == 0
    assert t["name"] == "env"
    assert t["failure_reason"] is None
    assert t["submitted_at"] <= t["started_at"] <= t["ended_at"]
    status, text = agent.logs(tid)
    assert status == 200
    lines = text.splitlines()
    assert lines[0] == "setup-out"
    assert "MY_VAR=hello world" in lines
    assert "HOME=%s" % os.path.realpath(agent.home) in lines
    assert "TID=sky-managed-2024_x_1-0" in lines
    assert "RANK=0" in lines
    assert "to-stderr" in lines
    status, doc = agent.request("GET", "/health")
    assert doc["tasks"] == 1 and doc["running"] == 0
    # Persisted on the instance's disk: the task's row and its logs.
    d = os.path.join(agent.home, ".sky_agent", "tasks", "1")
    for f in ("setup.log", "run.log"):
        assert os.path.exists(os.path.join(d, f)), f
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(agent.home, ".sky_agent", "agent.db"),
                         uri=True, timeout=5)
    try:
        row = db.execute("SELECT status, exit_code, json_extract(spec, '$.name') FROM tasks"
                         " WHERE id = 1").fetchone()
    finally:
        db.close()
    assert row == ("SUCCEEDED", 0, "env"), row


def test_run_exit_code(agent):
    tid = agent.submit(name="x", run="echo about to fail; exit 3")
    t = agent.wait(tid)
    assert t["status"] == "FAILED"
    assert t["exit_code"] == 3
    assert "3" in t["failure_reason"]


def test_setup_failure_skips_run(agent, tmp_path):
    marker = tmp_path / "ran"
    tid = agent.submit(name="s", setup="echo broken setup; exit 1", run="touch %s" % marker)
    t = agent.wait(tid)
    assert t["status"] == "FAILED_SETUP"
    assert t["exit_code"] == 1
    time.sleep(0.2)
    assert not marker.exists()
    assert "broken setup" in agent.logs(tid)[1]


def test_no_run_succeeds(agent):
    t = agent.wait(agent.submit(name="empty", run=None))
    assert t["status"] == "SUCCEEDED" and t["exit_code"] == 0


def test_cancel_kills_process_group(agent, tmp_path):
    p1, p2 = tmp_path / "child1", tmp_path / "child2"
    # child1 is an ordinary background job; child2 ignores SIGTERM, so only the
    # SIGKILL after the grace period removes it.
    run = ("bash -c 'echo $$ > %s; exec sleep 1000' &\n"
           "bash -c \"trap '' TERM; echo \\$\\$ > %s; while :; do sleep 0.2; done\" &\n"
           "sleep 1000\n") % (p1, p2)
    tid = agent.submit(name="sleepy", run=run)
    pid1, pid2 = int(wait_file(p1)), int(wait_file(p2))
    assert agent.task(tid)["status"] == "RUNNING"
    assert os.getpgid(pid1) == os.getpgid(pid2)
    status, doc = agent.request("POST", "/tasks/%d/cancel" % tid)
    assert status == 200 and doc["cancelled"] is True
    t = agent.wait(tid, timeout=15)
    assert t["status"] == "CANCELLED"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and (pid_alive(pid1) or pid_alive(pid2)):
        time.sleep(0.05)
    assert not pid_alive(pid1), "background child survived cancel"
    assert not pid_alive(pid2), "SIGTERM-ignoring child survived cancel"
    # Cancelling again is a harmless no-op.
    status, doc = agent.request("POST", "/tasks/%d/cancel" % tid)
    assert status == 200 and doc["cancelled"] is False and doc["status"] == "CANCELLED"


def test_cancel_pending(agent):
    first = agent.submit(name="blocker", run="sleep 30")
    second = agent.submit(name="queued", run="echo never")
    agent.wait(first, {"RUNNING"})
    assert agent.task(second)["status"] == "PENDING"
    assert agent.request("POST", "/tasks/%d/cancel" % second)[0] == 200
    assert agent.task(second)["status"] == "CANCELLED"
    agent.request("POST", "/tasks/%d/cancel" % first)
    assert agent.wait(first)["status"] == "CANCELLED"
    time.sleep(0.3)
    assert agent.task(second)["status"] == "CANCELLED"
    assert agent.logs(second)[1] == ""


def test_follow_streams_lines_as_produced(agent):
    tid = agent.submit(name="follow", setup="echo setup-line",
                       run="for i in 1 2 3 4; do echo line$i; sleep 0.5; done")
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=30)
    conn.request("GET", "/tasks/%d/logs?follow=1" % tid)
    r = conn.getresponse()
    assert r.status == 200
    t0 = time.monotonic()
    arrivals = {}
    buf = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            arrivals[line.decode()] = time.monotonic() - t0
        assert time.monotonic() - t0 < 20
    end = time.monotonic() - t0
    conn.close()
    assert list(arrivals) == ["setup-line", "line1", "line2", "line3", "line4"]
    # Lines arrive while the task runs, not all at the end.
    assert arrivals["line4"] - arrivals["line1"] >= 0.9, arrivals
    assert end - arrivals["line1"] >= 1.2
    # The stream ends when the task does.
    assert agent.task(tid)["status"] == "SUCCEEDED"


def test_follow_waits_for_pending_task(agent):
    first = agent.submit(name="a", run="sleep 0.5; echo first")
    second = agent.submit(name="b", run="echo second")
    status, text = agent.logs(second, follow=1)
    assert status == 200 and text == "second\n"
    assert agent.task(first)["status"] == "SUCCEEDED"


def test_tail(agent):
    tid = agent.submit(name="tail", setup="echo s1; echo s2", run="for i in 1 2 3; do echo r$i; done")
    agent.wait(tid)
    assert agent.logs(tid, tail=2)[1] == "r2\nr3\n"
    assert agent.logs(tid, tail=4)[1] == "s2\nr1\nr2\nr3\n"
    assert agent.logs(tid, tail=100)[1] == "s1\ns2\nr1\nr2\nr3\n"
    assert agent.logs(tid, tail=0)[1] == ""


def test_workdir_copied(agent, tmp_path):
    wd = tmp_path / "wd"
    (wd / "sub").mkdir(parents=True)
    (wd / "a.txt").write_text("alpha\n")
    (wd / "sub" / "b.txt").write_text("beta\n")
    (wd / ".hidden").write_text("dot\n")
    tid = agent.submit(name="wd", workdir=str(wd), setup="cat a.txt",
                       run="pwd; cat sub/b.txt .hidden")
    t = agent.wait(tid)
    assert t["status"] == "SUCCEEDED", agent.logs(tid)
    text = agent.logs(tid)[1]
    assert text.splitlines() == ["alpha", os.path.realpath(agent.home) + "/sky_workdir", "beta",
                                 "dot"]


def test_missing_workdir_fails_setup(agent, tmp_path):
    t = agent.wait(agent.submit(name="wd", workdir=str(tmp_path / "nope"), run="true"))
    assert t["status"] == "FAILED_SETUP"
    assert "not a directory" in t["failure_reason"]


def test_copy_file_mount(agent, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.txt").write_text("copied\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    dst = tmp_path / "inst" / "data"
    dst_file = tmp_path / "inst" / "cfg" / "single.txt"
    tid = agent.submit(name="cp", run="cat %s/data.txt %s; echo new > %s/new.txt" % (dst, dst_file, dst),
                       file_mounts=[{"dst": str(dst), "src": str(src), "mode": "COPY"},
                                    {"dst": str(dst_file), "src": str(single), "mode": "COPY"}])
    t = agent.wait(tid)
    assert t["status"] == "SUCCEEDED", agent.logs(tid)
    assert agent.logs(tid)[1] == "copied\none file\n"
    # A copy: writes do not reach the source.
    assert not (src / "new.txt").exists()


@pytest.mark.root("MOUNT file_mounts are bind mounts")
def test_mount_file_mount(agent, tmp_path):
    src = tmp_path / "bucket"
    src.mkdir()
    (src / "ckpt").write_text("step 1\n")
    dst = tmp_path / "checkpoint"
    tid = agent.submit(name="mnt", run="cat %s/ckpt; echo step 2 > %s/ckpt2" % (dst, dst),
                       file_mounts=[{"dst": str(dst), "src": str(src), "mode": "MOUNT"}])
    t = agent.wait(tid)
    assert t["status"] == "SUCCEEDED", agent.logs(tid)
    assert agent.logs(tid)[1] == "step 1\n"
    # The task's write landed in the source directory on the host ...
    assert (src / "ckpt2").read_text() == "step 2\n"
    # ... through a bind mount private to the agent: the host's own view of dst is untouched.
    assert dst.is_dir() and not (dst / "ckpt2").exists()


def test_queue_runs_in_order(agent, tmp_path):
    out = tmp_path / "order"
    # The first task runs long enough for the others to be seen waiting, even on a loaded machine.
    ids = [agent.submit(name="q%d" % i, run="sleep %s; echo %d >> %s" % (1.5 if i == 0 else 0.2, i, out))
           for i in range(3)]
    assert ids == [1, 2, 3]
    agent.wait(ids[0], {"RUNNING"})
    assert agent.task(ids[1])["status"] == "PENDING"
    assert agent.task(ids[2])["status"] == "PENDING"
    tasks = [agent.wait(i) for i in ids]
    assert all(t["status"] == "SUCCEEDED" for t in tasks)
    assert out.read_text() == "0\n1\n2\n"
    for a, b in zip(tasks, tasks[1:]):
        assert b["started_at"] >= a["ended_at"]
    status, doc = agent.request("GET", "/tasks")
    assert [t["task_id"] for t in doc["tasks"]] == ids


def test_restart_keeps_state(agents, tmp_path):
    a = agents()
    done = a.submit(name="done", run="echo finished-output")
    assert a.wait(done)["status"] == "SUCCEEDED"
    pidfile = tmp_path / "lost.pid"
    lost = a.submit(name="lost", run="echo $$ > %s; sleep 1000" % pidfile)
    pid = int(wait_file(pidfile))
    a.wait(lost, {"RUNNING"})
    a.kill9()
    assert pid_alive(pid)  # the task outlived the agent ...

    b = agents()
    t = b.task(done)
    assert t["status"] == "SUCCEEDED" and t["exit_code"] == 0
    assert b.logs(done)[1] == "finished-output\n"
    t = b.task(lost)
    assert t["status"] == "FAILED"
    assert t["exit_code"] is None
    assert "restarted" in t["failure_reason"]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    assert not pid_alive(pid)  # ... and the new agent made "FAILED" true by killing it
    # Ids continue after the persisted ones.
    assert b.submit(name="next", run="true") == 3


def test_restart_requeues_pending(agents, tmp_path):
    a = agents()
    first = a.submit(name="long", run="sleep 1000")
    second = a.submit(name="pending", run="echo ran-after-restart")
    a.wait(first, {"RUNNING"})
    a.kill9()
    b = agents()
    assert b.wait(second)["status"] == "SUCCEEDED"
    assert b.logs(second)[1] == "ran-after-restart\n"
    assert b.task(first)["status"] == "FAILED"


def test_sigterm_exits_zero(agents):
    a = agents()
    a.submit(name="x", run="true")
    assert a.stop() == 0


def test_http_errors(agent):
    # Errors are a JSON object naming what went wrong.
    assert agent.request("GET", "/tasks/42") == (404, {"error": "task 42 not found"})
    assert agent.request("GET", "/tasks/42/logs") == (404, {"error": "task 42 not found"})
    assert agent.request("POST", "/tasks/42/cancel") == (404, {"error": "task 42 not found"})
    assert agent.request("GET", "/tasks/abc") == (404, {"error": "no such path: /tasks/abc"})
    assert agent.request("GET", "/nope") == (404, {"error": "no such path: /nope"})
    assert agent.request("POST", "/tasks", raw=b"{not json")[0] == 400
    status, doc = agent.request("POST", "/tasks", {"run": 5})
    assert status == 400 and "run" in doc["error"]
    assert agent.request("POST", "/tasks", {"run": "x", "bogus": 1})[0] == 400
    assert agent.request("POST", "/tasks", {"run": "x", "envs": {"1BAD": "v"}})[0] == 400
    assert agent.request("POST", "/tasks", {"run": "x", "workdir": "relative"})[0] == 400
    assert agent.request("POST", "/tasks", {
        "run": "x", "file_mounts": [{"dst": "/a", "src": "/b", "mode": "SYNC"}]})[0] == 400
    big = json.dumps({"run": "x" * (2 << 20)}).encode()
    try:
        assert agent.request("POST", "/tasks", raw=big)[0] == 413
    except (ConnectionError, urllib.error.URLError):
        pass  # the server may close before reading the whole body
    assert agent.request("DELETE", "/tasks")[0] == 405
    assert agent.request("GET", "/tasks/1/logs?tail=x")[0] in (400, 404)
    assert agent.request("GET", "/health")[1]["tasks"] == 0


def test_token(agents, tmp_path):
    tf = tmp_path / "token"
    tf.write_text("s3cret\n")
    a = agents(extra=["--token-file", str(tf)])
    # The 401's body is the error object, every byte of it.
    assert a.request("GET", "/health") == (401, {"error": "missing or bad token"})
    assert a.request("GET", "/health", token="wrong") == (401, {"error": "missing or bad token"})
    a.token = "s3cret"
    assert a.request("GET", "/health")[0] == 200


@pytest.mark.parametrize("args", [
    [],
    ["--home", "/tmp/x"],
    ["--listen", "127.0.0.1:0"],
    ["--listen", "127.0.0.1", "--home", "/tmp/x"],
    ["--listen", "127.0.0.1:99999", "--home", "/tmp/x"],
    ["--listen", "127.0.0.1:0", "--home", "/tmp/x", "--bogus"],
    ["--listen", "127.0.0.1:0", "--home", "/tmp/x", "--log-level", "loud"],
    ["--listen", "127.0.0.1:0", "--home", "/tmp/x", "extra"],
])
def test_bad_flags_exit_2(args):
    p = subprocess.run([AGENT] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert p.returncode == 2, p.stderr
    assert b"usage" in p.stderr


def test_sigterm_with_live_task_and_follower(agents, tmp_path):
    a = agents()
    pidfile = tmp_path / "live.pid"
    tid = a.submit(name="live", run="echo $$ > %s; echo started; sleep 1000" % pidfile)
    pid = int(wait_file(pidfile))
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    conn.request("GET", "/tasks/%d/logs?follow=1" % tid)
    r = conn.getresponse()
    assert r.read1(100) == b"started\n"
    try:
        a.proc.send_signal(signal.SIGTERM)
        assert a.proc.wait(5) == 0
        # The follower's response was ended, not left hanging.
        assert r.read() == b""
        conn.close()
        # Tasks are left to die with the instance.
        assert pid_alive(pid)
    finally:
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def unpriv_dir():
    """A world-traversable scratch dir owned by the unprivileged user."""
    d = tempfile.mkdtemp(prefix="sky-agent-unpriv-", dir="/tmp")
    os.chmod(d, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unprivileged_mount_falls_back_to_symlink(agents, unpriv_dir):
    # As root, drop to nobody to exercise the no-root path of the local cloud.
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.fail("setpriv (util-linux, scripts/install-deps) is needed to drop root")
        prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    a = agents(home=os.path.join(unpriv_dir, "home"), prefix=prefix)
    src = os.path.join(unpriv_dir, "bucket")
    os.mkdir(src)
    if os.geteuid() == 0:
        os.chown(src, pwd.getpwnam("nobody").pw_uid, -1)
    dst = os.path.join(unpriv_dir, "inst", "checkpoint")
    tid = a.submit(name="mnt", run="echo saved > %s/ckpt" % dst,
                   file_mounts=[{"dst": dst, "src": src, "mode": "MOUNT"}])
    t = a.wait(tid)
    assert t["status"] == "SUCCEEDED", a.logs(tid)
    assert os.path.islink(dst) and os.readlink(dst) == src
    with open(os.path.join(src, "ckpt")) as f:
        assert f.read() == "saved\n"
    # Where no symlink can be created, the task fails with a clear reason.
    tid = a.submit(name="nope", run="true",
                   file_mounts=[{"dst": "/proc/sky-agent-test/ckpt", "src": src, "mode": "MOUNT"}])
    t = a.wait(tid)
    assert t["status"] == "FAILED_SETUP"
    assert "needs root" in t["failure_reason"], t
    assert "needs root" in a.logs(tid)[1]


def client(a, *args, token=None, timeout=30):
    """Runs tests/support/prog_agent_client.c (include/core/agent.h) against agent <a>."""
    prog = os.path.join(BUILD_DIR, "tests", "agent_client")
    p = subprocess.run([prog, "127.0.0.1", str(a.port), token or "-"] + [str(x) for x in args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode()


def test_c_client(agents, tmp_path):
    tf = tmp_path / "token"
    tf.write_text("tok123")
    a = agents(extra=["--token-file", str(tf)])
    assert client(a, "health") == (1, "error EACCES\n")
    assert client(a, "health", token="tok123") == (0, "ok\n")
    rc, out = client(a, "submit", json.dumps({"name": "c1", "setup": "echo s",
                                              "run": "for i in 1 2 3; do echo r$i; sleep 0.3; done; exit 4"}),
                     token="tok123")
    assert (rc, out) == (0, "1\n")
    # Follow through the client: returns when the task ends, with every line.
    t0 = time.monotonic()
    rc, out = client(a, "logs", 1, 1, -1, token="tok123")
    assert (rc, out) == (0, "s\nr1\nr2\nr3\n")
    assert time.monotonic() - t0 >= 0.5
    rc, out = client(a, "get", 1, token="tok123")
    assert rc == 0
    assert out.split(" ", 6)[:6] == ["1", "c1", "FAILED", "4", "sub", "1"]
    assert "code 4" in out
    assert client(a, "logs", 1, 0, 1, token="tok123") == (0, "r3\n")
    assert client(a, "get", 9, token="tok123") == (1, "error CORE_ENOTFOUND\n")
    assert client(a, "logs", 9, 0, -1, token="tok123") == (1, "error CORE_ENOTFOUND\n")
    assert client(a, "cancel", 9, token="tok123") == (1, "error CORE_ENOTFOUND\n")
    assert client(a, "submit", '{"run": 1}', token="tok123") == (1, "error CORE_EINVALREQ\n")
    # A callback that stops early ends a follow of a long task.
    rc, _ = client(a, "submit", json.dumps({"name": "c2", "run": "echo first; sleep 30"}),
                   token="tok123")
    assert rc == 0
    assert client(a, "logs", 2, 1, -1, 6, token="tok123", timeout=10) == (0, "first\n")
    assert client(a, "cancel", 2, token="tok123") == (0, "ok\n")
    a.token = "tok123"
    assert a.wait(2)["status"] == "CANCELLED"
    rc, out = client(a, "list", token="tok123")
    assert rc == 0 and [l.split()[2] for l in out.splitlines()] == ["FAILED", "CANCELLED"]
    a.stop()
    rc, out = client(a, "health", token="tok123")
    assert (rc, out) == (1, "error ECONNREFUSED\n")


def test_kill_tasks_on_exit(agents, tmp_path):
    a = agents(extra=["--kill-tasks-on-exit"])
    pidfile = tmp_path / "k.pid"
    a.submit(name="live", run="(echo $BASHPID > %s; exec sleep 1000) & sleep 1000" % pidfile)
    pid = int(wait_file(pidfile))
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(5) == 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_one_agent_per_home(agents, tmp_path):
    a = agents()
    p = subprocess.run([AGENT, "--listen", "127.0.0.1:0", "--home", a.home],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"another sky-agent" in p.stderr
    assert a.request("GET", "/health")[0] == 200


def test_logs_backpressure(agent):
    size = 40 * 1000 * 1000
    tid = agent.submit(name="big", run="head -c %d /dev/zero | tr '\\0' x | fold -w 99" % (size // 100 * 99))
    assert agent.wait(tid, timeout=60)["status"] == "SUCCEEDED"
    before = rss_kib(agent.proc.pid)
    import socket
    s = socket.create_connection(("127.0.0.1", agent.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /tasks/%d/logs HTTP/1.1\r\nHost: x\r\n\r\n" % tid)
    time.sleep(1.5)  # a reader that stalls: the agent must not buffer the whole log
    stalled = rss_kib(agent.proc.pid)
    assert stalled - before < 16 * 1024, (before, stalled)
    assert agent.request("GET", "/health")[0] == 200  # still serving others
    got = 0
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
        if chunk.endswith(b"0\r\n\r\n"):
            break
    s.close()
    assert got > size  # body plus chunk framing


def test_unstartable_phase_fails_cleanly(agent, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    # Setup removes the run's working directory, so the run cannot even be started;
    # a task PATH without bash must not matter either.
    tid = agent.submit(name="gone", workdir=str(wd), setup="/bin/rm -rf $HOME/sky_workdir",
                       run="echo never", envs={"PATH": "/nonexistent"})
    t = agent.wait(tid)
    assert t["status"] == "FAILED", t
    assert t["exit_code"] is None
    assert "cannot start run" in t["failure_reason"]
    assert "cannot start run" in agent.logs(tid)[1]
    # The agent keeps serving and running tasks.
    assert agent.wait(agent.submit(name="after", run="true"))["status"] == "SUCCEEDED"


def test_setup_and_run_source_bashrc(agent):
    """As SkyPilot's task scripts: ~/.bashrc first, so the seed's setup line
    `echo export WANDB_API_KEY=... >> ~/.bashrc` reaches run. The scripts keep
    their own line numbers and $0, and their exit code."""
    setup = ("echo export WANDB_API_KEY=seed-key >> ~/.bashrc\n"
             "echo 'greet() { echo hi from a function; }' >> ~/.bashrc\n")
    # A function (not exported): ~/.bashrc is sourced by run's own shell.
    run = ("greet\n"
           'echo "key=$WANDB_API_KEY script=$(basename $0)"\n'
           "echo \"line=$LINENO\"\n"
           "exit 7\n")
    t = agent.wait(agent.submit(name="bashrc", setup=setup, run=run))
    assert t["status"] == "FAILED" and t["exit_code"] == 7, t
    out = agent.logs(t["task_id"])[1]
    assert out.startswith("hi from a function\n"), out
    assert "key=seed-key script=run.sh\n" in out, out
    assert "line=3\n" in out, out
    # A task without a ~/.bashrc runs as before.
    os.remove(os.path.join(agent.home, ".bashrc"))
    t = agent.wait(agent.submit(name="plain", run='echo "key=[$WANDB_API_KEY]"'))
    assert t["status"] == "SUCCEEDED" and "key=[]" in agent.logs(t["task_id"])[1]


def test_notice_endpoint(agents, tmp_path):
    """GET /notice (and EC2's path) serves the cloud's instance-action document from
    --metadata-dir: 404 until the cloud writes one."""
    meta = tmp_path / "metadata"
    a = agents(extra=["--metadata-dir", str(meta)])
    for path in ("/notice", "/latest/meta-data/spot/instance-action"):
        assert a.request("GET", path)[0] == 404
    meta.mkdir()
    deadline = time.time() + 30
    (meta / "instance-action").write_text(json.dumps(
        {"action": "terminate", "time": "2026-12-02T06:00:00Z", "deadline": deadline}))
    for path in ("/notice", "/latest/meta-data/spot/instance-action"):
        status, doc = a.request("GET", path)
        assert status == 200 and doc["action"] == "terminate", doc
        # cJSON prints 15 significant digits: the deadline comes back to the ms
        assert doc["time"] == "2026-12-02T06:00:00Z"
        assert doc["deadline"] == pytest.approx(deadline, abs=1e-3)
        assert 25 < doc["seconds_left"] <= 30
    assert a.request("POST", "/notice")[0] == 405
    (meta / "instance-action").write_text("{not json")
    assert a.request("GET", "/notice")[0] == 404
    # Without --metadata-dir there is never a notice.
    assert agents(home=tmp_path / "other").request("GET", "/notice")[0] == 404


def test_cancel_grace(agent, tmp_path):
    """cancel?grace=S: SIGTERM now, SIGKILL only after S seconds (a notice's deadline);
    a task that exits on SIGTERM ends at once."""
    p = tmp_path / "pid"
    run = "bash -c \"trap '' TERM; echo \\$\\$ > %s; while :; do sleep 0.1; done\"" % p
    tid = agent.submit(name="stubborn", run=run)
    pid = int(wait_file(p))
    t0 = time.monotonic()
    status, doc = agent.request("POST", "/tasks/%d/cancel?grace=1.5" % tid)
    assert status == 200 and doc["cancelled"] is True
    assert agent.wait(tid, timeout=15)["status"] == "CANCELLED"
    assert time.monotonic() - t0 >= 1.4 and not pid_alive(pid)
    tid = agent.submit(name="polite", run="trap 'exit 0' TERM; while :; do sleep 0.1; done")
    agent.wait(tid, {"RUNNING"})
    time.sleep(0.3)
    t0 = time.monotonic()
    agent.request("POST", "/tasks/%d/cancel?grace=60" % tid)
    assert agent.wait(tid, timeout=15)["status"] == "CANCELLED"
    assert time.monotonic() - t0 < 10
    for bad in ("x", "-1", "1e9"):
        assert agent.request("POST", "/tasks/%d/cancel?grace=%s" % (tid, bad))[0] == 400
