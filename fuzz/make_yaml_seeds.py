#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_task_yaml and fuzz_dotenv (run from anywhere;
idempotent): every task YAML under examples/ and tests/data/ (test_fuzz_seeds.py
checks that none is missing), YAMLs with the overrides that the CLI sends (after a
NUL), and dotenv files of every form core/dotenv.h describes."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def put(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)


def repo_yamls():
    out = {}
    for top in ("examples", os.path.join("tests", "data")):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for fn in files:
                if fn.endswith((".yaml", ".yml")):
                    path = os.path.join(dirpath, fn)
                    rel = os.path.relpath(path, ROOT).replace(os.sep, "_")
                    with open(path, "rb") as f:
                        out[rel] = f.read()
    return out


SUBST = b"""envs:
  SIZE: 7
  MODEL:
secrets:
  KEY: k3y
workdir: /srv/$MODEL
file_mounts:
  /models/llama-${SIZE}b: s3://weights/llama-${SIZE}b
  /ckpt:
    name: ${BUCKET}
    mode: MOUNT_CACHED
    mount_options: ro
service:
  readiness_probe:
    path: /v1/$MODEL
    headers:
      X-$MODEL: Bearer ${KEY}
    post_data:
      model: $MODEL
      n: 1
  replicas: 1
resources:
  ports: 8080
run: echo $MODEL
"""

IGNORED = b"""name: x
event_callback: echo done
num_nodes: 1
resources:
  cpus: 2+
  image_id: docker:ubuntu:22.04
  disk_size: 256GB
  disk_tier: best
  network_tier: standard
  labels: {team: ml}
  autostop: {idle_minutes: 10, down: true}
  priority: -5
  any_of:
    - {infra: gcp/us-east1, labels: {a: b}}
    - {cloud: aws, job_recovery: {strategy: FAILOVER, recover_on_exit_codes: [3, 4]}}
config: {jobs: {controller: {resources: {cpus: 2}}}}
"""

OVERRIDES = b"""resources:
  cpus: 2
  use_spot: true
  any_of:
    - cloud: gcp
    - cloud: aws
run: echo hi
\0{"secrets": {"K": "v"}, "workdir": "/tmp", "num_nodes": 1, "resources": {"cpus": "4+",
 "memory": null, "accelerators": "V100:1", "infra": "aws/*/us-east-1a", "use_spot": false,
 "ports": ["8080", "9000-9001"], "job_recovery": "FAILOVER", "image_id": "x", "disk_tier": "low"}}
"""

put("task_yaml", dict(repo_yamls(), **{
    "subst": SUBST,
    "ignored": IGNORED,
    "overrides": OVERRIDES,
    "overrides_bad": b"run: x\n\0{\"resources\": {\"any_of\": [{\"cloud\": 1}]}, \"num_nodes\": 2}",
    "command": b"name: sky-cmd\nrun: \"echo \\\"hi\\\" $HOME\"\n",
    "pipeline": b"name: a\n---\nname: b\n",
}))

put("dotenv", {
    "plain": b"A=1\nexport B=two words  # comment\n\n# whole-line comment\nC=\n",
    "quoted": b"S='single\nline two'\nD=\"esc \\n \\t \\\\ \\\" \\x\"\nE=\"#not a comment\"\n",
    "crlf": b"A=1\r\nB = 2 \r\n",
    "bad_unclosed": b"A=1\nB='open\n",
    "bad_key": b"1A=x\n",
    "bad_trailing": b"A=\"x\" y\n",
})
