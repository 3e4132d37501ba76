# Sourced by the examples, the soak and the benchmarks: the three-namespace test topology.
#
#   CLIENT ns                 LB ns                                       BACKEND ns
#  [eth0 10.10.0.2] --veth-- [lbc 10.10.0.1 | lbs 10.20.0.1] --veth-- [eth0 10.20.0.2]
#
# zlb_topology CLIENT LB BACKEND [QUEUES]  creates them (veths made inside the namespaces, never in the root
#                                          one; QUEUES RX/TX queues per veth, default the kernel's);
# zlb_topology_ipv6 CLIENT LB BACKEND      adds IPv6 addresses (fd00:10::2 | fd00:10::1, fd00:20::1 |
#                                          fd00:20::2), without duplicate address detection (usable at once);
# zlb_topology_delete CLIENT LB BACKEND    deletes them (and every interface inside).
zlb_topology() {
    local c=$1 l=$2 s=$3 q=()
    [ -n "${4:-}" ] && q=(numtxqueues "$4" numrxqueues "$4")
    for ns in "$c" "$l" "$s"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
    ip -n "$l" link add name lbc "${q[@]}" type veth peer name eth0 netns "$c" "${q[@]}"
    ip -n "$l" link add name lbs "${q[@]}" type veth peer name eth0 netns "$s" "${q[@]}"
    ip -n "$l" addr add 10.10.0.1/24 dev lbc
    ip -n "$l" addr add 10.20.0.1/24 dev lbs
    ip -n "$c" addr add 10.10.0.2/24 dev eth0
    ip -n "$s" addr add 10.20.0.2/24 dev eth0
    ip -n "$l" link set lbc up; ip -n "$l" link set lbs up
    ip -n "$c" link set eth0 up; ip -n "$s" link set eth0 up
}

zlb_topology_ipv6() {
    local c=$1 l=$2 s=$3
    ip -n "$l" -6 addr add fd00:10::1/64 dev lbc nodad
    ip -n "$l" -6 addr add fd00:20::1/64 dev lbs nodad
    ip -n "$c" -6 addr add fd00:10::2/64 dev eth0 nodad
    ip -n "$s" -6 addr add fd00:20::2/64 dev eth0 nodad
    # Until an interface's link-local address has passed duplicate address detection (1-2 s after link up),
    # the kernel sends no neighbour solicitation for resolutions asked over netlink: wait for it.
    local ns i
    for i in $(seq 1 50); do
        tentative=0
        for ns in "$c" "$l" "$s"; do ip -n "$ns" -6 addr show | grep -q tentative && tentative=1; done
        [ "$tentative" = 0 ] && break
        sleep 0.1
    done
}

zlb_topology_delete() {
    local ns
    for ns in "$@"; do ip netns del "$ns" 2>/dev/null || true; done
}
