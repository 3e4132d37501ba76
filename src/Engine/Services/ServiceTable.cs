using System.Collections.Concurrent;
using System.Collections.Frozen;
using ZonLb.Engine.Balancing;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Services;

/// <summary>
/// One version of the running services, as the workers see them: immutable, so a worker reads it on every packet
/// without locks. The control plane builds the next version (<see cref="ServiceRegistry.Snapshot"/>) and publishes
/// it; each worker moves to it between two batches (RCU). It also decides which worker owns a packet's connection.
/// </summary>
internal sealed class ServiceTable
{
    private readonly FrozenDictionary<ServiceKey, int> _index;
    private readonly FrozenSet<(IpAddr, IpProtocol)> _natAddresses;

    public ServiceTable(long version, int workers, ushort natPortMin, ushort natPortMax, ResolvedService[] services,
        ConcurrentDictionary<FragmentKey, int> fragmentOwners)
    {
        Version = version;
        Workers = workers;
        NatPortMin = natPortMin;
        NatPortMax = natPortMax;
        Services = services;
        FragmentOwners = fragmentOwners;
        var index = new Dictionary<ServiceKey, int>();
        var nat = new HashSet<(IpAddr, IpProtocol)>();
        for (int i = 0; i < services.Length; i++)
        {
            var s = services[i];
            if (!s.Removed)
                index[s.Key] = i;
            if (s.Dsr)
                continue;
            // every SNAT address of every backend, removed ones too: their connections drain through us
            foreach (var b in s.Backends)
                for (int a = 0; a < b.Info.Snat.Count; a++)
                    nat.Add((b.Info.Snat[a], s.Protocol));
        }
        _index = index.ToFrozenDictionary();
        _natAddresses = nat.ToFrozenSet();
    }

    /// <summary>Increases with every version published.</summary>
    public long Version { get; }

    public int Workers { get; }
    public ushort NatPortMin { get; }
    public ushort NatPortMax { get; }

    /// <summary>Every service of this run, by index (removed ones stay: connections refer to them by index).</summary>
    public ResolvedService[] Services { get; }

    /// <summary>With several workers: the worker that saw each datagram's first fragment, so that its later
    /// fragments (which carry no ports) are handed to it. Shared by every version; touched only by fragments.</summary>
    public ConcurrentDictionary<FragmentKey, int> FragmentOwners { get; }

    /// <summary>(SNAT address, protocol) pairs whose replies come back to us, for the steering program.</summary>
    public IReadOnlyCollection<(IpAddr SnatIp, IpProtocol Protocol)> NatAddresses => _natAddresses;

    public bool TryFind(in ServiceKey key, out int index) => _index.TryGetValue(key, out index);

    public bool IsNatAddress(in IpAddr ip, IpProtocol protocol) => _natAddresses.Contains((ip, protocol));

    /// <summary>
    /// The worker that owns a packet's connection. A reply to one of our NAT ports belongs to the worker that
    /// allocated the port (NAT ports are split among workers by port modulo the worker count); any other
    /// packet belongs to the worker chosen by the hash of its 5-tuple, which is the worker that creates its
    /// connection. So both directions of a connection meet at one worker, whatever queue they arrive on.
    /// </summary>
    public int OwnerOf(in ParsedPacket p)
    {
        if (Workers == 1)
            return 0;
        if (p.IsLaterFragment)
            return FragmentOwners.TryGetValue(new FragmentKey(p.SrcIp, p.DstIp, p.FragmentId, p.Protocol), out int owner) ? owner : -1;
        if (p.IsIcmpError)
        {
            // the owner of the connection the quoted packet belongs to: it left us from a NAT port (its
            // worker's) toward a backend, or from the VIP toward a client (the client flow's hash)
            if (p.InnerSrcPort >= NatPortMin && p.InnerSrcPort <= NatPortMax && _natAddresses.Contains((p.InnerSrc, p.InnerProtocol)))
                return p.InnerSrcPort % Workers;
            return (int)(StableHash.Flow(p.InnerDst, p.InnerDstPort, (byte)p.InnerProtocol, p.InnerSrc, p.InnerSrcPort) % (ulong)Workers);
        }
        bool reply = p.Protocol != IpProtocol.Icmp || p.IcmpType == Wire.IcmpEchoReply;
        if (reply && p.DstPort >= NatPortMin && p.DstPort <= NatPortMax && _natAddresses.Contains((p.DstIp, p.Protocol)))
            return p.DstPort % Workers;
        return (int)(StableHash.Flow(p.SrcIp, p.SrcPort, (byte)p.Protocol, p.DstIp, p.DstPort) % (ulong)Workers);
    }
}
