namespace ZonLb.Engine.Configuration;

/// <summary>
/// Every key of the configuration file, in file order: the table the loader checks keys and reads [engine] from,
/// the writer writes [engine] from, and the man page zonlb.toml(5) and docs/configuration.md are generated from.
/// A key added here is documented everywhere; a key missing here is refused by the loader.
/// </summary>
public static class ConfigOptions
{
    private const OptionReload Applies = OptionReload.Applies;
    private const OptionReload Restart = OptionReload.Restart;
    private const int Week = 7 * 86400;

    /// <summary>The sections in file order, with what each holds.</summary>
    public static IReadOnlyList<(string Section, string Title, string Doc)> Sections { get; } = new[]
    {
        ("", "Top level", "Where the instance is reached."),
        ("interface", "[[interface]]", "An interface to attach to: the client side, the backend side, or both. At least one."),
        ("service", "[[service]]", "A service: a VIP, protocol and port that clients reach, balanced over backends. At least one."),
        ("service.health", "health = { ... } (in a [[service]])", "Active health checks of the service's backends, from the load balancer's namespace; absent: not checked (always up)."),
        ("service.backend", "[[service.backend]]", "A backend of the service above it. At least one per service."),
        ("engine", "[engine]", "Sizes, timeouts and scheduling of the data path; optional. A change needs a restart."),
    };

    /// <summary>Every key, in file order.</summary>
    public static IReadOnlyList<ConfigOption> All { get; } = new[]
    {
        ConfigOption.Text("", "control_socket", "string (absolute path)", "\"" + LoadBalancerConfig.DefaultControlSocket + "\"", Restart,
            "The Unix socket `status`, `stats` and the other control commands reach this instance on (mode 0600: root only); at most 107 characters."),
        ConfigOption.Text("", "metrics_listen", "string (address:port)", "absent (off)", Restart,
            "Serve the counters in Prometheus text format at GET /metrics on this address, e.g. \"127.0.0.1:9464\"."),

        ConfigOption.Text("interface", "name", "string", "required", Restart,
            "The interface's name in the engine's network namespace (1 to 15 characters).", required: true),
        ConfigOption.Text("interface", "xdp_mode", "auto | native | generic", "\"auto\"", Restart,
            "How the XDP program is attached: native where the driver has it, else generic (auto)."),
        ConfigOption.Text("interface", "xsk_mode", "auto | copy | zerocopy", "\"auto\"", Restart,
            "How AF_XDP sockets bind: zero-copy where the driver offers it, else copy (auto)."),
        ConfigOption.Text("interface", "vlans", "list of integers", "[] (untagged frames only)", Restart,
            "802.1Q VLAN ids (1-4094) whose tagged frames this interface accepts; each needs a VLAN interface on it (e.g. lbc.100) holding that VLAN's addresses and routes."),

        ConfigOption.Text("service", "name", "string", "required", Applies,
            "A unique name, used by commands, counters and logs.", required: true),
        ConfigOption.Text("service", "vip", "address", "required", Applies,
            "The address clients send to, IPv4 or IPv6. The kernel must answer ARP/NDP for it on the client side (an address of that interface, or one added for the purpose).", required: true),
        ConfigOption.Text("service", "protocol", "tcp | udp | icmp", "required", Applies,
            "The service's protocol; icmp serves ICMP echo (ICMPv6 echo on an IPv6 VIP).", required: true),
        ConfigOption.Number("service", "port", "integer", "required (absent for icmp)", 1, 65535, Applies,
            "The port clients connect to."),
        ConfigOption.Text("service", "snat", "address or list of addresses", "the kernel's preferred source toward each backend", Applies,
            "The source addresses of translated packets toward the backends (full NAT), of the VIP's family. Each address has its own NAT port range toward each backend, so a list of n addresses holds n times the connections, e.g. [\"10.20.0.1\", \"10.20.0.11\"]; the load balancer's kernel must own them (answer ARP/NDP)."),
        ConfigOption.Text("service", "mode", "nat | dsr", "\"nat\"", Applies,
            "nat: full NAT (destination and source translated; replies come back through the load balancer). dsr: direct server return on L2, only the MAC changes; backends hold the VIP on their loopback, serve the service's port and answer the client directly; no snat."),
        ConfigOption.Text("service", "health", "inline table", "absent (not checked)", Applies,
            "Health checks of the service's backends; the keys below."),

        ConfigOption.Text("service.health", "kind", "tcp | http | none", "\"tcp\"", Applies,
            "tcp: a connect must succeed; http: a GET of path must answer 2xx or 3xx; none: not checked. tcp and http need a tcp service."),
        ConfigOption.Number("service.health", "interval", "seconds", "2", 0.05, 3600, Applies,
            "Time between two checks of one backend."),
        ConfigOption.Number("service.health", "timeout", "seconds", "1", 0.05, 3600, Applies,
            "How long one check may take before it counts as failed; at most interval."),
        ConfigOption.Number("service.health", "rise", "integer", "2", 1, 100, Applies,
            "Consecutive successes that bring a down backend back."),
        ConfigOption.Number("service.health", "fall", "integer", "3", 1, 100, Applies,
            "Consecutive failures that take an up backend out of the Maglev table."),
        ConfigOption.Text("service.health", "path", "string", "\"/\"", Applies,
            "HTTP checks: the path requested; starts with /."),
        ConfigOption.Text("service.health", "drain", "boolean", "true", Applies,
            "true: a failed backend keeps its established connections until they close; false: they are dropped at once."),

        ConfigOption.Text("service.backend", "address", "address", "required", Applies,
            "The backend's address, of the VIP's family.", required: true),
        ConfigOption.Number("service.backend", "port", "integer", "the service's port (absent for icmp)", 1, 65535, Applies,
            "The port translated packets go to; a dsr service's backends serve the service's own port."),
        ConfigOption.Number("service.backend", "weight", "integer", "1", 0, 1000, Applies,
            "Share of new flows relative to the service's other backends (Maglev); 0 takes no new flows."),

        ConfigOption.EngineInt("workers", 1, 64, o => o.Workers, (o, v) => o.Workers = v,
            "Data-path threads; every interface needs at least this many RX queues."),
        ConfigOption.Text("engine", "cpu_affinity", "list of integers", "[] (not pinned)", Restart,
            "The CPU of each worker, one per worker, e.g. [0, 1]; each must be in the process's CPU affinity mask."),
        ConfigOption.EngineInt("frame_count", 64, 1 << 22, o => o.FrameCount, (o, v) => o.FrameCount = v,
            "UMEM frames shared by all sockets."),
        ConfigOption.EngineBool("multi_buffer", o => o.MultiBuffer, (o, v) => o.MultiBuffer = v,
            "true: frames larger than a UMEM frame (jumbo MTUs; above 3,506 on a veth's peer) go through as chains of frames: the XDP program loads as xdp.frags and the sockets bind with XDP_USE_SG (Linux 6.6+)."),
        ConfigOption.EngineInt("frame_size", 2048, 4096, o => o.FrameSize, (o, v) => o.FrameSize = v,
            "UMEM frame size: 2048 or 4096.", defaultFrom: o => o.MultiBuffer ? 4096 : 2048, defaultText: "2048 (4096 with multi_buffer = true)"),
        ConfigOption.EngineInt("ring_size", 64, 32768, o => o.RingSize, (o, v) => o.RingSize = v,
            "Entries of every fill, completion, RX and TX ring; a power of two."),
        ConfigOption.EngineInt("connection_capacity", 1, 1 << 26, o => o.ConnectionCapacity, (o, v) => o.ConnectionCapacity = v,
            "Connections the tables hold in all (split among the workers)."),
        ConfigOption.EngineInt("maglev_table_size", 3, 16_777_213, o => o.MaglevTableSize, (o, v) => o.MaglevTableSize = v,
            "Slots of each service's Maglev table; a prime (65537, 131071, 1000003, ...)."),
        ConfigOption.EngineInt("nat_port_min", 1, 65535, o => o.NatPortMin, (o, v) => o.NatPortMin = (ushort)v,
            "The first NAT source port (and ICMP echo id); the default stays clear of Linux's ephemeral range 32768-60999, so the host's own connections are never taken."),
        ConfigOption.EngineInt("nat_port_max", 1, 65535, o => o.NatPortMax, (o, v) => o.NatPortMax = (ushort)v,
            "The last NAT source port; at least nat_port_min."),
        ConfigOption.EngineInt("tcp_unassured_timeout", 1, Week, o => o.TcpUnassuredTimeoutSeconds, (o, v) => o.TcpUnassuredTimeoutSeconds = v,
            "Idle timeout in seconds, at most, of a TCP connection not yet assured: picked up mid-stream, or established without a reply from the backend (conntrack's unacknowledged timeout). SYN_SENT keeps its own."),
        ConfigOption.Text("engine", "table_full", "early-drop | refuse", "\"early-drop\"", Restart,
            "What a new flow does when the connection table, or the NAT ports of its backend, are full. early-drop (conntrack's): evicts the least recently seen of a sample of unassured entries (no reply yet, picked up mid-stream, ICMP, or a UDP exchange that did not go on for 2 s), and a new TCP connection takes over the port of a closed one in TIME_WAIT or CLOSE where the backend will accept it; counted as early_drops and nat_ports_reused. refuse: the new flow is dropped (connection_table_full, nat_ports_exhausted)."),
        ConfigOption.EngineInt("tcp_syn_sent_timeout", 1, Week, o => o.TcpSynSentTimeoutSeconds, (o, v) => o.TcpSynSentTimeoutSeconds = v,
            "Idle timeout in seconds of a TCP connection in SYN_SENT (the TCP defaults are nf_conntrack's)."),
        ConfigOption.EngineInt("tcp_syn_recv_timeout", 1, Week, o => o.TcpSynRecvTimeoutSeconds, (o, v) => o.TcpSynRecvTimeoutSeconds = v,
            "Idle timeout in SYN_RECV."),
        ConfigOption.EngineInt("tcp_established_timeout", 1, 4 * Week, o => o.TcpEstablishedTimeoutSeconds, (o, v) => o.TcpEstablishedTimeoutSeconds = v,
            "Idle timeout in ESTABLISHED."),
        ConfigOption.EngineInt("tcp_fin_wait_timeout", 1, Week, o => o.TcpFinWaitTimeoutSeconds, (o, v) => o.TcpFinWaitTimeoutSeconds = v,
            "Idle timeout in FIN_WAIT."),
        ConfigOption.EngineInt("tcp_close_wait_timeout", 1, Week, o => o.TcpCloseWaitTimeoutSeconds, (o, v) => o.TcpCloseWaitTimeoutSeconds = v,
            "Idle timeout in CLOSE_WAIT."),
        ConfigOption.EngineInt("tcp_last_ack_timeout", 1, Week, o => o.TcpLastAckTimeoutSeconds, (o, v) => o.TcpLastAckTimeoutSeconds = v,
            "Idle timeout in LAST_ACK."),
        ConfigOption.EngineInt("tcp_time_wait_timeout", 1, Week, o => o.TcpTimeWaitTimeoutSeconds, (o, v) => o.TcpTimeWaitTimeoutSeconds = v,
            "Idle timeout in TIME_WAIT."),
        ConfigOption.EngineInt("tcp_close_timeout", 1, Week, o => o.TcpCloseTimeoutSeconds, (o, v) => o.TcpCloseTimeoutSeconds = v,
            "Idle timeout after a RST (CLOSE)."),
        ConfigOption.EngineInt("udp_timeout", 1, Week, o => o.UdpTimeoutSeconds, (o, v) => o.UdpTimeoutSeconds = v,
            "Idle timeout of a UDP flow until it is a stream (as conntrack: a single request and answer, such as DNS, stays on this timeout)."),
        ConfigOption.EngineInt("udp_stream_timeout", 1, Week, o => o.UdpStreamTimeoutSeconds, (o, v) => o.UdpStreamTimeoutSeconds = v,
            "Idle timeout of a UDP stream: a flow the backend answered that is still active 2 s after it began."),
        ConfigOption.EngineInt("icmp_timeout", 1, Week, o => o.IcmpTimeoutSeconds, (o, v) => o.IcmpTimeoutSeconds = v,
            "Idle timeout of an ICMP echo flow."),
        ConfigOption.EngineInt("neighbor_wait_ms", 1, 60000, o => o.NeighborWaitMilliseconds, (o, v) => o.NeighborWaitMilliseconds = v,
            "How long a frame waits for its next hop's ARP/NDP resolution before it is dropped (neighbor_timeout)."),
        ConfigOption.EngineInt("worker_stall_ms", 0, 600000, o => o.WorkerStallMilliseconds, (o, v) => o.WorkerStallMilliseconds = v,
            "A worker that has not come round its loop for this long is stalled: its queues leave the steering map, everything is detached and run exits 1 (systemd restarts it); 0: no watchdog."),
        ConfigOption.EngineInt("neighbor_cache_seconds", 1, 3600, o => o.NeighborCacheSeconds, (o, v) => o.NeighborCacheSeconds = v,
            "How long a learnt next hop is used before the kernel is asked again."),
        ConfigOption.EngineBool("repair_partial_checksums", o => o.RepairPartialChecksums, (o, v) => o.RepairPartialChecksums = v,
            "Debug only: false leaves frames with CHECKSUM_PARTIAL (veth senders with TX offload on) unrepaired, which reproduces the dropped SYN of the seed notes."),
        ConfigOption.EngineInt("busy_poll_usecs", 0, 100000, o => o.BusyPollMicroseconds, (o, v) => o.BusyPollMicroseconds = v,
            "Above 0: SO_PREFER_BUSY_POLL and SO_BUSY_POLL on the sockets, and the workers never sleep; excludes worker_fifo_priority."),
        ConfigOption.EngineInt("worker_nice", -20, 19, o => o.WorkerNice, (o, v) => o.WorkerNice = v,
            "The workers' nice value; 0 leaves it. Lower gives a worker sharing its CPU with the kernel's receive work more of that CPU."),
        ConfigOption.Text("engine", "worker_fifo_priority", "integer 0-99 or \"auto\"", "\"auto\"", Restart,
            "1-99: the workers run SCHED_FIFO at this priority and sleep in poll() whenever a round found nothing to do; 0: normal scheduling; auto: SCHED_FIFO at priority 10 where the process may (CAP_SYS_NICE), else normal, and normal with worker_nice or busy_poll_usecs set. A real-time worker answers its frames at once, ahead of other threads on its CPU, and takes no CPU at rest. A number needs CAP_SYS_NICE; excludes worker_nice and busy_poll_usecs."),
    };

    /// <summary>The keys allowed in <paramref name="section"/>.</summary>
    public static IEnumerable<ConfigOption> In(string section)
    {
        foreach (var o in All)
            if (o.Section == section)
                yield return o;
    }

    /// <summary>The names allowed in <paramref name="section"/>, with the tables nested in it (interface, service,
    /// engine at the top; backend in a service).</summary>
    internal static string[] KeysOf(string section)
    {
        var keys = new List<string>();
        foreach (var o in In(section))
            keys.Add(o.Key);
        if (section == "")
            keys.InsertRange(0, new[] { "interface", "service", "engine" });
        if (section == "service")
            keys.Add("backend");
        return keys.ToArray();
    }
}
