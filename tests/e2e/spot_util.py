"""Helpers for the managed spot jobs end-to-end tests (stdlib + pytest only).

Each test gets a SpotStack: a temporary SKY_HOME, an environment that
shortens the jobs controller's timings (through its SKY_JOBS_* variables, see
controller/ctl_jobs.h) and the local cloud's provisioning delay
(SKY_LOCALCLOUD_PROVISION_DELAY), and a `sky` runner that records every
command with its output so a failure shows what happened. teardown() cancels
every job, stops the jobs controller, runs `sky cloud down` and asserts that
nothing of this SKY_HOME is left: no process (controller, local cloud,
sky-agent, the user's program), network namespace or veth.

Binaries: $SKY_BUILD_DIR/controller/sky, .../controller/sky-controller,
.../localcloud/sky-localcloud, .../replica_agent/sky-agent (skytest.paths).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time
from time import monotonic as now

import pytest
from skytest.home import HomeMixin
from skytest.paths import (SKY, SKY_AGENT, SKY_CONTROLLER, SKY_LOCALCLOUD, SLOW, SOURCE_DIR,
                           require_binaries, sanitized)
from skytest.procs import kill_and_wait, processes_naming
from skytest.tables import parse_table


TRAIN_YAML = "examples/spot/train.yaml"
TRAIN_BUCKET = "sky-spot-train-ckpt"

STATUS_HEADER = ["ID", "NAME", "RESOURCES", "SUBMITTED", "TOT. DURATION", "JOB DURATION",
                 "#RECOVERIES", "STATUS"]
STATUS_HEADER_ALL = STATUS_HEADER + ["STARTED", "CLOUD", "REGION", "ZONE", "FAILURE"]

TERMINAL = {"SUCCEEDED", "CANCELLED", "FAILED", "FAILED_SETUP", "FAILED_PRECHECKS",
            "FAILED_NO_RESOURCE", "FAILED_CONTROLLER"}



# The controller polls every 0.2 s; launch backoff starts at 1 s and is capped at
# 2 s (3 s sanitized); a failed program is checked for preemption after 0.5 s.
FAST_ENV = {
    "SKY_LOCALCLOUD_PROVISION_DELAY": "0.3",
    "SKY_JOBS_POLL_INTERVAL": "0.2",
    "SKY_JOBS_RETRY_INIT_GAP": "1",
    "SKY_JOBS_RETRY_MAX_FACTOR": "3" if sanitized() else "2",
    "SKY_JOBS_FAILURE_GRACE": "0.5",
    "SKY_JOBS_STATUS_TIMEOUT": "5",
}


DURATION_RE = re.compile(r"^(-|< 1 second|(\d+d ?)?(\d+h ?)?(\d+m ?)?(\d+s)?)$")
AGO_RE = re.compile(r"^(-|\d+ (sec|min|hr|day)s? ago)$")


def parse_status(out, all_columns=False):
    """Parses `sky spot status [--all]`: returns the rows (dicts) of the table."""
    lines = out.rstrip("\n").split("\n")
    assert lines[0] == "Fetching managed spot job status...", out
    if lines[1:] == ["No in-progress managed spot jobs."]:
        return []
    assert lines[1] == "Managed spot jobs:", out
    rows = parse_table(lines[2:], STATUS_HEADER_ALL if all_columns else STATUS_HEADER)
    for r in rows:
        assert r["ID"].isdigit(), r
        assert DURATION_RE.match(r["TOT. DURATION"]), r
        assert DURATION_RE.match(r["JOB DURATION"]), r
        assert AGO_RE.match(r["SUBMITTED"]), r
        assert r["#RECOVERIES"].isdigit(), r
    return rows


class SpotStack(HomeMixin):
    """One SKY_HOME with its jobs controller, local cloud and jobs."""

    def __init__(self, name, extra_env=None):
        require_binaries(SKY, SKY_CONTROLLER, SKY_LOCALCLOUD, SKY_AGENT)
        self._init_home(name, "SKY_JOBS_", FAST_ENV, extra_env)
        self.tmp = os.path.join(self.home, "test-files")
        os.makedirs(self.tmp)

    # -- running the CLI

    def popen_sky(self, *args):
        """A long-running `sky` (launch/logs that follow), output to a file."""
        out = open(os.path.join(self.tmp, "popen-%d.out" % len(self.history)), "w+")
        p = subprocess.Popen([SKY] + list(args), cwd=SOURCE_DIR, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             text=True)
        p.out_file = out
        self.history.append("$ sky %s  (background, pid %d)" % (" ".join(args), p.pid))
        return p

    @staticmethod
    def finish(p, timeout):
        try:
            p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            p.out_file.seek(0)
            raise AssertionError("background sky did not end within %ss:\n%s" % (
                timeout, p.out_file.read()))
        p.out_file.seek(0)
        out = p.out_file.read()
        p.out_file.close()
        return p.returncode, out

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- jobs

    def jobs(self, all_jobs=True):
        p = self.sky("spot", "status", "--json", *(["--all"] if all_jobs else []),
                     timeout=30, quiet=True)
        return json.loads(p.stdout)["jobs"]

    def job(self, job_id):
        for j in self.jobs():
            if j["job_id"] == job_id:
                return j
        raise AssertionError("job %d not listed" % job_id)

    def launch(self, yaml, *args):
        p = self.sky("spot", "launch", yaml, "-y", "-d", *args)
        m = re.search(r"^Managed spot job '([^']+)' \(ID (\d+)\) submitted\.$", p.stdout, re.M)
        assert m, p.stdout
        return int(m.group(2))

    def wait_status(self, job_id, statuses, timeout, pred=None):
        statuses = {statuses} if isinstance(statuses, str) else set(statuses)

        def check():
            j = self.job(job_id)
            if j["status"] in statuses and (pred is None or pred(j)):
                return j
            return None
        return self.wait_for(check, timeout, "job %d in %s" % (job_id, sorted(statuses)))

    def fail(self, msg):
        detail = []
        try:
            detail.append(self.sky("spot", "status", "--all", check=False, timeout=30).stdout)
            detail.append(self.sky("cloud", "status", check=False, timeout=30).stdout)
        except AssertionError as e:
            detail.append(str(e))
        detail.append("--- jobs/controller.log (tail)\n" + self.tail("jobs/controller.log"))
        try:
            for d in sorted(os.listdir(os.path.join(self.home, "jobs"))):
                if d.isdigit():
                    detail.append("--- jobs/%s/controller.log\n" % d +
                                  self.tail("jobs/%s/controller.log" % d, 30))
        except OSError:
            pass
        pytest.fail(msg + "\n" + "\n".join(detail))

    def why(self, job_id):
        """The job's controller log and the local cloud's log tail, for assertion messages."""
        return "\n--- jobs/%d/controller.log\n%s\n--- localcloud.log (tail)\n%s" % (
            job_id, self.tail("jobs/%d/controller.log" % job_id, 80),
            self.tail("localcloud/localcloud.log", 40))

    def read(self, rel):
        with open(os.path.join(self.home, rel), errors="replace") as f:
            return f.read()

    def checkpoint_dir(self, run_id):
        return os.path.join(self.home, "buckets", TRAIN_BUCKET, "train", run_id)

    def steps(self, run_id):
        """(run_id, step, attempt) tuples of train.py's steps.log."""
        try:
            with open(os.path.join(self.checkpoint_dir(run_id), "steps.log")) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            if line.count(",") == 2:
                r, s, a = line.rsplit(",", 2)
                out.append((r, int(s), int(a)))
        return out

    # -- daemons

    def controller_pid(self):
        """pid of the live jobs controller, or None."""
        return self.daemon_pid("jobs/controller.port", "/health")

    def kill_controller(self, sig=signal.SIGKILL):
        pid = self.controller_pid()
        assert pid, "no jobs controller answers"
        return kill_and_wait(pid, sig)

    def alive_instances(self, owner=None):
        return [i for i in self.cloud_instances()
                if i.get("state") in ("PENDING", "RUNNING")
                and (owner is None or i.get("owner") == owner)]

    def stop_controller(self):
        self.stop_pid(self.controller_pid())

    def teardown(self, check=True, keep=False):
        """Cancels every job, waits for them to end, stops the controller, runs
        `sky cloud down` and asserts nothing of this SKY_HOME is left."""
        if self.closed:
            return
        self.closed = True
        tag = self.localcloud_tag()
        errors = []
        try:
            p = self.sky("spot", "cancel", "-a", "-y", check=False, timeout=60)
            if p.returncode != 0:
                errors.append("spot cancel -a -y failed (rc %d)" % p.returncode)
            deadline = now() + 30 * SLOW
            open_jobs = None
            while now() < deadline:
                open_jobs = [j for j in self.jobs() if j["status"] not in TERMINAL]
                if not open_jobs:
                    break
                time.sleep(0.3)
            if open_jobs:
                errors.append("jobs not ended 30 s after cancel -a: %s" % open_jobs)
            left = self.alive_instances()
            if left:
                errors.append("instances left after every job ended: %s" % left)
        except AssertionError as e:
            errors.append(str(e))
        self.stop_controller()
        # Sanitizer reports (ASan/UBSan/LSan at exit) land in the daemon's log.
        log = self.tail("jobs/controller.log", 100000)
        for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if needle in log:
                i = log.index(needle)
                errors.append("jobs controller: %s\n%s" % (needle, log[max(0, i - 200):i + 3000]))
                break
        self.cloud_down(lambda *a, timeout: self.sky(*a, check=False, timeout=timeout), tag,
                        errors, timeout=90, leak_timeout=15 * SLOW)
        if keep or (errors and check):
            print("kept %s for inspection" % self.home)
        else:
            shutil.rmtree(self.home, ignore_errors=True)
        if errors and check:
            pytest.fail("teardown of %s:\n%s" % (self.home, "\n".join(errors)))



@pytest.fixture
def stack(request):
    """A SpotStack named after the test, torn down after it. A failed test
    keeps its SKY_HOME (logs, databases) for inspection."""
    s = SpotStack(request.node.name[5:29])
    failed_before = request.session.testsfailed
    yield s
    s.teardown(keep=request.session.testsfailed > failed_before)


def user_processes(run_id):
    """pids of live processes whose command line names <run_id> (train.py runs)."""
    return [pid for pid, cmd in processes_naming(run_id, environ=False) if "train.py" in cmd]


def check_steps(steps, run_id, total):
    """train.py's steps.log: every step 1..total ran, under one run id, and a
    step ran again only when it was the last one of an attempt that died
    before checkpointing it. Returns the attempts seen, in order."""
    assert steps, "no steps logged"
    assert {r for r, _, _ in steps} == {run_id}, "run ids in steps.log: %s" % {
        r for r, _, _ in steps}
    attempts = []
    by_attempt = {}
    for _, s, a in steps:
        if a not in by_attempt:
            attempts.append(a)
            by_attempt[a] = []
        by_attempt[a].append(s)
    assert attempts == sorted(attempts), "attempts interleave: %s" % steps
    for a in attempts:
        got = by_attempt[a]
        assert got == list(range(got[0], got[0] + len(got))), "attempt %d steps %s" % (a, got)
    for prev, nxt in zip(attempts, attempts[1:]):
        last, first = by_attempt[prev][-1], by_attempt[nxt][0]
        # Resumed after the newest checkpoint: at most the step that was being
        # checkpointed when the instance vanished runs again.
        assert last <= first <= last + 1, "attempt %d ended at %d, attempt %d began at %d" % (
            prev, last, nxt, first)
    assert sorted({s for _, s, _ in steps}) == list(range(1, total + 1)), "steps %s" % steps
    return attempts
