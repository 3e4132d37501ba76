#!/usr/bin/env bash
# Soak: mixed traffic through zonlb-afxdp for a chosen time, then checks.
#   client ns --veth--> [lbc | zonlb-afxdp | lbs] --veth--> backend ns (socat HTTP, socat UDP echo, iperf3)
# Traffic for SECONDS: two loops of short HTTP connections (curl), one long iperf3 TCP stream, UDP
# request/response (socat), ping every 0.2 s. Then, after the traffic stops and the short timeouts pass:
# every curl and UDP exchange succeeded, iperf3 finished, no ping was lost, the engine counted no drop, the
# managed heap did not grow by more than 16 MiB after the first minute's warm-up (or the first quarter of a
# shorter run), every UMEM frame is accounted for, and the connection table holds no more than the live flows.
# Usage (as root): tests/soak/soak.sh [SECONDS]     (CI runs 60; the long run is 1800)
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
dll=${ZONLB_DLL:-src/Cli/bin/Release/net10.0/zonlb-afxdp.dll}
[ -f "$dll" ] || ./scripts/setup.sh >/dev/null
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh
id="zsoak$$"; C="$id-c"; L="$id-l"; S="$id-s"; dir=$(mktemp -d)
pids=(); LB_PID=""
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null
    zlb_topology_delete "$C" "$L" "$S"
    rm -rf "$dir"
}
trap cleanup EXIT
Z() { dotnet "$dll" "$@" --socket "$dir/lb.sock"; }
json() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" | head -1; }

zlb_topology "$C" "$L" "$S"

ip netns exec "$S" socat -T5 TCP4-LISTEN:8080,bind=10.20.0.2,reuseaddr,fork,backlog=256 EXEC:examples/netns-full-nat/http-responder.sh & pids+=($!)
ip netns exec "$S" socat -T1 UDP4-RECVFROM:5353,bind=10.20.0.2,fork EXEC:examples/netns-full-nat/udp-echo.sh & pids+=($!)
ip netns exec "$S" iperf3 -s -B 10.20.0.2 -p 5201 >/dev/null 2>&1 & pids+=($!)

cat > "$dir/lb.toml" <<TOML
control_socket = "$dir/lb.sock"
[[interface]]
name = "lbc"
[[interface]]
name = "lbs"
[[service]]
name = "web"
vip = "10.10.0.1"
protocol = "tcp"
port = 80
[[service.backend]]
address = "10.20.0.2"
port = 8080
[[service]]
name = "iperf"
vip = "10.10.0.1"
protocol = "tcp"
port = 5201
[[service.backend]]
address = "10.20.0.2"
[[service]]
name = "udp"
vip = "10.10.0.1"
protocol = "udp"
port = 5353
[[service.backend]]
address = "10.20.0.2"
[[service]]
name = "ping"
vip = "10.10.0.1"
protocol = "icmp"
[[service.backend]]
address = "10.20.0.2"
[engine]
# short timeouts so that the table must drain back to the live flows once traffic stops
tcp_time_wait_timeout = 3
tcp_close_timeout = 3
tcp_fin_wait_timeout = 3
tcp_close_wait_timeout = 3
tcp_last_ack_timeout = 3
udp_timeout = 3
udp_stream_timeout = 3
icmp_timeout = 3
TOML
zlb_start "$L" "$dir/lb.toml" "$dir/lb.log" 10 || { echo "soak: zonlb-afxdp did not start"; exit 1; }
sleep 0.5

end=$(( $(date +%s) + secs ))
curl_loop() { local ok=0 fail=0; while [ "$(date +%s)" -lt "$end" ]; do
    if ip netns exec "$C" curl -sS -m 5 -o /dev/null http://10.10.0.1/ 2>>"$dir/curl.err"; then ok=$((ok+1)); else fail=$((fail+1)); fi; done
    echo "$ok $fail" > "$dir/curl.$1"; }
udp_loop() { local ok=0 fail=0 i=0; while [ "$(date +%s)" -lt "$end" ]; do i=$((i+1))
    r=$(echo "u$i" | ip netns exec "$C" socat -T2 - UDP4:10.10.0.1:5353 2>/dev/null)
    if [ "${r#udp echo: u$i }" != "$r" ]; then ok=$((ok+1)); else fail=$((fail+1)); fi; sleep 0.05; done
    echo "$ok $fail" > "$dir/udp"; }
curl_loop 1 & pids+=($!); c1=$!
curl_loop 2 & pids+=($!); c2=$!
udp_loop & pids+=($!); u1=$!
ip netns exec "$C" iperf3 -c 10.10.0.1 -p 5201 -t "$secs" -b 200M > "$dir/iperf" 2>&1 & pids+=($!); ip1=$!
ip netns exec "$C" ping -i 0.2 -W 2 -w "$secs" 10.10.0.1 > "$dir/ping" 2>&1 & pids+=($!); pg=$!

warm=$(( secs >= 240 ? 60 : secs / 4 ))
sleep "$warm"
heap0=$(Z status --json | json managed_heap_bytes); rss0=$(Z status --json | json working_set_bytes)
samples="$dir/samples"; : > "$samples"
while [ "$(date +%s)" -lt "$end" ]; do
    st=$(Z status --json)
    echo "$(date +%s) $(json managed_heap_bytes <<<"$st") $(json working_set_bytes <<<"$st") $(json active_connections <<<"$st") $(json frames_free <<<"$st")" >> "$samples"
    sleep 5
done
wait "$c1" "$c2" "$u1"; wait "$ip1"; iperf_rc=$?; wait "$pg"
sleep 8 # the short timeouts pass
stats=$(Z stats --json); status=$(Z status --json)
heap1=$(json managed_heap_bytes <<<"$status"); rss1=$(json working_set_bytes <<<"$status")
active=$(json active_connections <<<"$status")
kill -TERM "$LB_PID"; wait "$LB_PID"; lb_rc=$?; LB_PID=""

read -r ok1 fail1 < "$dir/curl.1"; read -r ok2 fail2 < "$dir/curl.2"; read -r uok ufail < "$dir/udp"
ping_loss=$(grep -o '[0-9.]*% packet loss' "$dir/ping" | cut -d% -f1)
ping_tx=$(grep -o '^[0-9]* packets transmitted' "$dir/ping" | cut -d' ' -f1)
iperf_rate=$(grep -E 'receiver' "$dir/iperf" | tail -1 | awk '{print $(NF-2), $(NF-1)}')
drops=$(grep -o 'drops: .*' "$dir/lb.log" | tail -1)
unacc=$(grep -o 'frames_unaccounted=-\?[0-9]*' "$dir/lb.log" | tail -1 | cut -d= -f2)
heap_growth=$(( (heap1 - heap0) / 1048576 ))
max_heap=$(awk '{print $2}' "$samples" | sort -n | tail -1)

echo "soak: ${secs} s of mixed traffic through zonlb-afxdp"
echo "  short TCP connections: $((ok1 + ok2)) succeeded, $((fail1 + fail2)) failed"
echo "  UDP request/response: $uok succeeded, $ufail failed"
echo "  iperf3 TCP stream: exit $iperf_rc, $iperf_rate"
echo "  ping: $ping_tx sent, ${ping_loss}% lost"
echo "  managed heap: ${heap0} B after warm-up, ${heap1} B at the end (max sample ${max_heap} B); working set ${rss0} -> ${rss1} B"
echo "  connection table after traffic: $active entries; engine $drops; frames_unaccounted=$unacc; exit code $lb_rc"
failed=0
check() { if [ "$1" = ok ]; then echo "  ok:   $2"; else echo "  FAIL: $2"; failed=1; fi; }
[ $((fail1 + fail2)) -eq 0 ] && [ $((ok1 + ok2)) -gt 0 ] && check ok "every short TCP connection succeeded" || check fail "every short TCP connection succeeded ($(head -3 "$dir/curl.err" 2>/dev/null | tr '\n' ' '))"
[ "$ufail" -eq 0 ] && [ "$uok" -gt 0 ] && check ok "every UDP exchange succeeded" || check fail "every UDP exchange succeeded"
[ "$iperf_rc" -eq 0 ] && check ok "the iperf3 stream finished" || check fail "the iperf3 stream finished: $(tail -3 "$dir/iperf")"
[ "$ping_loss" = "0" ] && check ok "no ping lost" || check fail "no ping lost (${ping_loss}%)"
[ "$drops" = "drops: none" ] && check ok "no unexpected drops" || check fail "no unexpected drops ($drops)"
[ "$heap_growth" -le 16 ] && check ok "managed heap flat (${heap_growth} MiB growth)" || check fail "managed heap flat (${heap_growth} MiB growth)"
[ "$unacc" = "0" ] && check ok "every UMEM frame accounted for" || check fail "every UMEM frame accounted for ($unacc unaccounted)"
[ "$active" -le 2 ] && check ok "connection table back to the live flows ($active)" || check fail "connection table back to the live flows ($active left)"
[ "$lb_rc" -eq 0 ] && check ok "zonlb-afxdp stopped cleanly" || check fail "zonlb-afxdp stopped cleanly (exit $lb_rc)"
[ "$failed" -eq 0 ] && echo "soak: passed" || { echo "soak: FAILED"; tail -20 "$dir/lb.log"; }
exit "$failed"
