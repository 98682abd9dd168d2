"""A managed job on an SSH Node Pool survives its host's death.

Issue #12: examples/spot/train.py (a checkpointing program on a MOUNT bucket,
which reaches pool hosts over sshfs, docs/ssh-node-pools.md) runs as a
managed job on `infra: ssh/lab` of 3 real hosts (network namespaces running
Debian's sshd). Its host dies (every process in it killed, link down): the
jobs controller relaunches it on another host of the pool with the same
$SKYPILOT_RUN_ID, it resumes after its last checkpoint and SUCCEEDS; the
job shows the pool and the host (REGION, ZONE). Nothing is left afterwards:
no instance, no agent on the hosts, no process of the test's SKY_HOME.
"""
import os
import re

import pytest

from skytest.paths import SOURCE_DIR
from skytest.sshhosts import SshHosts
from spot_util import TRAIN_BUCKET, SpotStack, check_steps, parse_status, user_processes
from test_ssh_pool import agents_in

pytestmark = pytest.mark.root("network namespaces and sshd for the pool's hosts")

TRAIN = """\
name: train

resources:
  infra: ssh/lab
  cpus: 1

workdir: %s

file_mounts:
  /checkpoint:
    name: %s
    mode: MOUNT

run: |
  python3 train.py --run_name $SKYPILOT_RUN_ID --output_dir /checkpoint/train/ \\
    --steps ${STEPS:-30} --step-seconds ${STEP_SECONDS:-0.5}
""" % (os.path.join(SOURCE_DIR, "examples", "spot"), TRAIN_BUCKET)


@pytest.fixture
def lab(request):
    stack = SpotStack(request.node.name[5:25])
    hosts = SshHosts(3)
    failed_before = request.session.testsfailed
    try:
        hosts.start()
        with open(os.path.join(stack.home, "ssh_node_pools.yaml"), "w") as f:
            f.write(hosts.pool_yaml("lab"))
        stack.sky("ssh", "up")
        yield stack, hosts
        stack.sky("jobs", "cancel", "-a", "-y", check=False)
        stack.wait_for(lambda: all(j["status"] in ("SUCCEEDED", "CANCELLED", "FAILED")
                                   for j in stack.jobs()), 30, "every job to end")
        stack.sky("ssh", "down", check=False)
        left = {i: a for i, a in agents_in(hosts).items() if a}
        stack.teardown(keep=request.session.testsfailed > failed_before)
        assert not left, "agents left on the hosts: %s" % left
    finally:
        stack.teardown(check=False)
        hosts.close()
        assert not hosts.leftovers(), hosts.leftovers()


def test_job_survives_host_death(lab):
    stack, hosts = lab
    steps = 16
    path = stack.write("train.yaml", TRAIN)
    p = stack.sky("jobs", "launch", path, "-y", "-d", "--env", "STEPS=%d" % steps,
                  "--env", "STEP_SECONDS=0.4")
    job_id = int(re.search(r"\(ID (\d+)\) submitted\.$", p.stdout, re.M).group(1))
    j = stack.wait_status(job_id, "RUNNING", 30)
    run_id = j["run_id"]
    ips = [h.ip for h in hosts.hosts]
    assert j["cloud"] == "ssh" and j["region"] == "lab" and j["zone"] in ips, j
    first = j["zone"]
    rows = parse_status(stack.sky("spot", "status", "--all").stdout, all_columns=True)
    assert [(r["CLOUD"], r["REGION"], r["ZONE"]) for r in rows] == [("SSH", "lab", first)], rows
    assert rows[0]["RESOURCES"] == "1x [CPU:1]", rows

    stack.wait_for(lambda: len(stack.steps(run_id)) >= 4, 30, "4 steps checkpointed",
                   interval=0.1)
    hosts.kill(ips.index(first) + 1)
    j = stack.wait_status(job_id, "RUNNING", 30, pred=lambda x: x["recovery_count"] == 1)
    assert j["run_id"] == run_id and j["zone"] in ips and j["zone"] != first, j
    j = stack.wait_status(job_id, "SUCCEEDED", 60)
    assert j["recovery_count"] == 1 and j["run_id"] == run_id, (j, stack.why(job_id))
    # Every step ran under one run id; the second attempt resumed after the
    # last checkpoint the first one made before its host died.
    attempts = check_steps(stack.steps(run_id), run_id, steps)
    assert len(attempts) == 2, attempts
    assert user_processes(run_id) == []
    out = stack.sky("jobs", "logs", str(job_id), "--no-follow").stdout
    starts = re.findall(r"^run (\S+) attempt (\d+): (starting|resuming) from step (\d+)", out,
                        re.M)
    assert [(r, a, how) for r, a, how, _ in starts] == [
        (run_id, "1", "starting"), (run_id, "2", "resuming")], out
    assert int(starts[1][3]) > 1, out
