#!/usr/bin/env python3
"""live_replay: replays a window of a spot-availability trace through the real
local cloud against a running service, and checks that the live system and
the virtual replay (policy_replay) agree on the on-demand fallback decisions.

Python 3 standard library only. See bench/policy/README.md ("Live mode").

Steps:
 1. pick a window of the trace folder with several capacity changes (or take
    --start-tick/--ticks) and write the sliced files to a temporary folder;
 2. make a temporary SKY_HOME with fast controller timings (SKY_SERVE_*) and
    local-cloud provisioning delay; `sky cloud capacity --all 0` so that only
    the trace's zones ever have spot capacity;
 3. `sky cloud replay SLICE --speed gap/tick_seconds --zones <trace zones>`,
    then `sky serve up` a service with dynamic_ondemand_fallback, fixed size N,
    the trace's instance type, use_spot: true, running examples/serve/http_server;
 4. sample the controller's service JSON every --sample-interval seconds until
    the window is over (plus the lag tolerance);
 5. tear everything down (serve down -a, stop the controller, cloud down) and
    check that nothing of the SKY_HOME is left (process, netns, veth);
 6. run policy_replay on the same window in live seconds (--gap tick_seconds,
    the same decision interval, launch retry, drain, service start offset, and
    the provisioning/cold-start times measured on the live on-demand replicas)
    with --timeline, and compare the number of live on-demand replicas over
    time and the fallback episodes.

Exit status: 0 agreement within the tolerance, 1 disagreement, 2 bad usage,
3 the live run could not be set up or torn down cleanly.

Run it as root (network namespaces) and, on a shared machine, under
`flock /tmp/sky-localcloud-dev.lock`.
"""
import argparse
import glob
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SKY_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests"))
from skytest.home import HomeMixin  # noqa: E402  (the tests' view of a SKY_HOME)
DEFAULT_TRACE = os.path.join(SOURCE_DIR, "data", "traces", "spothedge", "AWS1")

# Replica statuses the controller (and ctl_scaler_decide) no longer counts.
TERMINAL = {"SHUTTING_DOWN", "PREEMPTED", "FAILED", "FAILED_CLEANUP", "FAILED_INITIAL_DELAY",
            "FAILED_PROBING", "FAILED_PROVISION", "UNKNOWN"}

# The trace tag -> instance type map of policy_replay (type_for_tag).
TYPE_FOR_TAG = {
    "v100_1": "p3.2xlarge", "v100_4": "p3.8xlarge", "v100_8": "p3.16xlarge",
    "k80_1": "p2.xlarge", "k80_8": "p2.8xlarge", "t4_1": "g4dn.xlarge",
    "a100_8": "a2-highgpu-8g", "a100_40gb_8": "a2-highgpu-8g", "a100_80gb_8": "a2-ultragpu-8g",
}

SERVICE = "live-replay"


class SetupError(Exception):
    """The live run could not be made (exit status 3)."""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the trace

def load_world(trace, gpu=None):
    """{"tag", "zones": [names, sorted], "data": [[...] per zone], "gap"} like policy_replay."""
    files = sorted(glob.glob(os.path.join(trace, "*.json")))
    tags = {}
    for f in files:
        base = os.path.basename(f)[:-5]
        zone, _, tag = base.partition("_")
        if tag:
            tags.setdefault(tag, []).append((zone, f))
    if not tags:
        raise SetupError("%s: no <zone>_<gpu>_<count>.json files" % trace)
    if gpu:
        if gpu not in tags:
            raise SetupError("%s: no file for --gpu %s" % (trace, gpu))
        tag = gpu
    elif "v100_1" in tags:
        tag = "v100_1"
    else:
        tag = sorted(tags, key=lambda t: (-len(tags[t]), t))[0]
    zones, data, gap = [], [], None
    for zone, f in sorted(tags[tag]):
        with open(f) as fh:
            doc = json.load(fh)
        g = doc["metadata"]["gap_seconds"]
        if gap is not None and g != gap:
            raise SetupError("%s: zones disagree on gap_seconds" % trace)
        gap = g
        zones.append(zone)
        data.append([int(v) for v in doc["data"]])
    return {"tag": tag, "zones": zones, "data": data, "gap": gap,
            "ticks": min(len(d) for d in data)}


def capacity_changes(world, start, ticks, replicas):
    """Ticks of the window where some zone's capacity, counted up to N, changes."""
    n, prev = 0, None
    for i in range(start, start + ticks):
        caps = tuple(min(replicas, d[i]) for d in world["data"])
        n += prev is not None and caps != prev
        prev = caps
    return n


def od_changes(series):
    """[(t, n)] where the number of on-demand replicas of a [(t, n)] series changes."""
    out, prev = [], 0
    for t, v in series:
        if v != prev:
            out.append((t, v))
            prev = v
    return out


def window_value(changes, horizon, late, min_sep=3.0):
    """How well a window tests the fallback: the on-demand count changes after
    the start-up episode (the first period with on-demand replicas while the
    first spot ones provision), counting only changes at least <min_sep> s
    after the previous one and <late> s before the end (the live system must
    be able to follow)."""
    k = 0
    while k < len(changes) and changes[k][1] != 0:
        k += 1
    value, prev = 0, None
    for t, _ in changes[k + 1:]:
        if t <= horizon - late and (prev is None or t - prev >= min_sep):
            value += 1
        prev = t
    return value


def pick_window(args, world, timings, candidates=60):
    """Ranks the windows by capacity changes, replays the best <candidates> of
    them virtually (nominal live timings) and takes the one whose on-demand
    count changes most often after start-up (earliest on ties)."""
    starts = sorted(range(0, world["ticks"] - args.ticks + 1),
                    key=lambda s: (-capacity_changes(world, s, args.ticks, args.replicas), s))
    best, best_value = None, -1
    horizon = args.ticks * args.tick_seconds
    work = tempfile.mkdtemp(prefix="sky-live-pick-")
    try:
        for s in starts[:candidates]:
            v = run_virtual(args, world, args.trace, timings, 1.0, args.provision_delay + 0.5,
                            1.0, work, window=(s, args.ticks))
            value = window_value(od_changes([(r[0], r[1]) for r in v["series"]]), horizon,
                                 args.lag_tolerance)
            if value > best_value or (value == best_value and s < best):
                best, best_value = s, value
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if best_value < 2:
        raise SetupError("no window of %d ticks with a fallback episode after start-up "
                         "(pass --start-tick)" % args.ticks)
    return best, best_value


def write_slice(world, start, ticks, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for zone, data in zip(world["zones"], world["data"]):
        with open(os.path.join(out_dir, "%s_%s.json" % (zone, world["tag"])), "w") as f:
            json.dump({"metadata": {"gap_seconds": world["gap"]},
                       "data": data[start:start + ticks]}, f)


# ----------------------------------------------------------------- processes

class Live(HomeMixin):
    """One temporary SKY_HOME with its local cloud, controller and service."""

    def __init__(self, build, env_extra, verbose=False):
        self.build = build
        self.sky_bin = os.path.join(build, "controller", "sky")
        for b in (self.sky_bin, os.path.join(build, "controller", "sky-controller"),
                  os.path.join(build, "localcloud", "sky-localcloud"),
                  os.path.join(build, "lb", "sky-lb"),
                  os.path.join(build, "replica_agent", "sky-agent")):
            if not os.path.exists(b):
                raise SetupError("missing %s (build the tree first)" % b)
        self.home = tempfile.mkdtemp(prefix="sky-live-replay-")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("SKY_SERVE_") and not k.startswith("SKY_LOCALCLOUD_")
                    and k != "SKY_HOME"}
        self.env.update(env_extra)
        self.env["SKY_HOME"] = self.home
        self.verbose = verbose
        self.history = []
        self.closed = False

    def sky(self, *args, timeout=90, check=True):
        t = time.monotonic()
        try:
            p = subprocess.run([self.sky_bin] + list(args), cwd=SOURCE_DIR, env=self.env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SetupError("sky %s timed out after %ss" % (" ".join(args), timeout))
        entry = "$ sky %s  (rc %d, %.1fs)\n%s%s" % (" ".join(args), p.returncode,
                                                    time.monotonic() - t, p.stdout, p.stderr)
        self.history.append(entry)
        if self.verbose:
            log(entry.rstrip())
        if check and p.returncode != 0:
            raise SetupError(entry)
        return p

    def api(self, port_file, path, timeout=5):
        return self._api(port_file, path, timeout=timeout)

    def service(self, name):
        """The service's JSON from the controller (None when not listed)."""
        doc = self.api("serve/controller.port", "/api/services?names=" + name)
        for s in doc.get("services", []):
            if s["name"] == name:
                return s
        return None

    def replay_status(self):
        return self.api("localcloud/port", "/v1/replay")

    def controller_pid(self):
        return self.daemon_pid("serve/controller.port", "/health")

    def teardown(self):
        """As the e2e tests tear down (tests/skytest/home.py): serve down -a -y, wait for
        the services to go, stop the controller, cloud down, then check that
        nothing of this SKY_HOME is left (killing what is). Returns the errors."""
        if self.closed:
            return []
        self.closed = True
        tag = self.localcloud_tag()
        errors = []
        try:
            self.sky("cloud", "replay", "--stop", check=False, timeout=30)
        except SetupError as e:
            errors.append(str(e))
        sky = lambda *a, timeout: self.sky(*a, check=False, timeout=timeout)  # noqa: E731
        errors += self.serve_down_all(sky)
        self.stop_pid(self.controller_pid())
        self.cloud_down(sky, tag, errors)
        return errors

    def remove_home(self):
        shutil.rmtree(self.home, ignore_errors=True)


def service_yaml(replicas, instance_type, zones):
    """Fixed size, dynamic on-demand fallback, the trace's instance type as spot,
    limited to the trace's zones: the controller's spot placer (which it adds to
    any spot service with fallback) then knows the same locations as the
    virtual one, and the cheapest on-demand zone is the same too."""
    return """service:
  readiness_probe: /health
  replica_policy:
    min_replicas: {n}
    max_replicas: {n}
    dynamic_ondemand_fallback: true

resources:
  instance_type: {itype}
  ports: 8081
  use_spot: true
  any_of:
{zones}

workdir: {workdir}

run: python3 server.py
""".format(n=replicas, itype=instance_type,
           zones="\n".join("    - zone: %s" % z for z in zones),
           workdir=os.path.join(SOURCE_DIR, "examples", "serve", "http_server"))


def counts(svc):
    """(od_live, spot_live, spot_ready, od_ready) of a service JSON (None: 0s)."""
    od_live = spot_live = spot_ready = od_ready = 0
    for r in (svc or {}).get("replicas", []):
        live = r["status"] not in TERMINAL
        ready = r["status"] == "READY"
        if r["is_spot"]:
            spot_live += live
            spot_ready += ready
        else:
            od_live += live
            od_ready += ready
    return od_live, spot_live, spot_ready, od_ready


def run_live(args, world, slice_dir, timings):
    """The live run. Returns a dict with the replay start (epoch), the service
    start offset, the samples and the per-replica observations."""
    env = {
        "SKY_LOCALCLOUD_PROVISION_DELAY": str(args.provision_delay),
        "SKY_SERVE_PROBE_INTERVAL": str(timings["probe"]),
        "SKY_SERVE_DECISION_INTERVAL": str(timings["decision"]),
        "SKY_SERVE_NO_REPLICA_DECISION_INTERVAL": str(timings["decision"]),
        "SKY_SERVE_DRAIN_SECONDS": str(timings["drain"]),
        "SKY_SERVE_LAUNCH_RETRY_INITIAL": str(timings["retry"]),
        "SKY_SERVE_PROVIDER_POLL_INTERVAL": str(timings["probe"]),
        "SKY_SERVE_LB_SYNC_INTERVAL": "1",
        "SKY_SERVE_JOB_STATUS_INTERVAL": "2",
        "SKY_SERVE_TERMINATE_RETRY_INITIAL": "1",
        "SKY_SERVE_LB_RESTART_INITIAL": "1",
        "SKY_SERVE_LB_PORT_START": str(args.lb_port_start),
        "SKY_SERVE_ENDPOINT_HOST": "127.0.0.1",
    }
    live = Live(args.build, env, verbose=args.verbose)
    out = {"home": live.home, "samples": [], "replicas": {}, "errors": []}
    log("live: SKY_HOME %s" % live.home)
    try:
        yaml_path = os.path.join(live.home, "live-replay.yaml")
        with open(yaml_path, "w") as f:
            f.write(service_yaml(args.replicas, world["itype"], world["zones"]))
        live.sky("cloud", "capacity", "--all", "0", timeout=60)
        speed = world["gap"] / args.tick_seconds
        live.sky("cloud", "replay", slice_dir, "--speed", "%.10g" % speed,
                 "--zones", ",".join(world["zones"]), timeout=30)
        st = live.replay_status()
        if not st.get("active"):
            raise SetupError("the replay is not active: %s" % st)
        start = float(st["start"])
        horizon = args.ticks * args.tick_seconds
        out["replay_start"] = start
        live.sky("serve", "up", yaml_path, "-n", SERVICE, "-y", timeout=60)
        stop_at = start + horizon + args.lag_tolerance + 1.0
        hard_stop = time.monotonic() + (stop_at - time.time()) + 5
        first_launch = None
        while time.time() < stop_at and time.monotonic() < hard_stop:
            t0 = time.time()
            try:
                svc = live.service(SERVICE)
            except (OSError, ValueError, http.client.HTTPException) as e:
                out["errors"].append("sample at %.1f: %s" % (t0 - start, e))
                svc = None
            t1 = time.time()
            ts = (t0 + t1) / 2 - start
            if svc is not None:
                out["samples"].append([round(ts, 3)] + list(counts(svc)))
                for r in svc["replicas"]:
                    rec = out["replicas"].setdefault(str(r["replica_id"]), {
                        "is_spot": r["is_spot"], "launched_at": r["launched_at"] - start,
                        "zone": r.get("zone"), "seen": {}})
                    rec["seen"].setdefault(r["status"], round(ts, 3))
                    if r.get("zone"):
                        rec["zone"] = r["zone"]
                    if first_launch is None or r["launched_at"] - start < first_launch:
                        first_launch = r["launched_at"] - start
            time.sleep(max(0.0, args.sample_interval - (time.time() - t0)))
        if first_launch is None:
            raise SetupError("the service never launched a replica")
        out["service_start"] = first_launch
    except SetupError as e:
        out["errors"].append(str(e))
        out["failed"] = True
    finally:
        errs = live.teardown()
        if errs:
            out["teardown_errors"] = errs
            for e in errs:
                log("teardown: " + e)
        if args.keep_home or out.get("failed") or errs:
            log("live: kept %s (logs)" % live.home)
        else:
            live.remove_home()
    return out


def calibrate(live, step, provision_default, cold_default):
    """Provisioning and cold-start times of the live on-demand replicas (their
    first launch attempt always succeeds): launch decision -> first sample out
    of PENDING/PROVISIONING, and -> first READY sample; medians, rounded to the
    step. Falls back to the defaults without such a replica."""
    prov, ready = [], []
    for rec in live["replicas"].values():
        seen = rec["seen"]
        if rec["is_spot"] or "READY" not in seen:
            continue  # (one scaled down while provisioning tells nothing)
        ready.append(seen["READY"] - rec["launched_at"])
        prov.append(min(t for s, t in seen.items() if s in ("STARTING", "NOT_READY", "READY"))
                    - rec["launched_at"])
    if not ready or not prov:
        return provision_default, cold_default, False

    def rnd(x):
        return max(step, round(x / step) * step)
    p = rnd(statistics.median(prov))
    total = rnd(statistics.median(ready))
    return p, max(0.0, total - p), True


# ------------------------------------------------------------------ virtual

def run_virtual(args, world, trace_dir, timings, service_start, provision, cold, workdir,
                window=None):
    """policy_replay on <trace_dir> (or a <window> (start, ticks) of it) in live
    seconds; returns its --json summary and the timeline as
    [t, od_live, spot_live, spot_ready, od_ready, od_target] rows."""
    tl = os.path.join(workdir, "timeline.jsonl")
    binary = os.path.join(args.build, "bench", "policy", "policy_replay")
    if not os.path.exists(binary):
        raise SetupError("missing %s (build the tree first)" % binary)
    cmd = [binary, "--trace", trace_dir, "--policy", "dynamic_fallback",
           "--gpu", world["tag"], "--target-replicas", str(args.replicas),
           "--gap", "%.10g" % args.tick_seconds, "--step", "%.10g" % timings["step"],
           "--decision-interval", "%.10g" % timings["decision"],
           "--launch-retry-initial", "%.10g" % timings["retry"],
           "--drain", "%.10g" % timings["drain"],
           "--provision-delay", "%.10g" % provision, "--cold-start", "%.10g" % cold,
           "--service-start", "%.10g" % service_start, "--seed", str(args.seed),
           # a live failed launch answers in milliseconds
           "--launch-api-latency", "0",
           "--timeline", tl, "--json"]
    if window:
        cmd += ["--start-tick", str(window[0]), "--ticks", str(window[1])]
    if args.catalog:
        cmd += ["--catalog", args.catalog]
    env = {k: v for k, v in os.environ.items() if k != "SKY_HOME"}
    env["SKY_HOME"] = workdir  # no catalog.yaml there: the shipped one, as the controller
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise SetupError("policy_replay failed (rc %d): %s\n%s" % (p.returncode, " ".join(cmd),
                                                                 p.stderr))
    summary = json.loads(p.stdout.splitlines()[0])
    series = []
    with open(tl) as f:
        for line in f:
            d = json.loads(line)
            series.append([d["t"], d["od_live"], d["spot_live"], d["spot_ready"], d["od_ready"],
                           d["od_target"]])
    return {"cmd": cmd, "summary": summary, "series": series}


# ---------------------------------------------------------------- comparing

def value_at(series, t):
    """The value of a step series [(t, v), ...] (sorted) at time t (0 before it starts)."""
    v = 0
    for ts, val in series:
        if ts > t + 1e-9:
            break
        v = val
    return v


def episodes(series, until):
    """Maximal periods with at least one on-demand replica: [(start, end|None)]."""
    eps, cur = [], None
    for ts, v in series:
        if ts > until + 1e-9:
            break
        if v >= 1 and cur is None:
            cur = ts
        elif v == 0 and cur is not None:
            eps.append((cur, ts))
            cur = None
    if cur is not None:
        eps.append((cur, None))
    return eps


def compare(virtual, live, start, horizon, late, early, min_agreement):
    """Compares the number of live on-demand replicas over time.

    virtual: [(t, n)] step series from policy_replay's timeline (live seconds);
    live: [(t, n)] samples of the controller. Only [start, horizon] counts
    (start: the service's first decision; horizon: the end of the window).

    A live sample agrees when its value is one the virtual series takes within
    [t - late, t + early]: the live system may lag by up to <late> seconds
    (provisioning, probes, decision interval, preemption polling) and run ahead
    by up to <early>. A virtual fallback episode (a period with >= 1 on-demand
    replica) matches a live one when both its start and its end are within the
    same window. Agreement: every episode matched both ways and a share of
    agreeing samples >= min_agreement."""
    samples = [(t, v) for t, v in live if start <= t <= horizon]
    agree = exact = 0
    mismatches = []
    for t, v in samples:
        vals = {value_at(virtual, t - late)}
        vals.update(val for ts, val in virtual if t - late <= ts <= t + early)
        if v in vals:
            agree += 1
        else:
            mismatches.append((t, v, sorted(vals)))
        exact += v == value_at(virtual, t)
    share = agree / len(samples) if samples else 0.0
    last_sample = live[-1][0] if live else start
    v_eps = [e for e in episodes(virtual, horizon) if e[0] >= start - 1e-9]
    l_eps = [e for e in episodes(live, last_sample) if e[0] <= horizon + late]
    matched, lags, used = [], [], set()
    unmatched_v = []
    for vs, ve in v_eps:
        hit = None
        for k, (ls, le) in enumerate(l_eps):
            if k in used or not (vs - early <= ls <= vs + late):
                continue
            if ve is None:
                end_ok = le is None or le >= horizon - early
            elif le is None:
                end_ok = ve + late > last_sample  # sampling stopped before it could end
            else:
                end_ok = ve - early <= le <= ve + late
            if end_ok:
                hit = k
                break
        if hit is None:
            unmatched_v.append((vs, ve))
            continue
        used.add(hit)
        ls, le = l_eps[hit]
        matched.append({"virtual": [vs, ve], "live": [ls, le]})
        lags.append(ls - vs)
        if ve is not None and le is not None:
            lags.append(le - ve)
    unmatched_l = [e for k, e in enumerate(l_eps) if k not in used]
    max_lag = max((abs(x) for x in lags), default=0.0)
    reasons = []
    if not samples:
        reasons.append("no live samples in the window")
    if share < min_agreement:
        reasons.append("agreement %.3f < %.3f" % (share, min_agreement))
    if unmatched_v:
        reasons.append("virtual episode(s) without a live match: %s" % fmt_eps(unmatched_v))
    if unmatched_l:
        reasons.append("live episode(s) without a virtual match: %s" % fmt_eps(unmatched_l))
    return {
        "samples": len(samples), "agreeing": agree, "agreement": share,
        "exact_agreement": exact / len(samples) if samples else 0.0,
        "episodes_virtual": len(v_eps), "episodes_live": len(l_eps),
        "episodes_matched": len(matched), "matched": matched,
        "unmatched_virtual": unmatched_v, "unmatched_live": unmatched_l,
        "lags": lags, "max_lag": max_lag,
        "mean_lag": sum(lags) / len(lags) if lags else 0.0,
        "mismatched_samples": mismatches[:20],
        "tolerance": {"late": late, "early": early, "min_agreement": min_agreement},
        "ok": not reasons, "reasons": reasons,
    }


def fmt_eps(eps):
    return ", ".join("[%.1f, %s)" % (s, "open" if e is None else "%.1f" % e) for s, e in eps)


# ------------------------------------------------------------------- output

def print_report(res):
    w, c = res["window"], res["comparison"]
    print("trace %s (%s -> %s), zones %s" % (res["trace"], w["tag"], w["instance_type"],
                                              ",".join(w["zones"])))
    print("window: ticks %d..%d of gap %gs, replayed at %gs/tick (speed %g); capacity per tick:"
          % (w["start_tick"], w["start_tick"] + w["ticks"] - 1, w["gap"], w["tick_seconds"],
             w["speed"]))
    for i, caps in enumerate(w["capacity"]):
        print("  tick %2d  t=%5.1fs  %s" % (i, i * w["tick_seconds"],
                                            " ".join("%d" % x for x in caps)))
    m = res["model"]
    print("model: service start %.2fs, provision %gs, cold start %gs (%s), decisions %gs, "
          "probes %gs, launch retry %gs, drain %gs"
          % (m["service_start"], m["provision"], m["cold_start"],
             "measured on live on-demand replicas" if m["calibrated"] else "defaults",
             m["decision_interval"], m["probe_interval"], m["launch_retry_initial"], m["drain"]))
    print()
    print("episodes (on-demand fallback: >= 1 on-demand replica), seconds after the replay start:")
    print("  %-22s %-22s %s" % ("virtual", "live", "lag start/end"))
    for mt in c["matched"]:
        (vs, ve), (ls, le) = mt["virtual"], mt["live"]
        print("  %-22s %-22s %+.1f / %s" % (
            "[%.1f, %s)" % (vs, "open" if ve is None else "%.1f" % ve),
            "[%.1f, %s)" % (ls, "open" if le is None else "%.1f" % le), ls - vs,
            "-" if ve is None or le is None else "%+.1f" % (le - ve)))
    for vs, ve in c["unmatched_virtual"]:
        print("  %-22s %-22s" % ("[%.1f, %s)" % (vs, "open" if ve is None else "%.1f" % ve),
                                 "(none)"))
    for ls, le in c["unmatched_live"]:
        print("  %-22s %-22s" % ("(none)",
                                 "[%.1f, %s)" % (ls, "open" if le is None else "%.1f" % le)))
    print()
    rows = [
        ("samples", "%d" % c["samples"]),
        ("agreement (within lag)", "%.3f" % c["agreement"]),
        ("exact agreement", "%.3f" % c["exact_agreement"]),
        ("episodes virtual", "%d" % c["episodes_virtual"]),
        ("episodes live", "%d" % c["episodes_live"]),
        ("episodes matched", "%d" % c["episodes_matched"]),
        ("max lag (s)", "%.2f" % c["max_lag"]),
        ("mean lag (s)", "%+.2f" % c["mean_lag"]),
        ("tolerance", "late %gs, early %gs, agreement >= %g" % (
            c["tolerance"]["late"], c["tolerance"]["early"], c["tolerance"]["min_agreement"])),
        ("wall (s)", "%.0f" % res["wall_seconds"]),
        ("result", "AGREE" if c["ok"] else "DISAGREE: " + "; ".join(c["reasons"])),
    ]
    for k, v in rows:
        print("%-24s %s" % (k, v))


# --------------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Replay a trace window through the real local cloud against a running "
                    "service and compare its on-demand fallback decisions with policy_replay's "
                    "virtual replay of the same window. Needs root (network namespaces); run "
                    "under `flock /tmp/sky-localcloud-dev.lock` on a shared machine.",
        epilog="Exit status: 0 agree, 1 disagree beyond the tolerance, 2 usage, "
               "3 the live run failed or left something behind.")
    ap.add_argument("--trace", default=DEFAULT_TRACE,
                    help="trace folder (default data/traces/spothedge/AWS1)")
    ap.add_argument("--gpu", help="trace tag <gpu>_<count> (default as policy_replay)")
    ap.add_argument("--instance-type", help="default: from the tag, as policy_replay")
    ap.add_argument("--start-tick", type=int, help="first trace tick (default: picked)")
    ap.add_argument("--ticks", type=int, default=8, help="window length in ticks (8)")
    ap.add_argument("--tick-seconds", type=float, default=12.0,
                    help="live seconds per trace tick (12); speed = gap_seconds / this")
    ap.add_argument("--replicas", type=int, default=2, help="min = max replicas (2)")
    ap.add_argument("--build", default=os.environ.get("SKY_BUILD_DIR",
                                                      os.path.join(SOURCE_DIR, "build")),
                    help="build dir (default $SKY_BUILD_DIR or <source>/build)")
    ap.add_argument("--catalog", help="catalog for policy_replay (default: the shipped one, "
                                      "as the controller of the temporary SKY_HOME)")
    ap.add_argument("--provision-delay", type=float, default=2.0,
                    help="SKY_LOCALCLOUD_PROVISION_DELAY (2)")
    ap.add_argument("--probe-interval", type=float, default=0.5,
                    help="SKY_SERVE_PROBE_INTERVAL and PROVIDER_POLL_INTERVAL; the virtual "
                         "step (0.5)")
    ap.add_argument("--decision-interval", type=float, default=1.0,
                    help="SKY_SERVE_DECISION_INTERVAL (1)")
    ap.add_argument("--launch-retry-initial", type=float, default=0.5,
                    help="SKY_SERVE_LAUNCH_RETRY_INITIAL (0.5)")
    ap.add_argument("--drain", type=float, default=1.0, help="SKY_SERVE_DRAIN_SECONDS (1)")
    ap.add_argument("--provision", type=float,
                    help="virtual provisioning time (default: measured on the live run)")
    ap.add_argument("--cold-start", type=float,
                    help="virtual cold start (default: measured on the live run)")
    ap.add_argument("--sample-interval", type=float, default=0.5, help="(0.5 s)")
    ap.add_argument("--lag-tolerance", type=float, default=6.0,
                    help="how late the live system may be, seconds (6)")
    ap.add_argument("--early-tolerance", type=float, default=2.0,
                    help="how early the live system may be, seconds (2)")
    ap.add_argument("--min-agreement", type=float, default=0.9,
                    help="share of samples that must agree within the lag window (0.9)")
    ap.add_argument("--seed", type=int, default=0, help="policy_replay --seed (0)")
    ap.add_argument("--lb-port-start", type=int, default=35001,
                    help="SKY_SERVE_LB_PORT_START (35001)")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON document (with both series) instead of the table")
    ap.add_argument("--keep-home", action="store_true", help="keep the temporary SKY_HOME")
    ap.add_argument("--verbose", action="store_true", help="echo every sky command")
    a = ap.parse_args(argv)
    if a.ticks < 2 or a.ticks > 100:
        ap.error("--ticks must be in 2..100")
    if not 1 <= a.replicas <= 8:
        ap.error("--replicas must be in 1..8")
    if not 2 <= a.tick_seconds <= 600:
        ap.error("--tick-seconds must be in 2..600")
    if a.ticks * a.tick_seconds > 900:
        ap.error("the window lasts at most 900 live seconds")
    for name in ("probe_interval", "decision_interval", "sample_interval"):
        if not 0.05 <= getattr(a, name) <= 60:
            ap.error("--%s must be in 0.05..60" % name.replace("_", "-"))
    step = a.probe_interval
    if abs(a.tick_seconds / step - round(a.tick_seconds / step)) > 1e-9:
        ap.error("--probe-interval (the virtual step) must divide --tick-seconds")
    if a.launch_retry_initial < 0 or a.drain < 0 or a.provision_delay < 0:
        ap.error("times must be >= 0")
    return a


def _on_sigterm(signum, frame):
    # Unwind through the finally blocks: the live run is torn down.
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse_args(argv)
    wall0 = time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        world = load_world(args.trace, args.gpu)
    except (SetupError, OSError, ValueError, KeyError) as e:
        log("live_replay: %s" % e)
        return 2
    world["itype"] = args.instance_type or TYPE_FOR_TAG.get(world["tag"])
    if not world["itype"]:
        log("live_replay: no instance type known for tag %s: pass --instance-type" % world["tag"])
        return 2
    timings = {"probe": args.probe_interval, "step": args.probe_interval,
               "decision": args.decision_interval, "retry": args.launch_retry_initial,
               "drain": args.drain}
    if args.start_tick is None:
        try:
            start_tick, score = pick_window(args, world, timings)
        except SetupError as e:
            log("live_replay: %s" % e)
            return 2
    else:
        start_tick, score = args.start_tick, None
        if start_tick < 0 or start_tick + args.ticks > world["ticks"]:
            log("live_replay: window %d+%d is outside the trace (%d ticks)" % (
                start_tick, args.ticks, world["ticks"]))
            return 2
    work = tempfile.mkdtemp(prefix="sky-live-slice-")
    try:
        slice_dir = os.path.join(work, "trace")
        write_slice(world, start_tick, args.ticks, slice_dir)
        log("live_replay: %s ticks %d..%d (%s), %gs per tick, %d replica(s)" % (
            args.trace, start_tick, start_tick + args.ticks - 1,
            "given" if score is None else "picked, %d on-demand changes after start-up" % score,
            args.tick_seconds, args.replicas))
        live = run_live(args, world, slice_dir, timings)
        if live.get("failed") or live.get("teardown_errors"):
            for e in live["errors"] + live.get("teardown_errors", []):
                log("live_replay: " + e)
            return 3
        prov_default = args.provision_delay + 0.5
        provision, cold, calibrated = calibrate(live, timings["step"], prov_default, 1.0)
        if args.provision is not None:
            provision, calibrated = args.provision, False
        if args.cold_start is not None:
            cold, calibrated = args.cold_start, False
        virtual = run_virtual(args, world, slice_dir, timings, live["service_start"],
                              provision, cold, work)
        horizon = args.ticks * args.tick_seconds
        comp = compare([(r[0], r[1]) for r in virtual["series"]],
                       [(s[0], s[1]) for s in live["samples"]],
                       live["service_start"], horizon, args.lag_tolerance,
                       args.early_tolerance, args.min_agreement)
        res = {
            "trace": args.trace,
            "window": {"tag": world["tag"], "instance_type": world["itype"],
                       "zones": world["zones"], "start_tick": start_tick, "ticks": args.ticks,
                       "gap": world["gap"], "tick_seconds": args.tick_seconds,
                       "speed": world["gap"] / args.tick_seconds, "score": score,
                       "capacity": [[d[i] for d in world["data"]]
                                    for i in range(start_tick, start_tick + args.ticks)]},
            "model": {"service_start": live["service_start"], "provision": provision,
                      "cold_start": cold, "calibrated": calibrated,
                      "decision_interval": args.decision_interval,
                      "probe_interval": args.probe_interval,
                      "launch_retry_initial": args.launch_retry_initial, "drain": args.drain,
                      "provision_delay": args.provision_delay},
            "replicas": args.replicas,
            "comparison": comp,
            "virtual_summary": virtual["summary"],
            "policy_replay": " ".join(virtual["cmd"]),
            # [t, od_live, spot_live, spot_ready, od_ready(, od_target)]
            "live_series": live["samples"],
            "virtual_series": virtual["series"],
            "live_replicas": live["replicas"],
            "sample_errors": live["errors"],
            "wall_seconds": round(time.monotonic() - wall0, 1),
        }
        if args.json:
            print(json.dumps(res))
        else:
            print_report(res)
        return 0 if comp["ok"] else 1
    except SetupError as e:
        log("live_replay: %s" % e)
        return 3
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
