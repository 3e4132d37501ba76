using ZonLb.Engine.Balancing;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>A backend with the source address the engine uses toward it, and its Maglev weight.</summary>
public readonly record struct ResolvedBackend(uint Ip, ushort Port, uint SnatIp, int Weight = 1)
{
    /// <summary>The identity Maglev hashes: the same in every instance with the same configuration.</summary>
    public string Identity => $"{Routing.KernelRouteSource.ToAddress(Ip)}:{Port}";
}

/// <summary>(VIP, protocol, port) of a service; port 0 for ICMP echo.</summary>
public readonly record struct ServiceKey(uint Vip, IpProtocol Protocol, ushort Port);

/// <summary>
/// A service with its addresses as numbers, its backends' SNAT addresses decided, and the Maglev table that
/// assigns new flows. Backends can be taken out of (and put back into) the table for new flows; connections
/// already assigned keep their backend.
/// </summary>
public sealed class ResolvedService
{
    private readonly bool[] _out;
    private readonly int _tableSize;

    public ResolvedService(string name, uint vip, IpProtocol protocol, ushort port, ResolvedBackend[] backends,
        int maglevTableSize = MaglevTable.DefaultSize)
    {
        Name = name;
        Vip = vip;
        Protocol = protocol;
        Port = port;
        Backends = backends;
        _out = new bool[backends.Length];
        _tableSize = maglevTableSize;
        Table = Build();
    }

    public string Name { get; }
    public uint Vip { get; }
    public IpProtocol Protocol { get; }
    public ushort Port { get; }
    public ResolvedBackend[] Backends { get; }

    /// <summary>The table new flows are assigned by; replaced whole when a backend goes out or comes back.</summary>
    public MaglevTable Table { get; private set; }

    public ServiceKey Key => new(Vip, Protocol, Port);

    public bool IsOut(int backend) => _out[backend];

    /// <summary>Takes a backend out of (or back into) the table for new flows and rebuilds it.</summary>
    public void SetOut(int backend, bool isOut)
    {
        if (_out[backend] == isOut)
            return;
        _out[backend] = isOut;
        Table = Build();
    }

    private MaglevTable Build()
    {
        var ids = new string[Backends.Length];
        var weights = new int[Backends.Length];
        for (int i = 0; i < Backends.Length; i++)
        {
            ids[i] = Backends[i].Identity;
            weights[i] = _out[i] ? 0 : Backends[i].Weight;
        }
        return new MaglevTable(ids, weights, _tableSize);
    }
}
