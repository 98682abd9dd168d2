"""The YAML parser's fuzz corpus starts from every task YAML the repository has
(fuzz/make_yaml_seeds.py copies them): a YAML added to examples/ or tests/data/
without a seed fails here."""
import os

from skytest.paths import SOURCE_DIR


def test_every_repository_yaml_is_a_seed():
    corpus = os.path.join(SOURCE_DIR, "fuzz", "corpus", "task_yaml")
    seeds = set()
    for fn in os.listdir(corpus):
        with open(os.path.join(corpus, fn), "rb") as f:
            seeds.add(f.read())
    missing = []
    for top in ("examples", os.path.join("tests", "data")):
        for dirpath, _, files in os.walk(os.path.join(SOURCE_DIR, top)):
            for fn in files:
                if fn.endswith((".yaml", ".yml")):
                    with open(os.path.join(dirpath, fn), "rb") as f:
                        if f.read() not in seeds:
                            missing.append(os.path.relpath(os.path.join(dirpath, fn), SOURCE_DIR))
    assert missing == [], "run fuzz/make_yaml_seeds.py: %s" % missing
