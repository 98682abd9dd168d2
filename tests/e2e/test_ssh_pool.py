"""SSH Node Pools: `sky ssh up` / `sky ssh down` / `sky check` against real
hosts (network namespaces running Debian's sshd, see tests/skytest/sshhosts.py).

Issue #12: one line per host (ok, unreachable, auth failed, wrong arch, and
hosts without python3 or bash); idempotent up and down; the agent answers
only over TLS with a certificate from our CA for its address, and only with
the pool's token; bad pool files name file:line:col; nothing is left on the
hosts after down, and nothing of the test on the machine afterwards.
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import http.client

import pytest

from skytest.paths import SKY, SLOW
from skytest.procs import processes_naming
from skytest.sshhosts import SshHosts, keygen

pytestmark = pytest.mark.root("network namespaces and sshd for the pool's hosts")

LINE = re.compile(r"^  (\S+): (.*?)(?: \((.*)\))?$")


class Home:
    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="sky-e2e-ssh-")
        self.env = {k: v for k, v in os.environ.items() if k != "SKY_HOME"}
        self.env["SKY_HOME"] = self.home

    def write_pools(self, text):
        with open(os.path.join(self.home, "ssh_node_pools.yaml"), "w") as f:
            f.write(text)

    def sky(self, *args, rc=0, timeout=60):
        t = time.monotonic()
        p = subprocess.run([SKY] + list(args), env=self.env, capture_output=True, text=True,
                           timeout=timeout * SLOW, stdin=subprocess.DEVNULL)
        p.seconds = time.monotonic() - t
        print("$ sky %s  (rc %d, %.2fs)\n%s%s" % (" ".join(args), p.returncode, p.seconds,
                                                 p.stdout, p.stderr))
        if rc is not None:
            assert p.returncode == rc, p.stdout + p.stderr
        return p

    def record(self, pool):
        with open(os.path.join(self.home, "ssh", "pools", pool, "hosts.json")) as f:
            return json.load(f)["hosts"]

    def token(self, pool, addr=None):
        """The pool's token, or the one derived from it for host <addr>."""
        with open(os.path.join(self.home, "ssh", "pools", pool, "token")) as f:
            t = f.read().strip()
        if addr is None:
            return t
        return hmac.new(t.encode(), ("sky-agent:" + addr).encode(), hashlib.sha256).hexdigest()

    def close(self):
        left = processes_naming(self.home)
        shutil.rmtree(self.home, ignore_errors=True)
        assert not left, "processes of the test's SKY_HOME left: %s" % left


def host_lines(out):
    """{host: (state, detail)} of the per-host lines."""
    got = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            got[m.group(1)] = (m.group(2), m.group(3) or "")
    return got


def agents_in(hosts):
    """{host index: [argv of sky-agent processes in its namespace]}."""
    out = {}
    for h in hosts.hosts:
        found = []
        for pid in h.pids():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"sky-agent"):
                found.append([a.decode() for a in argv if a])
        out[h.index] = found
    return out


def agent_get(home, host, path, token, ca=True):
    """GET over TLS to a recorded host's agent, trusting the home's CA."""
    ctx = ssl.create_default_context(cafile=os.path.join(home.home, "ssh", "ca.crt"))
    c = http.client.HTTPSConnection(host["addr"], host["agent_port"], timeout=5, context=ctx)
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.fixture
def home():
    h = Home()
    yield h
    h.close()


def test_up_is_idempotent_and_down_removes_everything(home):
    with SshHosts(3) as hosts:
        home.write_pools(hosts.pool_yaml("lab"))
        p = home.sky("ssh", "up")
        lines = host_lines(p.stdout)
        assert sorted(lines) == sorted(h.ip for h in hosts.hosts), p.stdout
        for h in hosts.hosts:
            state, detail = lines[h.ip]
            assert state == "ok", p.stdout
            assert re.match(r"x86_64, \d+ CPUs, [\d.]+ GB memory, no GPU; agent started on %s:\d+$"
                            % re.escape(h.ip), detail), detail
        assert "3 of 3 hosts ready. Use it with `infra: ssh/lab`" in p.stdout
        rec = home.record("lab")
        assert [r["host"] for r in rec] == [h.ip for h in hosts.hosts]
        assert all(r["state"] == "ok" and r["addr"] == r["host"] and r["cpus"] >= 1
                   for r in rec), rec
        first = agents_in(hosts)
        assert all(len(a) == 1 for a in first.values()), first
        # Bound to the host's address, with TLS and the pool's token.
        for i, argv in first.items():
            args = " ".join(argv[0])
            assert "--listen %s:" % hosts.host(i).ip in args, args  # port 0 the first time
            assert re.search(r"--token-file \S+/token --tls-cert \S+/agent.crt --tls-key "
                             r"\S+/agent.key", args), args

        # The host's own token is needed: not the pool's (which never leaves SKY_HOME),
        # not another host's. Plain HTTP gets nowhere; another CA is not trusted.
        r0 = rec[0]
        assert agent_get(home, r0, "/health", home.token("lab", r0["addr"]))[0] == 200
        assert agent_get(home, r0, "/health", None)[0] == 401
        assert agent_get(home, r0, "/health", home.token("lab"))[0] == 401
        assert agent_get(home, r0, "/health", home.token("lab", rec[1]["addr"]))[0] == 401
        c = http.client.HTTPConnection(r0["addr"], r0["agent_port"], timeout=3)
        with pytest.raises((http.client.HTTPException, OSError)):
            c.request("GET", "/health")
            c.getresponse()
        c.close()
        with pytest.raises(ssl.SSLError):
            ctx = ssl.create_default_context()  # the system's CAs only
            with socket.create_connection((r0["addr"], r0["agent_port"]), timeout=3) as s:
                ctx.wrap_socket(s, server_hostname=r0["addr"])
        # What sits on the host: the agent, its token and key are the user's only.
        d = os.path.join(hosts.host(1).home, ".sky-agent")
        (inst,) = os.listdir(d)
        assert inst.endswith("-lab")
        for f, mode in (("token", 0o600), ("agent.key", 0o600), ("sky-agent", 0o755)):
            assert os.stat(os.path.join(d, inst, f)).st_mode & 0o777 == mode, f
        with open(os.path.join(d, inst, "token")) as f:
            assert f.read() == home.token("lab", r0["addr"])

        # Up again: nothing restarted, same ports, same line per host.
        p = home.sky("ssh", "up", "--infra", "lab")
        lines = host_lines(p.stdout)
        for h in hosts.hosts:
            assert lines[h.ip][0] == "ok"
            assert "agent already running on %s:" % h.ip in lines[h.ip][1], p.stdout
        assert agents_in(hosts) == first
        strip = lambda hs: [{k: v for k, v in h.items() if k != "reason"} for h in hs]
        assert strip(home.record("lab")) == strip(rec)

        p = home.sky("check")
        assert re.search(r"^    ssh/lab: enabled \(3 of 3 hosts ready\)$", p.stdout, re.M), p.stdout
        assert re.search(r"^Enabled infra: local, ssh/lab$", p.stdout, re.M), p.stdout
        p = home.sky("check", "ssh/lab")
        assert "local:" not in p.stdout and "ssh/lab: enabled" in p.stdout

        # An agent that died is started again by the next up; the others are left alone.
        os.kill(int(open(os.path.join(d, inst, "agent.pid")).read().split()[0]), 9)
        p = home.sky("ssh", "up")
        lines = host_lines(p.stdout)
        assert "agent started on" in lines[hosts.host(1).ip][1], p.stdout
        assert "already running" in lines[hosts.host(2).ip][1], p.stdout

        p = home.sky("ssh", "down")
        assert host_lines(p.stdout) == {h.ip: ("removed", "") for h in hosts.hosts}, p.stdout
        assert agents_in(hosts) == {1: [], 2: [], 3: []}
        for h in hosts.hosts:
            assert not os.path.exists(os.path.join(h.home, ".sky-agent")), h.index
        assert not os.path.exists(os.path.join(home.home, "ssh", "pools", "lab"))
        assert os.listdir(os.path.join(home.home, "ssh", "agents")) == []
        p = home.sky("ssh", "down")
        assert host_lines(p.stdout) == {h.ip: ("nothing installed", "") for h in hosts.hosts}
        p = home.sky("check")
        assert "ssh/lab: disabled: not set up; run `sky ssh up --infra lab`" in p.stdout
        assert re.search(r"^Enabled infra: local$", p.stdout, re.M)
    assert hosts.leftovers() == []


def test_each_bad_host_gets_its_own_line(home):
    opts = {2: {"arch": "aarch64"}, 3: {"hide": ["python3"]},
            4: {"shell": "/bin/sh", "hide": ["bash"]}}
    with SshHosts(4, opts) as hosts:
        dead = "198.19.%d.99" % hosts.subnet  # on the bridge, nobody home
        home.write_pools(hosts.pool_yaml("mixed", extra_hosts=[dead]))
        p = home.sky("ssh", "up", rc=1)
        lines = host_lines(p.stdout)
        ip = lambda i: hosts.host(i).ip
        assert lines[ip(1)][0] == "ok", p.stdout
        assert lines[ip(2)] == ("wrong arch", "the host is aarch64; this sky-agent is built for "
                                "x86_64"), p.stdout
        assert lines[ip(3)] == ("no python3", "python3 is not installed (tasks and services' "
                                "programs expect it)"), p.stdout
        assert lines[ip(4)] == ("no bash", "bash is not installed (sky-agent runs tasks with "
                                "it)"), p.stdout
        assert lines[dead][0] == "unreachable", p.stdout
        assert "1 of 5 hosts ready" in p.stdout
        assert p.seconds < 15 * SLOW  # ConnectTimeout, not a hang
        # Nothing was installed where the host was refused.
        for i in (2, 3, 4):
            assert not os.path.exists(os.path.join(hosts.host(i).home, ".sky-agent")), i
        p = home.sky("check", "ssh")
        assert "ssh/mixed: enabled (1 of 5 hosts ready; %s: wrong arch at `sky ssh up`" % ip(2) \
            in p.stdout, p.stdout
        home.sky("ssh", "down", rc=1)  # the unreachable host cannot be cleaned
        assert agents_in(hosts)[1] == []


def test_wrong_key_and_changed_host_key(home):
    with SshHosts(2) as hosts:
        other = os.path.join(home.home, "other_key")
        keygen(other)
        home.write_pools(hosts.pool_yaml("k", identity=other))
        p = home.sky("ssh", "up", rc=1)
        for h in hosts.hosts:
            state, detail = host_lines(p.stdout)[h.ip]
            assert state == "auth failed" and "Permission denied" in detail, p.stdout
        home.write_pools(hosts.pool_yaml("k", identity=os.path.join(home.home, "missing")))
        p = home.sky("ssh", "up", rc=1)
        state, detail = host_lines(p.stdout)[hosts.host(1).ip]
        assert state == "auth failed" and "missing: No such file or directory (line 2)" in detail

        home.write_pools(hosts.pool_yaml("k"))
        home.sky("ssh", "up")
        # Host 2 is reinstalled: a new host key. ssh refuses it, and so do we.
        h2 = hosts.host(2)
        os.killpg(h2.sshd.pid, 9)
        h2.sshd.wait()
        for f in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"):
            os.unlink(os.path.join(h2.dir, f))
        keygen(os.path.join(h2.dir, "ssh_host_ed25519_key"))
        hosts._start_sshd(h2)
        hosts.wait_ssh(h2)
        p = home.sky("ssh", "up", rc=1)
        state, detail = host_lines(p.stdout)[h2.ip]
        assert state == "host key changed" and "known_hosts" in detail, p.stdout
        assert host_lines(p.stdout)[hosts.host(1).ip][0] == "ok"
        home.sky("ssh", "down", rc=1)


@pytest.mark.parametrize("text,err", [
    ("lab:\n  password: x\n  hosts: [1.2.3.4]\n",
     ":2:3: password: not supported, use a key"),
    ("lab:\n  hosts:\n    - ip: 1.2.3.4\n      pasword: x\n",
     ":4:7: pool 'lab': host: unknown key 'pasword'"),
    ("lab:\n  hosts: []\n", ":2:3: pool 'lab': hosts must be a non-empty list"),
    ("lab: [\n", ":2:1: YAML syntax error"),
])
def test_bad_pool_file(home, text, err):
    home.write_pools(text)
    path = os.path.join(home.home, "ssh_node_pools.yaml")
    for cmd in (("ssh", "up"), ("ssh", "down")):
        p = home.sky(*cmd, rc=1)
        assert p.stderr.startswith("sky: " + path + err), p.stderr
    p = home.sky("check", rc=1)
    assert "ssh: disabled: " + path + err in p.stdout
    assert not os.path.exists(os.path.join(home.home, "ssh", "pools"))


def test_cli_errors(home):
    p = home.sky("ssh", "up", rc=1)
    assert "SSH Node Pools file not found: %s/ssh_node_pools.yaml" % home.home in p.stderr
    home.write_pools("lab:\n  hosts: [1.2.3.4]\n")
    p = home.sky("ssh", "up", "--infra", "nope", rc=1)
    assert "no SSH Node Pool 'nope' in" in p.stderr
    home.sky("ssh", "up", "--infra", "a/b", rc=2)
    home.sky("ssh", "sideways", rc=2)
    home.sky("ssh", "up", "extra", rc=2)
    home.sky("check", "aws", rc=2)
    assert "--infra POOL" in home.sky("ssh", "up", "--help").stdout
    p = home.sky("ssh", "down", "--infra", "nope", rc=1)
    assert "no SSH Node Pool 'nope'" in p.stderr
