// The sky dashboard: polls GET /api/dashboard with the controller's token and
// redraws the tables and the charts in place. The token arrives in the login
// link's fragment (#token=...), which the browser never sends to the server;
// it is kept in localStorage and the fragment is removed from the address bar.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "sky-dashboard-token";
const SVG_NS = "http://www.w3.org/2000/svg";

function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(TOKEN_KEY);
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function cell(row, text, cls) {
  row.appendChild(el("td", cls ? { class: cls } : {}, text));
}

function money(v) {
  v = Number(v || 0);
  return "$" + v.toFixed(v > 0 && v < 1 ? 3 : 2);
}

function ago(t, now) {
  if (t === null || t === undefined || t <= 0) return "-";
  const s = Math.max(0, Math.round(now - t));
  if (s < 60) return s + " sec" + (s === 1 ? "" : "s") + " ago";
  if (s < 3600) return Math.floor(s / 60) + " min" + (s < 120 ? "" : "s") + " ago";
  if (s < 86400) return Math.floor(s / 3600) + " hr" + (s < 7200 ? "" : "s") + " ago";
  return Math.floor(s / 86400) + " day" + (s < 172800 ? "" : "s") + " ago";
}

function duration(s, dash) {
  if (dash || s === null || s === undefined || s < 0) return "-";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + sec + "s";
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function renderServices(doc) {
  const rows = doc.services.map((s) => {
    const tr = el("tr", { class: "service", "data-service": s.name });
    cell(tr, s.name);
    cell(tr, s.status, "status-" + s.status);
    cell(tr, s.endpoint);
    cell(tr, s.ready + "/" + s.total, "num");
    cell(tr, String(s.target_num_replicas), "num");
    cell(tr, money(s.cost_per_hour), "num");
    return tr;
  });
  fill(document.querySelector("#services tbody"), rows);
  document.getElementById("no-services").hidden = doc.services.length > 0;

  const reps = [];
  for (const s of doc.services) {
    for (const r of s.replicas) {
      const cap = r.is_spot ? "spot" : "on_demand";
      const tr = el("tr", {
        class: "replica", "data-service": s.name, "data-replica-id": String(r.replica_id),
        "data-status": r.status, "data-capacity": cap,
      });
      cell(tr, s.name);
      cell(tr, String(r.replica_id), "num");
      cell(tr, String(r.version), "num");
      cell(tr, r.status, "status-" + r.status);
      cell(tr, r.is_spot ? "spot" : "on-demand", "cap-" + cap);
      cell(tr, r.zone || "-");
      cell(tr, ago(r.launched_at, doc.now));
      cell(tr, r.price ? money(r.price) : "-", "num");
      reps.push(tr);
    }
  }
  fill(document.querySelector("#replicas tbody"), reps);
}

function renderJobs(doc) {
  const jobs = doc.jobs || [];
  const rows = jobs.map((j) => {
    const tr = el("tr", { class: "job", "data-job-id": String(j.job_id), "data-status": j.status });
    cell(tr, String(j.job_id), "num");
    cell(tr, j.name);
    cell(tr, j.status, "status-" + j.status);
    cell(tr, ago(j.submitted_at, doc.now));
    cell(tr, duration(j.job_duration, j.job_duration_dash), "num");
    cell(tr, duration(j.total_duration, j.total_dash), "num");
    cell(tr, String(j.recovery_count), "num");
    return tr;
  });
  fill(document.querySelector("#jobs tbody"), rows);
  document.getElementById("no-jobs").hidden = jobs.length > 0;
}

// ---- the chart: READY spot and on-demand replicas, the target (left axis)
// and the cost per hour (right axis) over the history, drawn as SVG paths.

const W = 640, H = 200, PAD = { l: 34, r: 50, t: 10, b: 22 };

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function path(ts, vs, x, y, step) {
  let d = "";
  for (let i = 0; i < ts.length; i++) {
    const px = x(ts[i]).toFixed(1), py = y(vs[i]).toFixed(1);
    if (i === 0) d += "M" + px + " " + py;
    else if (step) d += "H" + px + "V" + py;
    else d += "L" + px + " " + py;
  }
  return d;
}

function drawChart(name, h) {
  const s = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H,
                         id: "chart-" + name, "data-points": String(h.t.length) });
  const t0 = h.t.length ? h.t[0] : 0, t1 = h.t.length ? h.t[h.t.length - 1] : 1;
  const span = Math.max(t1 - t0, 10);
  const rmax = niceMax(Math.max(1, ...h.spot, ...h.on_demand, ...h.target));
  const cmax = niceMax(Math.max(0.01, ...h.cost));
  const x = (t) => PAD.l + ((t - t0) / span) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / rmax) * (H - PAD.t - PAD.b);
  const yc = (v) => H - PAD.b - (v / cmax) * (H - PAD.t - PAD.b);
  for (let i = 0; i <= 4; i++) {
    const v = (rmax * i) / 4, py = y(v);
    s.appendChild(svg("line", { class: "grid", x1: PAD.l, x2: W - PAD.r, y1: py, y2: py }));
    s.appendChild(svg("text", { x: PAD.l - 4, y: py + 3, "text-anchor": "end" },
                      Number.isInteger(v) ? String(v) : v.toFixed(1)));
    s.appendChild(svg("text", { x: W - PAD.r + 4, y: py + 3 }, money((cmax * i) / 4)));
  }
  s.appendChild(svg("line", { class: "axis", x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b,
                              y2: H - PAD.b }));
  s.appendChild(svg("text", { x: PAD.l, y: H - 6 }, "-" + Math.round(span) + " s"));
  s.appendChild(svg("text", { x: W - PAD.r, y: H - 6, "text-anchor": "end" }, "now"));
  s.appendChild(svg("path", { class: "line target", d: path(h.t, h.target, x, y, true) }));
  s.appendChild(svg("path", { class: "line on_demand", d: path(h.t, h.on_demand, x, y, true) }));
  s.appendChild(svg("path", { class: "line spot", d: path(h.t, h.spot, x, y, true) }));
  s.appendChild(svg("path", { class: "line cost", d: path(h.t, h.cost, x, yc, false) }));
  return s;
}

function legend() {
  const d = el("div", { class: "legend" });
  for (const [cls, label, color] of [["spot", "spot READY", "#2662c0"],
                                     ["on_demand", "on-demand READY", "#7a3fb0"],
                                     ["target", "target", "#787c82"],
                                     ["cost", "cost/hr (right)", "#00803a"]]) {
    const span = el("span", { class: cls });
    const swatch = el("i");
    swatch.style.background = color;
    span.append(swatch, label);
    d.appendChild(span);
  }
  return d;
}

function renderCharts(doc) {
  const box = document.getElementById("charts");
  const charts = doc.services.filter((s) => doc.history[s.name]).map((s) => {
    const div = el("div", { class: "chart", "data-service": s.name });
    div.appendChild(el("h3", {}, s.name + ": replicas and cost per hour"));
    div.appendChild(drawChart(s.name, doc.history[s.name]));
    div.appendChild(legend());
    return div;
  });
  box.replaceChildren(...charts);
}

// ---- polling

let token = null;

function setState(text, error) {
  const s = document.getElementById("state");
  s.textContent = text;
  s.classList.toggle("error", !!error);
}

async function poll() {
  try {
    const r = await fetch("/api/dashboard", { headers: { Authorization: "Bearer " + token },
                                              cache: "no-store" });
    if (r.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      document.getElementById("login").hidden = false;
      setState("not logged in", true);
      return; // a new login link is needed: stop polling
    }
    if (!r.ok) throw new Error("HTTP " + r.status);
    const doc = await r.json();
    renderServices(doc);
    renderJobs(doc);
    renderCharts(doc);
    document.body.dataset.updated = String(doc.now);
    setState("updated " + new Date(doc.now * 1000).toLocaleTimeString());
  } catch (e) {
    setState("controller unreachable (" + e.message + "), retrying", true);
  }
  setTimeout(poll, POLL_MS);
}

token = takeToken();
if (token) {
  poll();
} else {
  document.getElementById("login").hidden = false;
  setState("not logged in", true);
}
