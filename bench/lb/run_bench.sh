#!/usr/bin/env bash
# sky-lb vs nginx vs HAProxy (HTTP) vs HAProxy mode tcp (the L4 ceiling) on 127.0.0.1.
#
#   bench/lb/run_bench.sh            (env knobs below; prints tables)
#
# Setup (bench/lb/lib.sh): two lbtest_backend upstreams; each proxy with one
# worker, keep-alive to the upstreams, round-robin, X-Forwarded-For added,
# logging off. wrk (-t1) and the backends run on LOAD_CPU (1), the proxies
# on PROXY_CPU (0).
#
# Equal-quota mode (the default, QUOTAS="50 off"): each proxy runs in a
# cgroup of its own, pinned to PROXY_CPU (cpuset) and, for quota 50, held to
# 50 % of that core by the CFS bandwidth controller (cgroup v1
# cpu.cfs_quota_us = 50 ms per 100 ms period; cgroup v2 cpu.max). So the
# proxy, not wrk or the backends, is the bottleneck, and req/s compares the
# proxies' cost per request. "off" is the same cgroup without quota (p99 of
# an unthrottled proxy). For each run, each round, each connection count and
# each quota, every proxy gets one wrk run of $DURATION s, in an order that
# rotates every round. Figures are medians over the rounds of a run; the
# ratio table gives each run and the median over runs.
#
# Then RSS per idle keep-alive connection: $IDLE_CONNS clients each send one
# request and idle; (RSS after - RSS before) / $IDLE_CONNS, fresh proxy each.
#
# Env: SKY_BUILD_DIR (default build/ of this checkout), RUNS=3, ROUNDS=3, DURATION=6,
#      CONNS="64 256", QUOTAS="50 off" (per cent of one core, or off),
#      PROXIES="sky-lb nginx haproxy haproxy-tcp", IDLE_CONNS=10000,
#      WRK_THREADS=1, SKIP_IDLE=0, SKIP_WRK=0, OUT=<dir to keep raw results>,
#      NEWCONN=0 (1: wrk sends "Connection: close", so every request comes on
#      a new client connection: accept, the first read and the close are in
#      every request's cost; the upstream side stays pooled in every proxy),
#      MAX_OTHER=10 RETRIES=10: a wrk run during which other processes took
#      more than MAX_OTHER % of the proxies' core is repeated (5 s later), up
#      to RETRIES times; the tables report the kept runs, and the ratios also
#      over the pairs of runs that no other process disturbed.
# Needs root for the cgroups (QUOTAS="off" alone falls back to taskset).
# Every process, cgroup and temporary file it made is removed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${SKY_BUILD_DIR:-$(cd "$HERE/../.." && pwd)/build}
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
CONNS=${CONNS:-"64 256"}
QUOTAS=${QUOTAS:-"50 off"}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROXIES=${PROXIES:-"sky-lb nginx haproxy haproxy-tcp"}
WRK_THREADS=${WRK_THREADS:-1}
SKIP_IDLE=${SKIP_IDLE:-0}
SKIP_WRK=${SKIP_WRK:-0}
NEWCONN=${NEWCONN:-0}
WRK_ARGS=()
[ "$NEWCONN" = 1 ] && WRK_ARGS=(-H "Connection: close")
MAX_OTHER=${MAX_OTHER:-10}
RETRIES=${RETRIES:-10}
# shellcheck source=bench/lb/lib.sh
. "$HERE/lib.sh"
lib_need_tools

# 10k idle clients need 10k fds in the client and in the proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 1000)) ]; then
    echo "warning: ulimit -n is $(ulimit -n); lowering IDLE_CONNS" >&2
    IDLE_CONNS=$(($(ulimit -n) - 1000))
fi

lib_init
OUT=${OUT:-$TMP}
mkdir -p "$OUT"

use_cg=0
for q in $QUOTAS; do [ "$q" = off ] || use_cg=1; done
if [ $use_cg = 1 ]; then
    cg_init "skylb-bench.$$" || exit 1
    for p in $PROXIES; do cg_make "$p"; done
    echo "cgroup v$CG_V: proxies pinned to CPU $PROXY_CPU, quotas: $QUOTAS" >&2
fi
set_quota() { [ $use_cg = 1 ] && cg_quota "$1" "$2" || true; }
throttled() { if [ $use_cg = 1 ]; then cg_throttled "$1"; else echo "0 0"; fi; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)" >&2
[ "$NEWCONN" = 1 ] && echo "client connections: a new one per request (Connection: close)" >&2
start_backends

IDLE_RES=$OUT/idle.txt
WRK_RES=$OUT/wrk.txt
: >"$IDLE_RES"
: >"$WRK_RES"

# ---- RSS per idle keep-alive connection (fresh proxy each, no quota)
if [ "$SKIP_IDLE" != 1 ]; then
    for p in $PROXIES; do
        set_quota "$p" off
        if ! start_proxy "$p"; then
            echo "$p n/a n/a n/a n/a" >>"$IDLE_RES"
            stop_proxy "$p"
            continue
        fi
        sleep 0.5
        before=$(rss_tree_kib "${PPID_OF[$p]}")
        $PY "$HERE/idle_conns.py" "${PORT[$p]}" -n "$IDLE_CONNS" --hold 120 \
            >"$TMP/idle-$p.out" 2>&1 </dev/null &
        ipid=$!
        PIDS+=($ipid)
        for ((i = 0; i < 1200; i++)); do
            grep -q '^ready' "$TMP/idle-$p.out" 2>/dev/null && break
            kill -0 $ipid 2>/dev/null || break
            sleep 0.1
        done
        sleep 1
        after=$(rss_tree_kib "${PPID_OF[$p]}")
        read -r _ ok failed < <(grep '^ready' "$TMP/idle-$p.out" || echo "ready 0 0")
        kill $ipid 2>/dev/null || true
        wait $ipid 2>/dev/null || true
        per=$(awk -v a="$after" -v b="$before" -v n="$ok" 'BEGIN { if (n > 0) printf "%.2f", (a - b) / n; else print "n/a" }')
        echo "$p $before $after $ok/$IDLE_CONNS $per" >>"$IDLE_RES"
        echo "idle: $p rss ${before}->${after} KiB, $ok ok, $failed failed, $per KiB/conn" >&2
        stop_proxy "$p"
    done
fi

# ---- throughput and latency: runs x rounds, interleaved

# measure proxy conns quota run round: one wrk run; sets rps p50 p99 errs eff
# own busy0 busy1 thr load other (per cent of the proxy's core that other
# processes took: on a shared machine a run they disturbed is repeated).
measure() {
    local p=$1 c=$2 q=$3 out=$TMP/wrk-$1-$2-$3-$4-$5.txt t0 t1 th0 th1 tt0 tt1 c0a c1a o0 o1
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(cpu_ticks "${PPID_OF[$p]}")
    read -r th0 tt0 < <(throttled "$p")
    c0a=$(core_ticks "$PROXY_CPU") c1a=$(core_ticks "$LOAD_CPU") o0=$(core_task_ticks "$PROXY_CPU")
    taskset -c "$LOAD_CPU" wrk -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --latency \
        --timeout 5s ${WRK_ARGS[@]+"${WRK_ARGS[@]}"} "http://127.0.0.1:${PORT[$p]}/" >"$out" 2>&1 || true
    t1=$(cpu_ticks "${PPID_OF[$p]}")
    read -r th1 tt1 < <(throttled "$p")
    o1=$(core_task_ticks "$PROXY_CPU")
    busy0=$(busy_pct "$c0a" "$(core_ticks "$PROXY_CPU")")
    busy1=$(busy_pct "$c1a" "$(core_ticks "$LOAD_CPU")")
    other=$(awk -v a="$o0" -v b="$o1" -v t=$((t1 - t0)) 'BEGIN { split(a, x, " "); split(b, y, " ")
        d = y[2] - x[2]; o = (y[1] - x[1]) - t; printf "%.0f", (d > 0 && o > 0 ? 100 * o / d : 0) }')
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    local nreq
    nreq=$(awk '/requests in/ {print $1}' "$out")
    eff=$(awk -v n="${nreq:-0}" -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN { if (t > 0) printf "%.0f", n / (t / hz); else print 0 }')
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$out")
    own=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v d="$DURATION" 'BEGIN { printf "%.0f", 100 * t / hz / d }')
    thr=$((th1 - th0))
    echo "run $4 round $5 c=$c quota=$q $p: ${rps:-0} req/s p50 ${p50}ms p99 ${p99}ms errors $errs, $eff req/CPU-s, proxy $own% of a core, cpu$PROXY_CPU $busy0% (others $other%) cpu$LOAD_CPU $busy1%, throttled ${thr}x, load $load" >&2
}

if [ "$SKIP_WRK" != 1 ]; then
    for ((run = 1; run <= RUNS; run++)); do
        UP=()
        for p in $PROXIES; do
            set_quota "$p" off
            if start_proxy "$p"; then UP+=("$p"); else stop_proxy "$p"; fi
        done
        [ ${#UP[@]} -gt 0 ] || { echo "no proxy came up" >&2; exit 1; }
        for ((r = 1; r <= ROUNDS; r++)); do
            # rotate the order each round so no proxy always runs first
            k=$(((run + r - 2) % ${#UP[@]}))
            order=("${UP[@]:$k}" "${UP[@]:0:$k}")
            for c in $CONNS; do
                for q in $QUOTAS; do
                    for p in "${order[@]}"; do
                        set_quota "$p" "$q"
                        for ((try = 0; ; try++)); do
                            measure "$p" "$c" "$q" "$run" "$r"
                            [ "$other" -le "$MAX_OTHER" ] || [ "$try" -ge "$RETRIES" ] && break
                            echo "  others took $other% of cpu$PROXY_CPU: again" >&2
                            sleep 5
                        done
                        echo "$p $c $q $run $r ${rps:-0} $p50 $p99 $errs $eff $own $busy0 $busy1 $thr $load $other $try" >>"$WRK_RES"
                        kill -0 "${PPID_OF[$p]}" 2>/dev/null || echo "warning: $p died" >&2
                    done
                done
            done
        done
        for p in "${UP[@]}"; do stop_proxy "$p"; done
    done
fi

# ---- tables
$PY - "$WRK_RES" "$IDLE_RES" "$PROXIES" "$CONNS" "$QUOTAS" "$MAX_OTHER" <<'EOF'
import statistics, sys
wrk, idle = sys.argv[1], sys.argv[2]
proxies, conns, quotas = sys.argv[3].split(), sys.argv[4].split(), sys.argv[5].split()
max_other = float(sys.argv[6])
rows = {}
byround = {}
for line in open(wrk):
    p, c, q, run, r, rps, p50, p99, errs, eff, own, b0, b1, thr, load, oth, tries = line.split()
    rows.setdefault((p, c, q, run), []).append(
        (float(rps), float(p50), float(p99), int(errs), float(eff), float(own), float(b0),
         float(b1), int(thr), float(load), float(oth), int(tries)))
    byround[(p, c, q, run, r)] = (float(rps), float(p99), float(oth))
med = lambda xs: statistics.median(xs) if xs else float("nan")
runs = sorted({k[3] for k in rows}, key=int)

def agg(p, c, q, run=None):
    """Medians over the rounds of one run, or over every round of every run."""
    v = [x for k, xs in rows.items() if k[:3] == (p, c, q) and (run is None or k[3] == run)
         for x in xs]
    if not v:
        return None
    return [med([x[i] for x in v]) for i in range(3)] + [sum(x[3] for x in v), len(v)] + \
           [med([x[i] for x in v]) for i in range(4, 11)] + [sum(x[11] for x in v)]

if rows:
    for q in quotas:
        print("Quota %s: medians over all rounds of all runs" % (q + " % of one core" if q != "off" else "off (pinned, no CFS limit)"))
        print("%-12s %5s %9s %8s %8s %6s %6s %10s %5s %5s %5s %9s %5s %5s %7s" % (
            "proxy", "conns", "req/s", "p50 ms", "p99 ms", "errors", "rounds", "req/CPU-s",
            "prx%", "cpuP%", "cpuL%", "throttled", "load", "oth%", "retried"))
        for c in conns:
            for p in proxies:
                a = agg(p, c, q)
                if a:
                    print("%-12s %5s %9.0f %8.3f %8.3f %6d %6d %10.0f %5.0f %5.0f %5.0f %9.0f %5.2f %5.0f %7d" % (p, c, *a))
        print()
    print("prx% is the proxy's own CPU use (per cent of one core), cpuP% how busy its core was")
    print("(with other processes), cpuL% the core of wrk and the backends (it must stay below")
    print("~100 for req/s to measure the proxy); throttled = CFS throttling events in the run")
    print("(about 10 per second when the quota binds), oth% what other processes took of the")
    print("proxies' core, retried how many runs were repeated because that passed MAX_OTHER.")
    print()
    others = [o for o in proxies if o != "sky-lb"]
    if "sky-lb" in proxies and others:
        print("Ratios sky-lb / other, req/s (p99 for quota off: lower is better). 'runs': the")
        print("ratio of each run's medians, then their median; 'clean': the same round's pairs in")
        print("which neither run had other processes above MAX_OTHER % of the proxies' core:")
        print("median [min-max] (pairs)")
        for q in quotas:
            for c in conns:
                for o in others:
                    per = []
                    p99s = []
                    for run in runs:
                        s, a = agg("sky-lb", c, q, run), agg(o, c, q, run)
                        if s and a and a[0] > 0:
                            per.append(s[0] / a[0])
                            if a[2] > 0:
                                p99s.append(s[2] / a[2])
                    if not per:
                        continue
                    cr, cp = [], []
                    for (p_, c_, q_, run, r), (rps, p99, oth) in byround.items():
                        a = byround.get((o, c, q, run, r))
                        if (p_, c_, q_) == ("sky-lb", c, q) and a and a[0] > 0 and \
                                oth <= max_other and a[2] <= max_other:
                            cr.append(rps / a[0])
                            if a[1] > 0:
                                cp.append(p99 / a[1])
                    line = "  quota=%-3s c=%-4s sky-lb/%-12s req/s runs %s -> %.3f" % (
                        q, c, o, " ".join("%.3f" % x for x in per), med(per))
                    if cr:
                        line += "; clean %.3f [%.3f-%.3f] (%d)" % (med(cr), min(cr), max(cr), len(cr))
                    print(line)
                    if q == "off" and p99s:
                        line = "  %-21s sky-lb/%-12s p99   runs %s -> %.3f" % (
                            "", o, " ".join("%.3f" % x for x in p99s), med(p99s))
                        if cp:
                            line += "; clean %.3f [%.3f-%.3f] (%d)" % (med(cp), min(cp), max(cp), len(cp))
                        print(line)
        print()
lines = [l.split() for l in open(idle) if l.strip()]
if lines:
    print("RSS per idle keep-alive connection")
    print("%-12s %12s %12s %12s %12s" % ("proxy", "before KiB", "after KiB", "ok/total", "KiB/conn"))
    for l in lines:
        print("%-12s %12s %12s %12s %12s" % tuple(l[:5]))
EOF
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw results: $OUT (removed at exit unless OUT was set)" >&2
