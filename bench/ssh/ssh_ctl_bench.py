#!/usr/bin/env python3
"""SSH Node Pool figures through the serve controller (issue #12), on 3 real
hosts: network namespaces running Debian's sshd (tests/skytest/sshhosts.py),
with the demo's timings (scripts/demo: probes and decisions every 2 s; the
defaults otherwise: sky-lb syncs and the provider poll every 1 s).

Each round: `sky serve up` of the seed's HTTP service (examples/serve/
http_server, readiness probe /health) with 2 replicas on `infra: ssh/lab`;
then the host of one replica dies (link down, every process of its namespace
killed) and the controller replaces the replica on the third host. Times come
from the controller's log (millisecond timestamps) and the kill's clock:

  A. a replica's launch (the autoscaler's decision) -> READY (a probe passed)
  B. host killed -> the controller sees the instance FAILED (provider poll)
  C. host killed -> the replacement is READY on another host

Then `sky serve down`, the dead host brought back (`sky ssh up`), next round.

    SKY_BUILD_DIR=$PWD/build python3 bench/ssh/ssh_ctl_bench.py [--rounds 5]

Prints one table in the format of bench/RESULTS.md. Needs root (namespaces).
"""
import argparse
import calendar
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests"))
from skytest.home import HomeMixin  # noqa: E402
from skytest.sshhosts import SshHosts  # noqa: E402

BUILD = os.environ.get("SKY_BUILD_DIR", os.path.join(SRC, "build"))
SKY = os.path.join(BUILD, "controller", "sky")
DEMO_ENV = {"SKY_SERVE_PROBE_INTERVAL": "2", "SKY_SERVE_DECISION_INTERVAL": "2",
            "SKY_SERVE_DRAIN_SECONDS": "2"}
SERVICE = os.path.join(SRC, "tests", "data", "serve_e2e", "ssh_pool.yaml")

LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z \w+ serve-controller "
                    r"web replica (\d+): (launching|STARTING|READY|instance \S+ is no longer running)")


class Bench(HomeMixin):
    def __init__(self):
        self._init_home("bench-sshctl", "SKY_SERVE_", DEMO_ENV, None)

    def run(self, *args, check=True):
        p = subprocess.run([SKY] + list(args), env=self.env, capture_output=True, text=True,
                           timeout=120, cwd=SRC, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError("sky %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p

    def replicas(self):
        doc = json.loads(self.run("serve", "status", "web", "--json").stdout)
        return doc["services"][0]["replicas"] if doc["services"] else []

    def wait(self, fn, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(0.1)
        raise RuntimeError("timed out waiting for " + what)

    def log_size(self):
        try:
            return os.path.getsize(os.path.join(self.home, "serve", "controller.log"))
        except OSError:
            return 0

    def events(self, since):
        """{(replica id, event): epoch seconds} from the controller's log after byte <since>."""
        out = {}
        with open(os.path.join(self.home, "serve", "controller.log"), errors="replace") as f:
            f.seek(since)
            for line in f:
                m = LOG_RE.match(line)
                if m:
                    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
                    ev = m.group(4).split(" ")[0]
                    out.setdefault((int(m.group(3)), ev), t + int(m.group(2)) / 1000.0)
        return out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    fig = {k: [] for k in ("started", "ready", "detect", "replaced")}
    b = Bench()
    yaml = SERVICE
    try:
        with SshHosts(3) as hosts:
            with open(os.path.join(b.home, "ssh_node_pools.yaml"), "w") as f:
                f.write(hosts.pool_yaml("lab"))
            ips = [h.ip for h in hosts.hosts]
            for r in range(args.rounds):
                b.run("ssh", "up")
                since = b.log_size()
                b.run("serve", "up", yaml, "-n", "web", "-y")
                reps = b.wait(lambda: [x for x in b.replicas() if x["status"] == "READY"]
                              if len([x for x in b.replicas() if x["status"] == "READY"]) == 2
                              else None, 60, "2 READY replicas")
                ev = b.events(since)
                for x in reps:
                    i = x["replica_id"]
                    fig["started"].append(ev[(i, "STARTING")] - ev[(i, "launching")])
                    fig["ready"].append(ev[(i, "READY")] - ev[(i, "launching")])
                victim = reps[0]
                dead = ips.index(victim["zone"]) + 1
                t_kill = time.time()
                hosts.kill(dead)

                def replaced():
                    new = [x for x in b.replicas() if x["status"] == "READY"
                           and x["replica_id"] > max(y["replica_id"] for y in reps)]
                    return new[0] if new else None
                new = b.wait(replaced, 60, "a replacement READY")
                ev = b.events(since)
                fig["detect"].append(ev[(victim["replica_id"], "instance")] - t_kill)
                fig["replaced"].append(ev[(new["replica_id"], "READY")] - t_kill)
                b.run("serve", "down", "web", "-y")
                b.wait(lambda: not json.loads(b.run("serve", "status", "--json").stdout)[
                    "services"], 60, "the service to go")
                h = hosts.host(dead)
                subprocess.run(["ip", "link", "set", h.veth, "up"], check=True)
                hosts._start_sshd(h)
                hosts.wait_ssh(h)
                print("round %d: %s" % (r + 1, {k: [round(x, 2) for x in v[-2:]]
                                               for k, v in fig.items()}), flush=True)
    finally:
        b.run("serve", "down", "-a", "-y", check=False)
        time.sleep(2)
        b.run("ssh", "down", check=False)
        b.run("cloud", "down", check=False)
        b.stop_pid(b.daemon_pid("serve/controller.port", "/health"))
        shutil.rmtree(b.home, ignore_errors=True)
    m = {k: med(v) for k, v in fig.items()}
    print("\nload before: %s; rounds: %d; medians (min-max) in seconds\n" % (
        " ".join(load), args.rounds))
    print("| figure | median s | min-max s | goal |")
    print("|--------|---------:|----------:|------|")
    rows = [("replica launched → STARTING (instance up, task submitted)", "started", ""),
            ("replica launched → READY (controller, pool host)", "ready", "≤ 3 s"),
            ("host dies → controller sees the instance FAILED", "detect", ""),
            ("host dies → replacement READY on another host", "replaced", "≤ 5 s")]
    for name, k, goal in rows:
        print("| %s | %.2f | %.2f-%.2f | %s |" % (name, m[k], min(fig[k]), max(fig[k]), goal))


if __name__ == "__main__":
    main()
