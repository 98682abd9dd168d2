"""`sky jobs` (today's SkyPilot) next to the seed-era `sky spot`, on a real
jobs controller and local cloud.

Issue #14: the seed's `sky spot launch` ran on spot without saying so in the
YAML (bert_qa.yaml has no use_spot), while `sky jobs launch` takes the YAML's
word; the task flags (--cpus, --use-spot, --env, --secret, --job-recovery, ...)
are stored with the job, so a controller restarted by `kill -9` rebuilds the
same task; the seed's setup line that appends to ~/.bashrc reaches run;
`sky jobs queue/logs/cancel/dashboard` take SkyPilot's flags.
"""
import json
import os
import re
import signal
import time
import urllib.request

from skytest.paths import SLOW
from spot_util import stack  # noqa: F401  (fixture)
from spot_util import parse_status

# The seed's bert_qa.yaml, shaped for the local cloud: no use_spot, the ~/.bashrc
# line of its setup, $SKYPILOT_RUN_ID in run. Runs until cancelled.
BERT_QA = """\
name: bert_qa
resources:
  cpus: 2+
setup: |
  echo export WANDB_API_KEY=seed-wandb-key >> ~/.bashrc
run: |
  echo "key=$WANDB_API_KEY run=$SKYPILOT_RUN_ID tok=$HF_TOKEN s=$S"
  exec sleep 300
"""


def job_instance(stack, job_id):
    owner = "job:%d" % job_id
    insts = stack.alive_instances(owner)
    assert len(insts) == 1, (insts, stack.why(job_id))
    return insts[0]


def wait_output(stack, job_id, needle, timeout=30):
    def seen():
        out = stack.sky("jobs", "logs", str(job_id), "--no-follow", quiet=True).stdout
        return out if needle in out else None
    return stack.wait_for(seen, timeout, "job %d printing %r" % (job_id, needle))


FOUR_VCPU = {"c6i.xlarge", "m6i.xlarge", "e2-standard-4", "n2-standard-4"}


def test_spot_by_default_flags_stored_and_bashrc(stack):
    path = stack.write("bert_qa.yaml", BERT_QA)
    # The seed's command, verbatim: spot although the YAML does not say so.
    p = stack.sky("spot", "launch", "-n", "bert-qa", path, "-y", "-d")
    ids = {"bert-qa": int(re.search(r"\(ID (\d+)\) submitted", p.stdout).group(1))}
    # Today's command takes the YAML's word: on-demand.
    p = stack.sky("jobs", "launch", "-n", "od", path, "-y", "-d")
    assert re.search(r"^Managed job 'od' \(ID \d+\) submitted\.$", p.stdout, re.M), p.stdout
    ids["od"] = int(re.search(r"\(ID (\d+)\) submitted", p.stdout).group(1))
    # The task flags, on top of the YAML.
    p = stack.sky("jobs", "launch", "-n", "flags", path, "-y", "-d", "--use-spot", "--cpus", "4",
                  "--env", "HF_TOKEN=tok1", "--secret", "S=sec1", "--job-recovery", "FAILOVER")
    ids["flags"] = int(re.search(r"\(ID (\d+)\) submitted", p.stdout).group(1))
    # And they win over sky spot's default.
    p = stack.sky("spot", "launch", "-n", "spot-od", path, "-y", "-d", "--no-use-spot")
    ids["spot-od"] = int(re.search(r"\(ID (\d+)\) submitted", p.stdout).group(1))
    for j in ids.values():
        stack.wait_status(j, "RUNNING", 60)
    assert job_instance(stack, ids["bert-qa"])["spot"] is True
    assert job_instance(stack, ids["od"])["spot"] is False
    assert job_instance(stack, ids["spot-od"])["spot"] is False
    inst = job_instance(stack, ids["flags"])
    assert inst["spot"] is True and inst["instance_type"] in FOUR_VCPU, inst

    # The seed's setup appended to ~/.bashrc; run saw it. The flags reached the task.
    out = wait_output(stack, ids["flags"], "key=")
    assert "key=seed-wandb-key" in out and "tok=tok1 s=sec1" in out, out
    out = wait_output(stack, ids["bert-qa"], "key=")
    assert "key=seed-wandb-key" in out and "tok= s=" in out, out

    # The seed's table for sky spot; today's for sky jobs; the same jobs.
    rows = parse_status(stack.sky("spot", "status").stdout)
    assert {r["NAME"]: r["RESOURCES"] for r in rows} == {
        "bert-qa": "1x [CPU:2+][Spot]", "od": "1x [CPU:2+]", "flags": "1x [CPU:4][Spot]",
        "spot-od": "1x [CPU:2+]"}, rows
    q = stack.sky("jobs", "queue").stdout.splitlines()
    assert q[:3] == ["Fetching managed job statuses...", "Managed jobs",
                     "In progress tasks: 4 RUNNING"], q
    assert q[3].split() == ["ID", "TASK", "NAME", "REQUESTED", "SUBMITTED", "TOT.", "DURATION",
                            "JOB", "DURATION", "#RECOVERIES", "STATUS", "POOL"], q
    assert [line.split()[2] for line in q[4:]] == ["spot-od", "flags", "od", "bert-qa"], q
    q = stack.sky("jobs", "queue", "--limit", "1").stdout
    assert "Only showing the latest 1 managed jobs" in q and "bert-qa" not in q, q
    doc = json.loads(stack.sky("jobs", "queue", "--json", "-u").stdout)
    assert [j["name"] for j in doc["jobs"]] == ["spot-od", "flags", "od", "bert-qa"]
    assert all(j.get("user") for j in doc["jobs"]), doc

    # A controller killed and restarted rebuilds the same task from the stored flags: the
    # recovery after a preemption is again spot with 4 vCPUs, with the same envs and secrets.
    stack.kill_controller(signal.SIGKILL)
    stack.sky("cloud", "preempt", inst["id"])
    j = stack.wait_status(ids["flags"], "RUNNING", 60,
                          pred=lambda j: j["recovery_count"] == 1)
    inst2 = job_instance(stack, ids["flags"])
    assert inst2["id"] != inst["id"] and inst2["spot"] is True, inst2
    assert inst2["instance_type"] in FOUR_VCPU, inst2
    wait_output(stack, ids["flags"], "run=%s tok=tok1 s=sec1" % j["run_id"])
    out = stack.sky("jobs", "logs", str(ids["flags"]), "--no-follow").stdout
    assert out.count("key=seed-wandb-key run=%s tok=tok1 s=sec1" % j["run_id"]) == 2, out

    # --sync-down saves the logs under $SKY_HOME/sky_logs/managed_jobs/.
    p = stack.sky("jobs", "logs", str(ids["flags"]), "--sync-down")
    m = re.search(r"^Job %d logs: (\S+)$" % ids["flags"], p.stdout, re.M)
    assert m and m.group(1).startswith(os.path.join(stack.home, "sky_logs", "managed_jobs"))
    with open(m.group(1)) as f:
        assert "tok=tok1" in f.read()
    p = stack.sky("jobs", "logs", "--controller", str(ids["flags"]), "--sync-down")
    assert "Job %d logs (controller): " % ids["flags"] in p.stdout, p.stdout

    # The dashboard: a page of the jobs on loopback, until Ctrl+C.
    dash = stack.popen_sky("jobs", "dashboard")
    url = stack.wait_for(lambda: _dash_url(dash), 10, "the dashboard's URL")
    assert url.startswith("http://127.0.0.1:")
    page = urllib.request.urlopen(url, timeout=10 * SLOW).read().decode()
    assert "<h1>Managed jobs</h1>" in page and "bert-qa" in page and "RUNNING" in page
    logs = urllib.request.urlopen("%s/jobs/%d/logs" % (url, ids["flags"]),
                                  timeout=10 * SLOW).read()
    assert b"tok=tok1" in logs
    dash.send_signal(signal.SIGINT)
    rc, _ = stack.finish(dash, 10)
    assert rc == 0

    # cancel: today's selection flags and messages.
    p = stack.sky("jobs", "cancel", "1", "-a", expect_rc=2)
    assert "Can only specify one of JOB_IDS, --name, or --all/--all-users." in p.stderr
    p = stack.sky("jobs", "cancel", "-u", "-y")
    assert p.stdout == "Jobs with IDs %s are scheduled to be cancelled.\n" % ", ".join(
        str(i) for i in sorted(ids.values())), p.stdout
    for j in ids.values():
        stack.wait_status(j, "CANCELLED", 30)
    q = stack.sky("jobs", "queue", "-s").stdout
    assert q == ("Fetching managed job statuses...\nManaged jobs (showing in-progress jobs "
                 "only)\nNo in-progress managed jobs.\n"), q


def _dash_url(p):
    p.out_file.seek(0)
    m = re.search(r"Managed jobs dashboard: (http://\S+)", p.out_file.read())
    return m.group(1) if m else None


def test_controller_stops_when_idle_and_cloud_down_leaves_nothing():
    """The jobs controller stops once it has had no job for SKY_JOBS_IDLE_TIMEOUT
    (the reference's controller autostops), marking that it stopped with nothing to
    do; `sky cloud down` stops a controller that still has work, and nothing starts
    the local cloud again until a user asks for instances."""
    from spot_util import SpotStack
    s = SpotStack("idle", {"SKY_JOBS_IDLE_TIMEOUT": "2"})
    try:
        job = s.launch(s.write("quick.yaml", "name: quick\nrun: echo quick-done\n"))
        s.wait_status(job, "SUCCEEDED", 60)
        pid = s.controller_pid()
        assert pid
        s.wait_for(lambda: s.controller_pid() is None, 20, "the idle controller to stop")
        assert os.path.exists(os.path.join(s.home, "jobs", "controller.stopped"))
        p = s.sky("spot", "status")
        assert p.stdout == "Fetching managed spot job status...\nNo in-progress managed spot " \
                           "jobs.\n" and "--refresh" in p.stderr, (p.stdout, p.stderr)
        assert s.controller_pid() is None
        p = s.sky("spot", "status", "-r", "--json")
        assert [j["job_id"] for j in json.loads(p.stdout)["jobs"]] == [job]

        # A job still running when the cloud goes down: the controller is stopped first,
        # and whatever restarts it later does not start the local cloud again.
        sleeper = s.launch(s.write("sleep.yaml", "name: sleeper\nrun: exec sleep 300\n"))
        s.wait_status(sleeper, "RUNNING", 60)
        p = s.sky("cloud", "down", "-y")
        assert "Stopped the jobs controller." in p.stdout, p.stdout
        s.wait_for(lambda: s.home_processes() == [], 15, "nothing of the home running")
        assert not os.path.exists(os.path.join(s.home, "jobs", "controller.stopped"))
        # It died with work to do: a question starts it again, but not the cloud.
        j = s.job(sleeper)
        assert j["status"] in ("RUNNING", "RECOVERING", "PENDING", "STARTING"), j
        time.sleep(2)
        assert s.cloud_instances() == []
        assert not [c for _, c in s.home_processes() if "sky-localcloud" in c]
        log = s.read("jobs/controller.log")
        assert "the local cloud was taken down (sky cloud down)" in log, log[-3000:]
        # A user's launch brings the cloud back; the job recovers.
        s.sky("cloud", "up")
        j = s.wait_status(sleeper, "RUNNING", 60, pred=lambda j: j["recovery_count"] >= 1)
    finally:
        s.teardown()
