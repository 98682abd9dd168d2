"""sky serve on an SSH Node Pool, through the serve controller and sky-lb.

Issue #12: 3 real hosts (network namespaces running Debian's sshd, see
tests/skytest/sshhosts.py) set up by `sky ssh up`. The seed's HTTP service
(examples/serve/http_server) on `infra: ssh/lab` gets one replica per host,
shown with REGION = pool and ZONE = host; when a replica's host dies (every
process in it killed, link down) the replica is replaced on the host left
and, once the controller stopped routing to it, not one idempotent GET
fails. A spot service whose any_of lists the local cloud for spot and the
pool puts its on-demand fallback replicas on the pool (docs/ssh-node-pools.md).
Everything is removed afterwards: services, instances, agents on the hosts,
the local cloud, the namespaces.
"""
import os
import re
import time

import pytest

from serve_util import Load, Stack, get, live, ready, summary
from skytest.paths import SLOW, SOURCE_DIR
from skytest.sshhosts import SshHosts
from test_ssh_pool import agents_in

pytestmark = pytest.mark.root("network namespaces and sshd for the pool's hosts")

HTTP_SERVER = os.path.join(SOURCE_DIR, "examples", "serve", "http_server")

# The seed's HTTP service on the pool (2 replicas on 3 hosts).
with open(os.path.join(SOURCE_DIR, "tests", "data", "serve_e2e", "ssh_pool.yaml")) as f:
    POOL_SERVICE = f.read()

# Spot on the local cloud, the on-demand fallback on the pool.
SPOT_SERVICE = """\
service:
  readiness_probe: /health
  replica_policy:
    min_replicas: 2
    max_replicas: 2
    base_ondemand_fallback_replicas: 1

resources:
  ports: 8081
  cpus: 2+
  use_spot: true
  any_of:
    - infra: gcp
    - infra: ssh/lab

workdir: %s

run: python3 server.py
""" % HTTP_SERVER


class Lab:
    def __init__(self, stack, hosts):
        self.stack, self.hosts = stack, hosts

    def ip_index(self, ip):
        return [h.ip for h in self.hosts.hosts].index(ip) + 1


@pytest.fixture
def lab(request):
    stack = Stack(request.node.name[5:25])
    hosts = SshHosts(3)
    try:
        hosts.start()
        with open(os.path.join(stack.home, "ssh_node_pools.yaml"), "w") as f:
            f.write(hosts.pool_yaml("lab"))
        stack.sky("ssh", "up")
        yield Lab(stack, hosts)
        errors = stack.serve_down_all(
            lambda *a, timeout: stack.sky(*a, check=False, timeout=timeout, quiet=True))
        stack.sky("ssh", "down", check=False)
        left = {i: a for i, a in agents_in(hosts).items() if a}
        stack.teardown()
        assert not errors, errors
        assert not left, "agents left on the hosts: %s" % left
    finally:
        stack.teardown(check=False)
        hosts.close()
        assert not hosts.leftovers(), hosts.leftovers()


def serve_up(stack, text, name):
    path = os.path.join(stack.home, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    p = stack.sky("serve", "up", path, "-n", name, "-y", timeout=120)
    return "http://" + re.search(r"^Endpoint URL: (\S+:\d+)$", p.stdout, re.M).group(1)


def wait_ready(stack, name, n, timeout, pred=lambda r: True):
    def check():
        svc = stack.service(name)
        reps = [r for r in ready(svc["replicas"]) if pred(r)]
        return svc if len(reps) >= n else None
    return stack.wait_for(check, timeout, "%d READY replicas of %s" % (n, name))


def test_pool_service_survives_host_death(lab):
    stack = lab.stack
    t0 = time.monotonic()
    url = serve_up(stack, POOL_SERVICE, "web")
    svc = wait_ready(stack, "web", 2, 60)
    print("both replicas READY %.1f s after `sky serve up` returned" % (time.monotonic() - t0))
    reps = ready(svc["replicas"])
    zones = sorted(r["zone"] for r in reps)
    assert len(set(zones)) == 2, summary(svc)
    assert set(zones) <= {h.ip for h in lab.hosts.hosts}, summary(svc)
    for r in reps:
        assert r["cloud"] == "ssh" and r["region"] == "lab" and not r["is_spot"], r

    # The seed's table: REGION is the pool, ZONE (-v) the host, RESOURCES names the pool.
    _, rows, _ = stack.status_tables("web", verbose=True)
    assert sorted((r["REGION"], r["ZONE"], r["STATUS"]) for r in rows) == [
        ("lab", z, "READY") for z in zones], rows
    assert {r["RESOURCES"] for r in rows} == {"1x SSH/lab(vCPU=1)"}, rows
    # Each replica answers on its host, and sky-lb routes to them.
    for r in reps:
        status, body = get(r["endpoint"] + "/")
        assert status == 200 and "(replica %d)" % r["replica_id"] in str(body), body
    stack.wait_for(lambda: get(url + "/")[0] == 200, 10, "sky-lb to route to the replicas")

    # One replica's host dies: every process in it, and its link.
    victim = reps[0]
    spare = ({h.ip for h in lab.hosts.hosts} - set(zones)).pop()
    load = Load(url + "/", rate=10, max_seconds=90 * SLOW, timeout=10).start()
    try:
        time.sleep(1)
        t_kill = time.time()
        lab.hosts.kill(lab.ip_index(victim["zone"]))

        def dropped():
            svc = stack.service("web")
            r = [x for x in svc["replicas"] if x["replica_id"] == victim["replica_id"]]
            return time.time() if not r or r[0]["status"] != "READY" else None
        t_not_ready = stack.wait_for(dropped, 30, "the dead host's replica to leave READY",
                                     interval=0.1)

        def replaced():
            svc = stack.service("web")
            new = [r for r in ready(svc["replicas"])
                   if r["replica_id"] != victim["replica_id"] and r["zone"] == spare]
            return (time.time(), svc) if new else None
        t_replaced, svc = stack.wait_for(replaced, 60, "a replacement READY on " + spare,
                                         interval=0.2)
        # sky-lb takes the controller's READY set every second (SKY_SERVE_LB_SYNC_INTERVAL).
        t_lb = t_not_ready + 1.0 + 1.0 * SLOW
        stack.wait_for(lambda: len([t for t, _ in load.results if t >= t_lb]) >= 30, 30,
                       "30 GETs after sky-lb dropped the replica", interval=0.2)
    finally:
        load.stop()
    print("host killed: replica not READY after %.1f s, replacement READY after %.1f s" % (
        t_not_ready - t_kill, t_replaced - t_kill))
    late = [(t - t_kill, s) for t, s in load.failures if t >= t_lb]
    early = [(t - t_kill, s) for t, s in load.failures if t < t_lb]
    print("%d GETs, %d failed before the LB dropped the replica (%s), %d after" % (
        len(load.results), len(early), early[:5], len(late)))
    assert not late, late[:10]
    live_zones = sorted(r["zone"] for r in live(svc["replicas"]))
    assert victim["zone"] not in [r["zone"] for r in ready(svc["replicas"])], summary(svc)
    assert len(ready(svc["replicas"])) == 2 and spare in live_zones, summary(svc)


def test_spot_on_cloud_fallback_on_pool(lab):
    stack = lab.stack
    url = serve_up(stack, SPOT_SERVICE, "mixed")
    svc = wait_ready(stack, "mixed", 2, 90)
    reps = ready(svc["replicas"])
    spot = [r for r in reps if r["is_spot"]]
    od = [r for r in reps if not r["is_spot"]]
    assert len(spot) == 1 and len(od) == 1, summary(svc)
    assert spot[0]["cloud"] != "ssh", summary(svc)
    assert od[0]["cloud"] == "ssh" and od[0]["region"] == "lab", summary(svc)
    assert od[0]["zone"] in {h.ip for h in lab.hosts.hosts}, summary(svc)
    _, rows, _ = stack.status_tables("mixed", verbose=True)
    by_zone = {r["ZONE"]: r for r in rows}
    assert by_zone[od[0]["zone"]]["RESOURCES"] == "1x SSH/lab(vCPU=2)", rows
    assert by_zone[od[0]["zone"]]["REGION"] == "lab", rows
    assert "[Spot]" in by_zone[spot[0]["zone"]]["RESOURCES"], rows
    stack.wait_for(lambda: get(url + "/")[0] == 200, 10, "sky-lb to route to the replicas")

    # use_spot on the pool alone cannot be placed: a clear error, nothing started.
    bad = os.path.join(stack.home, "bad.yaml")
    with open(bad, "w") as f:
        f.write(POOL_SERVICE.replace("  cpus: 1\n", "  cpus: 1\n  use_spot: true\n"))
    p = stack.sky("serve", "up", bad, "-n", "bad", "-y", expect_rc=1)
    assert "SSH Node Pool hosts are never spot: use_spot: true cannot be placed on ssh/lab" in (
        p.stdout + p.stderr), p.stdout + p.stderr
    assert [s["name"] for s in stack.services()] == ["mixed"]

    # sky launch places on the pool through the same registry; its host is free again after down.
    p = stack.sky("launch", "--infra", "ssh/lab", "-c", "c1", "-y", "echo on $(hostname -I)")
    host = re.search(r"^on (\S+)", p.stdout, re.M).group(1)
    assert host in {h.ip for h in lab.hosts.hosts} and host != od[0]["zone"], p.stdout
    out = stack.sky("status").stdout
    assert re.search(r"^c1 .* 1x SSH/lab\(vCPU=1\) +lab +%s +UP$" % re.escape(host), out,
                     re.M), out
    p = stack.sky("launch", "--infra", "ssh/lab", "--use-spot", "-c", "c2", "-y", "true",
                  expect_rc=1)
    assert "never spot" in p.stdout + p.stderr
    stack.sky("down", "c1", "-y")
