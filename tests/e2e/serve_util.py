"""Helpers for the sky serve end-to-end tests (stdlib + pytest only).

Each test gets a Stack: a temporary SKY_HOME, an environment that shortens the
controller's and the local cloud's timings (only through their documented
config: SKY_SERVE_* variables, see docs/serve-config.md, and
SKY_LOCALCLOUD_PROVISION_DELAY), and a `sky` runner that records every
command with its output so a failure shows what happened. Stack.teardown()
runs `sky serve down -a -y`, waits for the services to go, runs `sky cloud
down`, stops the controller daemon and asserts that nothing of this SKY_HOME
is left: no process, network namespace or veth.

Binaries: $SKY_BUILD_DIR/controller/sky, .../controller/sky-controller,
.../localcloud/sky-localcloud (skytest.paths).
"""
import json
import shutil
import threading
import time
from time import monotonic as now

import pytest
from skytest.api import get
from skytest.home import HomeMixin
from skytest.paths import SKY, SKY_CONTROLLER, SKY_LOCALCLOUD, SLOW, require_binaries
from skytest.tables import parse_table


DYNAMIC_YAML = "examples/serve/spot_policy/dynamic_on_demand_fallback.yaml"
BASE_YAML = "examples/serve/spot_policy/base_ondemand_fallback.yaml"
DATA = "tests/data"

# Replica statuses (reference/skyserve.md §3.1).
PROVISIONING_STATES = {"PENDING", "PROVISIONING", "STARTING"}
TERMINAL_STATES = {"SHUTTING_DOWN", "PREEMPTED", "FAILED", "FAILED_CLEANUP",
                   "FAILED_INITIAL_DELAY", "FAILED_PROBING", "FAILED_PROVISION", "UNKNOWN"}

SERVICES_HEADER = ["NAME", "VERSION", "UPTIME", "STATUS", "REPLICAS", "ENDPOINT"]
SERVICES_HEADER_V = SERVICES_HEADER + ["AUTOSCALING_POLICY", "LOAD_BALANCING_POLICY",
                                       "REQUESTED_RESOURCES"]
# The seed's columns; -v adds ZONE.
REPLICAS_HEADER = ["SERVICE_NAME", "ID", "VERSION", "ENDPOINT", "LAUNCHED", "RESOURCES",
                   "STATUS", "REGION"]
REPLICAS_HEADER_V = REPLICAS_HEADER + ["ZONE"]


# Timings shortened through the controller's config (docs/serve-config.md):
# probes and autoscaler decisions every second, 1 s drains and launch retries,
# a 10 s QPS window. Hysteresis thresholds stay those of each test's YAML.
FAST_ENV = {
    "SKY_LOCALCLOUD_PROVISION_DELAY": "2",
    "SKY_SERVE_PROBE_INTERVAL": "1",
    "SKY_SERVE_DECISION_INTERVAL": "1",
    "SKY_SERVE_NO_REPLICA_DECISION_INTERVAL": "1",
    "SKY_SERVE_DRAIN_SECONDS": "1",
    "SKY_SERVE_LB_SYNC_INTERVAL": "1",
    "SKY_SERVE_PROVIDER_POLL_INTERVAL": "1",
    "SKY_SERVE_JOB_STATUS_INTERVAL": "2",
    "SKY_SERVE_LAUNCH_RETRY_INITIAL": "1",
    "SKY_SERVE_TERMINATE_RETRY_INITIAL": "1",
    "SKY_SERVE_QPS_WINDOW": "10",
    "SKY_SERVE_LB_RESTART_INITIAL": "1",
    # Endpoints on loopback: tests never send traffic to the machine's own address.
    "SKY_SERVE_ENDPOINT_HOST": "127.0.0.1",
}


# CTest gives each file 600 s and kills pytest on timeout, which skips every
# teardown and leaks the stack. So waits stop at a per-test budget and at a
# file-wide one, leaving time for the teardowns (each bounded too).
FILE_START = time.monotonic()
FILE_WAIT_BUDGET = 420
TEST_WAIT_BUDGET = 240


# --------------------------------------------------------------------- tables

def parse_status(out, verbose=False):
    """Parses `sky serve status` output into (services, replicas, hints)."""
    lines = out.rstrip("\n").split("\n")
    assert lines[0] == "Services", out
    if lines[1] == "No existing services.":
        return [], [], []
    try:
        blank = lines.index("")
    except ValueError:
        raise AssertionError("no blank line between the tables:\n" + out)
    services = parse_table(lines[1:blank], SERVICES_HEADER_V if verbose else SERVICES_HEADER)
    assert lines[blank + 1] == "Service Replicas", out
    rest = lines[blank + 2:]
    hints = [line for line in rest if line.startswith("... ")]
    body = [line for line in rest if not line.startswith("... ")]
    if body == ["No existing replicas."]:
        return services, [], hints
    replicas = parse_table(body, REPLICAS_HEADER_V if verbose else REPLICAS_HEADER)
    return services, replicas, hints


# ----------------------------------------------------------------------- load

class Load:
    """GETs <url> at <rate> per second from one thread, bounded in count and time.
    Records (time, status or exception text) for every request."""

    def __init__(self, url, rate, max_seconds, max_requests=None, timeout=10):
        self.url, self.rate, self.timeout = url, rate, timeout
        self.max_seconds = max_seconds
        self.max_requests = max_requests or int(rate * max_seconds) + 1
        self.results = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _one(self):
        return get(self.url, self.timeout)[0]

    def _run(self):
        start = now()
        period = 1.0 / self.rate
        n = 0
        while not self._stop.is_set() and n < self.max_requests:
            if now() - start > self.max_seconds:
                break
            t = now()
            self.results.append((time.time(), self._one()))
            n += 1
            self._stop.wait(max(0.0, period - (now() - t)))

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._stop.set()
        self._t.join(self.timeout + 5)
        return self

    @property
    def failures(self):
        return [(t, s) for t, s in self.results if s != 200]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------- stack

class Stack(HomeMixin):
    """One SKY_HOME with its controller, local cloud and services."""

    sky_timeout = 90
    wait_interval = 0.5

    def __init__(self, name, extra_env=None):
        require_binaries(SKY, SKY_CONTROLLER, SKY_LOCALCLOUD)
        self._init_home(name, "SKY_SERVE_", FAST_ENV, extra_env)
        self.deadline = min(time.monotonic() + TEST_WAIT_BUDGET * SLOW,
                            FILE_START + FILE_WAIT_BUDGET)

    # -- running the CLI

    def services(self, *names):
        p = self.sky("serve", "status", *names, "--json", timeout=60, quiet=True)
        doc = json.loads(p.stdout)
        for svc in doc["services"]:
            print("  " + summary(svc))
        return doc["services"]

    def service(self, name):
        for s in self.services(name):
            if s["name"] == name:
                return s
        return None

    def status_tables(self, *names, verbose=False):
        args = ["serve", "status"] + list(names) + (["-v"] if verbose else [])
        return parse_status(self.sky(*args).stdout, verbose)

    def endpoint_url(self, name):
        ep = self.sky("serve", "status", name, "--endpoint").stdout.strip()
        assert ep and ep != "-", "no endpoint for %s" % name
        return ep if ep.startswith("http") else "http://" + ep

    def fail(self, msg):
        detail = []
        try:
            detail.append(self.sky("serve", "status", "-v", check=False, timeout=30).stdout)
        except AssertionError as e:
            detail.append(str(e))
        detail.append("--- controller.log (tail)\n" + self.tail("serve/controller.log"))
        pytest.fail(msg + "\n" + "\n".join(detail))

    def controller_pid(self):
        """pid of the live serve controller, or None."""
        return self.daemon_pid("serve/controller.port", "/health")

    def alive_instances(self, owner_prefix=""):
        return [i for i in self.cloud_instances()
                if i.get("state") in ("PENDING", "RUNNING")
                and str(i.get("owner", "")).startswith(owner_prefix)]

    def stop_controller(self):
        self.stop_pid(self.controller_pid())

    def teardown(self, check=True):
        """`sky serve down -a -y`, wait, `sky cloud down`, stop the controller,
        then assert nothing of this SKY_HOME is left."""
        if self.closed:
            return
        self.closed = True
        tag = self.localcloud_tag()
        errors = self.serve_down_all(
            lambda *a, timeout: self.sky(*a, check=False, timeout=timeout, quiet=True))
        if not errors:
            out = self.sky("serve", "status", check=False).stdout
            if out.strip() != "Services\nNo existing services.":
                errors.append("status after teardown:\n" + out)
        self.stop_controller()
        self.cloud_down(lambda *a, timeout: self.sky(*a, check=False, timeout=timeout), tag,
                        errors)
        if not errors or not check:
            shutil.rmtree(self.home, ignore_errors=True)
        if errors and check:
            pytest.fail("teardown of %s:\n%s" % (self.home, "\n".join(errors)))


# ------------------------------------------------------------- replica helpers

def live(replicas):
    return [r for r in replicas if r["status"] not in TERMINAL_STATES]


def ready(replicas, spot=None):
    return [r for r in replicas if r["status"] == "READY"
            and (spot is None or bool(r["is_spot"]) == spot)]


def live_spot(replicas, spot):
    return [r for r in live(replicas) if bool(r["is_spot"]) == spot]


def summary(svc):
    if not svc:
        return "(no service)"
    return "%s %s %d/%d: " % (svc["name"], svc["status"], svc["ready"], svc["total"]) + ", ".join(
        "%s%s:%s@%s" % (r["replica_id"], "s" if r["is_spot"] else "o", r["status"], r.get("zone"))
        for r in svc["replicas"])
