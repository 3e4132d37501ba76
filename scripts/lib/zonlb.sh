# Sourced by the examples, the soak and the benchmarks (after scripts/lib/topology.sh): starting zonlb-afxdp.
#
# zlb_start NS CONFIG LOG [STATUS_INTERVAL]   runs `dotnet "$dll" run --config CONFIG` inside network namespace
#                                            NS in the background (output to LOG), sets LB_PID, and waits up to
#                                            10 s for "running with"; prints the log and returns 1 if it never
#                                            comes. Environment set on the call (VAR=x zlb_start ...) reaches it.
zlb_start() {
    local ns=$1 config=$2 log=$3 interval=${4:-0}
    ip netns exec "$ns" dotnet "$dll" run --config "$config" --status-interval "$interval" > "$log" 2>&1 &
    LB_PID=$!
    for _ in $(seq 1 100); do grep -q "running with" "$log" && return 0; sleep 0.1; done
    cat "$log"
    echo "zonlb-afxdp did not start"
    return 1
}
