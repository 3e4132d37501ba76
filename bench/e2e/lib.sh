# Sourced by compare.sh and profile.sh: the zonlb-afxdp configuration both measure, the C reference forwarder
# (xskfwd), where the load balancer's receive work runs, and the sink's counter.
#
# bench_config FILE SOCKET [CONTROL]   writes a config with lbc and lbs attached, a UDP service (VIP 10.10.0.1:9)
#                            and a TCP one (5201), both to 10.20.0.2, the worker pinned to CPU 1 and run
#                            SCHED_FIFO at priority ${WORKER_FIFO:-10} (WORKER_FIFO=0: normal scheduling
#                            with nice ${WORKER_NICE:--15} instead), and the [engine] lines in
#                            ENGINE_EXTRA (e.g. "ring_size = 4096"). CONTROL=1: also the metrics endpoint on
#                            127.0.0.1:9464 and a TCP health check of the TCP service's backend every 0.2 s.
bench_config() {
    cat > "$1" <<TOML
control_socket = "$2"
$([ "${3:-0}" = 1 ] && echo 'metrics_listen = "127.0.0.1:9464"')
[[interface]]
name = "lbc"
[[interface]]
name = "lbs"
[[service]]
name = "bench-udp"
vip = "10.10.0.1"
protocol = "udp"
port = 9
[[service.backend]]
address = "10.20.0.2"
[[service]]
name = "bench-tcp"
vip = "10.10.0.1"
protocol = "tcp"
port = 5201
$([ "${3:-0}" = 1 ] && echo 'health = { kind = "tcp", interval = 0.2, timeout = 0.1 }')
[[service.backend]]
address = "10.20.0.2"
[engine]
cpu_affinity = [1]
$(if [ "${WORKER_FIFO:-10}" != 0 ]; then echo "worker_fifo_priority = ${WORKER_FIFO:-10}"; else echo "worker_nice = ${WORKER_NICE:--15}"; fi)
${ENGINE_EXTRA:-}
TOML
}

# bench_place_receive NS     puts lbc's receive work (in namespace NS) on CPU 1: its NAPI threaded and pinned
#                            there (veth runs NAPI when an XDP program is attached), and RPS to CPU 1 (frames
#                            from an AF_XDP or TSO sender skip veth's NAPI and are received through the backlog,
#                            which without RPS is the sender's CPU). The sink's eth0 is left alone: it receives
#                            in softirq on the CPU that sends to it, CPU 1.
#                            LBC_RECEIVE=sender leaves lbc as veth has it by default instead: its receive work
#                            in softirq on the CPU that sends to it, the generator's CPU 0.
bench_place_receive() {
    [ "${LBC_RECEIVE:-}" != sender ] || return 0
    ip netns exec "$1" sh -c 'echo 1 > /sys/class/net/lbc/threaded'
    ip netns exec "$1" sh -c 'echo 2 > /sys/class/net/lbc/queues/rx-0/rps_cpus'
    local p
    for p in $(ps -eo pid=,comm= | awk '$2 ~ /^napi\/lbc-/ { print $1 }'); do taskset -pc 1 "$p" >/dev/null 2>&1 || true; done
}

# bench_be32 A.B.C.D          the address as a C constant for a __be32 field (on this little-endian machine)
bench_be32() { local a b c d; IFS=. read -r a b c d <<< "$1"; printf '0x%02x%02x%02x%02x' "$d" "$c" "$b" "$a"; }

# bench_build_xskfwd DIR     compiles bench/e2e/xskfwd.c and its steering program (for the VIP 10.10.0.1, the
#                            load balancer's backend-side address 10.20.0.1 and the backend 10.20.0.2) into DIR;
#                            FRAGS=1: the program for multi-buffer (xdp.frags), which bench_start_xskfwd then uses.
bench_build_xskfwd() {
    clang $(bpf/cflags.sh) ${FRAGS:+-DFRAGS} \
        -DVIP="$(bench_be32 10.10.0.1)" -DLB_ADDR="$(bench_be32 10.20.0.1)" -DBACKEND="$(bench_be32 10.20.0.2)" \
        -c bench/e2e/xskfwd.bpf.c -o "$1/xskfwd.o"
    clang -O2 -Wall -Wextra -Werror bench/e2e/xskfwd.c -lxdp -lbpf -o "$1/xskfwd"
}

# bench_start_xskfwd NS DIR CLIENT_MAC BACKEND_MAC
#                            runs DIR/xskfwd between lbc and lbs in namespace NS, placed as bench_config places
#                            the engine's worker (CPU 1, SCHED_FIFO at WORKER_FIFO or nice WORKER_NICE), its
#                            output in DIR/xskfwd.log; sets XSKFWD_PID and waits until it forwards (5 s at most).
bench_start_xskfwd() {
    local sched=(chrt -f "${WORKER_FIFO:-10}"); [ "${WORKER_FIFO:-10}" != 0 ] || sched=(nice -n "${WORKER_NICE:--15}")
    ip netns exec "$1" taskset -c 1 "${sched[@]}" "$2/xskfwd" ${FRAGS:+--frags} "$2/xskfwd.o" lbc lbs 10.10.0.1 10.10.0.2 \
        10.20.0.1 10.20.0.2 "$3" "$4" 2> "$2/xskfwd.log" &
    XSKFWD_PID=$!
    for _ in $(seq 50); do grep -q forwarding "$2/xskfwd.log" && return 0; kill -0 "$XSKFWD_PID" 2>/dev/null || break; sleep 0.1; done
    cat "$2/xskfwd.log" >&2
    return 1
}

# bench_sink_count NS        the XDP sink's counter (bench/e2e/sink.bpf.c on eth0 in namespace NS), summed over CPUs
bench_sink_count() {
    local prog map
    prog=$(ip -n "$1" -d link show dev eth0 | sed -nE 's/.*prog\/xdp id ([0-9]+).*/\1/p' | head -1)
    map=$(bpftool prog show id "$prog" | sed -nE 's/.*map_ids ([0-9]+).*/\1/p')
    # with BTF, bpftool prints {"key": 0, "values": [{"cpu": 0, "value": N}, ...]}
    bpftool map dump id "$map" | awk '/"value":/ { v = $0; gsub(/[^0-9]/, "", v); s += v } END { printf "%d\n", s }'
}
