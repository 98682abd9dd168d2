"""Managed spot jobs: user failures, waiting for capacity, cancel and the CLI.

Issue #5, reference managed_jobs.md §2-§4, §8.1: a failing program ends
FAILED without recovery, or is restarted max_restarts_on_errors times first;
with no spot capacity anywhere the job waits in PENDING and runs as soon as
capacity returns; cancelling a running or a recovering job leaves no
instance and no process; `sky spot cancel/logs/status` print what the
reference prints and reject bad arguments with exit code 2.
"""
import re
import time

import pytest

from skytest.paths import SLOW
from skytest.procs import pid_alive
from spot_util import stack  # noqa: F401  (fixture)
from spot_util import TRAIN_YAML, now, parse_status, user_processes

FAILING_YAML = """\
name: failing
resources:
  cpus: 2+
  use_spot: true
%s
run: |
  echo "attempt of $SKYPILOT_RUN_ID starting"
  sleep 0.5
  echo "about to fail"
  exit 3
"""

SLEEPER_YAML = """\
name: %s
resources:
  cpus: 2+
  use_spot: true
run: |
  echo "sleeper $SKYPILOT_RUN_ID up"
  exec sleep 300
"""


def test_failing_program_fails_without_recovery(stack):
    path = stack.write("failing.yaml", FAILING_YAML % "")
    p = stack.sky("spot", "launch", path, "-y", expect_rc=100, timeout=60)
    lines = p.stdout.splitlines()
    assert lines[0] == "Managed spot job 'failing' (ID 1) submitted.", p.stdout
    assert lines[-1] == "Job finished (status: FAILED).", p.stdout
    assert p.stdout.count("about to fail") == 1
    j = stack.job(1)
    assert j["status"] == "FAILED" and j["recovery_count"] == 0, (j, stack.why(1))
    assert "exit code 3" in j["failure_reason"], j
    assert stack.alive_instances() == []
    rows = parse_status(stack.sky("spot", "status", "--all").stdout, all_columns=True)
    assert rows[0]["STATUS"] == "FAILED" and "exit code 3" in rows[0]["FAILURE"], rows
    # Following the logs of a failed job ends with its exit code.
    p = stack.sky("spot", "logs", "1", expect_rc=100)
    assert p.stdout.endswith("about to fail\nJob finished (status: FAILED).\n"), p.stdout


def test_failing_program_restarted_once(stack):
    path = stack.write("failing.yaml", FAILING_YAML % "  job_recovery:\n"
                       "    max_restarts_on_errors: 1")
    job_id = stack.launch(path)
    j = stack.wait_status(job_id, "FAILED", 60)
    assert j["recovery_count"] == 1, (j, stack.why(job_id))
    assert j["restart_count"] >= 1, j
    assert 0 < j["job_duration"] < j["total_duration"], j
    out = stack.sky("spot", "logs", str(job_id), "--no-follow").stdout
    # Both attempts' output, under the same run id.
    assert out.count("attempt of %s starting" % j["run_id"]) == 2, out
    assert out.count("about to fail") == 2, out
    assert stack.alive_instances() == []


def test_waits_in_pending_until_capacity_returns(stack):
    stack.sky("cloud", "capacity", "--all", "0")
    # --env-file as python-dotenv reads it; --env wins over the file.
    env_file = stack.write("train.env", "# short run\nexport STEPS=99\nSTEP_SECONDS='0.2'\n")
    job_id = stack.launch(TRAIN_YAML, "-n", "patient", "--env", "STEPS=6", "--env-file", env_file)
    j = stack.wait_status(job_id, "PENDING", 10)
    seen = set()
    t_end = now() + 4 * SLOW
    while now() < t_end:
        j = stack.job(job_id)
        seen.add(j["status"])
        assert j["status"] in ("PENDING", "STARTING"), j
        assert j["recovery_count"] == 0 and j["job_duration_dash"], j
        time.sleep(0.1)
    assert "PENDING" in seen
    rows = parse_status(stack.sky("spot", "status").stdout)
    assert rows[0]["STATUS"] in ("PENDING", "STARTING") and rows[0]["JOB DURATION"] == "-", rows
    assert stack.alive_instances() == []
    # It kept retrying with growing gaps (1 s, then x1.6 up to the cap, jittered).
    ctl = stack.read("jobs/%d/controller.log" % job_id)
    gaps = [float(g) for g in re.findall(r"no capacity; retrying in ([\d.]+) s", ctl)]
    assert len(gaps) >= 2, ctl
    assert 0.5 <= gaps[0] <= 1.5, gaps
    stack.sky("cloud", "capacity", "--all", "unlimited")
    t0 = now()
    j = stack.wait_status(job_id, ("RUNNING", "SUCCEEDED"), 15)
    # The next retry comes within the capped backoff (max 2 s + 40 % jitter, plus launch).
    assert now() - t0 < 4.5 * SLOW, now() - t0
    j = stack.wait_status(job_id, "SUCCEEDED", 30)
    assert j["recovery_count"] == 0, j
    out = stack.sky("spot", "logs", str(job_id), "--no-follow").stdout
    assert "training done after 6 steps" in out, out
    assert 0 < j["job_duration"] < j["total_duration"], j
    # TOT. DURATION counts the wait for capacity, JOB DURATION does not.
    assert j["total_duration"] - j["job_duration"] > 3.5, j


def test_cancel_running_and_recovering(stack):
    a = stack.launch(TRAIN_YAML, "-n", "run-a", "--env", "STEPS=500")
    b = stack.launch(TRAIN_YAML, "-n", "rec-b", "--env", "STEPS=500")
    ja = stack.wait_status(a, "RUNNING", 30)
    jb = stack.wait_status(b, "RUNNING", 30)
    stack.wait_for(lambda: len(stack.steps(ja["run_id"])) >= 2, 30, "job a running steps")
    assert user_processes(ja["run_id"]), "train.py of job a not found"

    # (1) Cancel a RUNNING job by id.
    p = stack.sky("spot", "cancel", str(a), "-y")
    assert p.stdout == "Job with ID %d is scheduled to be cancelled.\n" % a
    ja = stack.wait_status(a, "CANCELLED", 20)
    assert ja["end_at"] and 0 < ja["job_duration"] <= ja["total_duration"], ja
    assert stack.alive_instances("job:%d" % a) == []
    stack.wait_for(lambda: user_processes(ja["run_id"]) == [], 10, "job a's program gone")

    # (2) Job b loses its instance and cannot get another: RECOVERING/PENDING. Cancel by name.
    stack.sky("cloud", "capacity", "--all", "0")
    remaining = [i for i in stack.alive_instances("job:%d" % b)]
    if remaining:  # the capacity change may not have evicted it: preempt it ourselves
        stack.sky("cloud", "preempt", remaining[0]["id"])
    jb = stack.wait_status(b, ("RECOVERING", "PENDING"), 10)
    banked = jb["job_duration"]
    time.sleep(1.0)
    p = stack.sky("spot", "cancel", "-n", "rec-b", "-y")
    assert p.stdout == "Job with ID %d is scheduled to be cancelled.\n" % b
    jb = stack.wait_status(b, "CANCELLED", 20)
    assert jb["recovery_count"] == 0, jb
    # The time spent waiting for capacity is not running time.
    assert jb["job_duration"] == pytest.approx(banked, abs=0.05), jb
    assert jb["job_duration"] < jb["total_duration"], jb
    assert stack.alive_instances() == []
    assert user_processes(jb["run_id"]) == []
    # Cancelling an ended job is a no-op.
    p = stack.sky("spot", "cancel", str(a), str(b), "-y")
    assert "No job to cancel." in p.stdout, p.stdout
    stack.sky("cloud", "capacity", "--all", "unlimited")
    p = stack.sky("spot", "cancel", "-a", "-y")
    assert p.stdout == "No job to cancel.\n"
    rows = parse_status(stack.sky("spot", "status").stdout)
    assert [(r["ID"], r["STATUS"]) for r in rows] == [(str(b), "CANCELLED"), (str(a), "CANCELLED")]


def test_cancel_selection_and_usage(stack):
    # Usage errors: exit 2, before contacting anything.
    for args in (["spot"], ["spot", "bogus"], ["spot", "launch"], ["spot", "launch", "-n"],
                 ["spot", "cancel"], ["spot", "cancel", "1", "-a"], ["spot", "cancel", "-n", "x",
                 "2"], ["spot", "cancel", "-n", "x", "-a"], ["spot", "cancel", "abc"],
                 ["spot", "logs", "1", "2"], ["spot", "status", "--bogus"],
                 ["spot", "launch", TRAIN_YAML, "--frobnicate"]):
        p = stack.sky(*args, expect_rc=2)
        assert "usage: sky spot" in p.stderr, p.stderr
    p = stack.sky("spot", "cancel", "1", "-a", expect_rc=2)
    assert "Can only specify one of JOB_IDS or --name or --all." in p.stderr
    bad_env = stack.write("bad.env", "A=1\nB='open\n")
    for path, what in ((bad_env, bad_env + ":2: the quoted value is never closed"),
                       (bad_env + ".x", "cannot read %s.x: " % bad_env)):
        p = stack.sky("spot", "launch", TRAIN_YAML, "-y", "--env-file", path, expect_rc=1)
        assert p.stderr.startswith("sky spot: --env-file: " + what), p.stderr
    # A broken YAML is refused with its location, no job is made.
    bad = stack.write("bad.yaml", "name: x\nresources:\n  cpus: [\n")
    p = stack.sky("spot", "launch", bad, "-y", expect_rc=1)
    assert "bad.yaml:" in p.stderr, p.stderr
    p = stack.sky("spot", "cancel", "-a", "-y")
    assert p.stdout == "No job to cancel.\n"
    p = stack.sky("spot", "logs", "7", expect_rc=1)
    assert "not found" in p.stderr

    # Two jobs with the same name: the name alone is ambiguous.
    dup = stack.write("dup.yaml", SLEEPER_YAML % "dup")
    one = stack.launch(dup)
    two = stack.launch(dup)
    three = stack.launch(stack.write("other.yaml", SLEEPER_YAML % "other"), "--env", "X=1")
    for j in (one, two, three):
        stack.wait_status(j, "RUNNING", 30)
    p = stack.sky("spot", "cancel", "-n", "dup", "-y", expect_rc=1)
    assert "Multiple running jobs found with name 'dup'." in p.stderr
    assert "Job IDs: [%d, %d]" % (two, one) in p.stderr, p.stderr
    p = stack.sky("spot", "logs", "-n", "dup", "--no-follow", expect_rc=1)
    assert "Multiple running jobs found with name 'dup'." in p.stderr
    p = stack.sky("spot", "cancel", "-n", "nothing-like-it", "-y")
    assert p.stdout == "No running job found with name 'nothing-like-it'.\n"
    # logs without an id: the latest job.
    p = stack.sky("spot", "logs", "--no-follow")
    assert re.search(r"sleeper sky-managed-\S+_other_%d-0 up" % three, p.stdout), p.stdout
    p = stack.sky("spot", "cancel", str(one), str(two), "-y")
    assert p.stdout == "Jobs with IDs %d, %d are scheduled to be cancelled.\n" % (one, two)
    for j in (one, two):
        stack.wait_status(j, "CANCELLED", 20)
    # A follower of a cancelled job exits with 103.
    follower = stack.popen_sky("spot", "logs", str(three))
    time.sleep(0.5)
    p = stack.sky("spot", "cancel", "-a", "-y")
    assert p.stdout == "Job with ID %d is scheduled to be cancelled.\n" % three
    rc, out = stack.finish(follower, 30)
    assert rc == 103, out
    assert out.endswith("Job finished (status: CANCELLED).\n"), out
    assert "sleeper" in out
    assert stack.alive_instances() == []
    pid = stack.controller_pid()
    assert pid and pid_alive(pid)
