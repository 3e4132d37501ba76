using System.Net;
using ZonLb.Engine.Packets;
using ZonLb.Native.Bpf;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Configuration;

/// <summary>The whole configuration: what the TOML file maps onto, and what code that embeds the engine builds.</summary>
public sealed class LoadBalancerConfig
{
    /// <summary>The interfaces to attach to: at least one.</summary>
    public List<InterfaceConfig> Interfaces { get; } = new();
    /// <summary>The services to serve: at least one.</summary>
    public List<ServiceConfig> Services { get; } = new();
    /// <summary>Sizes and timeouts of the data path.</summary>
    public EngineOptions Engine { get; set; } = new();
    /// <summary>Where the configuration came from (a file path, or "code").</summary>
    public string Source { get; set; } = "code";

    /// <summary>The control socket's path when none is configured.</summary>
    public const string DefaultControlSocket = "/run/zonlb-afxdp/zonlb-afxdp.sock";

    /// <summary>The Unix socket `zonlb-afxdp status|stats|...` talks to (mode 0600: root only).</summary>
    public string ControlSocket { get; set; } = DefaultControlSocket;

    /// <summary>"address:port" of the Prometheus text endpoint; null: off.</summary>
    public string? MetricsListen { get; set; }
}

/// <summary>An interface the engine attaches to (client side, backend side, or both).</summary>
public sealed class InterfaceConfig
{
    /// <summary>The interface's name in the engine's network namespace.</summary>
    public required string Name { get; init; }
    /// <summary>How the XDP program is attached: native where the driver has it, else generic (Auto).</summary>
    public XdpAttachMode XdpMode { get; init; } = XdpAttachMode.Auto;
    /// <summary>How AF_XDP sockets bind: zero-copy where the driver offers it, else copy (Auto).</summary>
    public XskBindMode XskMode { get; init; } = XskBindMode.Auto;
    /// <summary>802.1Q VLAN ids whose tagged frames this interface accepts (each needs a VLAN interface on it, e.g.
    /// lbc.100, holding the addresses and routes of that VLAN); empty: only untagged frames.</summary>
    public List<int> Vlans { get; init; } = new();
}

/// <summary>A service: a VIP, protocol and port that clients reach, balanced over backends.</summary>
public sealed class ServiceConfig
{
    /// <summary>A unique name, used by commands, counters and logs.</summary>
    public required string Name { get; init; }
    /// <summary>The address clients send to, IPv4 or IPv6; the service's backends and snat are of its family.</summary>
    public required IPAddress Vip { get; init; }
    /// <summary>TCP, UDP, or ICMP (echo; ICMPv6 echo over an IPv6 VIP).</summary>
    public required IpProtocol Protocol { get; init; }
    /// <summary>0 for ICMP echo services.</summary>
    public ushort Port { get; init; }
    /// <summary>Source addresses toward the backends (each with its own NAT port range toward each backend, so n
    /// addresses hold n times the connections); empty: the kernel's preferred source toward each backend.</summary>
    public List<IPAddress> Snat { get; init; } = new();
    /// <summary>Full NAT (the default), or direct server return.</summary>
    public ForwardingMode Mode { get; init; } = ForwardingMode.Nat;
    /// <summary>How backends are checked; null: not checked (always up).</summary>
    public HealthConfig? Health { get; init; }
    /// <summary>The backends new flows are spread over (Maglev, by weight).</summary>
    public List<BackendConfig> Backends { get; } = new();
}

/// <summary>How a service's packets reach its backends.</summary>
public enum ForwardingMode
{
    /// <summary>Full NAT: toward the backend from the SNAT address and a NAT port; replies come back through us.</summary>
    Nat,
    /// <summary>Direct server return (L2): only the destination MAC changes; the backend holds the VIP (on its
    /// loopback) and answers the client directly. Backends sit on a network attached to the load balancer.</summary>
    Dsr,
}

/// <summary>How a backend is checked.</summary>
public enum HealthKind
{
    /// <summary>Not checked: always up.</summary>
    None,
    /// <summary>A TCP connect must succeed.</summary>
    Tcp,
    /// <summary>An HTTP GET must answer 2xx or 3xx.</summary>
    Http,
}

/// <summary>Active health checks of a service's backends, from the load balancer's namespace.</summary>
public sealed class HealthConfig
{
    /// <summary>What a check is.</summary>
    public HealthKind Kind { get; init; } = HealthKind.Tcp;
    /// <summary>Time between two checks of one backend.</summary>
    public double IntervalSeconds { get; init; } = 2;
    /// <summary>How long one check may take before it counts as failed.</summary>
    public double TimeoutSeconds { get; init; } = 1;
    /// <summary>Consecutive successes that bring a down backend back.</summary>
    public int Rise { get; init; } = 2;
    /// <summary>Consecutive failures that take an up backend out.</summary>
    public int Fall { get; init; } = 3;
    /// <summary>HTTP checks: the path requested; a 2xx or 3xx status passes.</summary>
    public string Path { get; init; } = "/";
    /// <summary>true: a failed backend keeps its connections until they close; false: they are dropped.</summary>
    public bool Drain { get; init; } = true;
}

/// <summary>A backend of a service.</summary>
public sealed class BackendConfig
{
    /// <summary>The backend's address, of the service's VIP's family.</summary>
    public required IPAddress Address { get; init; }
    /// <summary>0 for ICMP echo services.</summary>
    public ushort Port { get; init; }
    /// <summary>Share of new flows relative to the other backends; 0 takes no new flows.</summary>
    public int Weight { get; init; } = 1;
}

/// <summary>Sizes and timeouts of the data path, with their defaults.</summary>
public sealed class EngineOptions
{
    /// <summary>Data-path threads; each interface needs at least this many RX queues.</summary>
    public int Workers { get; set; } = 1;
    /// <summary>CPU for each worker (empty: not pinned).</summary>
    public List<int> CpuAffinity { get; set; } = new();
    /// <summary>UMEM frames shared by all sockets.</summary>
    public int FrameCount { get; set; } = 16384;
    /// <summary>UMEM frame size: 2048 or 4096 (the file's default: 4096 with <see cref="MultiBuffer"/>, else 2048).</summary>
    public int FrameSize { get; set; } = 2048;
    /// <summary>Entries of each fill, completion, RX and TX ring (a power of two).</summary>
    public int RingSize { get; set; } = 2048;
    /// <summary>Connections the tables hold in all (split among workers).</summary>
    public int ConnectionCapacity { get; set; } = 1 << 20;
    /// <summary>Slots of each service's Maglev table; a prime.</summary>
    public int MaglevTableSize { get; set; } = Balancing.MaglevTable.DefaultSize;
    /// <summary>NAT source ports (and ICMP echo ids); the default stays clear of Linux's ephemeral range 32768-60999.</summary>
    public ushort NatPortMin { get; set; } = 61000;
    /// <summary>The last NAT source port.</summary>
    public ushort NatPortMax { get; set; } = 65535;
    /// <summary>Idle timeout of a TCP connection in SYN_SENT (the defaults are nf_conntrack's).</summary>
    public int TcpSynSentTimeoutSeconds { get; set; } = 120;
    /// <summary>Idle timeout in SYN_RECV.</summary>
    public int TcpSynRecvTimeoutSeconds { get; set; } = 60;
    /// <summary>Idle timeout in ESTABLISHED.</summary>
    public int TcpEstablishedTimeoutSeconds { get; set; } = 432000;
    /// <summary>Idle timeout in FIN_WAIT.</summary>
    public int TcpFinWaitTimeoutSeconds { get; set; } = 120;
    /// <summary>Idle timeout in CLOSE_WAIT.</summary>
    public int TcpCloseWaitTimeoutSeconds { get; set; } = 60;
    /// <summary>Idle timeout in LAST_ACK.</summary>
    public int TcpLastAckTimeoutSeconds { get; set; } = 30;
    /// <summary>Idle timeout in TIME_WAIT.</summary>
    public int TcpTimeWaitTimeoutSeconds { get; set; } = 120;
    /// <summary>Idle timeout after a RST (CLOSE).</summary>
    public int TcpCloseTimeoutSeconds { get; set; } = 10;
    /// <summary>UDP until the flow is a stream (answered and still active 2 s after it began), as conntrack.</summary>
    public int UdpTimeoutSeconds { get; set; } = 30;
    /// <summary>UDP once the flow is a stream.</summary>
    public int UdpStreamTimeoutSeconds { get; set; } = 120;
    /// <summary>At most this idle timeout for a TCP connection not yet assured (picked up mid-stream, or without a
    /// reply from the backend), SYN_SENT excepted: conntrack's unacknowledged timeout.</summary>
    public int TcpUnassuredTimeoutSeconds { get; set; } = 300;
    /// <summary>What a new flow does when the connection table or its NAT ports are full.</summary>
    public TableFullPolicy TableFull { get; set; } = TableFullPolicy.EarlyDrop;
    /// <summary>Idle timeout of an ICMP echo flow.</summary>
    public int IcmpTimeoutSeconds { get; set; } = 30;
    /// <summary>How long a frame waits for its next hop's MAC before it is dropped.</summary>
    public int NeighborWaitMilliseconds { get; set; } = 1000;

    /// <summary>A worker that has not come round its loop for this long is stalled: the data path fails (its sockets
    /// leave the steering map, everything is detached, run exits 1); 0 turns the watchdog off.</summary>
    public int WorkerStallMilliseconds { get; set; } = 5000;
    /// <summary>Debug: false leaves CHECKSUM_PARTIAL frames unrepaired (reproduces the dropped SYN of the seed notes).</summary>
    public bool RepairPartialChecksums { get; set; } = true;
    /// <summary>Frames larger than a UMEM frame (jumbo MTUs; above 3,506 on a veth's peer): the XDP program is
    /// loaded as xdp.frags and the sockets bind with XDP_USE_SG, so such a frame arrives as a chain of UMEM frames,
    /// is translated in its first (the headers) and sent as the same chain. Linux 6.6 or later.</summary>
    public bool MultiBuffer { get; set; }
    /// <summary>Busy polling of the AF_XDP sockets, in microseconds per syscall (SO_BUSY_POLL with
    /// SO_PREFER_BUSY_POLL); 0: off. The workers then never sleep and run the receive queues' NAPI themselves.</summary>
    public int BusyPollMicroseconds { get; set; }
    /// <summary>The workers' nice value (-20..19); 0 leaves it. Lower gives a worker sharing a CPU with the
    /// kernel's receive work more of that CPU.</summary>
    public int WorkerNice { get; set; }
    /// <summary>Runs the workers SCHED_FIFO at this priority (1-99); 0: normal scheduling; <see cref="AutoFifoPriority"/>
    /// (the default, "auto" in the file): SCHED_FIFO at priority 10 where the process may (CAP_SYS_NICE, and real-time
    /// runtime in its cgroup), else normal scheduling, and normal scheduling with worker_nice or busy_poll_usecs set.
    /// A real-time worker runs as soon as its frames arrive, ahead of the kernel's threaded NAPI and of every other
    /// thread on its CPU (the control plane's among them), and sleeps in poll() when a round found nothing to do,
    /// so at rest it takes no CPU. Excludes <see cref="WorkerNice"/>.</summary>
    public int WorkerFifoPriority { get; set; } = AutoFifoPriority;

    /// <summary>The value of <see cref="WorkerFifoPriority"/> that lets the engine choose.</summary>
    public const int AutoFifoPriority = -1;

    /// <summary>The priority "auto" takes where the process may.</summary>
    public const int AutoFifoPriorityValue = 10;
    /// <summary>How long a learnt next hop is used before the kernel is asked again.</summary>
    public int NeighborCacheSeconds { get; set; } = 5;
}

/// <summary>What a new flow does when the connection table, or the NAT ports toward its backend, are full.</summary>
public enum TableFullPolicy
{
    /// <summary>Evict an unassured entry (the least recently seen of a sample), and let a new TCP connection take
    /// over the NAT port of a closed one in TIME_WAIT or CLOSE, as conntrack does.</summary>
    EarlyDrop,
    /// <summary>Drop the new flow.</summary>
    Refuse,
}
