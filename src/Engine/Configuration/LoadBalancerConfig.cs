using System.Net;
using ZonLb.Engine.Packets;
using ZonLb.Native.Bpf;
using ZonLb.Native.Xsk;

namespace ZonLb.Engine.Configuration;

/// <summary>The whole configuration: what the TOML file maps onto, and what code that embeds the engine builds.</summary>
public sealed class LoadBalancerConfig
{
    public List<InterfaceConfig> Interfaces { get; } = new();
    public List<ServiceConfig> Services { get; } = new();
    public EngineOptions Engine { get; set; } = new();
    /// <summary>Where the configuration came from (a file path, or "code").</summary>
    public string Source { get; set; } = "code";

    public const string DefaultControlSocket = "/run/zonlb-afxdp.sock";

    /// <summary>The Unix socket `zonlb-afxdp status|stats|...` talks to (mode 0600: root only).</summary>
    public string ControlSocket { get; set; } = DefaultControlSocket;

    /// <summary>"address:port" of the Prometheus text endpoint; null: off.</summary>
    public string? MetricsListen { get; set; }
}

/// <summary>An interface the engine attaches to (client side, backend side, or both).</summary>
public sealed class InterfaceConfig
{
    public required string Name { get; init; }
    public XdpAttachMode XdpMode { get; init; } = XdpAttachMode.Auto;
    public XskBindMode XskMode { get; init; } = XskBindMode.Auto;
}

/// <summary>A service: a VIP, protocol and port that clients reach, balanced over backends.</summary>
public sealed class ServiceConfig
{
    public required string Name { get; init; }
    public required IPAddress Vip { get; init; }
    public required IpProtocol Protocol { get; init; }
    /// <summary>0 for ICMP echo services.</summary>
    public ushort Port { get; init; }
    /// <summary>Source address toward backends; null: the egress interface's address.</summary>
    public IPAddress? Snat { get; init; }
    /// <summary>How backends are checked; null: not checked (always up).</summary>
    public HealthConfig? Health { get; init; }
    public List<BackendConfig> Backends { get; } = new();
}

public enum HealthKind
{
    None,
    Tcp,
    Http,
}

/// <summary>Active health checks of a service's backends, from the load balancer's namespace.</summary>
public sealed class HealthConfig
{
    public HealthKind Kind { get; init; } = HealthKind.Tcp;
    public double IntervalSeconds { get; init; } = 2;
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

public sealed class BackendConfig
{
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
    /// <summary>UMEM frame size: 2048 or 4096.</summary>
    public int FrameSize { get; set; } = 2048;
    /// <summary>Entries of each fill, completion, RX and TX ring (a power of two).</summary>
    public int RingSize { get; set; } = 2048;
    public int ConnectionCapacity { get; set; } = 1 << 20;
    /// <summary>Slots of each service's Maglev table; a prime.</summary>
    public int MaglevTableSize { get; set; } = Balancing.MaglevTable.DefaultSize;
    /// <summary>NAT source ports (and ICMP echo ids); the default stays clear of Linux's ephemeral range 32768-60999.</summary>
    public ushort NatPortMin { get; set; } = 61000;
    public ushort NatPortMax { get; set; } = 65535;
    // Idle timeouts per state, in seconds; the defaults are nf_conntrack's.
    public int TcpSynSentTimeoutSeconds { get; set; } = 120;
    public int TcpSynRecvTimeoutSeconds { get; set; } = 60;
    public int TcpEstablishedTimeoutSeconds { get; set; } = 432000;
    public int TcpFinWaitTimeoutSeconds { get; set; } = 120;
    public int TcpCloseWaitTimeoutSeconds { get; set; } = 60;
    public int TcpLastAckTimeoutSeconds { get; set; } = 30;
    public int TcpTimeWaitTimeoutSeconds { get; set; } = 120;
    public int TcpCloseTimeoutSeconds { get; set; } = 10;
    /// <summary>UDP before the backend answered.</summary>
    public int UdpTimeoutSeconds { get; set; } = 30;
    /// <summary>UDP once the backend answered.</summary>
    public int UdpStreamTimeoutSeconds { get; set; } = 120;
    public int IcmpTimeoutSeconds { get; set; } = 30;
    /// <summary>How long a frame waits for its next hop's MAC before it is dropped.</summary>
    public int NeighborWaitMilliseconds { get; set; } = 1000;
    /// <summary>Debug: false leaves CHECKSUM_PARTIAL frames unrepaired (reproduces the dropped SYN of the seed notes).</summary>
    public bool RepairPartialChecksums { get; set; } = true;
    /// <summary>How long a learnt next hop is used before the kernel is asked again.</summary>
    public int NeighborCacheSeconds { get; set; } = 5;
}
