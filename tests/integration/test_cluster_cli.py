"""sky launch / exec / status / logs / down: unmanaged tasks on the local cloud.

Real processes: the sky CLI, sky-localcloud (started on demand by the CLI),
sky-agent inside a network namespace per instance. Needs root.
"""
import json
import os
import sqlite3
import subprocess
import tempfile
import time

import pytest
from skytest.paths import SKY
from skytest.procs import processes_naming

pytestmark = pytest.mark.root("instances are network namespaces (ip netns)")


@pytest.fixture
def home():
    d = tempfile.mkdtemp(prefix="sky-cluster-test-")
    env = dict(os.environ, SKY_HOME=os.path.join(d, "home"), SKY_LOCALCLOUD_PROVISION_DELAY="0.3")
    yield d, env
    subprocess.run([SKY, "cloud", "down"], env=env, capture_output=True, timeout=60)
    left = agents_of(env["SKY_HOME"])
    assert left == [], f"sky-agent processes left behind: {left}"
    subprocess.run(["rm", "-rf", d])


def agents_of(sky_home):
    return [cmd for _, cmd in processes_naming(sky_home) if "sky-agent" in cmd]


def sky(env, *args, timeout=90, cwd=None):
    return subprocess.run([SKY, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def cloud_instances(env):
    r = sky(env, "cloud", "status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return doc["instances"] if isinstance(doc, dict) else doc


def test_launch_prints_env_and_ip_then_down(home):
    d, env = home
    task = os.path.join(d, "task.yaml")
    write(task, """
name: hello
resources:
  cpus: 2+
envs:
  GREETING: from-yaml
  OTHER: kept
setup: echo "setup ran"
run: |
  echo "greeting=$GREETING other=$OTHER"
  echo "node_ips=$SKYPILOT_NODE_IPS rank=$SKYPILOT_NODE_RANK"
  ip -4 -o addr show | awk '{print "addr=" $4}'
""")
    env_file = os.path.join(d, "task.env")
    write(env_file, "GREETING=from-file\nOTHER=\"from file\" # over the YAML\n")
    r = sky(env, "launch", task, "-c", "c1", "--env", "GREETING=from-cli", "--env-file", env_file,
            "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "setup ran" in r.stdout
    assert "greeting=from-cli other=from file" in r.stdout
    st = json.loads(sky(env, "status", "--json").stdout)["clusters"]
    assert [c["name"] for c in st] == ["c1"]
    ip = st[0]["ip"]
    assert ip.startswith("198.18."), ip
    assert f"node_ips={ip} rank=0" in r.stdout
    assert f"addr={ip}/" in r.stdout
    assert st[0]["status"] == "UP"
    # The human table has the reference's columns.
    table = sky(env, "status").stdout
    assert "NAME" in table and "RESOURCES" in table and "ZONE" in table and "c1" in table
    # The instance is a host of its own: its namespace exists and it owns the IP.
    inst = [i for i in cloud_instances(env) if i["id"] == st[0]["instance_id"]]
    assert inst and inst[0]["state"] == "RUNNING"

    r = sky(env, "down", "c1", "-y")
    assert r.returncode == 0, r.stderr
    assert json.loads(sky(env, "status", "--json").stdout)["clusters"] == []
    live = [i for i in cloud_instances(env) if i["state"] in ("RUNNING", "PENDING")]
    assert live == []
    assert agents_of(env["SKY_HOME"]) == []


def test_exec_exit_codes_and_logs(home):
    d, env = home
    ok = os.path.join(d, "ok.yaml")
    write(ok, "run: echo first-task\n")
    bad = os.path.join(d, "bad.yaml")
    write(bad, "run: |\n  echo failing now\n  exit 3\n")
    r = sky(env, "launch", ok, "-c", "c2", "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    r = sky(env, "exec", "c2", bad)
    assert r.returncode == 100, r.stdout + r.stderr
    assert "failing now" in r.stdout
    assert "FAILED (exit code 3)" in r.stdout
    r = sky(env, "logs", "c2", "1", "--no-follow")
    assert r.returncode == 0 and "first-task" in r.stdout
    r = sky(env, "exec", "nope", ok)
    assert r.returncode != 0 and "not UP" in r.stderr
    r = sky(env, "launch")
    assert r.returncode == 2


def test_bad_yaml_reports_file_line_col(home):
    d, env = home
    bad = os.path.join(d, "bad.yaml")
    write(bad, "run: echo hi\nresources:\n  cpuz: 2\n")
    r = sky(env, "launch", bad, "-c", "c3")
    assert r.returncode == 1
    assert r.stderr.startswith(f"{bad}:3:3:"), r.stderr
    assert json.loads(sky(env, "status", "--json").stdout)["clusters"] == []


def test_bucket_outlives_instances_and_workdir_is_copied(home):
    d, env = home
    wd = os.path.join(d, "wd")
    os.makedirs(wd)
    write(os.path.join(wd, "data.txt"), "from-workdir\n")
    writer = os.path.join(d, "writer.yaml")
    write(writer, """
workdir: wd
file_mounts:
  /ckpt:
    name: cluster-test-bucket
    mode: MOUNT
run: |
  cat data.txt
  echo "written by $SKYPILOT_NODE_IPS" > /ckpt/note.txt
""")
    reader = os.path.join(d, "reader.yaml")
    write(reader, """
file_mounts:
  /ckpt:
    name: cluster-test-bucket
    mode: MOUNT
run: cat /ckpt/note.txt
""")
    r = sky(env, "launch", writer, "-c", "w", "-y", cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "from-workdir" in r.stdout
    wip = json.loads(sky(env, "status", "--json").stdout)["clusters"][0]["ip"]
    assert sky(env, "down", "w").returncode == 0
    r = sky(env, "launch", reader, "-c", "r", "-y", cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"written by {wip}" in r.stdout
    rip = json.loads(sky(env, "status", "--json").stdout)["clusters"][0]["ip"]
    assert sky(env, "down", "r").returncode == 0
    assert os.path.exists(os.path.join(env["SKY_HOME"], "buckets", "cluster-test-bucket",
                                       "note.txt"))
    del rip


def test_cluster_database_of_before_schema_versions(home):
    """A clusters.db written before schema versions opens (version 1) and its
    clusters are listed; one whose instance is gone shows TERMINATED."""
    d, env = home
    os.makedirs(env["SKY_HOME"], exist_ok=True)
    path = os.path.join(env["SKY_HOME"], "clusters.db")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE clusters (
          name TEXT PRIMARY KEY, status TEXT NOT NULL, resources TEXT, launched_at REAL,
          instance_id TEXT, cloud TEXT, region TEXT, zone TEXT, instance_type TEXT,
          spot INTEGER, ip TEXT, agent_port INTEGER, port_offset INTEGER, price REAL);
        INSERT INTO clusters VALUES ('old', 'UP', '1x Local(vCPU=2)', 1000.0, 'i-424242',
          'aws', 'us-east-1', 'us-east-1a', 'm6i.large', 0, '198.18.0.9', 8790, 0, 0.096);
    """)
    db.close()
    r = sky(env, "status", "--json")
    assert r.returncode == 0, r.stderr
    clusters = json.loads(r.stdout)["clusters"]
    assert [(c["name"], c["status"], c["zone"], c["resources"]) for c in clusters] == [
        ("old", "TERMINATED", "us-east-1a", "1x Local(vCPU=2)")], clusters
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()


def test_task_flags_command_entrypoint_exec_fit_and_async(home):
    """SkyPilot's task flags on launch and exec, a command as ENTRYPOINT, --async."""
    d, env = home
    env = dict(env, MY_SECRET="from-here")
    # A command, not a YAML: run: of a task named sky-cmd. --cpus picks a 4-vCPU type.
    r = sky(env, "launch", "-c", "c5", "--cpus", "4", "--no-use-spot", "--env", "X=1",
            "--secret", "MY_SECRET", "--secret", "OTHER=two", "-y",
            "echo", "x=$X", "secret=$MY_SECRET/$OTHER")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "x=1 secret=from-here/two" in r.stdout, r.stdout
    st = json.loads(sky(env, "status", "--json").stdout)["clusters"]
    c5 = [c for c in st if c["name"] == "c5"][0]
    assert c5["instance_type"] in ("c6i.xlarge", "m6i.xlarge", "e2-standard-4",
                                   "n2-standard-4"), c5
    assert c5["spot"] is False and "vCPU=4" in c5["resources"], c5

    # exec ignores --cpus as the reference does, and refuses resources the cluster lacks.
    r = sky(env, "exec", "c5", "--cpus", "64", "echo exec-ran")
    assert r.returncode == 0 and "Override param cpus=64 is ignored." in r.stdout, r.stdout
    assert "exec-ran" in r.stdout
    r = sky(env, "exec", "c5", "--gpus", "V100:1", "echo never")
    assert r.returncode == 1 and "do not fit cluster 'c5'" in r.stderr, r.stderr
    r = sky(env, "exec", "c5", "--use-spot", "echo never")
    assert r.returncode == 1 and "do not fit cluster 'c5'" in r.stderr, r.stderr

    # --async returns at once; the launch goes on in the background, logging to a file.
    r = sky(env, "launch", "-c", "c6", "--async", "-y", "echo", "async-done")
    assert r.returncode == 0, r.stdout + r.stderr
    log = r.stdout.split("its output goes to ", 1)[1].split("\n", 1)[0]
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        with open(log) as f:
            text = f.read()
        if "async-done" in text:
            break
        time.sleep(0.3)
    assert "async-done" in text and "Submitted task 1 to cluster 'c6'." in text, text
    st = json.loads(sky(env, "status", "--json").stdout)["clusters"]
    assert [c["status"] for c in st if c["name"] == "c6"] == ["UP"], st

    # Flags are checked as the YAML's keys, before anything is launched.
    r = sky(env, "launch", "-c", "c7", "--memory", "lots", "echo x")
    assert r.returncode == 1 and r.stderr.startswith("task overrides: resources.memory: invalid "
                                                     "value 'lots'"), r.stderr
    r = sky(env, "launch", "-c", "c7", "--infra", "aws", "--zone", "z", "echo x")
    assert r.returncode == 2 and "Cannot specify both --infra and" in r.stderr, r.stderr
    assert "c7" not in sky(env, "status").stdout
