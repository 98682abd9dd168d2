# Shared by bench/lb/run_bench.sh and bench/lb/profile.sh (sourced, not run).
#
# Two lbtest_backend upstreams and the contenders, configured alike:
#   sky-lb       --workers 1, round-robin, its own keep-alive pool, adds
#                X-Forwarded-For and X-Forwarded-Proto, forwards Host
#   nginx        worker_processes 1, keepalive 512 to the upstreams,
#                proxy_http_version 1.1, X-Forwarded-For/-Proto, Host passed
#   haproxy      mode http, nbthread 1, http-reuse always, option forwardfor,
#                X-Forwarded-Proto set
#   haproxy-tcp  mode tcp, nbthread 1: a byte forwarder that parses nothing
#                (one upstream connection per client connection), the ceiling
#   sky-lb-base  another sky-lb binary, $SKYLB_BASE, set up as sky-lb (to
#                compare two builds side by side)
# Logging off everywhere, client keep-alive unlimited.
#
# The caller sets: BUILD (build tree), PROXY_CPU, LOAD_CPU; then calls
# lib_init, which makes $TMP and installs the cleanup trap (every process
# started here, every cgroup made here, $TMP).

PY=/usr/bin/python3
SKYLB=${SKYLB:-$BUILD/lb/sky-lb}
BACKEND=$BUILD/tests/lbtest_backend
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PIDS=()
CG_DIRS=() # cgroup directories made here, children first at cleanup
CG_V=      # 1 or 2 once cg_init ran
declare -A PORT PPID_OF CG_OF

lib_need_tools() {
    local need=()
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
}

lib_cleanup() {
    local p d i
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for ((i = 0; i < 30; i++)); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # cgroups: empty by now (their processes were ours); children before parents
    for ((i = ${#CG_DIRS[@]} - 1; i >= 0; i--)); do
        d=${CG_DIRS[$i]}
        [ -d "$d" ] || continue
        # a process that outlived kill -9 (cannot happen with ours) keeps the group
        rmdir "$d" 2>/dev/null || echo "warning: could not remove cgroup $d" >&2
    done
    rm -rf "$TMP"
}

lib_init() {
    TMP=$(mktemp -d /tmp/skylb-bench.XXXXXX)
    trap lib_cleanup EXIT
    trap 'exit 130' INT TERM
}

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
    local log=$TMP/backend-$1.log i
    taskset -c "$LOAD_CPU" "$BACKEND" --listen 127.0.0.1:0 --name "$1" 2>"$log" &
    PIDS+=($!)
    for ((i = 0; i < 100; i++)); do
        BE_PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | cut -d: -f2 || true)
        [ -n "$BE_PORT" ] && return 0
        sleep 0.05
    done
    echo "backend $1 did not start" >&2
    exit 1
}

start_backends() { # -> B1 B2
    start_backend b1; B1=$BE_PORT
    start_backend b2; B2=$BE_PORT
    echo "backends on 127.0.0.1:$B1 and 127.0.0.1:$B2 (CPU $LOAD_CPU)" >&2
}

# ---- cgroups: one per proxy under <base>, pinned to PROXY_CPU, quota set per run

cg_init() { # base name
    local base=$1
    if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] && [ -f /sys/fs/cgroup/cpuset/cpuset.cpus ]; then
        CG_V=1
        CG_CPU_ROOT=/sys/fs/cgroup/cpu/$base
        CG_SET_ROOT=/sys/fs/cgroup/cpuset/$base
        mkdir "$CG_CPU_ROOT" && CG_DIRS+=("$CG_CPU_ROOT")
        mkdir "$CG_SET_ROOT" && CG_DIRS+=("$CG_SET_ROOT")
        cat /sys/fs/cgroup/cpuset/cpuset.mems >"$CG_SET_ROOT/cpuset.mems"
        echo "$PROXY_CPU" >"$CG_SET_ROOT/cpuset.cpus"
    elif [ -f /sys/fs/cgroup/cgroup.controllers ] &&
        grep -qw cpu /sys/fs/cgroup/cgroup.controllers &&
        grep -qw cpuset /sys/fs/cgroup/cgroup.controllers; then
        CG_V=2
        # the root may enable controllers for its children whatever runs in it
        echo "+cpu +cpuset" >/sys/fs/cgroup/cgroup.subtree_control
        CG_CPU_ROOT=/sys/fs/cgroup/$base
        CG_SET_ROOT=$CG_CPU_ROOT
        mkdir "$CG_CPU_ROOT" && CG_DIRS+=("$CG_CPU_ROOT")
        echo "+cpu +cpuset" >"$CG_CPU_ROOT/cgroup.subtree_control"
        echo "$PROXY_CPU" >"$CG_CPU_ROOT/cpuset.cpus"
    else
        echo "no cgroup v1 cpu+cpuset hierarchy and no cgroup v2 with cpu and cpuset" >&2
        return 1
    fi
}

cg_make() { # proxy -> CG_OF[proxy] = "cpu-dir cpuset-dir" (the same dir on v2)
    local d1=$CG_CPU_ROOT/$1 d2=$CG_SET_ROOT/$1
    mkdir "$d1" && CG_DIRS+=("$d1")
    if [ "$CG_V" = 1 ]; then
        mkdir "$d2" && CG_DIRS+=("$d2")
        cat "$CG_SET_ROOT/cpuset.mems" >"$d2/cpuset.mems"
        echo "$PROXY_CPU" >"$d2/cpuset.cpus"
    else
        echo "$PROXY_CPU" >"$d1/cpuset.cpus"
    fi
    CG_OF[$1]="$d1 $d2"
}

cg_quota() { # proxy pct|off: CFS quota as a share of one core (period 100 ms)
    local d1 d2
    read -r d1 d2 <<<"${CG_OF[$1]}"
    if [ "$CG_V" = 1 ]; then
        echo 100000 >"$d1/cpu.cfs_period_us"
        if [ "$2" = off ]; then echo -1 >"$d1/cpu.cfs_quota_us"; else echo $(($2 * 1000)) >"$d1/cpu.cfs_quota_us"; fi
    else
        if [ "$2" = off ]; then echo "max 100000" >"$d1/cpu.max"; else echo "$(($2 * 1000)) 100000" >"$d1/cpu.max"; fi
    fi
}

cg_throttled() { # proxy -> "nr_throttled throttled_ms"
    local d1 d2
    read -r d1 d2 <<<"${CG_OF[$1]}"
    if [ "$CG_V" = 1 ]; then
        awk '$1 == "nr_throttled" {n = $2} $1 == "throttled_time" {t = $2 / 1e6} END {printf "%d %.0f\n", n, t}' "$d1/cpu.stat"
    else
        awk '$1 == "nr_throttled" {n = $2} $1 == "throttled_usec" {t = $2 / 1e3} END {printf "%d %.0f\n", n, t}' "$d1/cpu.stat"
    fi
}

cg_join() { # proxy: moves this (sub)shell into the proxy's cgroups
    local d1 d2
    read -r d1 d2 <<<"${CG_OF[$1]}"
    echo "$BASHPID" >"$d1/cgroup.procs"
    [ "$d1" = "$d2" ] || echo "$BASHPID" >"$d2/cgroup.procs"
}

# launch proxy cmd...: in the background, inside the proxy's cgroup when it
# has one (joined before exec, so nginx's worker is inside too), else pinned
# to PROXY_CPU; or under ${WRAP[@]} (e.g. valgrind) when that is set.
WRAP=()
launch() {
    local name=$1
    shift
    if [ ${#WRAP[@]} -gt 0 ]; then
        "${WRAP[@]}" "$@" &
    elif [ -n "${CG_OF[$name]:-}" ]; then
        (cg_join "$name" && exec "$@") &
    else
        taskset -c "$PROXY_CPU" "$@" &
    fi
}

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
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
}

write_haproxy_conf() { # port mode(http|tcp)
    local maxconn=${IDLE_CONNS:-10000}
    {
        cat <<EOF
global
    nbthread 1
    maxconn $((maxconn + 2000))
    ulimit-n $(ulimit -n)
    no strict-limits
defaults
    mode $2
    timeout connect 5s
    timeout client 300s
    timeout server 300s
EOF
        if [ "$2" = http ]; then
            cat <<EOF
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always
    option forwardfor
EOF
        fi
        cat <<EOF
frontend fe
    bind 127.0.0.1:$1
    backlog 4096
    default_backend be
EOF
        [ "$2" = http ] && echo "    http-request set-header X-Forwarded-Proto http"
        cat <<EOF
backend be
    balance roundrobin
    server s1 127.0.0.1:$B1
    server s2 127.0.0.1:$B2
EOF
    } >"$TMP/haproxy-$2.cfg"
}

# start_proxy name: sets PORT[name], PPID_OF[name]; returns 1 if it does
# not come up or does not proxy GET /.
start_proxy() {
    local name=$1 port mode=http
    port=$(free_port)
    case $name in
    sky-lb | sky-lb-base)
        local bin=$SKYLB
        [ "$name" = sky-lb-base ] && bin=${SKYLB_BASE:-}
        [ -x "$bin" ] || { echo "$name: '$bin' missing" >&2; return 1; }
        launch "$name" "$bin" --listen 127.0.0.1:$port --workers 1 --policy round_robin \
            --replica http://127.0.0.1:$B1 --replica http://127.0.0.1:$B2 \
            2>"$TMP/$name.log" >/dev/null
        ;;
    nginx)
        write_nginx_conf "$port"
        launch nginx "$NGINX" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" \
            2>"$TMP/nginx.log"
        ;;
    haproxy | haproxy-tcp)
        [ "$name" = haproxy-tcp ] && mode=tcp
        write_haproxy_conf "$port" $mode
        launch "$name" "$HAPROXY" -db -f "$TMP/haproxy-$mode.cfg" >"$TMP/$name.log" 2>&1
        ;;
    *)
        echo "unknown proxy $name" >&2
        return 1
        ;;
    esac
    PPID_OF[$name]=$!
    PIDS+=($!)
    PORT[$name]=$port
    if ! wait_port "$port" 60; then
        echo "$name did not start; log:" >&2
        tail -5 "$TMP/$name.log" >&2 2>/dev/null || true
        return 1
    fi
    # one request to check it proxies
    if ! curl -sf -m 20 "http://127.0.0.1:$port/" >/dev/null; then
        echo "$name does not proxy GET / correctly" >&2
        return 1
    fi
}

stop_proxy() {
    local pid=${PPID_OF[$1]:-} i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PPID_OF[$1]=
}

proxy_pids() { # pid: pid and its children (nginx master + worker)
    echo "$1" $(pgrep -P "$1" || true)
}

cpu_ticks() { # pid: utime+stime (clock ticks) of pid and its children
    local total=0 p v
    for p in $(proxy_pids "$1"); do
        v=$(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo $total
}
HZ=$(getconf CLK_TCK)

core_ticks() { # "busy total" ticks of CPU $1 from /proc/stat
    awk -v c="cpu$1" '$1 == c { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat
}
core_task_ticks() { # "tasks total" ticks of CPU $1: user+nice+system (no irq time), all
    awk -v c="cpu$1" '$1 == c { b = $2 + $3 + $4; print b, b + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
busy_pct() { # before after (each "busy total")
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
        t = y[2] - x[2]; printf "%.0f", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }'
}

rss_tree_kib() { # pid: RSS of pid and its children
    local total=0 p v
    for p in $(proxy_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' /proc/$p/status 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo $total
}

to_ms() { # wrk latency like 1.23ms / 456.00us / 1.01s
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else print "nan" }'
}
