#!/usr/bin/env bash
# Where the CPU goes while zonlb-afxdp forwards 60-byte UDP as fast as the generator offers it: the topology
# and placement of compare.sh (generator on CPU 0, load balancer work on CPU 1), zonlb-afxdp with perf maps
# (DOTNET_PerfMapEnabled=1, so JIT-compiled methods have names), and `perf record -a -g` over SECONDS.
# Prints CPU 1's time by thread and by symbol, and each NAPI thread's symbols; keeps the recording in
# /tmp/zonlb-profile.perf.data for `perf report -i`. The config is compare.sh's (bench/e2e/lib.sh: the worker
# SCHED_FIFO at WORKER_FIFO, default 10; WORKER_FIFO=0 for nice WORKER_NICE); ENGINE_EXTRA adds [engine] lines.
# FORWARDER=xskfwd profiles the C reference forwarder (bench/e2e/xskfwd.c) in the same place instead. Either way
# it also prints what was forwarded while recording and CPU 1's time per forwarded frame, in all and in user space.
# Needs perf (Debian: apt-get install linux-perf; scripts/setup.sh does not install it).
# Usage (as root): [FORWARDER=xskfwd] [LBC_RECEIVE=sender] [WORKER_FIFO=0] [ENGINE_EXTRA=...] bench/e2e/profile.sh [SECONDS=5]
set -euo pipefail
command -v perf >/dev/null || { echo "profile.sh: perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 1; }
cd "$(dirname "$0")/../.."
secs=${1:-5}
root=$PWD
dll=$root/src/Cli/bin/Release/net10.0/zonlb-afxdp.dll
gen=$root/bench/ZonLb.TrafficGen/bin/Release/net10.0/zonlb-trafficgen.dll
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh
. bench/e2e/lib.sh
id="zbp$$"; C="$id-c"; L="$id-l"; S="$id-s"; tmp="/tmp/$id"; mkdir -p "$tmp"
LB_PID=""; XSKFWD_PID=""
cleanup() {
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null || true
    [ -n "$XSKFWD_PID" ] && kill -TERM "$XSKFWD_PID" 2>/dev/null && wait "$XSKFWD_PID" 2>/dev/null || true
    zlb_topology_delete "$C" "$L" "$S"
    [ -f "$tmp/perf.data" ] && mv "$tmp/perf.data" /tmp/zonlb-profile.perf.data || true
    rm -rf "$tmp"
}
trap cleanup EXIT
zlb_topology "$C" "$L" "$S" 1
clang $(bpf/cflags.sh) -c bench/e2e/sink.bpf.c -o "$tmp/sink.o"
ip -n "$S" link set dev eth0 xdp obj "$tmp/sink.o" sec xdp
mac() { ip -n "$1" -o link show dev "$2" | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/'; }
if [ "${FORWARDER:-zonlb}" = xskfwd ]; then
    worker=xskfwd
    bench_build_xskfwd "$tmp"
    bench_start_xskfwd "$L" "$tmp" "$(mac "$C" eth0)" "$(mac "$S" eth0)" || exit 1
else
    worker=zonlb-worker-0
    bench_config "$tmp/lb.toml" "$tmp/lb.sock"
    DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 zlb_start "$L" "$tmp/lb.toml" "$tmp/lb.log" 1 || exit 1
fi
bench_place_receive "$L"
ip netns exec "$C" ping -c 1 -W 1 10.10.0.1 >/dev/null || true
LBC_MAC=$(mac "$L" lbc)
ip -n "$C" neigh replace 10.10.0.1 lladdr "$LBC_MAC" dev eth0
ip netns exec "$C" taskset -c 0 dotnet "$gen" eth0 "$LBC_MAC" 10.10.0.2 10.10.0.1 9 --flows 1024 --seconds $((secs + 3)) > "$tmp/gen.log" &
sleep 1.5
before=$(bench_sink_count "$S")
perf record -a -g -C 1 -o "$tmp/perf.data" -- sleep "$secs" 2> /dev/null
after=$(bench_sink_count "$S")
top -b -H -n 1 -d 1 | head -25 | tail -18
wait %2 2>/dev/null || true
cat "$tmp/gen.log"
[ ! -f "$tmp/lb.log" ] || grep -E " rx [0-9]+ pps" "$tmp/lb.log" | tail -3
pps=$(( (after - before) / secs ))
# CPU 1's samples by thread and object: busy = all but the idle task; user = the forwarder's non-kernel objects
perf report -i "$tmp/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" |
    awk -v w="$worker" -v pps="$pps" '{ p = $1; sub(/%/, "", p) } $2 != "swapper" { busy += p } $2 == w && $3 != "[kernel.kallsyms]" { user += p }
        END { printf "== forwarded %d pps while recording; CPU 1 busy %.1f %%: %.3f us per frame, of which %s user space %.3f us\n",
              pps, busy, busy / 100 * 1e6 / pps, w, user / 100 * 1e6 / pps }'
set +o pipefail # the reports below are cut with head, which may end perf report early
echo "== CPU 1, by thread"
perf report -i "$tmp/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -12
echo "== the worker thread ($worker): kernel vs user space (JIT code shows as [unknown]/perf-PID.map)"
perf report -i "$tmp/perf.data" --no-children --comm "$worker" --sort dso --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -8
echo "== the worker thread, by symbol"
perf report -i "$tmp/perf.data" --no-children --comm "$worker" --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -25
for t in $(perf report -i "$tmp/perf.data" --no-children --sort comm --stdio 2>/dev/null | awk '$2 ~ /^napi\// { print $2 }'); do
    echo "== $t, by symbol"
    perf report -i "$tmp/perf.data" --no-children --comm "$t" --sort symbol --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | head -15 || true
done
echo "== CPU 1, by symbol (self time)"
perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -40
