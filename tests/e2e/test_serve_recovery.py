"""Acceptance: `kill -9` of the serve controller loses and duplicates nothing.

The CLI restarts a dead controller on its next call (any `sky serve status`);
the new daemon must adopt the service, its replicas (even mid-provisioning),
its instances and its sky-lb: no replica relaunched, no instance leaked, one
sky-lb, and the endpoint keeps serving while the controller is down.
"""
import re
import time

import pytest

from serve_util import (DATA, PROVISIONING_STATES, Load, Stack, get, live, ready, summary)
from skytest.procs import kill_and_wait

V1_YAML = DATA + "/serve_e2e/update_v1.yaml"


@pytest.fixture
def stack():
    s = Stack("recovery", {"SKY_LOCALCLOUD_PROVISION_DELAY": "5"})
    yield s
    s.teardown()


def kill9(stack):
    pid = stack.controller_pid()
    assert pid, "no controller running"
    return kill_and_wait(pid)


def processes(stack, prog):
    return [p for p in stack.home_processes() if prog in p[1].split(" ")[0]]


def check_no_duplicates(stack, name, ids):
    svc = stack.service(name)
    reps = svc["replicas"]
    assert sorted(r["replica_id"] for r in reps) == sorted(ids), summary(svc)
    inst = stack.alive_instances("serve:%s:" % name)
    assert sorted(i["id"] for i in inst) == sorted(r["instance_id"] for r in reps), (
        inst, summary(svc))
    assert len(processes(stack, "sky-controller")) == 1, stack.home_processes()
    assert len(processes(stack, "sky-lb")) == 1, stack.home_processes()
    return svc


def test_controller_kill9(stack):
    name = "recover"
    p = stack.sky("serve", "up", V1_YAML, "-n", name, "-y", timeout=120)
    url = "http://" + re.search(r"^Endpoint URL: (\S+:\d+)$", p.stdout, re.M).group(1)

    # Mid-provisioning: both replicas launched, none ready yet.
    def launching():
        svc = stack.service(name)
        reps = live(svc["replicas"])
        if len(reps) == 2 and all(r["status"] in PROVISIONING_STATES for r in reps):
            return svc
        return None
    svc = stack.wait_for(launching, 20, "2 replicas provisioning", interval=0.2)
    ids = [r["replica_id"] for r in svc["replicas"]]
    old = kill9(stack)

    # Any status call brings the controller back.
    services, replicas, _ = stack.status_tables(name)
    assert [s["NAME"] for s in services] == [name]
    assert sorted(int(r["ID"]) for r in replicas) == sorted(ids)
    new = stack.controller_pid()
    assert new and new != old

    def both_ready():
        svc = stack.service(name)
        return svc if len(ready(svc["replicas"])) == 2 else None
    stack.wait_for(both_ready, 90, "both replicas READY after the restart")
    stack.wait_for(lambda: get(url)[0] == 200, 30, "the endpoint to answer")
    svc = check_no_duplicates(stack, name, ids)
    print("after restart 1:", summary(svc))

    # Steady state: the LB keeps serving while the controller is dead and
    # after it comes back.
    load = Load(url, rate=5, max_seconds=60).start()
    try:
        time.sleep(1)
        kill9(stack)
        time.sleep(3)
        stack.sky("serve", "status", name)
        time.sleep(5)
    finally:
        load.stop()
    assert len(load.results) >= 20
    assert not load.failures, load.failures[:20]
    svc = stack.wait_for(both_ready, 30, "both replicas READY after the second restart")
    svc = check_no_duplicates(stack, name, ids)
    assert svc["version"] == 1 and svc["status"] == "READY"
    print("after restart 2:", summary(svc))
