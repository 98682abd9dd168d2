#!/usr/bin/env bash
# Per-request costs of the proxies, measures that do not depend on how
# loaded the machine is: syscalls per request by kind (perf tracepoints,
# counted in the kernel, no ptrace), context switches per request, and,
# for MODE=callgrind, user-space instructions per request (valgrind counts
# them itself; this VM exposes no hardware counters to perf).
#
#   bench/lb/profile.sh [proxy...]        (default: sky-lb)
#
# Same setup as run_bench.sh (bench/lb/lib.sh): two lbtest_backend upstreams
# and wrk on LOAD_CPU, the proxy on PROXY_CPU (no quota). wrk warms up for
# 1 s, then runs $DURATION s at each of $CONNS connections while the proxy
# is measured; per request = count / requests wrk completed.
#
# Env: SKY_BUILD_DIR (default build/ of this checkout), MODE=perf|callgrind,
#      CONNS="64 256", DURATION=5 (perf), CG_DURATION=10 (callgrind: the
#      proxy runs ~50x slower), PERF_RECORD=1 (also a cpu-clock profile of
#      each run: the top symbols are printed), QUOTA=<per cent of a core> (the
#      proxy in a cgroup under that CFS quota, as in run_bench.sh),
#      NEWCONN=1 (wrk sends "Connection: close": a client connection per
#      request, as in run_bench.sh), OUT=<dir to keep raw output>.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${SKY_BUILD_DIR:-$(cd "$HERE/../.." && pwd)/build}
MODE=${MODE:-perf}
CONNS=${CONNS:-"64 256"}
DURATION=${DURATION:-5}
CG_DURATION=${CG_DURATION:-10}
PERF_RECORD=${PERF_RECORD:-0}
PROXIES=${*:-sky-lb}
WRK_ARGS=()
[ "${NEWCONN:-0}" = 1 ] && WRK_ARGS=(-H "Connection: close")
# shellcheck source=bench/lb/lib.sh
. "$HERE/lib.sh"
lib_need_tools
lib_init
OUT=${OUT:-$TMP}
mkdir -p "$OUT"

SYSCALLS="read write writev readv recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait
epoll_ctl accept4 close splice shutdown setsockopt getsockopt connect ioctl"
# wake-ups the proxy makes (a peer asleep in epoll_wait) and the interrupts
# to the other core they cost it, counted in the proxy's context
EVENTS=task-clock,context-switches,raw_syscalls:sys_enter,sched:sched_waking,ipi:ipi_send_cpu
# packets the proxy's context sends (data and pure ACKs) and kernel timers it arms
EVENTS+=,net:net_dev_xmit,timer:timer_start,timer:hrtimer_start
for s in $SYSCALLS; do EVENTS+=",syscalls:sys_enter_$s"; done

QUOTA=${QUOTA:-}
if [ -n "$QUOTA" ]; then
    cg_init "skylb-profile.$$" || exit 1
    for p in $PROXIES; do cg_make "$p" && cg_quota "$p" "$QUOTA"; done
fi
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs), mode $MODE${QUOTA:+, quota $QUOTA %}" >&2
start_backends

ticks_us() { # pid: "utime stime" in clock ticks, pid and its children
    local p u=0 s=0 a b
    for p in $(proxy_pids "$1"); do
        read -r a b < <(awk '{print $14, $15}' /proc/$p/stat 2>/dev/null || echo 0 0)
        u=$((u + a)) s=$((s + b))
    done
    echo $u $s
}
requests_of() { awk '/requests in/ {print $1}' "$1"; }

for p in $PROXIES; do
    if [ "$MODE" = callgrind ]; then
        WRAP=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$p.%p")
    else
        WRAP=()
    fi
    start_proxy "$p" || exit 1
    pids=$(proxy_pids "${PPID_OF[$p]}" | tr ' ' ',')
    for c in $CONNS; do
        taskset -c "$LOAD_CPU" wrk -t1 "${WRK_ARGS[@]}" -c"$c" -d1s "http://127.0.0.1:${PORT[$p]}/" >/dev/null 2>&1 || true
        w=$OUT/wrk-$p-$c.txt
        if [ "$MODE" = callgrind ]; then
            callgrind_control -z "${PPID_OF[$p]}" >/dev/null
            taskset -c "$LOAD_CPU" wrk -t1 "${WRK_ARGS[@]}" -c"$c" -d"${CG_DURATION}s" --timeout 10s \
                "http://127.0.0.1:${PORT[$p]}/" >"$w" 2>&1 || true
            callgrind_control -d "c$c" "${PPID_OF[$p]}" >/dev/null
            sleep 0.5
            f=$(ls -t "$OUT"/callgrind."$p".*."${PPID_OF[$p]}"* 2>/dev/null | head -1 || true)
            [ -n "$f" ] || f=$(ls -t "$OUT"/callgrind."$p".* | head -1)
            n=$(requests_of "$w")
            ir=$(awk '/^summary:/ {print $2} /^totals:/ {print $2}' "$f" | tail -1)
            awk -v p="$p" -v c="$c" -v n="$n" -v ir="$ir" 'BEGIN {
                printf "%-11s c=%-4s %8d requests  %8.0f instructions/request (user space)\n", p, c, n, ir / n }'
            # self cost per request of the top functions (entries near 100 % are
            # the thread's frames that were live when the counters were zeroed)
            callgrind_annotate --auto=no --threshold=100 "$f" 2>/dev/null |
                awk -v n="$n" 'match($0, /^ *[0-9,]+ \( *[0-9.]+%\) +/) {
                        head = substr($0, 1, RLENGTH); fn = substr($0, RLENGTH + 1)
                        split(head, a, "("); v = a[1]; gsub(/[ ,]/, "", v)
                        pct = a[2]; gsub(/[ %)]/, "", pct)
                        if (pct + 0 >= 99 || k >= 40) next
                        sub(/ \[.*$/, "", fn); sub(/^.*\//, "", fn)
                        printf "    %7.0f  %s\n", v / n, fn; k++ }' || true
            cp "$f" "$OUT/callgrind-$p-c$c.out" 2>/dev/null || true
        else
            read -r u0 s0 < <(ticks_us "${PPID_OF[$p]}")
            perf stat -x, -e "$EVENTS" -p "$pids" -o "$OUT/perf-$p-$c.csv" -- \
                taskset -c "$LOAD_CPU" wrk -t1 "${WRK_ARGS[@]}" -c"$c" -d"${DURATION}s" --timeout 10s \
                "http://127.0.0.1:${PORT[$p]}/" >"$w" 2>&1 || true
            read -r u1 s1 < <(ticks_us "${PPID_OF[$p]}")
            n=$(requests_of "$w")
            echo "$p c=$c: $n requests in ${DURATION}s, per request:"
            awk -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" 'BEGIN {
                printf "    %-16s %8.2f us\n    %-16s %8.2f us\n", "user time", 1e6 * u / hz / n,
                    "system time", 1e6 * s / hz / n }'
            awk -F, -v n="$n" -v p="$p" -v c="$c" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" '
                $3 == "task-clock" { cpu = 1000 * $1 / n }
                $3 == "raw_syscalls:sys_enter" { sc = $1 / n }
                $3 == "context-switches" { cs = $1 / n }
                $3 == "sched:sched_waking" { wk = $1 / n }
                $3 == "ipi:ipi_send_cpu" { ipi = $1 / n }
                END { printf "summary %s c=%s requests %d cpu_us %.2f user_us %.2f sys_us %.2f syscalls %.3f cs %.4f wakeups %.3f ipis %.3f\n",
                      p, c, n, cpu, 1e6 * u / hz / n, 1e6 * s / hz / n, sc, cs, wk, ipi >"/dev/stderr" }' "$OUT/perf-$p-$c.csv"
            awk -F, -v n="$n" '$1 ~ /^[0-9.]+$/ {
                    name = $3; sub(/^syscalls:sys_enter_/, "", name); sub(/^raw_syscalls:sys_enter/, "syscalls (all)", name)
                    sub(/^sched:sched_waking/, "wake-ups made", name); sub(/^ipi:ipi_send_cpu/, "IPIs sent", name)
                    sub(/^net:net_dev_xmit/, "packets sent", name); sub(/^timer:/, "", name)
                    if ($3 == "task-clock") printf "    %-16s %8.2f us\n", "CPU time", 1000 * $1 / n
                    else if ($1 > 0) printf "    %-16s %8.3f\n", name, $1 / n }' "$OUT/perf-$p-$c.csv"
            if [ "${WAKES:-0}" = 1 ]; then
                # whom the proxy wakes, per request
                w3=$OUT/wrk-wakes-$p-$c.txt
                perf record -q -e sched:sched_waking -p "$pids" -o "$OUT/wakes-$p-$c.data" -- \
                    taskset -c "$LOAD_CPU" wrk -t1 "${WRK_ARGS[@]}" -c"$c" -d"${DURATION}s" \
                    "http://127.0.0.1:${PORT[$p]}/" >"$w3" 2>&1 || true
                n3=$(requests_of "$w3")
                { perf script -i "$OUT/wakes-$p-$c.data" -F trace 2>/dev/null || true; } |
                    sed -n 's/^comm=\([^ ]*\) .*/\1/p' | sort | uniq -c | sort -rn |
                    awk -v n="$n3" '{ printf "    woke %-16s %.4f per request\n", $2, $1 / n }'
            fi
            if [ "$PERF_RECORD" = 1 ]; then
                # cpu-clock samples (the only sampling event here) at 4 kHz: the
                # top symbols as microseconds per request
                w2=$OUT/wrk-record-$p-$c.txt
                perf record -q -F 4000 -e cpu-clock -g -p "$pids" -o "$OUT/perf-$p-$c.data" -- \
                    taskset -c "$LOAD_CPU" wrk -t1 "${WRK_ARGS[@]}" -c"$c" -d"${DURATION}s" \
                    "http://127.0.0.1:${PORT[$p]}/" >"$w2" 2>&1 || true
                n2=$(requests_of "$w2")
                echo "  profile ($n2 requests): us/request  symbol"
                { perf report -i "$OUT/perf-$p-$c.data" --no-children --stdio --sort sym -n 2>/dev/null || true; } |
                    awk -v n="$n2" '/^ +[0-9.]+%/ && k < 40 { sym = $4; for (i = 5; i <= NF; i++) sym = sym " " $i
                        printf "    %6.3f  %s %s\n", $2 * 250 / n, $3, sym; k++ }'
            fi
        fi
    done
    stop_proxy "$p"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
