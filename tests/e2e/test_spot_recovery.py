"""Managed spot jobs recover from preemptions and from the controller's death.

Issue #5, seed docs/managed_spot_jobs.rst, reference managed_jobs.md §3-§6:
examples/spot/train.yaml (a checkpointing program on a MOUNT bucket) is
preempted twice and still SUCCEEDS with #RECOVERIES 2, the same
$SKYPILOT_RUN_ID and no lost or repeated work; recovery starts within 2 s of a
preemption and moves to another region (EAGER_NEXT_REGION); `sky spot logs`
shows every attempt's output; a `kill -9` of the jobs controller while a job
runs or recovers is repaired by the next `sky spot` command without losing,
duplicating or leaking anything.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from skytest import api
from skytest.observe import dashboard_dom
from skytest.observe import rows as dom_rows
from skytest.paths import SLOW
from skytest.procs import pid_alive
from spot_util import stack  # noqa: F401  (fixture)
from spot_util import TRAIN_YAML, check_steps, now, parse_status, user_processes


def steps_done(stack, run_id):
    return len(stack.steps(run_id))


def preempt_and_time(stack, job_id, inst):
    """Preempts <inst> and returns (seconds until the job left RUNNING or a new
    instance of the job appeared, the job's row then)."""
    owner = "job:%d" % job_id
    t0 = now()
    stack.sky("cloud", "preempt", inst["instance_id"])
    deadline = t0 + 10 * SLOW
    while now() < deadline:
        j = stack.job(job_id)
        others = [i for i in stack.alive_instances(owner) if i["id"] != inst["instance_id"]]
        if j["status"] != "RUNNING" or others or j["instance_id"] != inst["instance_id"]:
            return now() - t0, j
        time.sleep(0.05)
    stack.fail("job %d did not react to the preemption of %s within 10 s" % (
        job_id, inst["instance_id"]))


def check_attempt_output(out, total, n_attempts):
    """Each attempt's step lines in `sky spot logs` are in order, and the attempts
    together show every step. The output an instance printed in its last moment
    before a preemption may not have been copied yet when it vanished (as with
    the reference, whose logs live on the cluster): such a gap is allowed only
    right before a recovery, and only a few steps long."""
    per = {}
    for a, s_ in re.findall(r"^run \S+ attempt (\d+): step (\d+)/%d " % total, out, re.M):
        per.setdefault(int(a), []).append(int(s_))
    assert sorted(per) == list(range(1, n_attempts + 1)), out
    for a in sorted(per):
        got = per[a]
        assert got == list(range(got[0], got[0] + len(got))), "attempt %d: %s" % (a, got)
    for a in range(1, n_attempts):
        last, first = per[a][-1], per[a + 1][0]
        assert last - 1 <= first - 1 <= last + 3, "attempt %d showed up to step %d, " \
            "attempt %d resumed at %d:\n%s" % (a, last, a + 1, first, out)
    assert per[1][0] == 1 and per[n_attempts][-1] == total, out


def test_preempted_twice_recovers_and_resumes(stack):
    steps, step_s = 24, 0.4
    job_id = stack.launch(TRAIN_YAML, "-n", "train", "--env", "STEPS=%d" % steps,
                          "--env", "STEP_SECONDS=%s" % step_s)
    j = stack.wait_status(job_id, "RUNNING", 30)
    run_id = j["run_id"]
    assert re.match(r"^sky-managed-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-\d{6}_train_%d-0$" % job_id,
                    run_id), run_id
    regions = [j["region"]]
    delays = []
    for n in (1, 2):
        # Let it make progress on this instance first.
        stack.wait_for(lambda: steps_done(stack, run_id) >= 4 * n, 30,
                       "%d steps done" % (4 * n), interval=0.1)
        j = stack.job(job_id)
        assert j["status"] == "RUNNING" and j["recovery_count"] == n - 1, j
        assert len(stack.alive_instances("job:%d" % job_id)) == 1
        delay, _ = preempt_and_time(stack, job_id, j)
        delays.append(delay)
        j = stack.wait_status(job_id, "RUNNING", 30, pred=lambda x: x["recovery_count"] == n)
        regions.append(j["region"])
        # Exactly one live instance: the old one is gone, the new one runs the job.
        live = stack.alive_instances("job:%d" % job_id)
        assert [i["id"] for i in live] == [j["instance_id"]], live
    print("recovery started %s s after the preemptions; regions %s" % (
        ["%.2f" % d for d in delays], regions))
    assert all(d < 2.0 * SLOW for d in delays), "recovery started after %s s" % delays
    # EAGER_NEXT_REGION: the first relaunch after a preemption avoids the preempted region.
    assert regions[1] != regions[0] and regions[2] != regions[1], regions

    j = stack.wait_status(job_id, "SUCCEEDED", 60)
    assert j["recovery_count"] == 2, (j, stack.why(job_id))
    assert j["run_id"] == run_id
    assert 0 < j["job_duration"] < j["total_duration"], j
    # Running time ~ the steps; the two recoveries are not counted as running time.
    assert j["job_duration"] >= steps * step_s * 0.8, j
    attempts = check_steps(stack.steps(run_id), run_id, steps)
    assert len(attempts) == 3, attempts
    assert stack.alive_instances() == []
    assert user_processes(run_id) == []

    # The table as the seed shows it.
    rows = parse_status(stack.sky("spot", "status").stdout)
    assert [(r["ID"], r["NAME"], r["#RECOVERIES"], r["STATUS"]) for r in rows] == [
        (str(job_id), "train", "2", "SUCCEEDED")]
    assert rows[0]["RESOURCES"] == "1x [CPU:2+][Spot]"
    rows = parse_status(stack.sky("spot", "status", "--all").stdout, all_columns=True)
    assert rows[0]["CLOUD"] != "-" and rows[0]["REGION"] == regions[2], rows
    # The jobs controller's /metrics (docs/metrics.md) says the same, in valid Prometheus text.
    with open(os.path.join(stack.home, "jobs", "controller.port")) as f:
        metrics = "http://127.0.0.1:%d/metrics" % int(f.read())
    st, text = api.request("GET", metrics, stack._token())
    assert st == 200, text
    for line in ('sky_jobs_job_recoveries_total{job_id="%d",name="train"} 2' % job_id,
                 'sky_jobs_job_status{job_id="%d",name="train",status="SUCCEEDED"} 1' % job_id,
                 'sky_jobs{status="SUCCEEDED"} 1'):
        assert line in text.decode().splitlines(), (line, text)
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)
    # The dashboard (served by the serve controller, which reads the jobs store) shows the job.
    dom = dashboard_dom(stack.sky("dashboard", "--url").stdout.strip())
    assert [(r["job-id"], r["status"]) for r in dom_rows(dom, "job")] == [
        (str(job_id), "SUCCEEDED")], dom

    # (f) The logs show all three attempts, each line once, in order.
    out = stack.sky("spot", "logs", str(job_id), "--no-follow").stdout
    starts = re.findall(r"^run (\S+) attempt (\d+): (starting|resuming) from step (\d+)", out,
                        re.M)
    assert [(r, a) for r, a, _, _ in starts] == [(run_id, "1"), (run_id, "2"), (run_id, "3")], out
    assert [k for _, _, k, _ in starts] == ["starting", "resuming", "resuming"]
    assert out.count("setup: nothing to install") == 3
    check_attempt_output(out, steps, 3)
    assert "training done after %d steps" % steps in out
    # Following a finished job prints the same and its final status; exit code 0.
    p = stack.sky("spot", "logs", "-n", "train")
    assert p.stdout == out + "Job finished (status: SUCCEEDED).\n"
    # The controller's own log tells the story.
    ctl = stack.sky("spot", "logs", "--controller", str(job_id), "--no-follow").stdout
    assert ctl.count("recovering") >= 2 and "SUCCEEDED" in ctl, ctl


def test_launch_follows_logs_across_recoveries(stack):
    """`sky spot launch` without -d streams every attempt and exits 0 on success."""
    p = stack.popen_sky("spot", "launch", TRAIN_YAML, "-y", "-n", "follow", "--env", "STEPS=12",
                        "--env", "STEP_SECONDS=0.3")
    j = stack.wait_status(1, "RUNNING", 30)
    stack.wait_for(lambda: steps_done(stack, j["run_id"]) >= 3, 30, "3 steps")
    preempt_and_time(stack, 1, stack.job(1))
    rc, out = stack.finish(p, 60)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "Managed spot job 'follow' (ID 1) submitted.", out
    assert lines[-1] == "Job finished (status: SUCCEEDED).", out
    assert "attempt 1: starting from step 1" in out and "attempt 2: resuming from step" in out
    assert "training done after 12 steps" in out


def test_controller_killed_while_running(stack):
    steps, step_s = 30, 0.3
    job_id = stack.launch(TRAIN_YAML, "-n", "k9", "--env", "STEPS=%d" % steps,
                          "--env", "STEP_SECONDS=%s" % step_s)
    j = stack.wait_status(job_id, "RUNNING", 30)
    run_id, inst = j["run_id"], j["instance_id"]
    stack.wait_for(lambda: steps_done(stack, run_id) >= 3, 30, "3 steps")
    # A follower of the logs outlives the controller: it resumes where it was.
    follower = stack.popen_sky("spot", "logs", str(job_id))
    time.sleep(0.5)
    old = stack.kill_controller()
    at_kill = steps_done(stack, run_id)
    assert at_kill < steps - 3, "the job was about to end when the controller was killed"
    time.sleep(1.0)  # the job keeps running on its instance meanwhile
    # Any `sky spot` command brings the controller back, which resumes the monitor.
    rows = parse_status(stack.sky("spot", "status").stdout)
    assert rows[0]["STATUS"] in ("RUNNING", "SUCCEEDED"), rows
    new = stack.controller_pid()
    assert new and new != old and not pid_alive(old)
    j = stack.job(job_id)
    assert j["instance_id"] == inst and j["recovery_count"] == 0, (j, stack.why(job_id))
    j = stack.wait_status(job_id, "SUCCEEDED", 60)
    assert j["recovery_count"] == 0, (j, stack.why(job_id))
    assert 0 < j["job_duration"] < j["total_duration"], j
    assert j["job_duration"] >= steps * step_s * 0.8, j
    # One attempt, never relaunched: no second instance was ever made for it.
    attempts = check_steps(stack.steps(run_id), run_id, steps)
    assert attempts == [1], attempts
    owned = [i for i in stack.cloud_instances() if i.get("owner") == "job:%d" % job_id]
    assert [i["id"] for i in owned] in ([], [inst]), owned
    assert stack.alive_instances() == []
    # The output copied before and after the restart is whole, each line once.
    out = stack.sky("spot", "logs", str(job_id), "--no-follow").stdout
    logged = re.findall(r"^run \S+ attempt 1: step (\d+)/", out, re.M)
    assert logged == [str(i) for i in range(1, steps + 1)], out
    rc, followed = stack.finish(follower, 30)
    assert rc == 0, followed
    assert followed == out + "Job finished (status: SUCCEEDED).\n", followed


def test_controller_killed_while_recovering(stack):
    steps, step_s = 16, 0.3
    job_id = stack.launch(TRAIN_YAML, "-n", "k9r", "--env", "STEPS=%d" % steps,
                          "--env", "STEP_SECONDS=%s" % step_s)
    j = stack.wait_status(job_id, "RUNNING", 30)
    run_id, first = j["run_id"], j["instance_id"]
    stack.wait_for(lambda: steps_done(stack, run_id) >= 4, 30, "4 steps")
    # No spot capacity anywhere: the running instance is preempted and the job can
    # only wait, in RECOVERING or PENDING (launch backoff).
    stack.sky("cloud", "capacity", "--all", "0")
    j = stack.wait_status(job_id, ("RECOVERING", "PENDING"), 10)
    banked = j["job_duration"]
    assert banked > 0
    time.sleep(1.5)
    j = stack.job(job_id)
    assert j["status"] in ("RECOVERING", "PENDING"), j
    assert j["job_duration"] == pytest.approx(banked, abs=0.01), "duration grew while waiting"
    old = stack.kill_controller()
    time.sleep(0.5)
    j = stack.job(job_id)  # restarts the controller
    assert stack.controller_pid() not in (None, old)
    assert j["status"] in ("RECOVERING", "PENDING") and j["recovery_count"] == 0, j
    assert j["job_duration"] == pytest.approx(banked, abs=0.01), j
    assert stack.alive_instances("job:%d" % job_id) == []
    stack.sky("cloud", "capacity", "--all", "unlimited")
    j = stack.wait_status(job_id, "RUNNING", 20, pred=lambda x: x["recovery_count"] == 1)
    assert j["instance_id"] != first
    assert [i["id"] for i in stack.alive_instances("job:%d" % job_id)] == [j["instance_id"]]
    j = stack.wait_status(job_id, "SUCCEEDED", 60)
    assert j["recovery_count"] == 1, j
    assert 0 < j["job_duration"] < j["total_duration"], j
    assert j["job_duration"] >= steps * step_s * 0.8, j
    assert check_steps(stack.steps(run_id), run_id, steps) == [1, 2]
    assert stack.alive_instances() == []
    assert user_processes(run_id) == []


def test_status_starts_a_controller_only_for_work_it_died_with(stack):
    """A question never starts the jobs controller (or the local cloud) just to say
    there are no jobs; a controller killed with its state on disk is restarted by the
    next command; one that stopped with nothing to do stays stopped until --refresh
    (the reference's `sky jobs queue --refresh`) or a launch."""
    p = stack.sky("spot", "status")
    assert p.stdout == "Fetching managed spot job status...\nNo in-progress managed spot jobs.\n"
    assert stack.controller_pid() is None and stack.home_processes() == []
    job_id = stack.launch(stack.write("quick.yaml", "name: quick\nrun: echo quick-done\n"))
    stack.wait_status(job_id, "SUCCEEDED", 60)
    pid = stack.controller_pid()
    stack.kill_controller()
    p = stack.sky("spot", "status", "--json")
    assert [j["job_id"] for j in json.loads(p.stdout)["jobs"]] == [job_id]
    pid2 = stack.controller_pid()
    assert pid2 not in (None, pid)
    # Stopped with nothing to do: questions answer without it, and say how to list the jobs.
    stack.stop_controller()
    assert os.path.exists(os.path.join(stack.home, "jobs", "controller.stopped"))
    p = stack.sky("jobs", "queue")
    assert p.stdout == ("Fetching managed job statuses...\nManaged jobs\nNo in-progress managed "
                        "jobs.\n"), p.stdout
    assert "--refresh" in p.stderr and stack.controller_pid() is None
    p = stack.sky("jobs", "queue", "--refresh", "--json")
    assert [j["job_id"] for j in json.loads(p.stdout)["jobs"]] == [job_id]
    assert stack.controller_pid() not in (None, pid2)
    assert not os.path.exists(os.path.join(stack.home, "jobs", "controller.stopped"))


def test_local_cloud_killed_while_running(stack):
    """sky-localcloud dies (kill -9): the controller reconnects, which restarts it;
    the instance it recovers keeps running the job, nothing is relaunched."""
    job_id = stack.launch(TRAIN_YAML, "-n", "lc9", "--env", "STEPS=15",
                          "--env", "STEP_SECONDS=0.3")
    j = stack.wait_status(job_id, "RUNNING", 30)
    stack.wait_for(lambda: steps_done(stack, j["run_id"]) >= 3, 30, "3 steps")
    lc = stack._api("localcloud/port", "/v1/health").get("pid")
    assert lc, "sky-localcloud's /v1/health has no pid"
    os.kill(lc, signal.SIGKILL)
    j = stack.wait_status(job_id, "SUCCEEDED", 60)
    assert j["recovery_count"] == 0, (j, stack.why(job_id))
    assert check_steps(stack.steps(j["run_id"]), j["run_id"], 15) == [1]
    # The controller brought the local cloud back (no CLI touched it) and cleaned up there.
    assert not pid_alive(lc)
    assert stack._api("localcloud/port", "/v1/health").get("pid") not in (None, lc)
    assert stack.alive_instances() == [], stack.why(job_id)
