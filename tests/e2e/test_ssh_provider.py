"""The SSH Node Pool provider (core/prov_ssh.c) on real hosts, driven by
tests/support/prog_sshprov.c: claims spread a service's replicas over hosts
and never put two on one host, capacity is never claimed twice (also by two
processes at once), use_spot is refused, an instance is an agent of its own
reached over TLS, terminate releases the claim and stops that agent, and a
dead host's instances turn FAILED and are not placed there again.
"""
import json
import os
import subprocess
import threading
import time

import pytest

from skytest.paths import BUILD_DIR, SLOW
from skytest.procs import processes_naming
from skytest.sshhosts import SshHosts
from test_ssh_pool import Home, agents_in, home  # noqa: F401 (fixture)

pytestmark = pytest.mark.root("network namespaces and sshd for the pool's hosts")

SSHPROV = os.path.join(BUILD_DIR, "tests", "sshprov")


def prov(home, *args):
    p = subprocess.run([SSHPROV] + list(args), env=home.env, capture_output=True, text=True,
                       timeout=60 * SLOW)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    print("sshprov %s -> %s" % (" ".join(args), out))
    return out


def launch(home, owner, where, *opts):
    r = prov(home, "launch", owner, where, *opts)
    return r


def instance_dirs(hosts, i):
    base = os.path.join(hosts.host(i).home, ".sky-agent")
    found = []
    for d in os.listdir(base) if os.path.isdir(base) else []:
        inst = os.path.join(base, d, "instances")
        found += os.listdir(inst) if os.path.isdir(inst) else []
    return sorted(found)


@pytest.fixture
def pool(home):  # noqa: F811
    with SshHosts(3) as hosts:
        home.write_pools(hosts.pool_yaml("lab"))
        home.sky("ssh", "up")
        yield hosts
        home.sky("ssh", "down", rc=None)
        assert all(not a for a in agents_in(hosts).values()), agents_in(hosts)


def test_claims_spread_and_release(home, pool):  # noqa: F811
    ips = [h.ip for h in pool.hosts]
    a = launch(home, "serve:svc:1", "lab")
    b = launch(home, "serve:svc:2", "lab")
    assert a["rc"] == 0 and b["rc"] == 0, (a, b)
    ia, ib = a["instance"], b["instance"]
    assert ia["zone"] != ib["zone"] and {ia["zone"], ib["zone"]} <= set(ips)
    assert ia["cloud"] == "ssh" and ia["region"] == "lab" and ia["state"] == "RUNNING"
    assert ia["ip"] == ia["zone"] and not ia["spot"]
    assert a["seconds"] < 5 * SLOW, a
    c = launch(home, "serve:svc:3", "lab")
    assert c["rc"] == 0 and c["instance"]["zone"] not in (ia["zone"], ib["zone"])
    d = launch(home, "serve:svc:4", "lab")
    assert d["err_name"] == "CORE_ENOCAPACITY", d
    assert "no host of ssh/lab fits: already runs a replica of this service" in d["error"]
    # Another service, a job: the hosts still have room.
    e = launch(home, "serve:other:1", "lab")
    j = launch(home, "job:7", "lab")
    assert e["rc"] == 0 and j["rc"] == 0
    # Each instance is an agent of its own, reached over TLS with the pool token.
    r = prov(home, "run", ia["id"], "test \"$SKYPILOT_NUM_NODES\" = 1 && echo ok")
    assert r["rc"] == 0 and r["status"] == "SUCCEEDED", r
    r = prov(home, "run", ia["id"], "exit 3")
    assert r["status"] == "FAILED" and r["exit_code"] == 3
    listed = {i["id"] for i in prov(home, "list")["instances"]}
    assert listed == {x["instance"]["id"] for x in (a, b, c, e, j)}
    host_a = ips.index(ia["zone"]) + 1
    assert ia["id"] in instance_dirs(pool, host_a)

    assert prov(home, "terminate", ia["id"])["rc"] == 0
    assert prov(home, "terminate", ia["id"])["rc"] == 0  # idempotent
    assert prov(home, "describe", ia["id"])["instance"]["state"] == "TERMINATED"
    assert ia["id"] not in instance_dirs(pool, host_a)
    assert prov(home, "describe", "ssh-000000000000")["err_name"] == "CORE_ENOTFOUND"
    # The released host takes the service's next replica.
    f = launch(home, "serve:svc:5", "lab")
    assert f["rc"] == 0 and f["instance"]["zone"] == ia["zone"], f
    for x in (b, c, e, j, f):
        prov(home, "terminate", x["instance"]["id"])
    assert prov(home, "list")["instances"] == []
    assert all(instance_dirs(pool, i) == [] for i in (1, 2, 3))


def test_spot_and_capacity_errors(home, pool):  # noqa: F811
    r = launch(home, "job:1", "lab", "spot")
    assert r["err_name"] == "CORE_EINVALREQ"
    assert r["error"].startswith("SSH Node Pool hosts are never spot: use_spot: true cannot be "
                                 "placed on ssh/lab")
    r = prov(home, "candidates", "ssh/lab", "spot")
    assert r["err_name"] == "CORE_EINFEASIBLE" and "never spot" in r["error"]
    r = prov(home, "candidates", "ssh")
    assert r["candidates"] == [{"cloud": "ssh", "region": "lab", "vcpus": 1}]
    r = prov(home, "candidates", "ssh/lab", "cpus=4096")
    assert r["err_name"] == "CORE_EINFEASIBLE" and "CPUs free, 4096 asked" in r["error"], r
    assert prov(home, "candidates", "ssh/nope")["err_name"] == "CORE_EINFEASIBLE"
    r = launch(home, "job:1", "lab", "gpu=A100:1")
    assert r["err_name"] == "CORE_ENOCAPACITY" and "no A100 GPU" in r["error"]

    # Two processes racing for the last CPUs of one host: one wins.
    host1 = pool.host(1).ip
    cpus = home.record("lab")[0]["cpus"]
    results = []
    ts = [threading.Thread(target=lambda k=k: results.append(
        launch(home, "job:%d" % k, "lab/" + host1, "cpus=%d" % cpus))) for k in (10, 11)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(r["rc"] == 0 for r in results) == [False, True], results
    for r in results:
        if r["rc"] == 0:
            prov(home, "terminate", r["instance"]["id"])


def test_dead_host_fails_its_instances(home, pool):  # noqa: F811
    a = launch(home, "serve:svc:1", "lab")["instance"]
    b = launch(home, "serve:svc:2", "lab")["instance"]
    dead = [h.ip for h in pool.hosts].index(a["zone"]) + 1
    pool.kill(dead)
    r = prov(home, "describe", a["id"])
    assert r["instance"]["state"] == "FAILED", r
    assert prov(home, "describe", b["id"])["instance"]["state"] == "RUNNING"
    # The replacement goes to the host left, not to the dead one.
    assert prov(home, "terminate", a["id"])["rc"] == 0
    c = launch(home, "serve:svc:3", "lab")
    assert c["rc"] == 0 and c["instance"]["zone"] not in (a["zone"], b["zone"]), c
    assert c["seconds"] < 5 * SLOW, c
    d = launch(home, "serve:svc:4", "lab")
    assert d["err_name"] == "CORE_ENOCAPACITY"
    # The host comes back (and `sky ssh up` restarts its agent): at once it is
    # offered again, although it was found down a moment ago.
    h = pool.host(dead)
    subprocess.run(["ip", "link", "set", h.veth, "up"], check=True)
    pool._start_sshd(h)
    pool.wait_ssh(h)
    home.sky("ssh", "up")
    e = launch(home, "serve:svc:5", "lab")
    assert e["rc"] == 0 and e["instance"]["zone"] == a["zone"], e
    for x in (b, c["instance"], e["instance"]):
        prov(home, "terminate", x["id"])


def keepers(home):
    """Local processes keeping bucket mounts of this SKY_HOME (ssh, sftp-server, sh)."""
    return [(pid, cmd) for pid, cmd in processes_naming(home.home)
            if "sky-keeper" in cmd or "sftp-server" in cmd or "sshfs" in cmd]


def test_task_files_reach_the_host(home, pool):  # noqa: F811
    wd = os.path.join(home.home, "code")
    os.makedirs(wd)
    with open(os.path.join(wd, "train.txt"), "w") as f:
        f.write("code v1\n")
    bucket = os.path.join(home.home, "buckets", "ckpt")
    os.makedirs(bucket)
    with open(os.path.join(bucket, "ckpt-1"), "w") as f:
        f.write("step 1\n")
    a = launch(home, "job:1", "lab")["instance"]
    # The workdir is the task's cwd, COPY is a copy, MOUNT writes reach the bucket here.
    r = prov(home, "run", a["id"],
             "set -e; test \"$(cat train.txt)\" = 'code v1'; test \"$(cat /data/train.txt)\" = "
             "'code v1'; test \"$(cat /ckpt/ckpt-1)\" = 'step 1'; echo 'step 2' > /ckpt/.tmp; "
             "sync /ckpt/.tmp; mv /ckpt/.tmp /ckpt/ckpt-2; echo host-only > /data/x",
             "workdir=" + wd, "copy=/data:" + wd, "mount=/ckpt:" + bucket)
    assert r["rc"] == 0 and r["status"] == "SUCCEEDED", r
    assert open(os.path.join(bucket, "ckpt-2")).read() == "step 2\n"
    assert sorted(os.listdir(bucket)) == ["ckpt-1", "ckpt-2"]
    assert not os.path.exists(os.path.join(wd, "x"))  # COPY is one way
    # The sftp-server behind a mount serves the bucket and nothing else of this
    # machine, whatever a (compromised) host asks it.
    batch = os.path.join(home.home, "sftp.batch")
    with open(batch, "w") as f:
        f.write("ls -a /\nls -a /bucket\n-get /etc/hostname %s/leak\n-get /../../etc/hostname "
                "%s/leak\n-ls %s\n" % (home.home, home.home, home.home))
    p = subprocess.run(["sftp", "-b", batch, "-D", "%s sftp-sandbox %s" % (SSHPROV, bucket)],
                       env=home.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "ckpt-1" in p.stdout and "ckpt-2" in p.stdout
    assert not os.path.exists(os.path.join(home.home, "leak"))
    assert "not found" in p.stderr and "token" not in p.stdout, p.stdout + p.stderr
    assert keepers(home), "the mounts' keepers run while the instance lives"

    # A writer that dies with its host: what it finished writing is in the bucket.
    r = prov(home, "run", a["id"], "for i in 3 4 5 6 7 8 9; do echo step $i > /ckpt/.t; "
             "mv /ckpt/.t /ckpt/ckpt-$i; sleep 0.2; done; sleep 60",
             "mount=/ckpt:" + bucket, "nowait")
    assert r["rc"] == 0, r
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline and "ckpt-5" not in os.listdir(bucket):
        time.sleep(0.05)
    dead = [h.ip for h in pool.hosts].index(a["zone"]) + 1
    pool.kill(dead)
    done = sorted(int(n.split("-")[1]) for n in os.listdir(bucket) if n.startswith("ckpt-"))
    assert done[:5] == [1, 2, 3, 4, 5] and done == list(range(1, done[-1] + 1)), done
    for n in done:
        assert open(os.path.join(bucket, "ckpt-%d" % n)).read() == "step %d\n" % n
    # Another host picks up from the last checkpoint.
    assert prov(home, "describe", a["id"])["instance"]["state"] == "FAILED"
    prov(home, "terminate", a["id"])
    b = launch(home, "job:1", "lab")["instance"]
    assert b["zone"] != a["zone"]
    r = prov(home, "run", b["id"], "test \"$(cat /ckpt/ckpt-%d)\" = 'step %d'" % (
        done[-1], done[-1]), "mount=/ckpt:" + bucket)
    assert r["status"] == "SUCCEEDED", r
    prov(home, "terminate", b["id"])
    # Keepers end with their instance, or with their host (ssh keepalive).
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline and keepers(home):
        time.sleep(0.2)
    assert keepers(home) == []
