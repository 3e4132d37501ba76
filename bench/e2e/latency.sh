#!/usr/bin/env bash
# Latency through the load balancer, against nftables DNAT on the same namespaces, in one run:
#
#   client ns [eth0 10.10.0.2] --veth-- [lbc 10.10.0.1 | LB ns | lbs 10.20.0.1] --veth-- [eth0 10.20.0.2] backend ns
#
#   nftables        the kernel forwards, nftables DNAT (ICMP echo to the VIP -> the backend) and masquerade
#   zonlb           zonlb-afxdp, an ICMP echo service (VIP -> backend), nothing else asked of it
#   zonlb+control   the same with the control plane busy: `stats` asked on the control socket and the metrics
#                   endpoint scraped, each at CONTROL_HZ (default 100) per second over one connection each, and a TCP
#                   health check of the backend every 0.2 s (a TCP service beside the ICMP one)
#
# Each case pings the VIP COUNT times at one every INTERVAL seconds (ping -i) and reports the round trip's
# percentiles from ping's own per-reply times (p50, p99, p99.9, max) and the replies lost; a zonlb case is warmed
# up first with WARMUP pings (default 1000) that are not counted. Rounds: the cases run in turn ROUNDS times, so that
# a slow minute of the VM lands on all of them alike.
#
# Usage (as root, after scripts/setup.sh): bench/e2e/latency.sh [COUNT=5000] [INTERVAL=0.002] [ROUNDS=1]
#   CASES="zonlb zonlb+control" runs only those; ENGINE_EXTRA="key = value" adds [engine] lines to zonlb-afxdp's config.
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-5000}
interval=${2:-0.002}
rounds=${3:-1}
hz=${CONTROL_HZ:-100}
cases=${CASES:-nftables zonlb zonlb+control}
dll=$PWD/src/Cli/bin/Release/net10.0/zonlb-afxdp.dll
gen=$PWD/bench/ZonLb.TrafficGen/bin/Release/net10.0/zonlb-trafficgen.dll
[ -f "$dll" ] && [ -f "$gen" ] || dotnet build ZonLb.sln -c Release >/dev/null
warmup=${WARMUP:-1000}
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh
id="zlat$$"; C="$id-c"; L="$id-l"; S="$id-s"; tmp="/tmp/$id"; mkdir -p "$tmp"
LB_PID=""; LOAD_PIDS=(); SRV_PID=""
stop_lb() {
    for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    LOAD_PIDS=()
    if [ -n "$LB_PID" ]; then kill -TERM "$LB_PID" 2>/dev/null || true; wait "$LB_PID" 2>/dev/null || true; LB_PID=""; fi
}
cleanup() {
    stop_lb
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null || true
    zlb_topology_delete "$C" "$L" "$S"
    rm -rf "$tmp"
}
trap cleanup EXIT

zlb_topology "$C" "$L" "$S" 1
ip -n "$S" route add default via 10.20.0.1
# the health check's target: a TCP listener on the backend
ip netns exec "$S" socat TCP-LISTEN:8080,bind=10.20.0.2,reuseaddr,fork SYSTEM:'echo ok' >/dev/null 2>&1 &
SRV_PID=$!

config() { # config FILE SOCKET WITH_CONTROL
    cat > "$1" <<TOML
control_socket = "$2"
$([ "$3" = 1 ] && echo 'metrics_listen = "127.0.0.1:9464"')
[[interface]]
name = "lbc"
[[interface]]
name = "lbs"
[[service]]
name = "ping"
vip = "10.10.0.1"
protocol = "icmp"
[[service.backend]]
address = "10.20.0.2"
$([ "$3" = 1 ] && printf '%s\n' '[[service]]' 'name = "web"' 'vip = "10.10.0.1"' 'protocol = "tcp"' 'port = 80' \
    'health = { kind = "tcp", interval = 0.2, timeout = 0.1 }' '[[service.backend]]' 'address = "10.20.0.2"' 'port = 8080')
[engine]
${ENGINE_EXTRA:-}
TOML
}

# control_load SOCKET: stats on the control socket and a metrics scrape, each HZ times a second, in the LB ns, over
# one connection each (bench/ZonLb.TrafficGen control-load)
control_load() {
    ip netns exec "$L" dotnet "$gen" control-load "$1" http://127.0.0.1:9464/metrics --hz "$hz" > "$tmp/load.txt" 2>&1 &
    LOAD_PIDS+=($!)
}

measure() { # measure NAME: pings, prints the row
    local out="$tmp/ping.txt"
    ip netns exec "$C" ping -n -c "$count" -i "$interval" -W 1 10.10.0.1 > "$out" 2>&1 || true
    grep -o 'time=[0-9.]*' "$out" | cut -d= -f2 | sort -n > "$tmp/times.txt"
    if [ -n "${SHOW_SLOWEST:-}" ]; then grep -o "icmp_seq=[0-9]* ttl=[0-9]* time=[0-9.]*" "$out" | sort -t= -k4 -g -r | head -"$SHOW_SLOWEST" >&2 || true; fi
    local n; n=$(wc -l < "$tmp/times.txt")
    awk -v name="$1" -v sent="$count" -v n="$n" '
        { t[NR] = $1 }
        function pct(p,   i) { i = int(p * n + 0.999999); if (i < 1) i = 1; if (i > n) i = n; return t[i] * 1000 }
        END { if (n == 0) { printf "%-15s %8s %8s %8s %8s %6s\n", name, "-", "-", "-", "-", sent; exit }
              printf "%-15s %8.0f %8.0f %8.0f %8.0f %6d\n", name, pct(0.50), pct(0.99), pct(0.999), t[n] * 1000, sent - n }' "$tmp/times.txt"
}

echo "latency through the VIP, $count pings every ${interval}s per case; microseconds (ping's resolution); control load: ${hz} Hz"
printf "%-15s %8s %8s %8s %8s %6s\n" case p50 p99 p99.9 max lost
for r in $(seq 1 "$rounds"); do
    for c in $cases; do
        case "$c" in
        nftables)
            ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=1
            ip netns exec "$L" nft -f - <<'NFT'
table ip zlat {
    chain pre { type nat hook prerouting priority dstnat; ip daddr 10.10.0.1 icmp type echo-request dnat to 10.20.0.2; }
    chain post { type nat hook postrouting priority srcnat; oifname "lbs" masquerade; }
}
NFT
            measure nftables
            ip netns exec "$L" nft delete table ip zlat
            ip netns exec "$L" sysctl -qw net.ipv4.ip_forward=0
            ;;
        zonlb|zonlb+control)
            with=0; [ "$c" = "zonlb+control" ] && with=1
            config "$tmp/zonlb.toml" "$tmp/zonlb.sock" "$with"
            zlb_start "$L" "$tmp/zonlb.toml" "$tmp/zonlb.log" || exit 1
            [ "$with" = 1 ] && control_load "$tmp/zonlb.sock"
            # warm-up, not measured: the backend's neighbour resolved, and the data path compiled to its final code
            # (the first packets after a start run the JIT's first tier, up to milliseconds; see docs/performance.md)
            ip netns exec "$C" ping -n -c "$warmup" -i "$interval" -W 1 10.10.0.1 >/dev/null 2>&1 || true
            measure "$c"
            if [ -n "${SHOW_GC:-}" ]; then dotnet "$dll" status --json --socket "$tmp/zonlb.sock" | grep -E 'collections|gc_pause' >&2 || true; fi
            stop_lb
            ;;
        esac
    done
done
