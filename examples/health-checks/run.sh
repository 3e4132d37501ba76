#!/usr/bin/env bash
# Health checks example (README.md beside this file): two backends, one stops, new connections move to the
# other within the configured time, the stopped one comes back. Exit 0 only when every step was seen.
# Run as root after scripts/setup.sh.
#
#   client ns                 load balancer ns                          backend ns
#  [eth0 10.10.0.2] --veth-- [lbc 10.10.0.1 | lbs 10.20.0.1] --veth-- [eth0 10.20.0.2, 10.20.0.3]
#                             web: tcp 80 -> 10.20.0.2:8080, 10.20.0.3:8080   (socat HTTP on each)
set -euo pipefail
cd "$(dirname "$0")/../.."
dll=${ZONLB_DLL:-src/Cli/bin/Release/net10.0/zonlb-afxdp.dll}
here=examples/health-checks
. scripts/lib/topology.sh
. scripts/lib/zonlb.sh
id="zhc$$"; C="$id-c"; L="$id-l"; S="$id-s"
LB_PID=""; SRV=()
cleanup() {
    [ -n "$LB_PID" ] && kill -TERM "$LB_PID" 2>/dev/null && wait "$LB_PID" 2>/dev/null || true
    for p in "${SRV[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    zlb_topology_delete "$C" "$L" "$S"
    rm -f "/tmp/$id".*
}
trap cleanup EXIT
zlb_topology "$C" "$L" "$S"
ip -n "$S" addr add 10.20.0.3/24 dev eth0

serve() { ip netns exec "$S" socat -T5 "TCP4-LISTEN:8080,bind=$1,reuseaddr,fork" EXEC:examples/netns-full-nat/http-responder.sh & SRV+=($!); }
serve 10.20.0.2; serve 10.20.0.3; b3=${SRV[1]}
(echo "control_socket = \"/tmp/$id.sock\""; cat "$here/zonlb.toml") > "/tmp/$id.toml"
zlb_start "$L" "/tmp/$id.toml" "/tmp/$id.log" || exit 1
state() { dotnet "$dll" stats --socket "/tmp/$id.sock" | grep "backend 10.20.0.3:8080" | awk '{print $3}'; }
newflows() { dotnet "$dll" stats --socket "/tmp/$id.sock" | grep "backend $1:8080" | sed -n 's/.*, new \([0-9]*\),.*/\1/p'; }
failed=0

echo "== 12 connections with both backends up"
for _ in $(seq 1 12); do ip netns exec "$C" curl -sS -m 3 -o /dev/null http://10.10.0.1/ || { echo "FAILED: curl"; failed=1; }; done
dotnet "$dll" stats --socket "/tmp/$id.sock" | grep "backend 10.20" || true
[ "$(newflows 10.20.0.2)" -gt 0 ] && [ "$(newflows 10.20.0.3)" -gt 0 ] || { echo "FAILED: Maglev did not use both backends"; failed=1; }
echo "== stopping the server on 10.20.0.3"
kill -TERM "$b3"; t0=$(date +%s%N)
for _ in $(seq 1 100); do [ "$(state)" = down ] && break; sleep 0.1; done
t1=$(date +%s%N)
[ "$(state)" = down ] && echo "10.20.0.3 marked down after $(( (t1 - t0) / 1000000 )) ms" || { echo "FAILED: 10.20.0.3 not marked down"; failed=1; }
ok=0; for _ in $(seq 1 12); do ip netns exec "$C" curl -sS -m 3 -o /dev/null http://10.10.0.1/ && ok=$((ok+1)); done
echo "12 new connections after the failure: $ok succeeded"
[ "$ok" = 12 ] || { echo "FAILED: connections failed after the backend was taken out"; failed=1; }
echo "== restarting it"
serve 10.20.0.3
for _ in $(seq 1 100); do [ "$(state)" = up ] && break; sleep 0.1; done
[ "$(state)" = up ] && echo "10.20.0.3 is up again" || { echo "FAILED: 10.20.0.3 did not come back"; failed=1; }
grep "health:" "/tmp/$id.log" || true
dotnet "$dll" stats --socket "/tmp/$id.sock" | grep "backend 10.20" || true
exit "$failed"
