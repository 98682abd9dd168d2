#!/usr/bin/env bash
# sky-lb vs nginx vs HAProxy on 127.0.0.1.
#
#   bench/lb/run_bench.sh            (env knobs below; prints a table)
#
# Two lbtest_backend upstreams; each proxy with 1 worker, keep-alive to the
# upstreams, round-robin, logging off; proxies pinned to CPU 0, wrk and the
# backends to CPU 1. wrk runs at each of $CONNS connections in $ROUNDS
# interleaved rounds of $DURATION s (the proxy order rotates every round).
# Then RSS per idle keep-alive connection: $IDLE_CONNS clients each send one
# request and idle; (RSS after - RSS before) / $IDLE_CONNS, fresh proxy each.
#
# Env: SKY_BUILD_DIR (default /work/main/build), ROUNDS=3, DURATION=10,
#      CONNS="64 256", IDLE_CONNS=10000, PROXIES="sky-lb nginx haproxy",
#      WRK_THREADS=1, SKIP_IDLE=0, SKIP_WRK=0, OUT=<dir for raw results>.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${SKY_BUILD_DIR:-/work/main/build}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-"64 256"}
IDLE_CONNS=${IDLE_CONNS:-10000}
PROXIES=${PROXIES:-"sky-lb nginx haproxy"}
WRK_THREADS=${WRK_THREADS:-1}
SKIP_IDLE=${SKIP_IDLE:-0}
SKIP_WRK=${SKIP_WRK:-0}
SKYLB=$BUILD/lb/sky-lb
BACKEND=$BUILD/tests/lbtest_backend
PY=/usr/bin/python3

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$BACKEND" ] || { echo "missing $BACKEND: build the tree first" >&2; exit 1; }

# 10k idle clients need 10k fds in the client and in the proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 1000)) ]; then
    echo "warning: ulimit -n is $(ulimit -n); lowering IDLE_CONNS" >&2
    IDLE_CONNS=$(( $(ulimit -n) - 1000 ))
fi

TMP=$(mktemp -d /tmp/skylb-bench.XXXXXX)
OUT=${OUT:-$TMP}
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # port timeout_s
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        if $PY -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

start_backend() { # name -> sets BE_PORT
    local log=$TMP/backend-$1.log
    taskset -c 1 "$BACKEND" --listen 127.0.0.1:0 --name "$1" 2>"$log" &
    PIDS+=($!)
    for ((i = 0; i < 100; i++)); do
        BE_PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | cut -d: -f2 || true)
        [ -n "$BE_PORT" ] && return 0
        sleep 0.05
    done
    echo "backend $1 did not start" >&2
    exit 1
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)" >&2
start_backend b1; B1=$BE_PORT
start_backend b2; B2=$BE_PORT
echo "backends on 127.0.0.1:$B1 and 127.0.0.1:$B2" >&2

# ---- proxy configs
write_nginx_conf() { # port
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log crit;
worker_rlimit_nofile 40000;
events { worker_connections 30000; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream backends {
        server 127.0.0.1:$B1;
        server 127.0.0.1:$B2;
        keepalive 512;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

write_haproxy_conf() { # port
    cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((IDLE_CONNS + 2000))
    ulimit-n $(ulimit -n)
    no strict-limits
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$1
    backlog 4096
    default_backend be
backend be
    balance roundrobin
    server s1 127.0.0.1:$B1
    server s2 127.0.0.1:$B2
EOF
}

declare -A PORT PPID_OF
start_proxy() { # name -> sets PORT[name], PPID_OF[name]; returns 1 if it does not come up
    local name=$1 port
    port=$(free_port)
    case $name in
    sky-lb)
        [ -x "$SKYLB" ] || { echo "sky-lb: $SKYLB missing" >&2; return 1; }
        taskset -c 0 "$SKYLB" --listen 127.0.0.1:$port --workers 1 --policy round_robin \
            --replica http://127.0.0.1:$B1 --replica http://127.0.0.1:$B2 \
            2>"$TMP/sky-lb.log" >/dev/null &
        ;;
    nginx)
        write_nginx_conf "$port"
        taskset -c 0 "$NGINX" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
            2>"$TMP/nginx.log" &
        ;;
    haproxy)
        write_haproxy_conf "$port"
        taskset -c 0 "$HAPROXY" -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
        ;;
    esac
    PPID_OF[$name]=$!
    PIDS+=($!)
    PORT[$name]=$port
    if ! wait_port "$port" 10; then
        echo "$name did not start; log:" >&2
        tail -5 "$TMP/$name.log" >&2 2>/dev/null || true
        return 1
    fi
    # one request to check it proxies
    if ! curl -sf -m 5 "http://127.0.0.1:$port/" >/dev/null; then
        echo "$name does not proxy GET / correctly" >&2
        return 1
    fi
}

stop_proxy() {
    local pid=${PPID_OF[$1]:-}
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PPID_OF[$1]=
}

cpu_ticks() { # pid: utime+stime (clock ticks) of pid and its children
    local total=0 p v
    for p in $1 $(pgrep -P "$1" || true); do
        v=$(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo $total
}
HZ=$(getconf CLK_TCK)

core_ticks() { # "busy total" ticks of CPU $1 from /proc/stat
    awk -v c="cpu$1" '$1 == c { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat
}
busy_pct() { # before after (each "busy total")
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
        t = y[2] - x[2]; printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }'
}

rss_tree_kib() { # pid: RSS of pid and its children (nginx master + worker)
    local total=0 p v
    for p in $1 $(pgrep -P "$1" || true); do
        v=$(awk '/^VmRSS:/ {print $2}' /proc/$p/status 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo $total
}

IDLE_RES=$OUT/idle.txt
WRK_RES=$OUT/wrk.txt
: >"$IDLE_RES"
: >"$WRK_RES"

# ---- RSS per idle keep-alive connection (fresh proxy each)
if [ "$SKIP_IDLE" != 1 ]; then
    for p in $PROXIES; do
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

# ---- throughput and latency, interleaved rounds
to_ms() { # wrk latency like 1.23ms / 456.00us / 1.01s
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else print "nan" }'
}

if [ "$SKIP_WRK" != 1 ]; then
    UP=()
    for p in $PROXIES; do
        if start_proxy "$p"; then UP+=("$p"); else stop_proxy "$p"; fi
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        # rotate the order each round so no proxy always runs first
        order=("${UP[@]:$(( (r - 1) % ${#UP[@]} ))}" "${UP[@]:0:$(( (r - 1) % ${#UP[@]} ))}")
        for c in $CONNS; do
            for p in "${order[@]}"; do
                out=$TMP/wrk-$p-$c-$r.txt
                t0=$(cpu_ticks "${PPID_OF[$p]}")
                c0a=$(core_ticks 0) c1a=$(core_ticks 1)
                taskset -c 1 wrk -t"$WRK_THREADS" -c"$c" -d"${DURATION}s" --latency \
                    --timeout 5s "http://127.0.0.1:${PORT[$p]}/" >"$out" 2>&1 || true
                t1=$(cpu_ticks "${PPID_OF[$p]}")
                busy0=$(busy_pct "$c0a" "$(core_ticks 0)") busy1=$(busy_pct "$c1a" "$(core_ticks 1)")
                rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
                nreq=$(awk '/requests in/ {print $1}' "$out")
                eff=$(awk -v n="${nreq:-0}" -v t=$((t1 - t0)) -v hz="$HZ" 'BEGIN { if (t > 0) printf "%.0f", n / (t / hz); else print 0 }')
                p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
                p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
                errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$out")
                echo "$p $c $r ${rps:-0} $p50 $p99 $errs $eff $busy0 $busy1" >>"$WRK_RES"
                echo "round $r c=$c $p: ${rps:-0} req/s p50 ${p50}ms p99 ${p99}ms errors $errs, $eff req per proxy CPU-s, busy cpu0 $busy0% cpu1 $busy1%, load $(cut -d' ' -f1 /proc/loadavg)" >&2
                kill -0 "${PPID_OF[$p]}" 2>/dev/null || echo "warning: $p died" >&2
            done
        done
    done
fi

# ---- table
$PY - "$WRK_RES" "$IDLE_RES" "$PROXIES" "$CONNS" <<'EOF'
import statistics, sys
wrk, idle, proxies, conns = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
rows = {}
for line in open(wrk):
    p, c, r, rps, p50, p99, errs, eff, busy0, busy1 = line.split()
    rows.setdefault((p, c), []).append((float(rps), float(p50), float(p99), int(errs),
                                        float(eff), float(busy0), float(busy1)))
med = lambda xs: statistics.median(xs) if xs else float("nan")
agg = {k: (med([x[0] for x in v]), med([x[1] for x in v]), med([x[2] for x in v]),
           sum(x[3] for x in v), len(v), med([x[4] for x in v]), med([x[5] for x in v]),
           med([x[6] for x in v])) for k, v in rows.items()}
if agg:
    print("Throughput (median of rounds)")
    print("%-8s %6s %12s %9s %9s %7s %7s %12s %6s %6s" % (
        "proxy", "conns", "req/s", "p50 ms", "p99 ms", "errors", "rounds", "req/CPU-s",
        "cpu0%", "cpu1%"))
    for c in conns:
        for p in proxies:
            a = agg.get((p, c))
            if a:
                print("%-8s %6s %12.0f %9.3f %9.3f %7d %7d %12.0f %6.0f %6.0f" % (p, c, *a))
            else:
                print("%-8s %6s %12s %9s %9s %7s %7s %12s %6s %6s" % (
                    p, c, "n/a", "n/a", "n/a", "-", 0, "n/a", "n/a", "n/a"))
    print("cpu0% is the proxies' core, cpu1% the core of wrk and the backends: when cpu1% is")
    print("~100 and cpu0% is not, req/s is bounded by the load generator's core, not the proxy.")
    print()
    print("Ratios sky-lb / other (req/s and req/CPU-s: higher is better; p99: lower is better)")
    for c in conns:
        s = agg.get(("sky-lb", c))
        for o in ("nginx", "haproxy"):
            a = agg.get((o, c))
            if s and a and a[0] > 0:
                print("  c=%-4s sky-lb/%-8s req/s %.3f   p99 %.3f   req/CPU-s %.3f" % (
                    c, o, s[0] / a[0], s[2] / a[2], s[5] / a[5] if a[5] else float("nan")))
            else:
                print("  c=%-4s sky-lb/%-8s n/a" % (c, o))
    print()
lines = [l.split() for l in open(idle) if l.strip()]
if lines:
    print("RSS per idle keep-alive connection")
    print("%-8s %12s %12s %12s %12s" % ("proxy", "before KiB", "after KiB", "ok/total",
                                        "KiB/conn"))
    for l in lines:
        print("%-8s %12s %12s %12s %12s" % tuple(l[:5]))
EOF
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw results: $OUT (removed at exit unless OUT was set)" >&2
