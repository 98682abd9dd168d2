#!/usr/bin/env python3
"""The policy tables of bench/RESULTS.md (issue #13): policy_replay on every
shipped trace, with and without preemption notices, with either placer, with
the hedge both ways, and with the fallback policies with and without a placer.
Prints Markdown tables and, per policy configuration, the issue's goals.

    bench/policy/tables.py [--build build] [--json]

Every run is policy_replay's defaults (target 2, provision 120 s + cold start
60 s, launch API latency 20 s) plus the options named in the tables.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
TRACES = [
    ("AWS1", "data/traces/spothedge/AWS1"),
    ("AWS2", "data/traces/spothedge/AWS2"),
    ("GCP1", "data/traces/spothedge/GCP1"),
    ("1-node", "data/traces/cant-be-late/availability/1-node/aws-10-26-2022"),
    ("16-node", "data/traces/cant-be-late/availability/16-node/aws-08-27-2023"),
]
# (label, policy, extra options): the configurations a user can write in a service YAML.
CONFIGS = [
    ("dynamic_fallback (no placer: the default)", "dynamic_fallback", []),
    ("dynamic_fallback + spot_placer: dynamic_fallback", "dynamic_fallback",
     ["--fallback-placer", "--placer", "dynamic_fallback"]),
    ("dynamic_fallback + spot_placer: spread_backoff", "dynamic_fallback",
     ["--fallback-placer", "--placer", "spread_backoff"]),
    ("base_fallback (no placer: the default)", "base_fallback", []),
    ("base_fallback + spot_placer: spread_backoff", "base_fallback",
     ["--fallback-placer", "--placer", "spread_backoff"]),
    ("spothedge, dynamic_fallback placer", "spothedge", ["--placer", "dynamic_fallback"]),
    ("spothedge, dynamic_fallback placer, hedge", "spothedge",
     ["--placer", "dynamic_fallback", "--hedge", "on"]),
    ("spothedge, spread_backoff placer", "spothedge", ["--placer", "spread_backoff"]),
    ("spothedge, spread_backoff placer, hedge", "spothedge",
     ["--placer", "spread_backoff", "--hedge", "on"]),
]
GOAL_COST, GOAL_COST_AVG, GOAL_FAILED = 0.5, 0.47, 3.0
GOAL_AVAIL = {"off": 0.999, "on": 0.9999}


def run(binary, trace, policy, extra, notice):
    cmd = [binary, "--trace", os.path.join(SOURCE_DIR, trace), "--policy", policy, "--json",
           "--notice", notice] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit("%s: %s" % (" ".join(cmd), p.stderr))
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SOURCE_DIR, "build"))
    ap.add_argument("--json", action="store_true", help="one JSON line per run")
    a = ap.parse_args()
    binary = os.path.join(a.build, "bench", "policy", "policy_replay")
    results = {}
    for label, policy, extra in CONFIGS:
        for notice in ("off", "on"):
            for name, trace in TRACES:
                r = run(binary, trace, policy, extra, notice)
                results[label, notice, name] = r
                if a.json:
                    print(json.dumps(dict(r, config=label, notice=notice, world=name)))
    if a.json:
        return
    for notice in ("off", "on"):
        print("\n### Notices %s\n" % notice)
        print("| configuration | trace | cost_ratio | availability | preemptions | failed "
              "launches | failed / preemption | outages (longest, s) | on-demand h |")
        print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
        for label, _, _ in CONFIGS:
            for name, _ in TRACES:
                r = results[label, notice, name]
                print("| %s | %s | %.3f | %.5f | %d | %d | %.2f | %d (%.0f) | %.1f |" % (
                    label, name, r["cost_ratio"], r["availability"], r["preemptions"],
                    r["failed_launches"], r["failed_per_preemption"], r["outages"],
                    r["longest_outage_s"], r["ondemand_hours"]))
    print("\n### Goals per configuration (cost <= %.2f each and <= %.2f on average; READY >= "
          "target >= 99.9 %% without notices, 99.99 %% with; <= %g failed launches per "
          "preemption)\n" % (GOAL_COST, GOAL_COST_AVG, GOAL_FAILED))
    print("| configuration | notices | max cost | mean cost | min availability | "
          "max failed / preemption | goals met |")
    print("|---|---|--:|--:|--:|--:|---|")
    for label, _, _ in CONFIGS:
        for notice in ("off", "on"):
            rs = [results[label, notice, n] for n, _ in TRACES]
            costs = [r["cost_ratio"] for r in rs]
            avail = min(r["availability"] for r in rs)
            fpp = max(r["failed_per_preemption"] for r in rs)
            met = []
            if max(costs) <= GOAL_COST and sum(costs) / len(costs) <= GOAL_COST_AVG:
                met.append("cost")
            if avail >= GOAL_AVAIL[notice]:
                met.append("availability")
            if fpp <= GOAL_FAILED:
                met.append("failed launches")
            print("| %s | %s | %.3f | %.3f | %.5f | %.2f | %s |" % (
                label, notice, max(costs), sum(costs) / len(costs), avail, fpp,
                ", ".join(met) or "none"))


if __name__ == "__main__":
    main()
