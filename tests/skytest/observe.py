"""Watching a stack from outside, as an operator does: a real Prometheus
(Debian `prometheus`) scraping the daemons' /metrics, and headless Chromium
(Debian `chromium`) loading the dashboard. Every process started here runs in
its own process group and is stopped by the helper that started it."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from html.parser import HTMLParser

from skytest import api
from skytest.paths import SLOW

# Only loopback traffic: no update checks, no sync, no metrics reporting.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-default-apps", "--no-pings",
                  "--disable-dev-shm-usage", "--metrics-recording-only", "--mute-audio",
                  "--no-proxy-server"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_port(url):
    u = urllib.parse.urlsplit(url)
    return "%s:%d" % (u.hostname, u.port)


class Prometheus:
    """One Prometheus server on loopback scraping <targets> (job -> URL) every
    second with the bearer token in <token_file>."""

    def __init__(self, root, targets, token_file):
        self.dir = os.path.join(root, "prometheus")
        os.makedirs(os.path.join(self.dir, "data"))
        cfg = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
               "  evaluation_interval: 1s", "scrape_configs:"]
        for job, url in targets.items():
            cfg += ["  - job_name: %s" % job,
                    "    metrics_path: %s" % urllib.parse.urlsplit(url).path,
                    "    authorization:",
                    "      credentials_file: %s" % token_file,
                    "    static_configs:",
                    "      - targets: ['%s']" % host_port(url)]
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.proc = None
        self.log = os.path.join(self.dir, "prometheus.log")

    def start(self):
        # A port picked then freed may be taken meanwhile: try a few.
        for _ in range(3):
            self.port = free_port()
            self.base = "http://127.0.0.1:%d" % self.port
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    ["prometheus", "--config.file=" + self.config,
                     "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                     "--storage.tsdb.retention.time=1h", "--storage.tsdb.retention.size=256MB",
                     "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
                    stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 30 * SLOW
            while time.monotonic() < deadline and self.proc.poll() is None:
                if api.get(self.base + "/-/ready", 2)[0] == 200:
                    return self
                time.sleep(0.2)
            self.stop()
        raise AssertionError("prometheus did not start:\n" + self.tail())

    def stop(self):
        if not self.proc:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError as e:
            return str(e)

    def _api(self, path, **params):
        st, doc = api.request("GET", self.base + path + "?" + urllib.parse.urlencode(params))
        assert st == 200 and doc["status"] == "success", (path, params, st, doc)
        return doc["data"]

    def query(self, q):
        """The value of an instant query of one series, or None when it has none."""
        res = self._api("/api/v1/query", query=q)["result"]
        assert len(res) <= 1, (q, res)
        return float(res[0]["value"][1]) if res else None

    def query_range(self, q, start, end):
        """[(t, value)] of a range query of one series, one point a second."""
        res = self._api("/api/v1/query_range", query=q, start=start, end=end, step=1)["result"]
        assert len(res) <= 1, (q, res)
        return [(float(t), float(v)) for t, v in res[0]["values"]] if res else []

    def targets_up(self):
        return {t["labels"]["job"]: t["health"]
                for t in self._api("/api/v1/targets")["activeTargets"]}


def chromium(url, *args, timeout=90):
    """Runs headless Chromium on <url> in its own process group and profile;
    returns its stdout. The whole group is killed afterwards, so no renderer
    or zygote outlives it."""
    profile = tempfile.mkdtemp(prefix="sky-chromium-")
    p = subprocess.Popen(["chromium"] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile]
                         + list(args) + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        out, err = "", "timed out"
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
    assert p.returncode in (0, -signal.SIGKILL) and out is not None, err[-2000:]
    return out


def dashboard_dom(url):
    """The dashboard's DOM once its first poll has drawn it (virtual time runs
    the page's timers and fetches before the dump)."""
    return chromium(url, "--virtual-time-budget=6000", "--dump-dom")


def elements(dom, tag, **match):
    """The attributes of every <tag> of a DOM dump whose attributes include <match>."""
    found = []

    class P(HTMLParser):
        def handle_starttag(self, t, attrs):
            a = dict(attrs)
            if t == tag and all(a.get(k) == v for k, v in match.items()):
                found.append(a)
    P().feed(dom)
    return found


def rows(dom, cls):
    """The data-* attributes of the <tr class="<cls>"> rows."""
    return [{k[5:]: v for k, v in a.items() if k.startswith("data-")}
            for a in elements(dom, "tr", **{"class": cls})]


def chart_points(dom, service):
    charts = elements(dom, "svg", id="chart-" + service)
    return int(charts[0]["data-points"]) if charts else None
