"""bench/policy/policy_replay on small synthetic traces with known answers.

Each test writes its own multi-zone world (one JSON file per zone) and a
catalog with round prices into a temporary SKY_HOME, runs the replay with
--json and checks exact figures derived by hand from the model
(bench/policy/README.md): provision 120 s + cold start 60 s before READY,
decisions every 20 s, probes every 10 s, drain 120 s on scale-down. As in the
controller, base_fallback and dynamic_fallback get the dynamic_fallback spot
placer unless --no-fallback-placer (the reference's normal failover) is given.
"""
import json
import os
import random
import subprocess
import time

import pytest
from skytest.paths import BUILD_DIR

BIN = os.path.join(BUILD_DIR, "bench", "policy", "policy_replay")

OD = 3.0       # on-demand $/h in both zones
SPOT_A = 0.9   # us-east-1a (cheapest spot)
SPOT_B = 1.2   # us-east-1b
DAY = 86400
GAP = 300
TICKS = DAY // GAP
WARMUP = 180   # provision + cold start: availability is measured after it

CATALOG = f"""
clouds:
  aws:
    instance_types:
      p3.2xlarge: {{vcpus: 8, memory: 61, accelerators: "V100:1"}}
    regions:
      us-east-1:
        zones:
          us-east-1a:
            p3.2xlarge: {{on_demand: {OD}, spot: {SPOT_A}}}
          us-east-1b:
            p3.2xlarge: {{on_demand: {OD}, spot: {SPOT_B}}}
"""


@pytest.fixture
def env(tmp_path):
    if not os.path.exists(BIN):
        pytest.fail(f"{BIN} not built")
    home = tmp_path / "skyhome"
    home.mkdir()
    (home / "catalog.yaml").write_text(CATALOG)
    e = dict(os.environ)
    e["SKY_HOME"] = str(home)
    e["HOME"] = str(tmp_path)
    return e


def world(tmp_path, zones, gap=GAP, name="world"):
    d = tmp_path / name
    d.mkdir()
    for zone, data in zones.items():
        (d / f"{zone}_v100_1.json").write_text(
            json.dumps({"metadata": {"gap_seconds": gap}, "data": data}))
    return str(d)


def run(env, trace, *args, check=True):
    # These worlds were written for instant failed launches; a test of the
    # latency passes its own --launch-api-latency (the last one wins).
    # --fallback-placer: these worlds show what the placers do with the fallback policies
    # (the controller gives them none, the reference's rule); --no-fallback-placer wins.
    p = subprocess.run([BIN, "--trace", trace, "--json", "--launch-api-latency", "0",
                        "--fallback-placer", *args],
                       env=env,
                       capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return {r["policy"]: r for r in rows}, p


def test_ondemand_is_the_baseline(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * TICKS})
    rows, _ = run(env, t, "--policy", "ondemand")
    r = rows["ondemand"]
    assert r["cost_ratio"] == pytest.approx(1.0, abs=1e-9)
    assert r["availability"] == 1.0
    assert r["preemptions"] == 0
    assert r["launches"] == 2
    assert r["hours"] == pytest.approx(24.0)


def test_spot_always_available_costs_the_price_ratio(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * TICKS, "us-east-1b": [4] * TICKS})
    rows, _ = run(env, t, "--policy", "spot")
    r = rows["spot"]
    # Both replicas go to the cheapest spot zone (the normal failover order).
    assert r["cost_ratio"] == pytest.approx(SPOT_A / OD, abs=1e-9)
    assert r["availability"] == 1.0
    assert r["preemptions"] == 0
    assert r["launches"] == 2
    assert r["failed_launches"] == 0


def test_flat_spot_discount(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * TICKS})
    rows, _ = run(env, t, "--policy", "spot", "--spot-discount", "0.25")
    assert rows["spot"]["cost_ratio"] == pytest.approx(0.25, abs=1e-9)


def test_spothedge_overprovisions_and_falls_back_while_spot_starts(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * TICKS})
    rows, _ = run(env, t, "--policy", "spothedge")
    r = rows["spothedge"]
    # t=0: 3 spot (target 2 + overprovision 1) and 2 on-demand (dynamic fallback
    # for the 3 not-ready spot, capped at the target). t=180: spot READY, the
    # on-demand ones are scaled down and billed through the 120 s drain.
    cost = 3 * SPOT_A * DAY + 2 * OD * (180 + 120)
    assert r["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)
    assert r["availability"] == 1.0
    assert r["preemptions"] == 0
    assert r["launches"] == 5
    assert r["ondemand_hours"] == pytest.approx(2 * 300 / 3600)


DROP = 100  # tick at which us-east-1a loses all spot capacity


def drop_world(tmp_path):
    return world(tmp_path, {
        "us-east-1a": [4] * DROP + [0] * (TICKS - DROP),
        "us-east-1b": [4] * TICKS,
    })


def test_zone_drop_preempts_and_spot_moves_to_the_other_zone(env, tmp_path):
    rows, _ = run(env, drop_world(tmp_path), "--policy", "spot")
    r = rows["spot"]
    t_drop = DROP * GAP
    assert r["preemptions"] == 2
    # relaunched at once (t_drop is a decision time) in us-east-1b; READY 180 s later
    assert r["launches"] == 4
    assert r["failed_launches"] == 0
    assert r["availability"] == pytest.approx(1 - 180 / (DAY - WARMUP), abs=1e-12)
    assert r["outages"] == 1 and r["longest_outage_s"] == 180
    cost = 2 * SPOT_A * t_drop + 2 * SPOT_B * (DAY - t_drop)
    assert r["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)


def test_zone_drop_with_dynamic_fallback(env, tmp_path):
    rows, _ = run(env, drop_world(tmp_path), "--policy", "dynamic_fallback")
    r = rows["dynamic_fallback"]
    assert r["placer"] is True and r["fallback_placer"] is True
    t_drop = DROP * GAP
    # t=0: 2 spot + 2 on-demand; the placer spreads the spot replicas: us-east-1a
    # (cheapest), then us-east-1b (not in use). Only the us-east-1a one is preempted.
    assert r["preemptions"] == 1
    # At t_drop the placer marks us-east-1a preempted and, with fewer than 2 active
    # locations left, resets both to active. The replacement is placed in the
    # cheapest location not in use, us-east-1a again, fails at once, and so on at
    # every decision (20 s) to the end: the second spot replica never returns
    # although us-east-1b has room, and one on-demand replica runs meanwhile.
    n_fail = (DAY - t_drop) // 20
    assert r["failed_launches"] == n_fail
    assert r["launches"] == 4 + 1 + n_fail
    assert r["availability"] == pytest.approx(1 - 180 / (DAY - WARMUP), abs=1e-12)
    cost = (SPOT_A * t_drop + SPOT_B * DAY + 2 * OD * (180 + 120) + OD * (DAY - t_drop))
    assert r["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)
    assert r["spot_missing_with_room_hours"] == pytest.approx((DAY - t_drop) / 3600)
    assert r["ondemand_hours_with_spot_room"] == pytest.approx(
        (2 * 300 + DAY - t_drop) / 3600)


def test_zone_drop_with_dynamic_fallback_without_the_placer(env, tmp_path):
    rows, _ = run(env, drop_world(tmp_path), "--policy", "dynamic_fallback",
                  "--no-fallback-placer")
    r = rows["dynamic_fallback"]
    assert r["placer"] is False and r["fallback_placer"] is False
    t_drop = DROP * GAP
    # the normal failover: both spot in us-east-1a, both preempted at t_drop
    assert r["preemptions"] == 2
    # start: 2 spot + 2 on-demand; after the drop: 2 spot (in us-east-1b) + 2 on-demand
    assert r["launches"] == 8
    assert r["failed_launches"] == 0
    # on-demand cannot help sooner than spot here: both take 180 s
    assert r["availability"] == pytest.approx(1 - 180 / (DAY - WARMUP), abs=1e-12)
    cost = (2 * SPOT_A * t_drop + 2 * SPOT_B * (DAY - t_drop)
            + 2 * 2 * OD * (180 + 120))
    assert r["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)
    assert r["spot_missing_with_room_hours"] == 0
    assert r["ondemand_hours_with_spot_room"] == pytest.approx(2 * 2 * 300 / 3600)


def test_fallback_placer_never_tries_the_dearer_zone_for_one_replica(env, tmp_path):
    # The cheaper zone never has spot, the dearer one always has room. With the
    # controller's placer a lone spot replica is placed in us-east-1a, fails,
    # the placer resets (fewer than 2 active locations) and places the next one
    # in us-east-1a again: us-east-1b is never tried. The reference's failover
    # (--no-fallback-placer) launches it in us-east-1b at once.
    t = world(tmp_path, {"us-east-1a": [0] * TICKS, "us-east-1b": [4] * TICKS})
    rows, _ = run(env, t)
    base, dyn = rows["base_fallback"], rows["dynamic_fallback"]
    # base_fallback: 1 on-demand (base) + 1 spot that never runs: READY 1 < 2 all day
    assert base["placer"] is True
    assert base["failed_launches"] == DAY // 20 and base["launches"] == 1 + DAY // 20
    assert base["availability"] == 0.0
    assert base["outages"] == 1 and base["longest_outage_s"] == DAY - WARMUP
    assert base["cost_ratio"] == pytest.approx(0.5, abs=1e-9)
    assert base["spot_hours"] == 0
    # dynamic_fallback: the second spot replica goes to us-east-1b (not in use), the
    # first keeps failing in us-east-1a; one on-demand replica runs all day.
    assert dyn["failed_launches"] == DAY // 20
    assert dyn["availability"] == 1.0
    cost = SPOT_B * DAY + OD * DAY + OD * (180 + 120)
    assert dyn["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)
    # spot (no fallback) has no placer in the controller either
    assert rows["spot"]["placer"] is False and rows["spot"]["failed_launches"] == 0
    assert rows["spothedge"]["placer"] is True

    rows, _ = run(env, t, "--no-fallback-placer")
    base, dyn = rows["base_fallback"], rows["dynamic_fallback"]
    assert base["placer"] is False and base["failed_launches"] == 0
    assert base["launches"] == 2 and base["availability"] == 1.0
    assert base["cost_ratio"] == pytest.approx((OD + SPOT_B) / (2 * OD), abs=1e-9)
    assert dyn["failed_launches"] == 0 and dyn["launches"] == 4
    cost = 2 * SPOT_B * DAY + 2 * OD * (180 + 120)
    assert dyn["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)
    # spothedge keeps its placer (spot_placer: dynamic_fallback)
    assert rows["spothedge"]["placer"] is True


# spread_backoff (--placer spread_backoff): a zone that failed backs off for
# min(15 decisions (300 s) * 2^(k-1), 1 h) after its k-th failure; among the
# zones not backing off, the fewest replicas, then the fewest failures, then
# the cheapest; nothing is launched while every zone backs off.
SB = ["--placer", "spread_backoff"]


def test_spread_backoff_stacks_where_there_is_room(env, tmp_path):
    # The drop world of test_zone_drop_with_dynamic_fallback: where the
    # dynamic_fallback placer fails a launch at every decision for the rest of
    # the day, spread_backoff stacks the successor in us-east-1b at once.
    rows, _ = run(env, drop_world(tmp_path), "--policy", "dynamic_fallback", *SB)
    r = rows["dynamic_fallback"]
    assert r["placer"] is True and r["spot_placer"] == "spread_backoff"
    t_drop = DROP * GAP
    # t=0: spread over us-east-1a and us-east-1b (+ 2 on-demand); at t_drop
    # us-east-1a's replica is preempted, the zone backs off, and the successor goes
    # to us-east-1b, next to the other one (+ 1 on-demand until it is READY).
    assert r["preemptions"] == 1
    assert r["failed_launches"] == 0
    assert r["launches"] == 4 + 2
    assert r["availability"] == pytest.approx(1 - 180 / (DAY - WARMUP), abs=1e-12)
    cost = (SPOT_A * t_drop + SPOT_B * DAY + SPOT_B * (DAY - t_drop)
            + 2 * OD * (180 + 120) + OD * (180 + 120))
    assert r["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)
    assert r["spot_missing_with_room_hours"] == 0
    assert r["ondemand_hours_with_spot_room"] == pytest.approx(3 * 300 / 3600)


def test_spread_backoff_reaches_the_dearer_zone_once(env, tmp_path):
    # test_fallback_placer_never_tries_the_dearer_zone_for_one_replica's world: the
    # cheaper zone never has spot. Each policy fails there once, then us-east-1a
    # backs off and the replicas go to us-east-1b; the day needs no other launch.
    t = world(tmp_path, {"us-east-1a": [0] * TICKS, "us-east-1b": [4] * TICKS})
    rows, _ = run(env, t, *SB)
    base, dyn, hedge = rows["base_fallback"], rows["dynamic_fallback"], rows["spothedge"]
    # base_fallback: t=0 the spot replica fails in us-east-1a; t=20 it goes to
    # us-east-1b, READY at 200; the on-demand one is READY at 180.
    assert base["failed_launches"] == 1 and base["launches"] == 3
    assert base["outages"] == 1 and base["longest_outage_s"] == 20
    assert base["cost_ratio"] == pytest.approx((OD * DAY + SPOT_B * (DAY - 20)) / (2 * OD * DAY),
                                               abs=1e-9)
    # dynamic_fallback: t=0 us-east-1a (fails) and us-east-1b; t=20 the second stacks
    # in us-east-1b. The 2 on-demand replicas go at 180 and 200.
    assert dyn["failed_launches"] == 1 and dyn["launches"] == 5
    assert dyn["availability"] == 1.0
    cost = SPOT_B * DAY + SPOT_B * (DAY - 20) + OD * (180 + 120) + OD * (200 + 120)
    assert dyn["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)
    # spothedge (3 spot): at t=0 the first and third replicas are both placed in
    # us-east-1a (fewest replicas, then the cheapest) and fail; at t=20 both stack
    # in us-east-1b
    assert hedge["failed_launches"] == 2 and hedge["availability"] == 1.0
    assert rows["spot"]["placer"] is False


def test_spread_backoff_probes_a_full_world_on_its_backoff(env, tmp_path):
    # spothedge wants 3 spot; us-east-1a has room for 2, us-east-1b for none, all
    # day. The third replica fails in us-east-1b at t=0 and in us-east-1a (stacking)
    # at t=20; from then on each zone is tried only when its backoff ends: at
    # 300, 900, 2100, 4500 s after its first failure, then once an hour.
    t = world(tmp_path, {"us-east-1a": [2] * TICKS, "us-east-1b": [0] * TICKS})
    per_zone = 1 + 4 + len(range(8100, DAY, 3600))  # the first, 4 doublings, hourly
    runs = {}
    for placer in ("spread_backoff", "dynamic_fallback"):
        for hedge in ("on", "off"):
            rows, _ = run(env, t, "--policy", "spothedge", "--placer", placer, "--hedge", hedge)
            runs[placer, hedge] = r = rows["spothedge"]
            assert r["hedge"] is (hedge == "on") and r["spot_placer"] == placer
            assert r["availability"] == 1.0 and r["spot_hours"] == pytest.approx(48)
    for hedge in ("on", "off"):
        assert runs["spread_backoff", hedge]["failed_launches"] == 2 * per_zone
        # the reference's placer: one failure per decision all day
        assert runs["dynamic_fallback", hedge]["failed_launches"] == DAY // 20
    # The hedge: dynamic fallback covers the target (2 READY spot), not the third
    # spot replica that never runs. Without it one on-demand replica runs all day.
    for placer in ("spread_backoff", "dynamic_fallback"):
        on, off = runs[placer, "on"], runs[placer, "off"]
        assert on["ondemand_hours"] == pytest.approx(2 * 300 / 3600)
        assert off["ondemand_hours"] == pytest.approx((300 + DAY) / 3600)
        assert on["cost_ratio"] == pytest.approx((2 * SPOT_A * DAY + 2 * OD * 300)
                                                 / (2 * OD * DAY), abs=1e-9)
        assert off["cost_ratio"] - on["cost_ratio"] == pytest.approx(
            (DAY - 300) / (2 * DAY), abs=1e-9)

def test_no_capacity_anywhere_is_an_outage_for_spot_only(env, tmp_path):
    # Zone empty for 20 ticks (6000 s), then back: spot-only has no replica at all
    # meanwhile and retries with the controller's jittered backoff (60 s .. 300 s +-40%).
    data = [4] * DROP + [0] * 20 + [4] * (TICKS - DROP - 20)
    t = world(tmp_path, {"us-east-1a": data})
    rows, _ = run(env, t, "--policy", "all", "--seed", "7")
    s = rows["spot"]
    assert s["preemptions"] == 2
    down = (1 - s["availability"]) * (DAY - WARMUP)
    assert 6000 + 180 <= down <= 6000 + 180 + 420 + 20
    assert s["failed_launches"] > 0
    # with on-demand fallback the service recovers in provision + cold start
    d = rows["dynamic_fallback"]
    assert d["preemptions"] == 2
    assert d["availability"] == pytest.approx(1 - 180 / (DAY - WARMUP), abs=1e-12)
    assert d["cost_ratio"] > s["cost_ratio"]
    assert rows["ondemand"]["availability"] == 1.0
    assert rows["ondemand"]["preemptions"] == 0
    # base_fallback keeps one on-demand replica: half the target always served
    b = rows["base_fallback"]
    assert b["preemptions"] == 1
    assert b["ondemand_hours"] == pytest.approx(24.0)


def test_seed_makes_runs_reproducible(env, tmp_path):
    rnd = random.Random(3)
    t = world(tmp_path, {z: [rnd.choice([0, 1, 2, 4]) for _ in range(TICKS)]
                         for z in ("us-east-1a", "us-east-1b")})
    a, _ = run(env, t, "--seed", "5", "--preempt", "random")
    b, _ = run(env, t, "--seed", "5", "--preempt", "random")
    for k in a:
        a[k].pop("wall_s"), b[k].pop("wall_s")
    assert a == b


def test_all_policies_json_lines(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * TICKS})
    rows, p = run(env, t)
    assert list(rows) == ["ondemand", "spot", "base_fallback", "dynamic_fallback", "spothedge"]
    for r in rows.values():
        for k in ("policy", "cost_ratio", "availability", "preemptions", "launches"):
            assert k in r
        assert 0 <= r["availability"] <= 1


def test_zones_of_different_lengths(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * 100, "us-east-1b": [4] * 50})
    rows, _ = run(env, t, "--policy", "spot")
    assert rows["spot"]["hours"] == pytest.approx(50 * GAP / 3600)
    rows, _ = run(env, t, "--policy", "spot", "--extend")
    assert rows["spot"]["hours"] == pytest.approx(100 * GAP / 3600)


def test_qps_drives_the_target(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * TICKS})
    rows, _ = run(env, t, "--policy", "ondemand", "--qps", "2.5", "--qps-per-replica", "1",
                  "--max-replicas", "5")
    r = rows["ondemand"]
    # target 1 (min) until the 300 s upscale delay passes, then ceil(2.5) = 3;
    # the two new replicas are READY 180 s later. The baseline follows the target.
    assert r["cost_ratio"] == pytest.approx(1.0, abs=1e-9)
    assert r["launches"] == 3
    assert 0.99 < r["availability"] < 1.0
    down = (1 - r["availability"]) * (DAY - WARMUP)
    assert down == pytest.approx(180, abs=20)


def test_load_file(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * TICKS})
    load = tmp_path / "load.txt"
    load.write_text("# seconds qps\n0 0.5\n43200 3.5\n")
    rows, _ = run(env, t, "--policy", "ondemand", "--load", str(load))
    assert rows["ondemand"]["launches"] == 4  # 1, then 3 more at ceil(3.5)
    load.write_text("0 1\n0 2\n")
    _, p = run(env, t, "--load", str(load), check=False)
    assert p.returncode == 1 and "load.txt:2:1" in p.stderr


def test_weeks_of_trace_replay_in_seconds(env, tmp_path):
    rnd = random.Random(11)
    ticks = 3 * 7 * DAY // GAP
    zones = {}
    for z in ("us-east-1a", "us-east-1b"):
        v, data = 4, []
        for _ in range(ticks):
            if rnd.random() < 0.02:
                v = rnd.choice([0, 0, 1, 2, 4])
            data.append(v)
        zones[z] = data
    t = world(tmp_path, zones)
    t0 = time.monotonic()
    rows, _ = run(env, t)
    # ~0.5 s for all five policies in a plain build; generous for ASan on a busy machine
    assert time.monotonic() - t0 < 60
    assert len(rows) == 5
    assert rows["ondemand"]["cost_ratio"] == pytest.approx(1.0, abs=1e-9)


def test_bad_arguments(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * 10})
    for args in (["--policy", "nope"], ["--target-replicas", "0"], ["--qps", "1", "--load", "x"],
                 ["--preempt", "oldest"], ["--placer", "greedy"], ["--hedge", "yes"]):
        p = subprocess.run([BIN, "--trace", t, *args], env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, args
    p = subprocess.run([BIN], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    p = subprocess.run([BIN, "--trace", str(tmp_path / "missing")], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    bad = world(tmp_path, {"us-east-1a": [4] * 10}, name="bad")
    with open(os.path.join(bad, "us-east-1a_v100_1.json"), "w") as f:
        f.write('{"metadata": {}, "data": [1]}')
    p = subprocess.run([BIN, "--trace", bad], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1 and "gap_seconds" in p.stderr


# --notice on|off, --notice-seconds, --launch-api-latency (issue #13).

def test_notice_launches_the_replacement_ahead(env, tmp_path):
    # us-east-1a (cheaper) loses its spot at t = 3000; us-east-1b always has room.
    # spread_backoff spreads the 2 spot replicas; the one in us-east-1a is replaced
    # in us-east-1b. Without a notice READY drops below 2 for provision + cold start
    # (180 s); a notice N s ahead starts the replacement N s earlier.
    t = world(tmp_path, {"us-east-1a": [4] * 10 + [0] * 20, "us-east-1b": [4] * 30})
    common = ("--policy", "dynamic_fallback", "--placer", "spread_backoff")
    outage = {}
    for args in (("--notice", "off"), ("--notice", "on"), ("--notice", "on",
                 "--notice-seconds", "30"), ("--notice", "on", "--notice-seconds", "300")):
        rows, _ = run(env, t, *common, *args)
        r = rows["dynamic_fallback"]
        assert r["preemptions"] == 1 and r["failed_launches"] == 0, r
        assert r["notices"] == (0 if args[1] == "off" else 1)
        outage[r["notice_s"]] = r["longest_outage_s"]
    # AWS's 120 s by default (the catalog names the zones' cloud aws)
    assert outage == {0: 180, 120: 60, 30: 150, 300: 0}, outage


def test_notice_moves_the_replacement_off_the_doomed_zone(env, tmp_path):
    # Both spot replicas sit in us-east-1a (the normal failover, no placer: the
    # cheapest zone) and the zone empties at t = 3000. The replacements launched on
    # the notice try the zone that got it last (ctl_fleet_order_candidates), so they
    # go to us-east-1b and are not preempted; READY is below 2 only for the 60 s the
    # 120 s notice leaves of the 180 s start.
    t = world(tmp_path, {"us-east-1a": [4] * 10 + [0] * 20, "us-east-1b": [4] * 30})
    rows, _ = run(env, t, "--policy", "spot", "--notice", "on", "--no-fallback-placer")
    r = rows["spot"]
    assert r["notices"] == r["preemptions"] == 2 and r["longest_outage_s"] == 60, r
    # the same with spothedge's placer, which marks the doomed zone at the notice
    rows, _ = run(env, t, "--policy", "spothedge", "--placer", "spread_backoff",
                  "--notice", "on")
    r = rows["spothedge"]
    assert r["notices"] == r["preemptions"] == 2 and r["longest_outage_s"] == 60, r


def test_failed_launches_take_the_api_latency(env, tmp_path):
    # us-east-1a (cheapest) never has spot: the failover asks it first, which takes
    # the API latency, then launches in us-east-1b; READY that much later.
    t = world(tmp_path, {"us-east-1a": [0] * TICKS, "us-east-1b": [4] * TICKS})
    out = {}
    for lat in ("0", "20", "45"):
        rows, _ = run(env, t, "--policy", "spot", "--launch-api-latency", lat)
        r = rows["spot"]
        assert r["launch_api_latency_s"] == float(lat) and r["failed_launches"] == 0
        out[lat] = r["longest_outage_s"]
    assert out == {"0": 0, "20": 20, "45": 50}, out  # 45 s ends within the 10 s step
    # The default is 20 s (run() passes 0 for the worlds above).
    p = subprocess.run([BIN, "--trace", t, "--json", "--policy", "spot"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert json.loads(p.stdout)["launch_api_latency_s"] == 20
    # A placer's failed launch reports after the latency: fewer attempts in a day.
    rows, _ = run(env, t, "--policy", "base_fallback", "--launch-api-latency", "20")
    slow = rows["base_fallback"]["failed_launches"]
    rows, _ = run(env, t, "--policy", "base_fallback")
    assert slow < rows["base_fallback"]["failed_launches"]
    assert rows["base_fallback"]["failed_per_preemption"] == 0  # no preemption at all


def test_notice_and_latency_options_are_checked(env, tmp_path):
    t = world(tmp_path, {"us-east-1a": [4] * 4})
    for bad in (["--notice", "maybe"], ["--notice-seconds", "-1"],
                ["--launch-api-latency", "x"]):
        p = subprocess.run([BIN, "--trace", t, *bad], env=env, capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2 and "bad value" in p.stderr, (bad, p.stderr)
