"""Serve settings a user chooses: the endpoint a service advertises (the host
SKY_SERVE_ENDPOINT_HOST names, which every e2e stack sets to 127.0.0.1, see
serve_util.FAST_ENV; https:// when the service's sky-lb takes only TLS), the
task flags of `sky serve up` (kept across a controller restart), and the
controller's idle stop."""
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from serve_util import Stack, live, ready
from skytest.procs import kill_and_wait

TLS_YAML = """\
service:
  readiness_probe: /health
  replicas: 1
  tls:
    keyfile: {key}
    certfile: {cert}

resources:
  ports: 8081
  cpus: 2+

workdir: examples/serve/http_server

run: python3 server.py
"""


@pytest.fixture
def stack():
    s = Stack("endpoint")
    yield s
    s.teardown()


def self_signed(d):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return key, cert


def test_tls_endpoint_is_https_on_the_configured_host(stack, tmp_path):
    d = str(tmp_path)
    key, cert = self_signed(d)
    yaml = os.path.join(d, "tls.yaml")
    with open(yaml, "w") as f:
        f.write(TLS_YAML.format(key=key, cert=cert))

    p = stack.sky("serve", "up", yaml, "-n", "tls-svc", "-y", timeout=120)
    m = re.search(r"^Endpoint URL: (\S+)$", p.stdout, re.M)
    assert m and re.fullmatch(r"https://127\.0\.0\.1:\d+", m.group(1)), p.stdout
    url = m.group(1)
    assert stack.sky("serve", "status", "tls-svc", "--endpoint").stdout.strip() == url
    assert stack.service("tls-svc")["endpoint"] == url

    stack.wait_for(lambda: len(ready(stack.service("tls-svc")["replicas"])) == 1, 90,
                   "the replica READY")
    table = stack.sky("serve", "status", "tls-svc").stdout
    assert url in table, table

    ctx = ssl.create_default_context(cafile=cert)

    def answers():
        # 503 until sky-lb's next sync learns of the ready replica.
        try:
            with urllib.request.urlopen(url + "/", timeout=5, context=ctx) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            assert e.code == 503, e
            return False

    stack.wait_for(answers, 30, "the endpoint to answer over TLS")


def test_controller_stops_when_idle():
    """With no service left for controller_idle_seconds the serve controller
    exits (the reference's controller autostops), marking that it stopped with
    nothing to do; questions are then answered without starting it again."""
    s = Stack("idle", {"SKY_SERVE_CONTROLLER_IDLE_SECONDS": "2"})
    try:
        s.sky("serve", "up", "tests/data/serve_e2e/update_v1.yaml", "-n", "idle-svc", "-y",
              timeout=120)
        assert s.controller_pid()
        time.sleep(3)  # a service keeps it busy past its idle period
        assert s.controller_pid(), "the controller stopped with a service left"
        s.sky("serve", "down", "idle-svc", "-y")
        s.wait_for(lambda: s.controller_pid() is None, 60, "the idle controller to stop")
        assert os.path.exists(os.path.join(s.home, "serve", "controller.stopped"))
        p = s.sky("serve", "status")
        assert "No existing services." in p.stdout, p.stdout
        assert s.controller_pid() is None, "a question started the controller"
        assert not [c for _, c in s.home_processes() if "sky-controller" in c or "sky-lb" in c]
    finally:
        s.teardown()


def test_task_flags_survive_a_controller_restart(stack):
    """`sky serve up --cpus 4 --env` is stored with the version: the replicas
    get a 4-vCPU type, and after `kill -9` of the controller, the restarted one
    rebuilds the same task (a new replica too)."""
    p = stack.sky("serve", "up", "tests/data/serve_e2e/update_v1.yaml", "-n", "flags", "-y",
                  "--cpus", "4", "--env", "APP_VERSION=flagged", timeout=120)

    def four_vcpus():
        reps = live(stack.service("flags")["replicas"])
        assert len(reps) == 2 and all("vCPU=4" in r["resources"] for r in reps), reps
        return reps

    stack.wait_for(four_vcpus, 60, "2 replicas of 4 vCPUs")
    kill_and_wait(stack.controller_pid())
    # The next question restarts it; a replica it launches now comes from the stored task.
    reps = four_vcpus()
    stack.sky("serve", "down", "flags", "--replica-id", str(reps[0]["replica_id"]), "-y",
              check=False)
    stack.wait_for(lambda: max(r["replica_id"] for r in four_vcpus()) > 2, 90,
                   "a replacement replica of 4 vCPUs")


def test_down_all_leaves_no_controller():
    """`sky serve down -a` leaves nothing of the SKY_HOME's serving running: once
    every replica is terminated and every service removed the controller exits
    (no idle period), and the next `sky serve up` starts it again."""
    s = Stack("downall")
    try:
        s.sky("serve", "up", "tests/data/serve_e2e/update_v1.yaml", "-n", "da", "-y", timeout=120)
        s.wait_for(lambda: len(live(s.service("da")["replicas"])) == 2, 60, "2 replicas")
        s.sky("serve", "down", "-a", "-y")
        s.wait_for(lambda: s.controller_pid() is None, 60, "the controller to exit")
        assert s.alive_instances("serve:") == [], s.cloud_instances()
        assert not [c for _, c in s.home_processes() if "sky-controller" in c or "sky-lb" in c]
        assert "No existing services." in s.sky("serve", "status").stdout
        assert s.controller_pid() is None, "a question started the controller"
        s.sky("serve", "up", "tests/data/serve_e2e/update_v1.yaml", "-n", "db", "-y", timeout=120)
        assert s.controller_pid()
    finally:
        s.teardown()
