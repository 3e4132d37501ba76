# Sourced by compare.sh and profile.sh: the zonlb-afxdp configuration both measure, and where the load
# balancer's receive work runs.
#
# bench_config FILE SOCKET   writes a config with lbc and lbs attached, a UDP service (VIP 10.10.0.1:9) and a
#                            TCP one (5201), both to 10.20.0.2, the worker pinned to CPU 1 and run
#                            SCHED_FIFO at priority ${WORKER_FIFO:-10} (WORKER_FIFO=0: normal scheduling
#                            with nice ${WORKER_NICE:--15} instead), and the [engine] lines in
#                            ENGINE_EXTRA (e.g. "ring_size = 4096").
bench_config() {
    cat > "$1" <<TOML
control_socket = "$2"
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
