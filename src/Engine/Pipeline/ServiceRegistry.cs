using ZonLb.Engine.Balancing;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Packets;

namespace ZonLb.Engine.Pipeline;

/// <summary>
/// The running services, shared by all workers: read on every packet, changed only while every worker is
/// paused (see Dataplane's control path), so the workers read it without locks. It also decides which worker
/// owns a packet's connection.
/// </summary>
internal sealed class ServiceRegistry
{
    private readonly Dictionary<ServiceKey, int> _index = new();
    private readonly HashSet<(IpAddr, IpProtocol)> _natAddresses = new();

    public ServiceRegistry(int workers, ushort natPortMin, ushort natPortMax)
    {
        if (workers < 1)
            throw new ArgumentOutOfRangeException(nameof(workers), workers, "at least one worker");
        Workers = workers;
        NatPortMin = natPortMin;
        NatPortMax = natPortMax;
    }

    public int Workers { get; }

    /// <summary>With several workers: the worker that saw each datagram's first fragment, so that its later
    /// fragments (which carry no ports) are handed to it. Touched only by fragments.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<FragmentKey, int> FragmentOwners { get; } = new();
    public ushort NatPortMin { get; }
    public ushort NatPortMax { get; }
    public List<ResolvedService> Services { get; } = new();

    /// <summary>(SNAT address, protocol) pairs whose replies come back to us, for the steering program.</summary>
    public IReadOnlyCollection<(IpAddr SnatIp, IpProtocol Protocol)> NatAddresses => _natAddresses;

    public bool TryFind(in ServiceKey key, out int index) => _index.TryGetValue(key, out index);

    public bool IsNatAddress(in IpAddr ip, IpProtocol protocol) => _natAddresses.Contains((ip, protocol));

    public int Add(ResolvedService s)
    {
        if (s.Workers != Workers)
            throw new ArgumentException($"service {s.Name} was built for {s.Workers} worker(s), the registry has {Workers}");
        if (_index.ContainsKey(s.Key))
            throw new InvalidOperationException($"service {s.Name}: {s.Key} is already served");
        Services.Add(s);
        _index.Add(s.Key, Services.Count - 1);
        if (!s.Dsr)
            foreach (var b in s.Backends)
                for (int a = 0; a < b.Info.Snat.Count; a++)
                    _natAddresses.Add((b.Info.Snat[a], s.Protocol));
        return Services.Count - 1;
    }

    /// <summary>Stops a service from taking new flows; its connections drain.</summary>
    public void Remove(int index)
    {
        var s = Services[index];
        s.Removed = true;
        _index.Remove(s.Key);
    }

    /// <summary>Adds a backend to a service (or revives a removed one at the same address and port).</summary>
    public int AddBackend(int serviceIndex, ResolvedBackend b)
    {
        var s = Services[serviceIndex];
        int i = s.Find(b.Ip, b.Port);
        if (i >= 0)
        {
            s.Backends[i].Info = b;
            s.Backends[i].Removed = false;
        }
        else
        {
            s.Backends.Add(new BackendSlot(b, Workers));
            i = s.Backends.Count - 1;
        }
        if (!s.Dsr)
            for (int a = 0; a < b.Snat.Count; a++)
                _natAddresses.Add((b.Snat[a], s.Protocol));
        s.Rebuild();
        return i;
    }

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
