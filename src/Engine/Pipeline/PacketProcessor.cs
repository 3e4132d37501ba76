using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZonLb.Engine.Balancing;
using ZonLb.Engine.Checksums;
using ZonLb.Engine.Configuration;
using ZonLb.Engine.Counters;
using ZonLb.Engine.Flows;
using ZonLb.Engine.Nat;
using ZonLb.Engine.Packets;
using ZonLb.Engine.Routing;
using ZonLb.Engine.Services;

namespace ZonLb.Engine.Pipeline;

/// <summary>
/// The per-packet pipeline, in place on the frame's bytes: parse, find or create the connection, full NAT
/// (addresses, ports or ICMP id), TTL, checksums (repairing CHECKSUM_PARTIAL ones), next hop and MACs.
/// Owned by one worker thread; allocation-free once the tables are warm.
/// </summary>
internal sealed class PacketProcessor
{
    /// <summary>The version of the services this worker forwards with (see <see cref="Use"/>).</summary>
    private ServiceTable _table;
    /// <summary>A processor built for one worker on its own (tests, benchmarks, an embedder's experiments) changes
    /// its services through this registry; a data path's processors get versions from the control plane.</summary>
    private readonly ServiceRegistry? _ownRegistry;
    private readonly int _worker;
    private readonly Dictionary<(IpAddr Snat, IpAddr Backend, ushort BackendPort, IpProtocol Protocol), PortAllocator> _natPorts = new();
    private readonly ConnectionTable _connections;
    /// <summary>The per-worker backend counters this worker's connections use, by <see cref="Connection.CountersId"/>.</summary>
    private FlowCounters[] _counters = new FlowCounters[16];
    private int _countersCount;
    private readonly NextHopCache _nextHops;
    private int[] _portIfIndex;
    /// <summary>Each port's MAC as one 48-bit number (bytes in wire order, little-endian), written with two stores.</summary>
    private ulong[] _portMacWord;
    /// <summary>Egress MTU of each port (IP bytes); int.MaxValue until told.</summary>
    private int[] _portMtu;
    private readonly EngineOptions _options;
    private readonly long[] _tcpTimeouts; // by TcpState
    private readonly Func<Connection, long> _timeoutOf;
    /// <summary>Datagrams whose first fragment was seen: where their later fragments go (bounded, expiring).</summary>
    private readonly Dictionary<FragmentKey, FragmentRoute> _fragments = new();
    public const int FragmentCapacity = 4096;
    public const long FragmentLifetimeMs = 5000;
    private readonly Action<Connection> _releasePort;

    /// <summary>A single-worker pipeline over its own registry of services.</summary>
    /// <param name="ports">The attached interfaces: (ifindex, MAC). Frames can only leave through these.</param>
    /// <param name="seed">Seeds the NAT port choice and early drop's sampling; 0 draws a seed from the process's
    /// random source. Two processors with one seed choose alike (what a differential test compares).</param>
    public PacketProcessor(IReadOnlyList<ResolvedService> services, IReadOnlyList<(int IfIndex, byte[] Mac)> ports,
        IRouteSource routes, EngineOptions options, EngineCounters counters, uint seed = 0)
        : this(SingleWorkerRegistry(services, options), ports, routes, options, counters, seed)
    {
    }

    private PacketProcessor(ServiceRegistry own, IReadOnlyList<(int IfIndex, byte[] Mac)> ports, IRouteSource routes, EngineOptions options,
        EngineCounters counters, uint seed)
        : this(own.Snapshot(), 0, ports, routes, options, counters, seed)
    {
        _ownRegistry = own;
    }

    private static ServiceRegistry SingleWorkerRegistry(IReadOnlyList<ResolvedService> services, EngineOptions options)
    {
        var r = new ServiceRegistry(1, options.NatPortMin, options.NatPortMax);
        foreach (var s in services)
            r.Add(s);
        return r;
    }

    /// <summary>The pipeline of worker <paramref name="worker"/>: its own connection table, NAT ports
    /// (those whose number modulo the worker count is its index), next-hop cache and counters.</summary>
    public PacketProcessor(ServiceTable table, int worker, IReadOnlyList<(int IfIndex, byte[] Mac)> ports,
        IRouteSource routes, EngineOptions options, EngineCounters counters, uint seed = 0)
    {
        _random = seed != 0 ? seed : (uint)Random.Shared.Next(1, int.MaxValue);
        _table = table;
        _worker = worker;
        _options = options;
        Counters = counters;
        _portIfIndex = ports.Select(p => p.IfIndex).ToArray();
        _portMacWord = ports.Select(p => MacWord(p.Mac)).ToArray();
        _portMtu = ports.Select(_ => int.MaxValue).ToArray();
        _connections = new ConnectionTable(Math.Max(1, options.ConnectionCapacity / table.Workers));
        _tcpTimeouts = new long[]
        {
            options.TcpCloseTimeoutSeconds, options.TcpSynSentTimeoutSeconds, options.TcpSynRecvTimeoutSeconds,
            options.TcpEstablishedTimeoutSeconds, options.TcpFinWaitTimeoutSeconds, options.TcpCloseWaitTimeoutSeconds,
            options.TcpLastAckTimeoutSeconds, options.TcpTimeWaitTimeoutSeconds, options.TcpCloseTimeoutSeconds,
        }.Select(x => x * 1000L).ToArray();
        _timeoutOf = TimeoutOf;
        _releasePort = OnRemoved;
        _nextHops = new NextHopCache(routes, options.NeighborCacheSeconds * 1000L, 1);
    }

    /// <summary>Takes new interface identities (an interface deleted and created again) and forgets next hops.</summary>
    public void UpdatePorts(IReadOnlyList<(int IfIndex, byte[] Mac)> ports)
    {
        _portIfIndex = ports.Select(p => p.IfIndex).ToArray();
        _portMacWord = ports.Select(p => MacWord(p.Mac)).ToArray();
        _portMtu = ports.Select(_ => int.MaxValue).ToArray();
        _nextHops.Clear();
    }

    /// <summary>The MTU of an attached interface: larger packets toward it are not sent but answered with
    /// ICMP fragmentation needed / packet too big.</summary>
    public void SetMtu(int ifIndex, int mtu)
    {
        int port = Array.IndexOf(_portIfIndex, ifIndex);
        if (port >= 0)
            _portMtu[port] = mtu;
    }

    private Dictionary<int, (int Port, ushort Vlan)> _vlanOf = new();

    /// <summary>VLAN interfaces (by ifindex) stacked on attached ports, with their VLAN ids: a route through one
    /// leaves by its parent port, tagged.</summary>
    public void SetVlans(IReadOnlyDictionary<int, (int ParentIfIndex, ushort Vlan)> vlans)
    {
        var map = new Dictionary<int, (int, ushort)>();
        foreach (var (ifIndex, (parent, vlan)) in vlans)
        {
            int port = Array.IndexOf(_portIfIndex, parent);
            if (port >= 0)
                map[ifIndex] = (port, vlan);
        }
        _vlanOf = map;
        _nextHops.Clear();
    }

    /// <summary>The 802.1Q VLAN id the last transmitted (or held) frame must leave with; 0: untagged.</summary>
    public ushort LastEgressVlan { get; private set; }

    /// <summary>The egress MTU that made the last frame too big (for the ICMP error the worker sends).</summary>
    public int LastMtu { get; private set; }

    public EngineCounters Counters { get; }
    public ConnectionTable Connections => _connections;
    public NextHopCache NextHops => _nextHops;
    /// <summary>The version of the services in use.</summary>
    public ServiceTable Table => _table;

    /// <summary>Moves to a newer version of the services (the worker calls it between two batches).</summary>
    public void Use(ServiceTable table) => _table = table;
    public int Worker => _worker;

    /// <summary>(SNAT address, protocol) pairs whose replies come back to us, for the steering program.</summary>
    public IEnumerable<(IpAddr SnatIp, IpProtocol Protocol)> NatAddresses => _table.NatAddresses;

    public IReadOnlyList<ResolvedService> Services => _table.Services;

    /// <summary>A processor on its own: adds a service; returns its index.</summary>
    public int AddService(ResolvedService s) => Change(r => r.Add(s));

    /// <summary>A processor on its own: stops a service from taking new flows; its connections drain.</summary>
    public void RemoveService(int index) => Change(r => { r.Remove(index); return 0; });

    /// <summary>A processor on its own: adds a backend to a service (or revives a removed one at the same address and port).</summary>
    public int AddBackend(int serviceIndex, ResolvedBackend b) => Change(r => r.AddBackend(serviceIndex, b));

    /// <summary>A processor on its own: takes a backend out of new-flow selection (as a failed health check does), or back.</summary>
    public void SetBackendOut(int serviceIndex, int backend, bool isOut) =>
        Change(r => { r.UpdateBackend(serviceIndex, backend, b => b with { Unhealthy = isOut }); return 0; });

    private T Change<T>(Func<ServiceRegistry, T> change)
    {
        var r = _ownRegistry ?? throw new InvalidOperationException("a data path's processor gets its services from the control plane");
        T result = change(r);
        _table = r.Snapshot();
        return result;
    }

    private PortAllocator NatPorts(in IpAddr snat, in ResolvedBackend b, IpProtocol protocol)
    {
        var key = (snat, b.Ip, b.Port, protocol);
        if (!_natPorts.TryGetValue(key, out var ports))
            _natPorts[key] = ports = new PortAllocator(_options.NatPortMin, _options.NatPortMax, _table.Workers, _worker, NextRandom());
        return ports;
    }

    /// <summary>Forgets every connection that matches (all when which is null; conntrack flush); returns how many.</summary>
    public int FlushConnections(Func<Connection, bool>? which = null) => FlushConnections(0, _connections.Capacity, which);

    /// <summary>As <see cref="FlushConnections(Func{Connection, bool}?)"/>, over the table's slots [from, to) only.</summary>
    public int FlushConnections(int from, int to, Func<Connection, bool>? which)
    {
        int n = 0;
        for (int i = from; i < to; i++)
        {
            ref var c = ref _connections[i];
            if (!c.InUse || (which != null && !which(c)))
                continue;
            OnRemoved(c);
            _connections.Remove(i);
            n++;
        }
        return n;
    }

    /// <summary>From what table capacity a batch's lookups are prefetched (every table of the default size
    /// is). Gated on capacity, not on live connections: in the data path the table shares the core's caches
    /// with the UMEM (32 MiB by default) and the kernel's receive and transmit work, so even a thousand flows'
    /// slots and entries have left the L2 by the time a flow's next packet comes. Measured end to end
    /// (compare.sh, UDP 1 / 1024 flows, 3 runs each, both orders): 265-281k / 234-276k pps forwarded with this
    /// gate against 242-250k / 231-246k when gated on 16k live connections. A small table (unit tests,
    /// embedding with a few connections) is not prefetched.</summary>
    public const int PrefetchFromCapacity = 16384;

    /// <summary>
    /// Pass one of a worker's batch for a frame the fast lane may take: true when the frame is an untagged TCP or
    /// UDP packet, IPv4 without options and not a fragment or IPv6 without extension headers, with its flow's
    /// hash and the index the lane will probe in hint (for <see cref="PrefetchConnections"/>). Such a frame need
    /// not be parsed unless the lane declines it. Reads only what it must; <see cref="TryFastLane"/> checks the rest.
    /// </summary>
    public bool FastLaneCandidate(ReadOnlySpan<byte> frame, out LookupHint hint)
    {
        hint = default;
        if (!FastLane || frame.Length < Wire.EthernetHeader + Wire.IPv4MinHeader + 4)
            return false;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12));
        byte protocol;
        IpAddr src, dst;
        int l4;
        if (etherType == Wire.EtherTypeIPv4)
        {
            if (frame[Wire.EthernetHeader] != 0x45 || (frame[Wire.EthernetHeader + 6] & 0x3F) != 0 || frame[Wire.EthernetHeader + 7] != 0)
                return false;
            protocol = frame[Wire.EthernetHeader + Wire.IpProto];
            src = IpAddr.ReadV4(frame.Slice(Wire.EthernetHeader + Wire.IpSrc));
            dst = IpAddr.ReadV4(frame.Slice(Wire.EthernetHeader + Wire.IpDst));
            l4 = Wire.EthernetHeader + Wire.IPv4MinHeader;
        }
        else if (etherType == Wire.EtherTypeIPv6 && frame.Length >= Wire.EthernetHeader + Wire.IPv6Header + 4 && frame[Wire.EthernetHeader] >> 4 == 6)
        {
            protocol = frame[Wire.EthernetHeader + Wire.Ip6NextHeader];
            src = IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Src));
            dst = IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Dst));
            l4 = Wire.EthernetHeader + Wire.IPv6Header;
        }
        else
        {
            return false;
        }
        if (protocol is not ((byte)IpProtocol.Tcp or (byte)IpProtocol.Udp))
            return false;
        ushort dport = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l4 + 2));
        hint.Hash = new FlowKey(src, dst, BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l4)), dport, (IpProtocol)protocol).GetHashCode();
        hint.BackendSide = dport >= _options.NatPortMin && dport <= _options.NatPortMax;
        hint.Valid = true;
        return true;
    }

    /// <summary>The lookup hint of a parsed frame (reasons: what <see cref="PacketParser.Parse(ReadOnlySpan{byte}, out ParsedPacket)"/> said of it),
    /// whose hash it also keeps in p for the lookup; not valid for a frame that is dropped, an ICMP error or a
    /// later fragment (not looked up by its own key).</summary>
    public LookupHint HintOf(ref ParsedPacket p, DropReason reason)
    {
        if (reason != DropReason.None || p.IsIcmpError || p.IsLaterFragment)
            return default;
        bool backendSide = ReplyLikely(in p);
        p.FlowHash = new FlowKey(p.SrcIp, p.DstIp, p.SrcPort, p.DstPort, p.Protocol).GetHashCode();
        p.HasFlowHash = true;
        return new LookupHint { Hash = p.FlowHash, BackendSide = backendSide, Valid = true };
    }

    /// <summary>
    /// Gets a batch's connection lookups under way before any of them is needed: prefetches each frame's index
    /// slot (in the index a packet of its kind is looked up first), then the entries those slots name. With a
    /// large table each lookup is a cache miss (DRAM at millions of entries); this way a batch's misses overlap
    /// instead of following one another. Does nothing for a small table.
    /// </summary>
    public void PrefetchConnections(ReadOnlySpan<LookupHint> hints)
    {
        if (_connections.Capacity < PrefetchFromCapacity)
            return;
        for (int i = 0; i < hints.Length; i++)
        {
            if (hints[i].Valid)
                _connections.PrefetchSlot(hints[i].Hash, hints[i].BackendSide);
        }
        for (int i = 0; i < hints.Length; i++)
        {
            if (hints[i].Valid)
                _connections.PrefetchEntry(hints[i].Hash, hints[i].BackendSide);
        }
    }

    /// <summary>A destination port in the NAT range is almost surely a reply (but an echo request's id is no
    /// port): such packets are looked up in the backend index first.</summary>
    private bool ReplyLikely(in ParsedPacket p) =>
        !(p.Protocol == IpProtocol.Icmp && p.IcmpType == Wire.IcmpEchoRequest) &&
        p.DstPort >= _options.NatPortMin && p.DstPort <= _options.NatPortMax;

    /// <summary>Runs the pipeline on one frame (rewritten in place). now is in milliseconds.</summary>
    public Verdict Process(Span<byte> frame, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        if (TryFastLane(frame, now, out egressIfIndex, out nextHopKey))
            return Verdict.Transmit;
        var reason = PacketParser.Parse(frame, out var p);
        if (reason != DropReason.None)
            return Drop(reason);
        return Process(frame, in p, now, out egressIfIndex, out nextHopKey);
    }

    /// <summary>Whether <see cref="TryFastLane"/> is tried before the general path (on unless turned off, as the
    /// tests that compare the two do).</summary>
    public bool FastLane { get; set; } = true;

    /// <summary>
    /// The fast lane: a packet of an established TCP or UDP connection, the common case, forwarded from the
    /// frame's bytes without the general parse and its VLAN, fragment, extension-header and ICMP cases. It takes
    /// an untagged IPv4 packet without options, not a fragment, with a valid header checksum and a TTL above 1,
    /// or an untagged IPv6 packet whose next header is TCP or UDP with a hop limit above 1, whose connection
    /// (looked up in the one index its destination port points to) is full NAT and, for TCP, stays ESTABLISHED
    /// (no SYN, FIN or RST), and whose next hop the connection's cache hint still names, resolved and fresh, on
    /// an attached port whose MTU the packet fits. Such a packet gets exactly what the general path gives it
    /// (<c>FastLaneTests</c> runs both on the same frames and compares every byte and counter). For anything
    /// else it returns false having changed nothing, and the general path takes the frame.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // one compiled lane, IPv4 in it, IPv6 a call away
    public bool TryFastLane(Span<byte> frame, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        egressIfIndex = 0;
        nextHopKey = default;
        if (!FastLane || frame.Length < Wire.EthernetHeader + Wire.IPv4MinHeader + Wire.UdpHeader)
            return false;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12));
        if (etherType == Wire.EtherTypeIPv4)
            return TryFastLaneV4(frame, now, out egressIfIndex, out nextHopKey);
        if (etherType == Wire.EtherTypeIPv6)
            return TryFastLaneV6(frame, now, out egressIfIndex, out nextHopKey);
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryFastLaneV4(Span<byte> frame, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        egressIfIndex = 0;
        nextHopKey = default;
        const int L4 = Wire.EthernetHeader + Wire.IPv4MinHeader; // without options, the transport header is here
        // fixed offsets into the frame, few values alive at once: this method is large, and what the JIT cannot
        // keep in registers goes to the stack and back
        ulong w0 = MemoryMarshal.Read<ulong>(frame.Slice(Wire.EthernetHeader));      // version/IHL, TOS, total length, id, fragment
        ulong w1 = MemoryMarshal.Read<ulong>(frame.Slice(Wire.EthernetHeader + 8));  // TTL, protocol, checksum, source
        uint w2 = MemoryMarshal.Read<uint>(frame.Slice(Wire.EthernetHeader + 16));   // destination
        // no options; MF clear and offset 0 (DF may be set); TTL above 1; a valid header checksum
        if ((byte)w0 != 0x45 || ((w0 >> 48) & 0xFF3F) != 0 || (byte)w1 <= 1 ||
            InternetChecksum.Fold((w0 & 0xFFFFFFFF) + (w0 >> 32) + (w1 & 0xFFFFFFFF) + (w1 >> 32) + w2) != 0xFFFF)
            return false;
        int total = BinaryPrimitives.ReverseEndianness((ushort)(w0 >> 16));
        byte protocol = (byte)(w1 >> 8);
        if (total > frame.Length - Wire.EthernetHeader || !TransportIsPlain(frame, L4, total - Wire.IPv4MinHeader, protocol))
            return false;
        uint src = BinaryPrimitives.ReverseEndianness((uint)(w1 >> 32)), dst = BinaryPrimitives.ReverseEndianness(w2);
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4)), dport = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4 + 2));
        // the hash from plain numbers, before the key exists: computed from the key's fields, it went through the stack
        int hash = FlowKey.HashV4(src, dst, sport, dport, (IpProtocol)protocol);
        var key = new FlowKey(IpAddr.FromV4(src), IpAddr.FromV4(dst), sport, dport, (IpProtocol)protocol);
        return ForwardEstablished(frame, in key, hash, v6: false, L4, total - Wire.IPv4MinHeader, total, now, out egressIfIndex, out nextHopKey);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool TryFastLaneV6(Span<byte> frame, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        egressIfIndex = 0;
        nextHopKey = default;
        const int L4 = Wire.EthernetHeader + Wire.IPv6Header; // no extension headers: the transport header is here
        if (frame.Length < L4 + Wire.UdpHeader || frame[Wire.EthernetHeader] >> 4 != 6 ||
            frame[Wire.EthernetHeader + Wire.Ip6HopLimit] <= 1)
            return false;
        int payload = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(Wire.EthernetHeader + Wire.Ip6PayloadLength));
        byte protocol = frame[Wire.EthernetHeader + Wire.Ip6NextHeader];
        if (Wire.IPv6Header + payload > frame.Length - Wire.EthernetHeader || !TransportIsPlain(frame, L4, payload, protocol))
            return false;
        var key = new FlowKey(IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Src)), IpAddr.ReadV6(frame.Slice(Wire.EthernetHeader + Wire.Ip6Dst)),
            BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4)), BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(L4 + 2)), (IpProtocol)protocol);
        return ForwardEstablished(frame, in key, key.GetHashCode(), v6: true, L4, payload, Wire.IPv6Header + payload, now, out egressIfIndex, out nextHopKey);
    }

    /// <summary>A UDP header whose length is the payload's, or a TCP header that fits and carries no SYN, FIN or
    /// RST (what the general parser accepts, and what leaves the TCP state as it is); nothing else.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TransportIsPlain(ReadOnlySpan<byte> frame, int l4, int l4Length, byte protocol)
    {
        if (protocol == (byte)IpProtocol.Udp)
            return l4Length >= Wire.UdpHeader && BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l4 + 4)) == l4Length;
        return protocol == (byte)IpProtocol.Tcp && l4Length >= Wire.TcpMinHeader &&
               frame[l4 + 12] >> 4 >= Wire.TcpMinHeader / 4 && (frame[l4 + 12] >> 4) * 4 <= l4Length &&
               (frame[l4 + Wire.TcpFlags] & (Wire.TcpSyn | Wire.TcpFin | Wire.TcpRst)) == 0;
    }

    /// <summary>The fast lane once the headers are known plain: the connection, the next hop, then the same
    /// steps, in the same order, as the general path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ForwardEstablished(Span<byte> frame, in FlowKey key, int hash, bool v6, int l4Offset, int l4Length, int ipTotal,
        long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        egressIfIndex = 0;
        nextHopKey = default;
        bool udp = key.Protocol == IpProtocol.Udp;
        // the one lookup the general path makes first for this packet
        bool toBackend = !(key.DstPort >= _options.NatPortMin && key.DstPort <= _options.NatPortMax);
        if (!_connections.TryGetInlined(backendSide: !toBackend, in key, hash, out int index))
            return false;
        ref var c = ref _connections[index];
        if (c.Dsr || (!udp && c.TcpState != TcpState.Established))
            return false;
        IpAddr newDst = toBackend ? c.BackendIp : c.ClientIp;
        if (!_nextHops.TryResolvedAt(toBackend ? c.HopToBackend : c.HopToClient, newDst, now, out ulong mac, out int ifIndex))
            return false;
        int port = PortOf(ifIndex);
        if (port < 0 || ipTotal > _portMtu[port])
            return false;

        // from here on the packet goes
        CountPacket(ref c, toBackend, frame.Length, now);
        IpAddr newSrc;
        ushort newSport, newDport;
        if (toBackend)
        {
            newSrc = c.SnatIp; newSport = c.NatPort; newDport = c.BackendPort;
            Counters.ToBackend++;
            LastEgressVlan = 0;
        }
        else
        {
            newSrc = c.VipIp; newSport = c.VipPort; newDport = c.ClientPort;
            Counters.ToClient++;
            LastEgressVlan = c.ClientVlan; // back with the tag the client's packets came with
        }
        ulong oldAddresses = WordSum(v6, key.SrcIp, key.DstIp);
        ulong addressDelta = (v6 ? 16 * 0xFFFFUL : 4 * 0xFFFFUL) - oldAddresses + WordSum(v6, newSrc, newDst);
        TranslatePorts(frame.Slice(l4Offset, l4Length), l4Length, 0, udp, fragment: false, (byte)key.Protocol, oldAddresses, addressDelta,
            newSrc, newDst, key.SrcPort, key.DstPort, newSport, newDport);
        RewriteIpHeader(frame.Slice(Wire.EthernetHeader, l4Offset - Wire.EthernetHeader), v6, newSrc, newDst, addressDelta);
        WriteMacs(frame, new EgressHop(mac, ifIndex), port);
        egressIfIndex = ifIndex;
        nextHopKey = newDst;
        return true;
    }

    /// <summary>Runs the pipeline on a frame already parsed into p.</summary>
    /// <remarks>Never inlined into its callers: it is large, and compiled on its own it keeps the JIT's
    /// inlining budget for the small helpers it calls per packet (span conversions, checksum folds).</remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public Verdict Process(Span<byte> frame, in ParsedPacket p, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        egressIfIndex = 0;
        nextHopKey = default;
        TimeWaitResetSeq = null;
        DropReason reason;
        if (!p.IsV6 && !InternetChecksum.IPv4HeaderIsValid(frame.Slice(p.L3Offset, p.L4Offset - p.L3Offset)))
            return Drop(DropReason.BadIpChecksum);
        if (p.Ttl <= 1)
            return Drop(DropReason.TtlExceeded);
        if (p.IsIcmpError)
            return p.Beyond == 0 ? ProcessIcmpError(frame, in p, now, out egressIfIndex, out nextHopKey)
                : Drop(DropReason.Malformed); // an error quotes at most 576 (IPv6: 1280) bytes: never a chain
        if (p.IsLaterFragment)
            return ProcessLaterFragment(frame, in p, now, out egressIfIndex, out nextHopKey);

        var key = new FlowKey(p.SrcIp, p.DstIp, p.SrcPort, p.DstPort, p.Protocol);
        int hash = p.HasFlowHash ? p.FlowHash : key.GetHashCode(); // one hash for both indexes
        bool toBackend;
        int index;
        bool isEchoRequest = p.Protocol == IpProtocol.Icmp && p.IcmpType == Wire.IcmpEchoRequest;
        bool isEchoReply = p.Protocol == IpProtocol.Icmp && p.IcmpType == Wire.IcmpEchoReply;
        // a likely reply is looked up in the backend index first, so that a reply costs one lookup, not two
        bool replyLikely = ReplyLikely(in p);
        if (replyLikely && _connections.TryGetByBackend(key, hash, out index))
        {
            toBackend = false;
        }
        else if (!isEchoReply && _connections.TryGetByClient(key, hash, out index))
        {
            toBackend = true;
        }
        else if (!replyLikely && !isEchoRequest && _connections.TryGetByBackend(key, hash, out index))
        {
            toBackend = false;
        }
        else if (!isEchoReply && _table.TryFind(new ServiceKey(p.DstIp, p.Protocol, p.Protocol == IpProtocol.Icmp ? (ushort)0 : p.DstPort), out int svc))
        {
            if (p.Protocol == IpProtocol.Tcp && (p.TcpFlags & Wire.TcpRst) != 0)
                return Drop(DropReason.NoConnection);
            index = CreateConnection(svc, in p, TcpSeq(frame, in p), now, out reason);
            if (index < 0)
                return Drop(reason);
            toBackend = true;
        }
        else
        {
            return Drop(_table.IsNatAddress(p.DstIp, p.Protocol) ? DropReason.NoConnection : DropReason.NoService);
        }

        ref var c = ref _connections[index];
        CountPacket(ref c, toBackend, frame.Length + p.Beyond, now);
        if (p.IsFragment)
            RememberFragment(in p, index, toBackend, now);
        if (c.Dsr)
            return ForwardDirect(frame, in p, ref c, now, out egressIfIndex, out nextHopKey);
        // an established connection's segments without SYN, FIN or RST leave its state as it is
        if (p.Protocol == IpProtocol.Tcp && (c.TcpState != TcpState.Established || (p.TcpFlags & (Wire.TcpSyn | Wire.TcpFin | Wire.TcpRst)) != 0))
        {
            var before = c.TcpState;
            c.TcpState = TcpTracker.Next(c.TcpState, p.TcpFlags, toBackend, ref c.FinFromClient);
            if (c.TcpState == TcpState.SynSent && before is TcpState.TimeWait or TcpState.Close)
            {
                // the client opened the tuple again: a new connection, not assured until it is answered
                c.Replied = false;
                c.Assured = false;
                c.Created = now;
            }
            if (toBackend && (p.TcpFlags & (Wire.TcpSyn | Wire.TcpFin)) != 0)
                c.ClientSeqEnd = TcpSeqEnd(frame, in p);
            if (!c.Assured && c.Replied)
                Assure(ref c, now);
        }

        IpAddr newSrc, newDst;
        ushort newSport, newDport;
        if (toBackend)
        {
            newSrc = c.SnatIp; newSport = c.NatPort; newDst = c.BackendIp; newDport = c.BackendPort;
            Counters.ToBackend++;
        }
        else
        {
            newSrc = c.VipIp; newSport = c.VipPort; newDst = c.ClientIp; newDport = c.ClientPort;
            Counters.ToClient++;
        }

        // The next hop first: a packet too big for the egress interface is answered about as it arrived.
        var state = LookupHop(newDst, now, ref toBackend ? ref c.HopToBackend : ref c.HopToClient, out var hop, out int port, out reason);
        egressIfIndex = hop.IfIndex;
        if (reason != DropReason.None)
            return Drop(reason);
        if (!toBackend && LastEgressVlan == 0)
            LastEgressVlan = c.ClientVlan; // back with the tag the client's packets came with
        if (port >= 0 && p.IpTotalLength > _portMtu[port])
            return TooBig(frame, in p, port);
        Translate(frame, in p, newSrc, newDst, newSport, newDport, toBackend);
        nextHopKey = newDst;
        if (state == NextHopState.Pending)
            return Verdict.Hold;
        WriteMacs(frame, in hop, port);
        return Verdict.Transmit;
    }

    /// <summary>
    /// An ICMP error about a packet we translated (a backend's port unreachable, a router's fragmentation
    /// needed or time exceeded): found through the quoted packet's tuple, and translated back like a packet
    /// of the connection, the quoted packet included, so the sender of the original sees a correct error.
    /// </summary>
    private Verdict ProcessIcmpError(Span<byte> frame, in ParsedPacket p, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        egressIfIndex = 0;
        nextHopKey = default;
        // The quoted packet is one we sent: toward a backend (from SNAT:nat port), or toward a client (from
        // VIP:port). Its reverse is the key of the connection from the other side.
        var reverse = new FlowKey(p.InnerDst, p.InnerSrc, p.InnerDstPort, p.InnerSrcPort, p.InnerProtocol);
        bool aboutToBackend;
        if (_connections.TryGetByBackend(reverse, out int index))
            aboutToBackend = true;
        else if (_connections.TryGetByClient(reverse, out index))
            aboutToBackend = false;
        else
            return Drop(DropReason.NoConnection);
        ref var c = ref _connections[index];
        IpAddr outerDst, innerSrc, innerDst;
        ushort innerSport, innerDport;
        IpAddr outerSrc = p.SrcIp;
        if (aboutToBackend)
        {
            // to the client, as if about the packet it sent to the VIP
            outerDst = c.ClientIp;
            if (outerSrc == c.BackendIp)
                outerSrc = c.VipIp;
            innerSrc = c.ClientIp; innerSport = c.ClientPort; innerDst = c.VipIp; innerDport = c.VipPort;
        }
        else
        {
            // to the backend, as if about the packet it sent to the SNAT address
            outerDst = c.BackendIp;
            if (outerSrc == c.ClientIp)
                outerSrc = c.SnatIp;
            innerSrc = c.BackendIp; innerSport = c.BackendPort; innerDst = c.SnatIp; innerDport = c.NatPort;
        }
        if (p.InnerProtocol == IpProtocol.Icmp)
            innerSport = innerDport = aboutToBackend ? c.ClientPort : c.NatPort; // the echo id, as the other side knows it

        // the quoted packet: addresses, ports (echo id), its L4 checksum where quoted, its IPv4 header checksum
        var inner = frame.Slice(p.InnerL3Offset, p.InnerL4Offset - p.InnerL3Offset + p.InnerL4Length);
        var innerL4 = inner.Slice(p.InnerL4Offset - p.InnerL3Offset);
        int csOff = p.InnerProtocol switch { IpProtocol.Tcp => Wire.TcpChecksum, IpProtocol.Udp => Wire.UdpChecksum, _ => Wire.IcmpChecksum };
        if (innerL4.Length >= csOff + 2)
        {
            ushort check = BinaryPrimitives.ReadUInt16BigEndian(innerL4.Slice(csOff));
            if (!(p.InnerProtocol == IpProtocol.Udp && check == 0))
            {
                if (p.InnerProtocol != IpProtocol.Icmp || p.IsV6)
                {
                    check = InternetChecksum.UpdateAddress(check, p.InnerSrc, innerSrc);
                    check = InternetChecksum.UpdateAddress(check, p.InnerDst, innerDst);
                }
                if (p.InnerProtocol == IpProtocol.Icmp)
                {
                    check = InternetChecksum.Update16(check, p.InnerSrcPort, innerSport);
                }
                else
                {
                    check = InternetChecksum.Update16(check, p.InnerSrcPort, innerSport);
                    check = InternetChecksum.Update16(check, p.InnerDstPort, innerDport);
                }
                BinaryPrimitives.WriteUInt16BigEndian(innerL4.Slice(csOff), check);
            }
        }
        if (p.InnerProtocol == IpProtocol.Icmp)
        {
            BinaryPrimitives.WriteUInt16BigEndian(innerL4.Slice(Wire.IcmpId), innerSport);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(innerL4, innerSport);
            BinaryPrimitives.WriteUInt16BigEndian(innerL4.Slice(2), innerDport);
        }
        if (p.IsV6)
        {
            innerSrc.WriteV6(inner.Slice(Wire.Ip6Src));
            innerDst.WriteV6(inner.Slice(Wire.Ip6Dst));
        }
        else
        {
            int innerIhl = p.InnerL4Offset - p.InnerL3Offset;
            BinaryPrimitives.WriteUInt32BigEndian(inner.Slice(Wire.IpSrc), innerSrc.V4);
            BinaryPrimitives.WriteUInt32BigEndian(inner.Slice(Wire.IpDst), innerDst.V4);
            BinaryPrimitives.WriteUInt16BigEndian(inner.Slice(Wire.IpChecksum), InternetChecksum.IPv4Header(inner.Slice(0, innerIhl)));
        }

        // the outer header, and the ICMP checksum over the whole message (ICMPv6: with the new pseudo-header)
        var icmp = frame.Slice(p.L4Offset, p.L4Length);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(Wire.IcmpChecksum), 0);
        ushort sum = InternetChecksum.Sum(icmp);
        if (p.IsV6)
            sum = InternetChecksum.Add(sum, InternetChecksum.PseudoHeaderSum(outerSrc, outerDst, Wire.ProtoIcmpv6, icmp.Length));
        RewriteIpHeader(frame, in p, outerSrc, outerDst);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(Wire.IcmpChecksum), InternetChecksum.Finish(sum));
        Counters.IcmpErrorsTranslated++;
        c.LastSeen = now;
        nextHopKey = outerDst;
        var v = Route(frame, outerDst, now, out egressIfIndex, ref aboutToBackend ? ref c.HopToClient : ref c.HopToBackend);
        if (aboutToBackend && LastEgressVlan == 0)
            LastEgressVlan = c.ClientVlan;
        return v;
    }

    /// <summary>
    /// Direct server return: the frame goes to its connection's backend as it came, but for the MACs (and a
    /// CHECKSUM_PARTIAL checksum completed, or the backend would drop it); TTL and addresses are the client's.
    /// The backend, holding the VIP, answers the client directly, so only the client's side is ever seen:
    /// TCP connections are tracked from its flags alone.
    /// </summary>
    private Verdict ForwardDirect(Span<byte> frame, in ParsedPacket p, ref Connection c, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        nextHopKey = c.BackendIp;
        if (p.Protocol == IpProtocol.Tcp)
        {
            bool syn = (p.TcpFlags & Wire.TcpSyn) != 0;
            c.TcpState = (p.TcpFlags & Wire.TcpRst) != 0 ? TcpState.Close
                : (p.TcpFlags & Wire.TcpFin) != 0 ? TcpState.TimeWait
                : syn ? TcpState.SynSent : TcpState.Established;
        }
        Counters.ToBackend++;
        var state = LookupHop(c.BackendIp, now, ref c.HopToBackend, out var hop, out int port, out var reason);
        egressIfIndex = hop.IfIndex;
        if (reason != DropReason.None)
            return Drop(reason);
        if (port >= 0 && p.IpTotalLength > _portMtu[port])
            return TooBig(frame, in p, port);
        if (HasPartialChecksum(frame, in p)) // TCP or UDP only
        {
            var l4 = frame.Slice(p.L4Offset, p.L4InFrame);
            int csOff = p.Protocol == IpProtocol.Tcp ? Wire.TcpChecksum : Wire.UdpChecksum;
            ushort sum = CompleteChecksum(l4, p.L4Length, p.BeyondSum, csOff, p.SrcIp, p.DstIp, (byte)p.Protocol);
            BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(csOff), p.Protocol == IpProtocol.Udp && sum == 0 ? (ushort)0xFFFF : sum);
        }
        if (state == NextHopState.Pending)
            return Verdict.Hold;
        WriteMacs(frame, in hop, port);
        return Verdict.Transmit;
    }

    /// <summary>A first fragment's decision, for the later fragments of its datagram (and for other workers,
    /// which hand those fragments to this one).</summary>
    private void RememberFragment(in ParsedPacket p, int connection, bool toBackend, long now)
    {
        var key = new FragmentKey(p.SrcIp, p.DstIp, p.FragmentId, p.Protocol);
        if (_fragments.Count >= FragmentCapacity && !_fragments.ContainsKey(key))
        {
            ExpireFragments(now);
            if (_fragments.Count >= FragmentCapacity)
                return; // its later fragments will wait, then be dropped as `fragment`
        }
        _fragments[key] = new FragmentRoute(connection, toBackend, now + FragmentLifetimeMs);
        if (_table.Workers > 1)
            _table.FragmentOwners[key] = _worker;
    }

    /// <summary>Forgets datagrams whose first fragment is older than the fragment lifetime.</summary>
    public void ExpireFragments(long now)
    {
        if (_fragments.Count == 0)
            return;
        List<FragmentKey>? old = null;
        foreach (var (key, route) in _fragments)
            if (now >= route.Expires)
                (old ??= new()).Add(key);
        if (old == null)
            return;
        foreach (var key in old)
        {
            _fragments.Remove(key);
            if (_table.Workers > 1)
                _table.FragmentOwners.TryRemove(key, out _);
        }
    }

    /// <summary>
    /// A fragment after the first carries no ports: it follows its datagram's first fragment, whose connection
    /// and direction were remembered; only addresses, TTL / hop limit and the IPv4 header checksum change (the
    /// L4 checksum, in the first fragment, already covers the new addresses). Before its first fragment, it waits.
    /// </summary>
    private Verdict ProcessLaterFragment(Span<byte> frame, in ParsedPacket p, long now, out int egressIfIndex, out IpAddr nextHopKey)
    {
        egressIfIndex = 0;
        nextHopKey = default;
        if (!_fragments.TryGetValue(new FragmentKey(p.SrcIp, p.DstIp, p.FragmentId, p.Protocol), out var route) ||
            now >= route.Expires || !_connections[route.Connection].InUse)
            return Verdict.HoldFragment;
        ref var c = ref _connections[route.Connection];
        c.LastSeen = now;
        Counters.FragmentsForwarded++;
        if (route.ToBackend)
            Counters.ToBackend++;
        else
            Counters.ToClient++;
        if (c.Dsr)
        {
            nextHopKey = c.BackendIp;
            var hopState = LookupHop(c.BackendIp, now, ref c.HopToBackend, out var directHop, out int directPort, out var why);
            egressIfIndex = directHop.IfIndex;
            if (why != DropReason.None)
                return Drop(why);
            if (hopState == NextHopState.Pending)
                return Verdict.Hold;
            WriteMacs(frame, in directHop, directPort);
            return Verdict.Transmit;
        }
        IpAddr newSrc = route.ToBackend ? c.SnatIp : c.VipIp;
        IpAddr newDst = route.ToBackend ? c.BackendIp : c.ClientIp;
        RewriteIpHeader(frame, in p, newSrc, newDst);
        nextHopKey = newDst;
        var verdict = Route(frame, newDst, now, out egressIfIndex, ref route.ToBackend ? ref c.HopToBackend : ref c.HopToClient);
        if (!route.ToBackend && LastEgressVlan == 0)
            LastEgressVlan = c.ClientVlan;
        return verdict;
    }

    /// <summary>Retries the next hop of a held (already translated) frame.</summary>
    public Verdict RetryHeld(Span<byte> frame, in IpAddr nextHopKey, long now, out int egressIfIndex)
    {
        int noHint = -1;
        return Route(frame, nextHopKey, now, out egressIfIndex, ref noHint);
    }

    private Verdict Route(Span<byte> frame, in IpAddr destination, long now, out int egressIfIndex, ref int slotHint)
    {
        var state = LookupHop(destination, now, ref slotHint, out var hop, out int port, out var reason);
        egressIfIndex = hop.IfIndex;
        if (reason != DropReason.None)
            return Drop(reason);
        if (state == NextHopState.Pending)
            return Verdict.Hold;
        // a frame held while its route was asked for meets its egress MTU only now (not answered with ICMP: rare)
        if (IpLength(frame) is int length && length > _portMtu[port])
            return Drop(DontFragment(frame) ? DropReason.FragmentationNeeded : DropReason.MtuExceeded);
        WriteMacs(frame, in hop, port);
        return Verdict.Transmit;
    }

    /// <summary>The IP packet's length from its header (past one VLAN tag), or null when the frame is too short.</summary>
    private static int? IpLength(ReadOnlySpan<byte> frame)
    {
        int l3 = frame.Length >= 18 && frame[12] == 0x81 && frame[13] == 0x00 ? 18 : 14;
        if (frame.Length < l3 + 6)
            return null;
        return frame[l3] >> 4 == 6
            ? Wire.IPv6Header + BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l3 + Wire.Ip6PayloadLength))
            : BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(l3 + 2));
    }

    /// <summary>IPv6 (never fragmented by routers), or IPv4 with DF set.</summary>
    private static bool DontFragment(ReadOnlySpan<byte> frame)
    {
        int l3 = frame.Length >= 18 && frame[12] == 0x81 && frame[13] == 0x00 ? 18 : 14;
        return frame[l3] >> 4 == 6 || (frame[l3 + Wire.IpFragment] & 0x40) != 0;
    }

    /// <summary>The next hop toward destination and the attached port it leaves by; a drop reason when there
    /// is no route or the route leaves by an interface we are not attached to.</summary>
    private NextHopState LookupHop(in IpAddr destination, long now, ref int slotHint, out EgressHop hop, out int port, out DropReason reason)
    {
        ref readonly var next = ref _nextHops.Find(destination, now, ref slotHint);
        hop = new EgressHop(next.Mac, next.IfIndex);
        var state = next.State;
        port = -1;
        reason = DropReason.None;
        if (state == NextHopState.NoRoute)
        {
            reason = DropReason.NoRoute;
            return state;
        }
        if (state == NextHopState.Pending && hop.IfIndex == 0)
            return state; // the route itself is being asked for: no port yet, the frame waits
        port = PortOf(hop.IfIndex);
        LastEgressVlan = 0;
        if (port < 0)
        {
            if (_vlanOf.Count > 0 && _vlanOf.TryGetValue(hop.IfIndex, out var v))
            {
                port = v.Port;
                LastEgressVlan = v.Vlan;
                hop = new EgressHop(hop.Mac, _portIfIndex[port]); // sent on the parent's socket
            }
            else
            {
                reason = DropReason.EgressNotAttached;
            }
        }
        return state;
    }

    /// <summary>Where a frame leaves: the next hop's MAC (48 bits, wire order) and the interface to send it on.</summary>
    private readonly record struct EgressHop(ulong Mac, int IfIndex);

    /// <summary>The attached port with this ifindex, or -1 (a plain loop: there are a handful of ports).</summary>
    private int PortOf(int ifIndex)
    {
        var ports = _portIfIndex;
        for (int i = 0; i < ports.Length; i++)
            if (ports[i] == ifIndex)
                return i;
        return -1;
    }

    private static ulong MacWord(byte[] mac)
    {
        Span<byte> eight = stackalloc byte[8];
        mac.CopyTo(eight);
        return BinaryPrimitives.ReadUInt64LittleEndian(eight);
    }

    /// <summary>A packet over its egress port's MTU: not sent. IPv6 routers never fragment; IPv4 packets with DF
    /// set ask not to be fragmented (both answered by the worker with ICMP); the engine does not fragment the
    /// others either (counted apart).</summary>
    private Verdict TooBig(ReadOnlySpan<byte> frame, in ParsedPacket p, int port)
    {
        LastMtu = _portMtu[port];
        bool df = p.IsV6 || (frame[p.L3Offset + Wire.IpFragment] & 0x40) != 0;
        return Drop(df ? DropReason.FragmentationNeeded : DropReason.MtuExceeded);
    }

    private void WriteMacs(Span<byte> frame, in EgressHop hop, int port)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)hop.Mac);
        BinaryPrimitives.WriteUInt16LittleEndian(frame.Slice(4), (ushort)(hop.Mac >> 32));
        ulong mac = _portMacWord[port];
        BinaryPrimitives.WriteUInt32LittleEndian(frame.Slice(6), (uint)mac);
        BinaryPrimitives.WriteUInt16LittleEndian(frame.Slice(10), (ushort)(mac >> 32));
    }

    /// <summary>A NAT port toward backend b from one of its SNAT addresses (starting from one the flow's hash picks,
    /// so flows spread over them): a free one if any; else, under early drop, one taken from an evicted holder.</summary>
    private bool TryTakeNatPort(in ResolvedBackend b, IpProtocol protocol, in ParsedPacket p, uint seq, long now,
        out PortAllocator? ports, out IpAddr snat, out ushort port)
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
                if (TryEvictForPort(ports, syn, seq, out port))
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
    public const int EvictionSample = 64;

    /// <summary>
    /// Early drop for a full port range: of a random sample of the range's holders, the one to give up its port.
    /// Closed TCP connections come first: those the backend will take a new SYN on at once (after a RST, or in
    /// TIME_WAIT when the client closed first, so the backend does not wait), then those whose backend waits in
    /// TIME_WAIT, whose wait a reset ends first (<see cref="TimeWaitResetSeq"/>: a new SYN's sequence number beyond
    /// the old connection's is not enough, as the backend's timestamp check refuses half of them); then unassured
    /// entries. The least recently seen of the first kind found.
    /// False when the sample holds none (every port held by a live, assured connection).
    /// </summary>
    private bool TryEvictForPort(PortAllocator ports, bool syn, uint seq, out ushort port)
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
            TimeWaitResetSeq = _connections[victim].ClientSeqEnd;
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

    /// <summary>Set by the packet that took over the NAT port of a connection whose backend waits in TIME_WAIT: the
    /// sequence number of the reset that ends that wait, which the worker sends to the backend just before the
    /// packet (<see cref="Packets.TimeWaitReset"/>); null otherwise. Valid until the next packet.</summary>
    public uint? TimeWaitResetSeq { get; private set; }

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

    private uint _random;

    private uint NextRandom()
    {
        uint x = _random;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return _random = x;
    }

    private int CreateConnection(int svcIndex, in ParsedPacket p, uint seq, long now, out DropReason reason)
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
        if (!s.Dsr && !TryTakeNatPort(in b, s.Protocol, in p, seq, now, out ports, out snat, out natPort))
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

    /// <summary>The index of this worker's counters of a backend in its list, added at their first connection
    /// (the list grows with the backends this worker has seen, across reloads).</summary>
    private int CountersIdOf(FlowCounters bc)
    {
        if (bc.IdOwner != this)
        {
            if (_countersCount == _counters.Length)
                Array.Resize(ref _counters, _counters.Length * 2);
            bc.Id = _countersCount;
            bc.IdOwner = this;
            _counters[_countersCount++] = bc;
        }
        return bc.Id;
    }

    /// <summary>Whether a parsed TCP or UDP packet's checksum is partial (see <see cref="IsPartial"/>) and will be
    /// completed (false for other protocols): direct server return completes it then, and the receiver of a
    /// multi-buffer frame sums its other buffers (<see cref="ParsedPacket.BeyondSum"/>), and only then.</summary>
    public bool HasPartialChecksum(ReadOnlySpan<byte> frame, in ParsedPacket p)
    {
        if (p.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || p.IsLaterFragment)
            return false;
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(p.L4Offset + (p.Protocol == IpProtocol.Tcp ? Wire.TcpChecksum : Wire.UdpChecksum)));
        return check != 0 && IsPartial(p.IsFragment, check, (byte)p.Protocol, p.L4Length, WordSum(in p, p.SrcIp, p.DstIp));
    }

    /// <summary>CHECKSUM_PARTIAL from the sender's TX offload: the L4 checksum field holds only the folded
    /// pseudo-header sum of the packet as sent (never for fragments: the sender's stack computed the whole
    /// checksum to fragment the datagram). Off when engine.repair_partial_checksums is false.</summary>
    /// <param name="addressWords">The sum of the packet's source and destination address words
    /// (<see cref="WordSum(bool, in IpAddr, in IpAddr)"/>), which the caller has at hand.</param>
    private bool IsPartial(bool fragment, ushort check, byte wireProtocol, int l4Length, ulong addressWords) =>
        _options.RepairPartialChecksums && !fragment &&
        check == InternetChecksum.Fold(addressWords + wireProtocol + (uint)(l4Length >> 16) + (uint)(l4Length & 0xFFFF));

    /// <summary>The full L4 checksum of the segment for these addresses (the field is zeroed first); counted as
    /// a repaired partial checksum. l4 is the segment's part in the first buffer, l4Length the whole segment's
    /// length, beyondSum the sum of the rest (a multi-buffer chain; 0 otherwise).</summary>
    private ushort CompleteChecksum(Span<byte> l4, int l4Length, ulong beyondSum, int csOff, in IpAddr src, in IpAddr dst, byte wireProtocol)
    {
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(csOff), 0);
        Counters.PartialChecksumsRepaired++;
        ushort data = beyondSum == 0 ? InternetChecksum.Sum(l4) : InternetChecksum.Fold(InternetChecksum.Sum(l4) + beyondSum);
        return InternetChecksum.Finish(InternetChecksum.Add(InternetChecksum.PseudoHeaderSum(src, dst, wireProtocol, l4Length), data));
    }

    /// <summary>Rewrites addresses, ports (ICMP id), TTL and every checksum. The checksums are updated
    /// incrementally (RFC 1624) with one sum of what changed: the addresses count the same in the IPv4 header
    /// and in the TCP/UDP/ICMPv6 pseudo-header, so their difference is summed once for both.</summary>
    private void Translate(Span<byte> frame, in ParsedPacket p, in IpAddr newSrc, in IpAddr newDst, ushort newSport, ushort newDport, bool toBackend)
    {
        var l4 = frame.Slice(p.L4Offset, p.L4InFrame);
        byte wireProtocol = p.Protocol.WireNumber(p.SrcIp);
        ulong oldAddresses = WordSum(in p, p.SrcIp, p.DstIp);
        ulong addressDelta = AddressDelta(in p, oldAddresses, WordSum(in p, newSrc, newDst));

        switch (p.Protocol)
        {
            case IpProtocol.Tcp:
            case IpProtocol.Udp:
                TranslatePorts(l4, p.L4Length, p.BeyondSum, p.Protocol == IpProtocol.Udp, p.IsFragment, wireProtocol, oldAddresses, addressDelta,
                    newSrc, newDst, p.SrcPort, p.DstPort, newSport, newDport);
                break;
            case IpProtocol.Icmp:
            {
                // Echo: the identifier plays the port. Requests carry the NAT id toward the backend, replies
                // carry the client's id back. The ICMPv4 checksum covers no pseudo-header; ICMPv6's does.
                ushort oldId = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(Wire.IcmpId));
                ushort newId = toBackend ? newSport : newDport;
                ushort check = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(Wire.IcmpChecksum));
                check = (ushort)~InternetChecksum.Fold((ulong)(ushort)~check + (ushort)~oldId + newId + (p.IsV6 ? addressDelta : 0));
                BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(Wire.IcmpId), newId);
                BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(Wire.IcmpChecksum), check);
                break;
            }
        }

        RewriteIpHeader(frame, in p, newSrc, newDst, addressDelta);
    }

    /// <summary>A TCP segment's sequence number (0 for other protocols).</summary>
    private static uint TcpSeq(ReadOnlySpan<byte> frame, in ParsedPacket p) =>
        p.Protocol == IpProtocol.Tcp && p.L4Length >= Wire.TcpMinHeader ? BinaryPrimitives.ReadUInt32BigEndian(frame.Slice(p.L4Offset + 4)) : 0;

    /// <summary>The sequence number after a TCP segment with SYN or FIN: its sequence number, plus its data, plus one.</summary>
    private static uint TcpSeqEnd(ReadOnlySpan<byte> frame, in ParsedPacket p)
    {
        int header = (frame[p.L4Offset + 12] >> 4) * 4;
        return TcpSeq(frame, in p) + (uint)Math.Max(0, p.L4Length + p.Beyond - header) + 1;
    }

    /// <summary>A packet of connection c on its way, in either path: seen now, counted for its service and
    /// backend in its direction, and a reply marks the connection answered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CountPacket(ref Connection c, bool toBackend, int frameLength, long now)
    {
        c.LastSeen = now;
        var slot = _counters[c.CountersId];
        if (toBackend)
        {
            slot.PacketsToBackend++;
            slot.BytesToBackend += frameLength;
        }
        else
        {
            slot.PacketsToClient++;
            slot.BytesToClient += frameLength;
            c.Replied = true;
        }
        if (!c.Assured && c.Replied)
            Assure(ref c, now);
    }

    /// <summary>A connection the backend answered is assured (conntrack's IPS_ASSURED: no longer the first to go when
    /// the table or the ports are full) once TCP is established, or once a UDP flow is still active 2 s after it
    /// began (a stream; a single request and answer, such as DNS, stays unassured, on the short timeout).</summary>
    private static void Assure(ref Connection c, long now)
    {
        if (c.Protocol == IpProtocol.Tcp ? c.TcpState is >= TcpState.Established and <= TcpState.TimeWait
            : c.Protocol == IpProtocol.Udp && now - c.Created >= UdpStreamAfterMs)
            c.Assured = true;
    }

    /// <summary>A replied UDP flow still active this long after it began is a stream (conntrack's 2 s).</summary>
    public const long UdpStreamAfterMs = 2000;

    /// <summary>New TCP or UDP ports, and the checksum updated for them and for the addresses (addressDelta), or
    /// completed where the sender left it partial (oldAddresses: the old addresses' word sum, to tell).</summary>
    private void TranslatePorts(Span<byte> l4, int l4Length, ulong beyondSum, bool udp, bool fragment, byte wireProtocol, ulong oldAddresses, ulong addressDelta,
        in IpAddr newSrc, in IpAddr newDst, ushort oldSport, ushort oldDport, ushort newSport, ushort newDport)
    {
        int csOff = udp ? Wire.UdpChecksum : Wire.TcpChecksum;
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(l4.Slice(csOff));
        BinaryPrimitives.WriteUInt16BigEndian(l4, newSport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(2), newDport);
        if (udp && check == 0)
            return; // UDP without a checksum stays so
        // (whether the field is partial depends on the addresses and the length only, not on the ports)
        if (IsPartial(fragment, check, wireProtocol, l4Length, oldAddresses))
        {
            // CHECKSUM_PARTIAL from the sender's TX offload: the field holds only the pseudo-header
            // sum. Nobody downstream will finish it, so compute the full checksum now.
            check = CompleteChecksum(l4, l4Length, beyondSum, csOff, newSrc, newDst, wireProtocol);
        }
        else
        {
            check = (ushort)~InternetChecksum.Fold((ulong)(ushort)~check + addressDelta +
                (ushort)~oldSport + newSport + (ushort)~oldDport + newDport);
        }
        if (udp && check == 0)
            check = 0xFFFF; // 0 means "no checksum" in UDP
        BinaryPrimitives.WriteUInt16BigEndian(l4.Slice(csOff), check);
    }

    /// <summary>The sum of two addresses' 16-bit words, of the packet's family (a service never mixes them).</summary>
    private static ulong WordSum(in ParsedPacket p, in IpAddr a, in IpAddr b) => WordSum(p.IsV6, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong WordSum(bool v6, in IpAddr a, in IpAddr b)
    {
        if (v6)
            return a.WordSum() + b.WordSum();
        uint x = a.V4, y = b.V4;
        return (ulong)(x >> 16) + (x & 0xFFFF) + (y >> 16) + (y & 0xFFFF);
    }

    /// <summary>The one's-complement sum that turns the old addresses' words into the new ones' (RFC 1624:
    /// the complement of each old word plus each new word), from the plain sums of both.</summary>
    private static ulong AddressDelta(in ParsedPacket p, ulong oldAddresses, ulong newAddresses) =>
        (p.IsV6 ? 16 * 0xFFFFUL : 4 * 0xFFFFUL) - oldAddresses + newAddresses;

    /// <summary>New addresses and one hop less in the IP header; IPv4's header checksum updated (IPv6 has
    /// none). The transport header is the caller's business.</summary>
    private static void RewriteIpHeader(Span<byte> frame, in ParsedPacket p, in IpAddr newSrc, in IpAddr newDst) =>
        RewriteIpHeader(frame, in p, newSrc, newDst,
            AddressDelta(in p, WordSum(in p, p.SrcIp, p.DstIp), WordSum(in p, newSrc, newDst)));

    /// <summary>As above, with the addresses' checksum delta already summed. The incoming header's checksum
    /// was verified, so updating it gives what recomputing would.</summary>
    private static void RewriteIpHeader(Span<byte> frame, in ParsedPacket p, in IpAddr newSrc, in IpAddr newDst, ulong addressDelta) =>
        RewriteIpHeader(frame.Slice(p.L3Offset, p.L4Offset - p.L3Offset), p.IsV6, newSrc, newDst, addressDelta);

    /// <summary>As above, on the IP header itself (ip: from its first byte to the transport header).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RewriteIpHeader(Span<byte> ip, bool v6, in IpAddr newSrc, in IpAddr newDst, ulong addressDelta)
    {
        if (v6)
        {
            newSrc.WriteV6(ip.Slice(Wire.Ip6Src));
            newDst.WriteV6(ip.Slice(Wire.Ip6Dst));
            ip[Wire.Ip6HopLimit]--;
            return;
        }
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(Wire.IpSrc), newSrc.V4);
        BinaryPrimitives.WriteUInt32BigEndian(ip.Slice(Wire.IpDst), newDst.V4);
        // TTL is the high byte of the TTL/protocol word: one less TTL is 0x100 less in that word
        ushort ttlWord = BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(Wire.IpTtl));
        ip[Wire.IpTtl]--;
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(ip.Slice(Wire.IpChecksum));
        check = (ushort)~InternetChecksum.Fold((ulong)(ushort)~check + addressDelta + (ushort)~ttlWord + (uint)(ttlWord - 0x100));
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.IpChecksum), check);
    }

    private Verdict Drop(DropReason reason)
    {
        Counters.Drop(reason);
        LastDropReason = reason;
        return Verdict.Drop;
    }

    /// <summary>Why the last dropped frame was dropped (the worker answers TTL expiry with ICMP).</summary>
    public DropReason LastDropReason { get; private set; }

    /// <summary>Forgets old fragments, and removes idle connections among the next <paramref name="budget"/> slots
    /// of the table (releasing their NAT ports).</summary>
    public int ExpireConnections(long now, int budget)
    {
        ExpireFragments(now);
        return SweepConnections(now, budget);
    }

    /// <summary>Removes idle connections among the next <paramref name="budget"/> slots of the table.</summary>
    public int SweepConnections(long now, int budget)
    {
        int n = _connections.Sweep(now, budget, _timeoutOf, _releasePort);
        Counters.ExpiredConnections += n;
        return n;
    }

    /// <summary>The idle timeout (ms) of a connection in its current state: TCP by state, at most the unassured
    /// timeout until assured (SYN_SENT keeps its own); UDP the stream timeout once assured.</summary>
    public long TimeoutOf(Connection c) => c.Protocol switch
    {
        IpProtocol.Tcp => c.Assured || c.TcpState == TcpState.SynSent
            ? _tcpTimeouts[(int)c.TcpState]
            : Math.Min(_tcpTimeouts[(int)c.TcpState], _options.TcpUnassuredTimeoutSeconds * 1000L),
        IpProtocol.Udp => (c.Assured ? _options.UdpStreamTimeoutSeconds : _options.UdpTimeoutSeconds) * 1000L,
        _ => _options.IcmpTimeoutSeconds * 1000L,
    };

    /// <summary>Releases what a connection held: its NAT port and its place in the active counts.</summary>
    private void OnRemoved(Connection c)
    {
        var s = _table.Services[c.ServiceIndex];
        s.PerWorker[_worker].ActiveConnections--;
        s.Backends[c.BackendIndex].PerWorker[_worker].ActiveConnections--;
        if (!c.Dsr && _natPorts.TryGetValue((c.SnatIp, c.BackendIp, c.BackendPort, c.Protocol), out var ports))
            ports.Release(c.NatPort);
    }
}

/// <summary>What a batch's prefetch pass needs of one frame: its flow's hash and the index it is looked up in
/// first (<see cref="PacketProcessor.PrefetchConnections"/>).</summary>
internal struct LookupHint
{
    public int Hash;
    public bool BackendSide;
    public bool Valid;
}
