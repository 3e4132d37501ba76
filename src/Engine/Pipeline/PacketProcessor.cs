using System.Runtime.CompilerServices;
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
/// <para>
/// This file holds the general path (<see cref="Process(Span{byte}, in ParsedPacket, long, out Forwarding)"/>) and
/// what it is built from; the other stages are partial files of their own: the fast lane for established flows
/// (<c>PacketProcessor.FastLane.cs</c>), new connections with their NAT ports and early drop
/// (<c>.NewConnections.cs</c>), connection state and expiry (<c>.Tracking.cs</c>), ICMP errors about our packets
/// (<c>.IcmpErrors.cs</c>), later fragments and direct server return (<c>.Fragments.cs</c>, <c>.DirectReturn.cs</c>),
/// and the way out (<c>.Egress.cs</c>). The bytes are written by <see cref="NatRewriter"/>; ports, VLANs, MTUs
/// and next hops are <see cref="EgressPorts"/>'.
/// </para>
/// </summary>
internal sealed partial class PacketProcessor
{
    /// <summary>The version of the services this worker forwards with (see <see cref="Use"/>).</summary>
    private ServiceTable _table;
    private readonly int _worker;
    private readonly ConnectionTable _connections;
    private readonly EgressPorts _egress;
    private readonly FragmentTable _fragments;
    private readonly EngineOptions _options;

    /// <summary>The pipeline of worker <paramref name="worker"/>: its own connection table, NAT ports
    /// (those whose number modulo the worker count is its index), next-hop cache and counters.</summary>
    /// <param name="ports">The attached interfaces: (ifindex, MAC). Frames can only leave through these.</param>
    /// <param name="seed">Seeds the NAT port choice and early drop's sampling; 0 draws a seed from the process's
    /// random source. Two processors with one seed choose alike (what a differential test compares).</param>
    public PacketProcessor(ServiceTable table, int worker, IReadOnlyList<(int IfIndex, byte[] Mac)> ports,
        IRouteSource routes, EngineOptions options, EngineCounters counters, uint seed = 0)
    {
        _random = seed != 0 ? seed : (uint)Random.Shared.Next(1, int.MaxValue);
        _table = table;
        _worker = worker;
        _options = options;
        Counters = counters;
        _connections = new ConnectionTable(Math.Max(1, options.ConnectionCapacity / table.Workers));
        _egress = new EgressPorts(ports, new NextHopCache(routes, options.NeighborCacheSeconds * 1000L, 1));
        _fragments = new FragmentTable(worker, table.Workers > 1 ? table.FragmentOwners : null);
        _tcpTimeouts = TcpTimeouts(options);
        _timeoutOf = TimeoutOf;
        _releasePort = OnRemoved;
    }

    public EngineCounters Counters { get; }
    public ConnectionTable Connections => _connections;
    public NextHopCache NextHops => _egress.NextHops;
    /// <summary>The version of the services in use.</summary>
    public ServiceTable Table => _table;
    public int Worker => _worker;

    /// <summary>Moves to a newer version of the services (the worker calls it between two batches).</summary>
    public void Use(ServiceTable table) => _table = table;

    /// <summary>Takes new interface identities (an interface deleted and created again) and forgets next hops.</summary>
    public void UpdatePorts(IReadOnlyList<(int IfIndex, byte[] Mac)> ports) => _egress.Update(ports);

    /// <summary>The MTU of an attached interface: larger packets toward it are not sent but answered with
    /// ICMP fragmentation needed / packet too big.</summary>
    public void SetMtu(int ifIndex, int mtu) => _egress.SetMtu(ifIndex, mtu);

    /// <summary>VLAN interfaces (by ifindex) stacked on attached ports, with their VLAN ids: a route through one
    /// leaves by its parent port, tagged.</summary>
    public void SetVlans(IReadOnlyDictionary<int, (int ParentIfIndex, ushort Vlan)> vlans) => _egress.SetVlans(vlans);

    /// <summary>Runs the pipeline on one frame (rewritten in place): the fast lane, or else the general path.
    /// now is in milliseconds.</summary>
    public Verdict Process(Span<byte> frame, long now, out Forwarding f)
    {
        if (TryFastLane(frame, now, out f))
            return Verdict.Transmit;
        var reason = PacketParser.Parse(frame, out var p);
        if (reason != DropReason.None)
            return Drop(reason, ref f);
        return Process(frame, in p, now, out f);
    }

    /// <summary>The general path, on a frame already parsed into p.</summary>
    /// <remarks>Never inlined into its callers: it is large, and compiled on its own it keeps the JIT's
    /// inlining budget for the small helpers it calls per packet (span conversions, checksum folds).</remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public Verdict Process(Span<byte> frame, in ParsedPacket p, long now, out Forwarding f)
    {
        f = default;
        if (!p.IsV6 && !InternetChecksum.IPv4HeaderIsValid(frame.Slice(p.L3Offset, p.L4Offset - p.L3Offset)))
            return Drop(DropReason.BadIpChecksum, ref f);
        if (p.Ttl <= 1)
            return Drop(DropReason.TtlExceeded, ref f);
        if (p.HasUdpTrailer)
            return ProcessTrimmed(frame, in p, now, out f);
        if (p.IsIcmpError)
            return p.Beyond == 0 ? TranslateIcmpError(frame, in p, now, ref f)
                : Drop(DropReason.Malformed, ref f); // an error quotes at most 576 (IPv6: 1280) bytes: never a chain
        if (p.IsLaterFragment)
            return ForwardLaterFragment(frame, in p, now, ref f);

        int index = FindOrCreate(frame, in p, now, out bool toBackend, ref f);
        if (index < 0)
            return Verdict.Drop;
        ref var c = ref _connections[index];
        CountPacket(ref c, toBackend, frame.Length + p.Beyond, now);
        if (p.IsFragment)
            _fragments.Remember(new FragmentKey(p.SrcIp, p.DstIp, p.FragmentId, p.Protocol), index, toBackend, now);
        if (c.Dsr)
            return ForwardDirect(frame, in p, ref c, now, ref f);
        if (p.Protocol == IpProtocol.Tcp)
            TrackTcp(ref c, frame, in p, toBackend, now);

        c.Toward(toBackend, out var newSrc, out var newDst, out ushort newSport, out ushort newDport);
        if (toBackend)
            Counters.ToBackend++;
        else
            Counters.ToClient++;

        // The next hop first: a packet too big for the egress interface is answered about as it arrived.
        var state = _egress.Lookup(newDst, now, ref toBackend ? ref c.HopToBackend : ref c.HopToClient, out var hop, out int port,
            out f.Vlan, out var reason);
        f.EgressIfIndex = hop.IfIndex;
        if (reason != DropReason.None)
            return Drop(reason, ref f);
        TagTowardClient(ref f, in c, toBackend);
        if (port >= 0 && p.IpTotalLength > _egress.MtuOf(port))
            return TooBig(frame, in p, port, ref f);
        Translate(frame, in p, newSrc, newDst, newSport, newDport, toBackend);
        f.NextHop = newDst;
        if (state == NextHopState.Pending)
            return Verdict.Hold;
        _egress.WriteMacs(frame, in hop, port);
        return Verdict.Transmit;
    }

    /// <summary>A UDP datagram with bytes after it in the IP payload: the IP length cut to the datagram's (IPv4's header
    /// checksum recomputed: it was verified), then the general path on the shorter frame, whose length the worker sends.</summary>
    private Verdict ProcessTrimmed(Span<byte> frame, in ParsedPacket p, long now, out Forwarding f)
    {
        var trimmed = p;
        int cut = p.L4Length - p.UdpLength;
        trimmed.IpTotalLength -= cut;
        trimmed.HasUdpTrailer = false;
        var ip = frame.Slice(p.L3Offset, p.L4Offset - p.L3Offset);
        if (p.IsV6)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.Ip6PayloadLength), (ushort)(trimmed.IpTotalLength - Wire.IPv6Header));
        }
        else
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)trimmed.IpTotalLength);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.IpChecksum), 0);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(Wire.IpChecksum), InternetChecksum.IPv4Header(ip));
        }
        int length = p.L3Offset + trimmed.IpTotalLength;
        var v = Process(frame.Slice(0, length), in trimmed, now, out f);
        f.FrameLength = length;
        return v;
    }

    /// <summary>The connection of a packet and its direction: a likely reply is looked up in the backend index first,
    /// so that a reply costs one lookup, not two; a packet to a service's VIP with none starts one. -1 when it was
    /// dropped (counted, its reason in f).</summary>
    private int FindOrCreate(Span<byte> frame, in ParsedPacket p, long now, out bool toBackend, ref Forwarding f)
    {
        var key = new FlowKey(p.SrcIp, p.DstIp, p.SrcPort, p.DstPort, p.Protocol);
        int hash = p.HasFlowHash ? p.FlowHash : key.GetHashCode(); // one hash for both indexes
        bool isEchoRequest = p.Protocol == IpProtocol.Icmp && p.IcmpType == Wire.IcmpEchoRequest;
        bool isEchoReply = p.Protocol == IpProtocol.Icmp && p.IcmpType == Wire.IcmpEchoReply;
        bool replyLikely = ReplyLikely(in p);
        toBackend = false;
        if (replyLikely && _connections.TryGetByBackend(key, hash, out int index))
            return index;
        toBackend = true;
        if (!isEchoReply && _connections.TryGetByClient(key, hash, out index))
            return index;
        toBackend = false;
        if (!replyLikely && !isEchoRequest && _connections.TryGetByBackend(key, hash, out index))
            return index;
        toBackend = true;
        if (!isEchoReply && _table.TryFind(new ServiceKey(p.DstIp, p.Protocol, p.Protocol == IpProtocol.Icmp ? (ushort)0 : p.DstPort), out int svc))
        {
            if (p.Protocol == IpProtocol.Tcp && (p.TcpFlags & Wire.TcpRst) != 0)
            {
                Drop(DropReason.NoConnection, ref f);
                return -1;
            }
            index = CreateConnection(svc, in p, TcpSeq(frame, in p), now, out var reason, ref f);
            if (index < 0)
                Drop(reason, ref f);
            return index;
        }
        Drop(_table.IsNatAddress(p.DstIp, p.Protocol) ? DropReason.NoConnection : DropReason.NoService, ref f);
        return -1;
    }

    /// <summary>A destination port in the NAT range is almost surely a reply (but an echo request's id is no
    /// port): such packets are looked up in the backend index first.</summary>
    private bool ReplyLikely(in ParsedPacket p) =>
        !(p.Protocol == IpProtocol.Icmp && p.IcmpType == Wire.IcmpEchoRequest) &&
        p.DstPort >= _options.NatPortMin && p.DstPort <= _options.NatPortMax;

    /// <summary>Rewrites addresses, ports (ICMP id), TTL and every checksum (<see cref="NatRewriter"/>).</summary>
    private void Translate(Span<byte> frame, in ParsedPacket p, in IpAddr newSrc, in IpAddr newDst, ushort newSport, ushort newDport, bool toBackend)
    {
        var l4 = frame.Slice(p.L4Offset, p.L4InFrame);
        ulong oldAddresses = NatRewriter.WordSum(p.IsV6, p.SrcIp, p.DstIp);
        ulong addressDelta = NatRewriter.AddressDelta(p.IsV6, oldAddresses, NatRewriter.WordSum(p.IsV6, newSrc, newDst));
        if (p.Protocol is IpProtocol.Tcp or IpProtocol.Udp)
        {
            if (NatRewriter.TranslatePorts(l4, p.L4Length, p.BeyondSum, p.Protocol == IpProtocol.Udp, RepairsPartial(p.IsFragment),
                    (byte)p.Protocol, oldAddresses, addressDelta, newSrc, newDst, p.SrcPort, p.DstPort, newSport, newDport))
                Counters.PartialChecksumsRepaired++;
        }
        else if (p.Protocol == IpProtocol.Icmp)
        {
            // echo: requests carry the NAT id toward the backend, replies carry the client's id back
            NatRewriter.TranslateEchoId(l4, toBackend ? newSport : newDport, p.IsV6, addressDelta);
        }
        NatRewriter.RewriteIpHeader(frame.Slice(p.L3Offset, p.L4Offset - p.L3Offset), p.IsV6, newSrc, newDst, addressDelta);
    }

    /// <summary>New addresses and one hop less in the IP header only (ICMP errors, later fragments).</summary>
    private static void RewriteIpHeader(Span<byte> frame, in ParsedPacket p, in IpAddr newSrc, in IpAddr newDst) =>
        NatRewriter.RewriteIpHeader(frame.Slice(p.L3Offset, p.L4Offset - p.L3Offset), p.IsV6, newSrc, newDst,
            NatRewriter.AddressDelta(p.IsV6, NatRewriter.WordSum(p.IsV6, p.SrcIp, p.DstIp), NatRewriter.WordSum(p.IsV6, newSrc, newDst)));

    /// <summary>Whether a CHECKSUM_PARTIAL checksum is completed (engine.repair_partial_checksums; never for fragments,
    /// whose sender computed the whole checksum to fragment the datagram).</summary>
    private bool RepairsPartial(bool fragment) => _options.RepairPartialChecksums && !fragment;

    /// <summary>Whether a parsed TCP or UDP packet's checksum is partial (CHECKSUM_PARTIAL) and will be completed
    /// (false for other protocols): direct server return completes it then, and the receiver of a multi-buffer
    /// frame sums its other buffers (<see cref="ParsedPacket.BeyondSum"/>), and only then.</summary>
    public bool HasPartialChecksum(ReadOnlySpan<byte> frame, in ParsedPacket p)
    {
        if (p.Protocol is not (IpProtocol.Tcp or IpProtocol.Udp) || p.IsLaterFragment || !RepairsPartial(p.IsFragment))
            return false;
        ushort check = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(
            frame.Slice(p.L4Offset + (p.Protocol == IpProtocol.Tcp ? Wire.TcpChecksum : Wire.UdpChecksum)));
        return check != 0 && NatRewriter.IsPartial(check, (byte)p.Protocol, p.L4Length, NatRewriter.WordSum(p.IsV6, p.SrcIp, p.DstIp));
    }

    /// <summary>Counts a drop and says why in f.</summary>
    private Verdict Drop(DropReason reason, ref Forwarding f)
    {
        Counters.Drop(reason);
        f.DropReason = reason;
        return Verdict.Drop;
    }
}
