#!/usr/bin/env python3
"""SSH Node Pool figures (issue #12), on 3 real hosts: network namespaces
running Debian's sshd (tests/skytest/sshhosts.py), driven through the real `sky`
CLI and the SSH provider (tests/support/prog_sshprov.c).

  A. `sky ssh up` of 3 hosts: cold (nothing installed) and warm (idempotent
     re-run), next to the floor of any SSH set-up measured in the same run:
     one `ssh host true` to each of the 3 hosts in parallel.
  B. A replica on a pool host: launch (claim + the instance's agent started
     over SSH) and READY (the demo's server, examples/serve/http_server, copied
     as the task's workdir and started by the agent, answering GET /health).
  C. A dead host (link down, every process killed): until the provider says
     the replica's instance FAILED (polled every 0.1 s, as a controller asks on
     a failed probe), then until its replacement on another host answers.

    SKY_BUILD_DIR=$PWD/build python3 bench/ssh/ssh_pool_bench.py [--rounds 5]

Prints one table in the format of bench/RESULTS.md. Needs root (namespaces).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests"))
from skytest.sshhosts import SshHosts  # noqa: E402

BUILD = os.environ.get("SKY_BUILD_DIR", os.path.join(SRC, "build"))
SKY = os.path.join(BUILD, "controller", "sky")
SSHPROV = os.path.join(BUILD, "tests", "sshprov")
SERVER_DIR = os.path.join(SRC, "examples", "serve", "http_server")
PORT = 8081  # server.py's default


def now():
    return time.monotonic()


class Bench:
    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="sky-bench-ssh-")
        self.env = dict(os.environ, SKY_HOME=self.home)

    def sky(self, *args):
        p = subprocess.run([SKY] + list(args), env=self.env, capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise RuntimeError("sky %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p

    def prov(self, *args):
        p = subprocess.run([SSHPROV] + list(args), env=self.env, capture_output=True, text=True,
                           timeout=120)
        out = json.loads(p.stdout)
        if out["rc"] != 0:
            raise RuntimeError("sshprov %s: %s" % (" ".join(args), out))
        return out

    def timed(self, fn, *args):
        t = now()
        fn(*args)
        return now() - t

    def serve(self, inst):
        """Starts the demo's server as the instance's task; returns when it answers."""
        self.prov("run", inst["id"], "exec python3 server.py", "workdir=" + SERVER_DIR, "nowait")
        url = "http://%s:%d/health" % (inst["ip"], PORT)
        deadline = now() + 30
        while now() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("the server on %s did not answer" % inst["ip"])


def ssh_true_parallel(hosts):
    procs = [subprocess.Popen(["ssh", "-T", "-o", "BatchMode=yes", "-o",
                               "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                               "-o", "LogLevel=ERROR", "-i", hosts.key, h.ip, "true"])
             for h in hosts.hosts]
    for p in procs:
        p.wait()


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    load = open("/proc/loadavg").read().split()[:3]
    fig = {k: [] for k in ("ssh", "cold", "warm", "launch", "ready", "detect", "relaunch",
                           "replaced")}
    b = Bench()
    try:
        with SshHosts(3) as hosts:
            with open(os.path.join(b.home, "ssh_node_pools.yaml"), "w") as f:
                f.write(hosts.pool_yaml("bench"))
            for r in range(args.rounds):
                fig["ssh"].append(b.timed(ssh_true_parallel, hosts))
                fig["cold"].append(b.timed(b.sky, "ssh", "up"))
                fig["warm"].append(b.timed(b.sky, "ssh", "up"))
                # B: launch, then READY.
                t0 = now()
                a = b.prov("launch", "serve:bench:1", "bench")["instance"]
                fig["launch"].append(now() - t0)
                b.serve(a)
                fig["ready"].append(now() - t0)
                c = b.prov("launch", "serve:bench:2", "bench")["instance"]
                b.serve(c)
                # C: the host of replica 1 dies.
                dead = [h.ip for h in hosts.hosts].index(a["zone"]) + 1
                hosts.kill(dead)
                t0 = now()
                while b.prov("describe", a["id"])["instance"]["state"] != "FAILED":
                    time.sleep(0.1)
                fig["detect"].append(now() - t0)
                b.prov("terminate", a["id"])
                d = b.prov("launch", "serve:bench:3", "bench")["instance"]
                fig["relaunch"].append(now() - t0)
                b.serve(d)
                fig["replaced"].append(now() - t0)
                for i in (c, d):
                    b.prov("terminate", i["id"])
                # The dead host comes back for the next round.
                h = hosts.host(dead)
                subprocess.run(["ip", "link", "set", h.veth, "up"], check=True)
                hosts._start_sshd(h)
                hosts.wait_ssh(h)
                b.sky("ssh", "down")
                print("round %d: %s" % (r + 1, {k: round(v[-1], 3) for k, v in fig.items()}),
                      flush=True)
    finally:
        subprocess.run([SKY, "ssh", "down"], env=b.env, capture_output=True, timeout=120)
        shutil.rmtree(b.home, ignore_errors=True)
    m = {k: med(v) for k, v in fig.items()}
    print("\nload before: %s; rounds: %d; medians (min-max) in seconds\n" % (
        " ".join(load), args.rounds))
    print("| figure | median s | min-max s | goal |")
    print("|--------|---------:|----------:|------|")
    rows = [("3 × `ssh host true` in parallel (floor)", "ssh", ""),
            ("`sky ssh up`, 3 hosts, cold", "cold", "≤ 5 s"),
            ("`sky ssh up`, 3 hosts, warm (nothing to do)", "warm", ""),
            ("launch on a pool host (claim + agent over SSH)", "launch", ""),
            ("launch → demo server answers /health", "ready", "READY ≤ 3 s"),
            ("host dies → provider reports FAILED", "detect", ""),
            ("host dies → replacement launched", "relaunch", ""),
            ("host dies → replacement answers on another host", "replaced", "≤ 5 s")]
    for name, k, goal in rows:
        print("| %s | %.2f | %.2f-%.2f | %s |" % (name, m[k], min(fig[k]), max(fig[k]), goal))
    print("\nratios: cold up / ssh floor %.1f×, warm up / ssh floor %.1f×" % (
        m["cold"] / m["ssh"], m["warm"] / m["ssh"]))


if __name__ == "__main__":
    main()
