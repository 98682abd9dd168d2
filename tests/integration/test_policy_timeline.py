"""policy_replay's options for modelling a live run (bench/policy/README.md, "Live
mode"): --gap, --start-tick/--ticks, --decision-interval, --launch-retry-initial,
--service-start, the spot placer of the fallback policies (the controller's, by
the reference's rule by default as in the controller; --fallback-placer) and the --timeline JSON lines, on small synthetic
worlds with answers derived by hand from the model.
"""
import json
import subprocess

import pytest

# The binary, the SKY_HOME fixture (two-zone catalog: spot 0.9 and 1.2 $/h, on-demand
# 3.0) and the trace writer of the policy replay tests.
from test_policy_replay import BIN, env, world  # noqa: F401  (env: the fixture)

# Live-like timings: 10 s ticks, 1 s steps and decisions, 2 s provisioning,
# 1 s cold start, 1 s drain.
LIVE = ["--gap", "10", "--step", "1", "--decision-interval", "1", "--provision-delay", "2",
        "--cold-start", "1", "--drain", "1"]


def run(env, tmp_path, trace, *args):
    tl = tmp_path / "timeline.jsonl"
    p = subprocess.run([BIN, "--trace", trace, "--json", "--timeline", str(tl),
                        "--launch-api-latency", "0", *args], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = {json.loads(x)["policy"]: json.loads(x) for x in p.stdout.splitlines() if x.strip()}
    steps = [json.loads(x) for x in tl.read_text().splitlines()]
    return rows, steps


def at(steps, t, policy="dynamic_fallback"):
    return next(s for s in steps if s["policy"] == policy and s["t"] == t)


KEYS = ("spot_live", "spot_ready", "od_live", "od_ready", "od_target")


def row(s):
    return tuple(s[k] for k in KEYS)


def test_timeline_of_a_fallback_episode(env, tmp_path):
    # Both zones have spot except during tick 3. dynamic_fallback with the
    # placer (--fallback-placer): the two spot replicas are spread over the zones.
    t = world(tmp_path, {"us-east-1a": [4, 4, 4, 0, 4, 4], "us-east-1b": [4, 4, 4, 0, 4, 4]})
    rows, steps = run(env, tmp_path, t, "--policy", "dynamic_fallback", *LIVE,
                      "--service-start", "3", "--fallback-placer")
    r = rows["dynamic_fallback"]
    assert r["placer"] is True
    assert r["ticks"] == 6 and r["gap_seconds"] == 10 and r["hours"] == pytest.approx(60 / 3600)
    assert [s["t"] for s in steps] == list(range(60))
    # nothing before the service starts
    assert row(at(steps, 2)) == (0, 0, 0, 0, -1) and not at(steps, 2)["decision"]
    assert at(steps, 2)["spot_target"] == -1
    # t=3: 2 spot (us-east-1a, then us-east-1b) + 2 on-demand fallback launched;
    # READY at 3 + 2 + 1 = 6, when the on-demand ones are scaled down (drain 1 s:
    # held until 7)
    assert row(at(steps, 3)) == (2, 0, 2, 0, 2) and at(steps, 3)["decision"]
    assert at(steps, 3)["spot_target"] == 2 and at(steps, 3)["spot_held"] == 2
    assert row(at(steps, 5)) == (2, 0, 2, 0, 2)
    assert row(at(steps, 6)) == (2, 2, 0, 0, 0) and at(steps, 6)["od_held"] == 2
    assert at(steps, 7)["od_held"] == 0
    # t=30: tick 3 empties both zones: both spot preempted; the decision asks for
    # 2 spot + 2 on-demand. The placer places the spot ones in the two zones,
    # both launches fail at once (FAILED: not live), the records go and the
    # same happens at every decision (1 s) while there is no capacity.
    s30 = at(steps, 30)
    assert s30["capacity"] == [0, 0] and s30["tick"] == 3
    assert row(s30) == (0, 0, 2, 0, 2) and s30["spot_target"] == 2 and s30["spot_held"] == 0
    assert row(at(steps, 33)) == (0, 0, 2, 2, 2)
    assert row(at(steps, 39)) == (0, 0, 2, 2, 2)
    # t=40: capacity is back; the decision's launches succeed (no backoff with
    # the placer), READY at 43, when the on-demand ones are scaled down
    assert row(at(steps, 40)) == (2, 0, 2, 2, 2) and at(steps, 40)["spot_held"] == 2
    assert row(at(steps, 42)) == (2, 0, 2, 2, 2)
    assert row(at(steps, 43)) == (2, 2, 0, 0, 0) and at(steps, 43)["od_held"] == 2
    assert at(steps, 44)["od_held"] == 0
    assert r["preemptions"] == 2
    # 2 failed spot launches per decision at t = 30 .. 39
    assert r["failed_launches"] == 20
    assert r["launches"] == 4 + 2 + 20 + 2
    # spot in us-east-1a ($0.9) and us-east-1b ($1.2) for 3..30 and 40..60;
    # on-demand ($3) 2 x (3..7 and 30..44); the baseline from the service start
    cost = (27 + 20) * (0.9 + 1.2) + 2 * (4 + 14) * 3.0
    assert r["cost_usd"] == pytest.approx(cost / 3600, abs=1e-12)
    assert r["baseline_usd"] == pytest.approx(2 * 3.0 * 57 / 3600, abs=1e-12)
    # measured from 3 + 3 = 6: READY < 2 during 30, 31, 32
    assert r["availability"] == pytest.approx(51 / 54, abs=1e-12)


def test_timeline_without_the_placer(env, tmp_path):
    # --no-fallback-placer (the reference: no placer without `spot_placer:`).
    # us-east-1a has spot except during tick 3; us-east-1b never has any.
    t = world(tmp_path, {"us-east-1a": [4, 4, 4, 0, 4, 4], "us-east-1b": [0] * 6})
    rows, steps = run(env, tmp_path, t, "--policy", "dynamic_fallback", *LIVE,
                      "--service-start", "3", "--launch-retry-initial", "1",
                      "--no-fallback-placer")
    r = rows["dynamic_fallback"]
    assert r["placer"] is False
    # t=3: 2 spot (the failover: both in us-east-1a) + 2 on-demand fallback
    assert row(at(steps, 3)) == (2, 0, 2, 0, 2) and at(steps, 3)["decision"]
    assert row(at(steps, 6)) == (2, 2, 0, 0, 0) and at(steps, 6)["od_held"] == 2
    assert at(steps, 7)["od_held"] == 0
    # t=30: both spot preempted, replaced at once by spot replicas that wait for
    # capacity (PROVISIONING: live), and 2 on-demand, READY at 33
    assert at(steps, 30)["capacity"] == [0, 0] and at(steps, 30)["tick"] == 3
    assert row(at(steps, 30)) == (2, 0, 2, 0, 2)
    assert row(at(steps, 33)) == (2, 0, 2, 2, 2)
    # t=40: capacity is back; the spot retries (1 s backoff, +-40 %, x1.6, cap 5 s)
    # find it within a few seconds; then the on-demand ones go
    back = next(s["t"] for s in steps if s["t"] >= 40 and s["od_live"] == 0)
    assert 43 <= back <= 40 + 7 + 3
    assert r["preemptions"] == 2


def test_default_launch_retry_waits_a_minute(env, tmp_path):
    # spot without fallback has no placer (in the controller too): a launch with
    # no capacity stays PROVISIONING and retries after the backoff
    t = world(tmp_path, {"us-east-1a": [4, 4, 4, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]})
    rows, steps = run(env, tmp_path, t, "--policy", "spot", *LIVE)
    assert rows["spot"]["placer"] is False
    assert at(steps, 30, "spot")["spot_live"] == 2 and at(steps, 30, "spot")["spot_held"] == 0
    # no --launch-retry-initial: 60 s +-40 % before the first retry after t=30
    back = next(s["t"] for s in steps if s["t"] >= 40 and s["spot_held"] > 0)
    assert 30 + 36 <= back <= 30 + 84 + 1
    # the same for dynamic_fallback without the placer
    _, steps = run(env, tmp_path, t, "--policy", "dynamic_fallback", *LIVE,
                   "--no-fallback-placer")
    back = next(s["t"] for s in steps if s["t"] >= 40 and s["od_live"] == 0)
    assert back >= 30 + 36 + 3


def test_window_of_the_trace(env, tmp_path):
    data = [4] * 10 + [0] * 5 + [4] * 10
    t = world(tmp_path, {"us-east-1a": data})
    rows, steps = run(env, tmp_path, t, "--policy", "spot", *LIVE, "--start-tick", "8",
                      "--ticks", "4")
    r = rows["spot"]
    assert r["ticks"] == 4 and r["start_tick"] == 8
    assert sorted({s["tick"]: s["capacity"][0] for s in steps}.items()) == [
        (0, 4), (1, 4), (2, 0), (3, 0)]
    assert r["preemptions"] == 2
    # past the end of the file
    p = subprocess.run([BIN, "--trace", t, "--start-tick", "25"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "past the end" in p.stderr
    for bad in (["--ticks", "0"], ["--start-tick", "-1"], ["--gap", "0"],
                ["--decision-interval", "0"], ["--service-start", "-1"]):
        p = subprocess.run([BIN, "--trace", t, *bad], env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, bad


def test_decision_interval(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * 6})
    _, steps = run(env, tmp_path, t, "--policy", "ondemand", "--gap", "10", "--step", "1",
                   "--decision-interval", "5", "--service-start", "2")
    assert [s["t"] for s in steps if s["decision"]] == [2, 7, 12, 17, 22, 27, 32, 37, 42, 47,
                                                        52, 57]


def test_fallback_placer_only_on_request(env, tmp_path):
    # The cheaper zone has no spot. Default (the controller's rule, the
    # reference's): the fallback policies have no placer; the normal failover
    # goes straight to us-east-1b.
    t = world(tmp_path, {"us-east-1a": [0] * 6, "us-east-1b": [4] * 6})
    rows, steps = run(env, tmp_path, t, "--policy", "all", *LIVE)
    r = rows["dynamic_fallback"]
    assert r["fallback_placer"] is False and r["placer"] is False
    assert r["failed_launches"] == 0 and r["launches"] == 4
    assert at(steps, 59)["spot_ready"] == 2 and at(steps, 59)["od_live"] == 0
    assert rows["base_fallback"]["placer"] is False
    # spothedge always has it (spot_placer:); spot (no fallback) and ondemand never do
    assert rows["spothedge"]["placer"] is True
    assert rows["spot"]["placer"] is False and rows["spot"]["failed_launches"] == 0
    assert rows["ondemand"]["placer"] is False
    # --no-fallback-placer is the default, spelled out
    again, _ = run(env, tmp_path, t, "--policy", "all", *LIVE, "--no-fallback-placer")
    for k in rows:
        rows[k].pop("wall_s"), again[k].pop("wall_s")
    assert again == rows
    # --fallback-placer (the deviation the controller had): the dynamic_fallback placer
    # puts the first spot replica in us-east-1a and the second in us-east-1b (not in
    # use); the first fails, the placer resets (fewer than 2 active locations) and its
    # replacement goes to us-east-1a again, at every decision (1 s, t = 0 .. 59). So
    # one on-demand replica stays although us-east-1b has room for both.
    rows, steps = run(env, tmp_path, t, *LIVE, "--fallback-placer")
    r = rows["dynamic_fallback"]
    assert r["fallback_placer"] is True and r["placer"] is True
    assert r["failed_launches"] == 60
    assert r["launches"] == 60 + 1 + 2
    assert at(steps, 59)["spot_ready"] == 1 and at(steps, 59)["od_live"] == 1
    assert rows["base_fallback"]["placer"] is True
    assert rows["spot"]["placer"] is False and rows["spot"]["failed_launches"] == 0
    assert rows["ondemand"]["placer"] is False
    # --fallback-placer is the default, spelled out
    again, _ = run(env, tmp_path, t, *LIVE, "--fallback-placer")
    for k in rows:
        rows[k].pop("wall_s"), again[k].pop("wall_s")
    assert again == rows
    # --no-fallback-placer: the normal failover goes straight to us-east-1b
    rows, steps = run(env, tmp_path, t, "--policy", "all", *LIVE, "--no-fallback-placer")
    r = rows["dynamic_fallback"]
    assert r["fallback_placer"] is False and r["placer"] is False
    assert r["failed_launches"] == 0 and r["launches"] == 4
    assert at(steps, 59)["spot_ready"] == 2 and at(steps, 59)["od_live"] == 0
    assert rows["base_fallback"]["placer"] is False
    assert rows["spothedge"]["placer"] is True
