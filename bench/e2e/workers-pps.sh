#!/usr/bin/env bash
# Forwarded packets per second through zonlb-afxdp with 1 and with 2 workers, measured in one run on the same
# topology: client ns --2-queue veth--> [lbc | zonlb-afxdp | lbs] --2-queue veth--> backend ns.
# Load: iperf3 UDP from the client to the VIP (18-byte payloads, i.e. 60-byte frames, -P 4 flows, unlimited
# rate) answered by iperf3 on the backend; the figure is the engine's own tx_packets per second (from
# `zonlb-afxdp stats --json`) over the run. Usage (as root): bench/e2e/workers-pps.sh [SECONDS] [REPEATS]
# Note: on a 2-core machine the generator, the kernel's veth work and the engine share the same two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}
repeats=${2:-3}
dll=src/Cli/bin/Release/net10.0/zonlb-afxdp.dll
[ -f "$dll" ] || ./scripts/setup.sh
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh
id="zbw$$"; C="$id-c"; L="$id-l"; S="$id-s"
LB_PID=""; SRV_PID=""
cleanup() {
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null || true
    [ -n "$SRV_PID" ] && kill -TERM "$SRV_PID" 2>/dev/null || true
    zlb_topology_delete "$C" "$L" "$S"
    rm -f "/tmp/$id".*
}
trap cleanup EXIT
zlb_topology "$C" "$L" "$S" 2
ip netns exec "$S" iperf3 -s -B 10.20.0.2 -p 5201 >/dev/null 2>&1 &
SRV_PID=$!

run() { # workers -> prints pps
    local workers=$1
    cat > "/tmp/$id.toml" <<TOML
control_socket = "/tmp/$id.sock"
[[interface]]
name = "lbc"
[[interface]]
name = "lbs"
[[service]]
name = "iperf-control"
vip = "10.10.0.1"
protocol = "tcp"
port = 5201
[[service.backend]]
address = "10.20.0.2"
[[service]]
name = "iperf-udp"
vip = "10.10.0.1"
protocol = "udp"
port = 5201
[[service.backend]]
address = "10.20.0.2"
[engine]
workers = $workers
TOML
    zlb_start "$L" "/tmp/$id.toml" "/tmp/$id.log" || exit 1
    local before after
    before=$(dotnet "$dll" stats --socket "/tmp/$id.sock" --json | sed -n 's/.*"tx_packets": \([0-9]*\),.*/\1/p' | head -1)
    ip netns exec "$C" iperf3 -c 10.10.0.1 -p 5201 -u -b 0 -l 18 -P 4 -t "$secs" > "/tmp/$id.iperf" 2>&1 || true
    after=$(dotnet "$dll" stats --socket "/tmp/$id.sock" --json | sed -n 's/.*"tx_packets": \([0-9]*\),.*/\1/p' | head -1)
    kill -TERM "$LB_PID"; wait "$LB_PID" || true; LB_PID=""
    echo $(( (after - before) / secs ))
}

declare -A results
for w in 1 2; do
    for r in $(seq 1 "$repeats"); do
        results[$w]+="$(run "$w") "
    done
done
printf "%-8s %-30s %s\n" workers "forwarded pps (each run)" median
for w in 1 2; do
    sorted=$(tr ' ' '\n' <<<"${results[$w]}" | grep -v '^$' | sort -n)
    median=$(sed -n "$(( (repeats + 1) / 2 ))p" <<<"$sorted")
    printf "%-8s %-30s %s\n" "$w" "${results[$w]}" "$median"
done
