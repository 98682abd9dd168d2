"""Acceptance of the observability (issue 15): the seed's dynamic on-demand
fallback walkthrough (seeds/serve_spot_policy.rst) watched from outside, as an
operator would, by

- a real Prometheus (Debian `prometheus`): a config this test writes, on
  loopback, its storage in a temp dir with a bounded retention, scraping the
  serve controller's /metrics and the service's sky-lb /metrics (the URL
  `sky serve status --json` lists) with the bearer token; the PromQL results
  are read through Prometheus' HTTP API;
- headless Chromium (Debian `chromium`) on the dashboard, through the login
  link `sky dashboard --url` prints: the DOM's service and replica rows, and
  a screenshot kept under the build tree (dashboard-artifacts/).

The walkthrough runs once (a module fixture, to keep CI short): spot capacity
goes away, two on-demand replicas serve; it comes back, two spot replicas
serve and the on-demand ones go. Every process started here is stopped here.
"""
import os
import pty
import re
import select
import shutil
import subprocess
import tempfile
import time

import pytest
from serve_util import DYNAMIC_YAML, Stack, get, live_spot, ready
from skytest import api
from skytest.observe import Prometheus, chart_points, chromium, dashboard_dom, elements, rows
from skytest.paths import BUILD_DIR, SKY, SLOW, SOURCE_DIR

pytestmark = pytest.mark.root("instances are network namespaces (ip netns)")

NAME = "http-server"
ARTIFACTS = os.path.join(BUILD_DIR, "dashboard-artifacts")


def run_on_tty(stack, args, timeout):
    """Runs `sky <args>` with a pseudo-terminal as its stdout and stderr;
    returns everything it wrote there."""
    master, slave = pty.openpty()
    env = dict(stack.env, TERM="xterm")
    p = subprocess.Popen([SKY] + args, cwd=SOURCE_DIR, env=env, stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout * SLOW
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer closed it
                    break
                if not chunk:
                    break
                out += chunk
        p.wait(max(1, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        os.close(master)
    text = out.decode("utf-8", "replace")
    print("$ sky %s  (on a terminal, rc %s)\n%s" % (" ".join(args), p.returncode, text))
    assert p.returncode == 0, text
    return text


class Walk:
    """What the walkthrough saw, for the tests to check."""


@pytest.fixture(scope="module")
def walk():
    stack = Stack("observe")
    root = tempfile.mkdtemp(prefix="sky-e2e-observe-")
    prom = None
    w = Walk()
    try:
        # On a terminal, `sky serve up` shows a live line until the replicas are ready.
        w.up_tty = run_on_tty(stack, ["serve", "up", DYNAMIC_YAML, "-n", NAME, "-y"], 120)
        svc = stack.wait_for(lambda: stack.service(NAME), 30, "the service registered")
        w.lb_metrics = svc["lb_metrics_url"]
        w.endpoint = "http://" + svc["endpoint"]
        with open(os.path.join(stack.home, "serve", "controller.port")) as f:
            w.controller = "http://127.0.0.1:%d/metrics" % int(f.read())
        w.token = stack._token()
        prom = Prometheus(root, {"controller": w.controller, "lb": w.lb_metrics},
                          os.path.join(stack.home, "token")).start()
        w.prom = prom
        w.login = stack.sky("dashboard", "--url").stdout.strip()
        w.t0 = time.time()

        # No spot capacity: two on-demand replicas serve.
        stack.sky("cloud", "capacity", "--all", "0")

        def on_demand_serving():
            s = stack.service(NAME)
            return (s["status"] == "READY" and len(ready(s["replicas"], spot=False)) == 2
                    and not ready(s["replicas"], spot=True))
        stack.wait_for(on_demand_serving, 90, "2 on-demand replicas READY")
        stack.wait_for(lambda: get(w.endpoint)[0] == 200, 30, "the LB to route")
        for _ in range(20):  # traffic for the LB's and the controller's counters
            assert get(w.endpoint)[0] == 200
        for _ in range(3):  # the example app's 400 (a bad /stream query): 4xx responses
            assert get(w.endpoint + "/stream?n=x")[0] == 400
        w.dom_on_demand = dashboard_dom(w.login)
        stack.wait_for(lambda: prom.query(
            'sum(sky_serve_replicas{service="%s",status="READY",capacity="on_demand"})' % NAME)
            == 2, 30, "Prometheus to see 2 on-demand replicas READY")
        w.t_on_demand = time.time()

        # Spot capacity is back: two spot replicas, the on-demand ones go.
        stack.sky("cloud", "capacity", "--all", "unlimited")

        def spot_only():
            s = stack.service(NAME)
            return len(ready(s["replicas"], spot=True)) == 2 and not live_spot(s["replicas"],
                                                                              False)
        stack.wait_for(spot_only, 120, "2 spot READY and the on-demand ones scaled down")
        w.final = stack.service(NAME)
        w.dom_spot = dashboard_dom(w.login)
        os.makedirs(ARTIFACTS, exist_ok=True)
        w.screenshot = os.path.join(ARTIFACTS, "dashboard.png")
        if os.path.exists(w.screenshot):
            os.unlink(w.screenshot)
        chromium(w.login, "--window-size=1280,1300", "--virtual-time-budget=6000",
                 "--screenshot=" + w.screenshot)
        stack.wait_for(lambda: prom.query(
            'sum(sky_serve_replicas{service="%s",capacity="on_demand",'
            'status=~"PENDING|PROVISIONING|STARTING|READY|NOT_READY"})' % NAME) == 0
            and prom.query('sum(sky_serve_replicas{service="%s",status="READY",'
                           'capacity="spot"})' % NAME) == 2,
            30, "Prometheus to see 2 spot READY and no on-demand replica")
        w.t1 = time.time()
        yield w
    finally:
        if prom:
            prom.stop()
        shutil.rmtree(root, ignore_errors=True)
        stack.teardown()


def test_prometheus_scrapes_controller_and_lb(walk):
    prom = walk.prom
    assert prom.targets_up() == {"controller": "up", "lb": "up"}, prom.targets_up()
    od = prom.query_range('sum(sky_serve_replicas{service="%s",status="READY",'
                          'capacity="on_demand"})' % NAME, walk.t0, walk.t1)
    spot = prom.query_range('sum(sky_serve_replicas{service="%s",status="READY",'
                            'capacity="spot"})' % NAME, walk.t0, walk.t1)
    # On-demand replicas went from 2 to 0; spot ones came back to 2 after capacity returned.
    first_od2 = next(t for t, v in od if v == 2)
    assert od[-1][1] == 0 and any(v == 0 and t > first_od2 for t, v in od), od
    assert max(v for _, v in od) == 2, od
    at_od = min(spot, key=lambda p: abs(p[0] - walk.t_on_demand))
    assert at_od[1] == 0, (at_od, spot)  # no spot replica while capacity was gone
    assert spot[-1][1] == 2 and any(t > first_od2 for t, v in spot if v == 2), spot
    q = lambda expr: prom.query(expr % NAME)  # noqa: E731
    assert q('sky_serve_target_replicas{service="%s"}') >= 2
    assert q('sky_serve_service_status{service="%s",status="READY"}') == 1
    assert q('sky_serve_cost_dollars_per_hour{service="%s"}') > 0
    assert q('sky_serve_launches_total{service="%s"}') >= 4
    assert q('sky_serve_preemptions_total{service="%s"}') is not None
    # The traffic went to the on-demand replicas, whose series left with them.
    assert q('max_over_time(sum(sky_serve_replica_requests_total{service="%s",outcome="ok"})'
             '[10m:1s])') >= 20
    # The same traffic by status class, as the LB reported it to the controller.
    assert q('max_over_time(sum(sky_serve_replica_responses_total{service="%s",code="2xx"})'
             '[10m:1s])') >= 20
    assert q('max_over_time(sum(sky_serve_replica_responses_total{service="%s",code="4xx"})'
             '[10m:1s])') >= 3
    assert q('max_over_time(sum(sky_serve_replica_responses_total{service="%s",code="5xx"})'
             '[10m:1s])') == 0
    assert prom.query('sum(sky_lb_requests_total{job="lb",code="200"})') >= 20
    assert prom.query('sum(sky_lb_replica_responses_total{job="lb",code="2xx"})') >= 20
    assert prom.query('sum(sky_lb_replica_responses_total{job="lb",code="4xx"})') >= 3
    assert prom.query('sky_lb_upstream_latency_seconds_count{job="lb"}') >= 20
    assert prom.query('sky_controller_restarts_total{job="controller"}') == 0
    # What Prometheus' linter says of both endpoints, as served.
    for url in (walk.controller, walk.lb_metrics):
        st, text = api.request("GET", url, walk.token)
        assert st == 200
        p = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, timeout=30)
        assert p.returncode == 0, (url, p.stdout, p.stderr)
    assert api.request("GET", walk.controller)[0] == 401


def test_serve_up_progress_on_a_terminal(walk):
    out = walk.up_tty
    assert "Waiting for service '%s' to register..." % NAME in out
    # Redrawn in place: carriage return, erase line, a spinner, the elapsed seconds.
    segs = out.split("\r\x1b[K")
    live = [seg for seg in segs[1:-1] if seg]
    assert live and all(re.fullmatch(r"\S %s: \w+, \d+/2 replicas ready( \(.*\))? \(\d+ s\)"
                                     % NAME, seg) for seg in live), live
    assert "provisioning" in live[0], live
    # Then the line is erased and the outcome printed for good (more replicas than the
    # target are ready while the on-demand fallback has not yet scaled down).
    assert re.match(r"%s: ready, [2-9]/2 replicas ready( \([^)]*\))? \(\d+ s\)\.\r?\n" % NAME,
                    segs[-1]), segs[-1]
    assert re.search(r"^Service name: %s\r?$" % NAME, out, re.M), out


def test_dashboard_in_chromium(walk):
    assert "#token=" in walk.login
    # While on-demand replicas served: the service row and their replica rows.
    svcs = rows(walk.dom_on_demand, "service")
    assert [s["service"] for s in svcs] == [NAME], svcs
    reps = rows(walk.dom_on_demand, "replica")
    assert len([r for r in reps if r["capacity"] == "on_demand" and r["status"] == "READY"]) == 2
    # At the end: two spot replicas READY, no live on-demand one, the same as the API says.
    reps = rows(walk.dom_spot, "replica")
    got = sorted((int(r["replica-id"]), r["status"], r["capacity"]) for r in reps)
    want = sorted((r["replica_id"], r["status"], "spot" if r["is_spot"] else "on_demand")
                  for r in walk.final["replicas"])
    assert [x for x in got if x[1] == "READY"] == [x for x in want if x[1] == "READY"], (got, want)
    assert len([x for x in got if x[1] == "READY" and x[2] == "spot"]) == 2, got
    assert chart_points(walk.dom_spot, NAME) >= 3, "the chart has the walkthrough's history"
    # The screenshot, kept for the CI's artifacts.
    with open(walk.screenshot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, len(png)
    # Without the token (no fragment, empty storage) the page asks for the login link.
    dom = dashboard_dom(walk.login.split("#")[0])
    login = elements(dom, "p", id="login")
    assert login and "hidden" not in login[0], login
    assert not rows(dom, "replica")
