"""Acceptance: request-rate autoscaling and rolling updates, end to end.

Same stack as test_serve_spot.py (real controller, local cloud, sky-lb,
sky-agent, examples/serve/http_server). Load is generated from this process,
bounded in rate, count and time.
"""
import re
import time

import pytest

from serve_util import DATA, Load, Stack, get, live, ready, summary

AUTOSCALE_YAML = DATA + "/serve_e2e/autoscale.yaml"
V1_YAML = DATA + "/serve_e2e/update_v1.yaml"
V2_YAML = DATA + "/serve_e2e/update_v2.yaml"


@pytest.fixture
def stack():
    s = Stack("scale")
    yield s
    s.teardown()


def up(stack, yaml, name):
    p = stack.sky("serve", "up", yaml, "-n", name, "-y", timeout=120)
    m = re.search(r"^Endpoint URL: (\S+:\d+)$", p.stdout, re.M)
    assert m, p.stdout
    return "http://" + m.group(1)


def wait_ready(stack, name, n, timeout=90):
    def ok():
        svc = stack.service(name)
        return svc if svc and len(ready(svc["replicas"])) >= n else None
    svc = stack.wait_for(ok, timeout, "%d replicas READY" % n)

    url = "http://" + svc["endpoint"]

    def serving():
        return get(url)[0] == 200
    stack.wait_for(serving, 30, "the endpoint to answer 200")
    return svc


def test_autoscale_up_and_down(stack):
    name = "autoscale"
    url = up(stack, AUTOSCALE_YAML, name)
    svc = wait_ready(stack, name, 1)
    assert len(live(svc["replicas"])) == 1, summary(svc)

    # 6 req/s against target_qps_per_replica 2 asks for 3 replicas (max 3).
    load = Load(url, rate=6, max_seconds=120).start()
    try:
        def scaled_up():
            svc = stack.service(name)
            return svc if len(ready(svc["replicas"])) == 3 else None
        svc = stack.wait_for(scaled_up, 90, "3 replicas READY under load")
        print("scaled up:", summary(svc))
        assert len(live(svc["replicas"])) == 3, "max_replicas exceeded: " + summary(svc)
        services, _, _ = stack.status_tables(name)
        assert services[0]["REPLICAS"] == "3/3"
    finally:
        load.stop()
    assert not load.failures, load.failures[:20]

    # Without load the target falls back to min_replicas, after the downscale delay.
    tail = Load(url, rate=0.2, max_seconds=90).start()
    try:
        def scaled_down():
            svc = stack.service(name)
            return svc if len(live(svc["replicas"])) == 1 and len(ready(svc["replicas"])) == 1 \
                else None
        svc = stack.wait_for(scaled_down, 90, "back to 1 replica")
        print("scaled down:", summary(svc))
    finally:
        tail.stop()
    assert not tail.failures, tail.failures
    stack.wait_for(lambda: len(stack.alive_instances("serve:%s:" % name)) == 1, 60,
                   "the scaled-down instances terminated")
    svc = stack.wait_for(lambda: len(stack.service(name)["replicas"]) == 1 and stack.service(
        name), 60, "the scaled-down replicas removed")
    services, replicas, _ = stack.status_tables(name)
    assert services[0]["REPLICAS"] == "1/1" and len(replicas) == 1


def test_rolling_update(stack):
    name = "rolling"
    url = up(stack, V1_YAML, name)
    svc = wait_ready(stack, name, 2)
    v1_ids = {r["replica_id"] for r in svc["replicas"]}
    assert all(r["version"] == 1 for r in svc["replicas"])

    load = Load(url, rate=5, max_seconds=180).start()
    try:
        time.sleep(1)
        p = stack.sky("serve", "update", name, V2_YAML, "-y")
        assert "update scheduled: version 2, rolling" in p.stdout

        def replaced():
            svc = stack.service(name)
            reps = svc["replicas"]
            if (len(ready(reps)) == 2 and all(r["version"] == 2 for r in live(reps))
                    and not [r for r in reps if r["replica_id"] in v1_ids]
                    and svc["active_versions"] == [2]):
                return svc
            return None
        svc = stack.wait_for(replaced, 150, "every replica replaced by version 2")
        print("updated:", summary(svc))
        time.sleep(2)
    finally:
        load.stop()
    assert len(load.results) >= 20
    assert not load.failures, "failed requests during the update: %s" % load.failures[:20]
    services, replicas, _ = stack.status_tables(name)
    assert services[0]["VERSION"] == "2" and services[0]["REPLICAS"] == "2/2"
    assert {r["VERSION"] for r in replicas} == {"2"}
    inst = stack.alive_instances("serve:%s:" % name)
    assert sorted(i["id"] for i in inst) == sorted(r["instance_id"] for r in svc["replicas"])


def test_cli_errors_against_the_controller(stack):
    """Spec errors come back as file:line:col, unknown names as clear messages."""
    bad = DATA + "/spec/bad_service_unknown_key.yaml"
    p = stack.sky("serve", "up", bad, "-n", "bad", "-y", expect_rc=1)
    assert re.fullmatch(r".*/bad_service_unknown_key\.yaml:\d+:\d+: .+\n", p.stderr), p.stderr
    assert p.stdout == ""
    assert stack.sky("serve", "status").stdout == "Services\nNo existing services.\n"
    assert stack.sky("serve", "down", "nope", "-y").stdout == "No service to terminate.\n"
    assert stack.sky("serve", "down", "-a", "-y").stdout == "No service to terminate.\n"
    p = stack.sky("serve", "status", "--endpoint", expect_rc=2)
    assert "No service found" in p.stderr
    p = stack.sky("serve", "logs", "nope", "--controller", expect_rc=1)
    assert p.stderr.count("\n") == 1 and "nope" in p.stderr
    p = stack.sky("serve", "update", "nope", V2_YAML, "-y", expect_rc=1)
    assert p.stderr.count("\n") == 1 and "nope" in p.stderr
