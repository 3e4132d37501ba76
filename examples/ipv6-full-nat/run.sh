#!/usr/bin/env bash
# The IPv6 full-NAT example (README.md beside this file): builds the topology with IPv6 addresses, shows
# zonlb-afxdp forwarding between namespaces over IPv6, checks every answer, prints the engine's counters and
# removes everything.
#
#   client ns                  load balancer ns (zonlb-afxdp)                    backend ns
#  [eth0 fd00:10::2] --veth-- [lbc fd00:10::1 = VIP | lbs fd00:20::1 = SNAT] --veth-- [eth0 fd00:20::2]
#
# ping -6, an HTTP request (curl -6) and a UDP datagram go to the VIP and are answered by the backend; exit 0
# only when all three were. Run as root after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
dll=${ZONLB_DLL:-src/Cli/bin/Release/net10.0/zonlb-afxdp.dll}
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh

id="zv6ex$$"
C="$id-client"; L="$id-lb"; S="$id-backend"
LB_PID=""; SRV_PIDS=()
cleanup() {
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null || true
    for p in "${SRV_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    zlb_topology_delete "$C" "$L" "$S"
    rm -f "/tmp/$id".*
}
trap cleanup EXIT

echo "== topology: namespaces $C, $L, $S with IPv6 addresses (veths keep their defaults: tx checksum offload on)"
zlb_topology "$C" "$L" "$S"
zlb_topology_ipv6 "$C" "$L" "$S"

echo "== backend: HTTP on [fd00:20::2]:8080, UDP echo on [fd00:20::2]:5353 (socat)"
ip netns exec "$S" socat -T5 'TCP6-LISTEN:8080,bind=[fd00:20::2],reuseaddr,fork' EXEC:examples/netns-full-nat/http-responder.sh &
SRV_PIDS+=($!)
ip netns exec "$S" socat -T1 'UDP6-RECVFROM:5353,bind=[fd00:20::2],fork' EXEC:examples/netns-full-nat/udp-echo.sh &
SRV_PIDS+=($!)

config=examples/ipv6-full-nat/zonlb.toml
echo "== zonlb-afxdp run --config $config (in $L)"
(echo "control_socket = \"/tmp/$id.sock\""; cat "$config") > "/tmp/$id.toml"
zlb_start "$L" "/tmp/$id.toml" "/tmp/$id.log" || exit 1
cat "/tmp/$id.log"
sleep 0.3

failed=0
echo; echo "== ping -6 fd00:10::1 (ICMPv6 echo service; ttl=63 means the backend answered through the load balancer)"
ip netns exec "$C" ping -6 -c 3 -i 0.3 -W 2 fd00:10::1 | tee "/tmp/$id.ping" || true
grep -q "3 received" "/tmp/$id.ping" && grep -q "ttl=63" "/tmp/$id.ping" || { echo "FAILED: ping -6"; failed=1; }
echo; echo "== curl -6 http://[fd00:10::1]/ (TCP service 80 -> backend 8080)"
answer=$(ip netns exec "$C" curl -6 -sS -m 5 'http://[fd00:10::1]/' || true); echo "$answer"
[[ "$answer" =~ ^"hello from the backend; you came from ["(fd00:20::1|fd00:0020:0000:0000:0000:0000:0000:0001)"]:" ]] || { echo "FAILED: curl -6"; failed=1; }
echo; echo "== UDP to [fd00:10::1]:5353"
answer=$(echo "hello over udp6" | ip netns exec "$C" socat -T2 - 'UDP6:[fd00:10::1]:5353' || true); echo "$answer"
[[ "$answer" =~ ^"udp echo: hello over udp6 (from ["(fd00:20::1|fd00:0020:0000:0000:0000:0000:0000:0001)"]:" ]] || { echo "FAILED: udp"; failed=1; }
echo; echo "== the load balancer's neighbour cache (filled from the kernel's NDP table)"
ip netns exec "$L" dotnet "$dll" neighbors list --socket "/tmp/$id.sock" || true
echo; echo "== stopping zonlb-afxdp (SIGTERM); its counters:"
kill -TERM "$LB_PID"; wait "$LB_PID" || true; LB_PID=""
tail -n 3 "/tmp/$id.log"
left=$(ip -n "$L" -o link show | grep -c 'xdp' || true)
echo "XDP programs left in $L: $left"
[ "$left" = 0 ] || { echo "FAILED: XDP left attached"; failed=1; }
exit "$failed"
