using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Services;

/// <summary>A backend with the source addresses the engine uses toward it, and its Maglev weight.</summary>
internal readonly record struct ResolvedBackend
{
    /// <summary>A backend reached from one SNAT address (default: none, direct server return).</summary>
    public ResolvedBackend(IpAddr ip, ushort port, IpAddr snatIp, int weight = 1)
        : this(ip, port, snatIp == default ? SnatAddresses.None : new SnatAddresses(snatIp), weight)
    {
    }

    private ResolvedBackend(IpAddr ip, ushort port, SnatAddresses snat, int weight)
    {
        Ip = ip;
        Port = port;
        Snat = snat;
        Weight = weight;
    }

    /// <summary>A backend reached from several SNAT addresses, each with its own NAT port range.</summary>
    public static ResolvedBackend WithSnat(IpAddr ip, ushort port, SnatAddresses snat, int weight = 1) => new(ip, port, snat, weight);

    public IpAddr Ip { get; init; }
    public ushort Port { get; init; }
    public SnatAddresses Snat { get; init; }
    public int Weight { get; init; }

    /// <summary>The first SNAT address (default under direct server return).</summary>
    public IpAddr SnatIp => Snat.First;

    /// <summary>The identity Maglev hashes: the same in every instance with the same configuration.</summary>
    public string Identity => $"{Ip}:{Port}";
}

/// <summary>(VIP, protocol, port) of a service; port 0 for ICMP echo.</summary>
internal readonly record struct ServiceKey(IpAddr Vip, IpProtocol Protocol, ushort Port);
