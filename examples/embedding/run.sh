#!/usr/bin/env bash
# Embedding example (README.md beside this file): a small program builds the load balancer in code with
# ZonLb.Engine, runs it in the load balancer namespace for a few seconds while curl goes through the VIP, and
# prints its counters. Exit 0 only when the three requests were answered and the counters show them.
# Run as root after scripts/setup.sh (which builds the sample with the solution).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/topology.sh
sample=examples/embedding/bin/Release/net10.0/ZonLb.EmbeddingSample.dll
[ -f "$sample" ] || dotnet build examples/embedding -c Release -nologo -v quiet >/dev/null
id="zemb$$"; C="$id-c"; L="$id-l"; S="$id-s"
SRV=""; APP=""
cleanup() {
    [ -n "$APP" ] && kill -TERM "$APP" 2>/dev/null || true
    [ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null || true
    zlb_topology_delete "$C" "$L" "$S"
    rm -f "/tmp/$id".*
}
trap cleanup EXIT
zlb_topology "$C" "$L" "$S"
ip netns exec "$S" socat -T5 TCP4-LISTEN:8080,bind=10.20.0.2,reuseaddr,fork EXEC:examples/netns-full-nat/http-responder.sh & SRV=$!
ip netns exec "$L" dotnet "$sample" 5 > "/tmp/$id.log" 2>&1 & APP=$!
for _ in $(seq 1 100); do grep -q "running for" "/tmp/$id.log" && break; sleep 0.1; done
failed=0
for i in 1 2 3; do
    answer=$(ip netns exec "$C" curl -sS -m 3 http://10.10.0.1/ || true)
    [[ "$answer" == "hello from the backend"* ]] || { echo "FAILED: request $i: $answer"; failed=1; }
done
wait "$APP" || { echo "FAILED: the sample exited with an error"; failed=1; }; APP=""
cat "/tmp/$id.log"
grep -q "new_connections=3" "/tmp/$id.log" || { echo "FAILED: the counters do not show the 3 connections"; failed=1; }
grep -q "frames_unaccounted=0" "/tmp/$id.log" || { echo "FAILED: frames unaccounted"; failed=1; }
grep -q "event: backend 10.20.0.2:8080 of web is disabled" "/tmp/$id.log" && grep -q "event: backend 10.20.0.2:8080 of web is up" "/tmp/$id.log" \
    || { echo "FAILED: the BackendStateChanged events did not arrive"; failed=1; }
[ "$(ip -n "$L" -o link show | grep -c xdp || true)" = 0 ] || { echo "FAILED: XDP left attached"; failed=1; }
exit "$failed"
