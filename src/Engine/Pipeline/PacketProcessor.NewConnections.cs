using ZonLb.Engine.Balancing;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Services;

namespace ZonLb.Engine.Pipeline;

/// <summary>New connections: the backend Maglev picks, a NAT port, a table entry; early drop when ports or the
/// table are full.</summary>
internal sealed partial class PacketProcessor
{
    private readonly Dictionary<(IpAddr Snat, IpAddr Backend, ushort BackendPort, IpProtocol Protocol), PortAllocator> _natPorts = new();
    private uint _random;

    private PortAllocator NatPorts(in IpAddr snat, in ResolvedBackend b, IpProtocol protocol)
    {
        var key = (snat, b.Ip, b.Port, protocol);
        if (!_natPorts.TryGetValue(key, out var ports))
            _natPorts[key] = ports = new PortAllocator(_options.NatPortMin, _options.NatPortMax, _table.Workers, _worker, NextRandom());
        return ports;
    }

    /// <summary>A NAT port toward backend b from one of its SNAT addresses (starting from one the flow's hash picks,
    /// so flows spread over them): a free one if any; else, under early drop, one taken from an evicted holder.</summary>
    private bool TryTakeNatPort(in ResolvedBackend b, IpProtocol protocol, in ParsedPacket p, uint seq,
        out PortAllocator? ports, out IpAddr snat, out ushort port, ref Forwarding f)
    {
        int n = b.Snat.Count;
        int first = n == 1 ? 0 : (int)((uint)StableHash.Flow(p.SrcIp, p.SrcPort, (byte)p.Protocol, p.DstIp, p.DstPort) % (uint)n);
        for (int k = 0; k < n; k++)
        {
            snat = b.Snat[(first + k) % n];
            ports = NatPorts(in snat, in b, protocol);
            if (ports.TryAllocate(out port))
                return true;
        }
        if (_options.TableFull == TableFullPolicy.EarlyDrop)
        {
            bool syn = protocol == IpProtocol.Tcp && (p.TcpFlags & (Wire.TcpSyn | TcpAckFlag)) == Wire.TcpSyn;
            for (int k = 0; k < n; k++)
            {
                snat = b.Snat[(first + k) % n];
                ports = NatPorts(in snat, in b, protocol);
                if (TryEvictForPort(ports, syn, out port, ref f))
                    return true;
            }
        }
        ports = null;
        snat = default;
        port = 0;
        return false;
    }

    private const byte TcpAckFlag = 0x10;

    /// <summary>How many holders (or table entries) early drop looks at to choose the one to evict.</summary>
    private const int EvictionSample = 64;

    /// <summary>
    /// Early drop for a full port range: of a random sample of the range's holders, the one to give up its port.
    /// Closed TCP connections come first: those the backend will take a new SYN on at once (after a RST, or in
    /// TIME_WAIT when the client closed first, so the backend does not wait), then those whose backend waits in
    /// TIME_WAIT, whose wait a reset ends first (<see cref="Forwarding.TimeWaitResetSeq"/>: a new SYN's sequence number beyond
    /// the old connection's is not enough, as the backend's timestamp check refuses half of them); then unassured
    /// entries. The least recently seen of the first kind found.
    /// False when the sample holds none (every port held by a live, assured connection).
    /// </summary>
    private bool TryEvictForPort(PortAllocator ports, bool syn, out ushort port, ref Forwarding f)
    {
        port = 0;
        int cap = ports.Capacity;
        if (cap == 0)
            return false;
        int best = -1, bestRank = int.MaxValue;
        long bestSeen = long.MaxValue;
        for (int n = 0, i = ports.SampleStart(); n < EvictionSample && n < cap; n++, i = i + 1 == cap ? 0 : i + 1)
        {
            int h = ports.HolderAt(i);
            if (h < 0 || h >= PortAllocator.Reserved - 1)
                continue;
            ref var c = ref _connections[h];
            if (!c.InUse)
                continue;
            int rank = ReuseRank(in c);
            if (rank < bestRank || (rank == bestRank && c.LastSeen < bestSeen))
            {
                best = i;
                bestRank = rank;
                bestSeen = c.LastSeen;
            }
        }
        if (best < 0 || bestRank == NotReusable)
            return false;
        int victim = ports.HolderAt(best);
        if (bestRank == ReusableAfterReset && syn)
            f.TimeWaitResetSeq = _connections[victim].ClientSeqEnd;
        Evict(victim, closed: bestRank != Unassured);
        port = ports.PortAt(best);
        return ports.TryClaim(port);
    }

    private const int ReusableNow = 0, ReusableAfterReset = 1, Unassured = 2, NotReusable = 3;

    /// <summary>How good a holder is to give its port to a new flow (lower is better).</summary>
    private static int ReuseRank(in Connection c)
    {
        if (c.Protocol == IpProtocol.Tcp && c.TcpState == TcpState.Close)
            return ReusableNow;
        if (c.Protocol == IpProtocol.Tcp && c.TcpState == TcpState.TimeWait)
            return c.FinFromClient ? ReusableNow : ReusableAfterReset;
        return c.Assured ? NotReusable : Unassured;
    }

    /// <summary>Early drop for a full table: of the entries from a random place on (a sample), the closed TCP
    /// connection or else the unassured entry least recently seen is removed. False when the sample holds none.</summary>
    private bool EvictForEntry()
    {
        int cap = _connections.Capacity;
        int best = -1;
        bool bestClosed = false;
        long bestSeen = long.MaxValue;
        for (int n = 0, i = (int)(NextRandom() % (uint)cap); n < EvictionSample && n < cap; n++, i = i + 1 == cap ? 0 : i + 1)
        {
            ref var c = ref _connections[i];
            if (!c.InUse)
                continue;
            bool closed = c.Protocol == IpProtocol.Tcp && c.TcpState is TcpState.TimeWait or TcpState.Close;
            if (!closed && c.Assured)
                continue;
            if ((closed && !bestClosed) || (closed == bestClosed && c.LastSeen < bestSeen))
            {
                best = i;
                bestClosed = closed;
                bestSeen = c.LastSeen;
            }
        }
        if (best < 0)
            return false;
        Evict(best, bestClosed);
        return true;
    }

    /// <summary>Removes a connection to make room for a new one, counted as a port reuse or an early drop.</summary>
    private void Evict(int index, bool closed)
    {
        if (closed)
            Counters.NatPortsReused++;
        else
            Counters.EarlyDrops++;
        OnRemoved(_connections[index]);
        _connections.Remove(index);
    }

    private uint NextRandom()
    {
        uint x = _random;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return _random = x;
    }

    /// <summary>A connection for a packet to service svcIndex; -1 when none could be made (reason, counted for the service).</summary>
    private int CreateConnection(int svcIndex, in ParsedPacket p, uint seq, long now, out DropReason reason, ref Forwarding f)
    {
        var s = _table.Services[svcIndex];
        var sc = s.PerWorker[_worker];
        // Maglev over a hash of the flow (ICMP: the echo id plays the client port) picks the backend.
        int bi = s.Table.Lookup(StableHash.Flow(p.SrcIp, p.SrcPort, (byte)p.Protocol, p.DstIp, p.DstPort));
        if (bi < 0)
        {
            reason = DropReason.NoBackend;
            sc.Drops[(int)reason]++;
            return -1;
        }
        var slot = s.Backends[bi];
        var bc = slot.PerWorker[_worker];
        var b = slot.Info;
        PortAllocator? ports = null;
        IpAddr snat = default;
        ushort natPort = 0;
        if (!s.Dsr && !TryTakeNatPort(in b, s.Protocol, in p, seq, out ports, out snat, out natPort, ref f))
        {
            reason = DropReason.NatPortsExhausted;
            sc.Drops[(int)reason]++;
            return -1;
        }
        var c = new Connection
        {
            ClientIp = p.SrcIp,
            ClientPort = p.SrcPort,
            VipIp = p.DstIp,
            VipPort = p.DstPort,
            BackendIp = b.Ip,
            BackendPort = b.Port,
            SnatIp = snat,
            NatPort = natPort,
            Protocol = s.Protocol,
            ServiceIndex = svcIndex,
            BackendIndex = bi,
            CountersId = CountersIdOf(bc),
            TcpState = s.Protocol == IpProtocol.Tcp ? TcpTracker.Initial(p.TcpFlags) : TcpState.None,
            LastSeen = now,
            Created = now,
            ClientSeqEnd = seq + 1,
            Dsr = s.Dsr,
            ClientVlan = p.Vlan,
        };
        int index = _connections.Add(c);
        if (index < 0 && _connections.Count == _connections.Capacity && _options.TableFull == TableFullPolicy.EarlyDrop && EvictForEntry())
            index = _connections.Add(c);
        if (index < 0)
        {
            ports?.Release(natPort);
            reason = DropReason.ConnectionTableFull;
            sc.Drops[(int)reason]++;
            return -1;
        }
        ports?.SetHolder(natPort, index);
        Counters.NewConnections++;
        sc.NewConnections++;
        sc.ActiveConnections++;
        bc.NewConnections++;
        bc.ActiveConnections++;
        reason = DropReason.None;
        return index;
    }
}
