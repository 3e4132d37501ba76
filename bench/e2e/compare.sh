#!/usr/bin/env bash
# The end-to-end benchmark: one topology, one generator, one sink, five ways to get from the client to the
# backend, measured in one run:
#
#   client ns [eth0 10.10.0.2] --veth-- [lbc 10.10.0.1 | LB ns | lbs 10.20.0.1] --veth-- [eth0 10.20.0.2] backend ns
#
#   zonlb    zonlb-afxdp, full NAT through a UDP service (VIP 10.10.0.1:9 -> 10.20.0.2:9) and a TCP one (5201)
#   nftables the kernel's forwarding with nftables DNAT + masquerade and conntrack (what an operator would use)
#   kernel   plain kernel IP forwarding, no NAT (the client sends to 10.20.0.2)
#   xdp      an XDP program on lbc redirecting to lbs with the MACs rewritten (the in-kernel veth ceiling)
#   zonlb+control  the same with its control plane busy (not in the default MODES): `stats` and the metrics endpoint
#            each CONTROL_HZ (default 100) times a second over one connection each, and a TCP health check of
#            the backend every 0.2 s; measured after CONTROL_WARMUP (default 10) seconds of that load, once the
#            control plane's code has reached the JIT's final tier
#   xskfwd   bench/e2e/xskfwd.c: a minimal AF_XDP forwarder in C doing the same full NAT with the engine's ring
#            handling and nothing else (no connection table, no balancing): what copy-mode AF_XDP leaves for any
#            userspace forwarder here; placed as zonlb-afxdp's worker is
#
# UDP: 60-byte frames (18-byte payloads) from zonlb-trafficgen (bench/ZonLb.TrafficGen, AF_XDP TX on the
# client's eth0), 1 flow and 1024 flows (source ports); counted by an XDP sink on the backend's eth0
# (bench/e2e/sink.bpf.c: counts and drops UDP to port 9, passes the rest). TCP: iperf3 (sink detached).
# Placement on this 2-core machine: the generator (and iperf3's client) run on CPU 0 (taskset); the load
# balancer's work on CPU 1:
# - lbc's receive work: threaded NAPI pinned to CPU 1 (zonlb and xdp rows: veth runs NAPI when an XDP program is
#   attached), and RPS to CPU 1 (kernel and nftables rows: frames from an AF_XDP or TSO sender skip veth's NAPI
#   and are received through the backlog, which without RPS is the sender's CPU 0);
# - UDP: the backend's eth0 runs the XDP sink in softirq on the CPU that sends to it, CPU 1, in every row (on
#   CPU 0, which the generator saturates, it would cap the kernel rows: their frames complete only when the sink
#   frees them, so the generator cannot run ahead of them);
# - TCP: both ends on CPU 0, which they leave mostly idle: iperf3's client and server (taskset) and the
#   backend's receive work (RPS on its eth0; the sink is detached, so frames reach the backlog);
# - zonlb-afxdp's worker (and xskfwd) pinned to CPU 1 (engine.cpu_affinity) and SCHED_FIFO at priority 10
#   (engine.worker_fifo_priority; WORKER_FIFO=0 runs it at nice WORKER_NICE, default -15, instead): it then runs
#   as soon as lbc's NAPI hands it frames and sleeps while it has none, instead of both taking turns by the
#   scheduler's time slices, which let lbc's NAPI run ahead and fill the socket's rings with frames the worker
#   never saw.
# Every case runs REPEATS times; the table shows median and min-max.
#
# Usage (as root): [MODES="zonlb kernel"] bench/e2e/compare.sh [SECONDS=5] [REPEATS=5]     (run scripts/setup.sh first)
# Knobs for experiments: RATE=PPS paces the generator (default: as fast as it can); ENGINE_EXTRA="key = value"
# adds lines to zonlb-afxdp's [engine] table; WORKER_FIFO, WORKER_NICE; SHOW_LOG=1 prints zonlb-afxdp's log when
# it stops; CASES="udp" or "tcp" runs only those; MTU=N sets every veth's MTU (larger frames than a 2048-byte
# UMEM chunk holds need ENGINE_EXTRA="frame_size = 4096"; above about 3,500 only the kernel rows, zonlb with
# ENGINE_EXTRA="multi_buffer = true" and xskfwd with FRAGS=1, which run multi-buffer: MTU=9000 FRAGS=1 CASES=tcp
# MODES="zonlb xskfwd kernel" ENGINE_EXTRA="multi_buffer = true"); LBC_RECEIVE=sender
# leaves lbc's receive work where veth puts it by default, on the sending CPU 0 (bench/e2e/lib.sh), for every row.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
repeats=${2:-5}
root=$PWD
dll=$root/src/Cli/bin/Release/net10.0/zonlb-afxdp.dll
gen=$root/bench/ZonLb.TrafficGen/bin/Release/net10.0/zonlb-trafficgen.dll
[ -f "$dll" ] && [ -f "$gen" ] || dotnet build ZonLb.sln -c Release >/dev/null
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh
. bench/e2e/lib.sh
id="zbe$$"; C="$id-c"; L="$id-l"; S="$id-s"; tmp="/tmp/$id"; mkdir -p "$tmp"
LB_PID=""; IPERF_PID=""; XSKFWD_PID=""
cleanup() {
    [ -n "${LOAD_PID:-}" ] && kill "$LOAD_PID" 2>/dev/null || true
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null || true
    [ -n "$XSKFWD_PID" ] && kill -TERM "$XSKFWD_PID" 2>/dev/null && wait "$XSKFWD_PID" 2>/dev/null || true
    [ -n "$IPERF_PID" ] && kill -TERM "$IPERF_PID" 2>/dev/null || true
    zlb_topology_delete "$C" "$L" "$S"
    rm -rf "$tmp"
}
trap cleanup EXIT

zlb_topology "$C" "$L" "$S" 1
if [ -n "${MTU:-}" ]; then # every veth end, before any XDP program is attached
    ip -n "$C" link set eth0 mtu "$MTU"; ip -n "$S" link set eth0 mtu "$MTU"
    ip -n "$L" link set lbc mtu "$MTU"; ip -n "$L" link set lbs mtu "$MTU"
fi
ip -n "$S" route add 10.10.0.0/24 via 10.20.0.1   # the non-NAT rows: routes both ways through the LB
ip -n "$C" route add 10.20.0.0/24 via 10.10.0.1
mac() { ip -n "$1" -o link show dev "$2" | sed -E 's/.*link\/ether ([0-9a-f:]+).*/\1/'; }
hexmac() { echo "0x${1//:/,0x}"; }
LBC_MAC=$(mac "$L" lbc); LBS_MAC=$(mac "$L" lbs); BE_MAC=$(mac "$S" eth0); CLIENT_MAC=$(mac "$C" eth0)
LBS_IFINDEX=$(ip -n "$L" -o link show dev lbs | cut -d: -f1)
read -r -a cflags <<<"$(bpf/cflags.sh)"
clang "${cflags[@]}" -c bench/e2e/sink.bpf.c -o "$tmp/sink.o"
clang "${cflags[@]}" -DOUT_IFINDEX="$LBS_IFINDEX" -DOUT_SRC_MAC="$(hexmac "$LBS_MAC")" -DOUT_DST_MAC="$(hexmac "$BE_MAC")" \
    -c bench/e2e/redirect.bpf.c -o "$tmp/redirect.o"
bench_build_xskfwd "$tmp"
ip netns exec "$S" taskset -c 0 iperf3 -s -B 10.20.0.2 -p 5201 >/dev/null 2>&1 &
IPERF_PID=$!
# TCP's two ends on CPU 0: the server (above), the client (tcp_run) and the backend's receive work (RPS)
ip netns exec "$S" sh -c 'echo 1 > /sys/class/net/eth0/queues/rx-0/rps_cpus'

sink_on()  { ip -n "$S" link set dev eth0 xdp obj "$tmp/sink.o" sec xdp; }
sink_off() { ip -n "$S" link set dev eth0 xdp off; }
sink_count() { bench_sink_count "$S"; }
start_zonlb() { # [CONTROL]
    bench_config "$tmp/lb.toml" "$tmp/lb.sock" "${1:-0}"
    zlb_start "$L" "$tmp/lb.toml" "$tmp/lb.log" || exit 1
}
# the control plane kept busy (zonlb+control): stats and metrics each ${CONTROL_HZ:-100} times a second
LOAD_PID=""
start_control_load() {
    ip netns exec "$L" taskset -c 0 dotnet "$gen" control-load "$tmp/lb.sock" http://127.0.0.1:9464/metrics --hz "${CONTROL_HZ:-100}" > "$tmp/load.txt" 2>&1 &
    LOAD_PID=$!
}
stop_control_load() { kill -TERM "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=""; cat "$tmp/load.txt" | sed 's/^/   /'; }
start_xskfwd() { bench_start_xskfwd "$L" "$tmp" "$CLIENT_MAC" "$BE_MAC" || exit 1; }
stop_xskfwd() { kill -TERM "$XSKFWD_PID"; wait "$XSKFWD_PID" || true; XSKFWD_PID=""; [ -z "${SHOW_LOG:-}" ] || { cat "$tmp/xskfwd.log"; link_drops; }; }
stop_zonlb() { kill -TERM "$LB_PID"; wait "$LB_PID" || true; LB_PID=""; [ -z "${SHOW_LOG:-}" ] || { tail -n 40 "$tmp/lb.log"; link_drops; }; }
# each veth end's packet and drop counters (where frames were lost: SHOW_LOG=1)
link_drops() {
    for x in "$C eth0" "$L lbc" "$L lbs" "$S eth0"; do
        set -- $x
        ip -n "$1" -s -s link show dev "$2" | awk -v n="$1/$2" '/RX:/ { getline; rx = $2 " rx, " $4 " rx dropped" } /TX:/ { getline; tx = $2 " tx, " $4 " tx dropped" } END { print n ": " rx "; " tx }'
    done
}

setup() { # mode
    case $1 in
        zonlb) start_zonlb ;;
        zonlb+control) start_zonlb 1; start_control_load; sleep "${CONTROL_WARMUP:-10}" ;; # past the JIT's first tiers
        xskfwd) start_xskfwd ;;
        nftables)
            ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=1
            ip netns exec "$L" nft -f - <<NFT
table ip zbench {
    chain pre { type nat hook prerouting priority dstnat; ip daddr 10.10.0.1 udp dport 9 dnat to 10.20.0.2; ip daddr 10.10.0.1 tcp dport 5201 dnat to 10.20.0.2; }
    chain post { type nat hook postrouting priority srcnat; oifname "lbs" masquerade; }
}
NFT
            ip netns exec "$L" ethtool -K lbc gro on >/dev/null ;;
        kernel)
            ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=1
            ip netns exec "$L" ethtool -K lbc gro on >/dev/null ;;
        xdp)
            ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=1 # TCP's other direction, and ARP's sake
            ip -n "$L" link set dev lbc xdp obj "$tmp/redirect.o" sec xdp ;;
    esac
    bench_place_receive "$L"
}
teardown() { # mode
    case $1 in
        zonlb) stop_zonlb ;;
        zonlb+control) stop_control_load; stop_zonlb ;;
        xskfwd) stop_xskfwd ;;
        nftables) ip netns exec "$L" nft delete table ip zbench; ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=0
                  ip netns exec "$L" ethtool -K lbc gro off >/dev/null ;;
        kernel) ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=0; ip netns exec "$L" ethtool -K lbc gro off >/dev/null ;;
        xdp) ip -n "$L" link set dev lbc xdp off; ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=0 ;;
    esac
}
target() { case $1 in zonlb|zonlb+control|nftables|xskfwd) echo 10.10.0.1 ;; *) echo 10.20.0.2 ;; esac; }

udp_run() { # mode flows -> "forwarded offered" pps
    local before after out
    ip -n "$C" neigh replace "$(target "$1")" lladdr "$LBC_MAC" dev eth0 2>/dev/null || true
    ip netns exec "$C" ping -c 1 -W 1 "$(target "$1")" >/dev/null 2>&1 || true # the LB's neighbour entries
    before=$(sink_count)
    out=$(ip netns exec "$C" taskset -c 0 dotnet "$gen" eth0 "$LBC_MAC" 10.10.0.2 "$(target "$1")" 9 --flows "$2" --seconds "$secs" ${RATE:+--rate "$RATE"})
    sleep 0.2
    after=$(sink_count)
    local offered; offered=$(echo "$out" | sed -nE 's/^offered ([0-9]+) pps.*/\1/p')
    echo "$(( (after - before) / secs )) $offered"
}
tcp_run() { # mode -> Gbit/s
    local extra=()
    ip netns exec "$C" taskset -c 0 iperf3 -c "$(target "$1")" -p 5201 -t "$secs" -J > "$tmp/iperf.json" 2>/dev/null || { echo 0; return; }
    sed -nE '/"sum_received"/,/}/ s/.*"bits_per_second":[[:space:]]*([0-9.e+]+).*/\1/p' "$tmp/iperf.json" | head -1 | awk '{ printf "%.2f\n", $1 / 1e9 }'
}
stats() { # values... -> "median min max"
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf (m >= 1000 ? "%d %d %d\n" : "%.2f %.2f %.2f\n"), m, v[1], v[NR] }'
}

declare -A result offered
read -r -a modes <<< "${MODES:-zonlb xskfwd nftables kernel xdp}"
echo "== $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kernel $(uname -r)"
echo "== ${secs} s per case, ${repeats} repeats; generator on CPU 0, load balancer work on CPU 1$([ "${LBC_RECEIVE:-}" != sender ] || echo " but lbc's receive (LBC_RECEIVE=sender)")"
for mode in "${modes[@]}"; do
    setup "$mode"
    udp=$([[ " ${CASES:-udp tcp} " == *" udp "* ]] && echo 1 || true)
    [ -z "$udp" ] || sink_on # (a plain XDP program: not at an MTU above about 3,500)
    for flows in ${udp:+1 1024}; do
        vals=(); offs=()
        for r in $(seq 1 "$repeats"); do
            read -r fwd off < <(udp_run "$mode" "$flows")
            vals+=("$fwd"); offs+=("$off")
            echo "   $mode udp $flows flow(s) run $r: forwarded $fwd pps, offered $off pps"
        done
        result[$mode,udp$flows]=$(stats "${vals[@]}")
        offered[$mode,udp$flows]=$(stats "${offs[@]}")
    done
    [ -z "$udp" ] || sink_off
    [ "$mode" = xdp ] && { ip netns exec "$S" ethtool -K eth0 gro on >/dev/null; ip netns exec "$C" ethtool -K eth0 tx off >/dev/null; }
    vals=()
    for r in $([[ " ${CASES:-udp tcp} " == *" tcp "* ]] && seq 1 "$repeats"); do
        g=$(tcp_run "$mode"); vals+=("$g")
        echo "   $mode tcp run $r: $g Gbit/s"
    done
    [ ${#vals[@]} -eq 0 ] || result[$mode,tcp]=$(stats "${vals[@]}")
    [ "$mode" = xdp ] && { ip netns exec "$S" ethtool -K eth0 gro off >/dev/null; ip netns exec "$C" ethtool -K eth0 tx on >/dev/null; }
    teardown "$mode"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
printf '%-10s | %-30s | %-30s | %-22s\n' "path" "UDP 60 B, 1 flow: pps (ratio)" "UDP 60 B, 1024 flows: pps (ratio)" "TCP iperf3: Gbit/s"
printf '%s\n' "-----------+--------------------------------+--------------------------------+-----------------------"
for mode in "${modes[@]}"; do
    read -r m1 lo1 hi1 <<< "${result[$mode,udp1]:-}"; read -r z1 _ _ <<< "${result[zonlb,udp1]:-}"
    read -r m2 lo2 hi2 <<< "${result[$mode,udp1024]:-}"; read -r z2 _ _ <<< "${result[zonlb,udp1024]:-}"
    read -r t tlo thi <<< "${result[$mode,tcp]:-}"
    printf '%-10s | %8s [%s-%s] %-7s | %8s [%s-%s] %-7s | %5s [%s-%s]\n' "$mode" \
        "$m1" "$lo1" "$hi1" "($(ratio "$m1" "$z1"))" "$m2" "$lo2" "$hi2" "($(ratio "$m2" "$z2"))" "$t" "$tlo" "$thi"
done
read -r o1 _ _ <<< "${offered[zonlb,udp1]:-}"; read -r o2 _ _ <<< "${offered[zonlb,udp1024]:-}"
echo "generator offered (zonlb rows, median): $o1 pps (1 flow), $o2 pps (1024 flows); ratios are each row / zonlb"
echo "xdp TCP row: the client's tx checksum offload off (a plain XDP redirect cannot complete CHECKSUM_PARTIAL)"
