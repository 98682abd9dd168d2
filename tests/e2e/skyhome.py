"""One SKY_HOME seen from outside: its processes, its daemons' APIs, what it
leaves behind, and the CLI's tables. Shared by the e2e helpers (serve_util,
spot_util) and the bench scripts that drive a whole stack (bench/chaos,
bench/policy/live_replay.py); standard library only."""
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time

BUILD_DIR = os.environ.get("SKY_BUILD_DIR", "/work/main/build")
SOURCE_DIR = os.environ.get(
    "SKY_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SKY = os.path.join(BUILD_DIR, "controller", "sky")
SKY_CONTROLLER = os.path.join(BUILD_DIR, "controller", "sky-controller")
SKY_LOCALCLOUD = os.path.join(BUILD_DIR, "localcloud", "sky-localcloud")
SKY_LB = os.path.join(BUILD_DIR, "lb", "sky-lb")
SKY_AGENT = os.path.join(BUILD_DIR, "replica_agent", "sky-agent")


def processes_naming(path):
    """(pid, argv) of every live process whose command line or environment
    names <path> (a SKY_HOME: controllers, the local cloud, agents, sky-lb and
    the user programs they start all carry it). Zombies are skipped: PID 1
    here does not reap them, and they hold nothing."""
    found = []
    needle = path.encode()
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
            try:
                with open("/proc/%s/environ" % d, "rb") as f:
                    env = f.read()
            except OSError:
                env = b""
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if needle in cmd or needle in env:
            found.append((int(d), cmd.replace(b"\0", b" ").decode(errors="replace")))
    return found


def sanitized(build_dir=BUILD_DIR):
    """True under ASan/UBSan: env SKY_SANITIZED=1 or SANITIZE set in the CMake cache."""
    if os.environ.get("SKY_SANITIZED") == "1":
        return True
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("SANITIZE:"):
                    return bool(line.split("=", 1)[1].strip())
    except OSError:
        pass
    return False


# Waits scale with this under the sanitizers.
SLOW = 2.0 if sanitized(BUILD_DIR) else 1.0


def now():
    return time.monotonic()


def parse_table(lines, header):
    """Checks one borderless table (header row first, columns left-aligned,
    two blanks between columns, each as wide as its widest cell, no trailing
    blanks) and returns its rows as dicts. Header names may contain a blank."""
    assert lines, "empty table, expected header %s" % header
    head = lines[0]
    starts, pos = [], 0
    for name in header:
        i = head.find(name, pos)
        assert i >= 0, "header %r lacks %s" % (head, name)
        assert head[pos:i].strip() == "", "unexpected text before %s in %r" % (name, head)
        starts.append(i)
        pos = i + len(name)
    assert head[pos:] == "", "trailing text in header %r" % head
    for a, b, name in zip(starts, starts[1:], header):
        assert head[a:b] == name + " " * (b - a - len(name)), "header %r" % head
        assert b - a >= len(name) + 2, "two blanks between columns: %r" % head
    rows = []
    for line in lines[1:]:
        assert line == line.rstrip(), "trailing blanks in %r" % line
        cells = []
        for i, a in enumerate(starts):
            b = starts[i + 1] if i + 1 < len(starts) else len(line)
            assert a < len(line) and line[a] != " ", "column %s not aligned in %r" % (
                header[i], line)
            if i > 0:
                assert line[a - 2:a] == "  ", "column %s not aligned in %r" % (header[i], line)
            cell = line[a:b]
            if i + 1 < len(starts):
                assert len(cell.rstrip()) <= b - a - 2, "cell %r overflows column %s" % (
                    cell, header[i])
            cells.append(cell.strip())
        rows.append(dict(zip(header, cells)))
    # Each column is exactly as wide as its widest cell (header included).
    for i in range(len(starts) - 1):
        widest = max([len(header[i])] + [len(r[header[i]]) for r in rows])
        assert starts[i + 1] - starts[i] == widest + 2, "column %s width %d, widest %d" % (
            header[i], starts[i + 1] - starts[i] - 2, widest)
    return rows


def pid_alive(pid):
    """True while <pid> runs; a zombie (PID 1 here does not reap) is not alive."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class HomeMixin:
    """For a class with a .home attribute (the SKY_HOME path). The e2e stacks
    also call _init_home and get the `sky` runner, waits and log tails; they
    define fail(msg), which reports their state and fails the test."""

    sky_timeout = 60  # seconds (× SLOW) for one `sky` command
    wait_interval = 0.2
    deadline = float("inf")  # monotonic end of the test's wait budget

    def _init_home(self, name, own_env_prefix, fast_env, extra_env):
        """A fresh SKY_HOME and an environment of <fast_env> + <extra_env>
        without the caller's own <own_env_prefix>* settings."""
        self.home = tempfile.mkdtemp(prefix="sky-e2e-%s-" % name)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(own_env_prefix) and k != "SKY_HOME"}
        self.env.update(fast_env)
        self.env.update(extra_env or {})
        self.env["SKY_HOME"] = self.home
        self.history = []
        self.closed = False

    def sky(self, *args, check=True, timeout=None, expect_rc=None, quiet=False):
        """Runs the CLI and records it; <quiet> prints nothing when it succeeds."""
        timeout = timeout or self.sky_timeout
        t = now()
        try:
            p = subprocess.run([SKY] + list(args), cwd=SOURCE_DIR, env=self.env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout * SLOW)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("sky %s timed out after %ss; output so far:\n%s%s" % (
                " ".join(args), timeout, e.stdout or "", e.stderr or ""))
        entry = "$ sky %s  (rc %d, %.1fs)\n%s%s" % (" ".join(args), p.returncode, now() - t,
                                                    p.stdout, p.stderr)
        if not quiet or p.returncode != 0:
            self.history.append(entry)
            print(entry)
        if expect_rc is not None:
            assert p.returncode == expect_rc, entry
        elif check:
            assert p.returncode == 0, entry
        return p

    def wait_for(self, fn, timeout, what, interval=None):
        """Calls fn() until it returns a truthy value; self.fail()s after
        <timeout> seconds (× SLOW) or at the test's budget."""
        deadline = min(now() + timeout * SLOW, self.deadline)
        if deadline <= now():
            self.fail("test time budget exhausted before waiting for %s" % what)
        last_exc = None
        while now() < deadline:
            try:
                v = fn()
                if v:
                    return v
                last_exc = None
            except AssertionError as e:
                last_exc = e
            time.sleep(interval or self.wait_interval)
        self.fail("timed out after %ss waiting for %s%s" % (
            timeout, what, "\nlast error: %s" % last_exc if last_exc else ""))

    def tail(self, rel, n=60):
        try:
            with open(os.path.join(self.home, rel), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError as e:
            return "(%s)" % e

    def _token(self):
        with open(os.path.join(self.home, "token")) as f:
            return f.read().strip()

    def _api(self, port_file, path, method="GET", body=None, timeout=5):
        """JSON of a 2xx answer of a daemon of this home (its port in <port_file>);
        raises OSError (also for another status), ValueError or HTTPException."""
        with open(os.path.join(self.home, port_file)) as f:
            port = int(f.read().strip())
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request(method, path, body=None if body is None else json.dumps(body),
                      headers={"Authorization": "Bearer " + self._token(),
                               "Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if not 200 <= r.status < 300:
                raise OSError("%s %s: HTTP %d %s" % (method, path, r.status, data[:200]))
            return json.loads(data or b"null")
        finally:
            c.close()

    def daemon_pid(self, port_file, health_path):
        """pid a daemon of this home reports on its health check, or None."""
        try:
            return self._api(port_file, health_path).get("pid")
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def cloud_instances(self):
        """The local cloud's instances (every state), or [] when it is down."""
        try:
            doc = self._api("localcloud/port", "/v1/instances")
        except (OSError, ValueError, http.client.HTTPException):
            return []
        return doc.get("instances", doc) if isinstance(doc, dict) else doc

    def localcloud_tag(self):
        """The tag in this home's namespace and veth names, or None."""
        try:
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(
                self.home, "localcloud", "state.db"), uri=True, timeout=5)
            try:
                row = db.execute("SELECT value FROM meta WHERE key='tag'").fetchone()
            finally:
                db.close()
            return row[0] if row else None
        except sqlite3.Error:
            return None

    def home_processes(self):
        return processes_naming(self.home)

    def leaks(self, tag):
        """Namespaces and veths of local-cloud <tag>, and processes of this home."""
        out = []
        if tag:
            try:
                out += ["netns " + n for n in os.listdir("/run/netns")
                        if n.startswith("sky-%s-" % tag)]
            except OSError:
                pass
            try:
                out += ["veth " + n for n in os.listdir("/sys/class/net")
                        if n.startswith("sv%s" % tag)]
            except OSError:
                pass
        out += ["process %d: %s" % p for p in self.home_processes()]
        return out

    def _kill_leaks(self, leaks):
        """Best effort, so that one failed run does not disturb the next ones."""
        for pid, _ in self.home_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for item in leaks:
            kind, _, name = item.partition(" ")
            if kind == "netns":
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
            elif kind == "veth":
                subprocess.run(["ip", "link", "del", name], capture_output=True)

    def stop_pid(self, pid, timeout=10):
        """SIGTERM, then SIGKILL after <timeout> s; returns once it is gone."""
        if not pid:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def serve_down_all(self, sky, timeout=60):
        """`sky serve down -a -y` and wait until no service is listed. <sky>(*args,
        timeout=S) runs the CLI and returns its CompletedProcess. Returns errors."""
        try:
            p = sky("serve", "down", "-a", "-y", timeout=60)
            if p.returncode != 0:
                return ["serve down -a -y failed (rc %d)" % p.returncode]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                p = sky("serve", "status", "--json", timeout=30)
                if p.returncode == 0 and json.loads(p.stdout)["services"] == []:
                    return []
                time.sleep(1)
            return ["services still listed %d s after serve down -a" % timeout]
        except Exception as e:  # a CLI timeout or bad output: report it, go on cleaning
            return ["serve down: %s" % e]

    def cloud_down(self, sky, tag, errors, timeout=60, leak_timeout=15):
        """`sky cloud down` through <sky> (as for serve_down_all), then
        wait_no_leaks(tag). A failed call and what is left are appended to
        <errors>; returns what was left."""
        try:
            sky("cloud", "down", timeout=timeout)
        except Exception as e:  # a CLI timeout: report it, go on checking
            errors.append("cloud down: %s" % e)
        leaks = self.wait_no_leaks(tag, leak_timeout)
        if leaks:
            errors.append("left behind:\n  " + "\n  ".join(leaks))
        return leaks

    def wait_no_leaks(self, tag, timeout=15):
        """Waits up to <timeout> s for leaks(tag) to empty; removes what is left
        and returns it."""
        deadline = time.monotonic() + timeout
        while True:
            leaks = self.leaks(tag)
            if not leaks:
                return []
            if time.monotonic() >= deadline:
                self._kill_leaks(leaks)
                return leaks
            time.sleep(0.3)
