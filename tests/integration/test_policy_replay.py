"""bench/policy/policy_replay on small synthetic traces with known answers.

Each test writes its own multi-zone world (one JSON file per zone) and a
catalog with round prices into a temporary SKY_HOME, runs the replay with
--json and checks exact figures derived by hand from the model
(bench/policy/README.md): provision 120 s + cold start 60 s before READY,
decisions every 20 s, probes every 10 s, drain 120 s on scale-down.
"""
import json
import os
import random
import subprocess
import time

import pytest

BUILD = os.environ.get("SKY_BUILD_DIR",
                       os.path.join(os.path.dirname(__file__), "..", "..", "build"))
BIN = os.path.join(BUILD, "bench", "policy", "policy_replay")

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
    p = subprocess.run([BIN, "--trace", trace, "--json", *args], env=env,
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
    t_drop = DROP * GAP
    assert r["preemptions"] == 2
    # start: 2 spot + 2 on-demand; after the drop: 2 spot + 2 on-demand again
    assert r["launches"] == 8
    # on-demand cannot help sooner than spot here: both take 180 s
    assert r["availability"] == pytest.approx(1 - 180 / (DAY - WARMUP), abs=1e-12)
    cost = (2 * SPOT_A * t_drop + 2 * SPOT_B * (DAY - t_drop)
            + 2 * 2 * OD * (180 + 120))
    assert r["cost_ratio"] == pytest.approx(cost / (2 * OD * DAY), abs=1e-9)


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
                 ["--preempt", "oldest"]):
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
