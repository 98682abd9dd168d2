#!/usr/bin/env python3
"""The jobs controller under many jobs: what it costs to watch them and how
fast it reacts to preemptions meanwhile.

    bench/jobs/jobs_scale.py [--jobs N] [--window S] [--preempt K] [--json]

On the local cloud of a fresh SKY_HOME, submits N managed spot jobs whose
program prints a line every second (so the controller copies output while
it monitors), waits until every job is RUNNING, then:

  1. samples the controller for <window> seconds: its CPU time (utime+stime
     from /proc/PID/stat, so only the controller's own work counts), its
     threads and its RSS;
  2. preempts K of the jobs' instances, one every 2 s, and times each job
     from the preemption until the controller left RUNNING (detection) and
     until the job was RUNNING again on a new instance (recovery), reading
     the controller's API every 20 ms;
  3. sets every zone's capacity to 0, which preempts every job at once, and
     samples the controller's CPU for <window>/2 seconds while all of them
     wait for capacity (launch backoff 5 s, at most 10 s);
  4. gives the capacity back and times how long each job takes to run again
     (all of them at once: the mass recovery).

Then cancels every job, stops the controller and runs `sky cloud down`.
The controller runs with its default timings (SKY_JOBS_POLL_INTERVAL 0.5 s)
except for the launch backoff, and the local cloud provisions in 0.3 s.
Exit status 0 unless a step fails.
"""
import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests"))
from skytest.home import HomeMixin  # noqa: E402  (the tests' view of a SKY_HOME)

YAML = """\
name: tick
resources:
  cpus: 2+
  use_spot: true
run: |
  for i in $(seq 1 %d); do echo "tick $i"; sleep 1; done
"""
TERMINAL = {"SUCCEEDED", "CANCELLED", "FAILED", "FAILED_SETUP", "FAILED_PRECHECKS",
            "FAILED_NO_RESOURCE", "FAILED_CONTROLLER"}
TICKS = os.sysconf("SC_CLK_TCK")


class Stack(HomeMixin):
    def __init__(self):
        self._init_home("jobs-scale", "SKY_JOBS_", {"SKY_LOCALCLOUD_PROVISION_DELAY": "0.3",
                                                    "SKY_JOBS_RETRY_INIT_GAP": "5",
                                                    "SKY_JOBS_RETRY_MAX_FACTOR": "2"}, None)

    def fail(self, msg):
        print("--- jobs/controller.log (tail)\n" + self.tail("jobs/controller.log"))
        raise SystemExit("jobs_scale: " + msg)

    def jobs(self):
        return self._api("jobs/controller.port", "/api/jobs?all=1", timeout=30)["jobs"]

    def job(self, job_id):
        return self._api("jobs/controller.port", "/api/jobs/%d" % job_id)

    def controller_pid(self):
        return self.daemon_pid("jobs/controller.port", "/health")


def proc_sample(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    threads = rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, threads, rss


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else float("nan")


def run(args, s):
    path = os.path.join(s.home, "tick.yaml")
    with open(path, "w") as f:
        f.write(YAML % args.ticks)
    t0 = time.monotonic()
    for i in range(args.jobs):
        s.sky("spot", "launch", path, "-y", "-d", "-n", "tick%d" % i, quiet=True)
    pid = s.controller_pid()

    def all_running():
        js = s.jobs()
        bad = [j for j in js if j["status"] in TERMINAL]
        if bad:
            s.fail("jobs ended early: %s" % bad[:3])
        return len(js) == args.jobs and all(j["status"] == "RUNNING" for j in js)
    s.wait_for(all_running, 60 + 3 * args.jobs, "every job RUNNING", interval=0.5)
    started = time.monotonic() - t0
    time.sleep(2)

    cpu0, _, _ = proc_sample(pid)
    threads, rss = [], []
    w0 = time.monotonic()
    while time.monotonic() - w0 < args.window:
        _, th, r = proc_sample(pid)
        threads.append(th)
        rss.append(r)
        time.sleep(0.5)
    cpu1, _, _ = proc_sample(pid)
    window = time.monotonic() - w0
    res = {"jobs": args.jobs, "start_all_s": round(started, 1), "window_s": round(window, 1),
           "cpu_s": round(cpu1 - cpu0, 2),
           "cpu_pct": round(100 * (cpu1 - cpu0) / window, 1),
           "threads_max": max(threads), "threads_median": pct(threads, 50),
           "rss_kib_max": max(rss)}

    detect, recover = [], []
    js = sorted(s.jobs(), key=lambda j: j["job_id"])
    step = max(1, len(js) // max(1, args.preempt))
    for j in js[::step][:args.preempt]:
        jid, inst = j["job_id"], j["instance_id"]
        t = time.monotonic()
        s.sky("cloud", "preempt", inst, quiet=True)
        left = None
        while time.monotonic() - t < 60:
            cur = s.job(jid)
            if left is None and (cur["status"] != "RUNNING" or cur["instance_id"] != inst):
                left = time.monotonic() - t
            if cur["status"] == "RUNNING" and cur["instance_id"] not in ("", inst):
                recover.append(time.monotonic() - t)
                break
            time.sleep(0.02)
        else:
            s.fail("job %d did not recover within 60 s" % jid)
        detect.append(left)
        time.sleep(2)
    res.update({"preempted": len(detect),
                "detect_p50_s": round(pct(detect, 50), 3), "detect_max_s": round(max(detect), 3),
                "recover_p50_s": round(pct(recover, 50), 3),
                "recover_max_s": round(max(recover), 3)})

    # Every job preempted at once; all of them wait for capacity.
    before = {j["job_id"]: j["instance_id"] for j in s.jobs()}
    s.sky("cloud", "capacity", "--all", "0", quiet=True)
    s.wait_for(lambda: all(j["status"] in ("RECOVERING", "PENDING") for j in s.jobs()),
               60, "every job waiting for capacity", interval=0.5)
    cpu0 = proc_sample(pid)[0]
    w0 = time.monotonic()
    time.sleep(args.window / 2)
    res["waiting_cpu_pct"] = round(100 * (proc_sample(pid)[0] - cpu0) / (time.monotonic() - w0), 1)
    t = time.monotonic()
    s.sky("cloud", "capacity", "--all", "unlimited", quiet=True)
    back = {}
    while len(back) < len(before) and time.monotonic() - t < 120:
        for j in s.jobs():
            if (j["job_id"] not in back and j["status"] == "RUNNING"
                    and j["instance_id"] not in ("", before[j["job_id"]])):
                back[j["job_id"]] = time.monotonic() - t
        time.sleep(0.1)
    if len(back) < len(before):
        s.fail("%d jobs not RUNNING again 120 s after the capacity came back"
               % (len(before) - len(back)))
    res.update({"mass_recover_p50_s": round(pct(list(back.values()), 50), 2),
                "mass_recover_max_s": round(max(back.values()), 2),
                "controller_pid": pid, "load": os.getloadavg()[0]})
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--window", type=float, default=60.0, help="sampling window, seconds")
    ap.add_argument("--preempt", type=int, default=10, help="jobs to preempt after sampling")
    ap.add_argument("--ticks", type=int, default=900, help="lines each job prints, one a second")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the SKY_HOME")
    args = ap.parse_args()
    if args.jobs < 1 or args.window <= 0 or args.preempt < 1:
        ap.error("--jobs, --window and --preempt must be positive")
    s = Stack()
    s.sky_timeout = 120
    res = None
    try:
        res = run(args, s)
    finally:
        s.sky("spot", "cancel", "-a", "-y", check=False, quiet=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if all(j["status"] in TERMINAL for j in s.jobs()):
                    break
            except (OSError, ValueError):
                break
            time.sleep(1)
        s.stop_pid(s.controller_pid())
        errors = []
        s.cloud_down(lambda *a, timeout: s.sky(*a, check=False, timeout=timeout),
                     s.localcloud_tag(), errors, timeout=180, leak_timeout=60)
        if args.keep or errors:
            print("kept %s" % s.home)
        else:
            shutil.rmtree(s.home, ignore_errors=True)
        if errors:
            print("\n".join(errors), file=sys.stderr)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print("%-16s %s" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
