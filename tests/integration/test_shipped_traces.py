"""The spot-availability traces shipped in data/traces (data/traces/README.md).

Each of the five folders the project uses is in the repository, in the format the
README gives, and replays in bench/policy/policy_replay with the zones, tick length
and length the README lists; and nothing in the repository reads the team's
reference folder, which a user's clone does not have.
"""
import json
import os
import subprocess

import pytest

BUILD = os.environ.get("SKY_BUILD_DIR",
                       os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("SKY_SOURCE_DIR",
                        os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.path.join(BUILD, "bench", "policy", "policy_replay")
TRACES = os.path.join(SOURCE, "data", "traces")

# folder: (zones, the tag policy_replay picks, gap_seconds, ticks of the world)
SHIPPED = {
    "spothedge/AWS1": (["us-east-1f", "us-east-2a", "us-west-2c"], "v100_1", 300, 3156),
    "spothedge/AWS2": (["us-east-2b", "us-west-2a", "us-west-2c"], "v100_1", 300, 3247),
    "spothedge/GCP1": (["asia-northeast1-a", "europe-west4-a", "us-central1-a", "us-central1-b",
                        "us-east1-b", "us-west1-b"], "a100_40gb_8", 150, 770),
    "cant-be-late/availability/1-node/aws-10-26-2022": (["us-west-2a", "us-west-2b"], "v100_1",
                                                         600, 3895),
    "cant-be-late/availability/16-node/aws-08-27-2023": (["us-east-2b", "us-west-2a",
                                                          "us-west-2c"], "v100_1", 300, 3247),
}


@pytest.mark.parametrize("folder", sorted(SHIPPED))
def test_shipped_trace_format_and_replay(folder, tmp_path):
    zones, tag, gap, ticks = SHIPPED[folder]
    d = os.path.join(TRACES, folder)
    files = sorted(f for f in os.listdir(d) if f.endswith(".json"))
    assert {f.split("_", 1)[0] for f in files} == set(zones), files
    for f in files:
        with open(os.path.join(d, f)) as fh:
            j = json.load(fh)
        assert j["metadata"]["gap_seconds"] == gap, f
        assert j["data"] and all(isinstance(x, int) and x >= 0 for x in j["data"]), f
    if not os.path.exists(BIN):
        pytest.fail(f"{BIN} not built")
    env = dict(os.environ, SKY_HOME=str(tmp_path), HOME=str(tmp_path))  # the shipped catalog
    p = subprocess.run([BIN, "--trace", d, "--policy", "ondemand", "--json"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert (r["zones"], r["gpu"], r["gap_seconds"], r["ticks"]) == (len(zones), tag, gap, ticks)
    assert r["cost_ratio"] == pytest.approx(1.0, abs=1e-9)


def test_nothing_reads_the_reference_folder():
    # Spelled in pieces so that this file does not find itself.
    needles = [".." + "/shared", "/work" + "/shared"]
    found = []
    for root, dirs, files in os.walk(SOURCE):
        dirs[:] = [x for x in dirs if not x.startswith((".", "build"))]
        for name in files:
            if name.endswith((".json", ".db", ".o", ".a", ".so", ".pyc")):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except (UnicodeDecodeError, OSError):
                continue
            found += [f"{os.path.relpath(path, SOURCE)}: {n}" for n in needles if n in text]
    assert not found, found
