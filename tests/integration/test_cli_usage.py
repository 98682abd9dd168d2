"""Every `sky` command answers -h/--help with its usage (exit 0, stdout) and an
unknown option with an error and its usage (exit 2, stderr), and neither
starts or reaches a daemon: afterwards the SKY_HOME they were given does not
even exist and no process names it.

The commands come from the CLI's own listings (`sky --help`, then each
group's --help), so a command is covered as soon as it is listed; a fixed
list checks that the walk found at least today's commands.
"""
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from skytest.paths import SKY, require_binaries
from skytest.procs import processes_naming

KNOWN = {"launch", "exec", "status", "logs", "down",
         "cloud status", "cloud preempt", "cloud capacity", "cloud replay", "cloud usage",
         "cloud up", "cloud down", "dashboard",
         "serve up", "serve status", "serve update", "serve down", "serve logs",
         "jobs launch", "jobs queue", "jobs logs", "jobs cancel", "jobs dashboard",
         "spot launch", "spot status", "spot queue", "spot logs", "spot cancel"}


@pytest.fixture
def home():
    require_binaries(SKY)
    parent = tempfile.mkdtemp(prefix="sky-cli-usage-")
    h = os.path.join(parent, "home")  # left to the CLI to create, if it (wrongly) would
    yield h
    left = processes_naming(h)
    shutil.rmtree(parent, ignore_errors=True)
    assert left == [], "processes of %s: %s" % (h, left)


def sky(home, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKY_")}
    env["SKY_HOME"] = home
    p = subprocess.run([SKY] + list(args), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    print("$ sky %s (rc %d)\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def listed(help_text):
    """The command names under "Commands:" in a group's --help."""
    _, _, rest = help_text.partition("\nCommands:\n")
    names = []
    for line in rest.split("\n"):
        m = re.match(r"^  (\S+)  ", line)
        if not m:
            break
        names.append(m.group(1))
    return names


def walk(home):
    """(groups, commands): every command path under `sky`, as tuples of words."""
    groups, leaves, todo = [], [], [()]
    while todo:
        path = todo.pop(0)
        p = sky(home, *path, "--help")
        assert p.returncode == 0 and p.stderr == "", path
        if re.match(r"^usage: sky%s COMMAND " % "".join(" " + w for w in path), p.stdout):
            groups.append(path)
            todo += [path + (name,) for name in listed(p.stdout)]
        else:
            leaves.append(path)
    return groups, leaves


def test_help_and_usage_errors_start_nothing(home):
    groups, leaves = walk(home)
    assert KNOWN <= {" ".join(c) for c in leaves}, leaves
    bad = []
    for c in leaves:
        prog = " ".join(("sky",) + c)
        for flag in ("--help", "-h"):
            p = sky(home, *c, flag)
            if p.returncode != 0 or p.stderr or not p.stdout.startswith(
                    "usage: %s [OPTIONS]" % prog):
                bad.append("%s %s: rc %d\n%s%s" % (prog, flag, p.returncode, p.stdout, p.stderr))
        p = sky(home, *c, "--no-such-option")
        if (p.returncode != 2 or p.stdout or
                not p.stderr.startswith("%s: unknown option '--no-such-option'\n" % prog) or
                "\nusage: %s [OPTIONS]" % prog not in p.stderr):
            bad.append("%s --no-such-option: rc %d\n%s%s" % (prog, p.returncode, p.stdout,
                                                             p.stderr))
    for g in groups:
        prog = " ".join(("sky",) + g)
        for args, says in (((), "%s: missing command\n" % prog),
                           (("nope",), "%s: unknown command 'nope'\n" % prog)):
            p = sky(home, *g, *args)
            if p.returncode != 2 or p.stdout or not p.stderr.startswith(says):
                bad.append("%s %s: rc %d\n%s%s" % (prog, " ".join(args), p.returncode, p.stdout,
                                                   p.stderr))
    assert bad == [], "\n".join(bad)
    assert not os.path.exists(home), "the CLI made %s: %s" % (home, os.listdir(home))


# Commands whose help must never be taken as an argument (sky down --help used to
# take "--help" as a cluster name and start the local cloud to find it).
@pytest.mark.parametrize("args", [["down", "--help"], ["down", "-y", "--help"],
                                  ["spot", "launch", "--help"], ["serve", "logs", "x", "-h"],
                                  ["cloud", "down", "--help"], ["logs", "--help"]])
def test_help_is_never_an_argument(home, args):
    p = sky(home, *args)
    assert p.returncode == 0 and p.stdout.startswith("usage: sky %s " % " ".join(
        a for a in args if not a.startswith("-") and a != "x")), p.stderr
    assert not os.path.exists(home)


# Numbers are parsed strictly (core_parse_num), and refused before anything runs.
@pytest.mark.parametrize("args", [
    ["logs", "c", "1x"], ["logs", "c", "0"], ["serve", "logs", "s", "--tail", "1e999"],
    ["serve", "down", "s", "--replica-id", " "], ["spot", "logs", "abc"],
    ["spot", "cancel", "3", "x"], ["cloud", "capacity", "z", "1.5"],
    ["cloud", "replay", "d", "--speed", "nan"],
])
def test_bad_numbers_exit_2(home, args):
    p = sky(home, *args)
    assert p.returncode == 2 and "invalid" in p.stderr and "usage: sky " in p.stderr, p.stderr
    assert p.stdout == ""
    assert not os.path.exists(home)


# Questions on a SKY_HOME where nothing ever ran: the answer, and no daemon (no
# controller, no local cloud), no file, not even the SKY_HOME.
@pytest.mark.parametrize("args,rc,out", [
    (["spot", "status"], 0, "Fetching managed spot job status...\nNo in-progress managed spot jobs.\n"),
    (["spot", "queue", "--json"], 0, '{\n\t"jobs":\t[]\n}\n'),
    (["jobs", "queue"], 0, "Fetching managed job statuses...\nManaged jobs\nNo in-progress managed "
                           "jobs.\n"),
    (["jobs", "queue", "-s", "-u", "-v"], 0, "Fetching managed job statuses...\nManaged jobs "
                                             "(showing in-progress jobs only)\nNo in-progress "
                                             "managed jobs.\n"),
    (["jobs", "cancel", "-a", "-y"], 0, "No job to cancel.\n"),
    (["spot", "cancel", "-n", "x", "-y"], 0, "No running job found with name 'x'.\n"),
    (["jobs", "logs", "--no-follow"], 1, ""),
    (["serve", "status"], 0, "Services\nNo existing services.\n"),
    (["serve", "down", "-a", "-y"], 0, "No service to terminate.\n"),
    (["serve", "logs", "svc", "--controller"], 1, ""),
    (["cloud", "status"], 0, "No instances.\n"),
    (["cloud", "usage"], 0, "The local cloud is not running.\n"),
    (["cloud", "down", "-y"], 0, "The local cloud is not running.\n"),
])
def test_questions_start_nothing(home, args, rc, out):
    p = sky(home, *args)
    assert p.returncode == rc and p.stdout == out, (p.stdout, p.stderr)
    assert not os.path.exists(home), os.listdir(home)


def test_spot_help_says_spot_by_default(home):
    p = sky(home, "spot", "--help")
    assert p.returncode == 0
    assert "runs on spot instances unless its YAML\nsays `use_spot: false`" in p.stdout, p.stdout
    assert re.search(r"^  jobs +Managed jobs", sky(home, "--help").stdout, re.M)


def test_launch_dryrun_prints_the_plan_and_launches_nothing(home):
    p = sky(home, "launch", "--dryrun", "--gpus", "V100:1", "--use-spot", "--infra", "aws",
            "nvidia-smi")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "Considered resources (1 node):"
    assert lines[1].split() == ["CLOUD", "INSTANCE", "vCPUs", "Mem(GB)", "ACCELERATORS",
                                "REGION/ZONE", "COST", "($)", "CHOSEN"]
    assert lines[2].split()[:5] == ["AWS", "p3.2xlarge[Spot]", "8", "61", "V100:1"], lines
    assert lines[2].endswith("\u2714") and len(lines) == 5, lines
    assert lines[3].startswith("Chosen: 1x AWS([Spot]vCPU=8, V100:1) (p3.2xlarge, spot) in "
                               "us-east-1/us-east-1a at $"), lines
    assert lines[4] == "Dryrun finished."
    p = sky(home, "launch", "--dryrun", "--gpus", "H200:3", "echo", "hi")
    assert p.returncode == 1 and "H200:3" in p.stderr, p.stderr
    p = sky(home, "launch", "--dryrun", "--num-nodes", "4", "echo", "hi")
    assert p.returncode == 1 and "multi-node tasks are not supported yet" in p.stderr, p.stderr
    assert not os.path.exists(home)
