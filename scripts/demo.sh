#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and shows zonlb-afxdp forwarding between namespaces:
#
#   client ns                  load balancer ns (zonlb-afxdp)                 backend ns
#  [eth0 10.10.0.2] --veth-- [lbc 10.10.0.1 = VIP | lbs 10.20.0.1 = SNAT] --veth-- [eth0 10.20.0.2]
#
# ping, an HTTP request (curl) and a UDP datagram go to the VIP and are answered by the backend; then the
# engine's counters are printed and everything is removed. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

id="zdemo$$"
C="$id-client"; L="$id-lb"; S="$id-backend"
LB_PID=""; SRV_PIDS=()
cleanup() {
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null || true
    for p in "${SRV_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for ns in "$C" "$L" "$S"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== topology: namespaces $C, $L, $S (veths keep their defaults: tx checksum offload on)"
for ns in "$C" "$L" "$S"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$L" link add name lbc type veth peer name eth0 netns "$C"
ip -n "$L" link add name lbs type veth peer name eth0 netns "$S"
ip -n "$L" addr add 10.10.0.1/24 dev lbc
ip -n "$L" addr add 10.20.0.1/24 dev lbs
ip -n "$C" addr add 10.10.0.2/24 dev eth0
ip -n "$S" addr add 10.20.0.2/24 dev eth0
ip -n "$L" link set lbc up; ip -n "$L" link set lbs up
ip -n "$C" link set eth0 up; ip -n "$S" link set eth0 up

echo "== backend: HTTP on 10.20.0.2:8080, UDP echo on 10.20.0.2:5353 (socat)"
ip netns exec "$S" socat -T5 TCP4-LISTEN:8080,bind=10.20.0.2,reuseaddr,fork EXEC:examples/netns-full-nat/http-responder.sh &
SRV_PIDS+=($!)
ip netns exec "$S" socat -T1 UDP4-RECVFROM:5353,bind=10.20.0.2,fork EXEC:examples/netns-full-nat/udp-echo.sh &
SRV_PIDS+=($!)

config=examples/netns-full-nat/zonlb.toml
echo "== zonlb-afxdp run --config $config (in $L)"
ip netns exec "$L" dotnet src/Cli/bin/Release/net10.0/zonlb-afxdp.dll run --config "$config" --status-interval 0 > "/tmp/$id.log" 2>&1 &
LB_PID=$!
for _ in $(seq 1 100); do grep -q "running with" "/tmp/$id.log" && break; sleep 0.1; done
cat "/tmp/$id.log"
grep -q "running with" "/tmp/$id.log" || { echo "zonlb-afxdp did not start"; exit 1; }
sleep 0.3

echo; echo "== ping 10.10.0.1 (ICMP echo service; ttl=63 means the backend answered through the load balancer)"
ip netns exec "$C" ping -c 3 -i 0.3 -W 2 10.10.0.1
echo; echo "== curl http://10.10.0.1/ (TCP service 80 -> backend 8080)"
ip netns exec "$C" curl -sS -m 5 http://10.10.0.1/
echo; echo "== UDP to 10.10.0.1:5353"
echo "hello over udp" | ip netns exec "$C" socat -T2 - UDP4:10.10.0.1:5353
echo; echo "== stopping zonlb-afxdp (SIGTERM); its counters:"
kill -TERM "$LB_PID"; wait "$LB_PID" || true; LB_PID=""
tail -n 3 "/tmp/$id.log"
echo "XDP programs left in $L: $(ip -n "$L" -o link show | grep -c 'xdp' || true)"
rm -f "/tmp/$id.log"
