"""Chaos under load at a short, bounded length (bench/chaos/chaos.py; the long
run is a benchmark, see bench/RESULTS.md).

The seed's service on the local cloud serves 20 GETs/s and a stream at a time
while spot replicas are preempted every 3-6 s and the controller, the sky-lb
and the local cloud are each kill -9'd once. Goals: no failed GET apart from
those the LB's own death cut and those sent when every READY replica had been
preempted (both counted apart; the LB back within 1 s), no leaked instance,
namespace or process, the service READY again.
"""
import json
import os
import subprocess
import sys

from skytest.paths import SOURCE_DIR, sanitized

CHAOS = os.path.join(SOURCE_DIR, "bench", "chaos", "chaos.py")


def run_chaos(*args, timeout=540):
    p = subprocess.run([sys.executable, CHAOS, "--json"] + list(args), capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    print(p.stderr)
    assert p.stdout.strip(), "no report (rc %d)" % p.returncode
    report = json.loads(p.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))
    return p.returncode, report


def test_chaos_short():
    # Kills 9-10 s apart (each waits up to 2.5 s for the daemon): exactly 3 in 36 s.
    rc, r = run_chaos("--duration", "36", "--seed", "7", "--preempt-every", "3,6",
                      "--kill-every", "9,10")
    assert "error" not in r, r["error"]
    # The schedule really happened: each daemon killed once, several preemptions.
    assert r["kills"] == {"controller": 1, "lb": 1, "localcloud": 1}, r["kills"]
    assert r["preemptions"] >= 4, r["preemptions"]
    assert r["sent"] >= 500, r["sent"]
    # Preempting both spot replicas within seconds leaves windows with no live
    # replica (counted apart); the service must still answer most requests.
    assert r["ok"] >= 0.8 * r["sent"], (r["ok"], r["sent"])
    assert all(v is not None for v in r["daemons_back_s"].values()), r["daemons_back_s"]
    # The goals. The benchmark's goal is 0 other failures; here up to 1 % is
    # tolerated because "no replica could serve it" is judged from samples of
    # the controller's READY set taken every 0.2 s, so a request failing at the
    # edge of such a window can land on the wrong side (bench/RESULTS.md).
    assert r["failed"] <= r["sent"] // 100, r["failed_detail"]
    # The LB back within 1 s (the benchmark's goal); a sanitized sky-lb starts
    # slower (1.17 s seen once in twenty under ASan with ctest -j2).
    lb_limit = 2.0 if sanitized() else 1.0
    assert all(b <= lb_limit for b in r["lb_back_s"]), r["lb_back_s"]
    assert r["streams_cut_otherwise"] == [], r["streams_cut_otherwise"]
    assert r["recovered"], r.get("final_replicas")
    assert r["leaked_instances"] == [], r["leaked_instances"]
    assert r["leftovers"] == [], r["leftovers"]
    assert rc == (0 if r["goals_met"] else 1)


def test_chaos_rejects_bad_arguments():
    for args in (["--duration", "0"], ["--kill-every", "5,1"], ["--preempt-every", "x"]):
        p = subprocess.run([sys.executable, CHAOS] + args, capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "usage:" in p.stderr, p.stderr
