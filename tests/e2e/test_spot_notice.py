"""Preemption notices end to end (issue #13): `sky cloud preempt ID --notice S`.

The local cloud announces the preemption S seconds ahead; the instance's
sky-agent serves the notice at GET /notice (EC2's instance-action document);
the controllers act before the instance goes:
- serve: both spot replicas get a notice at once; their replacements are
  READY and the doomed replicas are out of sky-lb before the deadline, and not
  one GET fails meanwhile;
- jobs: the job gets SIGTERM, checkpoints and exits; the recovery launch
  starts at once and the job resumes elsewhere with the same SKYPILOT_RUN_ID,
  before the deadline, without doing a step twice.
"""
import json
import os
import re
import time

import pytest

from serve_util import Load, Stack, get, ready, summary
from skytest.paths import SLOW, SOURCE_DIR
from spot_util import TRAIN_YAML, SpotStack, check_steps, user_processes

SERVE_NOTICE_S = 20 * SLOW
JOB_NOTICE_S = 12 * SLOW

SERVICE_YAML = """\
service:
  readiness_probe: /health
  replicas: 2
resources:
  ports: 8081
  cpus: 2+
  use_spot: true
workdir: {workdir}
run: python3 server.py
"""


def agent_notice(inst):
    """(status, document) of the instance's agent GET /notice."""
    status, body = get("http://%s:%d/notice" % (inst["ip"], inst["agent_port"]), 5)
    try:
        return status, json.loads(body)
    except (TypeError, ValueError):
        return status, body


def instance(stack, iid):
    """The local cloud's description of <iid>, whatever its state."""
    return stack._api("localcloud/port", "/v1/instances/%s" % iid)


class BodyLoad(Load):
    """Load that also records which replica answered each GET."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.answers = []  # (time.time(), replica id or None)

    def _one(self):
        status, body = get(self.url, self.timeout)
        m = re.search(r"\(replica (\d+)\)", body or "") if status == 200 else None
        self.answers.append((time.time(), int(m.group(1)) if m else None))
        return status


@pytest.fixture
def serve_stack():
    s = Stack("notice", {"SKY_LOCALCLOUD_PROVISION_DELAY": "1",
                         "SKY_SERVE_NOTICE_DRAIN_SECONDS": "3"})
    yield s
    s.teardown()


def test_serve_replaces_and_drains_before_the_deadline(serve_stack):
    stack = serve_stack
    yaml = os.path.join(stack.home, "svc.yaml")
    with open(yaml, "w") as f:
        f.write(SERVICE_YAML.format(workdir=os.path.join(SOURCE_DIR, "examples/serve/http_server")))
    stack.sky("serve", "up", yaml, "-n", "svc", "-y", timeout=120)

    def two_ready():
        svc = stack.service("svc")
        return svc if svc and len(ready(svc["replicas"], spot=True)) == 2 else None
    svc = stack.wait_for(two_ready, 60, "2 READY spot replicas")
    url = stack.endpoint_url("svc")
    # sky-lb learns of READY replicas at its next sync.
    stack.wait_for(lambda: all(get(url)[0] == 200 for _ in range(5)), 30, "the endpoint")
    doomed = {r["replica_id"]: r["instance_id"] for r in ready(svc["replicas"])}

    with BodyLoad(url, 20, SERVE_NOTICE_S + 20) as load:
        time.sleep(2)
        t0 = time.time()
        stack.sky("cloud", "preempt", "--notice", "%g" % SERVE_NOTICE_S, *doomed.values())
        deadline = t0 + SERVE_NOTICE_S
        for iid in doomed.values():
            status, doc = agent_notice(instance(stack, iid))
            assert status == 200 and doc["action"] == "terminate", (status, doc)
            assert 0 < doc["seconds_left"] <= SERVE_NOTICE_S and \
                abs(doc["deadline"] - deadline) < 2, doc
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["time"]), doc

        # The replacements come up while the doomed replicas still serve.
        def replaced():
            svc = stack.service("svc")
            new = [r for r in ready(svc["replicas"]) if r["replica_id"] not in doomed]
            return svc if len(new) >= 2 else None
        svc = stack.wait_for(replaced, SERVE_NOTICE_S, "2 replacements READY", interval=0.3)
        replaced_at = time.time()
        assert replaced_at < deadline, summary(svc)
        noticed = [r for r in svc["replicas"] if r["replica_id"] in doomed]
        assert all(r.get("preempt_at") for r in noticed if r["status"] == "READY"), summary(svc)
        # Past the deadline the doomed instances are gone.
        while time.time() < deadline + 3:
            time.sleep(0.3)
        for iid in doomed.values():
            i = instance(stack, iid)
            assert i["state"] in ("PREEMPTED", "TERMINATED") and \
                i["reason"] == "preempted after its notice" and \
                deadline - 1 < i["ended_at"] < deadline + 2, i
        time.sleep(2)
    assert load.results, "no request sent"
    if load.failures:
        stack.fail("%d of %d GETs failed, at %s s after the notice (deadline %.0f s)" % (
            len(load.failures), len(load.results),
            ["%.1f:%s" % (t - t0, st) for t, st in load.failures[:8]], SERVE_NOTICE_S))
    last_doomed = max((t for t, rid in load.answers if rid in doomed), default=t0)
    print("notice %.0f s: replacements READY after %.1f s, last answer of a doomed replica "
          "%.1f s before the deadline, %d GETs, 0 failed" % (
              SERVE_NOTICE_S, replaced_at - t0, deadline - last_doomed, len(load.results)))
    # Drained before the instances went (the LB syncs every second).
    assert last_doomed < deadline - 1, deadline - last_doomed
    assert any(rid not in doomed for _, rid in load.answers if rid)


@pytest.fixture
def spot_stack(request):
    s = SpotStack("notice")
    failed_before = request.session.testsfailed
    yield s
    s.teardown(keep=request.session.testsfailed > failed_before)


def test_job_checkpoints_on_sigterm_and_resumes_elsewhere(spot_stack):
    stack = spot_stack
    steps = 30
    job_id = stack.launch(TRAIN_YAML, "-n", "train", "--env", "STEPS=%d" % steps,
                          "--env", "STEP_SECONDS=0.3")
    j = stack.wait_status(job_id, "RUNNING", 30)
    run_id = j["run_id"]
    stack.wait_for(lambda: len(stack.steps(run_id)) >= 4, 30, "4 steps", interval=0.1)
    old = instance(stack, j["instance_id"])
    assert agent_notice(old)[0] == 404

    t0 = time.time()
    stack.sky("cloud", "preempt", "--notice", "%g" % JOB_NOTICE_S, old["id"])
    deadline = t0 + JOB_NOTICE_S
    status, doc = agent_notice(old)
    assert status == 200 and doc["action"] == "terminate", (status, doc)

    # Resumed on another instance, in another region, before the deadline.
    j = stack.wait_status(job_id, "RUNNING", JOB_NOTICE_S,
                          pred=lambda x: x["recovery_count"] == 1)
    resumed_at = time.time()
    assert resumed_at < deadline, stack.why(job_id)
    assert j["instance_id"] != old["id"] and j["region"] != old["region"], j
    assert j["run_id"] == run_id
    # The old instance was let go once its task stopped: terminated before the deadline.
    i = instance(stack, old["id"])
    assert i["state"] == "TERMINATED" and i["ended_at"] < deadline, (i, stack.why(job_id))

    j = stack.wait_status(job_id, "SUCCEEDED", 60)
    assert j["recovery_count"] == 1 and j["run_id"] == run_id, j
    attempts = check_steps(stack.steps(run_id), run_id, steps)
    assert len(attempts) == 2, attempts
    # SIGTERM stopped the step in progress: no step ran twice.
    done = [s for _, s, _ in stack.steps(run_id)]
    assert len(done) == len(set(done)) == steps, done
    out = stack.sky("spot", "logs", str(job_id), "--no-follow").stdout
    assert re.search(r"^run %s attempt 1: SIGTERM: stopping, checkpointed through step \d+$"
                     % re.escape(run_id), out, re.M), out
    assert re.search(r"^run %s attempt 2: resuming from step" % re.escape(run_id), out, re.M)
    ctl = stack.read("jobs/%d/controller.log" % job_id)
    assert "preemption notice" in ctl, ctl
    print("notice %.0f s: resumed after %.1f s, %.1f s before the deadline" % (
        JOB_NOTICE_S, resumed_at - t0, deadline - resumed_at))
    assert stack.alive_instances() == [] and user_processes(run_id) == []
