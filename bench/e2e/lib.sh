# Sourced by compare.sh and profile.sh: the zonlb-afxdp configuration both measure.
#
# bench_config FILE SOCKET   writes a config with lbc and lbs attached, a UDP service (VIP 10.10.0.1:9) and a
#                            TCP one (5201), both to 10.20.0.2, the worker pinned to CPU 1 with nice
#                            ${WORKER_NICE:--15}, and the [engine] lines in ENGINE_EXTRA (e.g.
#                            "busy_poll_usecs = 50").
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
worker_nice = ${WORKER_NICE:--15}
${ENGINE_EXTRA:-}
TOML
}
