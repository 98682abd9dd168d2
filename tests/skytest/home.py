"""One SKY_HOME seen from outside: its `sky` runs, its daemons and their APIs,
and what it leaves behind (processes, network namespaces, veths). The e2e
stacks (tests/e2e/serve_util.py, spot_util.py) and the bench scripts that
drive a whole stack (bench/chaos, bench/policy/live_replay.py) build on it."""
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import tempfile
import time

from . import api, procs, waits
from .paths import SKY, SLOW, SOURCE_DIR


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
        t = time.monotonic()
        try:
            p = subprocess.run([SKY] + list(args), cwd=SOURCE_DIR, env=self.env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout * SLOW)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("sky %s timed out after %ss; output so far:\n%s%s" % (
                " ".join(args), timeout, e.stdout or "", e.stderr or ""))
        entry = "$ sky %s  (rc %d, %.1fs)\n%s%s" % (" ".join(args), p.returncode,
                                                    time.monotonic() - t, p.stdout, p.stderr)
        if not quiet or p.returncode != 0:
            self.history.append(entry)
            print(entry)
        if expect_rc is not None:
            assert p.returncode == expect_rc, entry
        elif check:
            assert p.returncode == 0, entry
        return p

    def wait_for(self, fn, timeout, what, interval=None):
        """Calls fn() until it returns a truthy value (an AssertionError counts
        as not yet); self.fail()s after <timeout> seconds (× SLOW) or at the
        test's budget."""
        if self.deadline <= time.monotonic():
            self.fail("test time budget exhausted before waiting for %s" % what)
        try:
            return waits.wait_for(fn, timeout * SLOW, what, interval or self.wait_interval,
                                  deadline=self.deadline, tolerate=(AssertionError,))
        except AssertionError as e:
            self.fail(str(e))

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
        status, doc = api.request(method, "http://127.0.0.1:%d%s" % (port, path), self._token(),
                                  body, timeout)
        if not 200 <= status < 300:
            raise OSError("%s %s: HTTP %d %r" % (method, path, status, doc))
        if isinstance(doc, bytes):
            raise ValueError("%s %s: not JSON: %r" % (method, path, doc[:200]))
        return doc

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
        return procs.processes_naming(self.home)

    def leaks(self, tag):
        """Namespaces and veths of local-cloud <tag>, and processes of this home."""
        out = []
        if tag:
            out += ["netns " + n for n in procs.netns_list() if n.startswith("sky-%s-" % tag)]
            out += ["veth " + n for n in procs.links() if n.startswith("sv%s" % tag)]
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

    stop_pid = staticmethod(procs.stop_pid)

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
