#!/usr/bin/env bash
# The two-namespace full-NAT example (README.md beside this file): builds the topology, shows zonlb-afxdp
# forwarding between namespaces, checks every answer, prints the engine's counters and removes everything.
#
#   client ns                  load balancer ns (zonlb-afxdp)                 backend ns
#  [eth0 10.10.0.2] --veth-- [lbc 10.10.0.1 = VIP | lbs 10.20.0.1 = SNAT] --veth-- [eth0 10.20.0.2]
#
# ping, an HTTP request (curl) and a UDP datagram go to the VIP and are answered by the backend; exit 0 only
# when all three were. Run as root after scripts/setup.sh (scripts/demo.sh does both).
set -euo pipefail
cd "$(dirname "$0")/../.."
dll=${ZONLB_DLL:-src/Cli/bin/Release/net10.0/zonlb-afxdp.dll}
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh

id="zdemo$$"
C="$id-client"; L="$id-lb"; S="$id-backend"
LB_PID=""; SRV_PIDS=()
cleanup() {
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null || true
    for p in "${SRV_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    zlb_topology_delete "$C" "$L" "$S"
}
trap cleanup EXIT

echo "== topology: namespaces $C, $L, $S (veths keep their defaults: tx checksum offload on)"
zlb_topology "$C" "$L" "$S"

echo "== backend: HTTP on 10.20.0.2:8080, UDP echo on 10.20.0.2:5353 (socat)"
ip netns exec "$S" socat -T5 TCP4-LISTEN:8080,bind=10.20.0.2,reuseaddr,fork EXEC:examples/netns-full-nat/http-responder.sh &
SRV_PIDS+=($!)
ip netns exec "$S" socat -T1 UDP4-RECVFROM:5353,bind=10.20.0.2,fork EXEC:examples/netns-full-nat/udp-echo.sh &
SRV_PIDS+=($!)

config=examples/netns-full-nat/zonlb.toml
echo "== zonlb-afxdp run --config $config (in $L)"
(echo "control_socket = \"/tmp/$id.sock\""; cat "$config") > "/tmp/$id.toml"
zlb_start "$L" "/tmp/$id.toml" "/tmp/$id.log" || exit 1
cat "/tmp/$id.log"
sleep 0.3

failed=0
echo; echo "== ping 10.10.0.1 (ICMP echo service; ttl=63 means the backend answered through the load balancer)"
ip netns exec "$C" ping -c 3 -i 0.3 -W 2 10.10.0.1 | tee "/tmp/$id.ping" || true
grep -q "3 received" "/tmp/$id.ping" && grep -q "ttl=63" "/tmp/$id.ping" || { echo "FAILED: ping"; failed=1; }
echo; echo "== curl http://10.10.0.1/ (TCP service 80 -> backend 8080)"
answer=$(ip netns exec "$C" curl -sS -m 5 http://10.10.0.1/ || true); echo "$answer"
[[ "$answer" == "hello from the backend; you came from 10.20.0.1:"* ]] || { echo "FAILED: curl"; failed=1; }
echo; echo "== UDP to 10.10.0.1:5353"
answer=$(echo "hello over udp" | ip netns exec "$C" socat -T2 - UDP4:10.10.0.1:5353 || true); echo "$answer"
[[ "$answer" == "udp echo: hello over udp (from 10.20.0.1:"* ]] || { echo "FAILED: udp"; failed=1; }
echo; echo "== stopping zonlb-afxdp (SIGTERM); its counters:"
kill -TERM "$LB_PID"; wait "$LB_PID" || true; LB_PID=""
tail -n 3 "/tmp/$id.log"
left=$(ip -n "$L" -o link show | grep -c 'xdp' || true)
echo "XDP programs left in $L: $left"
[ "$left" = 0 ] || { echo "FAILED: XDP left attached"; failed=1; }
rm -f "/tmp/$id".*
exit "$failed"
