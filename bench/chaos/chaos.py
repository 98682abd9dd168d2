#!/usr/bin/env python3
"""Chaos under load: the seed's service on the local cloud, a steady load of
GETs and a few streaming requests through its endpoint, while a seeded
schedule preempts spot replicas every few seconds and kill -9s the serve
controller, the service's sky-lb and the local cloud.

    bench/chaos/chaos.py [--duration S] [--seed N] [--rate R] [--json] ...

Who brings each daemon back: the controller restarts its sky-lb (it is the
LB's supervisor); the controller restarts the local cloud on its next
provider call; this script restarts the controller the way a user would
(`sky serve status`, which starts it when it is not running).

A failed request is counted apart when it was in flight or sent while the LB
was down (from the kill until the endpoint answered again): those cannot be
saved by anything behind the LB. It is also counted apart when no replica
could have served it: at some moment while it was in flight, every replica
the controller reported READY had been preempted, or had been READY for less
than LB_SYNC_S (so the LB could not know of it yet). The controller's READY
set is sampled every 0.2 s, which is the precision of that judgement. Streams
cut by a preemption of the replica that served them, or by an LB kill, are
counted apart the same way. The goal is 0 failed requests outside those two
groups.

With --notice S, each preemption is announced S seconds ahead (`sky cloud
preempt --notice S`): the controller replaces the replica at once and takes it
out of sky-lb before it goes, so no request may fail for want of a replica
either: the goal becomes 0 failed requests apart from those at an LB kill.
--together P makes a preemption take every running spot replica of the
service at once with probability P.

At the end: the service must be READY again with at least min_replicas READY
replicas; every live instance of the local cloud must belong to a live
replica (else it leaked); after `sky serve down` and `sky cloud down`, no
namespace, veth or process of this SKY_HOME may be left. Exit status 0 when
every goal is met, 1 when one is missed, 2 for bad arguments.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests"))
from skytest.home import HomeMixin  # noqa: E402  (the tests' view of a SKY_HOME)
YAML = "examples/serve/spot_policy/dynamic_on_demand_fallback.yaml"
SERVICE = "chaos"
# How long after the controller reports a replica READY the LB may still not
# route to it: one sync interval (SKY_SERVE_LB_SYNC_INTERVAL below) plus the
# sync round trip and the 0.2 s sampling of the READY set.
LB_SYNC_S = 1.5
TERMINAL = {"SHUTTING_DOWN", "PREEMPTED", "FAILED", "FAILED_CLEANUP", "FAILED_INITIAL_DELAY",
            "FAILED_PROBING", "FAILED_PROVISION", "UNKNOWN"}
# The controller's and local cloud's timings, shortened only through their
# documented settings (docs/serve-config.md, docs/localcloud.md).
FAST_ENV = {
    "SKY_LOCALCLOUD_PROVISION_DELAY": "1",
    "SKY_SERVE_PROBE_INTERVAL": "1",
    "SKY_SERVE_DECISION_INTERVAL": "1",
    "SKY_SERVE_NO_REPLICA_DECISION_INTERVAL": "1",
    # Longer than a 2 s stream, so a scale-down does not cut one (default 120).
    "SKY_SERVE_DRAIN_SECONDS": "3",
    "SKY_SERVE_LB_SYNC_INTERVAL": "1",
    "SKY_SERVE_PROVIDER_POLL_INTERVAL": "1",
    "SKY_SERVE_JOB_STATUS_INTERVAL": "2",
    "SKY_SERVE_LAUNCH_RETRY_INITIAL": "1",
    "SKY_SERVE_TERMINATE_RETRY_INITIAL": "1",
    "SKY_SERVE_QPS_WINDOW": "10",
    "SKY_SERVE_LB_PORT_START": "34001",
    # Endpoints on loopback: tests never send traffic to the machine's own address.
    "SKY_SERVE_ENDPOINT_HOST": "127.0.0.1",
}


def now():
    return time.monotonic()


def log(msg):
    print("[%7.2f] %s" % (now() - T0, msg), file=sys.stderr, flush=True)


T0 = now()


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


class Stack(HomeMixin):
    """One SKY_HOME: the `sky` CLI, the daemons' pids, leak checks."""

    def __init__(self, build, home=None):
        self.build = build
        self.sky_bin = os.path.join(build, "controller", "sky")
        for b in (self.sky_bin, os.path.join(build, "controller", "sky-controller"),
                  os.path.join(build, "lb", "sky-lb"),
                  os.path.join(build, "localcloud", "sky-localcloud")):
            if not os.access(b, os.X_OK):
                raise SystemExit("chaos: %s is missing: build the tree first" % b)
        self.home = home or tempfile.mkdtemp(prefix="sky-chaos-")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SKY_SERVE_") and k != "SKY_HOME"}
        self.env.update(FAST_ENV)
        self.env["SKY_HOME"] = self.home

    def sky(self, *args, timeout=120, check=True):
        p = subprocess.run([self.sky_bin] + list(args), cwd=SOURCE_DIR, env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("sky %s: rc %d\n%s%s" % (" ".join(args), p.returncode, p.stdout,
                                                         p.stderr))
        return p

    def controller_pid(self):
        return self.daemon_pid("serve/controller.port", "/health")

    def cloud_pid(self):
        """pid of a local cloud that answers its health check, else None."""
        return self.daemon_pid("localcloud/port", "/v1/health")

    def lb_pids(self):
        return [pid for pid, cmd in self.home_processes()
                if os.path.basename(cmd.split(" ")[0]) == "sky-lb" and SERVICE in cmd.split(" ")]

    def service(self):
        doc = json.loads(self.sky("serve", "status", SERVICE, "--json", timeout=60).stdout)
        for s in doc["services"]:
            if s["name"] == SERVICE:
                return s
        return None

    def teardown(self):
        """serve down, stop the controller, cloud down; returns what is left."""
        tag = self.localcloud_tag()
        sky = lambda *a, timeout: self.sky(*a, timeout=timeout, check=False)  # noqa: E731
        errors = self.serve_down_all(sky)
        self.stop_pid(self.controller_pid())
        leaks = self.cloud_down(sky, tag, errors)
        for e in errors:
            log("teardown: %s" % e)
        return leaks


class Client:
    """GETs at <rate> per second from <threads> threads, one connection per
    request, and streaming requests one after another on another thread.
    Bounded by the stop event, <max_requests> and every request's timeout."""

    def __init__(self, host, port, rate, threads, streams, max_requests, timeout=10):
        self.host, self.port, self.timeout = host, port, timeout
        self.period = threads / float(rate)
        self.max_requests = max_requests
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results = []  # (start, end, status or error text)
        self.streams = []  # (start, end, lines, complete, replica id or None, error)
        self.threads = [threading.Thread(target=self._get_loop, daemon=True)
                        for _ in range(threads)]
        if streams:
            self.threads.append(threading.Thread(target=self._stream_loop, daemon=True))

    def _conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _get(self):
        c = self._conn()
        try:
            c.request("GET", "/", headers={"Connection": "close"})
            r = c.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException) as e:
            return "%s: %s" % (type(e).__name__, e)
        finally:
            c.close()

    def _get_loop(self):
        nxt = now()
        while not self.stop.is_set():
            with self.lock:
                if len(self.results) >= self.max_requests:
                    return
            t = now()
            st = self._get()
            with self.lock:
                self.results.append((t, now(), st))
            # A steady rate: no burst to catch up after a slow or failed request.
            nxt = max(nxt + self.period, now())
            self.stop.wait(max(0.0, nxt - now()))

    def _stream_loop(self):
        while not self.stop.is_set():
            t, lines, rid, complete, err = now(), 0, None, False, ""
            c = self._conn()
            try:
                c.request("GET", "/stream?n=20&interval=0.1")
                r = c.getresponse()
                if r.status != 200:
                    err = "status %d" % r.status
                else:
                    for line in r:
                        m = re.search(rb"\(replica (\d+)\)", line)
                        if m and rid is None:
                            rid = int(m.group(1))
                        lines += 1
                    complete = lines == 20
                    err = "" if complete else "cut after %d lines" % lines
            except (OSError, http.client.HTTPException) as e:
                err = "%s: %s" % (type(e).__name__, e)
            finally:
                c.close()
            with self.lock:
                self.streams.append((t, now(), lines, complete, rid, err))
            self.stop.wait(0.5)

    def start(self):
        for th in self.threads:
            th.start()

    def join(self):
        self.stop.set()
        for th in self.threads:
            th.join(self.timeout + 5)


class Chaos:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.stack = Stack(args.build_dir, args.home)
        self.preemptions = []  # (time the preempt command started or the notice's deadline, id)
        self.n_events = 0  # preempt commands (one may take several replicas)
        self.preempt_done = {}  # replica id -> time the command returned
        self.kills = []  # (time, what, back_after_s or None)
        self.lb_down = []  # (kill time, back time)
        self.restarted_by_script = 0
        self.notes = []
        self.min_replicas = 2  # the seed YAML's
        self.ready_log = []  # (time, READY replica ids)
        self.host, self.port = None, None

    # -- bring-up

    def up(self):
        log("SKY_HOME=%s" % self.stack.home)
        self.stack.sky("serve", "up", YAML, "-n", SERVICE, "-y", timeout=180)
        t = now()
        while now() - t < 180:
            s = self.stack.service()
            if s and s["status"] == "READY" and s["endpoint"]:
                ep = s["endpoint"].replace("http://", "")
                host, _, port = ep.rpartition(":")
                self.host, self.port = host, int(port)
                # READY in the controller; the LB learns it at its next sync.
                while not self.endpoint_ok() and now() - t < 180:
                    time.sleep(0.1)
                log("service READY at %s after %.1f s" % (ep, now() - t))
                return
            time.sleep(0.5)
        raise RuntimeError("service not READY after 180 s")

    # -- the schedule

    def endpoint_ok(self):
        c = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            c.request("GET", "/health")
            return c.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            c.close()

    def sample_ready(self, stop):
        """Records (time, ids of READY replicas) from the controller's API
        every 0.2 s; nothing while the controller is down."""
        while not stop.is_set():
            try:
                doc = self.stack._api("serve/controller.port", "/api/services")
                svcs = doc.get("services", []) if isinstance(doc, dict) else doc
                for svc in svcs:
                    if svc["name"] == SERVICE:
                        self.ready_log.append((now(), {r["replica_id"] for r in svc["replicas"]
                                                      if r["status"] == "READY"}))
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                pass
            stop.wait(0.2)

    def no_replica(self, t0, t1):
        """True when, at some moment of [t0, t1], the LB could know of no live
        replica: each replica the controller last reported READY had been
        preempted, or had been READY for less than one LB sync."""
        first_ready = {}
        for ts, ids in self.ready_log:
            for i in ids:
                first_ready.setdefault(i, ts)
        moments = [t0, t1] + [ts for ts, _ in self.ready_log if t0 < ts < t1] + \
                  [ts for ts, _ in self.preemptions if t0 < ts < t1]
        for m in moments:
            last = [ids for ts, ids in self.ready_log if ts <= m][-1:]
            if not last:
                continue
            gone = {r for ts, r in self.preemptions if ts <= m}
            if not {i for i in last[0] - gone if first_ready[i] + LB_SYNC_S <= m}:
                return True
        return False

    def view_at(self, t):
        """For a failure report: the controller's last READY set before <t>
        and the replicas preempted by then."""
        ready = [sorted(ids) for ts, ids in self.ready_log if ts <= t][-1:]
        return {"ready": ready[0] if ready else None,
                "preempted": sorted(r for ts, r in self.preemptions if ts <= t)}

    def preempt_one(self):
        insts = [i for i in self.stack.cloud_instances()  # [] while the cloud is down
                 if i.get("spot") and i.get("state") == "RUNNING"
                 and str(i.get("owner", "")).startswith("serve:%s:" % SERVICE)]
        if not insts:
            return
        if self.a.notice:  # one already under notice goes at its deadline anyway
            insts = [i for i in insts if not i.get("preempt_at")]
            if not insts:
                return
        insts = sorted(insts, key=lambda i: i["id"])
        victims = insts if self.rng.random() < self.a.together else [self.rng.choice(insts)]
        ids = [v["id"] for v in victims]
        notice = ["--notice", "%g" % self.a.notice] if self.a.notice else []
        t = now()  # the instance may vanish any time before the command returns
        p = self.stack.sky("cloud", "preempt", *notice, *ids, timeout=30, check=False)
        if p.returncode == 0:
            for v in victims:
                rid = int(v["owner"].rsplit(":", 1)[1])
                # announced: the instance goes at the deadline
                self.preemptions.append((t + self.a.notice, rid))
                self.preempt_done[rid] = now() + self.a.notice
            self.n_events += 1
            log("%s %s (replica(s) %s)" % (
                "notice %g s for" % self.a.notice if self.a.notice else "preempted",
                " ".join(ids), " ".join(v["owner"].rsplit(":", 1)[1] for v in victims)))

    def kill(self, what):
        if what == "controller":
            pid = self.stack.controller_pid()
        elif what == "localcloud":
            pid = self.stack.cloud_pid()
        else:
            pids = self.stack.lb_pids()
            pid = pids[0] if pids else None
        if not pid:
            self.notes.append("no %s to kill at %.1f s" % (what, now() - T0))
            return
        t = now()
        os.kill(pid, signal.SIGKILL)
        log("kill -9 %s (pid %d)" % (what, pid))
        back = None
        if what == "lb":
            while now() - t < 30:
                if self.endpoint_ok():
                    back = now() - t
                    break
                time.sleep(0.01)
            self.lb_down.append((t, t + (back if back is not None else 30)))
        elif what == "controller":
            # A user (or systemd) brings the controller back; the LB keeps
            # serving its last replica set meanwhile.
            time.sleep(self.rng.uniform(0.5, 2.0))
            self.stack.sky("serve", "status", SERVICE, timeout=60, check=False)
            self.restarted_by_script += 1
            while now() - t < 30 and back is None:
                if self.stack.controller_pid():
                    back = now() - t
                time.sleep(0.05)
        else:
            while now() - t < 30 and back is None:
                if self.stack.cloud_pid():
                    back = now() - t
                time.sleep(0.05)
        self.kills.append((t, what, back))
        log("%s back after %s s" % (what, "%.2f" % back if back is not None else "never"))

    def run_schedule(self, until):
        targets = []
        next_preempt = now() + self.rng.uniform(*self.a.preempt_every)
        next_kill = now() + self.rng.uniform(*self.a.kill_every)
        while now() < until:
            if now() >= next_preempt:
                self.preempt_one()
                next_preempt = now() + self.rng.uniform(*self.a.preempt_every)
            if now() >= next_kill and not self.a.no_kills:
                if not targets:  # each daemon once per round, in a seeded order
                    targets = ["controller", "lb", "localcloud"]
                    self.rng.shuffle(targets)
                self.kill(targets.pop())
                next_kill = now() + self.rng.uniform(*self.a.kill_every)
            time.sleep(max(0.0, min(next_preempt, next_kill, until) - now()))

    # -- the end

    def recover(self):
        t, svc = now(), None
        while now() - t < self.a.recover_timeout:
            try:
                svc = self.stack.service()
            except (RuntimeError, subprocess.TimeoutExpired, ValueError):
                svc = None
            if svc and svc["status"] == "READY":
                ready = [r for r in svc["replicas"] if r["status"] == "READY"]
                if len(ready) >= self.min_replicas:
                    return now() - t, svc
            time.sleep(0.5)
        return None, svc

    def orphan_instances(self):
        """Live instances of this service that no live replica owns, after
        giving terminations in progress time to finish."""
        orphans = []
        t = now()
        while now() - t < 30:
            svc = self.stack.service()
            live = {r["replica_id"] for r in (svc or {}).get("replicas", [])
                    if r["status"] not in TERMINAL}
            insts = self.stack.cloud_instances()
            orphans = [i["id"] for i in insts if i.get("state") in ("PENDING", "RUNNING")
                       and str(i.get("owner", "")).startswith("serve:%s:" % SERVICE)
                       and int(i["owner"].rsplit(":", 1)[1]) not in live]
            if not orphans:
                return []
            time.sleep(1)
        return orphans

    def run(self):
        report = {"seed": self.a.seed, "duration_s": self.a.duration}
        try:
            self.up()
            client = Client(self.host, self.port, self.a.rate, self.a.threads, self.a.streams,
                            max_requests=int(self.a.rate * (self.a.duration + 60)))
            stop = threading.Event()
            sampler = threading.Thread(target=self.sample_ready, args=(stop,), daemon=True)
            sampler.start()
            client.start()
            self.run_schedule(now() + self.a.duration)
            client.join()
            stop.set()
            sampler.join(10)
            report.update(self.summarize(client))
            rec, svc = self.recover()
            report["recovered"] = rec is not None
            report["recover_s"] = round(rec, 2) if rec is not None else None
            if svc:
                report["final_status"] = svc["status"]
                report["final_replicas"] = sorted(
                    "%s%s" % (r["status"], "[spot]" if r["is_spot"] else "")
                    for r in svc["replicas"])
            report["leaked_instances"] = self.orphan_instances()
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            report["error"] = str(e)
            log("error: %s" % e)
            log("controller.log tail:\n" + "".join(self._tail("serve/controller.log")))
        finally:
            left = [] if self.a.keep else self.stack.teardown()
            report["leftovers"] = left
            if not self.a.keep and not left:
                shutil.rmtree(self.stack.home, ignore_errors=True)
        report["notes"] = self.notes
        report["goals_met"] = goals_met(report)
        return report

    def _tail(self, rel, n=40):
        try:
            with open(os.path.join(self.stack.home, rel), errors="replace") as f:
                return f.readlines()[-n:]
        except OSError:
            return []

    def summarize(self, client):
        def at_lb_kill(t0, t1):
            return any(t0 <= b and t1 >= k for k, b in self.lb_down)

        res, lat, failed, failed_lb, failed_none = client.results, [], [], [], []
        for t0, t1, st in res:
            if st == 200:
                lat.append((t1 - t0) * 1000)
            elif at_lb_kill(t0, t1):
                failed_lb.append(st)
            elif self.no_replica(t0, t1):
                failed_none.append(st)
            else:
                failed.append((round(t0 - T0, 2), st, self.view_at(t0)))
        cut, cut_explained = [], 0
        for t0, t1, lines, complete, rid, err in client.streams:
            if complete:
                continue
            preempted = any(r == rid and t <= t1 + 1 and self.preempt_done[r] >= t0
                            for t, r in self.preemptions)
            if preempted or at_lb_kill(t0, t1) or (rid is None and self.no_replica(t0, t1)):
                cut_explained += 1
            else:
                cut.append((round(t0 - T0, 2), rid, err))
        restarts = {}
        for _, what, _ in self.kills:
            restarts[what] = restarts.get(what, 0) + 1
        lb_back = [b for _, w, b in self.kills if w == "lb"]
        return {
            "sent": len(res),
            "ok": len(lat),
            "failed": len(failed),
            "failed_detail": failed[:20],
            "failed_at_lb_kill": len(failed_lb),
            "failed_no_replica": len(failed_none),
            "p50_ms": round(pct(lat, 50), 2),
            "p99_ms": round(pct(lat, 99), 2),
            "streams": len(client.streams),
            "streams_complete": sum(1 for s in client.streams if s[3]),
            "streams_cut_by_preemption_or_lb_kill": cut_explained,
            "streams_cut_otherwise": cut,
            "preemptions": len(self.preemptions),
            "preemption_events": self.n_events,
            "notice_s": self.a.notice,
            "kills": restarts,
            "restarted_by_script": self.restarted_by_script,
            "lb_back_s": [round(b, 3) if b is not None else None for b in lb_back],
            "daemons_back_s": {w: round(b, 2) if b is not None else None
                               for _, w, b in self.kills},
        }


def goals_met(r):
    lb_back = r.get("lb_back_s", [])
    # With notices a preemption never leaves the LB without a replica: no excuse.
    failed = r.get("failed", 0) + (r.get("failed_no_replica", 0) if r.get("notice_s") else 0)
    return ("error" not in r and failed == 0 and r.get("recovered") is True
            and not r.get("leaked_instances") and not r.get("leftovers")
            and all(b is not None and b <= 1.0 for b in lb_back)
            and all(v is not None for v in r.get("daemons_back_s", {}).values()))


def print_table(r):
    rows = [
        ("requests sent", r.get("sent")), ("failed", r.get("failed")),
        ("failed while the LB was down", r.get("failed_at_lb_kill")),
        ("failed with no live READY replica", r.get("failed_no_replica")),
        ("latency p50 / p99 ms", "%s / %s" % (r.get("p50_ms"), r.get("p99_ms"))),
        ("streams (complete)", "%s (%s)" % (r.get("streams"), r.get("streams_complete"))),
        ("streams cut by preemption / LB kill", r.get("streams_cut_by_preemption_or_lb_kill")),
        ("streams cut otherwise", len(r.get("streams_cut_otherwise", []))),
        ("preemptions (events, notice s)", "%s (%s, %s)" % (
            r.get("preemptions"), r.get("preemption_events"), r.get("notice_s"))),
        ("kill -9 (restarts)", r.get("kills")),
        ("LB back after (s)", r.get("lb_back_s")),
        ("recovered to READY (s)", r.get("recover_s")),
        ("leaked instances", len(r.get("leaked_instances", []))),
        ("left after teardown", len(r.get("leftovers", []))),
        ("goals met", r.get("goals_met")),
    ]
    for k, v in rows:
        print("%-38s %s" % (k, v))
    for k in ("failed_detail", "streams_cut_otherwise", "leaked_instances", "leftovers",
              "notes", "error"):
        if r.get(k):
            print("%s: %s" % (k, r[k]))


def span(s):
    try:
        a, _, b = s.partition(",")
        lo, hi = float(a), float(b or a)
    except ValueError:
        raise argparse.ArgumentTypeError("expected MIN,MAX seconds")
    if lo <= 0 or hi < lo:
        raise argparse.ArgumentTypeError("expected 0 < MIN <= MAX")
    return lo, hi


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=120, help="seconds of chaos (120)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=20, help="GETs per second (20)")
    ap.add_argument("--threads", type=int, default=4, help="GET threads (4)")
    ap.add_argument("--streams", type=int, choices=(0, 1), default=1,
                    help="1: one streaming request at a time (2 s each)")
    ap.add_argument("--preempt-every", type=span, default=(3.0, 6.0), metavar="MIN,MAX",
                    help="seconds between preemptions (3,6)")
    ap.add_argument("--kill-every", type=span, default=(8.0, 14.0), metavar="MIN,MAX",
                    help="seconds between kill -9s (8,14)")
    ap.add_argument("--no-kills", action="store_true", help="preemptions only")
    ap.add_argument("--notice", type=float, default=0,
                    help="announce each preemption this many seconds ahead (0: none)")
    ap.add_argument("--together", type=float, default=0,
                    help="probability that a preemption takes every spot replica at once")
    ap.add_argument("--recover-timeout", type=float, default=90)
    ap.add_argument("--build-dir", default=os.environ.get("SKY_BUILD_DIR",
                                                          os.path.join(SOURCE_DIR, "build")))
    ap.add_argument("--home", help="SKY_HOME to use (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="leave the service running")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args()
    if args.duration <= 0 or args.rate <= 0 or args.threads <= 0:
        ap.error("--duration, --rate and --threads must be positive")
    if args.notice < 0 or not 0 <= args.together <= 1:
        ap.error("--notice must be >= 0 and --together in [0, 1]")
    report = Chaos(args).run()
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    return 0 if report["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
