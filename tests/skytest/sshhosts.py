"""Real SSH hosts for the SSH Node Pool tests and bench/ssh: network namespaces on a bridge
of the test's own, each running Debian's OpenSSH sshd (a generated host key,
the test's authorized key) on the namespace's address, with a home directory
of its own (a private mount namespace binds a per-host directory over the
user's home), so that what `sky ssh up` installs on one host is not seen on
another, as on separate machines.

Subnets 198.19.N.0/24 (N in 1..250) are claimed machine-wide under a flock
in /run/sky-sshtest/, by pid: a claim whose owner died is taken over and its
leftovers (namespaces, bridge, processes) removed first. Everything is torn
down by close(), by an atexit hook, or by the next claimer of the subnet.

Namespace and veth names carry a random tag of the run: a deleted namespace
lives on (with its veth) while another process's private mount namespace
still holds a copy of its /run/netns bind mount (any sky-agent running as
root makes one), so names are never reused.

    with SshHosts(3) as hosts:
        hosts.pool_yaml("p")          # an ssh_node_pools.yaml text
        hosts.kill(1)                 # every process of host 1 gone, link down
"""
import atexit
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .procs import netns_list, netns_pids, pid_alive

CLAIM_DIR = "/run/sky-sshtest"
SSHD = "/usr/sbin/sshd"
IP = shutil.which("ip") or "/usr/sbin/ip"


def _run(*args, check=True, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s%s" % (" ".join(args), p.returncode,
                                                        p.stdout, p.stderr))
    return p


def _names(n, tag):
    """Bridge, and per host index i the namespace and host-side veth, of subnet n."""
    return ("skss%d" % n, lambda i: "skss%d-%s-h%d" % (n, tag, i),
            lambda i: "ks%d%sh%d" % (n, tag, i))


def _remove_subnet(n, tag):
    """Removes whatever subnet n's harness (of run <tag>) left: processes,
    namespaces, veths, bridge."""
    bridge, _, _ = _names(n, tag)
    prefix = "skss%d-%s-" % (n, tag)
    for ns in netns_list():
        if not ns.startswith(prefix):
            continue
        for pid in netns_pids(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _run(IP, "netns", "del", ns, check=False)
    for link in os.listdir("/sys/class/net"):
        if link.startswith("ks%d%sh" % (n, tag)):
            _run(IP, "link", "del", link, check=False)
    if os.path.exists("/sys/class/net/" + bridge):
        _run(IP, "link", "del", bridge, check=False)


def _claim_subnet(tag):
    """A subnet index of ours (a file naming our pid and tag), taking over dead claims."""
    os.makedirs(CLAIM_DIR, exist_ok=True)
    with open(os.path.join(CLAIM_DIR, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for n in range(1, 251):
            path = os.path.join(CLAIM_DIR, "net-%d" % n)
            try:
                with open(path) as f:
                    words = f.read().split()
                owner, old_tag = int(words[0]), words[1]
            except (OSError, ValueError, IndexError):
                owner, old_tag = 0, None
            if owner and pid_alive(owner):
                continue
            if old_tag:
                _remove_subnet(n, old_tag)
            elif "198.19.%d.0/24" % n in _run(IP, "-4", "route").stdout:
                continue  # someone else's network, not a claim of ours
            with open(path, "w") as f:
                f.write("%d %s\n" % (os.getpid(), tag))
            return n
    raise RuntimeError("no free 198.19.N.0/24 test subnet")


def _release_subnet(n):
    with open(os.path.join(CLAIM_DIR, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            os.unlink(os.path.join(CLAIM_DIR, "net-%d" % n))
        except FileNotFoundError:
            pass


def keygen(path, comment="sky-test"):
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)


# Runs in the host's namespace, in a mount namespace of its own: the home and
# the per-host tweaks (a fake uname, hidden programs, another login shell)
# are bind mounts that only this host's processes see.
HOST_INIT = r"""
set -e
mount --make-rprivate /
mount --bind "$HOST_DIR/home" "$USER_HOME"
if [ -n "$FAKE_ARCH" ]; then
  cp /usr/bin/uname "$HOST_DIR/uname.real"
  printf '#!/bin/sh\n[ "$1" = -m ] && { echo %s; exit 0; }\nexec %s "$@"\n' \
    "$FAKE_ARCH" "$HOST_DIR/uname.real" > "$HOST_DIR/uname"
  chmod 755 "$HOST_DIR/uname"
  mount --bind "$HOST_DIR/uname" /usr/bin/uname
fi
if [ -n "$LOGIN_SHELL" ]; then
  sed "s#^\($(id -un):[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:\).*#\1$LOGIN_SHELL#" /etc/passwd \
    > "$HOST_DIR/passwd"
  mount --bind "$HOST_DIR/passwd" /etc/passwd
fi
for prog in $HIDE; do
  for p in /usr/bin/$prog /usr/local/bin/$prog; do
    [ -e "$p" ] && mount --bind /dev/null "$p"
  done
done
exec "$SSHD" -D -e -f "$HOST_DIR/sshd_config"
"""


class SshHost:
    def __init__(self, index, ip, ns, veth, dir_):
        self.index, self.ip, self.ns, self.veth, self.dir = index, ip, ns, veth, dir_
        self.sshd = None
        self.home = os.path.join(dir_, "home")

    def pids(self):
        return netns_pids(self.ns)


class SshHosts:
    """<n> hosts; host options per index (1-based): arch (what `uname -m`
    says), hide (programs made unrunnable, e.g. ["python3"]), shell (the
    user's login shell, e.g. "/bin/sh" with "bash" hidden)."""

    def __init__(self, count=3, options=None):
        self.count = count
        self.options = options or {}
        self.subnet = None
        self.hosts = []
        self.dir = None
        self._closed = False

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def gateway(self):
        return "198.19.%d.1" % self.subnet

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="sky-sshhosts-")
        os.chmod(self.dir, 0o755)
        atexit.register(self.close)
        self.tag = os.urandom(2).hex()
        self.subnet = _claim_subnet(self.tag)
        bridge, ns_of, veth_of = _names(self.subnet, self.tag)
        _run(IP, "link", "add", bridge, "type", "bridge")
        _run(IP, "addr", "add", "%s/24" % self.gateway, "dev", bridge)
        _run(IP, "link", "set", bridge, "up")
        self.key = os.path.join(self.dir, "id_ed25519")
        keygen(self.key)
        shutil.copy(self.key + ".pub", os.path.join(self.dir, "authorized_keys"))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        for i in range(1, self.count + 1):
            ip = "198.19.%d.%d" % (self.subnet, 10 + i)
            h = SshHost(i, ip, ns_of(i), veth_of(i), os.path.join(self.dir, "host%d" % i))
            os.makedirs(h.home, mode=0o700)
            keygen(os.path.join(h.dir, "ssh_host_ed25519_key"), "host%d" % i)
            self.hosts.append(h)
            _run(IP, "netns", "add", h.ns)
            _run(IP, "link", "add", h.veth, "type", "veth", "peer", "name", "eth0",
                 "netns", h.ns)
            _run(IP, "link", "set", h.veth, "master", bridge, "up")
            _run(IP, "-n", h.ns, "addr", "add", "%s/24" % ip, "dev", "eth0")
            _run(IP, "-n", h.ns, "link", "set", "eth0", "up")
            _run(IP, "-n", h.ns, "link", "set", "lo", "up")
            _run(IP, "-n", h.ns, "route", "add", "default", "via", self.gateway)
            self._start_sshd(h)
        for h in self.hosts:
            self.wait_ssh(h)
        return self

    def _start_sshd(self, h):
        opts = self.options.get(h.index, {})
        with open(os.path.join(h.dir, "sshd_config"), "w") as f:
            f.write("ListenAddress %s:22\n"
                    "HostKey %s/ssh_host_ed25519_key\n"
                    "AuthorizedKeysFile %s/authorized_keys\n"
                    "PidFile none\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\n"
                    "StrictModes no\n"
                    "UsePAM no\n"
                    "UseDNS no\n"
                    "MaxStartups 100\n"
                    "MaxSessions 100\n"
                    "LogLevel ERROR\n" % (h.ip, h.dir, self.dir))
        env = dict(os.environ, HOST_DIR=h.dir, USER_HOME=os.path.expanduser("~"), SSHD=SSHD,
                   FAKE_ARCH=opts.get("arch", ""), HIDE=" ".join(opts.get("hide", [])),
                   LOGIN_SHELL=opts.get("shell", ""))
        log = open(os.path.join(h.dir, "sshd.log"), "ab")
        h.sshd = subprocess.Popen([IP, "netns", "exec", h.ns, "unshare", "--mount", "sh", "-c",
                                   HOST_INIT], env=env, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=log, start_new_session=True)
        log.close()

    def wait_ssh(self, h, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if h.sshd.poll() is not None:
                raise RuntimeError("sshd of host %d exited (rc %s): %s" % (
                    h.index, h.sshd.returncode, self.sshd_log(h)))
            try:
                with socket.create_connection((h.ip, 22), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(4) == b"SSH-":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("sshd of host %d did not answer on %s:22" % (h.index, h.ip))

    def sshd_log(self, h):
        try:
            with open(os.path.join(h.dir, "sshd.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError as e:
            return str(e)

    def host(self, i):
        return self.hosts[i - 1]

    def pool_yaml(self, name, indexes=None, identity=None, extra_hosts=(), user=None):
        """A pool of the given hosts (all by default) for ssh_node_pools.yaml."""
        idx = indexes or range(1, self.count + 1)
        lines = ["%s:" % name, "  identity_file: %s" % (identity or self.key)]
        if user:
            lines.append("  user: %s" % user)
        lines.append("  hosts:")
        lines += ["    - %s" % self.host(i).ip for i in idx]
        lines += ["    - %s" % h for h in extra_hosts]
        return "\n".join(lines) + "\n"

    def kill(self, i):
        """Host i dies: its link goes down and every process in it is killed."""
        h = self.host(i)
        _run(IP, "link", "set", h.veth, "down", check=False)
        for pid in h.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if h.sshd:
            h.sshd.wait()

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self.subnet is not None:
            for h in self.hosts:
                if h.sshd and h.sshd.poll() is None:
                    try:
                        os.killpg(h.sshd.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if h.sshd:
                    h.sshd.wait()
            _remove_subnet(self.subnet, self.tag)
            _release_subnet(self.subnet)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self):
        """What close() should have removed and did not (for the tests' checks)."""
        out = []
        if self.subnet is None:
            return out
        bridge, ns_of, veth_of = _names(self.subnet, self.tag)
        if os.path.exists("/sys/class/net/" + bridge):
            out.append("bridge " + bridge)
        for h in self.hosts:
            if os.path.exists("/run/netns/" + h.ns):
                out.append("netns %s (pids %s)" % (h.ns, h.pids()))
            if os.path.exists("/sys/class/net/" + h.veth):
                out.append("veth " + h.veth)
        if os.path.exists(os.path.join(CLAIM_DIR, "net-%d" % self.subnet)):
            out.append("claim net-%d" % self.subnet)
        return out
