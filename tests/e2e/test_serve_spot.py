"""Acceptance: the seed's spot policies (seeds/serve_spot_policy.rst), end to end.

Real processes: `sky` starts sky-controller --mode serve, which starts the
local cloud and one sky-lb per service; replicas are local-cloud instances
(network namespaces as root) running sky-agent and examples/serve/http_server.
Timings are shortened only through config (serve_util.FAST_ENV); the spot
market is driven with `sky cloud capacity` and `sky cloud preempt`.
"""
import re
import time

import pytest

from serve_util import (BASE_YAML, DYNAMIC_YAML, PROVISIONING_STATES, Load, Stack, get, live,
                        live_spot, ready, summary)

# Long enough that `sky serve status` right after `up` sees the replicas provisioning.
PROVISION_DELAY = "4"


@pytest.fixture
def stack():
    s = Stack("spot", {"SKY_LOCALCLOUD_PROVISION_DELAY": PROVISION_DELAY})
    yield s
    s.teardown()


def up(stack, yaml, name):
    p = stack.sky("serve", "up", yaml, "-n", name, "-y", timeout=120)
    out = p.stdout
    assert "Service spec:" in out and "Readiness probe method:" in out
    assert "Waiting for service '%s' to register..." % name in out
    assert re.search(r"^Service name: %s$" % re.escape(name), out, re.M)
    m = re.search(r"^Endpoint URL: (\S+:\d+)$", out, re.M)
    assert m, out
    for hint in ("sky serve status %s" % name, "sky serve status %s --endpoint" % name,
                 "sky serve logs %s [REPLICA_ID]" % name, "sky serve logs %s --controller" % name,
                 "sky serve logs %s --load-balancer" % name, "sky serve down %s" % name,
                 "watch -n10 sky serve status %s" % name, "curl %s" % m.group(1)):
        assert hint in out, hint
    return "http://" + m.group(1)


def check_tables(stack, name, nready=None):
    """Prints `sky serve status` and checks its shape against the JSON."""
    services, replicas, _ = stack.status_tables(name)
    svc = stack.service(name)
    assert [s["NAME"] for s in services] == [name]
    row = services[0]
    if nready is not None:
        assert row["REPLICAS"].startswith("%d/" % nready), row
    assert row["ENDPOINT"] == svc["endpoint"]
    assert all(r["SERVICE_NAME"] == name for r in replicas)
    by_id = {str(r["replica_id"]): r for r in svc["replicas"]}
    for r in replicas:
        j = by_id.get(r["ID"])
        if j is None:  # gone between the two calls
            continue
        assert ("[Spot]" in r["RESOURCES"]) == bool(j["is_spot"]), (
            "replica %s: RESOURCES %r but is_spot %s" % (r["ID"], r["RESOURCES"], j["is_spot"]))
        # As the seed shows it: the catalog's cloud (1x GCP([Spot]vCPU=2)), not the provider's.
        m = re.fullmatch(r"1x (GCP|AWS)\((\[Spot\])?vCPU=\d+\)", r["RESOURCES"])
        assert m, r
        assert not j.get("cloud") or m.group(1) == j["cloud"].upper(), (r, j)
    for r in replicas:
        assert re.fullmatch(r"\d+ (sec|min|hr|day)s? ago", r["LAUNCHED"]), r
        assert r["ENDPOINT"] == "-" or re.fullmatch(r"http://[\d.]+:\d+", r["ENDPOINT"]), r
    return services, replicas


def wait_serving(stack, url, timeout=30):
    def ok():
        status, body = get(url)
        return status == 200 and body.startswith("Hello from")
    stack.wait_for(ok, timeout, "the endpoint %s to answer 200" % url)
    for _ in range(10):
        status, body = get(url)
        assert status == 200 and body.startswith("Hello from"), (status, body)


def test_dynamic_ondemand_fallback(stack):
    name = "http-server"
    url = up(stack, DYNAMIC_YAML, name)

    # 1. Right after `up`: 2 spot and 2 on-demand replicas provisioning.
    def four_launched():
        svc = stack.service(name)
        return svc if svc and len(live(svc["replicas"])) >= 4 else None
    svc = stack.wait_for(four_launched, 15, "4 replicas launched", interval=0.2)
    reps = live(svc["replicas"])
    print("step 1:", summary(svc))
    assert len(reps) == 4, summary(svc)
    assert len(live_spot(reps, True)) == 2 and len(live_spot(reps, False)) == 2, summary(svc)
    assert all(r["status"] in PROVISIONING_STATES for r in reps), summary(svc)
    assert svc["version"] == 1 and svc["active_versions"] in ([1], [])
    check_tables(stack, name)

    # 2. No spot capacity anywhere: two on-demand replicas serve.
    stack.sky("cloud", "capacity", "--all", "0")

    def on_demand_serving():
        svc = stack.service(name)
        reps = svc["replicas"]
        if (svc["status"] == "READY" and len(ready(reps, spot=False)) == 2
                and not ready(reps, spot=True)):
            return svc
        return None
    svc = stack.wait_for(on_demand_serving, 90, "2 on-demand replicas READY")
    print("step 2:", summary(svc))
    assert not [i for i in stack.alive_instances("serve:%s:" % name) if i.get("spot")]
    wait_serving(stack, url)
    check_tables(stack, name, nready=2)

    # 3. Spot capacity is back: two spot replicas, no on-demand left.
    stack.sky("cloud", "capacity", "--all", "unlimited")

    def spot_only():
        svc = stack.service(name)
        reps = svc["replicas"]
        if len(ready(reps, spot=True)) == 2 and not live_spot(reps, False):
            return svc
        return None
    svc = stack.wait_for(spot_only, 120, "2 spot READY and the on-demand ones scaled down")
    print("step 3:", summary(svc))

    def od_instances_gone():
        inst = stack.alive_instances("serve:%s:" % name)
        return len(inst) == 2 and all(i.get("spot") for i in inst)
    stack.wait_for(od_instances_gone, 60, "the on-demand instances terminated")
    wait_serving(stack, url)
    check_tables(stack, name, nready=2)
    services, replicas, _ = stack.status_tables(name, verbose=True)
    assert services[0]["AUTOSCALING_POLICY"] == (
        "Autoscaling from 2 to 3 replicas (target QPS per replica: 1)")
    assert services[0]["LOAD_BALANCING_POLICY"] == "least_load"
    assert "[Spot]" in services[0]["REQUESTED_RESOURCES"]
    assert len(replicas) == 2

    # 4 + 5. Preempt one spot replica under a steady load: an on-demand
    # replica fills in while a new spot replica is tried in another zone;
    # once that one is READY the on-demand one goes. No request fails.
    svc = stack.service(name)
    before = {r["replica_id"] for r in svc["replicas"]}
    victim = ready(svc["replicas"], spot=True)[0]
    load = Load(url, rate=5, max_seconds=180).start()
    try:
        time.sleep(2)
        stack.sky("cloud", "preempt", victim["instance_id"])

        def fallback_launched():
            svc = stack.service(name)
            new = [r for r in live(svc["replicas"]) if r["replica_id"] not in before]
            od = [r for r in new if not r["is_spot"]]
            sp = [r for r in new if r["is_spot"] and r.get("zone")]
            return (svc, od, sp) if od and sp else None
        svc, od, sp = stack.wait_for(fallback_launched, 30,
                                     "an on-demand and a new spot replica launched")
        print("step 4:", summary(svc))
        assert len(od) == 1 and len(sp) == 1, summary(svc)
        # Checked last so that the rest of the scenario still runs and reports.
        zone_msg = None
        if sp[0]["zone"] == victim["zone"]:
            zone_msg = "new spot replica %s launched in the preempted zone %s: %s" % (
                sp[0]["replica_id"], victim["zone"], summary(svc))
        assert not [r for r in live(svc["replicas"]) if r["replica_id"] == victim["replica_id"]]

        def recovered():
            svc = stack.service(name)
            reps = svc["replicas"]
            if (len(ready(reps, spot=True)) == 2 and not live_spot(reps, False)
                    and any(r["replica_id"] == sp[0]["replica_id"] for r in ready(reps, True))):
                return svc
            return None
        svc = stack.wait_for(recovered, 120, "the new spot replica READY and on-demand gone")
        print("step 4 done:", summary(svc))
        time.sleep(2)
    finally:
        load.stop()
    check_tables(stack, name, nready=2)
    assert len(load.results) >= 20, load.results
    assert not load.failures, "failed requests: %s" % load.failures[:20]
    assert zone_msg is None, zone_msg


def test_base_ondemand_fallback(stack):
    name = "base-od"
    url = up(stack, BASE_YAML, name)
    samples = []

    def sample():
        svc = stack.service(name)
        samples.append(svc)
        return svc

    def one_each():
        svc = sample()
        reps = svc["replicas"]
        if len(ready(reps, spot=True)) == 1 and len(ready(reps, spot=False)) == 1:
            return svc
        return None
    svc = stack.wait_for(one_each, 90, "1 spot and 1 on-demand replica READY")
    od_id = ready(svc["replicas"], spot=False)[0]["replica_id"]
    wait_serving(stack, url)
    check_tables(stack, name, nready=2)

    # Without spot capacity the on-demand replica stays alone: no dynamic fallback.
    stack.sky("cloud", "capacity", "--all", "0")

    def spot_gone():
        svc = sample()
        return svc if not ready(svc["replicas"], spot=True) else None
    stack.wait_for(spot_gone, 30, "the spot replica preempted")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        sample()
        time.sleep(0.5)
    status, _ = get(url)
    assert status == 200

    stack.sky("cloud", "capacity", "--all", "unlimited")
    svc = stack.wait_for(one_each, 90, "the spot replica back")
    check_tables(stack, name, nready=2)

    # Exactly one on-demand replica at all times, and always the same one.
    first = next(i for i, s in enumerate(samples) if ready(s["replicas"], spot=False))
    for s in samples[:first]:
        assert len(live_spot(s["replicas"], False)) <= 1, summary(s)
    for s in samples[first:]:
        assert [r["replica_id"] for r in live_spot(s["replicas"], False)] == [od_id], summary(s)
    od_inst = [i for i in stack.alive_instances("serve:%s:" % name) if not i.get("spot")]
    assert len(od_inst) == 1, od_inst
